//! The indexed in-memory store: one [`ObjectStore`] per object type, plus owners.
//!
//! Indexes: `live` and `archived` id sets (list paging by id), `by_updated` and `by_created`
//! ordered sets of `(ms, id)` over live records (search), merge aliases, and an email index.

use super::{ObjectKind, PropDef, Record};
use std::collections::{BTreeSet, HashMap};

/// A HubSpot owner (`PublicOwner`).
#[derive(Debug, Clone)]
pub struct Owner {
    pub id: u64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub user_id: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub archived: bool,
    /// Answers leave out `createdAt` (HubSpot omits it for some owners).
    pub created_at_omitted: bool,
    /// (team id, team name, primary)
    pub teams: Vec<(String, String, bool)>,
}

impl Owner {
    pub fn to_json(&self) -> serde_json::Value {
        let teams: Vec<serde_json::Value> = self
            .teams
            .iter()
            .map(|(id, name, primary)| serde_json::json!({"id": id, "name": name, "primary": primary}))
            .collect();
        let mut owner = serde_json::json!({
            "id": self.id.to_string(),
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "type": "PERSON",
            "userId": if self.archived { None } else { Some(self.user_id) },
            "userIdIncludingInactive": self.user_id,
            "createdAt": super::iso(self.created_ms),
            "updatedAt": super::iso(self.updated_ms),
            "archived": self.archived,
            "teams": teams,
        });
        if self.created_at_omitted {
            if let Some(fields) = owner.as_object_mut() {
                fields.remove("createdAt");
            }
        }
        owner
    }
}

/// Records of one object type and their indexes.
#[derive(Debug)]
pub struct ObjectStore {
    pub kind: ObjectKind,
    pub records: HashMap<u64, Record>,
    pub live: BTreeSet<u64>,
    pub archived: BTreeSet<u64>,
    pub by_updated: BTreeSet<(i64, u64)>,
    pub by_created: BTreeSet<(i64, u64)>,
    /// Merged-away id -> the record it was merged into.
    pub aliases: HashMap<u64, u64>,
    /// Lower-cased email -> live or archived contact id.
    pub emails: HashMap<String, u64>,
    pub next_id: u64,
    email_idx: Option<usize>,
    /// Custom properties created at run time (`/_sim/properties`), after the kind's schema: the
    /// one at position `j` keeps its values at `schema().len() + j` of each record.
    pub created: Vec<PropDef>,
}

impl ObjectStore {
    pub fn new(kind: ObjectKind, first_id: u64) -> Self {
        ObjectStore {
            kind,
            records: HashMap::new(),
            live: BTreeSet::new(),
            archived: BTreeSet::new(),
            by_updated: BTreeSet::new(),
            by_created: BTreeSet::new(),
            aliases: HashMap::new(),
            emails: HashMap::new(),
            next_id: first_id,
            email_idx: match kind {
                ObjectKind::Contacts => kind.prop_index("email"),
                _ => None,
            },
            created: Vec::new(),
        }
    }

    /// Index of a property: the kind's schema, then the properties created at run time.
    pub fn prop_index(&self, name: &str) -> Option<usize> {
        let fixed = self.kind.schema();
        fixed
            .iter()
            .position(|p| p.name == name)
            .or_else(|| self.created.iter().position(|p| p.name == name).map(|j| fixed.len() + j))
    }

    /// The property at `idx` (see [`ObjectStore::prop_index`]).
    pub fn prop_def(&self, idx: usize) -> Option<&PropDef> {
        let fixed = self.kind.schema();
        fixed.get(idx).or_else(|| self.created.get(idx.checked_sub(fixed.len())?))
    }

    /// Every property of the object, the schema's first.
    pub fn props(&self) -> impl Iterator<Item = &PropDef> {
        self.kind.schema().iter().chain(self.created.iter())
    }

    pub fn alloc_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn email_of(&self, rec: &Record) -> Option<String> {
        self.email_idx.and_then(|i| rec.raw(i)).map(|e| e.to_lowercase())
    }

    /// Inserts a record, indexing it according to its state.
    pub fn insert(&mut self, rec: Record) {
        let id = rec.id;
        if let Some(target) = rec.merged_into {
            self.aliases.insert(id, target);
        } else if rec.archived_ms.is_some() {
            self.archived.insert(id);
        } else {
            self.live.insert(id);
            self.by_updated.insert((rec.updated_ms, id));
            self.by_created.insert((rec.created_ms, id));
        }
        if rec.merged_into.is_none() {
            if let Some(e) = self.email_of(&rec) {
                self.emails.insert(e, id);
            }
        }
        if id >= self.next_id {
            self.next_id = id + 1;
        }
        self.records.insert(id, rec);
    }

    /// Removes a record from every index and returns it.
    pub fn take(&mut self, id: u64) -> Option<Record> {
        let rec = self.records.remove(&id)?;
        self.live.remove(&id);
        self.archived.remove(&id);
        self.by_updated.remove(&(rec.updated_ms, id));
        self.by_created.remove(&(rec.created_ms, id));
        self.aliases.remove(&id);
        if let Some(e) = self.email_of(&rec) {
            if self.emails.get(&e) == Some(&id) {
                self.emails.remove(&e);
            }
        }
        Some(rec)
    }

    /// Follows merge aliases to the record an id now stands for.
    pub fn resolve(&self, id: u64) -> Option<u64> {
        let mut cur = id;
        for _ in 0..32 {
            match self.aliases.get(&cur) {
                Some(next) => cur = *next,
                None => return self.records.contains_key(&cur).then_some(cur),
            }
        }
        None
    }

    /// Resolves an id (or, with `id_property`, a unique property value) to a record, honouring
    /// `archived`: false finds only live records, true only archived ones.
    pub fn lookup(&self, key: &str, id_property: Option<&str>, archived: bool) -> Option<&Record> {
        let id = match id_property {
            None | Some("hs_object_id") | Some("id") => key.trim().parse::<u64>().ok()?,
            Some("email") => *self.emails.get(&key.trim().to_lowercase())?,
            Some(_) => return None,
        };
        let id = self.resolve(id)?;
        let rec = self.records.get(&id)?;
        (rec.archived_ms.is_some() == archived).then_some(rec)
    }

    /// Applies `f` to a live record and moves its last-modified time to `ts`.
    pub fn modify(&mut self, id: u64, ts: i64, f: impl FnOnce(&mut Record)) -> bool {
        let Some(rec) = self.records.get_mut(&id) else {
            return false;
        };
        let was_live = rec.archived_ms.is_none() && rec.merged_into.is_none();
        let old = rec.updated_ms;
        f(rec);
        rec.updated_ms = ts.max(rec.created_ms);
        if was_live {
            self.by_updated.remove(&(old, id));
            self.by_updated.insert((rec.updated_ms, id));
        }
        true
    }

    /// Moves a live record to the recycle bin.
    pub fn archive(&mut self, id: u64, ts: i64) -> bool {
        if !self.live.contains(&id) {
            return false;
        }
        match self.take(id) {
            Some(mut rec) => {
                rec.archived_ms = Some(ts);
                rec.updated_ms = ts.max(rec.updated_ms);
                self.insert(rec);
                true
            }
            None => false,
        }
    }

    /// Brings an archived record back; its last-modified time moves to `ts`, or stays as it
    /// was when `ts` is `None`.
    pub fn restore(&mut self, id: u64, ts: Option<i64>) -> bool {
        if !self.archived.contains(&id) {
            return false;
        }
        match self.take(id) {
            Some(mut rec) => {
                rec.archived_ms = None;
                if let Some(ts) = ts {
                    rec.updated_ms = ts.max(rec.updated_ms);
                }
                self.insert(rec);
                true
            }
            None => false,
        }
    }

    /// A pseudo-random live (or archived) id near `pick` in id space.
    pub fn pick(&self, set_archived: bool, pick: u64, exclude: &[u64]) -> Option<u64> {
        let set = if set_archived { &self.archived } else { &self.live };
        let lo = *set.first()?;
        let hi = *set.last()?;
        let start = lo + pick % (hi - lo + 1);
        set.range(start..).chain(set.range(..start)).find(|id| !exclude.contains(id)).copied()
    }
}

/// The whole simulated CRM.
#[derive(Debug)]
pub struct Crm {
    pub contacts: ObjectStore,
    pub deals: ObjectStore,
    pub calls: ObjectStore,
    pub owners: Vec<Owner>,
    /// The highest owner id ever handed out (removed owners' ids are never reused, as in HubSpot).
    pub last_owner_id: u64,
    /// Last timestamp handed out by [`Crm::now`]; keeps modification times monotonic.
    pub last_ts: i64,
    /// Associations between records, both directions.
    pub associations: super::assoc::Associations,
}

impl Crm {
    pub fn store(&self, kind: ObjectKind) -> &ObjectStore {
        match kind {
            ObjectKind::Contacts => &self.contacts,
            ObjectKind::Deals => &self.deals,
            ObjectKind::Calls => &self.calls,
        }
    }

    pub fn store_mut(&mut self, kind: ObjectKind) -> &mut ObjectStore {
        match kind {
            ObjectKind::Contacts => &mut self.contacts,
            ObjectKind::Deals => &mut self.deals,
            ObjectKind::Calls => &mut self.calls,
        }
    }

    /// A modification timestamp: the clock, but never earlier than the last one handed out.
    pub fn now(&mut self, clock_ms: i64) -> i64 {
        self.last_ts = self.last_ts.max(clock_ms);
        self.last_ts
    }

    /// Ids of owners that can own records (not archived).
    pub fn active_owner_ids(&self) -> Vec<u64> {
        self.owners.iter().filter(|o| !o.archived).map(|o| o.id).collect()
    }
}

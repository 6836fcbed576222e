//! Data churn: creates, updates, deletes, merges, restores, privacy deletions and bulk updates,
//! each recorded as a [`Change`] that the webhook module turns into HubSpot events.

use super::schema::{DEAL_STAGES, LEAD_STATUS, LIFECYCLE};
use super::seed::{FIRST, LAST, pick};
use super::{Crm, ObjectKind, ObjectStore, Record, iso, json::lit, seed};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// Body of `POST /_sim/churn`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ChurnRequest {
    pub object: String,
    pub creates: usize,
    pub updates: usize,
    pub deletes: usize,
    pub merges: usize,
    pub restores: usize,
    pub privacy_deletions: usize,
    /// Records updated together with ONE identical last-modified timestamp.
    pub bulk_updates: usize,
    /// Merge chains: A and B merged into a new C, then C and D into a new E (two merges each).
    pub chain_merges: usize,
    /// Merges (plain and chained) send no webhook: the sync learns of them only by reading
    /// (a full pass no longer lists the old ids; the survivor names them in
    /// `hs_merged_object_ids`).
    pub merges_without_webhook: bool,
    /// Contacts erased for privacy by id (the ids the report's merges named, say), after the
    /// random ones. An id merged away is erased with the record it now resolves to.
    pub privacy_delete_ids: Vec<String>,
    /// Association changes between records of this object and records of another kind
    /// (contacts with deals, deals with contacts, calls with contacts, or `association_object`),
    /// kept in the simulator's associations (both directions). Each fires an event per
    /// direction on each end's subscription, with HubSpot's fields; records are not changed
    /// (association changes do not move `updatedAt`).
    pub association_changes: usize,
    /// The other object of `association_changes` (`contacts`, `deals`, `calls`); by default
    /// contacts go with deals, deals and calls with contacts.
    pub association_object: Option<String>,
    /// The share of association changes that remove an existing association (default 0.3; a
    /// record without one gets one added instead).
    pub association_removal_share: Option<f64>,
    /// Each created record is associated with this many live records of the other kind
    /// (`association_object`, or the default pairing), as creating a record with `associations`
    /// in the request body does (the edges exist from the record's first version; no
    /// association event fires for them, only the creation event).
    pub create_associations: usize,
    /// Restores keep the record's `updatedAt` (HubSpot does not promise to move it), so neither
    /// a last-modified search nor a newer-wins rule notices them.
    pub restore_keeps_updated_at: bool,
}

/// What a churn call did, by id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChurnReport {
    pub object: String,
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub deleted: Vec<String>,
    pub merged: Vec<MergeReport>,
    pub restored: Vec<String>,
    pub privacy_deleted: Vec<String>,
    pub bulk_updated: Vec<String>,
    /// The association changes made: (this object's id, the other kind, the other record's id).
    pub associations: Vec<AssociationReport>,
    /// The shared `updatedAt` of the bulk-updated records.
    pub bulk_timestamp: Option<String>,
    /// Webhook events generated (delivered only with a webhook URL).
    pub events: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct MergeReport {
    pub primary: String,
    pub merged: Vec<String>,
    /// The id of the record created by the merge; both old ids now resolve to it.
    pub new: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AssociationReport {
    pub from: String,
    /// `contacts`, `deals` or `calls`.
    pub to_object: String,
    pub to: String,
    pub removed: bool,
}

/// One change, the input to webhook event generation.
#[derive(Debug, Clone)]
pub enum Change {
    Created {
        id: u64,
    },
    PropertyChanged {
        id: u64,
        name: &'static str,
        value: String,
        bulk: bool,
    },
    Deleted {
        id: u64,
    },
    Merged {
        primary: u64,
        merged: Vec<u64>,
        new: u64,
        moved: u32,
    },
    Restored {
        id: u64,
    },
    PrivacyDeleted {
        id: u64,
    },
    /// An association between `from` (of the churned kind) and `to` (of `to_kind`) was added or
    /// removed.
    Associated {
        from: u64,
        to_kind: ObjectKind,
        to: u64,
        removed: bool,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ChurnError {
    #[error("unknown object type {0:?}: use contacts, deals or calls")]
    UnknownObject(String),
    #[error("privacy deletions exist only for contacts")]
    PrivacyNotContacts,
    #[error("invalid property: {0}")]
    InvalidProperty(String),
}

/// Body of `POST /_sim/properties`: a custom property created at run time (as a portal admin
/// does in HubSpot's settings), then set on some live records.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct PropertyRequest {
    pub object: String,
    /// Internal name: lower-case letters, digits and `_`.
    pub name: String,
    /// HubSpot `type` (default `string`).
    #[serde(rename = "type")]
    pub ptype: Option<String>,
    /// How many live records get `value` (their `updatedAt` moves, as any edit moves it).
    pub set_on: usize,
    pub value: String,
}

/// What a property creation did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PropertyReport {
    pub object: String,
    pub name: String,
    /// Ids of the records the value was set on.
    pub updated: Vec<String>,
    pub events: usize,
}

/// Creates a custom property and sets it on `req.set_on` live records, at clock time `clock_ms`.
pub fn create_property(
    crm: &mut Crm,
    req: &PropertyRequest,
    rng: &mut StdRng,
    clock_ms: i64,
) -> Result<(PropertyReport, Vec<Change>), ChurnError> {
    let kind = ObjectKind::parse(&req.object).ok_or_else(|| ChurnError::UnknownObject(req.object.clone()))?;
    let valid = !req.name.is_empty()
        && req.name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && req.name.as_bytes()[0].is_ascii_lowercase();
    if !valid {
        return Err(ChurnError::InvalidProperty(format!(
            "name {:?}: use lower-case letters, digits and _, starting with a letter",
            req.name
        )));
    }
    let ts = crm.now(clock_ms);
    let s = crm.store_mut(kind);
    if s.prop_index(&req.name).is_some() {
        return Err(ChurnError::InvalidProperty(format!("{} already exists on {}", req.name, kind.name())));
    }
    let group = match kind {
        ObjectKind::Contacts => "contactinformation",
        ObjectKind::Deals => "dealinformation",
        ObjectKind::Calls => "call",
    };
    // Property definitions are `'static` (the schema is); the few created in a simulator's life
    // are leaked on purpose.
    let name: &'static str = Box::leak(req.name.clone().into_boxed_str());
    let ptype: &'static str = Box::leak(req.ptype.clone().unwrap_or_else(|| "string".into()).into_boxed_str());
    let field_type = if ptype == "number" { "number" } else { "text" };
    s.created.push(super::PropDef {
        name,
        label: name,
        ptype,
        field_type,
        group,
        description: "Created at run time",
        options: &[],
        custom: true,
        read_only: false,
    });
    let idx = s.prop_index(name).ok_or_else(|| ChurnError::InvalidProperty("not stored".into()))?;
    let mut rep = PropertyReport { object: kind.name().to_string(), name: req.name.clone(), ..Default::default() };
    let mut ch = Vec::new();
    for id in pick_many(&s.live, req.set_on, rng) {
        let value = req.value.clone();
        let changed = s.modify(id, ts, |rec| {
            if rec.values.len() <= idx {
                rec.values.resize(idx + 1, None);
            }
            rec.set_raw(idx, Some(&value));
        });
        if changed {
            rep.updated.push(id.to_string());
            ch.push(Change::PropertyChanged { id, name, value: req.value.clone(), bulk: false });
        }
    }
    Ok((rep, ch))
}

/// Merges `other` into `primary`: a NEW record (new id) takes the primary's values, filling gaps
/// from `other`; both old ids resolve to it, and it lists them in `hs_merged_object_ids`.
/// Returns the new id and the number of properties moved from `other`.
pub fn merge_pair(s: &mut ObjectStore, primary: u64, other: u64, ts: i64) -> Option<(u64, u32)> {
    if primary == other || !s.live.contains(&primary) || !s.live.contains(&other) {
        return None;
    }
    let mut a = s.take(primary)?;
    let Some(mut b) = s.take(other) else {
        s.insert(a);
        return None;
    };
    let new_id = s.alloc_id();
    let merged_idx = s.kind.prop_index("hs_merged_object_ids");
    let mut ids: Vec<String> = Vec::new();
    for r in [&a, &b] {
        if let Some(prev) = merged_idx.and_then(|i| r.raw(i)) {
            ids.extend(prev.split(';').filter(|x| !x.is_empty()).map(str::to_string));
        }
        ids.push(r.id.to_string());
    }
    let mut values = a.values.clone();
    let mut moved = 0u32;
    for (i, v) in values.iter_mut().enumerate() {
        if v.is_none() && Some(i) != merged_idx {
            if let Some(bv) = b.values.get(i).cloned().flatten() {
                *v = Some(bv);
                moved += 1;
            }
        }
    }
    let mut new = Record {
        id: new_id,
        created_ms: a.created_ms.min(b.created_ms),
        updated_ms: ts.max(a.updated_ms).max(b.updated_ms),
        archived_ms: None,
        merged_into: None,
        values,
    };
    if let Some(i) = merged_idx {
        new.set_raw(i, Some(&ids.join(";")));
    }
    a.merged_into = Some(new_id);
    b.merged_into = Some(new_id);
    s.insert(a);
    s.insert(b);
    s.insert(new);
    Some((new_id, moved))
}

/// Up to `n` distinct ids from `set`, pseudo-randomly spread.
fn pick_many(set: &std::collections::BTreeSet<u64>, n: usize, rng: &mut StdRng) -> Vec<u64> {
    let (Some(&lo), Some(&hi)) = (set.first(), set.last()) else {
        return Vec::new();
    };
    if n.saturating_mul(4) >= set.len() {
        let start = rng.random_range(lo..=hi);
        return set.range(start..).chain(set.range(..start)).take(n).copied().collect();
    }
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let start = rng.random_range(lo..=hi);
        if let Some(id) = set.range(start..).chain(set.range(..start)).find(|id| !seen.contains(*id)) {
            seen.insert(*id);
            out.push(*id);
        }
    }
    out
}

/// A new value for a property an update changes.
fn new_value(kind: ObjectKind, rng: &mut StdRng, owners: &[u64]) -> (&'static str, String) {
    match (kind, rng.random_range(0..5)) {
        (ObjectKind::Contacts, 0) => ("firstname", pick(rng, FIRST).0.to_string()),
        (ObjectKind::Contacts, 1) => ("lastname", pick(rng, LAST).0.to_string()),
        (ObjectKind::Contacts, 2) => ("lifecyclestage", pick(rng, LIFECYCLE).1.to_string()),
        (ObjectKind::Contacts, 3) if !owners.is_empty() => ("hubspot_owner_id", pick(rng, owners).to_string()),
        (ObjectKind::Contacts, _) => ("hs_lead_status", pick(rng, LEAD_STATUS).1.to_string()),
        (ObjectKind::Deals, 0) => ("dealstage", pick(rng, &DEAL_STAGES[..7]).1.to_string()),
        (ObjectKind::Deals, 1) => ("dealname", format!("{} — Renewal", pick(rng, LAST).0)),
        (ObjectKind::Deals, 2) if !owners.is_empty() => ("hubspot_owner_id", pick(rng, owners).to_string()),
        (ObjectKind::Deals, _) => ("amount", format!("{}.00", rng.random_range(100..90_000))),
        (ObjectKind::Calls, 0) => ("hs_call_title", format!("Follow-up with {}", pick(rng, FIRST).0)),
        (ObjectKind::Calls, 1) => ("hs_call_status", "COMPLETED".to_string()),
        (ObjectKind::Calls, _) => ("hs_call_duration", rng.random_range(1000..3_600_000).to_string()),
    }
}

/// Sets one property (keeping a deal's closed flags consistent with its stage) and records it.
fn set_prop(s: &mut ObjectStore, id: u64, name: &'static str, value: &str, ts: i64, bulk: bool, out: &mut Vec<Change>) {
    let Some(mut rec) = s.take(id) else { return };
    let mut changes = vec![(name, value.to_string())];
    if s.kind == ObjectKind::Deals && name == "dealstage" {
        let won = value == "closedwon";
        let closed = won || value == "closedlost";
        changes.push(("hs_is_closed", closed.to_string()));
        changes.push(("hs_is_closed_won", won.to_string()));
    }
    for (n, v) in changes {
        if let Some(i) = s.kind.prop_index(n) {
            if rec.raw(i).as_deref() != Some(v.as_str()) || n == name {
                rec.set_raw(i, Some(&v));
                out.push(Change::PropertyChanged { id, name: n, value: v, bulk });
            }
        }
    }
    rec.updated_ms = ts.max(rec.created_ms);
    s.insert(rec);
}

/// Applies a churn request at clock time `clock_ms`.
pub fn apply(
    crm: &mut Crm,
    req: &ChurnRequest,
    rng: &mut StdRng,
    clock_ms: i64,
) -> Result<(ChurnReport, Vec<Change>), ChurnError> {
    let kind = ObjectKind::parse(&req.object).ok_or_else(|| ChurnError::UnknownObject(req.object.clone()))?;
    if req.privacy_deletions > 0 && kind != ObjectKind::Contacts {
        return Err(ChurnError::PrivacyNotContacts);
    }
    let ts = crm.now(clock_ms);
    let owners = crm.active_owner_ids();
    let mut rep = ChurnReport { object: kind.name().to_string(), ..Default::default() };
    let mut ch = Vec::new();
    let s = crm.store_mut(kind);
    for _ in 0..req.creates {
        let id = s.alloc_id();
        let owner = (!owners.is_empty()).then(|| lit(&pick(rng, &owners).to_string()));
        let values = match kind {
            ObjectKind::Contacts => seed::contact(rng, id, owner),
            ObjectKind::Deals => seed::deal(rng, ts, owner),
            ObjectKind::Calls => seed::call(rng, ts, owner),
        };
        s.insert(Record { id, created_ms: ts, updated_ms: ts, archived_ms: None, merged_into: None, values });
        rep.created.push(id.to_string());
        ch.push(Change::Created { id });
    }
    for id in pick_many(&s.live, req.updates, rng) {
        let (name, value) = new_value(kind, rng, &owners);
        set_prop(s, id, name, &value, ts, false, &mut ch);
        rep.updated.push(id.to_string());
    }
    for id in pick_many(&s.live, req.deletes, rng) {
        if s.archive(id, ts) {
            rep.deleted.push(id.to_string());
            ch.push(Change::Deleted { id });
        }
    }
    let merge = |s: &mut ObjectStore, a: u64, b: u64, rep: &mut ChurnReport, ch: &mut Vec<Change>| {
        let (new, moved) = merge_pair(s, a, b, ts)?;
        rep.merged.push(MergeReport { primary: a.to_string(), merged: vec![b.to_string()], new: new.to_string() });
        if !req.merges_without_webhook {
            ch.push(Change::Merged { primary: a, merged: vec![b], new, moved });
        }
        Some(new)
    };
    for _ in 0..req.merges {
        if let [a, b] = pick_many(&s.live, 2, rng)[..] {
            merge(s, a, b, &mut rep, &mut ch);
        }
    }
    for _ in 0..req.chain_merges {
        if let [a, b, d] = pick_many(&s.live, 3, rng)[..] {
            if let Some(c) = merge(s, a, b, &mut rep, &mut ch) {
                merge(s, c, d, &mut rep, &mut ch);
            }
        }
    }
    for id in pick_many(&s.archived, req.restores, rng) {
        let at = if req.restore_keeps_updated_at { None } else { Some(ts) };
        if s.restore(id, at) {
            rep.restored.push(id.to_string());
            ch.push(Change::Restored { id });
        }
    }
    let chosen = req.privacy_delete_ids.iter().filter_map(|id| id.trim().parse::<u64>().ok());
    let mut erase: Vec<u64> = pick_many(&s.live, req.privacy_deletions, rng);
    erase.extend(chosen.filter_map(|id| s.resolve(id)));
    for id in erase {
        if s.take(id).is_some() {
            // Everything merged into it, along whole chains, goes with it.
            let aliases: Vec<u64> = s.aliases.keys().copied().filter(|a| s.resolve(*a).is_none()).collect();
            for a in aliases {
                s.take(a);
            }
            rep.privacy_deleted.push(id.to_string());
            ch.push(Change::PrivacyDeleted { id });
        }
    }
    if req.bulk_updates > 0 {
        let (name, value) = match kind {
            ObjectKind::Contacts => ("hs_lead_status", "IN_PROGRESS"),
            ObjectKind::Deals => ("renewal_type", "manual"),
            ObjectKind::Calls => ("follow_up_required", "true"),
        };
        for id in pick_many(&s.live, req.bulk_updates, rng) {
            set_prop(s, id, name, value, ts, true, &mut ch);
            rep.bulk_updated.push(id.to_string());
        }
        rep.bulk_timestamp = Some(iso(ts));
    }
    // A merge moves the merged records' edges to the record that survives, as HubSpot does.
    let type_id = kind.type_id();
    for m in &rep.merged {
        let Ok(new) = m.new.parse::<u64>() else { continue };
        for old in std::iter::once(&m.primary).chain(&m.merged).filter_map(|id| id.parse::<u64>().ok()) {
            crm.associations.move_all((type_id, old), (type_id, new));
        }
    }
    if req.association_changes > 0 || req.create_associations > 0 {
        let other = match req.association_object.as_deref() {
            Some(name) => ObjectKind::parse(name).ok_or_else(|| ChurnError::UnknownObject(name.to_owned()))?,
            None => match kind {
                ObjectKind::Contacts => ObjectKind::Deals,
                ObjectKind::Deals | ObjectKind::Calls => ObjectKind::Contacts,
            },
        };
        if other == kind {
            return Err(ChurnError::UnknownObject(format!(
                "{name}: associations join two different objects",
                name = other.name()
            )));
        }
        let (from_type, to_type) = (kind.type_id(), other.type_id());
        if let Some(t) = super::assoc::default_type(from_type, to_type) {
            for id in rep.created.iter().filter_map(|id| id.parse::<u64>().ok()) {
                for to in pick_many(&crm.store(other).live, req.create_associations, rng) {
                    crm.associations.add((from_type, id), (to_type, to), t);
                }
            }
        }
        let targets = pick_many(&crm.store(other).live, req.association_changes, rng);
        let sources = pick_many(&crm.store(kind).live, req.association_changes, rng);
        for (from, target) in sources.into_iter().zip(targets) {
            let remove = rng.random_bool(req.association_removal_share.unwrap_or(0.3).clamp(0.0, 1.0));
            let existing = crm
                .associations
                .of((from_type, from), to_type)
                .map(|(id, _)| id)
                .find(|id| crm.store(other).live.contains(id));
            let (to, removed) = match existing {
                Some(to) if remove => (to, true),
                _ => (target, false),
            };
            if removed {
                crm.associations.remove((from_type, from), (to_type, to));
            } else if let Some(t) = super::assoc::default_type(from_type, to_type) {
                crm.associations.add((from_type, from), (to_type, to), t);
            }
            rep.associations.push(AssociationReport {
                from: from.to_string(),
                to_object: other.name().to_string(),
                to: to.to_string(),
                removed,
            });
            ch.push(Change::Associated { from, to_kind: other, to, removed });
        }
    }
    Ok((rep, ch))
}

//! Associations between records: contacts (`0-1`), deals (`0-3`), calls (`0-48`), and companies
//! (`0-2`, which the simulator keeps no records of: only their ids at the end of edges). Each
//! edge is kept in both directions, as HubSpot does, each with its own association types
//! (HubSpot-defined type ids per direction; user-defined labels as pairs of type ids).
//!
//! An edge is reported (batch read, export) only while both its ends are live records:
//! HubSpot does not answer associations to deleted records. A merge moves the merged records'
//! edges to the record that survives.

use std::collections::BTreeMap;

use rand::Rng;
use rand::rngs::StdRng;

use super::{Crm, ObjectKind};

/// The object type id of companies.
pub const COMPANIES: &str = "0-2";

/// One association type of an edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssocType {
    pub type_id: u32,
    /// `HUBSPOT_DEFINED` or `USER_DEFINED`.
    pub category: &'static str,
    pub label: Option<&'static str>,
}

impl AssocType {
    pub const fn hubspot(type_id: u32, label: Option<&'static str>) -> Self {
        AssocType { type_id, category: "HUBSPOT_DEFINED", label }
    }

    /// The same association seen from the other end.
    pub fn inverse(self) -> Self {
        let type_id = match self.type_id {
            1 => 2,
            2 => 1,
            3 => 4,
            4 => 3,
            5 => 6,
            6 => 5,
            279 => 280,
            280 => 279,
            341 => 342,
            342 => 341,
            181 => 182,
            182 => 181,
            193 => 194,
            194 => 193,
            205 => 206,
            206 => 205,
            DECISION_MAKER_CONTACT_TO_DEAL => DECISION_MAKER_DEAL_TO_CONTACT,
            DECISION_MAKER_DEAL_TO_CONTACT => DECISION_MAKER_CONTACT_TO_DEAL,
            other => other,
        };
        AssocType { type_id, ..self }
    }
}

/// A user-defined label between contacts and deals ("Decision maker"), one type id per direction.
pub const DECISION_MAKER_CONTACT_TO_DEAL: u32 = 1001;
pub const DECISION_MAKER_DEAL_TO_CONTACT: u32 = 1002;
pub const DECISION_MAKER: AssocType =
    AssocType { type_id: DECISION_MAKER_CONTACT_TO_DEAL, category: "USER_DEFINED", label: Some("Decision maker") };

/// HubSpot's unlabeled association type from one object type to another.
pub fn default_type(from: &str, to: &str) -> Option<AssocType> {
    let id = match (from, to) {
        ("0-3", "0-1") => 3,
        ("0-1", "0-3") => 4,
        ("0-1", "0-2") => 279,
        ("0-2", "0-1") => 280,
        ("0-3", "0-2") => 341,
        ("0-2", "0-3") => 342,
        ("0-2", "0-48") => 181,
        ("0-48", "0-2") => 182,
        ("0-1", "0-48") => 193,
        ("0-48", "0-1") => 194,
        ("0-3", "0-48") => 205,
        ("0-48", "0-3") => 206,
        _ => return None,
    };
    Some(AssocType::hubspot(id, None))
}

/// One end of an edge: object type id and record id.
pub type End = (&'static str, u64);

/// Every edge, both directions: `(from type, from id, to type, to id)` -> its types.
#[derive(Debug, Default)]
pub struct Associations {
    pub edges: BTreeMap<(&'static str, u64, &'static str, u64), Vec<AssocType>>,
}

/// The object type id of a type name or id (`contacts`, `0-1`, `companies`...).
pub fn type_id_of(s: &str) -> Option<&'static str> {
    match s {
        "companies" | "company" | "0-2" => Some(COMPANIES),
        other => ObjectKind::parse(other).map(ObjectKind::type_id),
    }
}

impl Associations {
    fn add_one(&mut self, from: End, to: End, t: AssocType) -> bool {
        let types = self.edges.entry((from.0, from.1, to.0, to.1)).or_default();
        if types.iter().any(|x| x.type_id == t.type_id) {
            return false;
        }
        types.push(t);
        types.sort_by_key(|x| x.type_id);
        true
    }

    /// Adds an association type from `a` to `b` and its inverse from `b` to `a`; false when it
    /// was there already.
    pub fn add(&mut self, a: End, b: End, t: AssocType) -> bool {
        let added = self.add_one(a, b, t);
        self.add_one(b, a, t.inverse());
        added
    }

    /// Removes every association between `a` and `b`, both directions; false when there was none.
    pub fn remove(&mut self, a: End, b: End) -> bool {
        let had = self.edges.remove(&(a.0, a.1, b.0, b.1)).is_some();
        self.edges.remove(&(b.0, b.1, a.0, a.1));
        had
    }

    /// The records of type `to` associated with `from`, in id order, with their types.
    pub fn of(&self, from: End, to: &'static str) -> impl Iterator<Item = (u64, &Vec<AssocType>)> {
        self.edges.range((from.0, from.1, to, 0)..=(from.0, from.1, to, u64::MAX)).map(|(k, v)| (k.3, v))
    }

    /// Whether `end` has any association at all.
    pub fn has_any(&self, end: End) -> bool {
        self.edges.range((end.0, end.1, "", 0)..).next().is_some_and(|(k, _)| k.0 == end.0 && k.1 == end.1)
    }

    /// Moves every edge of `old` to `new` (a merge), both directions; an edge between the two
    /// is dropped.
    pub fn move_all(&mut self, old: End, new: End) {
        let keys: Vec<_> = self.edges.keys().filter(|k| (k.0, k.1) == old || (k.2, k.3) == old).copied().collect();
        for key in keys {
            let Some(types) = self.edges.remove(&key) else { continue };
            let from = if (key.0, key.1) == old { new } else { (key.0, key.1) };
            let to = if (key.2, key.3) == old { new } else { (key.2, key.3) };
            if from == to {
                continue;
            }
            for t in types {
                self.add_one(from, to, t);
            }
        }
    }
}

/// Whether an end is a live record (companies always are: the simulator keeps no companies).
pub fn live(crm: &Crm, end: End) -> bool {
    match ObjectKind::parse(end.0) {
        Some(kind) => crm.store(kind).live.contains(&end.1),
        None => end.0 == COMPANIES,
    }
}

/// Seeds associations between the live records (deterministic for a seed): each deal with one
/// or two contacts (some labelled "Decision maker") and half of them with a company (primary),
/// each call with a contact and some with a deal, four contacts in ten with a company (primary).
pub fn seed(crm: &mut Crm, rng: &mut StdRng) {
    let contacts: Vec<u64> = crm.contacts.live.iter().copied().collect();
    let deals: Vec<u64> = crm.deals.live.iter().copied().collect();
    let calls: Vec<u64> = crm.calls.live.iter().copied().collect();
    if contacts.is_empty() {
        return;
    }
    let mut a = Associations::default();
    let company = |rng: &mut StdRng| 9_000_000_001 + rng.random_range(0..200u64);
    for &deal in &deals {
        for n in 0..rng.random_range(1..=2) {
            let contact = contacts[rng.random_range(0..contacts.len())];
            a.add(("0-3", deal), ("0-1", contact), AssocType::hubspot(3, None));
            if n == 0 && rng.random_bool(0.15) {
                a.add(("0-1", contact), ("0-3", deal), DECISION_MAKER);
            }
        }
        if rng.random_bool(0.5) {
            let c = company(rng);
            a.add(("0-3", deal), (COMPANIES, c), AssocType::hubspot(341, None));
            a.add(("0-3", deal), (COMPANIES, c), AssocType::hubspot(5, Some("Primary")));
        }
    }
    for &call in &calls {
        let contact = contacts[rng.random_range(0..contacts.len())];
        a.add(("0-48", call), ("0-1", contact), AssocType::hubspot(194, None));
        if !deals.is_empty() && rng.random_bool(0.3) {
            let deal = deals[rng.random_range(0..deals.len())];
            a.add(("0-48", call), ("0-3", deal), AssocType::hubspot(206, None));
        }
    }
    for &contact in &contacts {
        if rng.random_bool(0.4) {
            let c = company(rng);
            a.add(("0-1", contact), (COMPANIES, c), AssocType::hubspot(279, None));
            a.add(("0-1", contact), (COMPANIES, c), AssocType::hubspot(1, Some("Primary")));
        }
    }
    crm.associations = a;
}

/// NDJSON of every reported edge (both ends live), one line per association type:
/// `fromObjectTypeId`, `fromObjectId`, `toObjectTypeId`, `toObjectId`, `typeId`, `category`,
/// `label`.
pub fn export(crm: &Crm) -> String {
    let mut out = String::new();
    for ((ft, f, tt, t), types) in &crm.associations.edges {
        if !live(crm, (ft, *f)) || !live(crm, (tt, *t)) {
            continue;
        }
        for ty in types {
            let line = serde_json::json!({
                "fromObjectTypeId": ft, "fromObjectId": f.to_string(), "toObjectTypeId": tt,
                "toObjectId": t.to_string(), "typeId": ty.type_id, "category": ty.category, "label": ty.label,
            });
            out.push_str(&line.to_string());
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_and_merges() {
        let mut a = Associations::default();
        assert!(a.add(("0-3", 7), ("0-1", 1), AssocType::hubspot(3, None)));
        assert!(!a.add(("0-3", 7), ("0-1", 1), AssocType::hubspot(3, None)));
        assert_eq!(a.of(("0-1", 1), "0-3").map(|(id, t)| (id, t[0].type_id)).collect::<Vec<_>>(), [(7, 4)]);
        a.move_all(("0-1", 1), ("0-1", 2));
        assert_eq!(a.of(("0-1", 1), "0-3").count(), 0);
        assert_eq!(a.of(("0-3", 7), "0-1").map(|(id, _)| id).collect::<Vec<_>>(), [2]);
        assert!(a.remove(("0-1", 2), ("0-3", 7)));
        assert!(a.edges.is_empty());
    }
}

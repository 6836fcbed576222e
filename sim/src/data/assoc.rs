//! Associations between records, as HubSpot keeps them: every association is stored in both
//! directions, each direction with its own association type ids (HubSpot-defined ones such as
//! contact to deal 4 and deal to contact 3, a primary type for companies, and user-defined
//! labels). Companies exist here only as association ends (their records are not served).
//!
//! An archived record keeps its associations, hidden from reads and the export while it is in
//! the recycle bin (a restore brings them back); a merge moves the merged records' associations
//! to the new record (one primary association per object type kept); a privacy deletion removes
//! them for good.

use std::collections::{BTreeMap, BTreeSet, HashMap};

/// One end of an association: object type id and record id.
pub type End = (&'static str, u64);

/// An association type in one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssocType {
    pub from: &'static str,
    pub to: &'static str,
    pub type_id: u32,
    pub category: &'static str,
    pub label: Option<&'static str>,
    /// The type of the other direction.
    pub inverse: u32,
}

const fn t(from: &'static str, to: &'static str, type_id: u32, label: Option<&'static str>, inverse: u32) -> AssocType {
    let category = match label {
        Some(l) if !matches!(l.as_bytes(), b"Primary") => "USER_DEFINED",
        _ => "HUBSPOT_DEFINED",
    };
    AssocType { from, to, type_id, category, label, inverse }
}

/// Every association type the simulated portal has: HubSpot's own ids between contacts (0-1),
/// companies (0-2), deals (0-3), tickets (0-5) and calls (0-48), a primary type toward companies,
/// and one user-defined label between contacts and deals.
pub const TYPES: &[AssocType] = &[
    t("0-1", "0-3", 4, None, 3),
    t("0-3", "0-1", 3, None, 4),
    t("0-1", "0-3", 101, Some("Decision maker"), 102),
    t("0-3", "0-1", 102, Some("Decision maker"), 101),
    t("0-48", "0-1", 194, None, 193),
    t("0-1", "0-48", 193, None, 194),
    t("0-48", "0-3", 206, None, 205),
    t("0-3", "0-48", 205, None, 206),
    t("0-1", "0-2", 279, None, 280),
    t("0-2", "0-1", 280, None, 279),
    t("0-1", "0-2", 1, Some("Primary"), 2),
    t("0-2", "0-1", 2, Some("Primary"), 1),
    t("0-3", "0-2", 341, None, 342),
    t("0-2", "0-3", 342, None, 341),
    t("0-3", "0-2", 5, Some("Primary"), 6),
    t("0-2", "0-3", 6, Some("Primary"), 5),
    t("0-48", "0-2", 182, None, 181),
    t("0-2", "0-48", 181, None, 182),
    t("0-1", "0-5", 15, None, 16),
    t("0-5", "0-1", 16, None, 15),
];

/// The type with this id.
pub fn type_of(type_id: u32) -> Option<&'static AssocType> {
    TYPES.iter().find(|t| t.type_id == type_id)
}

/// The unlabelled HubSpot-defined type from `from` to `to`.
pub fn default_type(from: &str, to: &str) -> Option<u32> {
    TYPES.iter().find(|t| t.from == from && t.to == to && t.label.is_none()).map(|t| t.type_id)
}

/// An object type in an association path: name, singular or type id.
pub fn object_type(segment: &str) -> Option<&'static str> {
    match segment {
        "contacts" | "contact" | "0-1" => Some("0-1"),
        "companies" | "company" | "0-2" => Some("0-2"),
        "deals" | "deal" | "0-3" => Some("0-3"),
        "tickets" | "ticket" | "0-5" => Some("0-5"),
        "calls" | "call" | "0-48" => Some("0-48"),
        _ => None,
    }
}

/// Lower-case singular name, as in HubSpot's "No deal is associated with contact 1." messages.
pub fn singular(type_id: &str) -> &'static str {
    match type_id {
        "0-1" => "contact",
        "0-2" => "company",
        "0-3" => "deal",
        "0-5" => "ticket",
        "0-48" => "call",
        _ => "object",
    }
}

/// Every association, both directions.
#[derive(Debug, Default)]
pub struct Associations {
    edges: HashMap<End, BTreeMap<End, BTreeSet<u32>>>,
}

impl Associations {
    /// Adds association type `type_id` from `a` to `b` and its inverse from `b` to `a`; false
    /// when it was there already.
    pub fn add(&mut self, a: End, b: End, type_id: u32) -> bool {
        let Some(ty) = type_of(type_id) else { return false };
        let added = self.edges.entry(a).or_default().entry(b).or_default().insert(type_id);
        self.edges.entry(b).or_default().entry(a).or_default().insert(ty.inverse);
        added
    }

    /// Removes the association between `a` and `b` (every type, both directions); the types it
    /// had from `a` to `b`.
    pub fn remove_pair(&mut self, a: End, b: End) -> Vec<u32> {
        let removed = self.edges.get_mut(&a).and_then(|m| m.remove(&b)).map(|s| s.into_iter().collect());
        if let Some(m) = self.edges.get_mut(&b) {
            m.remove(&a);
        }
        removed.unwrap_or_default()
    }

    /// The association types from `a` to `b`.
    pub fn types(&self, a: End, b: End) -> Vec<u32> {
        self.edges.get(&a).and_then(|m| m.get(&b)).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }

    /// The records of type `to` associated with `from`, in id order, with their types.
    pub fn of(&self, from: End, to: &'static str) -> impl Iterator<Item = (u64, &BTreeSet<u32>)> {
        self.edges
            .get(&from)
            .into_iter()
            .flat_map(move |m| m.range((to, 0)..=(to, u64::MAX)).map(|((_, id), types)| (*id, types)))
    }

    /// Every association of `old` moves to `new` (both directions), as a merge does; one
    /// primary association per object type is kept (the one `new` already has, else the first).
    pub fn move_all(&mut self, old: End, new: End) {
        let Some(mine) = self.edges.remove(&old) else { return };
        for (other, types) in mine {
            if let Some(m) = self.edges.get_mut(&other) {
                m.remove(&old);
            }
            if other == new || other == old {
                continue;
            }
            for type_id in types {
                let primary = type_of(type_id).is_some_and(|t| t.label == Some("Primary"));
                if primary && self.has_primary(new, other.0, type_id) {
                    continue;
                }
                self.add(new, other, type_id);
            }
        }
    }

    fn has_primary(&self, from: End, to: &'static str, type_id: u32) -> bool {
        self.of(from, to).any(|(_, types)| types.contains(&type_id))
    }

    /// Removes every association of `end`, for good.
    pub fn remove_all(&mut self, end: End) {
        if let Some(mine) = self.edges.remove(&end) {
            for other in mine.keys() {
                if let Some(m) = self.edges.get_mut(other) {
                    m.remove(&end);
                }
            }
        }
    }

    /// Every (from, to, type), in order.
    pub fn all(&self) -> Vec<(End, End, u32)> {
        let mut out: Vec<(End, End, u32)> = self
            .edges
            .iter()
            .flat_map(|(from, m)| m.iter().flat_map(move |(to, types)| types.iter().map(move |t| (*from, *to, *t))))
            .collect();
        out.sort_unstable();
        out
    }

    /// Associations stored (one per direction and type).
    pub fn len(&self) -> usize {
        self.edges.values().flat_map(|m| m.values()).map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_with_their_own_types() {
        let mut a = Associations::default();
        assert!(a.add(("0-1", 1), ("0-3", 9), 4));
        assert!(a.add(("0-1", 1), ("0-3", 9), 101));
        assert_eq!(a.types(("0-3", 9), ("0-1", 1)), [3, 102]);
        assert_eq!(a.of(("0-1", 1), "0-3").map(|(id, _)| id).collect::<Vec<_>>(), [9]);
        assert_eq!(a.remove_pair(("0-3", 9), ("0-1", 1)), [3, 102]);
        assert!(a.is_empty());
    }

    #[test]
    fn a_merge_moves_associations_and_keeps_one_primary() {
        let mut a = Associations::default();
        a.add(("0-1", 1), ("0-2", 50), 1);
        a.add(("0-1", 1), ("0-2", 50), 279);
        a.add(("0-1", 2), ("0-2", 51), 1);
        a.add(("0-1", 2), ("0-3", 9), 4);
        a.move_all(("0-1", 1), ("0-1", 3));
        a.move_all(("0-1", 2), ("0-1", 3));
        assert_eq!(a.types(("0-1", 3), ("0-2", 50)), [1, 279]);
        assert_eq!(a.types(("0-1", 3), ("0-2", 51)), Vec::<u32>::new(), "the second primary is dropped");
        assert_eq!(a.types(("0-3", 9), ("0-1", 3)), [3]);
        assert!(a.types(("0-3", 9), ("0-1", 2)).is_empty());
    }
}

//! The object types associations are kept toward, and the HubSpot-defined association types
//! between them (docs/hubspot.md §7): what a webhook that names no type id (the legacy
//! `associationType: CONTACT_TO_DEAL` form) stands for, and which type is a pair's unlabelled one
//! (removing it removes the association, every label with it).

use crate::kind::ObjectKind;

/// An object type whose associations from contacts, deals and calls are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The name in HubSpot's paths.
    pub name: &'static str,
    /// HubSpot's object type id, as stored in `associations.to_type`.
    pub type_id: &'static str,
}

/// Contacts, deals and calls with each other, and companies (their records are not copied; their
/// ids are kept so they can be joined later). Each costs one request per 100 records of each
/// other kind in a full pass.
pub const TARGETS: [Target; 4] = [
    Target { name: "contacts", type_id: "0-1" },
    Target { name: "deals", type_id: "0-3" },
    Target { name: "calls", type_id: "0-48" },
    Target { name: "companies", type_id: "0-2" },
];

/// The types associations of `kind` are read toward: every target but `kind` itself (edges
/// between two records of one type are not read); none for owners.
pub fn targets_of(kind: ObjectKind) -> Vec<Target> {
    match kind.type_id() {
        Some(own) => TARGETS.into_iter().filter(|t| t.type_id != own).collect(),
        None => Vec::new(),
    }
}

/// Whether edges from `from_type` toward `to_type` are kept (a webhook about any other pair is
/// not stored: no read would ever correct it).
pub fn kept(from_type: &str, to_type: &str) -> bool {
    ObjectKind::from_type_id(from_type).is_some_and(|kind| targets_of(kind).iter().any(|t| t.type_id == to_type))
}

/// `HUBSPOT_DEFINED`: the category of HubSpot's own association types.
pub const HUBSPOT_DEFINED: &str = "HUBSPOT_DEFINED";
/// The label HubSpot gives its primary association types.
pub const PRIMARY: &str = "Primary";

/// HubSpot-defined association type ids: (from, to, unlabelled type, primary type).
const DEFINED: [(&str, &str, i32, Option<i32>); 22] = [
    ("0-1", "0-2", 279, Some(1)),
    ("0-2", "0-1", 280, Some(2)),
    ("0-3", "0-1", 3, None),
    ("0-1", "0-3", 4, None),
    ("0-3", "0-2", 341, Some(5)),
    ("0-2", "0-3", 342, Some(6)),
    ("0-1", "0-5", 15, None),
    ("0-5", "0-1", 16, None),
    ("0-3", "0-5", 27, None),
    ("0-5", "0-3", 28, None),
    ("0-5", "0-2", 339, Some(26)),
    ("0-2", "0-5", 340, Some(25)),
    ("0-48", "0-1", 194, None),
    ("0-1", "0-48", 193, None),
    ("0-48", "0-3", 206, None),
    ("0-3", "0-48", 205, None),
    ("0-48", "0-2", 182, None),
    ("0-2", "0-48", 181, None),
    ("0-48", "0-5", 220, None),
    ("0-5", "0-48", 219, None),
    ("0-3", "0-8", 19, None),
    ("0-8", "0-3", 20, None),
];

/// The unlabelled HubSpot-defined type of edges `from_type` -> `to_type`, if known.
pub fn default_type(from_type: &str, to_type: &str) -> Option<i32> {
    DEFINED.iter().find(|(f, t, _, _)| *f == from_type && *t == to_type).map(|d| d.2)
}

/// The primary type of edges `from_type` -> `to_type` (companies only), if there is one.
pub fn primary_type(from_type: &str, to_type: &str) -> Option<i32> {
    DEFINED.iter().find(|(f, t, _, _)| *f == from_type && *t == to_type).and_then(|d| d.3)
}

/// Whether an association type is a primary one.
pub fn is_primary(category: &str, label: Option<&str>) -> bool {
    category == HUBSPOT_DEFINED && label == Some(PRIMARY)
}

/// The object type id a legacy `associationType` end names (`CONTACT` in `CONTACT_TO_DEAL`).
pub fn legacy_type(name: &str) -> Option<&'static str> {
    match name {
        "CONTACT" => Some("0-1"),
        "COMPANY" => Some("0-2"),
        "DEAL" => Some("0-3"),
        "TICKET" => Some("0-5"),
        "LINE_ITEM" => Some("0-8"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_toward_the_others_and_companies() {
        let names = |k| targets_of(k).iter().map(|t| t.name).collect::<Vec<_>>();
        assert_eq!(names(ObjectKind::Contacts), ["deals", "calls", "companies"]);
        assert_eq!(names(ObjectKind::Calls), ["contacts", "deals", "companies"]);
        assert!(targets_of(ObjectKind::Owners).is_empty());
        assert!(kept("0-3", "0-1") && kept("0-48", "0-2"));
        assert!(!kept("0-2", "0-1"), "nothing is read from companies");
        assert!(!kept("0-1", "0-1") && !kept("0-1", "0-5"));
    }

    #[test]
    fn each_direction_has_its_own_defined_type() {
        assert_eq!((default_type("0-1", "0-3"), default_type("0-3", "0-1")), (Some(4), Some(3)));
        assert_eq!((default_type("0-48", "0-1"), default_type("0-1", "0-48")), (Some(194), Some(193)));
        assert_eq!((default_type("0-1", "0-2"), primary_type("0-1", "0-2")), (Some(279), Some(1)));
        assert_eq!(primary_type("0-1", "0-3"), None);
        assert!(is_primary("HUBSPOT_DEFINED", Some("Primary")) && !is_primary("USER_DEFINED", Some("Primary")));
        assert_eq!(legacy_type("DEAL"), Some("0-3"));
        for (from, to, default, _) in DEFINED {
            assert!(DEFINED.iter().any(|(f, t, _, _)| *f == to && *t == from), "{from}->{to} has a reverse");
            assert!(DEFINED.iter().filter(|d| d.2 == default).count() == 1, "{default} is one direction's");
        }
    }
}

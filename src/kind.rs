//! The object kinds hubspot-sync keeps a copy of, and their names: in the CLI and the API, in
//! HubSpot (paths and object type ids), and in PostgreSQL. A leaf: it imports nothing of ours.

use std::fmt;
use std::str::FromStr;

/// A kind of HubSpot object that hubspot-sync keeps a copy of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Contacts,
    Deals,
    Calls,
    Owners,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 4] = [Self::Contacts, Self::Deals, Self::Calls, Self::Owners];

    /// The CRM record kinds: webhooks, batch reads and search exist for these (not for owners).
    pub const SYNCED_RECORDS: [ObjectKind; 3] = [Self::Contacts, Self::Deals, Self::Calls];

    /// HubSpot's object type id (`objectTypeId` in webhooks, association endpoints); owners are
    /// not a CRM object type.
    pub fn type_id(self) -> Option<&'static str> {
        match self {
            Self::Contacts => Some("0-1"),
            Self::Deals => Some("0-3"),
            Self::Calls => Some("0-48"),
            Self::Owners => None,
        }
    }

    /// The kind with HubSpot object type id `id`, when it is one we keep.
    pub fn from_type_id(id: &str) -> Option<Self> {
        Self::SYNCED_RECORDS.into_iter().find(|k| k.type_id() == Some(id))
    }

    /// The object type in HubSpot's CRM paths (`/crm/v3/objects/{type}`).
    pub fn hubspot_name(self) -> &'static str {
        self.as_str()
    }

    /// The name used in the CLI, in `sync_logs.sync_type` and in the API paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Deals => "deals",
            Self::Calls => "calls",
            Self::Owners => "owners",
        }
    }

    /// The property HubSpot's search filters on for "last modified" (docs/hubspot.md §3.4):
    /// contacts use `lastmodifieddate`, every other object `hs_lastmodifieddate`.
    pub fn lastmod_property(self) -> &'static str {
        match self {
            Self::Contacts => "lastmodifieddate",
            _ => "hs_lastmodifieddate",
        }
    }

    /// The properties the copy itself reads (its own columns, merges, watermarks): always asked
    /// of HubSpot, whatever `HUBSPOT_SYNC_CONFIG`'s include or exclude list says.
    pub fn core_properties(self) -> &'static [&'static str] {
        match self {
            Self::Contacts => &[
                "email",
                "firstname",
                "lastname",
                "phone",
                "hubspot_owner_id",
                "lifecyclestage",
                "hs_lead_status",
                "createdate",
                "lastmodifieddate",
                "hs_lastmodifieddate",
                "hs_object_id",
                "hs_merged_object_ids",
            ],
            Self::Deals => &[
                "dealname",
                "amount",
                "dealstage",
                "pipeline",
                "closedate",
                "hubspot_owner_id",
                "hs_is_closed",
                "hs_is_closed_won",
                "createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
                "hs_merged_object_ids",
            ],
            Self::Calls => &[
                "hs_timestamp",
                "hs_call_title",
                "hs_call_direction",
                "hs_call_disposition",
                "hs_call_status",
                "hs_call_duration",
                "hubspot_owner_id",
                "hs_createdate",
                "hs_lastmodifieddate",
                "hs_object_id",
            ],
            Self::Owners => &[],
        }
    }

    /// The PostgreSQL table holding this kind (owners live in `staff`).
    pub fn table(self) -> &'static str {
        match self {
            Self::Owners => "staff",
            other => other.as_str(),
        }
    }
}

/// HubSpot object type ids by the names legacy association events use (`CONTACT` in
/// `CONTACT_TO_DEAL`); `None` for a name we have no type id for.
pub fn legacy_type_id(name: &str) -> Option<&'static str> {
    match name {
        "CONTACT" => Some("0-1"),
        "COMPANY" => Some("0-2"),
        "DEAL" => Some("0-3"),
        "TICKET" => Some("0-5"),
        "LINE_ITEM" => Some("0-8"),
        _ => None,
    }
}

/// HubSpot's own (`HUBSPOT_DEFINED`) association type id from `from` to `to` (object type
/// ids), the unlabeled one, or the primary one where HubSpot has it (to companies): legacy
/// association events name no type id, so theirs is this one.
pub fn default_association_type(from: &str, to: &str, primary: bool) -> Option<i32> {
    Some(match (from, to, primary) {
        ("0-1", "0-2", true) => 1,
        ("0-2", "0-1", true) => 2,
        ("0-3", "0-1", _) => 3,
        ("0-1", "0-3", _) => 4,
        ("0-3", "0-2", true) => 5,
        ("0-2", "0-3", true) => 6,
        ("0-1", "0-2", false) => 279,
        ("0-2", "0-1", false) => 280,
        ("0-3", "0-2", false) => 341,
        ("0-2", "0-3", false) => 342,
        ("0-2", "0-48", _) => 181,
        ("0-48", "0-2", _) => 182,
        ("0-1", "0-48", _) => 193,
        ("0-48", "0-1", _) => 194,
        ("0-3", "0-48", _) => 205,
        ("0-48", "0-3", _) => 206,
        _ => return None,
    })
}

/// The object type id of companies: edges to them are kept (by type id) though companies are not.
pub const COMPANIES_TYPE_ID: &str = "0-2";

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An object name that is none of `contacts`, `deals`, `calls`, `owners`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown object '{0}': expected contacts, deals, calls or owners")]
pub struct UnknownObject(pub String);

impl FromStr for ObjectKind {
    type Err = UnknownObject;
    fn from_str(raw: &str) -> Result<Self, UnknownObject> {
        Self::ALL.into_iter().find(|k| k.as_str() == raw).ok_or_else(|| UnknownObject(raw.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in ObjectKind::ALL {
            assert_eq!(kind.as_str().parse::<ObjectKind>(), Ok(kind));
        }
        assert_eq!(ObjectKind::Owners.table(), "staff");
        assert!("companies".parse::<ObjectKind>().is_err());
        assert_eq!(ObjectKind::Contacts.lastmod_property(), "lastmodifieddate");
        assert_eq!(ObjectKind::Calls.lastmod_property(), "hs_lastmodifieddate");
    }

    #[test]
    fn type_ids_round_trip() {
        for kind in ObjectKind::SYNCED_RECORDS {
            let id = kind.type_id().unwrap_or_default();
            assert_eq!(ObjectKind::from_type_id(id), Some(kind));
        }
        assert_eq!(ObjectKind::Owners.type_id(), None);
        assert_eq!(ObjectKind::from_type_id("0-2"), None);
    }
}

//! What we sync: the four HubSpot object kinds and their names in HubSpot, in the CLI and in
//! PostgreSQL. The mapping of HubSpot records to rows arrives with the HubSpot client.

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

    /// The name used in the CLI, in `sync_logs.sync_type` and in the API paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Deals => "deals",
            Self::Calls => "calls",
            Self::Owners => "owners",
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
    }
}

//! Every HubSpot URL the client calls, built in one place for both path families:
//! `v3` (`/crm/v3/objects/contacts`) and dated versions (`/crm/objects/2026-03/contacts`).

use url::Url;

use crate::config::ApiVersion;
use crate::kind::ObjectKind;

/// Builds URLs from the base URL and API version in the settings.
#[derive(Clone, Debug)]
pub struct Paths {
    base: String,
    version: ApiVersion,
}

impl Paths {
    pub fn new(base: &Url, version: ApiVersion) -> Self {
        Self { base: base.as_str().trim_end_matches('/').to_owned(), version }
    }

    /// `/crm/{family}/...` where the family is `v3/objects` or `objects/2026-03`.
    fn crm(&self, family: &str) -> String {
        match &self.version {
            ApiVersion::V3 => format!("{}/crm/v3/{family}", self.base),
            ApiVersion::Dated(v) => format!("{}/crm/{family}/{v}", self.base),
        }
    }

    /// The HubSpot object type in paths; owners are not a CRM object type here.
    fn object_type(kind: ObjectKind) -> &'static str {
        kind.as_str()
    }

    /// `GET` list of one object type.
    pub fn objects(&self, kind: ObjectKind) -> String {
        format!("{}/{}", self.crm("objects"), Self::object_type(kind))
    }

    /// `POST` batch read.
    pub fn batch_read(&self, kind: ObjectKind) -> String {
        format!("{}/batch/read", self.objects(kind))
    }

    /// `POST` search.
    pub fn search(&self, kind: ObjectKind) -> String {
        format!("{}/search", self.objects(kind))
    }

    /// `GET` property definitions of one object type.
    pub fn properties(&self, kind: ObjectKind) -> String {
        format!("{}/{}", self.crm("properties"), Self::object_type(kind))
    }

    /// `POST` association batch read from one object type to another (names or type ids):
    /// `/crm/v4/associations/...` with `v3`, `/crm/associations/{version}/...` when dated.
    pub fn associations_batch_read(&self, from: &str, to: &str) -> String {
        match &self.version {
            ApiVersion::V3 => format!("{}/crm/v4/associations/{from}/{to}/batch/read", self.base),
            ApiVersion::Dated(v) => format!("{}/crm/associations/{v}/{from}/{to}/batch/read", self.base),
        }
    }

    /// `GET` owners list.
    pub fn owners(&self) -> String {
        self.crm("owners")
    }

    /// `GET` one owner.
    pub fn owner(&self, id: &str) -> String {
        format!("{}/{id}", self.owners())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_path_families() {
        let base = Url::parse("https://api.hubapi.com/").unwrap();
        let v3 = Paths::new(&base, ApiVersion::V3);
        assert_eq!(v3.objects(ObjectKind::Contacts), "https://api.hubapi.com/crm/v3/objects/contacts");
        assert_eq!(v3.batch_read(ObjectKind::Deals), "https://api.hubapi.com/crm/v3/objects/deals/batch/read");
        assert_eq!(v3.search(ObjectKind::Calls), "https://api.hubapi.com/crm/v3/objects/calls/search");
        assert_eq!(v3.properties(ObjectKind::Calls), "https://api.hubapi.com/crm/v3/properties/calls");
        assert_eq!(v3.owner("7"), "https://api.hubapi.com/crm/v3/owners/7");
        let dated = Paths::new(&base, ApiVersion::Dated("2026-03".into()));
        assert_eq!(dated.objects(ObjectKind::Contacts), "https://api.hubapi.com/crm/objects/2026-03/contacts");
        assert_eq!(dated.properties(ObjectKind::Deals), "https://api.hubapi.com/crm/properties/2026-03/deals");
        assert_eq!(dated.owners(), "https://api.hubapi.com/crm/owners/2026-03");
        assert_eq!(
            v3.associations_batch_read("0-1", "0-3"),
            "https://api.hubapi.com/crm/v4/associations/0-1/0-3/batch/read"
        );
        assert_eq!(
            dated.associations_batch_read("contacts", "deals"),
            "https://api.hubapi.com/crm/associations/2026-03/contacts/deals/batch/read"
        );
    }
}

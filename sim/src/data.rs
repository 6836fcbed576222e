//! The simulated CRM: object kinds, records, property schemas and the in-memory store.
//!
//! Records keep their property values pre-serialised as JSON string literals (quotes and escapes
//! included), indexed by the position of the property in the object's schema, so responses are
//! assembled by copying bytes. The last-modified, create-date and `hs_object_id` properties are
//! derived from the record's own fields, so they can never disagree with `updatedAt`/`createdAt`.

pub mod assoc;
pub mod churn;
pub mod json;
pub mod owners;
pub mod schema;
pub mod seed;
pub mod store;

pub use schema::PropDef;
pub use store::{Crm, ObjectStore, Owner};

/// The CRM object types the simulator serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Contacts,
    Deals,
    Calls,
}

/// Where a property's value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Derived {
    /// `hs_object_id`: the record id.
    Id,
    /// `createdate` / `hs_createdate`: `createdAt`.
    Created,
    /// `lastmodifieddate` / `hs_lastmodifieddate`: `updatedAt`.
    Updated,
}

impl ObjectKind {
    pub const ALL: [ObjectKind; 3] = [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls];

    /// Parses a path segment: the plural name or the object type id.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "contacts" | "contact" | "0-1" => Some(Self::Contacts),
            "deals" | "deal" | "0-3" => Some(Self::Deals),
            "calls" | "call" | "0-48" => Some(Self::Calls),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Deals => "deals",
            Self::Calls => "calls",
        }
    }

    pub fn type_id(self) -> &'static str {
        match self {
            Self::Contacts => "0-1",
            Self::Deals => "0-3",
            Self::Calls => "0-48",
        }
    }

    /// Upper-case singular, as in HubSpot's "Could not get some CONTACT objects" messages.
    pub fn upper(self) -> &'static str {
        match self {
            Self::Contacts => "CONTACT",
            Self::Deals => "DEAL",
            Self::Calls => "CALL",
        }
    }

    /// The property the search docs use as last-modified for this type (docs/hubspot.md §3.4).
    pub fn lastmod_prop(self) -> &'static str {
        match self {
            Self::Contacts => "lastmodifieddate",
            Self::Deals | Self::Calls => "hs_lastmodifieddate",
        }
    }

    /// Properties returned when a request names none (docs/hubspot.md §3.4).
    pub fn default_props(self) -> &'static [&'static str] {
        match self {
            Self::Contacts => &["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
            Self::Deals => &[
                "amount",
                "closedate",
                "createdate",
                "dealname",
                "dealstage",
                "hs_lastmodifieddate",
                "hs_object_id",
                "pipeline",
            ],
            Self::Calls => &["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        }
    }

    pub fn schema(self) -> &'static [PropDef] {
        schema::schema(self)
    }

    /// Index of a property in this kind's schema.
    pub fn prop_index(self, name: &str) -> Option<usize> {
        self.schema().iter().position(|p| p.name == name)
    }

    /// Whether a property is served from the record's id or timestamps (and so is indexed).
    pub fn derived(self, name: &str) -> Option<Derived> {
        match name {
            "hs_object_id" => Some(Derived::Id),
            "createdate" | "hs_createdate" => Some(Derived::Created),
            "lastmodifieddate" | "hs_lastmodifieddate" => Some(Derived::Updated),
            _ => None,
        }
    }
}

/// One CRM record.
#[derive(Debug, Clone)]
pub struct Record {
    pub id: u64,
    pub created_ms: i64,
    pub updated_ms: i64,
    /// Set while the record is in the recycle bin.
    pub archived_ms: Option<i64>,
    /// Set when the record was merged away: the id it now resolves to.
    pub merged_into: Option<u64>,
    /// JSON string literals, by schema index; `None` when the property has no value.
    pub values: Vec<Option<Box<str>>>,
}

impl Record {
    /// The raw (unescaped) value of a stored property.
    pub fn raw(&self, idx: usize) -> Option<String> {
        let lit = self.values.get(idx)?.as_deref()?;
        serde_json::from_str::<String>(lit).ok()
    }

    /// Sets a stored property from a raw value.
    pub fn set_raw(&mut self, idx: usize, value: Option<&str>) {
        if let Some(slot) = self.values.get_mut(idx) {
            *slot = value.map(json::lit);
        }
    }
}

/// Formats epoch milliseconds as HubSpot does: RFC 3339, UTC, milliseconds, `Z`.
pub fn iso(ms: i64) -> String {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        None => String::from("1970-01-01T00:00:00.000Z"),
    }
}

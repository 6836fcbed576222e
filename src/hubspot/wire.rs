//! HubSpot's JSON shapes, read leniently: unknown fields are ignored, optional parts default, and
//! records stay `serde_json::Value` until [`super::record`] decodes them one by one, so a single
//! odd record never fails a whole page.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A page of the list, search and owners endpoints.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Page {
    pub results: Vec<Value>,
    pub paging: Option<Paging>,
    /// Search only: how many records match.
    pub total: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Paging {
    pub next: Option<NextPage>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NextPage {
    /// Documented as a string; accepted as a number too.
    pub after: Value,
}

impl Page {
    /// The opaque cursor of the next page, if there is one.
    pub fn next_after(&self) -> Option<String> {
        match &self.paging.as_ref()?.next.as_ref()?.after {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        }
    }
}

/// The answer of a batch read: 200 (all found) or 207 (some errors).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct BatchResponse {
    pub results: Vec<Value>,
    pub errors: Vec<StandardError>,
}

/// One entry of a 207's `errors`.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct StandardError {
    pub category: Option<String>,
    pub message: Option<String>,
    pub context: Option<Value>,
}

impl StandardError {
    /// The ids named in `context.ids` (or `context.id`).
    pub fn ids(&self) -> Vec<String> {
        let Some(context) = &self.context else { return Vec::new() };
        ["ids", "id"]
            .iter()
            .filter_map(|key| context.get(key).and_then(Value::as_array))
            .flatten()
            .filter_map(|v| match v {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            })
            .collect()
    }

    pub fn is_not_found(&self) -> bool {
        self.category.as_deref() == Some("OBJECT_NOT_FOUND")
    }
}

/// `POST .../batch/read` body. `propertiesWithHistory` is required by the spec, so sent empty.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReadRequest<'a> {
    pub properties: &'a [String],
    pub properties_with_history: [&'a str; 0],
    pub inputs: Vec<IdInput<'a>>,
}

#[derive(Debug, Serialize)]
pub struct IdInput<'a> {
    pub id: &'a str,
}

/// `POST .../search` body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchRequest<'a> {
    pub filter_groups: Vec<FilterGroup>,
    pub sorts: Vec<SearchSort>,
    pub properties: &'a [String],
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct FilterGroup {
    pub filters: Vec<Filter>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_value: Option<String>,
    /// For `IN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SearchSort {
    pub property_name: String,
    pub direction: &'static str,
}

/// `GET /crm/v3/properties/{type}`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct PropertiesResponse {
    pub results: Vec<PropertyDefinition>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct PropertyDefinition {
    pub name: String,
    pub archived: bool,
    #[serde(rename = "type")]
    pub property_type: String,
    pub field_type: String,
    /// `true` on HubSpot's own properties; absent or false on the portal's custom ones.
    pub hubspot_defined: Option<bool>,
}

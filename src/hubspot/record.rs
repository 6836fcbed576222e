//! One HubSpot record as the rest of the crate sees it, decoded leniently from the wire: every
//! property becomes `Option<String>` (numbers and booleans sent unquoted are turned into their
//! text), and times are read as RFC 3339, epoch milliseconds or a bare date.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use serde_json::Value;

/// A CRM record (or an owner, whose fields are carried as properties).
#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub id: String,
    pub properties: BTreeMap<String, Option<String>>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub archived: bool,
}

impl Record {
    /// A property's value, `None` when absent or null.
    pub fn prop(&self, name: &str) -> Option<&str> {
        self.properties.get(name).and_then(|v| v.as_deref())
    }
}

/// A record that could not be decoded: its id when it had one, and why.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct InvalidRecord {
    pub id: Option<String>,
    pub reason: String,
}

/// Parses HubSpot's time formats: RFC 3339 (`2024-01-17T19:55:04.281Z`), epoch milliseconds
/// (`1705521304281`) or a date (`2024-01-17`, midnight UTC). Anything else is `None`.
pub fn parse_time(raw: &str) -> Option<DateTime<Utc>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    if raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw.parse::<i64>().ok().and_then(DateTime::from_timestamp_millis);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Some(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(raw, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc())
}

/// A JSON scalar as text: strings as they are (moved, not copied), numbers and booleans printed,
/// null as `None`.
fn into_text(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    }
}

/// [`into_text`] of a borrowed value.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn id_text(value: &Value) -> Option<String> {
    text(value).filter(|s| !s.trim().is_empty())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireObject {
    #[serde(default)]
    id: Value,
    #[serde(default)]
    properties: BTreeMap<String, Value>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    updated_at: Option<String>,
    #[serde(default)]
    archived: Option<bool>,
}

/// The last-modified properties, used when `updatedAt` is missing.
const LASTMOD_PROPS: [&str; 2] = ["hs_lastmodifieddate", "lastmodifieddate"];

/// Decodes one `SimplePublicObject`.
pub fn decode_object(value: Value) -> Result<Record, InvalidRecord> {
    let raw_id = value.get("id").and_then(id_text);
    let invalid = |reason: String| InvalidRecord { id: raw_id.clone(), reason };
    let wire: WireObject = serde_json::from_value(value).map_err(|e| invalid(format!("not a CRM object: {e}")))?;
    let id = id_text(&wire.id).ok_or_else(|| invalid("no id".into()))?;
    let properties: BTreeMap<String, Option<String>> =
        wire.properties.into_iter().map(|(k, v)| (k, into_text(v))).collect();
    let updated_at = wire
        .updated_at
        .as_deref()
        .and_then(parse_time)
        .or_else(|| LASTMOD_PROPS.iter().find_map(|p| properties.get(*p)?.as_deref().and_then(parse_time)))
        .ok_or_else(|| invalid("no readable updatedAt".into()))?;
    Ok(Record {
        id,
        created_at: wire.created_at.as_deref().and_then(parse_time),
        updated_at,
        archived: wire.archived.unwrap_or(false),
        properties,
    })
}

/// The owner fields kept as properties of an owner [`Record`].
pub const OWNER_FIELDS: [&str; 6] = ["email", "firstName", "lastName", "userId", "userIdIncludingInactive", "type"];

/// Decodes one `PublicOwner`; its fields become properties named as in [`OWNER_FIELDS`].
pub fn decode_owner(value: Value) -> Result<Record, InvalidRecord> {
    let id = value.get("id").and_then(id_text);
    let Some(id) = id else {
        return Err(InvalidRecord { id: None, reason: "owner without id".into() });
    };
    let properties: BTreeMap<String, Option<String>> =
        OWNER_FIELDS.iter().map(|f| ((*f).to_owned(), value.get(*f).and_then(text))).collect();
    let time = |key: &str| value.get(key).and_then(Value::as_str).and_then(parse_time);
    let created_at = time("createdAt");
    Ok(Record {
        id,
        properties,
        created_at,
        // Owners' updatedAt is optional in practice; the creation time (or now) stands in.
        updated_at: time("updatedAt").or(created_at).unwrap_or_else(Utc::now),
        archived: value.get("archived").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Decodes a page of objects (or owners), keeping what could not be decoded apart.
pub fn decode_all(
    values: Vec<Value>,
    decode: fn(Value) -> Result<Record, InvalidRecord>,
) -> (Vec<Record>, Vec<InvalidRecord>) {
    let mut records = Vec::with_capacity(values.len());
    let mut invalid = Vec::new();
    for value in values {
        match decode(value) {
            Ok(r) => records.push(r),
            Err(e) => invalid.push(e),
        }
    }
    (records, invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn times_in_every_format() {
        let t = Utc.with_ymd_and_hms(2024, 1, 17, 19, 55, 4).unwrap() + chrono::Duration::milliseconds(281);
        assert_eq!(parse_time("2024-01-17T19:55:04.281Z"), Some(t));
        assert_eq!(parse_time("1705521304281"), Some(t));
        assert_eq!(parse_time("2024-01-17"), Some(Utc.with_ymd_and_hms(2024, 1, 17, 0, 0, 0).unwrap()));
        assert_eq!(parse_time(""), None);
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn quirky_objects_decode() {
        let r = decode_object(json!({
            "id": 512, "properties": {"amount": 12.5, "hs_is_closed": true, "dealname": null, "x": "y"},
            "createdAt": "2024-01-17T19:55:04.281Z", "updatedAt": "2024-01-18T00:00:00Z",
            "archived": false, "somethingNew": {"a": 1}
        }))
        .unwrap();
        assert_eq!(r.id, "512");
        assert_eq!(r.prop("amount"), Some("12.5"));
        assert_eq!(r.prop("hs_is_closed"), Some("true"));
        assert_eq!(r.properties.get("dealname"), Some(&None));
        assert!(!r.archived);
    }

    #[test]
    fn missing_updated_at_falls_back_or_fails() {
        let r = decode_object(json!({"id": "1", "properties": {"hs_lastmodifieddate": "1705521304281"}})).unwrap();
        assert_eq!(r.updated_at.timestamp_millis(), 1705521304281);
        let bad = decode_object(json!({"id": "2", "properties": {}})).unwrap_err();
        assert_eq!(bad.id.as_deref(), Some("2"));
        assert!(decode_object(json!({"properties": {}})).is_err());
        assert!(decode_object(json!("not an object")).is_err());
    }

    #[test]
    fn owners_keep_their_fields() {
        let r = decode_owner(json!({
            "id": "77", "email": "a@example.com", "firstName": "Ann", "lastName": "Lee", "userId": null,
            "userIdIncludingInactive": 9, "createdAt": "2020-01-01T00:00:00Z", "archived": true
        }))
        .unwrap();
        assert_eq!(r.id, "77");
        assert_eq!(r.prop("userIdIncludingInactive"), Some("9"));
        assert_eq!(r.prop("userId"), None);
        assert!(r.archived);
        assert_eq!(r.updated_at, r.created_at.unwrap());
    }
}

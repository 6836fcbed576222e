//! Reading typed values out of HubSpot's all-strings properties, tolerating type lies: a value
//! that does not parse gives `None` for the typed column (the raw text stays in `properties`).

use chrono::{DateTime, Utc};

use crate::hubspot::{Record, parse_time};

/// A text property; empty or blank text counts as no value.
pub fn text(record: &Record, name: &str) -> Option<String> {
    record.prop(name).filter(|v| !v.trim().is_empty()).map(str::to_owned)
}

/// A datetime property (RFC 3339, epoch ms or a date).
pub fn time(record: &Record, name: &str) -> Option<DateTime<Utc>> {
    record.prop(name).and_then(parse_time)
}

/// An integer property; `"1500"` and `"1500.0"` read as 1500, anything else as `None`.
pub fn integer(record: &Record, name: &str) -> Option<i64> {
    let raw = record.prop(name)?.trim();
    if let Ok(n) = raw.parse::<i64>() {
        return Some(n);
    }
    let f = raw.parse::<f64>().ok().filter(|f| f.is_finite() && f.fract() == 0.0)?;
    (f.abs() < 9.0e15).then_some(f as i64)
}

/// A boolean property (`"true"`/`"false"`, any case).
pub fn boolean(record: &Record, name: &str) -> Option<bool> {
    match record.prop(name)?.trim().to_ascii_lowercase().as_str() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// Every property as a JSON object (nulls kept), for the `properties` column.
pub fn properties_json(record: &Record) -> serde_json::Value {
    serde_json::Value::Object(
        record
            .properties
            .iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map_or(serde_json::Value::Null, |s| s.as_str().into())))
            .collect(),
    )
}

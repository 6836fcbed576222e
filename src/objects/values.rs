//! Reading typed values out of HubSpot's all-strings properties, tolerating type lies: a value
//! that does not parse gives `None` for the typed column (the raw text stays in `properties`).
//!
//! Values PostgreSQL cannot hold are made storable here, so one odd record never fails a batch:
//! - NUL (`U+0000`) is refused by `text` and by `jsonb`. Typed text columns drop it; in
//!   `properties` each NUL becomes the six characters `\u0000` (backslash, `u`, four zeros), so
//!   the raw value is recoverable (replace that text by NUL). See [`NUL_ESCAPE`].
//! - A time outside PostgreSQL's `timestamptz` range (before 4713 BC; chrono cannot read years
//!   past 262143, below PostgreSQL's 294276 AD limit) gives `None` for the typed column; the
//!   raw string stays in `properties`.

use chrono::{DateTime, NaiveDate, Utc};

use crate::hubspot::{Record, parse_time};

/// What a NUL character becomes inside `properties` (jsonb rejects `\u0000`).
pub const NUL_ESCAPE: &str = "\\u0000";

/// Text as a typed column can hold it: NUL characters dropped.
pub fn strip_nul(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.contains('\0') { raw.replace('\0', "").into() } else { raw.into() }
}

/// Text as `properties` (jsonb) can hold it: each NUL written as [`NUL_ESCAPE`].
pub fn escape_nul(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.contains('\0') { raw.replace('\0', NUL_ESCAPE).into() } else { raw.into() }
}

/// A time PostgreSQL can store (`timestamptz` starts at 4714-11-24 BC), else `None`.
pub fn storable(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let earliest = NaiveDate::from_ymd_opt(-4712, 1, 1)?.and_hms_opt(0, 0, 0)?.and_utc();
    (t >= earliest).then_some(t)
}

/// A text property; empty or blank text counts as no value; NUL characters are dropped.
pub fn text(record: &Record, name: &str) -> Option<String> {
    record.prop(name).map(strip_nul).filter(|v| !v.trim().is_empty()).map(|v| v.into_owned())
}

/// A datetime property (RFC 3339, epoch ms or a date) that PostgreSQL can store.
pub fn time(record: &Record, name: &str) -> Option<DateTime<Utc>> {
    record.prop(name).and_then(parse_time).and_then(storable)
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

/// Every property as a JSON object (nulls kept, NUL escaped), for the `properties` column.
pub fn properties_json(record: &Record) -> serde_json::Value {
    serde_json::Value::Object(
        record
            .properties
            .iter()
            .map(|(k, v)| {
                let value = v.as_ref().map_or(serde_json::Value::Null, |s| escape_nul(s).into_owned().into());
                (escape_nul(k).into_owned(), value)
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(props: &[(&str, &str)]) -> Record {
        Record {
            id: "1".into(),
            properties: props.iter().map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned()))).collect(),
            created_at: None,
            updated_at: Utc::now(),
            archived: false,
        }
    }

    #[test]
    fn nul_is_dropped_from_columns_and_escaped_in_properties() {
        let r = record(&[("firstname", "An\0n"), ("lastname", "\0")]);
        assert_eq!(text(&r, "firstname").as_deref(), Some("Ann"));
        assert_eq!(text(&r, "lastname"), None);
        let props = properties_json(&r);
        assert_eq!(props["firstname"], "An\\u0000n");
        assert!(props.as_object().unwrap().values().all(|v| !v.as_str().unwrap().contains('\0')));
    }

    #[test]
    fn times_postgresql_cannot_hold_are_none() {
        let r = record(&[("a", "-10000-01-01"), ("b", "0000-00-00"), ("c", "300000-01-01"), ("d", "2024-01-17")]);
        assert_eq!(time(&r, "a"), None);
        assert_eq!(time(&r, "b"), None);
        assert_eq!(time(&r, "c"), None);
        assert!(time(&r, "d").is_some());
        assert!(parse_time("-10000-01-01").is_some(), "chrono reads it; PostgreSQL would refuse it");
    }
}

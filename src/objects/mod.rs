//! The mapping of HubSpot records to rows (one module per kind) and [`write_records`], which
//! upserts them. The object kinds themselves are `crate::kind` (re-exported here).

pub mod associations;
mod call;
mod contact;
mod deal;
mod error;
mod owner;
pub mod values;
mod write;

pub use crate::kind::{ObjectKind, UnknownObject};
pub use error::SyncError;
pub use write::{
    FailedRecord, Prepared, WriteContext, WriteReport, prepare, write_isolating, write_prepared, write_records,
};

/// Row mappers, one per kind (pure functions, unit-tested below).
pub mod rows {
    pub use super::call::to_row as call;
    pub use super::contact::to_row as contact;
    pub use super::deal::{status as deal_status, to_row as deal};
    pub use super::owner::to_row as owner;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(props: &[(&str, Option<&str>)]) -> crate::hubspot::Record {
        crate::hubspot::Record {
            id: "1".into(),
            properties: props.iter().map(|(k, v)| ((*k).to_owned(), v.map(str::to_owned))).collect(),
            created_at: None,
            updated_at: chrono::Utc::now(),
            archived: false,
        }
    }

    #[test]
    fn deal_status_from_closed_flags() {
        use crate::store::deals::DealStatus::*;
        let status = |closed, won| rows::deal_status(&record(&[("hs_is_closed", closed), ("hs_is_closed_won", won)]));
        assert_eq!(status(Some("true"), Some("true")), Some(Won));
        assert_eq!(status(Some("true"), Some("false")), Some(Lost));
        assert_eq!(status(Some("false"), Some("false")), Some(Open));
        assert_eq!(status(Some("FALSE"), None), Some(Open));
        assert_eq!(status(None, None), None);
        assert_eq!(status(Some("maybe"), None), None);
    }

    #[test]
    fn type_lies_give_null_typed_columns_and_keep_the_raw_value() {
        let r = record(&[("amount", Some("1;2")), ("closedate", Some("not a date")), ("dealname", Some(""))]);
        let row = rows::deal(&r);
        assert_eq!(row.close_date, None);
        assert_eq!(row.deal_name, None);
        assert_eq!(row.properties["amount"], "1;2");
        assert_eq!(row.properties["dealname"], "");
        let call =
            rows::call(&record(&[("hs_call_duration", Some("1500.0")), ("hs_timestamp", Some("1705521304281"))]));
        assert_eq!(call.duration_ms, Some(1500));
        assert_eq!(call.called_at.map(|t| t.timestamp_millis()), Some(1705521304281));
        assert_eq!(rows::call(&record(&[("hs_call_duration", Some("long"))])).duration_ms, None);
    }

    #[test]
    fn owners_get_a_display_name() {
        let r =
            record(&[("firstName", Some("Ann")), ("lastName", Some("Lee")), ("userIdIncludingInactive", Some("9"))]);
        let row = rows::owner(&r);
        assert_eq!(row.name.as_deref(), Some("Ann Lee"));
        assert_eq!(row.user_id, Some(9));
        assert_eq!(rows::owner(&record(&[])).name, None);
    }
}

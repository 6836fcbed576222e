//! HubSpot call -> `calls` row (`hs_call_duration` is already in milliseconds).

use super::values::{integer, properties_json, storable, text, time};
use crate::hubspot::Record;
use crate::store::calls::CallRow;

pub fn to_row(r: &Record) -> CallRow {
    CallRow {
        hubspot_call_id: r.id.clone(),
        title: text(r, "hs_call_title"),
        direction: text(r, "hs_call_direction"),
        disposition: text(r, "hs_call_disposition"),
        status: text(r, "hs_call_status"),
        duration_ms: integer(r, "hs_call_duration"),
        called_at: time(r, "hs_timestamp"),
        owner_id: text(r, "hubspot_owner_id"),
        created_at: r.created_at.and_then(storable),
        updated_at: r.updated_at,
        archived: r.archived,
        properties: properties_json(r),
    }
}

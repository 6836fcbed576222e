//! HubSpot contact -> `contacts` row.

use super::values::{properties_json, storable, text};
use crate::hubspot::Record;
use crate::store::contacts::ContactRow;

pub fn to_row(r: &Record) -> ContactRow {
    ContactRow {
        hubspot_contact_id: r.id.clone(),
        email: text(r, "email"),
        first_name: text(r, "firstname"),
        last_name: text(r, "lastname"),
        phone: text(r, "phone"),
        owner_id: text(r, "hubspot_owner_id"),
        lifecycle_stage: text(r, "lifecyclestage"),
        status: text(r, "hs_lead_status"),
        created_at: r.created_at.and_then(storable),
        updated_at: r.updated_at,
        archived: r.archived,
        properties: properties_json(r),
    }
}

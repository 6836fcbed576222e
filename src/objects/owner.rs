//! HubSpot owner -> `staff` row (the role comes from `OWNER_ROLE` at write time).

use super::values::{integer, storable, text};
use crate::hubspot::Record;
use crate::store::staff::StaffRow;

pub fn to_row(r: &Record) -> StaffRow {
    let first_name = text(r, "firstName");
    let last_name = text(r, "lastName");
    let name = [first_name.as_deref(), last_name.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(" ");
    StaffRow {
        id: r.id.clone(),
        name: (!name.is_empty()).then_some(name),
        email: text(r, "email"),
        first_name,
        last_name,
        user_id: integer(r, "userId").or_else(|| integer(r, "userIdIncludingInactive")),
        archived: r.archived,
        created_at: r.created_at.and_then(storable),
        updated_at: Some(r.updated_at),
    }
}

//! HubSpot deal -> `deals` row. The status comes from HubSpot's calculated `hs_is_closed` and
//! `hs_is_closed_won`; the amount is kept only when it is a plain decimal (the store enforces it).

use super::values::{boolean, properties_json, storable, text, time};
use crate::hubspot::Record;
use crate::store::deals::{DealRow, DealStatus};

/// `won` when closed won, `lost` when closed and not won, `open` when not closed, else unknown.
pub fn status(r: &Record) -> Option<DealStatus> {
    match (boolean(r, "hs_is_closed"), boolean(r, "hs_is_closed_won")) {
        (_, Some(true)) => Some(DealStatus::Won),
        (Some(true), Some(false)) => Some(DealStatus::Lost),
        (Some(false), _) => Some(DealStatus::Open),
        _ => None,
    }
}

pub fn to_row(r: &Record) -> DealRow {
    DealRow {
        hubspot_deal_id: r.id.clone(),
        deal_name: text(r, "dealname"),
        deal_value: text(r, "amount").map(|a| a.trim().to_owned()),
        stage: text(r, "dealstage"),
        status: status(r),
        close_date: time(r, "closedate"),
        closer_id: text(r, "hubspot_owner_id"),
        pipeline: text(r, "pipeline"),
        created_at: r.created_at.and_then(storable),
        updated_at: r.updated_at,
        archived: r.archived,
        properties: properties_json(r),
    }
}

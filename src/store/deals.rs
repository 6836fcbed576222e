//! `deals`: batch upsert (newest HubSpot `updated_at` wins).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Nullable, Text, Timestamptz};
use diesel_async::AsyncPgConnection;

use super::records::{Column, Record, RecordTable, column, row_accessors, upsert_rows, upsert_sql};

/// `deal_status`: derived from `hs_is_closed` and `hs_is_closed_won`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DealStatus {
    Open,
    Won,
    Lost,
}

impl DealStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Won => "won",
            Self::Lost => "lost",
        }
    }
}

/// A deal as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct DealRow {
    pub hubspot_deal_id: String,
    pub deal_name: Option<String>,
    /// A decimal literal such as `1500.00`; anything else is stored as NULL.
    pub deal_value: Option<String>,
    pub stage: Option<String>,
    pub status: Option<DealStatus>,
    pub close_date: Option<DateTime<Utc>>,
    pub closer_id: Option<String>,
    pub pipeline: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub archived: bool,
    pub properties: serde_json::Value,
}

impl Record for DealRow {
    const TABLE: RecordTable = RecordTable::Deals;
    const COLUMNS: &'static [Column<Self>] = &[
        column!("deal_name", "text", Nullable<Text>, |r| r.deal_name.as_deref()),
        // Anything but a decimal literal is stored as NULL rather than failing the batch.
        column!(
            "deal_value",
            "text",
            sql = "CASE WHEN u.deal_value ~ '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$' THEN u.deal_value::numeric END",
            Nullable<Text>,
            |r| r.deal_value.as_deref()
        ),
        column!("stage", "text", Nullable<Text>, |r| r.stage.as_deref()),
        column!("status", "text", sql = "u.status::deal_status", Nullable<Text>, |r| r.status.map(DealStatus::as_str)),
        column!("close_date", "timestamptz", Nullable<Timestamptz>, |r| r.close_date),
        column!("closer_id", "text", Nullable<Text>, |r| r.closer_id.as_deref()),
        column!("pipeline", "text", Nullable<Text>, |r| r.pipeline.as_deref()),
    ];

    row_accessors!(hubspot_deal_id);
}

/// The upsert statement, built once.
static UPSERT: LazyLock<String> = LazyLock::new(upsert_sql::<DealRow>);

/// Writes deals in statements of up to [`MAX_BATCH`](super::records::MAX_BATCH) rows; see
/// `contacts::upsert_batch`.
pub async fn upsert_batch(conn: &mut AsyncPgConnection, rows: Vec<DealRow>) -> diesel::QueryResult<usize> {
    upsert_rows(conn, &UPSERT, rows, None).await
}

/// [`upsert_batch`] of rows HubSpot returned by reads that started at or after `read_since`:
/// a live one also revives a row archived before then (see [`upsert_sql`]).
pub async fn upsert_read(
    conn: &mut AsyncPgConnection,
    rows: Vec<DealRow>,
    read_since: Option<chrono::DateTime<chrono::Utc>>,
) -> diesel::QueryResult<usize> {
    upsert_rows(conn, &UPSERT, rows, read_since).await
}

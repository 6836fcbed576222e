//! `calls`: batch upsert (newest HubSpot `updated_at` wins).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz};
use diesel_async::AsyncPgConnection;

use super::records::{Column, Record, RecordTable, column, row_accessors, upsert_rows, upsert_sql};

/// A call as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct CallRow {
    pub hubspot_call_id: String,
    pub title: Option<String>,
    pub direction: Option<String>,
    pub disposition: Option<String>,
    pub status: Option<String>,
    pub duration_ms: Option<i64>,
    pub called_at: Option<DateTime<Utc>>,
    pub owner_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub archived: bool,
    pub properties: serde_json::Value,
}

impl Record for CallRow {
    const TABLE: RecordTable = RecordTable::Calls;
    const COLUMNS: &'static [Column<Self>] = &[
        column!("title", "text", Nullable<Text>, |r| r.title.as_deref()),
        column!("direction", "text", Nullable<Text>, |r| r.direction.as_deref()),
        column!("disposition", "text", Nullable<Text>, |r| r.disposition.as_deref()),
        column!("status", "text", Nullable<Text>, |r| r.status.as_deref()),
        column!("duration_ms", "bigint", Nullable<BigInt>, |r| r.duration_ms),
        column!("called_at", "timestamptz", Nullable<Timestamptz>, |r| r.called_at),
        column!("owner_id", "text", Nullable<Text>, |r| r.owner_id.as_deref()),
    ];

    row_accessors!(hubspot_call_id);
}

/// The upsert statement, built once.
static UPSERT: LazyLock<String> = LazyLock::new(upsert_sql::<CallRow>);

/// Writes calls in statements of up to [`MAX_BATCH`](super::records::MAX_BATCH) rows; see
/// `contacts::upsert_batch`.
pub async fn upsert_batch(conn: &mut AsyncPgConnection, rows: Vec<CallRow>) -> diesel::QueryResult<usize> {
    upsert_rows(conn, &UPSERT, rows, None).await
}

/// [`upsert_batch`] of rows HubSpot returned by reads that started at or after `read_since`:
/// a live one also revives a row archived before then (see [`upsert_sql`]).
pub async fn upsert_read(
    conn: &mut AsyncPgConnection,
    rows: Vec<CallRow>,
    read_since: Option<chrono::DateTime<chrono::Utc>>,
) -> diesel::QueryResult<usize> {
    upsert_rows(conn, &UPSERT, rows, read_since).await
}

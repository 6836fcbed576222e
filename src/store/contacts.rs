//! `contacts`: batch upsert (newest HubSpot `updated_at` wins) and privacy deletion.
//! Owner changes are recorded in `contact_owner_history` by a trigger (see the migration).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Nullable, Text};
use diesel_async::AsyncPgConnection;

use super::records::{Column, Record, RecordTable, column, row_accessors, upsert_rows, upsert_sql};

/// A contact as stored: typed columns plus every fetched property in `properties`.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactRow {
    pub hubspot_contact_id: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub owner_id: Option<String>,
    pub lifecycle_stage: Option<String>,
    /// `hs_lead_status`.
    pub status: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub archived: bool,
    pub properties: serde_json::Value,
}

impl Record for ContactRow {
    const TABLE: RecordTable = RecordTable::Contacts;
    const COLUMNS: &'static [Column<Self>] = &[
        column!("email", "text", Nullable<Text>, |r| r.email.as_deref()),
        column!("first_name", "text", Nullable<Text>, |r| r.first_name.as_deref()),
        column!("last_name", "text", Nullable<Text>, |r| r.last_name.as_deref()),
        column!("phone", "text", Nullable<Text>, |r| r.phone.as_deref()),
        column!("owner_id", "text", Nullable<Text>, |r| r.owner_id.as_deref()),
        column!("lifecycle_stage", "text", Nullable<Text>, |r| r.lifecycle_stage.as_deref()),
        column!("status", "text", Nullable<Text>, |r| r.status.as_deref()),
    ];
    /// Privacy-deleted ids are never written back.
    const ONLY_IF: Option<&'static str> = Some(
        "NOT EXISTS (SELECT 1 FROM privacy_deletions p WHERE p.portal_id = hubspot_sync_portal() AND p.hubspot_contact_id = u.id)",
    );

    row_accessors!(hubspot_contact_id);
}

/// The upsert statement, built once.
static UPSERT: LazyLock<String> = LazyLock::new(upsert_sql::<ContactRow>);

/// Writes up to [`MAX_BATCH`](super::records::MAX_BATCH) contacts in one statement (larger
/// inputs are split). A row whose stored `updated_at` is newer is left alone (see
/// [`NEWER_WINS`](super::records::NEWER_WINS)); privacy-deleted ids are never written back (the
/// statement skips them, and the `contacts_refuse_erased` trigger does so even for a purge that
/// commits while the statement runs: see [`super::privacy`]).
/// Returns the number of rows inserted or changed.
pub async fn upsert_batch(conn: &mut AsyncPgConnection, rows: Vec<ContactRow>) -> diesel::QueryResult<usize> {
    upsert_rows(conn, &UPSERT, rows, None).await
}

/// [`upsert_batch`] of rows HubSpot returned by reads that started at or after `read_since`:
/// a live one also revives a row archived before then (see [`upsert_sql`]).
pub async fn upsert_read(
    conn: &mut AsyncPgConnection,
    rows: Vec<ContactRow>,
    read_since: Option<chrono::DateTime<chrono::Utc>>,
) -> diesel::QueryResult<usize> {
    upsert_rows(conn, &UPSERT, rows, read_since).await
}

/// Erases contacts for privacy (GDPR) with every id merged into them; see [`super::privacy`].
pub use super::privacy::erase as privacy_delete;

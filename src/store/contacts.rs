//! `contacts`: batch upsert (newest HubSpot `updated_at` wins) and privacy deletion.
//! Owner changes are recorded in `contact_owner_history` by a trigger (see the migration).

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::records::{MAX_BATCH, NEWER_WINS, newest_per_id};

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

fn upsert_sql() -> String {
    format!(
        "INSERT INTO contacts AS t (hubspot_contact_id, email, first_name, last_name, phone, owner_id, \
             lifecycle_stage, status, created_at, updated_at, archived, archived_at, properties, synced_at) \
         SELECT u.id, u.email, u.first_name, u.last_name, u.phone, u.owner_id, u.lifecycle_stage, u.status, \
             u.created_at, u.updated_at, u.archived, CASE WHEN u.archived THEN now() END, u.properties, now() \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bool[], $12::jsonb[]) \
             AS u(id, email, first_name, last_name, phone, owner_id, lifecycle_stage, status, created_at, \
             updated_at, archived, properties) \
         WHERE NOT EXISTS (SELECT 1 FROM privacy_deletions p WHERE p.hubspot_contact_id = u.id) \
         ON CONFLICT (hubspot_contact_id) DO UPDATE SET email = excluded.email, \
             first_name = excluded.first_name, last_name = excluded.last_name, phone = excluded.phone, \
             owner_id = excluded.owner_id, lifecycle_stage = excluded.lifecycle_stage, \
             status = excluded.status, created_at = excluded.created_at, updated_at = excluded.updated_at, \
             archived = excluded.archived, \
             archived_at = CASE WHEN excluded.archived THEN coalesce(t.archived_at, excluded.archived_at) END, \
             merged_into = CASE WHEN excluded.archived THEN t.merged_into END, \
             properties = excluded.properties, synced_at = excluded.synced_at \
         WHERE {NEWER_WINS}"
    )
}

/// Writes up to [`MAX_BATCH`] contacts in one statement (larger inputs are split). A row whose
/// stored `updated_at` is newer is left alone; privacy-deleted ids are never written back (the
/// statement skips them, and the `contacts_refuse_erased` trigger does so even for a purge that
/// commits while the statement runs: see [`super::privacy`]).
/// Returns the number of rows inserted or changed.
pub async fn upsert_batch(conn: &mut AsyncPgConnection, rows: Vec<ContactRow>) -> diesel::QueryResult<usize> {
    let rows = newest_per_id(rows, |r| &r.hubspot_contact_id, |r| r.updated_at);
    let sql = upsert_sql();
    let mut written = 0;
    for chunk in rows.chunks(MAX_BATCH) {
        written += diesel::sql_query(&sql)
            .bind::<Array<Text>, _>(chunk.iter().map(|r| r.hubspot_contact_id.as_str()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.email.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.first_name.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.last_name.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.phone.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.owner_id.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.lifecycle_stage.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.status.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Timestamptz>>, _>(chunk.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(chunk.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind::<Array<Bool>, _>(chunk.iter().map(|r| r.archived).collect::<Vec<_>>())
            .bind::<Array<Jsonb>, _>(chunk.iter().map(|r| &r.properties).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    Ok(written)
}

/// Erases contacts for privacy (GDPR) with every id merged into them; see [`super::privacy`].
pub use super::privacy::erase as privacy_delete;

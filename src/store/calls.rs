//! `calls`: batch upsert (newest HubSpot `updated_at` wins).

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::records::{MAX_BATCH, NEWER_WINS, newest_per_id};

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

fn upsert_sql() -> String {
    format!(
        "INSERT INTO calls AS t (hubspot_call_id, title, direction, disposition, status, duration_ms, called_at, \
             owner_id, created_at, updated_at, archived, archived_at, properties, synced_at) \
         SELECT u.id, u.title, u.direction, u.disposition, u.status, u.duration_ms, u.called_at, u.owner_id, \
             u.created_at, u.updated_at, u.archived, CASE WHEN u.archived THEN now() END, u.properties, now() \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
             $7::timestamptz[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bool[], $12::jsonb[]) \
             AS u(id, title, direction, disposition, status, duration_ms, called_at, owner_id, created_at, \
             updated_at, archived, properties) \
         ON CONFLICT (hubspot_call_id) DO UPDATE SET title = excluded.title, direction = excluded.direction, \
             disposition = excluded.disposition, status = excluded.status, duration_ms = excluded.duration_ms, \
             called_at = excluded.called_at, owner_id = excluded.owner_id, created_at = excluded.created_at, \
             updated_at = excluded.updated_at, archived = excluded.archived, \
             archived_at = CASE WHEN excluded.archived THEN coalesce(t.archived_at, excluded.archived_at) END, \
             merged_into = CASE WHEN excluded.archived THEN t.merged_into END, \
             properties = excluded.properties, synced_at = excluded.synced_at \
         WHERE {NEWER_WINS}"
    )
}

/// Writes calls in statements of up to [`MAX_BATCH`] rows; see `contacts::upsert_batch`.
pub async fn upsert_batch(conn: &mut AsyncPgConnection, rows: Vec<CallRow>) -> diesel::QueryResult<usize> {
    let rows = newest_per_id(rows, |r| &r.hubspot_call_id, |r| r.updated_at);
    let sql = upsert_sql();
    let mut written = 0;
    for chunk in rows.chunks(MAX_BATCH) {
        written += diesel::sql_query(&sql)
            .bind::<Array<Text>, _>(chunk.iter().map(|r| r.hubspot_call_id.as_str()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.title.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.direction.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.disposition.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.status.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<BigInt>>, _>(chunk.iter().map(|r| r.duration_ms).collect::<Vec<_>>())
            .bind::<Array<Nullable<Timestamptz>>, _>(chunk.iter().map(|r| r.called_at).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.owner_id.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Timestamptz>>, _>(chunk.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(chunk.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind::<Array<Bool>, _>(chunk.iter().map(|r| r.archived).collect::<Vec<_>>())
            .bind::<Array<Jsonb>, _>(chunk.iter().map(|r| &r.properties).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    Ok(written)
}

//! `deals`: batch upsert (newest HubSpot `updated_at` wins).

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::records::{MAX_BATCH, NEWER_WINS, newest_per_id};

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

fn upsert_sql() -> String {
    format!(
        "INSERT INTO deals AS t (hubspot_deal_id, deal_name, deal_value, stage, status, close_date, closer_id, \
             pipeline, created_at, updated_at, archived, archived_at, properties, synced_at) \
         SELECT u.id, u.deal_name, \
             CASE WHEN u.deal_value ~ '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$' THEN u.deal_value::numeric END, \
             u.stage, u.status::deal_status, u.close_date, u.closer_id, u.pipeline, u.created_at, u.updated_at, \
             u.archived, CASE WHEN u.archived THEN now() END, u.properties, now() \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], \
             $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bool[], $12::jsonb[]) \
             AS u(id, deal_name, deal_value, stage, status, close_date, closer_id, pipeline, created_at, \
             updated_at, archived, properties) \
         ON CONFLICT (hubspot_deal_id) DO UPDATE SET deal_name = excluded.deal_name, \
             deal_value = excluded.deal_value, stage = excluded.stage, status = excluded.status, \
             close_date = excluded.close_date, closer_id = excluded.closer_id, pipeline = excluded.pipeline, \
             created_at = excluded.created_at, updated_at = excluded.updated_at, archived = excluded.archived, \
             archived_at = CASE WHEN excluded.archived THEN coalesce(t.archived_at, excluded.archived_at) END, \
             merged_into = CASE WHEN excluded.archived THEN t.merged_into END, \
             properties = excluded.properties, synced_at = excluded.synced_at \
         WHERE {NEWER_WINS}"
    )
}

/// Writes deals in statements of up to [`MAX_BATCH`] rows; see `contacts::upsert_batch`.
pub async fn upsert_batch(conn: &mut AsyncPgConnection, rows: Vec<DealRow>) -> diesel::QueryResult<usize> {
    let rows = newest_per_id(rows, |r| &r.hubspot_deal_id, |r| r.updated_at);
    let sql = upsert_sql();
    let mut written = 0;
    for chunk in rows.chunks(MAX_BATCH) {
        written += diesel::sql_query(&sql)
            .bind::<Array<Text>, _>(chunk.iter().map(|r| r.hubspot_deal_id.as_str()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.deal_name.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.deal_value.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.stage.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                chunk.iter().map(|r| r.status.map(DealStatus::as_str)).collect::<Vec<_>>(),
            )
            .bind::<Array<Nullable<Timestamptz>>, _>(chunk.iter().map(|r| r.close_date).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.closer_id.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|r| r.pipeline.as_deref()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Timestamptz>>, _>(chunk.iter().map(|r| r.created_at).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(chunk.iter().map(|r| r.updated_at).collect::<Vec<_>>())
            .bind::<Array<Bool>, _>(chunk.iter().map(|r| r.archived).collect::<Vec<_>>())
            .bind::<Array<Jsonb>, _>(chunk.iter().map(|r| &r.properties).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    Ok(written)
}

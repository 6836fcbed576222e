//! `sync_failures`: records that could not be read or stored, **parked** so they never block the
//! others. Each failure is upserted (attempts counted, first and last seen kept), becomes due
//! again after a backoff that doubles with every attempt, is claimed by the retry loop (which
//! queues its id for a batch read), and is deleted once the record is stored.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::sync_failures;

/// A record that failed, as reported by whoever tried it.
#[derive(Clone, Debug, PartialEq)]
pub struct NewFailure {
    pub hubspot_id: String,
    pub error: String,
    /// HubSpot's last-modified time of the version that failed, when it was read.
    pub updated_at: Option<DateTime<Utc>>,
}

/// One parked record.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable)]
#[diesel(table_name = sync_failures)]
pub struct Failure {
    /// `contacts`, `deals`, `calls` or `owners`.
    pub object: String,
    pub hubspot_id: String,
    /// Why the last attempt failed.
    pub error: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub attempts: i32,
    /// When the record is tried again.
    pub next_attempt: DateTime<Utc>,
    /// HubSpot's last-modified time of the version that failed, when it was read.
    pub updated_at: Option<DateTime<Utc>>,
}

/// Parked records of one object: how many, and since when the oldest.
#[derive(Clone, Debug, PartialEq, QueryableByName)]
pub struct Summary {
    #[diesel(sql_type = Text)]
    pub object: String,
    #[diesel(sql_type = BigInt)]
    pub parked: i64,
    #[diesel(sql_type = Timestamptz)]
    pub oldest: DateTime<Utc>,
}

/// How long a parked record waits: `base * 2^(attempts - 1)`, at most `max`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_secs(2), max: Duration::from_secs(30 * 60) }
    }
}

#[derive(QueryableByName)]
struct Attempts {
    #[diesel(sql_type = Text)]
    hubspot_id: String,
    #[diesel(sql_type = Integer)]
    attempts: i32,
}

/// Parks (or counts one more attempt of) each failure; returns every id with its attempts so far.
pub async fn park(
    conn: &mut AsyncPgConnection,
    object: &str,
    failures: &[NewFailure],
    backoff: Backoff,
) -> QueryResult<Vec<(String, i32)>> {
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<&NewFailure> = failures.iter().filter(|f| seen.insert(f.hubspot_id.as_str())).collect();
    // In id order, so two writers parking the same ids lock them in the same order (no deadlock).
    unique.sort_unstable_by(|a, b| a.hubspot_id.cmp(&b.hubspot_id));
    if unique.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Attempts> = diesel::sql_query(
        "INSERT INTO sync_failures AS f (object, hubspot_id, error, updated_at, next_attempt) \
         SELECT $1, u.id, u.error, u.updated_at, now() + make_interval(secs => $5) \
         FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS u(id, error, updated_at) ORDER BY u.id \
         ON CONFLICT (portal_id, object, hubspot_id) DO UPDATE SET error = excluded.error, last_seen = now(), \
             attempts = f.attempts + 1, updated_at = coalesce(excluded.updated_at, f.updated_at), \
             next_attempt = now() + make_interval(secs => least($5 * power(2, f.attempts), $6)) \
         RETURNING hubspot_id, attempts",
    )
    .bind::<Text, _>(object)
    .bind::<Array<Text>, _>(unique.iter().map(|f| f.hubspot_id.as_str()).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(unique.iter().map(|f| f.error.as_str()).collect::<Vec<_>>())
    .bind::<Array<Nullable<Timestamptz>>, _>(unique.iter().map(|f| f.updated_at).collect::<Vec<_>>())
    .bind::<Double, _>(backoff.base.as_secs_f64())
    .bind::<Double, _>(backoff.max.as_secs_f64())
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.hubspot_id, r.attempts)).collect())
}

/// Un-parks records that have now been stored (or are gone); returns how many were parked.
pub async fn clear(conn: &mut AsyncPgConnection, object: &str, ids: &[String]) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "DELETE FROM sync_failures WHERE portal_id = hubspot_sync_portal() AND object = $1 AND hubspot_id = ANY($2)",
    )
    .bind::<Text, _>(object)
    .bind::<Array<Text>, _>(ids)
    .execute(conn)
    .await
}

/// Claims up to `limit` parked ids of `object` whose backoff has elapsed, oldest due first: their
/// next attempt moves `hold` ahead, so they are queued once while their retry is in flight (a
/// retry that fails parks them again with a fresh backoff; one lost with its process is due
/// again after `hold`).
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    object: &str,
    limit: i64,
    hold: Duration,
) -> QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        hubspot_id: String,
    }
    let rows: Vec<Id> = diesel::sql_query(
        "UPDATE sync_failures SET next_attempt = now() + make_interval(secs => $3) \
         WHERE portal_id = hubspot_sync_portal() AND (object, hubspot_id) IN (SELECT object, hubspot_id \
             FROM sync_failures WHERE portal_id = hubspot_sync_portal() AND object = $1 AND next_attempt <= now() ORDER BY next_attempt LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING hubspot_id",
    )
    .bind::<Text, _>(object)
    .bind::<BigInt, _>(limit)
    .bind::<Double, _>(hold.as_secs_f64())
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.hubspot_id).collect())
}

/// Parked records per object (objects with none are absent).
pub async fn summary(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Summary>> {
    diesel::sql_query(
        "SELECT object, count(*) AS parked, min(first_seen) AS oldest FROM sync_failures \
         WHERE portal_id = hubspot_sync_portal() GROUP BY object ORDER BY object",
    )
    .load(conn)
    .await
}

/// Parked records, of one object or all, oldest first (at most `limit`).
pub async fn list(conn: &mut AsyncPgConnection, object: Option<&str>, limit: i64) -> QueryResult<Vec<Failure>> {
    let mut query =
        sync_failures::table.select(Failure::as_select()).filter(super::accounts::in_session_portal()).into_boxed();
    if let Some(object) = object {
        query = query.filter(sync_failures::object.eq(object.to_owned()));
    }
    query
        .order((sync_failures::first_seen.asc(), sync_failures::object.asc(), sync_failures::hubspot_id.asc()))
        .limit(limit)
        .load(conn)
        .await
}

//! `owner_change_deliveries`: the outbox of the signed owner-change webhook
//! (`OWNER_CHANGE_WEBHOOK_URL`). Rows are written by the owner-change triggers in the same
//! transaction as the upsert that changed the owner (see the migration `owner_change_hooks`), so
//! a crash never loses one; a sender claims due rows, delivers them, and deletes each once the
//! receiver accepted it, or puts it back with a later `next_attempt_at`.
//!
//! Claiming moves a row's `next_attempt_at` a lease ahead (`FOR UPDATE SKIP LOCKED`, one short
//! statement, no transaction held while sending): several senders never take the same row, and a
//! sender that dies mid-delivery leaves the row to be claimed again once the lease runs out (the
//! receiver may then see it twice: it deduplicates on the delivery id).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{BigInt, Double, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;

/// One owner change waiting for delivery.
#[derive(Clone, Debug, PartialEq, QueryableByName)]
pub struct OwnerChange {
    /// The delivery id (stable across retries).
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    /// The HubSpot portal id of the account whose record changed owner.
    #[diesel(sql_type = BigInt)]
    pub portal_id: i64,
    /// `contacts` or `deals`.
    #[diesel(sql_type = Text)]
    pub object: String,
    #[diesel(sql_type = Text)]
    pub hubspot_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub old_owner_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub new_owner_id: Option<String>,
    /// HubSpot `updatedAt` of the version that carried the new owner.
    #[diesel(sql_type = Timestamptz)]
    pub changed_at: DateTime<Utc>,
    /// Attempts before this one.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
}

const CLAIM_SQL: &str = "\
UPDATE owner_change_deliveries d SET next_attempt_at = now() + make_interval(secs => $2) \
FROM (SELECT id FROM owner_change_deliveries WHERE next_attempt_at <= now() \
      ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED) due \
WHERE d.id = due.id \
RETURNING d.id, d.portal_id, d.object, d.hubspot_id, d.old_owner_id, d.new_owner_id, d.changed_at, d.attempts";

/// Claims up to `limit` due deliveries for `lease` (oldest due first).
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    limit: i64,
    lease: Duration,
) -> Result<Vec<OwnerChange>, StoreError> {
    let mut rows: Vec<OwnerChange> =
        diesel::sql_query(CLAIM_SQL).bind::<BigInt, _>(limit).bind::<Double, _>(lease.as_secs_f64()).load(conn).await?;
    rows.sort_by_key(|r| (r.changed_at, r.id));
    Ok(rows)
}

/// A delivery the receiver accepted: gone.
pub async fn delivered(conn: &mut AsyncPgConnection, id: Uuid) -> Result<(), StoreError> {
    diesel::sql_query("DELETE FROM owner_change_deliveries WHERE id = $1").bind::<SqlUuid, _>(id).execute(conn).await?;
    Ok(())
}

/// A failed attempt: counted, its error kept, tried again after `retry_in`.
pub async fn failed(conn: &mut AsyncPgConnection, id: Uuid, error: &str, retry_in: Duration) -> Result<(), StoreError> {
    diesel::sql_query(
        "UPDATE owner_change_deliveries SET attempts = attempts + 1, last_error = $2, \
         next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(error)
    .bind::<Double, _>(retry_in.as_secs_f64())
    .execute(conn)
    .await?;
    Ok(())
}

/// Without `OWNER_CHANGE_WEBHOOK_URL` there is nowhere to deliver: due rows are dropped, at most
/// `limit` per call; returns how many.
pub async fn discard_due(conn: &mut AsyncPgConnection, limit: i64) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "DELETE FROM owner_change_deliveries WHERE id = ANY(ARRAY(SELECT id FROM owner_change_deliveries \
         WHERE next_attempt_at <= now() ORDER BY next_attempt_at, id LIMIT $1 FOR UPDATE SKIP LOCKED))",
    )
    .bind::<BigInt, _>(limit)
    .execute(conn)
    .await?)
}

//! What the webhook replay rule keeps: `webhook_deliveries` (a digest of every accepted body,
//! pruned after [`DELIVERY_RETENTION`]) and `webhook_v3_seen` (one row once a valid v3 signature
//! has been seen from the account). Both are written with `ON CONFLICT DO NOTHING`, so concurrent
//! writers and repeats are harmless.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Bool, Bytea};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::{webhook_deliveries, webhook_v3_seen};

/// How long an accepted body's digest is kept. HubSpot retries a failed delivery for about a
/// day (docs/hubspot.md §1.5); three days leave room for clocks and outages.
pub const DELIVERY_RETENTION: chrono::Duration = chrono::Duration::days(3);

/// A body's digest, 32 bytes (the caller decides what it hashes).
pub type Digest = [u8; 32];

/// What a v1/v2-only delivery is checked against, read in one query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, diesel::QueryableByName)]
pub struct LegacyCheck {
    /// A body with this digest was accepted before.
    #[diesel(sql_type = Bool)]
    pub replayed: bool,
    /// A valid v3 signature has been seen from the account.
    #[diesel(sql_type = Bool)]
    pub v3_seen: bool,
}

/// Whether `digest` was accepted before, and whether v3 has been seen (one round trip).
pub async fn legacy_check(conn: &mut AsyncPgConnection, digest: &Digest) -> QueryResult<LegacyCheck> {
    diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE digest = $1) AS replayed, \
                EXISTS (SELECT 1 FROM webhook_v3_seen WHERE portal_id = hubspot_sync_portal()) AS v3_seen",
    )
    .bind::<Bytea, _>(&digest[..])
    .get_result(conn)
    .await
}

/// Records an accepted body's digest (a repeat keeps the first time).
pub async fn record_delivery(conn: &mut AsyncPgConnection, digest: &Digest) -> QueryResult<()> {
    diesel::insert_into(webhook_deliveries::table)
        .values(webhook_deliveries::digest.eq(&digest[..]))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(drop)
}

/// Records many accepted bodies' digests in one statement.
pub async fn record_deliveries(conn: &mut AsyncPgConnection, digests: &[Digest]) -> QueryResult<()> {
    if digests.is_empty() {
        return Ok(());
    }
    let digests: Vec<&[u8]> = digests.iter().map(|d| &d[..]).collect();
    diesel::sql_query("INSERT INTO webhook_deliveries (digest) SELECT unnest($1::bytea[]) ON CONFLICT DO NOTHING")
        .bind::<Array<Bytea>, _>(digests)
        .execute(conn)
        .await
        .map(drop)
}

/// Deletes digests accepted before `before`; returns how many.
pub async fn prune_deliveries(conn: &mut AsyncPgConnection, before: DateTime<Utc>) -> QueryResult<usize> {
    diesel::delete(webhook_deliveries::table.filter(webhook_deliveries::accepted_at.lt(before))).execute(conn).await
}

/// Whether a valid v3 signature has been seen from the account.
pub async fn v3_seen(conn: &mut AsyncPgConnection) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        webhook_v3_seen::table.select(webhook_v3_seen::singleton).filter(super::accounts::in_session_portal()),
    ))
    .get_result(conn)
    .await
}

/// Records that a valid v3 signature has been seen (the first time is kept).
pub async fn mark_v3_seen(conn: &mut AsyncPgConnection) -> QueryResult<()> {
    diesel::insert_into(webhook_v3_seen::table)
        .values(webhook_v3_seen::singleton.eq(true))
        .on_conflict_do_nothing()
        .execute(conn)
        .await
        .map(drop)
}

//! The cluster tables: `machines` (heartbeats), `account_leases` (which machine runs each
//! non-default account) and `webhook_handoff` (verified webhook batches waiting for their
//! account's lease holder). What runs on them is `cluster`; the SQL is here.
//!
//! **Not portal-scoped.** Unlike every table in [`super::accounts::SCOPED_TABLES`], these are
//! read and written across accounts: a machine takes any account's lease, and hands over a batch
//! for an account it does not run. So these queries name their portal explicitly (or none) and
//! never use `hubspot_sync_portal()`.
//!
//! **PostgreSQL's clock.** Every lease time is `now()` on the server, so machines whose clocks
//! disagree still agree on who holds what; a machine measures its own margin before a lease's
//! expiry with its monotonic clock, from the moment it sent the statement that set the expiry
//! (`cluster::leases`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bytea, Double, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::{StoreError, commit_durably};

#[derive(QueryableByName)]
struct PortalRow {
    #[diesel(sql_type = BigInt)]
    portal_id: i64,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

fn portals(rows: Vec<PortalRow>) -> Vec<i64> {
    let mut out: Vec<i64> = rows.into_iter().map(|r| r.portal_id).collect();
    out.sort_unstable();
    out
}

/// Records that `machine` is alive now (its row is created on its first beat).
pub async fn heartbeat(conn: &mut AsyncPgConnection, machine: &str) -> Result<(), StoreError> {
    diesel::sql_query(
        "INSERT INTO machines (machine_id) VALUES ($1) \
         ON CONFLICT (machine_id) DO UPDATE SET heartbeat_at = now()",
    )
    .bind::<Text, _>(machine)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the fair share is computed from: the machines whose last beat is younger than `live`,
/// and the non-default accounts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Census {
    pub machines: i64,
    pub accounts: i64,
}

/// Counts the live machines and the non-default accounts, and makes sure each such account has
/// a lease row (free until taken; inserted in portal order, so machines doing it at once never
/// deadlock); forgets machines silent for a day.
pub async fn census(conn: &mut AsyncPgConnection, live: Duration) -> Result<Census, StoreError> {
    diesel::sql_query(
        "INSERT INTO account_leases (portal_id) SELECT portal_id FROM accounts WHERE NOT is_default \
         ORDER BY portal_id ON CONFLICT (portal_id) DO NOTHING",
    )
    .execute(conn)
    .await?;
    diesel::sql_query("DELETE FROM machines WHERE heartbeat_at < now() - interval '1 day'").execute(conn).await?;
    let machines: Count =
        diesel::sql_query("SELECT count(*) AS n FROM machines WHERE heartbeat_at > now() - make_interval(secs => $1)")
            .bind::<Double, _>(live.as_secs_f64())
            .get_result(conn)
            .await?;
    let accounts: Count =
        diesel::sql_query("SELECT count(*) AS n FROM accounts WHERE NOT is_default").get_result(conn).await?;
    Ok(Census { machines: machines.n, accounts: accounts.n })
}

/// Moves the expiry of `machine`'s leases among `portals` to `lease` from now; the ones it
/// still held (a lease already expired is not renewed: another machine may have it).
pub async fn renew(
    conn: &mut AsyncPgConnection,
    machine: &str,
    portals_held: &[i64],
    lease: Duration,
) -> Result<Vec<i64>, StoreError> {
    if portals_held.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<PortalRow> = diesel::sql_query(
        "UPDATE account_leases SET expires_at = now() + make_interval(secs => $3) \
         WHERE holder = $1 AND portal_id = ANY($2) AND expires_at > now() RETURNING portal_id",
    )
    .bind::<Text, _>(machine)
    .bind::<Array<BigInt>, _>(portals_held)
    .bind::<Double, _>(lease.as_secs_f64())
    .load(conn)
    .await?;
    Ok(portals(rows))
}

/// Takes up to `limit` free or expired leases for `machine` (lowest portal ids first, skipping
/// rows another machine is taking at this moment); the portals taken.
pub async fn take(
    conn: &mut AsyncPgConnection,
    machine: &str,
    limit: i64,
    lease: Duration,
) -> Result<Vec<i64>, StoreError> {
    if limit <= 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<PortalRow> = diesel::sql_query(
        "UPDATE account_leases l SET holder = $1, expires_at = now() + make_interval(secs => $3), taken_at = now() \
         FROM (SELECT portal_id FROM account_leases WHERE expires_at <= now() \
               ORDER BY portal_id LIMIT $2 FOR UPDATE SKIP LOCKED) free \
         WHERE l.portal_id = free.portal_id RETURNING l.portal_id",
    )
    .bind::<Text, _>(machine)
    .bind::<BigInt, _>(limit)
    .bind::<Double, _>(lease.as_secs_f64())
    .load(conn)
    .await?;
    Ok(portals(rows))
}

/// Frees `machine`'s leases among `portals` at once (another machine may take them at its next
/// tick); the ones freed.
pub async fn release(
    conn: &mut AsyncPgConnection,
    machine: &str,
    portals_held: &[i64],
) -> Result<Vec<i64>, StoreError> {
    let rows: Vec<PortalRow> = diesel::sql_query(
        "UPDATE account_leases SET holder = NULL, expires_at = '-infinity' \
         WHERE holder = $1 AND portal_id = ANY($2) RETURNING portal_id",
    )
    .bind::<Text, _>(machine)
    .bind::<Array<BigInt>, _>(portals_held)
    .load(conn)
    .await?;
    Ok(portals(rows))
}

/// Removes `machine` from the live machines (a graceful stop: the others' fair share grows at
/// their next tick, not a lease length later).
pub async fn leave(conn: &mut AsyncPgConnection, machine: &str) -> Result<(), StoreError> {
    diesel::sql_query("DELETE FROM machines WHERE machine_id = $1").bind::<Text, _>(machine).execute(conn).await?;
    Ok(())
}

/// One lease as the table has it (for operations and tests).
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName, serde::Serialize)]
pub struct Lease {
    #[diesel(sql_type = BigInt)]
    pub portal_id: i64,
    #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
    pub holder: Option<String>,
    #[diesel(sql_type = Timestamptz)]
    pub expires_at: DateTime<Utc>,
}

/// Every lease that is held now (expiry in the future), by portal id.
pub async fn held_leases(conn: &mut AsyncPgConnection) -> Result<Vec<Lease>, StoreError> {
    let rows = diesel::sql_query(
        "SELECT portal_id, holder, expires_at FROM account_leases \
         WHERE holder IS NOT NULL AND expires_at > now() ORDER BY portal_id",
    )
    .load(conn)
    .await?;
    Ok(rows)
}

/// A verified webhook batch handed over to its account's lease holder.
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct HandedOver {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = BigInt)]
    pub portal_id: i64,
    /// The batch's body as received (the raw bytes its signature was checked on).
    #[diesel(sql_type = Bytea)]
    pub body: Vec<u8>,
    #[diesel(sql_type = Timestamptz)]
    pub received_at: DateTime<Utc>,
}

/// Stores verified batches for `portal_id`'s lease holder, committed durably (on disk before
/// the caller acknowledges them to HubSpot); their ids.
pub async fn push(conn: &mut AsyncPgConnection, portal_id: i64, bodies: &[Vec<u8>]) -> Result<Vec<i64>, StoreError> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = BigInt)]
        id: i64,
    }
    let bodies = bodies.to_vec();
    conn.transaction(async move |conn| {
        commit_durably(conn).await?;
        let ids: Vec<Id> = diesel::sql_query(
            "INSERT INTO webhook_handoff (portal_id, body) SELECT $1, b FROM unnest($2::bytea[]) WITH ORDINALITY AS t(b, n) \
             ORDER BY n RETURNING id",
        )
        .bind::<BigInt, _>(portal_id)
        .bind::<Array<Bytea>, _>(bodies)
        .load(conn)
        .await?;
        Ok::<_, StoreError>(ids.into_iter().map(|i| i.id).collect())
    })
    .await
}

/// Takes (deletes and returns) up to `limit` of `portal_id`'s handed-over batches, oldest first,
/// skipping those another drainer holds. Run it in the transaction that hands them on: a
/// rollback (or the connection's end) puts them back.
pub async fn take_handed_over(
    conn: &mut AsyncPgConnection,
    portal_id: i64,
    limit: i64,
) -> Result<Vec<HandedOver>, StoreError> {
    let mut rows: Vec<HandedOver> = diesel::sql_query(
        "DELETE FROM webhook_handoff WHERE id IN (SELECT id FROM webhook_handoff WHERE portal_id = $1 \
         ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, portal_id, body, received_at",
    )
    .bind::<BigInt, _>(portal_id)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await?;
    rows.sort_by_key(|r| r.id);
    Ok(rows)
}

/// The portals among `portals_held` that have batches waiting.
pub async fn waiting_portals(conn: &mut AsyncPgConnection, portals_held: &[i64]) -> Result<Vec<i64>, StoreError> {
    if portals_held.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<PortalRow> =
        diesel::sql_query("SELECT DISTINCT portal_id FROM webhook_handoff WHERE portal_id = ANY($1)")
            .bind::<Array<BigInt>, _>(portals_held)
            .load(conn)
            .await?;
    Ok(portals(rows))
}

/// Whether a handed-over event (`e`, jsonb) names one of the contacts `$1`: its object, an end
/// of its association, its merge's survivor or a merged id, in an event about contacts (false,
/// never NULL, for an event lacking those fields).
const NAMES_CONTACT: &str = "coalesce(( \
    (e->>'subscriptionType' LIKE 'contact.%' OR e->>'objectTypeId' = '0-1' \
     OR e->>'fromObjectTypeId' = '0-1' OR e->>'toObjectTypeId' = '0-1' \
     OR e->>'associationType' ILIKE '%contact%') \
    AND (e->>'objectId' = ANY($1) OR e->>'fromObjectId' = ANY($1) OR e->>'toObjectId' = ANY($1) \
         OR e->>'primaryObjectId' = ANY($1) \
         OR EXISTS (SELECT 1 FROM jsonb_array_elements_text(CASE WHEN jsonb_typeof(e->'mergedObjectIds') = 'array' \
                    THEN e->'mergedObjectIds' ELSE '[]'::jsonb END) AS m(id) WHERE m.id = ANY($1)))), false)";

/// A privacy erasure's part here: removes from the current portal's waiting handed-over
/// batches (`hubspot_sync_portal()`, so run it in the account's scope) every event naming one of
/// the contacts `ids`, and the batches left empty; the other events stay for the holder. A batch
/// a drainer holds at this moment is skipped (`SKIP LOCKED`: the erasure must not wait for the
/// intake that drainer feeds, which may be this very erasure); it leaves the table when that
/// drain commits, and the erased ids can no longer be stored (`contacts_refuse_erased`). The
/// batches scrubbed.
pub async fn scrub_handed_over(conn: &mut AsyncPgConnection, ids: &[String]) -> Result<usize, diesel::result::Error> {
    let sql = format!(
        "WITH hit AS (SELECT id, convert_from(body, 'UTF8')::jsonb AS events FROM webhook_handoff \
             WHERE portal_id = hubspot_sync_portal() \
             AND jsonb_typeof(convert_from(body, 'UTF8')::jsonb) = 'array' \
             AND EXISTS (SELECT 1 FROM jsonb_array_elements(convert_from(body, 'UTF8')::jsonb) AS t(e) WHERE {NAMES_CONTACT}) \
             ORDER BY id FOR UPDATE SKIP LOCKED), \
         kept AS (SELECT hit.id, (SELECT jsonb_agg(e ORDER BY n) FROM jsonb_array_elements(hit.events) \
             WITH ORDINALITY AS t(e, n) WHERE NOT {NAMES_CONTACT}) AS events FROM hit), \
         emptied AS (DELETE FROM webhook_handoff h USING kept WHERE h.id = kept.id AND kept.events IS NULL RETURNING h.id), \
         rewritten AS (UPDATE webhook_handoff h SET body = convert_to(kept.events::text, 'UTF8') FROM kept \
             WHERE h.id = kept.id AND kept.events IS NOT NULL RETURNING h.id) \
         SELECT (SELECT count(*) FROM emptied) + (SELECT count(*) FROM rewritten) AS n"
    );
    let scrubbed: Count = diesel::sql_query(sql).bind::<Array<Text>, _>(ids).get_result(conn).await?;
    Ok(usize::try_from(scrubbed.n).unwrap_or(0))
}

//! PostgreSQL advisory locks on dedicated connections: one per object and account while it runs
//! (so two instances never run the same sync of one account), one for the scheduling leader. A lock lives as long as
//! its connection, so it is released when the holder finishes, or dies.

use std::time::Duration;

use diesel::sql_types::{Bool, Integer};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};

use super::{Pool, StoreError};
use crate::kind::ObjectKind;

/// The advisory lock (two-key form) a privacy purge (`store::privacy`) holds exclusively and
/// every contact insert and edge write takes shared; the migrations' triggers
/// (`contacts_refuse_erased`, `associations_refuse_erased`) name the same numbers.
pub const PURGE_LOCK: (i32, i32) = (0x4853, 200);

/// First key of every lock taken here ("HS").
const NAMESPACE: i32 = 0x4853;
/// Second key of the scheduler's leader lock.
const LEADER: i32 = 100;
/// Base of the second keys of the audit locks (one per object).
const AUDIT: i32 = 200;

fn object_key(kind: ObjectKind) -> i32 {
    match kind {
        ObjectKind::Contacts => 1,
        ObjectKind::Deals => 2,
        ObjectKind::Calls => 3,
        ObjectKind::Owners => 4,
    }
}

/// A connection of its own (taken out of the pool: dropping it closes it, and so releases any
/// lock it holds).
pub async fn dedicated(pool: &Pool) -> Result<AsyncPgConnection, StoreError> {
    let pooled = pool.get().await?;
    Ok(deadpool::managed::Object::take(pooled))
}

async fn try_lock(conn: &mut AsyncPgConnection, key: i32) -> Result<bool, StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    let row: Row = diesel::sql_query("SELECT pg_try_advisory_lock($1, $2) AS locked")
        .bind::<Integer, _>(NAMESPACE)
        .bind::<Integer, _>(key)
        .get_result(conn)
        .await?;
    Ok(row.locked)
}

/// [`try_lock`] for the session's portal (`hubspot_sync_portal()`): the default account's keys
/// are the ones every version has used (`NAMESPACE`, key); another account's first key is a hash
/// of its portal id, so two accounts' runs of one object never wait for each other.
async fn try_lock_portal(conn: &mut AsyncPgConnection, key: i32) -> Result<bool, StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Row {
        #[diesel(sql_type = Bool)]
        locked: bool,
    }
    let row: Row = diesel::sql_query(
        "SELECT pg_try_advisory_lock(CASE WHEN hubspot_sync_portal() IS NOT DISTINCT FROM \
         (SELECT a.portal_id FROM accounts a WHERE a.is_default) THEN $1 \
         ELSE hashtext('hubspot_sync.portal:' || hubspot_sync_portal()::text) END, $2) AS locked",
    )
    .bind::<Integer, _>(NAMESPACE)
    .bind::<Integer, _>(key)
    .get_result(conn)
    .await?;
    Ok(row.locked)
}

/// Takes the run lock of one object of the session's account on `conn`; false when another
/// session holds it.
pub async fn try_lock_object(conn: &mut AsyncPgConnection, kind: ObjectKind) -> Result<bool, StoreError> {
    try_lock_portal(conn, object_key(kind)).await
}

/// Takes the drift-audit lock of one object on `conn` (audits never wait for runs, nor runs for
/// audits); false when another session audits it.
pub async fn try_lock_audit(conn: &mut AsyncPgConnection, kind: ObjectKind) -> Result<bool, StoreError> {
    try_lock_portal(conn, AUDIT + object_key(kind)).await
}

/// Takes the scheduling leader lock on `conn`; false when another instance leads.
pub async fn try_lock_leader(conn: &mut AsyncPgConnection) -> Result<bool, StoreError> {
    try_lock(conn, LEADER).await
}

/// Has PostgreSQL cancel any statement on `conn` that runs longer than `timeout` (a lock
/// holder's statements are instant; one that is not is stuck).
pub async fn bound_statements(conn: &mut AsyncPgConnection, timeout: Duration) -> Result<(), StoreError> {
    conn.batch_execute(&format!("SET statement_timeout = {}", timeout.as_millis())).await?;
    Ok(())
}

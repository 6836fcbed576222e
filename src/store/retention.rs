//! What the daily maintenance job deletes: `sync_logs` rows and owner history rows older than
//! their retention, one small batch per statement.
//!
//! Every query reads and deletes the rows of the session's portal only (`hubspot_sync_portal()`):
//! the job runs them for each account in turn, each in a transaction in that account's scope
//! (`accounts::in_scope`), so each account's rows are judged on their own (its newest runs are
//! protected, whatever another account ran since).
//!
//! Each batch is one `DELETE` of at most `limit` rows, in its own short transaction (the caller
//! runs it in a transaction of its own, one per batch), taking its rows oldest first (by time, then id: through the
//! `started_at` / `changed_at` index) with `FOR UPDATE SKIP LOCKED`: it never waits for a row
//! another transaction holds, and holds its own for one statement only; the rows are then
//! deleted by primary key. Which `sync_logs` rows are protected is read once per job (one plain
//! scan of the table, no lock; about 2 s for 200,000 rows on the 2-core test machine).
//!
//! A `sync_logs` row is never deleted while `running`, nor when it is the newest finished row of
//! its sync type and mode, nor the newest good (`success`, `partial`) row of its sync type:
//! the scheduler's catch-up, the startup run of never-synced objects and the overdue alert read
//! those, so an object idle for longer than the retention keeps its last runs.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::accounts::PORTAL_ROWS;

/// The tables of the owner history, each with a `changed_at` and an identity `id`.
pub const OWNER_HISTORY_TABLES: [&str; 2] = ["contact_owner_history", "deal_owner_history"];

const PROTECTED_SQL: &str = "\
SELECT id FROM (SELECT DISTINCT ON (sync_type, mode) id FROM sync_logs \
                WHERE portal_id = hubspot_sync_portal() AND status <> 'running' \
                ORDER BY sync_type, mode, started_at DESC) newest \
UNION \
SELECT id FROM (SELECT DISTINCT ON (sync_type) id FROM sync_logs \
                WHERE portal_id = hubspot_sync_portal() AND status IN ('success', 'partial') \
                ORDER BY sync_type, started_at DESC) good";

const SYNC_LOGS_BATCH_SQL: &str = "\
DELETE FROM sync_logs WHERE id = ANY(ARRAY( \
  SELECT id FROM sync_logs \
  WHERE portal_id = hubspot_sync_portal() AND started_at < $1 AND status <> 'running' AND NOT (id = ANY($3)) \
  ORDER BY started_at, id LIMIT $2 FOR UPDATE SKIP LOCKED))";

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = SqlUuid)]
    id: Uuid,
}

/// The session portal's `sync_logs` rows kept whatever their age (see the module docs): one
/// scan, once per account and job.
/// Rows written later are newer, so what this returns stays enough for the whole job.
pub async fn protected_sync_logs(conn: &mut AsyncPgConnection) -> Result<Vec<Uuid>, StoreError> {
    let rows: Vec<Id> = diesel::sql_query(PROTECTED_SQL).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Deletes at most `limit` of the session portal's `sync_logs` rows that started before `cutoff`, neither `running` nor
/// `protected` ([`protected_sync_logs`]), oldest first; returns how many.
pub async fn delete_sync_logs_batch(
    conn: &mut AsyncPgConnection,
    cutoff: DateTime<Utc>,
    limit: i64,
    protected: &[Uuid],
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(SYNC_LOGS_BATCH_SQL)
        .bind::<Timestamptz, _>(cutoff)
        .bind::<BigInt, _>(limit)
        .bind::<Array<SqlUuid>, _>(protected)
        .execute(conn)
        .await?)
}

/// Deletes at most `limit` of the session portal's rows of `table` (one of
/// [`OWNER_HISTORY_TABLES`]) whose change is older than `cutoff`, oldest first; returns how many.
pub async fn delete_owner_history_batch(
    conn: &mut AsyncPgConnection,
    table: &'static str,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<usize, StoreError> {
    debug_assert!(OWNER_HISTORY_TABLES.contains(&table));
    let sql = format!(
        "DELETE FROM {table} WHERE id = ANY(ARRAY(SELECT id FROM {table} WHERE {PORTAL_ROWS} AND changed_at < $1 \
         ORDER BY changed_at, id LIMIT $2 FOR UPDATE SKIP LOCKED))"
    );
    Ok(diesel::sql_query(sql).bind::<Timestamptz, _>(cutoff).bind::<BigInt, _>(limit).execute(conn).await?)
}

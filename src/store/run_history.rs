//! What the alert monitor reads of `sync_logs`: per object, the latest finished run and the last
//! good one, and the runs finished since a moment (for the run metrics).

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::sync_logs::{RunMode, RunStatus};

/// One object's run history: its latest finished run (all `Option` when it never finished one)
/// and when its last good (`success` or `partial`) run finished.
#[derive(QueryableByName, Debug)]
pub struct HistoryRow {
    #[diesel(sql_type = Text)]
    pub sync_type: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub status: Option<RunStatus>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub records_processed: Option<i32>,
    #[diesel(sql_type = Nullable<Integer>)]
    pub records_failed: Option<i32>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub completed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Text>)]
    pub error: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_good: Option<DateTime<Utc>>,
}

/// A finished run, for the run metrics.
#[derive(QueryableByName, Debug)]
pub struct FinishedRow {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub sync_type: String,
    #[diesel(sql_type = Text)]
    pub status: RunStatus,
    #[diesel(sql_type = Text)]
    pub mode: RunMode,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub duration_ms: Option<i64>,
    #[diesel(sql_type = Timestamptz)]
    pub completed_at: DateTime<Utc>,
}

const HISTORY_SQL: &str = "\
SELECT t.sync_type, f.status, f.records_processed, f.records_failed, f.completed_at, \
       f.error_details->>'error' AS error, g.last_good \
FROM unnest($1::text[]) AS t(sync_type) \
LEFT JOIN LATERAL (SELECT status, records_processed, records_failed, completed_at, error_details \
                   FROM sync_logs l WHERE l.platform = 'hubspot' AND l.sync_type = t.sync_type \
                   AND l.portal_id = hubspot_sync_portal() AND l.mode <> 'audit' AND l.status <> 'running' ORDER BY l.completed_at DESC LIMIT 1) f ON true \
LEFT JOIN LATERAL (SELECT max(completed_at) AS last_good FROM sync_logs l \
                   WHERE l.platform = 'hubspot' AND l.sync_type = t.sync_type \
                   AND l.portal_id = hubspot_sync_portal() AND l.mode <> 'audit' AND l.status IN ('success', 'partial')) g ON true";

const FINISHED_SQL: &str = "\
SELECT id, sync_type, status, mode, duration_ms, completed_at FROM sync_logs \
WHERE completed_at > $1 AND portal_id = hubspot_sync_portal() ORDER BY completed_at LIMIT 1000";

/// The history of each of `sync_types`, in that order.
pub async fn history(conn: &mut AsyncPgConnection, sync_types: Vec<String>) -> Result<Vec<HistoryRow>, StoreError> {
    Ok(sql_query(HISTORY_SQL).bind::<Array<Text>, _>(sync_types).load(conn).await?)
}

/// Runs finished after `since`, oldest first (at most 1,000).
pub async fn finished_since(
    conn: &mut AsyncPgConnection,
    since: DateTime<Utc>,
) -> Result<Vec<FinishedRow>, StoreError> {
    Ok(sql_query(FINISHED_SQL).bind::<Timestamptz, _>(since).load(conn).await?)
}

//! What the status page's charts read of `sync_logs`: the finished runs of each object, summed
//! per time bucket in SQL (`GET /api/sync/history`). One query, bounded (at most one row per
//! object and bucket), a range scan of `sync_logs_started_idx`.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Double, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::StoreError;

/// One object's finished runs (reconciliation runs: incremental and full) that started in one
/// bucket.
#[derive(Clone, Debug, PartialEq, QueryableByName)]
pub struct RunBucket {
    #[diesel(sql_type = Text)]
    pub sync_type: String,
    /// The bucket's index, 0 for the oldest.
    #[diesel(sql_type = Integer)]
    pub bucket: i32,
    #[diesel(sql_type = BigInt)]
    pub runs: i64,
    #[diesel(sql_type = BigInt)]
    pub success: i64,
    #[diesel(sql_type = BigInt)]
    pub partial: i64,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    #[diesel(sql_type = BigInt)]
    pub records_processed: i64,
    #[diesel(sql_type = BigInt)]
    pub records_failed: i64,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub duration_avg_ms: Option<i64>,
    #[diesel(sql_type = Nullable<BigInt>)]
    pub duration_max_ms: Option<i64>,
}

const RUN_BUCKETS_SQL: &str = "\
SELECT sync_type, floor(extract(epoch FROM started_at - $1) / $2)::int AS bucket, \
       count(*) AS runs, \
       count(*) FILTER (WHERE status = 'success') AS success, \
       count(*) FILTER (WHERE status = 'partial') AS partial, \
       count(*) FILTER (WHERE status = 'failed') AS failed, \
       coalesce(sum(records_processed), 0)::bigint AS records_processed, \
       coalesce(sum(records_failed), 0)::bigint AS records_failed, \
       round(avg(duration_ms))::bigint AS duration_avg_ms, \
       max(duration_ms) AS duration_max_ms \
FROM sync_logs \
WHERE started_at >= $1 AND started_at < $1 + make_interval(secs => $2 * $3) \
  AND platform = 'hubspot' AND mode IN ('incremental', 'full') AND status <> 'running' \
  AND sync_type = ANY($4) AND portal_id = hubspot_sync_portal() \
GROUP BY 1, 2 ORDER BY 1, 2";

/// The finished runs of `sync_types` that started in `buckets` buckets of `step_seconds` from
/// `from`, summed per object and bucket; buckets without runs are absent.
pub async fn run_buckets(
    conn: &mut AsyncPgConnection,
    from: DateTime<Utc>,
    step_seconds: i64,
    buckets: i32,
    sync_types: Vec<String>,
) -> Result<Vec<RunBucket>, StoreError> {
    Ok(diesel::sql_query(RUN_BUCKETS_SQL)
        .bind::<Timestamptz, _>(from)
        .bind::<Double, _>(step_seconds as f64)
        .bind::<Integer, _>(buckets)
        .bind::<Array<Text>, _>(sync_types)
        .load(conn)
        .await?)
}

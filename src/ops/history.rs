//! `GET /api/sync/history?window=24h|7d`: what the status page's charts draw. Per object, the
//! finished runs of the window summed per time bucket (24 h: 48 buckets of 30 min; 7 d: 84
//! buckets of 2 h) in one SQL query (`store::history`): runs by status, records processed and
//! failed, average and longest duration. And, from memory, webhook requests per minute over the
//! last hour (`webhook::stats`' ring) and the queue depth now.
//!
//! Only counts, times and durations: no run id, no error text, so the same answer for everyone.
//!
//! `?account=<portal id>`: that account's runs (`ops::scope`); the live minutes are this
//! process's, the default account's runtime's.

use actix_web::web;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::OpsState;
use super::error::{ApiError, ErrorBody};
use super::scope;
use crate::hubspot::HubSpot;
use crate::kind::ObjectKind;
use crate::store::history::{self, RunBucket};
use crate::store::{Pool, accounts};

/// The windows the charts offer: name, bucket length in seconds, buckets.
const WINDOWS: [(&str, i64, i32); 2] = [("24h", 30 * 60, 48), ("7d", 2 * 60 * 60, 84)];
/// Minutes of webhook figures (the ring holds an hour).
const LIVE_MINUTES: usize = 60;

/// Options of `GET /api/sync/history`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// The account whose runs to sum (a HubSpot portal id, see `GET /api/sync/accounts`);
    /// default: the default account.
    #[param(example = 62515)]
    pub account: Option<i64>,
    /// `24h` (48 buckets of 30 min, the default) or `7d` (84 buckets of 2 h).
    #[param(example = "24h")]
    pub window: Option<String>,
}

/// The runs of one object, one element per bucket in every array.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct ObjectHistory {
    #[schema(example = "contacts")]
    pub object: String,
    /// Finished runs (incremental and full) that started in the bucket.
    pub runs: Vec<i64>,
    pub success: Vec<i64>,
    pub partial: Vec<i64>,
    pub failed: Vec<i64>,
    pub records_processed: Vec<i64>,
    pub records_failed: Vec<i64>,
    /// Null where the bucket has no run.
    pub duration_avg_ms: Vec<Option<i64>>,
    pub duration_max_ms: Vec<Option<i64>>,
}

/// One minute of the live figures.
#[derive(Debug, Default, Serialize, utoipa::ToSchema)]
pub struct LiveMinuteView {
    pub minute: DateTime<Utc>,
    /// Webhook requests received, and of those refused.
    pub received: u64,
    pub rejected: u64,
    /// HubSpot requests sent (every lane: webhook fetches, runs, fast polling), and of those
    /// answered 429.
    pub hubspot_requests: u64,
    pub hubspot_rate_limited: u64,
    /// Webhook-to-row latency of the ids the fetchers stored: mean and longest; null when none
    /// was stored.
    pub latency_avg_ms: Option<u64>,
    pub latency_max_ms: Option<u64>,
    /// The deepest the webhook queue was.
    pub queue_depth_max: u64,
}

/// What the process keeps in memory.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct LiveHistory {
    /// The last hour, oldest first, the current (incomplete) minute last.
    pub minutes: Vec<LiveMinuteView>,
    /// HubSpot's request budget per minute (`HUBSPOT_REQUESTS_PER_10S` x 6); null without a
    /// HubSpot token.
    pub hubspot_budget_per_minute: Option<u64>,
    pub queue_depth: u64,
}

/// The charts' data.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct History {
    #[schema(example = "24h")]
    pub window: String,
    pub bucket_seconds: i64,
    /// Each bucket's start, oldest first; the last bucket holds now.
    pub buckets: Vec<DateTime<Utc>>,
    /// `contacts`, `deals`, `calls`, `owners`, in that order.
    pub objects: Vec<ObjectHistory>,
    pub live: LiveHistory,
}

/// The runs of every object over the last 24 hours or 7 days, summed per bucket.
#[utoipa::path(get, path = "/api/sync/history", tag = "sync", params(HistoryQuery),
    responses(
        (status = 200, description = "Runs per object and bucket, and live figures", body = History),
        (status = 400, description = "Unknown window", body = ErrorBody),
        (status = 404, description = "No account has this portal id", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn history(
    pool: web::Data<Pool>,
    ops: web::Data<OpsState>,
    query: web::Query<HistoryQuery>,
) -> Result<web::Json<History>, ApiError> {
    let name = query.window.as_deref().unwrap_or("24h");
    let &(window, step, count) = WINDOWS
        .iter()
        .find(|(w, _, _)| *w == name)
        .ok_or_else(|| ApiError::BadRequest("window must be 24h or 7d".to_owned()))?;
    let now = Utc::now();
    let buckets = bucket_starts(now, step, count);
    let from = buckets.first().copied().unwrap_or(now);
    let names = ObjectKind::ALL.map(|k| k.as_str().to_owned()).to_vec();
    let mut conn = pool.get().await.map_err(ApiError::store)?;
    let account = scope::resolve(&mut conn, query.account).await?;
    let rows = accounts::in_scope(&mut conn, account.portal_id, |conn| {
        Box::pin(async move { history::run_buckets(conn, from, step, count, names).await })
    })
    .await
    .map_err(ApiError::store)?;
    drop(conn);
    let objects = ObjectKind::ALL.iter().map(|kind| object_history(kind.as_str(), &rows, count as usize)).collect();
    let live = live_history(&ops, now);
    Ok(web::Json(History { window: window.to_owned(), bucket_seconds: step, buckets, objects, live }))
}

/// The last hour, minute by minute, from the webhook figures, the HubSpot client and the queue.
fn live_history(ops: &OpsState, now: DateTime<Utc>) -> LiveHistory {
    let mut minutes: Vec<LiveMinuteView> = ops
        .webhooks
        .per_minute(now, LIVE_MINUTES)
        .into_iter()
        .map(|(minute, received, rejected)| LiveMinuteView { minute, received, rejected, ..LiveMinuteView::default() })
        .collect();
    if let Some(hubspot) = &ops.hubspot {
        for (view, (_, m)) in minutes.iter_mut().zip(hubspot.requests_per_minute(now, LIVE_MINUTES)) {
            (view.hubspot_requests, view.hubspot_rate_limited) = (m.requests, m.rate_limited);
        }
    }
    if let Some(queue) = &ops.queue {
        for (view, (_, m)) in minutes.iter_mut().zip(queue.freshness().per_minute(now, LIVE_MINUTES)) {
            view.latency_avg_ms = m.latency_avg_ms();
            view.latency_max_ms = (m.stored > 0).then_some(m.latency_max_ms);
            view.queue_depth_max = m.depth_max;
        }
    }
    LiveHistory {
        minutes,
        hubspot_budget_per_minute: ops.hubspot.as_ref().map(HubSpot::budget_per_minute),
        queue_depth: (ops.queue_depth)(),
    }
}

/// The starts of `count` buckets of `step` seconds, aligned on multiples of `step`, the last
/// one holding `now`.
pub fn bucket_starts(now: DateTime<Utc>, step: i64, count: i32) -> Vec<DateTime<Utc>> {
    let last = now.timestamp().div_euclid(step) * step;
    (0..i64::from(count)).rev().filter_map(|back| DateTime::from_timestamp(last - back * step, 0)).collect()
}

/// One object's arrays from the rows of all objects (absent buckets are zero, or null durations).
fn object_history(object: &str, rows: &[RunBucket], count: usize) -> ObjectHistory {
    let mut h = ObjectHistory {
        object: object.to_owned(),
        runs: vec![0; count],
        success: vec![0; count],
        partial: vec![0; count],
        failed: vec![0; count],
        records_processed: vec![0; count],
        records_failed: vec![0; count],
        duration_avg_ms: vec![None; count],
        duration_max_ms: vec![None; count],
    };
    for row in rows.iter().filter(|r| r.sync_type == object) {
        let Some(i) = usize::try_from(row.bucket).ok().filter(|i| *i < count) else { continue };
        h.runs[i] = row.runs;
        h.success[i] = row.success;
        h.partial[i] = row.partial;
        h.failed[i] = row.failed;
        h.records_processed[i] = row.records_processed;
        h.records_failed[i] = row.records_failed;
        h.duration_avg_ms[i] = row.duration_avg_ms;
        h.duration_max_ms[i] = row.duration_max_ms;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn buckets_are_aligned_and_the_last_holds_now() {
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 17, 44, 10).unwrap();
        let b = bucket_starts(now, 1800, 48);
        assert_eq!(b.len(), 48);
        assert_eq!(b[47], Utc.with_ymd_and_hms(2026, 12, 2, 17, 30, 0).unwrap());
        assert_eq!(b[0], Utc.with_ymd_and_hms(2026, 12, 1, 18, 0, 0).unwrap());
        let week = bucket_starts(now, 7200, 84);
        assert_eq!(week[83], Utc.with_ymd_and_hms(2026, 12, 2, 16, 0, 0).unwrap());
    }

    #[test]
    fn rows_land_in_their_object_and_bucket() {
        let row = |sync_type: &str, bucket, runs| RunBucket {
            sync_type: sync_type.to_owned(),
            bucket,
            runs,
            success: runs,
            partial: 0,
            failed: 0,
            records_processed: 10 * runs,
            records_failed: 0,
            duration_avg_ms: Some(5),
            duration_max_ms: Some(9),
        };
        let rows = [row("contacts", 3, 2), row("deals", 3, 7), row("contacts", 99, 1)];
        let h = object_history("contacts", &rows, 48);
        assert_eq!((h.runs[3], h.records_processed[3], h.duration_max_ms[3]), (2, 20, Some(9)));
        assert_eq!(h.runs.iter().sum::<i64>(), 2, "other objects and buckets out of range are left out");
        assert_eq!(h.duration_avg_ms[0], None);
    }
}

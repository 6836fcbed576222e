//! The status API: `GET /api/sync/status`, `GET /api/sync/logs` and the admin-only
//! `GET /api/sync/failures` and `POST /api/sync/{object}`. Each handler is annotated for the
//! OpenAPI document (`ops::openapi`), so the document is generated from this code.
//!
//! The reads are public but show summaries only (status, counts, times, figures): run ids, the
//! failed records' ids and the error texts in `error_details` (PostgreSQL errors, HubSpot error
//! bodies) are shown only with the admin token ([`Access`]), and left out of the JSON without
//! it.
//!
//! Each read takes `?account=<portal id>` ([`AccountQuery`], `ops::scope`): the rows of that
//! account only, read in one transaction in its scope; without it, the default account's.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::OpsState;
use super::admin::{Access, AdminAuth};
use super::error::{ApiError, ErrorBody};
use super::scope;
use crate::kind::ObjectKind;
use crate::poller::associations::SYNC_TYPE as ASSOCIATIONS;
use crate::poller::control::{SharedControl, TriggerError};
use crate::poller::fast::{LaneFigures, ObjectMode};
use crate::queue::Queue;
use crate::queue::freshness::Figures;
use crate::store::audit::{self, LastAudit};
use crate::store::sync_failures::{self, Failure};
use crate::store::sync_logs::{self, LatestStatus, RunMode, RunTrigger, SyncLog};
use crate::store::{Pool, StoreError, accounts};

/// Most runs `GET /api/sync/logs` returns at once.
pub const MAX_LOG_LIMIT: i64 = 200;
const DEFAULT_LOG_LIMIT: i64 = 20;

/// The latest run of one object plus live figures.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ObjectStatus {
    /// `contacts`, `deals`, `calls` or `owners`.
    #[schema(example = "contacts")]
    pub sync_type: String,
    /// When the latest run finished (or started, while it runs); null when it never ran.
    pub last_sync_time: Option<DateTime<Utc>>,
    /// `success`, `failed`, `partial`, `running`, or `never`.
    #[schema(example = "success")]
    pub status: String,
    pub records_processed: i32,
    pub records_failed: i32,
    /// Null while running or when it never ran.
    pub duration_ms: Option<i64>,
    /// The next scheduled run; null when the schedule never fires again, and for an account other
    /// than the default one (this process schedules the default account's runs).
    pub next_run: Option<DateTime<Utc>>,
    /// Records of this object parked in `sync_failures` (see `GET /api/sync/failures`).
    pub parked: i64,
    /// When the oldest parked record of this object first failed; null when none is parked.
    pub oldest_parked: Option<DateTime<Utc>>,
    /// The latest finished drift audit of this object (`hubspot-sync audit`, `SCHEDULE_AUDIT`);
    /// null when none ran.
    pub last_audit: Option<AuditStatus>,
    /// How fresh webhooks keep this object, over the last five minutes; null for owners (no
    /// webhooks), while real-time fetching is off, and for an account other than the default one.
    pub realtime: Option<RealtimeFreshness>,
    /// How this object is kept fresh between its scheduled runs: `webhooks`, `fast_polling`
    /// (searched every `FAST_POLL_INTERVAL`; webhooks too when configured) or `schedules_only`.
    #[schema(example = "fast_polling")]
    pub mode: String,
    /// The fast polling lanes of this object; null unless its mode is `fast_polling`, and for an
    /// account other than the default one.
    pub fast_polling: Option<FastPollingStatus>,
    /// Process-wide figures, the same in every element.
    pub live: LiveFigures,
}

/// The real-time path of one object over the last five minutes.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct RealtimeFreshness {
    /// From a webhook's arrival to its record stored: the median and the 99th percentile, in
    /// milliseconds; null without samples.
    pub change_to_row_p50_ms: Option<u64>,
    pub change_to_row_p99_ms: Option<u64>,
    /// Records stored by the fetchers.
    pub records_stored: u64,
    /// Events that asked for a read (repeats included).
    pub events: u64,
    /// HubSpot requests the fetchers made.
    pub reads: u64,
    /// `reads / events`; null before any event.
    pub reads_per_event: Option<f64>,
}

impl From<Figures> for RealtimeFreshness {
    fn from(f: Figures) -> Self {
        let ms = |d: Option<std::time::Duration>| d.map(|d| d.as_millis() as u64);
        Self {
            change_to_row_p50_ms: ms(f.p50),
            change_to_row_p99_ms: ms(f.p99),
            records_stored: f.stored as u64,
            events: f.events,
            reads: f.reads,
            reads_per_event: f.reads_per_event(),
        }
    }
}

/// The fast polling lanes of one object.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FastPollingStatus {
    /// Searches every `FAST_POLL_INTERVAL`, windows ending now.
    pub fast: LaneStatus,
    /// Searches every `FAST_POLL_DELAYED_INTERVAL`, windows ending `FAST_POLL_DELAY` ago.
    pub delayed: LaneStatus,
}

/// One fast polling lane since start-up.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LaneStatus {
    /// How far behind now the lane's last completely searched window ends, in milliseconds;
    /// null before its first complete pass (or while another instance leads).
    pub lag_ms: Option<u64>,
    /// The end of that window: every change up to it was found.
    pub covered_to: Option<DateTime<Utc>>,
    pub last_pass: Option<DateTime<Utc>>,
    /// Whether the last pass failed (the next one searches the same window again); the error
    /// text only with the admin token.
    pub failing: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    pub passes: u64,
    pub failed_passes: u64,
    /// Search pages read.
    pub searches: u64,
    /// Changed ids the searches found.
    pub found: u64,
    /// Of those, ids queued for a read by the batch fetchers.
    pub queued: u64,
    /// Of those, records written straight from the search results (when the searches carry
    /// every kept property). The rest were read at that version already, or were waiting.
    pub stored: u64,
}

impl LaneStatus {
    fn of(f: LaneFigures, now: DateTime<Utc>, access: Access) -> Self {
        Self {
            lag_ms: f.lag(now).map(|lag| lag.num_milliseconds().max(0) as u64),
            covered_to: f.covered_to,
            last_pass: f.last_pass,
            failing: f.last_error.is_some(),
            last_error: f.last_error.filter(|_| access.details()),
            passes: f.passes,
            failed_passes: f.failed_passes,
            searches: f.searches,
            found: f.found,
            queued: f.queued,
            stored: f.stored,
        }
    }
}

/// The latest drift audit of one object, with its counts.
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct AuditStatus {
    /// The audit's `sync_logs` row; only with the admin token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
    pub completed_at: DateTime<Utc>,
    /// `success` (no drift left), `partial` (drift left) or `failed` (could not complete).
    pub status: String,
    /// Live in HubSpot, absent or archived here (found, before any repair).
    pub missing: i64,
    /// Live here, not live in HubSpot.
    pub extra: i64,
    /// Older here than in HubSpot.
    pub stale: i64,
    /// Parked in `sync_failures`.
    pub parked: i64,
    /// Found drift the audit's repair fixed.
    pub repaired: i64,
    /// Missing, extra and stale ids still differing at its end.
    pub drift_left: i64,
}

impl From<&LastAudit> for AuditStatus {
    fn from(a: &LastAudit) -> Self {
        let n =
            |key: &str| a.details.as_ref().and_then(|d| d.get(key)).and_then(serde_json::Value::as_i64).unwrap_or(0);
        Self {
            run_id: Some(a.id),
            completed_at: a.completed_at,
            status: a.status.as_str().to_owned(),
            missing: n("missing"),
            extra: n("extra"),
            stale: n("stale"),
            parked: n("parked"),
            repaired: n("repaired"),
            drift_left: n("drift_left"),
        }
    }
}

/// Live figures of this process.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct LiveFigures {
    /// Distinct object ids waiting in the webhook queue.
    pub queue_depth: u64,
    /// Webhook requests received in the last hour (refused ones included).
    pub webhooks_received_last_hour: u64,
    /// Webhook requests refused in the last hour.
    pub webhooks_rejected_last_hour: u64,
    /// When the last webhook request arrived; null when none has since start-up.
    pub last_webhook_time: Option<DateTime<Utc>>,
    /// The share of the request budget the fast polling lanes may use (`FAST_POLL_BUDGET_SHARE`,
    /// 0.0-1.0); null while they do not run.
    pub fast_polling_budget_share: Option<f64>,
    /// The share of the request budget they used over the last minute (their searches and the
    /// reads of what they found); null while they do not run.
    pub fast_polling_budget_used: Option<f64>,
}

/// One reconciliation run. `id` and `error_details` are left out without the admin token.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RunView {
    /// The run's `sync_logs` row; only with the admin token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<Uuid>,
    pub sync_type: String,
    /// `running`, `success`, `partial` or `failed`.
    pub status: String,
    /// `schedule`, `manual`, `startup` or `sql`.
    pub trigger: String,
    /// `incremental` or `full`, or `audit` for a drift audit (its counts in `error_details`).
    pub mode: String,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub records_processed: i32,
    pub records_failed: i32,
    /// HubSpot error bodies, PostgreSQL errors and failed ids (null when there were none); only
    /// with the admin token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable)]
    pub error_details: Option<Option<serde_json::Value>>,
}

impl RunView {
    /// The run as `access` may see it.
    pub fn of(log: SyncLog, access: Access) -> Self {
        let mut run = Self::from(log);
        if !access.details() {
            (run.id, run.error_details) = (None, None);
        }
        run
    }
}

impl From<SyncLog> for RunView {
    fn from(log: SyncLog) -> Self {
        Self {
            id: Some(log.id),
            sync_type: log.sync_type,
            status: log.status.as_str().to_owned(),
            trigger: log.trigger.as_str().to_owned(),
            mode: log.mode.as_str().to_owned(),
            started_at: log.started_at,
            completed_at: log.completed_at,
            duration_ms: log.duration_ms,
            records_processed: log.records_processed,
            records_failed: log.records_failed,
            error_details: Some(log.error_details),
        }
    }
}

/// The objects, for the OpenAPI document (paths and queries take them as plain strings).
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ObjectName {
    Contacts,
    Deals,
    Calls,
    Owners,
}

/// What `POST /api/sync/{object}` starts: a run of an object, or the association sweep.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SyncName {
    Contacts,
    Deals,
    Calls,
    Owners,
    Associations,
}

/// The account of `GET /api/sync/status`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccountQuery {
    /// The HubSpot portal id of the account to read (see `GET /api/sync/accounts`); default: the
    /// default account. An unknown one: 404.
    #[param(example = 62515)]
    pub account: Option<i64>,
}

/// Filters of `GET /api/sync/logs`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// The account whose runs to read (a HubSpot portal id, see `GET /api/sync/accounts`);
    /// default: the default account.
    #[param(example = 62515)]
    pub account: Option<i64>,
    /// Only runs of this object.
    #[param(inline, value_type = Option<ObjectName>, example = "contacts")]
    pub object: Option<String>,
    /// How many runs, newest first (1 to 200, default 20).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<i64>,
}

/// Options of `POST /api/sync/{object}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ForceQuery {
    /// A full pass over every record instead of changes since the last good run.
    pub full: Option<bool>,
    /// The portal id of the account to sync (default: the default account). 404 when no
    /// account has it; 503 when this process does not run it.
    pub account: Option<i64>,
}

/// The answer to a force-sync request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ForceSyncAccepted {
    /// The `sync_logs` id of the run that was started.
    pub run_id: Uuid,
}

/// Latest run per object, with the live queue and webhook figures (the audit's run id only with
/// the admin token).
#[utoipa::path(get, path = "/api/sync/status", tag = "sync", params(AccountQuery),
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "One element per object", body = [ObjectStatus]),
        (status = 400, description = "Invalid query string", body = ErrorBody),
        (status = 401, description = "A bearer token that is not the admin token", body = ErrorBody),
        (status = 404, description = "No account has this portal id", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn status(
    access: Access,
    pool: web::Data<Pool>,
    ops: web::Data<OpsState>,
    query: web::Query<AccountQuery>,
) -> Result<web::Json<Vec<ObjectStatus>>, ApiError> {
    let mut conn = pool.get().await.map_err(ApiError::store)?;
    let account = scope::resolve(&mut conn, query.account).await?;
    let (latest, parked, audits) = accounts::in_scope(&mut conn, account.portal_id, |conn| {
        Box::pin(async move {
            let latest = sync_logs::latest_status(conn).await?;
            let parked = sync_failures::summary(conn).await?;
            Ok::<_, StoreError>((latest, parked, audit::latest(conn).await?))
        })
    })
    .await
    .map_err(ApiError::store)?;
    drop(conn);
    let now = Utc::now();
    let webhooks = ops.webhooks.last_hour(now);
    let share = ops.polling.budget_share();
    let live = LiveFigures {
        queue_depth: (ops.queue_depth)(),
        webhooks_received_last_hour: webhooks.received,
        webhooks_rejected_last_hour: webhooks.rejected,
        last_webhook_time: ops.webhooks.last_webhook(),
        fast_polling_budget_share: share.map(|(cap, _)| cap),
        fast_polling_budget_used: share.map(|(_, used)| used),
    };
    // This process's schedules, queue and fast lanes are the default account's.
    let own = account.is_default;
    let next_runs = if own { ops.control.next_runs() } else { Vec::new() };
    let mut rows = ObjectKind::ALL
        .into_iter()
        .map(|kind| {
            let next_run = next_runs.iter().find(|(k, _)| *k == kind).and_then(|(_, at)| *at);
            let mut row = object_status(
                kind.as_str(),
                latest.iter().find(|row| row.sync_type == kind.as_str()),
                next_run,
                live.clone(),
            );
            if let Some(p) = parked.iter().find(|p| p.object == kind.as_str()) {
                (row.parked, row.oldest_parked) = (p.parked, Some(p.oldest));
            }
            row.last_audit = audits
                .iter()
                .find(|a| a.sync_type == kind.as_str())
                .map(|a| AuditStatus { run_id: access.details().then_some(a.id), ..AuditStatus::from(a) });
            let mode = ops.polling.mode(kind);
            // Without webhooks the queue holds what the lanes found: their lag says more.
            let polled_only = mode == ObjectMode::FastPolling && !ops.polling.webhooks;
            row.realtime = realtime(ops.queue.as_deref(), kind).filter(|_| !polled_only && own);
            row.mode = mode.as_str().to_owned();
            row.fast_polling = ops.polling.lanes(kind).filter(|_| own).map(|(fast, delayed)| FastPollingStatus {
                fast: LaneStatus::of(fast, now, access),
                delayed: LaneStatus::of(delayed, now, access),
            });
            row
        })
        .collect::<Vec<_>>();
    // The association sweep: a row of its own after the objects'.
    let sweep = latest.iter().find(|row| row.sync_type == ASSOCIATIONS);
    let next_sweep = ops.control.next_sweep().filter(|_| own);
    let mut row = object_status(ASSOCIATIONS, sweep, next_sweep, live);
    row.mode = "sweep".to_owned();
    rows.push(row);
    Ok(web::Json(rows))
}

/// The freshness figures of `kind`, when webhooks feed it.
fn realtime(queue: Option<&Queue>, kind: ObjectKind) -> Option<RealtimeFreshness> {
    let queue = queue.filter(|_| kind != ObjectKind::Owners)?;
    Some(queue.freshness().figures(kind, tokio::time::Instant::now()).into())
}

fn object_status(
    sync_type: &str,
    row: Option<&LatestStatus>,
    next_run: Option<DateTime<Utc>>,
    live: LiveFigures,
) -> ObjectStatus {
    match row {
        Some(row) => ObjectStatus {
            sync_type: sync_type.to_owned(),
            last_sync_time: row.last_sync_time,
            status: row.status.as_str().to_owned(),
            records_processed: row.records_processed,
            records_failed: row.records_failed,
            duration_ms: row.duration_ms,
            next_run,
            parked: 0,
            oldest_parked: None,
            last_audit: None,
            realtime: None,
            mode: String::new(),
            fast_polling: None,
            live,
        },
        None => ObjectStatus {
            sync_type: sync_type.to_owned(),
            last_sync_time: None,
            status: "never".to_owned(),
            records_processed: 0,
            records_failed: 0,
            duration_ms: None,
            next_run,
            parked: 0,
            oldest_parked: None,
            last_audit: None,
            realtime: None,
            mode: String::new(),
            fast_polling: None,
            live,
        },
    }
}

/// Recent runs, newest first (ids and `error_details` only with the admin token).
#[utoipa::path(get, path = "/api/sync/logs", tag = "sync", params(LogsQuery),
    security((), ("admin_token" = [])),
    responses(
        (status = 200, description = "Runs, newest first", body = [RunView]),
        (status = 400, description = "Unknown object or limit out of range", body = ErrorBody),
        (status = 401, description = "A bearer token that is not the admin token", body = ErrorBody),
        (status = 404, description = "No account has this portal id", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn logs(
    access: Access,
    pool: web::Data<Pool>,
    query: web::Query<LogsQuery>,
) -> Result<web::Json<Vec<RunView>>, ApiError> {
    let kind = match query.object.as_deref() {
        None => None,
        Some(raw) => Some(raw.parse::<ObjectKind>().map_err(|e| ApiError::BadRequest(e.to_string()))?),
    };
    let limit = query.limit.unwrap_or(DEFAULT_LOG_LIMIT);
    if !(1..=MAX_LOG_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_LOG_LIMIT}")));
    }
    let mut conn = pool.get().await.map_err(ApiError::store)?;
    let account = scope::resolve(&mut conn, query.account).await?;
    let runs = accounts::in_scope(&mut conn, account.portal_id, |conn| {
        Box::pin(async move { Ok(sync_logs::recent(conn, kind.map(ObjectKind::as_str), limit).await?) })
    })
    .await
    .map_err(ApiError::store)?;
    Ok(web::Json(runs.into_iter().map(|run| RunView::of(run, access)).collect()))
}

/// Starts a run of one object now (admin only).
#[utoipa::path(post, path = "/api/sync/{object}", tag = "sync",
    params(
        ("object" = SyncName, Path, description = "contacts, deals, calls or owners; associations for the association sweep", example = "contacts"),
        ForceQuery,
    ),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "The run was started", body = ForceSyncAccepted),
        (status = 400, description = "Invalid query string", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "Unknown object", body = ErrorBody),
        (status = 503, description = "No poller can run it now", body = ErrorBody),
    ))]
pub async fn force_sync(
    _admin: AdminAuth,
    ops: web::Data<OpsState>,
    pool: web::Data<Pool>,
    object: web::Path<String>,
    query: web::Query<ForceQuery>,
) -> Result<HttpResponse, ApiError> {
    let control = control_of(&ops, &pool, query.account).await?;
    if object.as_str() == ASSOCIATIONS {
        let run_id = control.trigger_associations(RunTrigger::Manual).await.map_err(|e| match e {
            TriggerError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
            TriggerError::Failed(cause) => ApiError::Internal(cause),
        })?;
        tracing::info!(run.id = %run_id, "association sweep started from the API");
        return Ok(HttpResponse::Accepted().json(ForceSyncAccepted { run_id }));
    }
    let kind = object.parse::<ObjectKind>().map_err(|e| ApiError::NotFound(e.to_string()))?;
    let mode = if query.full.unwrap_or(false) { RunMode::Full } else { RunMode::Incremental };
    let run_id = control.trigger(kind, mode, RunTrigger::Manual).await.map_err(|e| match e {
        TriggerError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
        TriggerError::Failed(cause) => ApiError::Internal(cause),
    })?;
    tracing::info!(object.kind = %kind, run.id = %run_id, run.mode = mode.as_str(), account.portal_id = query.account,
        "sync started from the API");
    Ok(HttpResponse::Accepted().json(ForceSyncAccepted { run_id }))
}

/// The poller a force sync of `account` goes to: the default account's without one (or naming
/// its portal id), else that account's while this process runs it.
async fn control_of(ops: &OpsState, pool: &Pool, account: Option<i64>) -> Result<SharedControl, ApiError> {
    let Some(portal_id) = account.filter(|p| Some(*p) != ops.default_portal) else {
        return Ok(ops.control.clone());
    };
    if let Some(control) = ops.accounts.get(portal_id) {
        return Ok(control);
    }
    let mut conn = pool.get().await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
    match crate::store::accounts::get(&mut conn, portal_id).await {
        Ok(Some(found)) if found.is_default => Ok(ops.control.clone()),
        Ok(Some(_)) => Err(ApiError::Unavailable(format!("account {portal_id} is not run by this process"))),
        Ok(None) => Err(ApiError::NotFound(format!("no account has portal id {portal_id}"))),
        Err(e) => Err(ApiError::Unavailable(e.to_string())),
    }
}

/// Most parked records `GET /api/sync/failures` returns at once.
pub const MAX_FAILURES_LIMIT: i64 = 1000;

/// Filters of `GET /api/sync/failures`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FailuresQuery {
    /// The account whose parked records to read (a HubSpot portal id, see
    /// `GET /api/sync/accounts`); default: the default account.
    #[param(example = 62515)]
    pub account: Option<i64>,
    /// Only parked records of this object.
    #[param(inline, value_type = Option<ObjectName>, example = "contacts")]
    pub object: Option<String>,
    /// How many, oldest first (1 to 1000, default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// A record that could not be read or stored, parked and retried with backoff.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FailureView {
    /// `contacts`, `deals`, `calls` or `owners`.
    #[schema(example = "contacts")]
    pub object: String,
    pub hubspot_id: String,
    /// Why the last attempt failed.
    pub error: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Failed attempts so far.
    pub attempts: i32,
    /// When it is tried again.
    pub next_attempt: DateTime<Utc>,
    /// HubSpot's last-modified time of the version that failed, when it was read.
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<Failure> for FailureView {
    fn from(f: Failure) -> Self {
        Self {
            object: f.object,
            hubspot_id: f.hubspot_id,
            error: f.error,
            first_seen: f.first_seen,
            last_seen: f.last_seen,
            attempts: f.attempts,
            next_attempt: f.next_attempt,
            updated_at: f.updated_at,
        }
    }
}

/// Parked records (`sync_failures`), oldest first (admin only: errors can quote record values).
#[utoipa::path(get, path = "/api/sync/failures", tag = "sync", params(FailuresQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Parked records, oldest first", body = [FailureView]),
        (status = 400, description = "Unknown object or limit out of range", body = ErrorBody),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No account has this portal id", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn failures(
    _admin: AdminAuth,
    pool: web::Data<Pool>,
    query: web::Query<FailuresQuery>,
) -> Result<web::Json<Vec<FailureView>>, ApiError> {
    let kind = match query.object.as_deref() {
        None => None,
        Some(raw) => Some(raw.parse::<ObjectKind>().map_err(|e| ApiError::BadRequest(e.to_string()))?),
    };
    let limit = query.limit.unwrap_or(100);
    if !(1..=MAX_FAILURES_LIMIT).contains(&limit) {
        return Err(ApiError::BadRequest(format!("limit must be between 1 and {MAX_FAILURES_LIMIT}")));
    }
    let mut conn = pool.get().await.map_err(ApiError::store)?;
    let account = scope::resolve(&mut conn, query.account).await?;
    let rows = accounts::in_scope(&mut conn, account.portal_id, |conn| {
        Box::pin(async move { Ok(sync_failures::list(conn, kind.map(ObjectKind::as_str), limit).await?) })
    })
    .await
    .map_err(ApiError::store)?;
    Ok(web::Json(rows.into_iter().map(FailureView::from).collect()))
}

//! Every metric name the process records, and the bucket tables of its histograms, in one leaf
//! module that imports nothing of ours (so every layer can record without pointing up).
//!
//! Labels are noted next to each name. The recorder and the `/metrics` endpoint are in
//! `telemetry::prometheus`; recording is the `metrics` crate's macros
//! (`metrics::counter!(metric::RUNS, ...)`), which cost nothing while no recorder is installed.
//!
//! **The `account` label.** Every metric in [`PER_ACCOUNT`] (requests, 429s, records fetched and
//! written, queue depth, fetcher batches, runs, fast polling, audits) also carries `account`:
//! `default` for the default account (the process settings: its portal id may not be known,
//! and a dashboard of a single-account deployment keeps one stable value), the portal id for
//! each other account, up to 50 accounts per process, and `other` beyond (so a process running
//! hundreds of accounts still exports a bounded number of series). The label is added by the
//! recorder (`telemetry::account`), from the account whose parts recorded it; the call sites
//! below do not name it. Process-wide metrics (webhook intake, HTTP, leader, alerts) have none.

// Webhook intake (`webhook`).
/// Counter: webhook events accepted (a request carries a batch of events).
pub const WEBHOOK_EVENTS_RECEIVED: &str = "hubspot_sync_webhook_events_received_total";
/// Counter, label `reason` (`signature`, `malformed`, `queue_full`, `database`, `not_configured`,
/// `shutting_down`, `busy`, `account_not_served`: a verified batch of an account this process
/// does not run): webhook requests refused.
pub const WEBHOOK_REQUESTS_REJECTED: &str = "hubspot_sync_webhook_requests_rejected_total";
/// Counter, label `reason`: signature failures by cause (`no_secret`, `missing_headers`, `no_uri`,
/// `malformed_timestamp`, `stale`, `future`, `forged`, `v3_required`, `unknown_version`, and
/// `replayed`: a v1/v2-only repeat of a body accepted before).
pub const WEBHOOK_SIGNATURE_FAILURES: &str = "hubspot_sync_webhook_signature_failures_total";
/// Counter: events accepted but not acted on (types or objects we do not keep).
pub const WEBHOOK_EVENTS_IGNORED: &str = "hubspot_sync_webhook_events_ignored_total";
/// Counter: events for a HubSpot portal that is no account of this database (answered 204 unless
/// `WEBHOOK_UNKNOWN_PORTAL=refuse`, never written).
pub const WEBHOOK_UNKNOWN_PORTAL_EVENTS: &str = "hubspot_sync_webhook_unknown_portal_events_total";
/// Counter: verified v1/v2-only webhook batches of an account this process does not run
/// (answered 503; a v3 one is handed over).
pub const WEBHOOK_ACCOUNT_NOT_SERVED: &str = "hubspot_sync_webhook_account_not_served_total";
/// Counter: verified webhook batches stored for the account's lease holder on another machine
/// (`webhook_handoff`), one per account of the batch.
pub const WEBHOOK_HANDED_OVER: &str = "hubspot_sync_webhook_handed_over_total";

// The public HTTP port's connections (`runtime::connections`).
/// Counter: kept-alive connections closed because the next request head was not complete in
/// time (a slow or stalled client).
pub const HTTP_CONNECTIONS_CUT: &str = "hubspot_sync_http_connections_cut_total";
/// Counter: connections closed as soon as accepted because `HTTP_MAX_CONNECTIONS` were open.
pub const HTTP_CONNECTIONS_REFUSED: &str = "hubspot_sync_http_connections_refused_total";
/// Counter: connections served without a watchdog (their socket could not be duplicated: out of
/// file descriptors).
pub const HTTP_CONNECTIONS_UNWATCHED: &str = "hubspot_sync_http_connections_unwatched_total";

// The webhook queue (`queue`).
/// Gauge: distinct object ids waiting in the webhook queue.
pub const QUEUE_DEPTH: &str = "hubspot_sync_queue_depth";
/// Gauge: age in seconds of the oldest id waiting.
pub const QUEUE_OLDEST_AGE: &str = "hubspot_sync_queue_oldest_age_seconds";
/// Counter: ids offered to the queue.
pub const QUEUE_OFFERED: &str = "hubspot_sync_queue_offered_total";
/// Counter: ids offered while already waiting.
pub const QUEUE_DEDUPLICATED: &str = "hubspot_sync_queue_deduplicated_total";
/// Gauge: share of offered ids that were already waiting.
pub const QUEUE_DEDUP_RATIO: &str = "hubspot_sync_queue_dedup_ratio";
/// Counter, label `object`: waiting ids dropped because a read returned their change.
pub const QUEUE_COVERED: &str = "hubspot_sync_queue_covered_total";

// Batch fetchers (`fetcher`).
/// Counter, label `object`: batches fetched and stored.
pub const FETCHER_BATCHES: &str = "hubspot_sync_fetcher_batches_total";
/// Counter, label `object`: batches that failed and were put back.
pub const FETCHER_FAILURES: &str = "hubspot_sync_fetcher_failures_total";
/// Histogram (ids), label `object`: ids per batch.
pub const FETCHER_BATCH_SIZE: &str = "hubspot_sync_fetcher_batch_size";
/// Counter, label `object`: records parked in `sync_failures` (unreadable or refused by the database).
pub const RECORDS_PARKED: &str = "hubspot_sync_records_parked_total";
/// Counter, label `object`: parked ids queued again by the retry loop.
pub const PARKED_RETRIES: &str = "hubspot_sync_parked_retries_total";

// Records (`hubspot`, `objects`).
/// Counter, label `object`: records read from HubSpot (batch reads and reconciliation pages).
pub const OBJECTS_FETCHED: &str = "hubspot_sync_objects_fetched_total";
/// Counter, label `object`: rows written (upserted or archived) to PostgreSQL.
pub const OBJECTS_UPSERTED: &str = "hubspot_sync_objects_upserted_total";
/// Counter: association edge rows inserted or changed from HubSpot reads and events.
pub const ASSOCIATIONS_WRITTEN: &str = "hubspot_sync_associations_written_total";

// The HubSpot client (`hubspot`).
/// Counter, label `status` (HTTP status, or `error` for transport failures): HubSpot API calls.
pub const HUBSPOT_REQUESTS: &str = "hubspot_sync_hubspot_requests_total";
/// Counter, label `policy` (`TEN_SECONDLY_ROLLING`, `SECONDLY`, `DAILY`, `UNKNOWN` when HubSpot
/// names none, `other` for any other name): HubSpot answers with status 429.
pub const HUBSPOT_RATE_LIMITED: &str = "hubspot_sync_hubspot_rate_limited_total";
/// Gauge: requests left in HubSpot's current 10-second window (`X-HubSpot-RateLimit-Remaining`).
pub const HUBSPOT_BUDGET_REMAINING: &str = "hubspot_sync_hubspot_budget_remaining";
/// Gauge: HubSpot's `X-HubSpot-RateLimit-Max` (requests per window).
pub const HUBSPOT_RATELIMIT_MAX: &str = "hubspot_sync_hubspot_ratelimit_max";
/// Gauge: HubSpot's `X-HubSpot-RateLimit-Interval-Milliseconds`.
pub const HUBSPOT_RATELIMIT_INTERVAL_MS: &str = "hubspot_sync_hubspot_ratelimit_interval_milliseconds";
/// Gauge: HubSpot's `X-HubSpot-RateLimit-Daily`.
pub const HUBSPOT_RATELIMIT_DAILY: &str = "hubspot_sync_hubspot_ratelimit_daily";
/// Gauge: HubSpot's `X-HubSpot-RateLimit-Daily-Remaining`.
pub const HUBSPOT_RATELIMIT_DAILY_REMAINING: &str = "hubspot_sync_hubspot_ratelimit_daily_remaining";
/// Histogram (seconds), label `endpoint`: HubSpot call latency, retries included.
pub const HUBSPOT_REQUEST_DURATION: &str = "hubspot_sync_hubspot_request_duration_seconds";

// Reconciliation runs (`poller`).
/// Histogram (seconds), labels `object`, `status`, `mode`: reconciliation run durations.
pub const RUN_DURATION: &str = "hubspot_sync_run_duration_seconds";
/// Counter, labels `object`, `status`: finished reconciliation runs.
pub const RUNS: &str = "hubspot_sync_runs_total";

// Fast polling lanes (`poller::fast`).
/// Counter, labels `object`, `lane` (`fast`, `delayed`), `outcome` (`ok`, `failed`): passes of
/// the fast polling lanes (a failed pass searches its window again next time).
pub const FAST_POLL_PASSES: &str = "hubspot_sync_fast_poll_passes_total";
/// Counter, labels `object`, `lane`: changed ids the lanes' searches found.
pub const FAST_POLL_FOUND: &str = "hubspot_sync_fast_poll_found_total";
/// Counter, labels `object`, `lane`: of those, ids queued for a read (not yet read at that
/// version nor waiting).
pub const FAST_POLL_QUEUED: &str = "hubspot_sync_fast_poll_queued_total";
/// Counter, labels `object`, `lane`: records written straight from the search results (not yet
/// read at that version).
pub const FAST_POLL_STORED: &str = "hubspot_sync_fast_poll_stored_total";
/// Gauge (seconds), labels `object`, `lane`: how far behind now the lane's last complete window
/// ends.
pub const FAST_POLL_LAG: &str = "hubspot_sync_fast_poll_lag_seconds";

// Drift audits (`audit`).
/// Gauge, labels `object`, `kind` (`missing`, `extra`, `stale`, `parked`): drift the latest audit
/// of the object found (before any repair).
pub const AUDIT_DRIFT: &str = "hubspot_sync_audit_drift";
/// Gauge, label `object`: drift left after the latest audit of the object (after its repair).
pub const AUDIT_DRIFT_LEFT: &str = "hubspot_sync_audit_drift_left";

// Operations (`alerts`, `ops`).
/// Gauge, label `condition`: for how many accounts an alert condition holds (1 while it holds,
/// with one account).
pub const ALERTS_FIRING: &str = "hubspot_sync_alerts_firing";
/// Counter, label `result` (`delivered`, `failed`): attempts to deliver an owner change to
/// `OWNER_CHANGE_WEBHOOK_URL` (`owner_hooks`).
pub const OWNER_CHANGE_DELIVERIES: &str = "hubspot_sync_owner_change_deliveries_total";
/// Gauge: accounts other than the default one whose parts run in this process, those stopping
/// included (`runtime::accounts`).
pub const ACCOUNTS_RUNNING: &str = "hubspot_sync_accounts_running";
/// Gauge: 1 while this instance leads (holds the leader lock: schedules runs, sends alerts), else 0.
pub const LEADER: &str = "hubspot_sync_leader";
/// Counter, labels `method` (`GET`, `POST`, `HEAD`, `PUT`, `DELETE`, `PATCH`, `OPTIONS` or
/// `other`: never the method as sent), `status`: HTTP requests served on the public port.
pub const HTTP_REQUESTS: &str = "hubspot_sync_http_requests_total";

/// The metrics recorded per account: each carries the `account` label (see the module doc).
pub const PER_ACCOUNT: &[&str] = &[
    QUEUE_DEPTH,
    QUEUE_OLDEST_AGE,
    QUEUE_OFFERED,
    QUEUE_DEDUPLICATED,
    QUEUE_DEDUP_RATIO,
    QUEUE_COVERED,
    FETCHER_BATCHES,
    FETCHER_FAILURES,
    FETCHER_BATCH_SIZE,
    RECORDS_PARKED,
    PARKED_RETRIES,
    OBJECTS_FETCHED,
    OBJECTS_UPSERTED,
    ASSOCIATIONS_WRITTEN,
    HUBSPOT_REQUESTS,
    HUBSPOT_RATE_LIMITED,
    HUBSPOT_BUDGET_REMAINING,
    HUBSPOT_RATELIMIT_MAX,
    HUBSPOT_RATELIMIT_INTERVAL_MS,
    HUBSPOT_RATELIMIT_DAILY,
    HUBSPOT_RATELIMIT_DAILY_REMAINING,
    HUBSPOT_REQUEST_DURATION,
    RUN_DURATION,
    RUNS,
    FAST_POLL_PASSES,
    FAST_POLL_FOUND,
    FAST_POLL_QUEUED,
    FAST_POLL_STORED,
    FAST_POLL_LAG,
    AUDIT_DRIFT,
    AUDIT_DRIFT_LEFT,
];

/// Histogram buckets for run durations, in seconds (50 ms to 30 min).
pub const RUN_DURATION_BUCKETS: &[f64] =
    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// Histogram buckets for HubSpot call latency, in seconds (5 ms to 1 min, retries included).
pub const REQUEST_DURATION_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Histogram buckets for fetcher batch sizes (ids per batch read, at most 100).
pub const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0];

/// Every histogram with its buckets (the recorder is configured from this list).
pub const HISTOGRAMS: &[(&str, &[f64])] = &[
    (RUN_DURATION, RUN_DURATION_BUCKETS),
    (HUBSPOT_REQUEST_DURATION, REQUEST_DURATION_BUCKETS),
    (FETCHER_BATCH_SIZE, BATCH_SIZE_BUCKETS),
];

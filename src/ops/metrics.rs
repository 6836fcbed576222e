//! Prometheus metrics: the metric names every part of the process records under, the recorder
//! (installed once per process by [`install`]), and the `/metrics` endpoint served on its own
//! listener at `METRICS_PORT`, away from the public port.
//!
//! Recording is the `metrics` crate's macros (`metrics::counter!(names::X).increment(1)`); with
//! no recorder installed (tests, `sync`) they cost nothing. Rendering goes through a
//! [`PrometheusHandle`], so a test can build its own recorder and render it with [`render`].

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use actix_web::{App, HttpResponse, HttpServer, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

/// Every metric name, in one place. Labels are noted next to each.
pub mod names {
    /// Counter: webhook events accepted (a request carries a batch of events).
    pub const WEBHOOK_EVENTS_RECEIVED: &str = "hubspot_sync_webhook_events_received_total";
    /// Counter, label `reason` (`signature`, `malformed`, `queue_full`): webhook requests refused.
    pub const WEBHOOK_REQUESTS_REJECTED: &str = "hubspot_sync_webhook_requests_rejected_total";
    /// Gauge: distinct object ids waiting in the webhook queue (refreshed at every scrape).
    pub const QUEUE_DEPTH: &str = "hubspot_sync_queue_depth";
    /// Counter, label `object`: records read from HubSpot (batch reads and reconciliation pages).
    pub const OBJECTS_FETCHED: &str = "hubspot_sync_objects_fetched_total";
    /// Counter, label `object`: rows written (upserted or archived) to PostgreSQL.
    pub const OBJECTS_UPSERTED: &str = "hubspot_sync_objects_upserted_total";
    /// Counter, label `status` (HTTP status, or `error` for transport failures): HubSpot API calls.
    pub const HUBSPOT_REQUESTS: &str = "hubspot_sync_hubspot_requests_total";
    /// Counter: HubSpot answers with status 429.
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
    /// Histogram (seconds), labels `object`, `status`, `mode`: reconciliation run durations.
    pub const RUN_DURATION: &str = "hubspot_sync_run_duration_seconds";
    /// Counter, labels `object`, `status`: finished reconciliation runs.
    pub const RUNS: &str = "hubspot_sync_runs_total";
    /// Gauge, label `condition`: 1 while an alert condition holds.
    pub const ALERTS_FIRING: &str = "hubspot_sync_alerts_firing";
    /// Counter, labels `method`, `status`: HTTP requests served on the public port.
    pub const HTTP_REQUESTS: &str = "hubspot_sync_http_requests_total";
}

/// Histogram buckets for run durations, in seconds (50 ms to 30 min).
const RUN_DURATION_BUCKETS: &[f64] =
    &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0];

/// Histogram buckets for HubSpot call latency, in seconds (5 ms to 1 min, retries included).
const REQUEST_DURATION_BUCKETS: &[f64] = &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Histogram buckets for fetcher batch sizes (ids per batch read, at most 100).
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0];

/// A recorder configured as the process uses it (histograms, not summaries).
pub fn build_recorder() -> PrometheusRecorder {
    let histograms = [
        (names::RUN_DURATION, RUN_DURATION_BUCKETS),
        (names::HUBSPOT_REQUEST_DURATION, REQUEST_DURATION_BUCKETS),
        (crate::fetcher::metric::BATCH_SIZE, BATCH_SIZE_BUCKETS),
    ];
    // `set_buckets_for_metric` only fails on an empty bucket list, which these are not.
    let configured = histograms.into_iter().try_fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
        builder.set_buckets_for_metric(Matcher::Full(name.to_owned()), buckets)
    });
    match configured {
        Ok(builder) => builder.build_recorder(),
        Err(e) => {
            tracing::error!(error = %e, "histogram buckets refused; durations will be summaries");
            PrometheusBuilder::new().build_recorder()
        }
    }
}

/// Installs the process-wide recorder on first call and returns its handle; later calls return
/// the same handle. Returns `None` if another recorder was installed first.
pub fn install() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = build_recorder();
            let handle = recorder.handle();
            match metrics::set_global_recorder(recorder) {
                Ok(()) => {
                    describe();
                    Some(handle)
                }
                Err(e) => {
                    tracing::error!(error = %e, "a metrics recorder was already installed; /metrics stays empty");
                    None
                }
            }
        })
        .clone()
}

/// Help lines for the metrics recorded here.
fn describe() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!(names::WEBHOOK_EVENTS_RECEIVED, "Webhook events accepted");
    describe_counter!(names::WEBHOOK_REQUESTS_REJECTED, "Webhook requests refused, by reason");
    describe_gauge!(names::QUEUE_DEPTH, "Distinct object ids waiting in the webhook queue");
    describe_counter!(names::OBJECTS_FETCHED, "Records read from HubSpot");
    describe_counter!(names::OBJECTS_UPSERTED, "Rows written to PostgreSQL");
    describe_counter!(names::HUBSPOT_REQUESTS, "HubSpot API requests, by status");
    describe_counter!(names::HUBSPOT_RATE_LIMITED, "HubSpot answers with status 429");
    describe_gauge!(names::HUBSPOT_BUDGET_REMAINING, "Requests left in the current 10 s HubSpot window");
    describe_histogram!(names::RUN_DURATION, Unit::Seconds, "Reconciliation run durations");
    describe_counter!(names::RUNS, "Finished reconciliation runs, by status");
    describe_gauge!(names::ALERTS_FIRING, "1 while an alert condition holds");
    describe_counter!(names::HTTP_REQUESTS, "HTTP requests served on the public port");
}

/// Reads the current queue depth (the queue owns it; the scrape refreshes the gauge).
pub type DepthSource = Arc<dyn Fn() -> u64 + Send + Sync>;

/// What the metrics endpoint renders.
#[derive(Clone)]
pub struct MetricsSource {
    pub handle: PrometheusHandle,
    pub queue_depth: DepthSource,
}

/// The Prometheus text for one scrape.
pub fn render(source: &MetricsSource) -> String {
    metrics::gauge!(names::QUEUE_DEPTH).set((source.queue_depth)() as f64);
    source.handle.run_upkeep();
    source.handle.render()
}

async fn scrape(source: web::Data<MetricsSource>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(render(&source))
}

/// The metrics listener's routes (`GET /metrics`), for the server below and for tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/metrics", web::get().to(scrape));
}

/// Binds the metrics listener; the returned server must be spawned and is stopped through its
/// handle.
pub fn server(bind: SocketAddr, source: MetricsSource) -> std::io::Result<(SocketAddr, actix_web::dev::Server)> {
    let listener = std::net::TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    let data = web::Data::new(source);
    let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(configure))
        .workers(1)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run();
    Ok((addr, server))
}

//! Prometheus: the recorder (installed once per process by [`install`]) and the `/metrics`
//! endpoint served on its own listener at `METRICS_PORT`, away from the public port. The metric
//! names are in `crate::metric`.
//!
//! Recording is the `metrics` crate's macros (`metrics::counter!(metric::X).increment(1)`); with
//! no recorder installed (tests, `sync`) they cost nothing. Rendering goes through a
//! [`PrometheusHandle`], so a test can build its own recorder and render it with [`render`].

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use actix_web::{App, HttpResponse, HttpServer, web};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::metric;

/// A recorder configured as the process uses it (histograms, not summaries).
pub fn build_recorder() -> PrometheusRecorder {
    // `set_buckets_for_metric` only fails on an empty bucket list, which these are not.
    let configured = metric::HISTOGRAMS.iter().try_fold(PrometheusBuilder::new(), |builder, (name, buckets)| {
        builder.set_buckets_for_metric(Matcher::Full((*name).to_owned()), buckets)
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
            // Per-account metrics get their `account` label on the way in.
            match metrics::set_global_recorder(super::account::Labelled::new(recorder)) {
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
    describe_counter!(metric::WEBHOOK_EVENTS_RECEIVED, "Webhook events accepted");
    describe_counter!(metric::WEBHOOK_REQUESTS_REJECTED, "Webhook requests refused, by reason");
    describe_gauge!(metric::QUEUE_DEPTH, "Distinct object ids waiting in the webhook queue");
    describe_counter!(metric::OBJECTS_FETCHED, "Records read from HubSpot");
    describe_counter!(metric::OBJECTS_UPSERTED, "Rows written to PostgreSQL");
    describe_counter!(metric::HUBSPOT_REQUESTS, "HubSpot API requests, by status");
    describe_counter!(metric::HUBSPOT_RATE_LIMITED, "HubSpot answers with status 429");
    describe_gauge!(metric::HUBSPOT_BUDGET_REMAINING, "Requests left in the current 10 s HubSpot window");
    describe_histogram!(metric::RUN_DURATION, Unit::Seconds, "Reconciliation run durations");
    describe_counter!(metric::RUNS, "Finished reconciliation runs, by status");
    describe_gauge!(metric::ALERTS_FIRING, "1 while an alert condition holds");
    describe_counter!(metric::HTTP_REQUESTS, "HTTP requests served on the public port");
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
    metrics::gauge!(metric::QUEUE_DEPTH).set((source.queue_depth)() as f64);
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

//! `hubspot-sim`: a HubSpot CRM API simulator for `hubspot-sync`'s tests, benchmarks and demo.
//!
//! [`Sim::start`] generates a seeded CRM, serves HubSpot's JSON for it over HTTP with HubSpot's
//! limits and error bodies, and (with a webhook URL) delivers signed webhooks for the changes
//! made through `/_sim/churn` or [`SimHandle::churn`]. Nothing here depends on `hubspot-sync`:
//! the shapes come from HubSpot's documentation (summed up in `docs/hubspot.md`), so a wrong
//! field name in a client fails its tests.

pub mod control;
pub mod data;
pub mod errors;
pub mod faults;
pub mod limits;
pub mod poison;
pub mod portals;
pub mod routes;
pub mod search;
pub mod state;
pub mod stats;
pub mod webhooks;

pub use data::churn::{ChurnReport, ChurnRequest, MergeReport, PropertyReport, PropertyRequest};
pub use data::owners::{OwnerChangeReport, OwnerChangeRequest};
pub use faults::FaultConfig;
pub use limits::Clock;
pub use poison::{BatchErrorRequest, PlantRequest};
pub use webhooks::WebhookConfig;

use actix_web::{App, HttpResponse, HttpServer, middleware, web};
use data::seed::{SeedConfig, generate};
use limits::{LimitConfig, Limits};
use rand::SeedableRng;
use state::AppState;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A typical search index lag, in ms: HubSpot documents that a change can take a few seconds to
/// appear in search results. Tests and benchmarks of pollers set [`SimOptions::search_lag_ms`]
/// (or `--search-lag-ms`) to it; the default stays 0 so tests that search right after a change
/// need not wait.
pub const TYPICAL_SEARCH_LAG_MS: u64 = 3_000;

/// Everything [`Sim::start`] needs. `Default` gives a small CRM on 127.0.0.1 with a free port,
/// no request budget and no webhooks.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub bind: IpAddr,
    /// 0 picks a free port.
    pub port: u16,
    pub contacts: usize,
    pub deals: usize,
    pub calls: usize,
    pub owners: usize,
    pub seed: u64,
    /// Rolling request budget per `window_ms` (HubSpot: 10 s); 0 turns it off.
    pub requests_per_10s: u32,
    pub window_ms: i64,
    /// Search requests per second (HubSpot: 5); 0 turns it off.
    pub search_per_second: u32,
    /// Whether searches also count against `requests_per_10s` (the default, the stricter model;
    /// HubSpot's usage page leaves search out of the per-app figures for OAuth apps).
    pub searches_in_budget: bool,
    /// Daily request quota; 0 turns it off.
    pub requests_per_day: u64,
    /// Latency added to every API call, in ms.
    pub latency_ms: u64,
    pub webhook: Option<WebhookConfig>,
    /// Changes per second made in the background (for the demo); 0 is none.
    pub churn_per_s: f64,
    /// HTTP worker threads; 0 means one per core (at most 4).
    pub workers: usize,
    /// The clock for limits and timestamps; the system clock when `None`.
    pub clock: Option<Clock>,
    /// Search index lag in ms: records changed less than this long ago are not matched or
    /// returned by searches yet (HubSpot's index trails writes by a few seconds); 0 is none.
    pub search_lag_ms: u64,
    /// Custom properties of mixed types added to each object's schema (with values on about
    /// half the records), as real portals with several hundred properties have; 0 is none.
    pub extra_properties: usize,
    /// Associated records per page of one input of an association batch read (HubSpot pages
    /// them; tests shrink it to see the paging).
    pub association_page_size: usize,
    /// Portal ids served, each with its own data (seeded `seed + its index`), budget, faults,
    /// statistics and webhooks carrying its `portalId`; API tokens then choose the portal
    /// (`pat-<portalId>`, see `portals`). Empty (the default): one portal, any token.
    pub portals: Vec<u64>,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 0,
            contacts: 1000,
            deals: 300,
            calls: 2000,
            owners: 20,
            seed: 42,
            requests_per_10s: 0,
            window_ms: 10_000,
            search_per_second: 5,
            searches_in_budget: true,
            requests_per_day: 1_000_000,
            latency_ms: 0,
            webhook: None,
            churn_per_s: 0.0,
            workers: 0,
            clock: None,
            search_lag_ms: 0,
            extra_properties: 0,
            association_page_size: 500,
            portals: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot bind the simulator: {0}")]
    Io(#[from] std::io::Error),
    #[error("cannot build the webhook client: {0}")]
    Http(#[from] reqwest::Error),
    #[error("data generation failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// Entry point.
pub struct Sim;

/// A running simulator.
pub struct SimHandle {
    url: String,
    addr: SocketAddr,
    /// The first portal (the only one without `SimOptions::portals`).
    state: web::Data<AppState>,
    /// Every portal by id, when `SimOptions::portals` lists them.
    portals: Vec<(u64, web::Data<AppState>)>,
    server: actix_web::dev::ServerHandle,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "status": "error", "message": "Resource not found", "category": "OBJECT_NOT_FOUND",
        "correlationId": errors::correlation_id(),
    }))
}

impl Sim {
    /// Generates the CRM (of each portal), binds, and serves in the background on the current
    /// tokio runtime.
    pub async fn start(opts: SimOptions) -> Result<SimHandle, SimError> {
        let clock = opts.clock.clone().unwrap_or_else(Clock::system);
        let mut portals = Vec::new();
        if opts.portals.is_empty() {
            portals.push((None, portal_state(&opts, &clock, opts.seed, None).await?));
        }
        for (index, &portal_id) in opts.portals.iter().enumerate() {
            let seed = opts.seed.wrapping_add(index as u64);
            portals.push((Some(portal_id), portal_state(&opts, &clock, seed, Some(portal_id)).await?));
        }
        let state = portals[0].1.clone();
        let by_portal = (!opts.portals.is_empty()).then(|| {
            web::Data::new(portals::Portals::new(portals.iter().filter_map(|(id, st)| Some(((*id)?, st.clone())))))
        });
        let workers = match opts.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()).min(4),
            n => n,
        };
        let data = state.clone();
        let server = HttpServer::new(move || {
            let mut app = App::new().app_data(data.clone());
            if let Some(by_portal) = &by_portal {
                app = app.app_data(by_portal.clone());
            }
            app.app_data(web::PayloadConfig::new(8 * 1024 * 1024))
                .service(web::scope("/_sim").wrap(middleware::from_fn(portals::control)).configure(control::configure))
                .service(
                    web::scope("/crm")
                        .wrap(middleware::from_fn(routes::gate::gate))
                        .wrap(middleware::from_fn(portals::api))
                        .service(web::scope("/v3/objects").configure(routes::objects))
                        .service(web::scope("/objects/2026-03").configure(routes::objects))
                        .service(web::scope("/v4/associations").configure(routes::assoc::configure))
                        .service(web::scope("/associations/2026-03").configure(routes::assoc::configure))
                        .service(web::scope("/v3/owners").configure(routes::meta::owners))
                        .service(web::scope("/owners/2026-03").configure(routes::meta::owners))
                        .service(web::scope("/v3/properties").configure(routes::meta::properties))
                        .service(web::scope("/properties/2026-03").configure(routes::meta::properties))
                        .default_service(web::to(not_found)),
                )
                .default_service(web::to(not_found))
        })
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(1)
        .bind((opts.bind, opts.port))?;
        let addr = server.addrs().first().copied().ok_or_else(|| std::io::Error::other("no bound address"))?;
        let server = server.run();
        let handle = server.handle();
        let mut tasks = vec![tokio::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!(error = %e, "hubspot-sim server stopped");
            }
        })];
        if opts.churn_per_s > 0.0 {
            for (_, st) in &portals {
                tasks.push(tokio::spawn(steady_churn(st.clone(), opts.churn_per_s)));
            }
        }
        let portals = portals.into_iter().filter_map(|(id, st)| Some((id?, st))).collect();
        Ok(SimHandle { url: format!("http://{addr}"), addr, state, portals, server: handle, tasks })
    }
}

/// One portal's whole state: its seeded CRM, budget, faults, statistics and webhook dispatcher
/// (its events carry `portal_id` when given, else the configured one).
async fn portal_state(
    opts: &SimOptions,
    clock: &Clock,
    seed: u64,
    portal_id: Option<u64>,
) -> Result<web::Data<AppState>, SimError> {
    let seed_cfg =
        SeedConfig { contacts: opts.contacts, deals: opts.deals, calls: opts.calls, owners: opts.owners, seed };
    let extra = opts.extra_properties;
    let crm = tokio::task::spawn_blocking(move || {
        let mut crm = generate(&seed_cfg);
        data::seed::add_extra_properties(&mut crm, extra, seed_cfg.seed);
        crm
    })
    .await?;
    let webhook_cfg = opts.webhook.clone().map(|mut cfg| {
        if let Some(portal_id) = portal_id {
            cfg.portal_id = portal_id;
        }
        cfg
    });
    let webhook_stats = Arc::new(webhooks::WebhookStats::default());
    let dispatcher = match &webhook_cfg {
        Some(cfg) => Some(webhooks::Dispatcher::start(cfg.clone(), clock.clone(), seed, webhook_stats.clone())?),
        None => None,
    };
    Ok(web::Data::new(AppState {
        crm: std::sync::RwLock::new(crm),
        limits: Limits::new(LimitConfig {
            requests_per_window: opts.requests_per_10s,
            window_ms: opts.window_ms.max(1),
            search_per_second: opts.search_per_second,
            daily: opts.requests_per_day,
            searches_in_budget: opts.searches_in_budget,
        }),
        faults: faults::Faults::new(opts.latency_ms, seed).with_search_lag(opts.search_lag_ms),
        stats: stats::Stats::default(),
        clock: clock.clone(),
        churn_rng: std::sync::Mutex::new(rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(1))),
        webhook_cfg,
        dispatcher,
        webhook_stats,
        next_event_id: AtomicU64::new(seed % 1000 * 1_000_000 + 1),
        batch_errors: poison::BatchErrors::default(),
        association_page_size: opts.association_page_size,
    }))
}

/// Background churn for the demo: about `per_s` changes a second, rotating over the objects.
async fn steady_churn(st: web::Data<AppState>, per_s: f64) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        let total = per_s.max(1.0);
        let share = |f: f64| ((total * f).floor() as usize).max(usize::from(n % ((1.0 / f).ceil() as u64).max(1) == 0));
        let object = ["contacts", "deals", "calls"][(n % 3) as usize];
        let req = ChurnRequest {
            object: object.to_string(),
            creates: share(0.2),
            updates: share(0.6),
            deletes: share(0.05),
            restores: share(0.05),
            merges: usize::from(object != "calls" && n % 20 == 0),
            ..Default::default()
        };
        if let Err(e) = st.churn(&req) {
            tracing::warn!(error = %e, "steady churn failed");
        }
    }
}

impl SimHandle {
    /// Base URL, e.g. `http://127.0.0.1:41234`: use it as `HUBSPOT_API_BASE`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The portal ids served (empty without `SimOptions::portals`).
    pub fn portal_ids(&self) -> Vec<u64> {
        self.portals.iter().map(|(id, _)| *id).collect()
    }

    /// One portal's state (its data, budget, statistics: `control::stats_json`, `churn`,
    /// `export`), when `SimOptions::portals` lists it.
    pub fn portal(&self, portal_id: u64) -> Option<&AppState> {
        self.portals.iter().find(|(id, _)| *id == portal_id).map(|(_, st)| &***st)
    }

    /// The `/_sim/stats` document.
    pub fn stats(&self) -> serde_json::Value {
        control::stats_json(&self.state)
    }

    /// Changes data (and queues webhooks) exactly as `POST /_sim/churn` does.
    pub fn churn(&self, req: &ChurnRequest) -> Result<ChurnReport, data::churn::ChurnError> {
        self.state.churn(req)
    }

    /// Adds, changes, deactivates, reactivates or removes owners, as `POST /_sim/owners` does.
    pub fn change_owners(&self, req: &OwnerChangeRequest) -> Result<OwnerChangeReport, String> {
        self.state.change_owners(req)
    }

    /// Creates a custom property at run time, exactly as `POST /_sim/properties` does.
    pub fn create_property(&self, req: &PropertyRequest) -> Result<PropertyReport, data::churn::ChurnError> {
        self.state.create_property(req)
    }

    /// NDJSON export of `contacts`, `deals`, `calls`, `owners` or `associations`.
    pub fn export(&self, object: &str) -> Option<String> {
        self.state.export(object)
    }

    /// The export parsed into JSON values.
    pub fn export_json(&self, object: &str) -> Vec<serde_json::Value> {
        self.export(object).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    /// Plants raw property values in a record, as `POST /_sim/plant` does.
    pub fn plant(&self, req: &PlantRequest) -> Result<(), String> {
        self.state.plant(req)
    }

    /// Makes batch reads answer ids with per-id errors (207), as `POST /_sim/batch_errors` does.
    pub fn set_batch_errors(&self, req: &BatchErrorRequest) -> Result<usize, String> {
        self.state.batch_errors.set(req)
    }

    pub fn set_faults(&self, cfg: FaultConfig) -> Result<(), String> {
        self.state.faults.set(cfg)
    }

    pub fn clock(&self) -> &Clock {
        &self.state.clock
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Waits until every queued webhook batch (of every portal) is delivered or given up; false
    /// on timeout.
    pub async fn wait_webhooks_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        let pending = || {
            let others = self.portals.iter().map(|(_, st)| st.webhook_stats.pending.load(Ordering::SeqCst));
            self.state.webhook_stats.pending.load(Ordering::SeqCst) + others.sum::<u64>()
        };
        while pending() > 0 {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Stops the server and background tasks.
    pub async fn shutdown(self) {
        for t in &self.tasks[1..] {
            t.abort();
        }
        self.server.stop(true).await;
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

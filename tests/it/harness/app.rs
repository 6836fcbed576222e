//! A configured `serve`, in process, for a test (in the spirit of crates.io's `TestApp::builder`
//! and zero2prod's `spawn_app`): its own database, optionally a simulator (delivering webhooks to
//! it), HubSpot with or without a token, a budget, secrets, an admin token, and the poller's
//! schedules and the fast polling lanes quiet unless asked for.
//!
//! ```ignore
//! let mut app = TestApp::builder().sim(small).sim_webhooks(|_| {}).seeded().arg("--fetch-window", "50ms").start().await;
//! app.sim().churn(...);
//! app.stop().await;
//! assert_converged(&app.db, app.sim(), ...).await;
//! ```

use std::net::SocketAddr;
use std::sync::Arc;

use clap::Parser;
use hubspot_sim::{Sim, SimHandle, SimOptions, WebhookConfig};
use hubspot_sync::cli::{Cli, Command as Sub};
use hubspot_sync::config::Secret;
use hubspot_sync::ops::OpsState;
use hubspot_sync::runtime::Background;
use hubspot_sync::runtime::{self, RunningServer};
use hubspot_sync::store::Pool;
use tokio::sync::mpsc;

use super::control::{RecordingControl, Started};
use super::hooks::{NEVER, SCHEDULES, SECRET, SECRETS};
use super::wait::{PATIENCE, within};
use super::{Proxy, TestDb, compare, control, free_port};

/// Where the app's HubSpot is.
enum HubSpotSide {
    /// No `HUBSPOT_ACCESS_TOKEN`: webhooks answer 503, force sync too.
    Absent,
    /// A token, and a base nothing listens on: ids stay queued.
    Unreachable,
    /// A simulator started for the app.
    Sim(Box<SimOptions>),
    /// A simulator the test started (and prepared) itself.
    Started(Box<SimHandle>),
}

type Hooks = Box<dyn FnOnce(&mut WebhookConfig)>;
type MakeBackground = Box<dyn FnOnce(&TestDb) -> Background>;

/// Builds a [`TestApp`]; see the module docs.
pub struct AppBuilder {
    db: Option<Arc<TestDb>>,
    database_url: Option<String>,
    through_proxy: bool,
    hubspot: HubSpotSide,
    sim_webhooks: Option<Hooks>,
    seeded: bool,
    quiet_poller: bool,
    secrets: Option<String>,
    admin_token: Option<String>,
    quiet_schedules: bool,
    fast_polling: bool,
    budget: Option<u32>,
    port: u16,
    args: Vec<String>,
    recording: bool,
    background: Option<MakeBackground>,
}

/// A running in-process `serve` and what the test needs of it.
pub struct TestApp {
    pub db: Arc<TestDb>,
    pub addr: SocketAddr,
    /// `http://<addr>`
    pub base: String,
    /// `http://<addr>/webhooks/hubspot`
    pub webhook_url: String,
    pub metrics_addr: Option<SocketAddr>,
    pub ops: OpsState,
    pub pool: Pool,
    pub sim: Option<SimHandle>,
    /// Between the server and PostgreSQL, with `.through_proxy()`.
    pub proxy: Option<Proxy>,
    /// With `.recording_control()`: what force sync and SQL triggers asked for.
    pub control: Option<Arc<RecordingControl>>,
    started: Option<mpsc::UnboundedReceiver<Started>>,
    server: Option<RunningServer>,
}

impl TestApp {
    pub fn builder() -> AppBuilder {
        AppBuilder {
            db: None,
            database_url: None,
            through_proxy: false,
            hubspot: HubSpotSide::Absent,
            sim_webhooks: None,
            seeded: false,
            quiet_poller: false,
            secrets: Some(SECRETS.to_owned()),
            admin_token: None,
            quiet_schedules: true,
            fast_polling: false,
            budget: None,
            port: 0,
            args: Vec::new(),
            recording: false,
            background: None,
        }
    }

    /// `base` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The app's simulator (built with `.sim(...)`).
    pub fn sim(&self) -> &SimHandle {
        self.sim.as_ref().expect("the app was built without .sim(...)")
    }

    /// The runs force sync and SQL triggers started (built with `.recording_control()`).
    pub fn started(&mut self) -> &mut mpsc::UnboundedReceiver<Started> {
        self.started.as_mut().expect("the app was built without .recording_control()")
    }

    /// The next run started through the control, waited for up to [`PATIENCE`].
    pub async fn next_started(&mut self) -> Started {
        within(PATIENCE, "no run was started", self.started().recv()).await.expect("the control was dropped")
    }

    /// Stops the server gracefully (the queue drains within its grace); a hang fails the test.
    pub async fn stop(&mut self) {
        let server = self.server.take().expect("the server is running");
        within(PATIENCE, "the server stops", server.stop()).await.expect("the server stopped cleanly");
    }
}

impl AppBuilder {
    /// Serve this database (for example one already seeded, or shared with an earlier app).
    pub fn db(mut self, db: impl Into<Arc<TestDb>>) -> Self {
        self.db = Some(db.into());
        self
    }

    /// Give the server this `DATABASE_URL` instead of its database's (for example an
    /// unreachable one).
    pub fn database_url(mut self, url: &str) -> Self {
        self.database_url = Some(url.to_owned());
        self
    }

    /// Reach PostgreSQL through a [`Proxy`] the test can cut (`app.proxy`).
    pub fn through_proxy(mut self) -> Self {
        self.through_proxy = true;
        self
    }

    /// A HubSpot token and a base nothing listens on (ids stay queued; nothing needs HubSpot).
    pub fn unreachable_hubspot(mut self) -> Self {
        self.hubspot = HubSpotSide::Unreachable;
        self
    }

    /// A simulator of this size for the app's HubSpot (`app.sim()`), with a token.
    pub fn sim(mut self, options: SimOptions) -> Self {
        self.hubspot = HubSpotSide::Sim(Box::new(options));
        self
    }

    /// A simulator the test already started and prepared (its webhooks, if any, go to the port
    /// given with [`AppBuilder::port`]); with a token.
    pub fn started_sim(mut self, sim: SimHandle) -> Self {
        self.hubspot = HubSpotSide::Started(Box::new(sim));
        self
    }

    /// The simulator delivers its webhooks to the app, signed with [`SECRET`]; `tune` adjusts the
    /// delivery (retries, duplicates...). The app listens on a port chosen up front.
    pub fn sim_webhooks(mut self, tune: impl FnOnce(&mut WebhookConfig) + 'static) -> Self {
        self.sim_webhooks = Some(Box::new(tune));
        self
    }

    /// Copy the simulator into the database before the server starts (no catch-up run needed).
    pub fn seeded(mut self) -> Self {
        self.seeded = true;
        self
    }

    /// Record a successful run of every object first, so the server starts no catch-up run.
    pub fn quiet_poller(mut self) -> Self {
        self.quiet_poller = true;
        self
    }

    /// `HUBSPOT_CLIENT_SECRET` (default: [`SECRETS`]); `None` leaves it unset.
    pub fn webhook_secrets(mut self, secrets: Option<&str>) -> Self {
        self.secrets = secrets.map(str::to_owned);
        self
    }

    /// `ADMIN_TOKEN`.
    pub fn admin_token(mut self, token: &str) -> Self {
        self.admin_token = Some(token.to_owned());
        self
    }

    /// Keep the configured (default) schedules: the poller runs at startup and on schedule. By
    /// default no schedule fires during a test.
    pub fn with_schedules(mut self) -> Self {
        self.quiet_schedules = false;
        self
    }

    /// Let the fast polling lanes run (`FAST_POLL=auto`: they do without webhook secrets, see
    /// [`AppBuilder::webhook_secrets`]). By default they are off (`FAST_POLL=off`).
    pub fn fast_polling(mut self) -> Self {
        self.fast_polling = true;
        self
    }

    /// `HUBSPOT_REQUESTS_PER_10S`.
    pub fn budget(mut self, requests_per_10s: u32) -> Self {
        self.budget = Some(requests_per_10s);
        self
    }

    /// Listen on this port (default: one the system picks).
    pub fn port(mut self, port: u16) -> Self {
        self.port = port;
        self
    }

    /// Any other `serve` flag, e.g. `.arg("--fetch-window", "50ms")`.
    pub fn arg(mut self, flag: &str, value: &str) -> Self {
        self.args.extend([flag.to_owned(), value.to_owned()]);
        self
    }

    /// Force sync and SQL triggers go to a [`RecordingControl`] (`app.started()`), the queue
    /// depth reads 7, and no background task runs unless `.background(...)` says so.
    pub fn recording_control(mut self) -> Self {
        self.recording = true;
        self
    }

    /// The background tasks (metrics listener, `LISTEN`, alert monitor) to run instead of the
    /// configured ones.
    pub fn background(mut self, make: impl FnOnce(&TestDb) -> Background + 'static) -> Self {
        self.background = Some(Box::new(make));
        self
    }

    /// Starts everything and the server; it answers when this returns.
    pub async fn start(self) -> TestApp {
        let db = match self.db {
            Some(db) => db,
            None => Arc::new(TestDb::new().await),
        };
        let port = match (self.port, &self.sim_webhooks) {
            (0, Some(_)) => free_port(),
            (port, _) => port,
        };
        let unreachable = matches!(self.hubspot, HubSpotSide::Unreachable);
        let sim = match self.hubspot {
            HubSpotSide::Sim(mut options) => {
                if let Some(tune) = self.sim_webhooks {
                    let mut hooks = WebhookConfig::new(format!("http://127.0.0.1:{port}/webhooks/hubspot"), SECRET);
                    tune(&mut hooks);
                    options.webhook = Some(hooks);
                }
                Some(Sim::start(*options).await.expect("start the simulator"))
            }
            HubSpotSide::Started(sim) => Some(*sim),
            _ => None,
        };
        if self.seeded {
            compare::seed(&db, sim.as_ref().expect(".seeded() needs .sim(...)")).await;
        }
        if self.quiet_poller {
            control::quiet_poller(&db).await;
        }
        let proxy = if self.through_proxy { Some(Proxy::start(db.server_addr()).await) } else { None };
        let database_url = match (&self.database_url, &proxy) {
            (Some(url), _) => url.clone(),
            (None, Some(proxy)) => db.url_through(proxy.addr),
            (None, None) => db.url(),
        };

        let mut argv: Vec<String> = ["hubspot-sync", "serve", "--database-url", &database_url, "--bind", "127.0.0.1"]
            .map(str::to_owned)
            .to_vec();
        argv.extend(["--port".into(), port.to_string(), "--metrics-port".into(), "0".into()]);
        let api_base = match &sim {
            Some(sim) => Some(sim.url().to_owned()),
            None => unreachable.then(|| "http://127.0.0.1:1".to_owned()),
        };
        if let Some(base) = api_base {
            argv.extend(["--hubspot-access-token".into(), "pat-test".into(), "--hubspot-api-base".into(), base]);
        }
        if let Some(secrets) = &self.secrets {
            argv.extend(["--hubspot-client-secret".into(), secrets.clone()]);
        }
        if let (Some(token), false) = (&self.admin_token, self.recording) {
            argv.extend(["--admin-token".into(), token.clone()]);
        }
        if let Some(budget) = self.budget {
            argv.extend(["--hubspot-requests-per-10s".into(), budget.to_string()]);
        }
        if self.quiet_schedules {
            for (flag, _) in SCHEDULES {
                argv.extend([flag.to_owned(), NEVER.to_owned()]);
            }
        }
        if !self.fast_polling {
            argv.extend(["--fast-poll".to_owned(), "off".to_owned()]);
        }
        argv.extend(self.args);
        let args = match Cli::try_parse_from(&argv).unwrap_or_else(|e| panic!("{argv:?}: {e}")).command {
            Sub::Serve(args) => args,
            other => panic!("parsed {other:?}"),
        };
        let mut options = args.options().expect("serve settings for the test app");

        let (mut control, mut started) = (None, None);
        if self.recording {
            let (recording, rx) = RecordingControl::new(db.target.clone());
            let mut ops = OpsState::new(self.admin_token.map(Secret::new), recording.clone()).with_queue_depth(|| 7);
            if let Some(reloader) = options.state.ops.reloader.clone() {
                ops = ops.with_reloader(reloader);
            }
            options.state.ops = ops;
            options.background = Background::default();
            (control, started) = (Some(recording), Some(rx));
        }
        if let Some(make) = self.background {
            options.background = make(&db);
        }
        let (ops, pool) = (options.state.ops.clone(), options.state.pool.clone());
        let server = runtime::start(options).expect("start the server");
        let addr = server.addr;
        TestApp {
            db,
            addr,
            base: format!("http://{addr}"),
            webhook_url: format!("http://{addr}/webhooks/hubspot"),
            metrics_addr: server.metrics_addr,
            ops,
            pool,
            sim,
            proxy,
            control,
            started,
            server: Some(server),
        }
    }
}

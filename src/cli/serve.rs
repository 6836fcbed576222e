//! `hubspot-sync serve`: the long-running process (webhook intake, batch fetchers, the
//! reconciliation poller and its scheduler, the status API and page, metrics, `LISTEN`, alerts),
//! stopped gracefully on SIGTERM/SIGINT. This file checks the settings and assembles the parts;
//! `runtime` starts and stops them.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;

use crate::alerts::channels::Channels;
use crate::alerts::monitor::Monitor;
use crate::app::AppState;
use crate::cluster::{Drain, LeaseTimings, Leases};
use crate::config::{
    ClusterSettings, CopyConfig, CopySettings, DatabaseSettings, HubSpotSettings, OwnerSettings, PollingSettings,
    PortalSettings, RetentionSettings, ScheduleSettings, ServerSettings, WebhookSettings,
};
use crate::fetcher::FetcherOptions;
use crate::hubspot::{ClientOptions, HubSpot, Lane};
use crate::kind::ObjectKind;
use crate::maintenance::Maintenance;
use crate::objects::WriteContext;
use crate::ops::OpsState;
use crate::owner_hooks::{Deliverer, Target};
use crate::poller::Election;
use crate::poller::control::{ScheduleOnly, SharedControl};
use crate::poller::fast::{FastPolling, ObjectMode, PollingStatus, Writer};
use crate::queue::Queue;
use crate::runtime::{self, Background, Realtime, ServeOptions, accounts};
use crate::store;
use crate::webhook::Intake;

use super::error::{self, CliError};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub hubspot: HubSpotSettings,
    #[command(flatten)]
    pub webhooks: WebhookSettings,
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub schedules: ScheduleSettings,
    #[command(flatten)]
    pub owners: OwnerSettings,
    #[command(flatten)]
    pub polling: PollingSettings,
    #[command(flatten)]
    pub retention: RetentionSettings,
    #[command(flatten)]
    pub copy: CopySettings,
    #[command(flatten)]
    pub portal: PortalSettings,
    #[command(flatten)]
    pub cluster: ClusterSettings,
    /// Connections of each non-default account's pool (`ACCOUNT_POOL_SIZE`): every account this
    /// machine runs holds up to this many, beside `DATABASE_POOL_SIZE`.
    #[arg(long, env = "ACCOUNT_POOL_SIZE", value_name = "ACCOUNT_POOL_SIZE",
          default_value_t = accounts::DEFAULT_ACCOUNT_POOL_SIZE, value_parser = clap::value_parser!(u16).range(1..))]
    pub account_pool_size: u16,
    /// Where the other accounts' tokens and client secrets are read: the process environment
    /// (`demo` gives its second account's in code).
    #[arg(skip)]
    pub env: crate::config::Environment,
}

impl ServeArgs {
    /// Checks the settings and builds what the server needs; no connection is opened yet.
    pub fn options(&self) -> Result<ServeOptions, CliError> {
        let target = self.database.target()?;
        let channels = Channels::from_settings(&self.server.alerts)?;
        let owner_hook = self.server.owner_hook.hook()?.map(|(url, secret)| Target::new(url, secret));
        let pool =
            store::build_pool(&target, &self.database.pool_options("hubspot-sync")).map_err(anyhow::Error::from)?;
        let copy = self.copy.load()?.supported()?;
        let copy_for_accounts = copy.clone();
        let write = self.write_context(&copy);
        let (webhooks, realtime) = self.realtime(copy, write.clone())?;
        // The poller shares the fetchers' HubSpot client (one request budget). Without a token
        // there is none: force sync answers 503 and the schedule comes from the settings.
        let poller = realtime.as_ref().map(|rt| self.poller(pool.clone(), rt.hubspot.clone(), write.clone()));
        let control: SharedControl = match &poller {
            Some(poller) => Arc::new(poller.clone()),
            None => Arc::new(ScheduleOnly { schedules: self.schedules.clone() }),
        };
        // One leader among the instances on this database schedules and sends alerts.
        let election = Election::new(pool.clone());
        let mut ops = OpsState::new(self.server.admin_token.clone(), control);
        if let Some(queue) = webhooks.queue().cloned() {
            ops = ops.with_queue(queue);
        }
        if let Some(rt) = &realtime {
            ops = ops.with_hubspot(rt.hubspot.clone());
        }
        let fast_polling = match (&realtime, webhooks.queue()) {
            (Some(rt), Some(queue)) if self.fast_polling() => {
                let writer = Writer { pool: pool.clone(), context: write.clone() };
                Some(FastPolling::new(
                    rt.hubspot.clone(),
                    queue.clone(),
                    writer,
                    (&self.polling).into(),
                    election.leadership(),
                ))
            }
            _ => None,
        };
        let mut polling = PollingStatus::new(self.modes(), self.webhooks_on());
        if let (Some(lanes), Some(rt)) = (&fast_polling, &realtime) {
            polling = polling.with_lanes(lanes.figures(), rt.hubspot.clone(), self.polling.fast_poll_budget_share);
        }
        let reloader = crate::ops::reloader::Reloader::new(
            self.copy.clone(),
            pool.clone(),
            realtime.as_ref().map(|rt| rt.hubspot.clone()),
            write.filters.clone(),
        );
        let controls = crate::poller::control::AccountControls::default();
        let accounts =
            self.accounts(&target, (&copy_for_accounts, &write), &webhooks, controls.clone(), pool.clone())?;
        let ops = ops
            .with_polling(polling)
            .with_reloader(Arc::new(reloader))
            .with_accounts(controls, self.portal.hubspot_portal_id);
        Ok(ServeOptions {
            bind: SocketAddr::new(self.server.bind, self.server.port),
            shutdown_grace: self.server.shutdown_grace,
            http: runtime::HttpLimits {
                keep_alive: self.server.http_keep_alive,
                max_connections: self.server.http_max_connections as usize,
            },
            background: Background {
                metrics_bind: Some(SocketAddr::new(self.server.bind, self.server.metrics_port)),
                listen: Some(target.clone()),
                listen_portal: self.portal.hubspot_portal_id,
                monitor: Some((
                    Monitor::new(
                        pool.clone(),
                        ops.webhooks.clone(),
                        self.schedules.clone(),
                        channels,
                        chrono::Utc::now(),
                        election.leadership(),
                    ),
                    self.server.alert_check_interval.max(std::time::Duration::from_secs(1)),
                )),
                maintenance: Some(Maintenance::new(pool.clone(), &self.retention, election.leadership())),
                owner_hooks: Some(Deliverer::new(pool.clone(), owner_hook)),
            },
            state: AppState::new(pool, ops, webhooks),
            realtime,
            scheduler: poller.map(|poller| runtime::Scheduling {
                poller,
                schedules: (&self.schedules).into(),
                leadership: election.leadership(),
            }),
            election: Some(election),
            fast_polling,
            accounts: Some(accounts),
        })
    }

    /// The other accounts' runtime: each account's parts built from these settings and its
    /// own; which accounts run here is the set whose lease this machine holds; the hand-over
    /// drain gives their intakes the batches other machines received for them.
    fn accounts(
        &self,
        target: &crate::store::connect::DbTarget,
        (copy, write): (&CopyConfig, &WriteContext),
        webhooks: &Intake,
        controls: crate::poller::control::AccountControls,
        pool: store::Pool,
    ) -> Result<runtime::Accounts, CliError> {
        // The same filters as the default account's, so a reload of the file reaches them too.
        let write = write.clone();
        let client = ClientOptions {
            polling_share: self.polling.fast_poll_budget_share,
            copy: copy.clone(),
            ..ClientOptions::default()
        };
        let template = accounts::Template {
            target: target.clone(),
            pool: crate::store::pool::PoolOptions {
                max_size: usize::from(self.account_pool_size),
                ..self.database.pool_options("hubspot-sync")
            },
            hubspot: self.hubspot.clone(),
            client,
            schedules: self.schedules.clone(),
            polling: (&self.polling).into(),
            fetcher: FetcherOptions::new(self.server.fetch_window, write.clone()),
            write,
            queue_capacity: self.server.queue_capacity as usize,
            require_v3: webhooks.require_v3(),
            served: webhooks.served().clone(),
            controls,
            env: self.env.clone(),
        };
        let machine = self.cluster.machine_id();
        tracing::info!(machine = %machine, "this machine's id in the account leases");
        let leases = Leases::new(pool.clone(), machine, LeaseTimings::of(&self.cluster)?);
        let (served, settings, drain_pool) = (webhooks.served().clone(), self.cluster.clone(), pool.clone());
        let drain = move |held, shutdown| {
            let sink = move |portal_id, batches| crate::webhook::hand_on(served.clone(), portal_id, batches);
            Drain::new(drain_pool, held, &settings, sink).spawn(shutdown)
        };
        Ok(runtime::Accounts {
            set: accounts::AccountSet::new(template, pool, self.server.shutdown_grace),
            leases,
            drain: Box::new(drain),
        })
    }

    /// How records are written: `OWNER_ROLE`, and `HUBSPOT_SYNC_CONFIG`'s filters.
    fn write_context(&self, copy: &CopyConfig) -> WriteContext {
        WriteContext {
            owner_role: self.owners.owner_role.clone(),
            filters: crate::config::file::LiveFilters::new(copy.filters()),
            ..WriteContext::default()
        }
    }

    /// Whether webhooks can be verified (`HUBSPOT_CLIENT_SECRET` is set).
    fn webhooks_on(&self) -> bool {
        self.webhooks.hubspot_client_secret.is_some()
    }

    /// Whether the fast polling lanes run (`FAST_POLL`; they need a HubSpot token).
    fn fast_polling(&self) -> bool {
        self.hubspot.hubspot_access_token.is_some() && self.polling.enabled(self.webhooks_on())
    }

    /// How each object is kept fresh between its scheduled runs.
    fn modes(&self) -> std::collections::HashMap<ObjectKind, ObjectMode> {
        let can_fetch = self.hubspot.hubspot_access_token.is_some();
        ObjectKind::ALL
            .into_iter()
            .map(|kind| {
                let mode = match kind {
                    ObjectKind::Owners => ObjectMode::SchedulesOnly,
                    _ if self.fast_polling() && self.polling.fast_poll_objects.contains(&kind) => {
                        ObjectMode::FastPolling
                    }
                    _ if can_fetch && self.webhooks_on() => ObjectMode::Webhooks,
                    _ => ObjectMode::SchedulesOnly,
                };
                (kind, mode)
            })
            .collect()
    }

    /// The reconciliation poller (its scheduler starts with the server).
    fn poller(&self, pool: store::Pool, hubspot: HubSpot, write: WriteContext) -> crate::poller::Poller {
        crate::poller::Poller::new(pool, hubspot, crate::poller::PollerOptions { write, ..Default::default() })
    }

    /// The webhook intake and its batch fetchers; without a HubSpot token nothing can be
    /// fetched, so webhooks get 503 (HubSpot keeps retrying them) and no fetcher starts.
    fn realtime(&self, copy: CopyConfig, write: WriteContext) -> Result<(Intake, Option<Realtime>), CliError> {
        if self.hubspot.hubspot_access_token.is_none() {
            tracing::warn!("HUBSPOT_ACCESS_TOKEN is not set: webhooks are answered 503 until it is");
            return Ok((self.intake(None), None));
        }
        let client =
            ClientOptions { polling_share: self.polling.fast_poll_budget_share, copy, ..ClientOptions::default() };
        let hubspot = HubSpot::with_options(&self.hubspot, client).map_err(anyhow::Error::from)?;
        let queue = Arc::new(Queue::new(self.server.queue_capacity as usize));
        let mut options = FetcherOptions::new(self.server.fetch_window, write);
        // Without webhooks the queue holds what the lanes found: its reads are theirs to pay.
        if self.fast_polling() && !self.webhooks_on() {
            options.lane = Lane::Polling;
        }
        Ok((self.intake(Some(queue)), Some(Realtime { hubspot, options })))
    }

    fn intake(&self, queue: Option<Arc<Queue>>) -> Intake {
        Intake::new(&self.webhooks, queue)
            .with_max_concurrent(self.server.webhook_max_concurrent as usize)
            .with_environment(self.env.clone())
    }
}

pub async fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    let config = args.copy.load()?.supported()?;
    let options = args.options()?;
    super::migrate::refuse_unmigrated(&args.database.target()?, "hubspot-sync serve", &config).await?;
    if let Some(portal_id) = args.portal.hubspot_portal_id {
        let mut conn =
            args.database.target()?.connect("hubspot-sync serve").await.context("cannot connect to the database")?;
        super::migrate::adopt_portal(&mut conn, portal_id).await?;
    }
    super::config::refuse_invalid(&args.hubspot, &config).await?;
    let reloader = options.state.ops.reloader.clone();
    let server =
        runtime::start(options).map_err(|e| error::port_in_use(e, args.server.bind, args.server.port, "PORT"))?;
    if let Some(reloader) = reloader {
        tokio::spawn(reload_on_sighup(reloader));
    }
    let token = server.shutdown_token();
    tokio::spawn(async move {
        runtime::termination_signal().await;
        token.cancel();
    });
    server.wait().await?;
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Reloads `HUBSPOT_SYNC_CONFIG` on every SIGHUP (the outcome is logged).
async fn reload_on_sighup(reloader: Arc<crate::ops::reloader::Reloader>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP received: reloading HUBSPOT_SYNC_CONFIG");
                    reloader.reload_logged().await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch SIGHUP; reload HUBSPOT_SYNC_CONFIG through the API"),
        }
    }
    #[cfg(not(unix))]
    {
        let _ = reloader;
    }
}

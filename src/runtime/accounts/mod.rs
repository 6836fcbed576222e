//! The accounts other than the default one, each run in this process with its own parts
//! ([`running`]): which ones run is decided by a `watch` of portal ids alone ([`Wanted`]). In
//! `serve` it is the set of accounts whose lease this machine holds (`cluster::Leases`, which
//! reads the accounts table every beat: `accounts add` is picked up without a restart,
//! `accounts remove` stops the account).
//!
//! An account that joins the set is started (its start retried every [`RETRY`] while it fails,
//! for example while its token variable is unset, the reason logged when it changes); one that
//! leaves is stopped within the shutdown grace, as is every account at shutdown. The default
//! account is not part of the set: it runs as before (`runtime::start`).

pub mod running;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::config::{HubSpotSettings, RequireV3, ScheduleSettings};
use crate::fetcher::FetcherOptions;
use crate::hubspot::ClientOptions;
use crate::objects::WriteContext;
use crate::poller::control::AccountControls;
use crate::poller::fast::FastOptions;
use crate::store::connect::DbTarget;
use crate::store::pool::PoolOptions;
use crate::store::{self, Pool, accounts};
use crate::webhook::served::Served;
pub use running::{Running, StartError};

/// The portal ids of the accounts (other than the default one) this process is to run.
pub type Wanted = watch::Receiver<BTreeSet<i64>>;

/// Connections of an account's pool by default (`ACCOUNT_POOL_SIZE`): a few, so dozens of
/// accounts fit in PostgreSQL's 100.
pub const DEFAULT_ACCOUNT_POOL_SIZE: u16 = 3;

/// Batch reads of an account in flight at once (within its small pool).
pub const ACCOUNT_READS_IN_FLIGHT: usize = 2;

/// How often an account that failed to start is tried again.
pub const RETRY: Duration = Duration::from_secs(10);

/// What every account's parts are built from: the process settings, which an account's own
/// (token, API base, budget, schedules) override.
pub struct Template {
    pub target: DbTarget,
    /// The pool shape, its size the account pool's (`ACCOUNT_POOL_SIZE`).
    pub pool: PoolOptions,
    /// The process's HubSpot settings (API version, searches in budget).
    pub hubspot: HubSpotSettings,
    pub client: ClientOptions,
    pub schedules: ScheduleSettings,
    pub polling: FastOptions,
    pub fetcher: FetcherOptions,
    pub write: WriteContext,
    pub queue_capacity: usize,
    pub require_v3: RequireV3,
    /// Where the webhook handler finds each running account's intake.
    pub served: Served,
    /// Where force sync finds each running account's poller.
    pub controls: AccountControls,
    /// Where the accounts' tokens and client secrets are read (as the webhook intake does).
    pub env: crate::config::Environment,
}

impl Template {
    /// `fetcher` bounded to the account's pool.
    pub fn sized(mut self) -> Self {
        let reads = ACCOUNT_READS_IN_FLIGHT.min(self.pool.max_size.max(1));
        self.fetcher.max_in_flight = self.fetcher.max_in_flight.min(reads);
        self
    }
}

/// The accounts run here: started and stopped as [`Wanted`] says.
pub struct AccountSet {
    template: Arc<Template>,
    /// The database (the default account's pool), to read the accounts' rows.
    pool: Pool,
    grace: Duration,
}

impl AccountSet {
    pub fn new(template: Template, pool: Pool, grace: Duration) -> Self {
        Self { template: Arc::new(template.sized()), pool, grace }
    }

    /// Runs the accounts `wanted` names until `shutdown`, then stops them all within the grace
    /// (plus a second or two for the fetchers' cut-off and the last digests).
    pub fn spawn(self, wanted: Wanted, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(wanted, shutdown))
    }

    async fn run(self, mut wanted: Wanted, shutdown: CancellationToken) {
        let mut running: HashMap<i64, Running> = HashMap::new();
        let mut failing: HashMap<i64, String> = HashMap::new();
        let mut stopping = JoinSet::new();
        let mut retry = tokio::time::interval(RETRY);
        let mut source_open = true;
        loop {
            let want = wanted.borrow_and_update().clone();
            for portal_id in running.keys().copied().filter(|p| !want.contains(p)).collect::<Vec<_>>() {
                if let Some(account) = running.remove(&portal_id) {
                    tracing::info!(account.portal_id = portal_id, "account no longer runs here: stopping it");
                    let (template, grace) = (self.template.clone(), self.grace);
                    stopping.spawn(async move { account.stop(&template, grace).await });
                }
            }
            failing.retain(|p, _| want.contains(p));
            let joining: Vec<i64> = want.iter().copied().filter(|p| !running.contains_key(p)).collect();
            for portal_id in joining {
                match self.start(portal_id).await {
                    Ok(account) => {
                        failing.remove(&portal_id);
                        running.insert(portal_id, account);
                    }
                    Err(e) => note_failure(&mut failing, portal_id, &e),
                }
            }
            // Stopping ones still run (they drain): 0 means nothing of any account runs here.
            metrics::gauge!(crate::metric::ACCOUNTS_RUNNING).set((running.len() + stopping.len()) as f64);
            tokio::select! {
                () = shutdown.cancelled() => break,
                changed = wanted.changed(), if source_open => source_open = changed.is_ok(),
                _ = retry.tick() => {}
                Some(_) = stopping.join_next() => {}
            }
        }
        let (template, grace) = (self.template.clone(), self.grace);
        for account in running.into_values() {
            let template = template.clone();
            stopping.spawn(async move { account.stop(&template, grace).await });
        }
        while stopping.join_next().await.is_some() {}
        metrics::gauge!(crate::metric::ACCOUNTS_RUNNING).set(0.0);
    }

    /// Reads the account's row and starts its parts.
    async fn start(&self, portal_id: i64) -> Result<Running, StartError> {
        let mut conn = self.pool.get().await.map_err(store::StoreError::from)?;
        let account = accounts::get(&mut conn, portal_id)
            .await
            .map_err(store::StoreError::from)?
            .filter(|a| !a.is_default)
            .ok_or(StartError::Gone(portal_id))?;
        drop(conn);
        Running::start(&account, &self.template).await
    }
}

/// Logs why an account could not start, once per distinct reason.
fn note_failure(failing: &mut HashMap<i64, String>, portal_id: i64, error: &StartError) {
    let reason = crate::telemetry::ErrorChain(error).to_string();
    if failing.get(&portal_id) != Some(&reason) {
        tracing::error!(account.portal_id = portal_id, error = %reason,
            "cannot start the account; its webhooks wait in the hand-over table until it starts (tried again every 10 s)");
        failing.insert(portal_id, reason);
    }
}

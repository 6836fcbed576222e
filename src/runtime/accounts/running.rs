//! One account's parts, started and stopped together: a pool scoped to its portal, its HubSpot
//! client (its token, API base and budget, so its own limiter), its queue and batch fetchers, its
//! poller and scheduler (its schedules), its fast polling lanes when its webhooks are off, and
//! its webhook replay rule. Every task runs in the account's metrics scope
//! (`telemetry::account`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Template;
use crate::config::{ConfigError, Schedule, ScheduleSettings};
use crate::fetcher::Fetchers;
use crate::hubspot::{HubSpot, Lane};
use crate::kind::ObjectKind;
use crate::poller::control::{SyncControl, TriggerError};
use crate::poller::fast::{FastPolling, Writer};
use crate::poller::{Leadership, Poller, PollerOptions, Schedules};
use crate::queue::Queue;
use crate::store;
use crate::store::accounts::Account;
use crate::store::sync_logs::{RunMode, RunTrigger};
use crate::telemetry::account;
use crate::webhook::replay::ReplayGuard;
use crate::webhook::served::AccountIntake;

/// Why an account could not be started (it is tried again later).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("no account has portal id {0} any more")]
    Gone(i64),
    #[error("the account's settings: {0}")]
    Settings(#[from] ConfigError),
    #[error("the account's schedule {raw:?}: {why}")]
    Schedule { raw: String, why: String },
    #[error("the account's HubSpot client")]
    HubSpot(#[from] crate::hubspot::HubSpotError),
    #[error("the account's database pool")]
    Store(#[from] store::StoreError),
}

/// A running account.
pub struct Running {
    pub portal_id: i64,
    token: CancellationToken,
    fetchers: Fetchers,
    poller: Poller,
    scheduler: JoinHandle<()>,
    lanes: Option<JoinHandle<()>>,
    replay_stop: CancellationToken,
    replay_writer: JoinHandle<()>,
}

impl Running {
    /// Starts `account`'s parts; registers its webhook intake and its poller once they run.
    pub async fn start(account: &Account, template: &Template) -> Result<Running, StartError> {
        let portal_id = account.portal_id;
        let token_env = account.token_env.as_deref().ok_or(StartError::Gone(portal_id))?;
        let settings = template.hubspot.for_account_in(
            &template.env,
            token_env,
            account.api_base.as_deref(),
            account.requests_per_10s,
        )?;
        let schedules = schedules_of(account, &template.schedules)?;
        let pool = store::build_pool_for(&template.target, &template.pool, Some(portal_id))?;
        let hubspot = HubSpot::with_options(&settings, template.client.clone())?;
        let queue = Arc::new(Queue::new(template.queue_capacity));
        let webhooks_on = webhooks_on(account, &template.env);
        let mut fetch = template.fetcher.clone();
        if !webhooks_on {
            // Without webhooks the queue holds what the lanes found: its reads are theirs to pay.
            fetch.lane = Lane::Polling;
        }
        let token = CancellationToken::new();
        let replay = Arc::new(ReplayGuard::new(template.require_v3));
        let replay_stop = CancellationToken::new();
        let poller = Poller::new(
            pool.clone(),
            hubspot.clone(),
            PollerOptions { write: template.write.clone(), ..Default::default() },
        );
        // Every task below is spawned inside the account's scope, and takes it along.
        let running = account::scope(portal_id, async {
            let fetchers = Fetchers::start(queue.clone(), hubspot.clone(), pool.clone(), fetch);
            // The account set runs here only where the account is to run: it schedules always.
            let scheduler = account::spawn(crate::poller::run_scheduler(
                poller.clone(),
                schedules,
                Leadership::always(),
                token.clone(),
            ));
            let lanes = (!webhooks_on).then(|| {
                let writer = Writer { pool: pool.clone(), context: template.write.clone() };
                FastPolling::new(hubspot.clone(), queue.clone(), writer, template.polling.clone(), Leadership::always())
                    .spawn(token.clone())
            });
            let replay_writer = account::spawn(replay.clone().run(pool.clone(), replay_stop.clone()));
            account::spawn(count_runs(pool.clone(), token.clone()));
            Running {
                portal_id,
                token: token.clone(),
                fetchers,
                poller: poller.clone(),
                scheduler,
                lanes,
                replay_stop: replay_stop.clone(),
                replay_writer,
            }
        })
        .await;
        template.served.insert(AccountIntake { portal_id, pool, queue, replay });
        template.controls.insert(portal_id, Arc::new(Scoped { portal_id, poller }));
        tracing::info!(account.portal_id = portal_id, account.name = %account.name, webhooks = webhooks_on,
            "account started");
        Ok(running)
    }

    /// Stops taking its webhooks and force syncs, then drains its queue and lets its runs
    /// finish, all within `grace` (past it, what is left is aborted: the next reconciliation run
    /// of the account, here or elsewhere, reads it again).
    pub async fn stop(self, template: &Template, grace: Duration) {
        let portal_id = self.portal_id;
        template.served.remove(portal_id);
        template.controls.remove(portal_id);
        self.token.cancel();
        let deadline = Instant::now() + grace;
        let left = move || deadline.saturating_duration_since(Instant::now());
        let (fetchers, lanes) = (self.fetchers, self.lanes);
        let drain = async move {
            if let Some(lanes) = lanes {
                super::super::stop_within(left(), "an account's fast polling lanes", lanes).await;
            }
            fetchers.drain(left()).await;
        };
        let (scheduler, poller) = (self.scheduler, self.poller);
        let runs = async move {
            super::super::stop_within(left(), "an account's scheduler", scheduler).await;
            poller.shutdown(left()).await;
        };
        account::scope(portal_id, async { tokio::join!(drain, runs) }).await;
        // The digests of the last accepted bodies are written as the writer stops.
        self.replay_stop.cancel();
        super::super::stop_within(Duration::from_secs(1), "an account's replay digests", self.replay_writer).await;
        tracing::info!(account.portal_id = portal_id, "account stopped");
    }
}

/// How often the account's finished runs are counted into the run metrics.
const COUNT_RUNS_EVERY: Duration = Duration::from_secs(5);

/// Counts the account's finished runs into the run metrics until `stop` (the default account's
/// are counted by the alert monitor).
async fn count_runs(pool: store::Pool, stop: CancellationToken) {
    let mut counter = crate::alerts::monitor::RunCounter::default();
    let mut tick = tokio::time::interval(COUNT_RUNS_EVERY);
    while stop.run_until_cancelled(tick.tick()).await.is_some() {
        let counted = async { counter.record(&mut *pool.get().await?).await }.await;
        if let Err(e) = counted {
            tracing::debug!(error = %crate::telemetry::ErrorChain(&e), "the account's runs not counted yet");
        }
    }
}

/// Whether `account`'s webhooks can be verified here (its client secret variable is set);
/// without, its fast polling lanes keep it fresh.
fn webhooks_on(account: &Account, env: &crate::config::Environment) -> bool {
    account.client_secret_env.as_deref().and_then(|var| env.var(var)).is_some_and(|secret| !secret.trim().is_empty())
}

/// The process's schedules with the account's own: `schedule_incremental` for every object's
/// incremental runs, `schedule_full` for its full pass.
pub fn schedules_of(account: &Account, process: &ScheduleSettings) -> Result<Schedules, StartError> {
    let parse = |raw: &str| raw.parse::<Schedule>().map_err(|why| StartError::Schedule { raw: raw.to_owned(), why });
    let mut settings = process.clone();
    if let Some(raw) = &account.schedule_incremental {
        let schedule = parse(raw)?;
        settings.schedule_contacts = schedule.clone();
        settings.schedule_deals = schedule.clone();
        settings.schedule_calls = schedule.clone();
        settings.schedule_owners = schedule;
    }
    if let Some(raw) = &account.schedule_full {
        settings.schedule_full = parse(raw)?;
    }
    Ok((&settings).into())
}

/// An account's poller as force sync reaches it: the runs it starts record in the account's
/// metrics scope (the request's task has none).
struct Scoped {
    portal_id: i64,
    poller: Poller,
}

impl SyncControl for Scoped {
    fn trigger(
        &self,
        kind: ObjectKind,
        mode: RunMode,
        trigger: RunTrigger,
    ) -> BoxFuture<'_, Result<Uuid, TriggerError>> {
        Box::pin(account::scope(self.portal_id, SyncControl::trigger(&self.poller, kind, mode, trigger)))
    }

    fn next_runs(&self) -> Vec<(ObjectKind, Option<chrono::DateTime<chrono::Utc>>)> {
        SyncControl::next_runs(&self.poller)
    }

    fn next_sweep(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        SyncControl::next_sweep(&self.poller)
    }

    fn trigger_associations(&self, trigger: RunTrigger) -> BoxFuture<'_, Result<Uuid, TriggerError>> {
        Box::pin(account::scope(self.portal_id, SyncControl::trigger_associations(&self.poller, trigger)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poller::scheduler::Target;

    fn account(incremental: Option<&str>, full: Option<&str>) -> Account {
        Account {
            portal_id: 2002,
            name: "emea".into(),
            is_default: false,
            token_env: Some("EMEA_TOKEN".into()),
            client_secret_env: None,
            api_base: None,
            requests_per_10s: None,
            schedule_incremental: incremental.map(str::to_owned),
            schedule_full: full.map(str::to_owned),
            created_at: chrono::Utc::now(),
        }
    }

    fn process() -> ScheduleSettings {
        let never: Schedule = "0 0 1 1 *".parse().unwrap();
        ScheduleSettings {
            schedule_contacts: never.clone(),
            schedule_deals: never.clone(),
            schedule_calls: never.clone(),
            schedule_owners: never.clone(),
            schedule_full: never.clone(),
            schedule_audit: never.clone(),
            schedule_associations: never,
        }
    }

    fn pattern(schedules: &Schedules, target: Target) -> String {
        let (_, schedule) = schedules.entries.iter().find(|(t, _)| *t == target).unwrap();
        format!("{schedule:?}")
    }

    #[test]
    fn an_accounts_own_schedules_replace_the_processs() {
        let own = schedules_of(&account(Some("*/10 * * * *"), Some("0 2 * * 6")), &process()).unwrap();
        for kind in ObjectKind::ALL {
            assert_eq!(pattern(&own, Target::Object(kind)), "Schedule(*/10 * * * *)", "{kind}");
        }
        assert_eq!(pattern(&own, Target::FullPass), "Schedule(0 2 * * 6)");
        assert_eq!(pattern(&own, Target::Audit), "Schedule(0 0 1 1 *)", "the rest stay the process's");
        let theirs = schedules_of(&account(None, None), &process()).unwrap();
        assert_eq!(pattern(&theirs, Target::Object(ObjectKind::Contacts)), "Schedule(0 0 1 1 *)");
        assert!(matches!(
            schedules_of(&account(Some("every minute"), None), &process()),
            Err(StartError::Schedule { .. })
        ));
    }
}

//! The periodic check behind alerts and the run metrics: every interval it reads `sync_logs`,
//! records newly finished runs in the run-duration histogram, judges the alert conditions and
//! delivers the messages owed through every channel. Runs in `serve` whether or not a channel is
//! configured (the metrics need it); without one, transitions are only logged. Each channel keeps
//! its own record of what it announced, so a message one channel could not deliver is retried on
//! that channel alone.
//!
//! It reads finished runs rather than being told by the poller, so runs of every process writing
//! to the database (`hubspot-sync sync` included) are counted, of every account: each check
//! reads each account's rows in one transaction in its scope (`store::accounts::in_scope`) and
//! judges them on their own, against the account's schedules (its `schedule_incremental`, else
//! the process's).
//!
//! Alerts are judged and sent only while this process leads ([`Leadership`]); a follower records
//! the run metrics only and forgets what it had announced, and checks at once when it becomes
//! leader.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::channels::Channels;
use super::message::Message;
use super::{
    Alert, AlertState, AuditResult, Condition, FinishedRun, Holding, ObjectHistory, Observation, SPIKE_WINDOW_MINUTES,
    Transition, account_label, audit_conditions, object_conditions, signature_spike,
};
use crate::config::{Schedule, ScheduleSettings};
use crate::kind::ObjectKind;
use crate::metric;
use crate::poller::leader::Leadership;
use crate::store::accounts::{self, Account};
use crate::store::audit::{self, LastAudit};
use crate::store::run_history::{self, HistoryRow};
use crate::store::sync_failures::{self, Summary};
use crate::store::{self, Pool, StoreError};
use crate::telemetry::ErrorChain;
use crate::webhook::stats::WebhookStats;

/// How often `serve` checks by default (`ALERT_CHECK_INTERVAL`).
pub const CHECK_EVERY: Duration = Duration::from_secs(30);
/// Finished runs are looked for this far behind the newest one seen, so a run whose transaction
/// committed late is still counted (each once, by id).
const OVERLAP: chrono::Duration = chrono::Duration::minutes(2);

/// The alert and run-metrics checker.
pub struct Monitor {
    pool: Pool,
    webhooks: Arc<WebhookStats>,
    schedules: ScheduleSettings,
    channels: Channels,
    started: DateTime<Utc>,
    /// Whether this process leads: only then are alerts judged and sent.
    leadership: Leadership,
    /// What each channel announced (one entry per channel; one for the log without channels).
    states: Vec<AlertState>,
    /// The default account's finished runs counted into the metrics.
    runs: RunCounter,
}

/// Counts the runs of one account that finished (in any instance) into the run metrics, each
/// once: the monitor's for the default account, one per other account (`runtime::accounts`),
/// each reading through its account's pool, in its metrics scope (`account` label).
#[derive(Default)]
pub struct RunCounter {
    /// Newest `completed_at` recorded in the metrics; `None` before the first check.
    cursor: Option<DateTime<Utc>>,
    /// Runs recorded within [`OVERLAP`] of the cursor.
    recorded: HashMap<Uuid, DateTime<Utc>>,
}

impl Monitor {
    /// `started` starts the overdue clock of objects that never ran; alerts go out only while
    /// `leadership` says this process leads ([`Leadership::always`] for a process alone).
    pub fn new(
        pool: Pool,
        webhooks: Arc<WebhookStats>,
        schedules: ScheduleSettings,
        channels: impl Into<Channels>,
        started: DateTime<Utc>,
        leadership: Leadership,
    ) -> Self {
        let channels = channels.into();
        let states = (0..channels.0.len().max(1)).map(|_| AlertState::default()).collect();
        Self { pool, webhooks, schedules, channels, started, leadership, states, runs: RunCounter::default() }
    }

    /// Whether a condition has been announced (for any account) and not yet cleared.
    pub fn is_firing(&self, condition: Condition) -> bool {
        self.states.iter().any(|s| s.is_firing(condition))
    }

    /// Whether a condition of one account (or of the process: `None`) has been announced and not
    /// yet cleared.
    pub fn is_firing_for(&self, account: Option<i64>, condition: Condition) -> bool {
        self.states.iter().any(|s| s.is_firing_alert(Alert { account, condition }))
    }

    /// One check at `now`: returns the transitions delivered by at least one channel, each once
    /// (all of them when no channel is set; none while this process does not lead).
    pub async fn tick(&mut self, now: DateTime<Utc>) -> Result<Vec<Transition>, StoreError> {
        let mut conn = self.pool.get().await?;
        self.runs.record(&mut conn).await?;
        let accounts = accounts::list(&mut conn).await?;
        if !self.leadership.is_leader() {
            self.stand_down();
            return Ok(Vec::new());
        }
        let mut holding = Holding::new();
        for account in &accounts {
            let rows = read_account(&mut conn, account.portal_id).await?;
            let label = account_label(&account.name, account.portal_id, accounts.len());
            for (condition, text) in self.judge(account, rows, now) {
                holding.insert(Alert { account: Some(account.portal_id), condition }, (label.clone(), text));
            }
        }
        drop(conn);
        if let Some((condition, text)) = signature_spike(self.webhooks.window(now, SPIKE_WINDOW_MINUTES)) {
            holding.insert(Alert { account: None, condition }, (String::new(), text));
        }
        let mut delivered: Vec<Transition> = Vec::new();
        for (i, state) in self.states.iter_mut().enumerate() {
            let channel = self.channels.0.get(i);
            for transition in state.transitions(&holding) {
                if let Some(channel) = channel {
                    if let Err(error) = channel.send(&Message::of(&transition)).await {
                        tracing::warn!(alert.condition = %transition.condition.name(), alert.channel = channel.name(),
                            error = %ErrorChain(&error), "alert not delivered; will retry");
                        continue;
                    }
                }
                state.delivered(&transition);
                if !delivered.contains(&transition) {
                    delivered.push(transition);
                }
            }
        }
        for transition in &delivered {
            let condition = transition.condition.name();
            tracing::warn!(alert.condition = %condition, alert.account = transition.account,
                alert.firing = transition.firing, "alert");
            // Accounts it holds for (as announced on any channel): 1 with one account.
            let firing = self.states.iter().map(|s| s.firing_count(transition.condition)).max().unwrap_or(0);
            metrics::gauge!(metric::ALERTS_FIRING, "condition" => condition).set(firing as f64);
        }
        Ok(delivered)
    }

    /// The conditions that hold for one account's rows.
    fn judge(&self, account: &Account, rows: AccountRows, now: DateTime<Utc>) -> Vec<(Condition, String)> {
        let (history_rows, parked, audits) = rows;
        let mut objects: Vec<ObjectHistory> = history_rows.into_iter().filter_map(history).collect();
        for object in &mut objects {
            if let Some(p) = parked.iter().find(|p| p.object == object.kind.as_str()) {
                (object.parked, object.oldest_parked) = (p.parked, Some(p.oldest));
            }
        }
        let schedules = schedules_of(&self.schedules, account);
        let observation = Observation {
            now,
            // An account added since start-up is overdue counted from when it was added.
            since: self.started.max(account.created_at),
            objects: &objects,
            schedules: &schedules,
            webhooks: Default::default(),
        };
        let audits: Vec<AuditResult> = audits.iter().filter_map(audit_result).collect();
        let mut holding = object_conditions(&observation);
        holding.extend(audit_conditions(&audits));
        holding.into_iter().collect()
    }

    /// Not the leader: forgets what was announced (the leader announces), its gauges back to 0.
    fn stand_down(&mut self) {
        for state in &mut self.states {
            for alert in state.clear() {
                metrics::gauge!(metric::ALERTS_FIRING, "condition" => alert.condition.name()).set(0.0);
            }
        }
    }

    /// Checks every `every`, and at once when this process becomes (or stops being) the leader,
    /// until `shutdown`; a failed check is logged and retried next time.
    pub fn spawn(mut self, every: Duration, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut leadership = self.leadership.clone();
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                    () = leadership.changed() => {}
                }
                if let Err(error) = self.tick(Utc::now()).await {
                    tracing::warn!(error = %ErrorChain(&error), "alert check failed; retrying at the next interval");
                }
            }
        })
    }
}

impl RunCounter {
    /// Counts the runs of the connection's account finished since the last call (none at the
    /// first: those were counted by the process before).
    pub async fn record(&mut self, conn: &mut diesel_async::AsyncPgConnection) -> Result<(), StoreError> {
        let Some(cursor) = self.cursor else {
            // First check: runs finished before start-up were counted by the previous process.
            self.cursor = Some(store::db_now(conn).await?);
            return Ok(());
        };
        let rows = run_history::finished_since(conn, cursor - OVERLAP).await?;
        let mut newest = cursor;
        for run in rows {
            newest = newest.max(run.completed_at);
            if self.recorded.insert(run.id, run.completed_at).is_some() {
                continue;
            }
            let seconds = run.duration_ms.unwrap_or(0) as f64 / 1000.0;
            metrics::histogram!(metric::RUN_DURATION, "object" => run.sync_type.clone(), "status" => run.status.as_str(),
                "mode" => run.mode.as_str())
            .record(seconds);
            metrics::counter!(metric::RUNS, "object" => run.sync_type, "status" => run.status.as_str()).increment(1);
        }
        self.cursor = Some(newest);
        self.recorded.retain(|_, at| *at > newest - OVERLAP);
        Ok(())
    }
}

/// One account's rows the conditions are judged on: its objects' latest and last good runs, its
/// parked records, its latest audits.
type AccountRows = (Vec<HistoryRow>, Vec<Summary>, Vec<LastAudit>);

/// Reads [`AccountRows`] in one transaction in the account's scope.
async fn read_account(conn: &mut diesel_async::AsyncPgConnection, portal_id: i64) -> Result<AccountRows, StoreError> {
    let kinds: Vec<String> = ObjectKind::ALL.iter().map(|k| k.as_str().to_owned()).collect();
    accounts::in_scope(conn, portal_id, |conn| {
        Box::pin(async move {
            let rows = run_history::history(conn, kinds).await?;
            let parked = sync_failures::summary(conn).await?;
            Ok((rows, parked, audit::latest(conn).await?))
        })
    })
    .await
}

/// The schedules an account's runs follow: its `schedule_incremental` for the objects' incremental
/// runs when it has one (owners keep the process's daily list), else the process's.
fn schedules_of(process: &ScheduleSettings, account: &Account) -> ScheduleSettings {
    let mut schedules = process.clone();
    let Some(raw) = account.schedule_incremental.as_deref() else { return schedules };
    match raw.parse::<Schedule>() {
        Ok(own) => {
            schedules.schedule_contacts = own.clone();
            schedules.schedule_deals = own.clone();
            schedules.schedule_calls = own;
        }
        Err(error) => tracing::warn!(account.portal_id = account.portal_id, %error,
            "the account's schedule_incremental is not a valid cron expression; its overdue alert uses the process's schedules"),
    }
    schedules
}

fn audit_result(row: &LastAudit) -> Option<AuditResult> {
    let details = row.details.as_ref()?;
    Some(AuditResult {
        kind: row.sync_type.parse().ok()?,
        repaired: details.get("repair").and_then(serde_json::Value::as_bool).unwrap_or(false),
        drift_left: details.get("drift_left").and_then(serde_json::Value::as_i64).unwrap_or(0),
        completed_at: row.completed_at,
    })
}

fn history(row: HistoryRow) -> Option<ObjectHistory> {
    let kind = row.sync_type.parse().ok()?;
    let latest = match (row.status, row.completed_at) {
        (Some(status), Some(completed_at)) => Some(FinishedRun {
            status,
            records_processed: row.records_processed.unwrap_or(0),
            records_failed: row.records_failed.unwrap_or(0),
            completed_at,
            error: row.error,
        }),
        _ => None,
    };
    Some(ObjectHistory { kind, latest, last_good: row.last_good, parked: 0, oldest_parked: None })
}

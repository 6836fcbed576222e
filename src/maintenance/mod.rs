//! The daily maintenance job: applies `SYNC_LOGS_RETENTION` and `OWNER_HISTORY_RETENTION` on
//! `SCHEDULE_MAINTENANCE` (04:30 UTC by default), while this instance leads (like the
//! scheduler: `poller::leader`). A schedule that fired while no instance led is caught up when
//! one takes the lead, once a first job has run (a new database waits for the first firing).
//!
//! Every account's rows: the job goes through the accounts in turn and deletes each one's old
//! rows in its scope (`store::accounts::in_scope`), each account's newest runs protected on their
//! own; its report has one entry per account and table.
//!
//! Rows are deleted in batches of [`BATCH`] (`store::retention`: one short statement each,
//! oldest first, never waiting for a locked row), with a [`PAUSE`] between batches so other
//! writers are never queued behind it. Each job is one `sync_logs` row of sync type and mode
//! `maintenance`: `records_processed` is the rows it deleted, `error_details.details` what it
//! deleted per table (cutoff, rows, batches). A job stops between two batches when this
//! instance stops leading or shuts down (its row then says so, `failed`); the next goes on.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::{Retention, RetentionSettings, Schedule};
use crate::poller::leader::Leadership;
use crate::store::sync_logs::{self, RunMode, RunOutcome, RunStatus, RunTrigger};
use crate::store::{self, Pool, StoreError, accounts, retention};
use crate::telemetry::ErrorChain;

/// The sync type (and mode) of the job's `sync_logs` rows.
pub const SYNC_TYPE: &str = "maintenance";
/// Rows deleted per statement.
pub const BATCH: i64 = 1_000;
/// Pause between two batches.
pub const PAUSE: Duration = Duration::from_millis(50);

/// What one table of one account lost to one job.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TableReport {
    /// The account's HubSpot portal id.
    pub portal_id: i64,
    pub table: &'static str,
    /// Rows older than this were deleted.
    pub cutoff: DateTime<Utc>,
    pub deleted: u64,
    /// Statements that deleted something.
    pub batches: u64,
}

/// How a job went.
#[derive(Clone, Debug)]
pub struct Report {
    /// Its `sync_logs` row.
    pub run_id: Uuid,
    pub status: RunStatus,
    /// One entry per account and table with a retention (none kept forever).
    pub tables: Vec<TableReport>,
    /// Why it stopped before the end, if it did.
    pub error: Option<String>,
}

impl Report {
    pub fn deleted(&self) -> u64 {
        self.tables.iter().map(|t| t.deleted).sum()
    }
}

/// The maintenance job and its schedule.
pub struct Maintenance {
    pool: Pool,
    sync_logs: Retention,
    owner_history: Retention,
    schedule: Schedule,
    leadership: Leadership,
    /// Rows per statement ([`BATCH`]) and the pause between statements ([`PAUSE`]).
    pub batch: i64,
    pub pause: Duration,
}

impl Maintenance {
    /// The job as `settings` say, run while `leadership` says this process leads.
    pub fn new(pool: Pool, settings: &RetentionSettings, leadership: Leadership) -> Self {
        Self {
            pool,
            sync_logs: settings.sync_logs_retention,
            owner_history: settings.owner_history_retention,
            schedule: settings.schedule_maintenance.clone(),
            leadership,
            batch: BATCH,
            pause: PAUSE,
        }
    }

    /// Rows per statement and the pause between statements (tests use small batches).
    pub fn with_batches(mut self, batch: i64, pause: Duration) -> Self {
        self.batch = batch.max(1);
        self.pause = pause;
        self
    }

    /// Runs one job now, to its end unless `stop` is cancelled (checked between batches).
    pub async fn run_once(&self, trigger: RunTrigger, stop: &CancellationToken) -> Result<Report, StoreError> {
        let mut conn = self.pool.get().await?;
        // Only the leader runs jobs: a `running` row here was left by one that stopped.
        sync_logs::fail_abandoned(&mut conn, SYNC_TYPE).await?;
        let run_id = sync_logs::start_run(&mut conn, SYNC_TYPE, trigger, RunMode::Maintenance).await?;
        let now = store::db_now(&mut conn).await?;
        let mut tables = Vec::new();
        let mut error = None;
        let mut plan: Vec<(&'static str, Option<DateTime<Utc>>)> = vec![("sync_logs", self.sync_logs.cutoff(now))];
        plan.extend(retention::OWNER_HISTORY_TABLES.iter().map(|t| (*t, self.owner_history.cutoff(now))));
        'accounts: for portal_id in accounts::list(&mut conn).await?.into_iter().map(|a| a.portal_id) {
            let protected = match self.sync_logs {
                Retention::Keep => Vec::new(),
                Retention::Older(_) => {
                    accounts::in_scope(&mut conn, portal_id, |c| Box::pin(retention::protected_sync_logs(c))).await?
                }
            };
            for &(table, cutoff) in &plan {
                let Some(cutoff) = cutoff else { continue };
                let mut report = TableReport { portal_id, table, cutoff, deleted: 0, batches: 0 };
                let result = self.delete_table(&mut conn, &mut report, &protected, stop).await;
                tables.push(report);
                if let Err(e) = result {
                    error = Some(e);
                    break 'accounts;
                }
            }
        }
        let deleted: u64 = tables.iter().map(|t| t.deleted).sum();
        let outcome = RunOutcome {
            records_processed: i32::try_from(deleted).unwrap_or(i32::MAX),
            records_failed: 0,
            fatal_error: error.clone(),
            details: serde_json::to_value(&tables).ok(),
        };
        let status = sync_logs::finish_run(&mut conn, run_id, &outcome).await?.unwrap_or(RunStatus::Failed);
        Ok(Report { run_id, status, tables, error })
    }

    /// Deletes `report.table`'s old rows batch by batch; the reason when it stops early.
    async fn delete_table(
        &self,
        conn: &mut store::PooledConn,
        report: &mut TableReport,
        protected: &[Uuid],
        stop: &CancellationToken,
    ) -> Result<(), String> {
        loop {
            if stop.is_cancelled() {
                return Err("stopped before the end (shutdown, or this instance no longer leads); \
                            the next job goes on"
                    .to_owned());
            }
            // One short transaction per batch, in the account's scope.
            let (table, cutoff, limit, protected) = (report.table, report.cutoff, self.batch, protected.to_vec());
            let result = accounts::in_scope(conn, report.portal_id, |c| match table {
                "sync_logs" => {
                    Box::pin(async move { retention::delete_sync_logs_batch(c, cutoff, limit, &protected).await })
                }
                table => Box::pin(retention::delete_owner_history_batch(c, table, cutoff, limit)),
            })
            .await;
            let deleted = result.map_err(|e| format!("cannot delete from {}: {}", report.table, ErrorChain(&e)))?;
            if deleted == 0 {
                return Ok(());
            }
            report.deleted += deleted as u64;
            report.batches += 1;
            if (deleted as i64) < self.batch {
                return Ok(());
            }
            tokio::select! {
                () = tokio::time::sleep(self.pause) => {}
                () = stop.cancelled() => {}
            }
        }
    }

    /// Whether a firing was missed since the last job started (never before a first job).
    async fn missed(&self, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let mut conn = self.pool.get().await?;
        let last = sync_logs::last_started(&mut conn, SYNC_TYPE, Some(RunMode::Maintenance)).await?;
        Ok(last.and_then(|last| self.schedule.next_after(last)).is_some_and(|due| due <= now))
    }

    /// Runs the schedule while this process leads, until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut leadership = self.leadership.clone();
            loop {
                tokio::select! {
                    () = leadership.acquired() => {}
                    () = shutdown.cancelled() => return,
                }
                match self.missed(Utc::now()).await {
                    Ok(true) => self.run_logged(RunTrigger::Schedule, &mut leadership, &shutdown).await,
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %ErrorChain(&e), "cannot check for a missed maintenance job"),
                }
                self.lead(&mut leadership, &shutdown).await;
                if shutdown.is_cancelled() {
                    return;
                }
            }
        })
    }

    /// Fires the schedule while this process leads.
    async fn lead(&self, leadership: &mut Leadership, shutdown: &CancellationToken) {
        let mut next = self.schedule.next_after(Utc::now());
        loop {
            if !leadership.sleep_leading(next, shutdown).await {
                return;
            }
            let now = Utc::now();
            if next.is_some_and(|at| at <= now) {
                self.run_logged(RunTrigger::Schedule, leadership, shutdown).await;
                next = self.schedule.next_after(Utc::now());
            }
        }
    }

    /// One job, stopped between batches when the lead is lost or at shutdown; logged.
    async fn run_logged(&self, trigger: RunTrigger, leadership: &mut Leadership, shutdown: &CancellationToken) {
        let stop = shutdown.child_token();
        let job = self.run_once(trigger, &stop);
        tokio::pin!(job);
        let result = tokio::select! {
            result = &mut job => result,
            () = leadership.lost() => {
                stop.cancel();
                job.await
            }
        };
        match result {
            Ok(report) => tracing::info!(
                run.id = %report.run_id, run.status = report.status.as_str(), records.deleted = report.deleted(),
                tables = ?report.tables, error = report.error.as_deref(), "maintenance job finished"
            ),
            Err(e) => tracing::warn!(error = %ErrorChain(&e), "the maintenance job could not run; the next one will"),
        }
    }
}

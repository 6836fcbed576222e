//! The association sweep (`SCHEDULE_ASSOCIATIONS`, hourly by default): what association events
//! missed. It reads again the associations of the records changed since its last good run
//! (rows written since it started, less an overlap for writes that committed late), or of every
//! live record when there is no such run, when asked for a full sweep, or when webhooks are not
//! configured (association changes do not move a record's last-modified date, so without events
//! only reading every record sees them). It first reads the records revived since whose edges no
//! fetch read (`association_reads_due`). Each sweep is one `sync_logs` row of sync type
//! `associations` (mode `incremental` or `full`): records read, records HubSpot could not answer
//! for, and in `error_details` the edges seen, written and removed and the requests made.

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use uuid::Uuid;

use super::{Refreshed, refresh, refresh_around};
use crate::hubspot::{BATCH_READ_MAX, HubSpot, Lane};
use crate::kind::ObjectKind;
use crate::objects::SyncError;
use crate::store::associations::{live_ids, take_any_revived};
use crate::store::records::RecordTable;
use crate::store::sync_logs::{self, RunMode, RunOutcome, RunStatus, RunTrigger};
use crate::store::{Pool, StoreError, locks};
use crate::telemetry::ErrorChain;

/// The `sync_logs.sync_type` of sweeps.
pub const SYNC_TYPE: &str = "associations";

/// How far before the last good sweep's start the next one looks (rows whose transaction began
/// before it but committed after).
const OVERLAP: chrono::Duration = chrono::Duration::minutes(5);

/// Why a sweep could not start.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("an association sweep is already running (in this or another process)")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How a sweep ended.
#[derive(Clone, Debug)]
pub struct SweepReport {
    pub run_id: Uuid,
    pub mode: RunMode,
    pub status: RunStatus,
    /// Records whose associations were read.
    pub records: usize,
    pub refreshed: Refreshed,
    pub error: Option<String>,
}

/// Runs sweeps. Cheap to clone.
#[derive(Clone)]
pub struct Sweeper {
    pool: Pool,
    hubspot: HubSpot,
    /// Every sweep reads every record (webhooks are not configured).
    read_all: bool,
}

/// A sweep that has its lock and its `sync_logs` row.
pub struct Begun {
    conn: AsyncPgConnection,
    pub run_id: Uuid,
    since: Option<DateTime<Utc>>,
}

impl Sweeper {
    pub fn new(pool: Pool, hubspot: HubSpot, read_all: bool) -> Self {
        Self { pool, hubspot, read_all }
    }

    /// Takes the sweep lock and opens the `sync_logs` row (the sweep runs with [`Sweeper::run`]).
    pub async fn begin(&self, trigger: RunTrigger, full: bool) -> Result<Begun, SweepError> {
        let mut conn = locks::dedicated(&self.pool).await?;
        if !locks::try_lock_sweep(&mut conn).await? {
            return Err(SweepError::Busy);
        }
        let abandoned = sync_logs::fail_abandoned(&mut conn, SYNC_TYPE).await.map_err(StoreError::from)?;
        if abandoned > 0 {
            tracing::warn!(sweeps = abandoned, "closed interrupted association sweeps as failed");
        }
        let last = sync_logs::last_good_run(&mut conn, SYNC_TYPE).await.map_err(StoreError::from)?;
        let since = last.filter(|_| !(full || self.read_all)).map(|run| run.started_at - OVERLAP);
        let mode = if since.is_some() { RunMode::Incremental } else { RunMode::Full };
        let run_id = sync_logs::start_run(&mut conn, SYNC_TYPE, trigger, mode).await.map_err(StoreError::from)?;
        tracing::info!(run.id = %run_id, run.mode = mode.as_str(), since = ?since, "association sweep started");
        Ok(Begun { conn, run_id, since })
    }

    /// Runs a begun sweep to its end and records it.
    pub async fn run(&self, mut begun: Begun) -> SweepReport {
        let mode = if begun.since.is_some() { RunMode::Incremental } else { RunMode::Full };
        let mut report = SweepReport {
            run_id: begun.run_id,
            mode,
            status: RunStatus::Running,
            records: 0,
            refreshed: Refreshed::default(),
            error: None,
        };
        if let Err(e) = self.work(&mut begun.conn, begun.since, &mut report).await {
            report.error = Some(ErrorChain(&e).to_string());
        }
        let outcome = RunOutcome {
            records_processed: clamp(report.records),
            records_failed: clamp(report.refreshed.failed),
            fatal_error: report.error.clone(),
            details: Some(serde_json::json!({
                "edges": report.refreshed.edges,
                "written": report.refreshed.written,
                "removed": report.refreshed.removed,
                "requests": report.refreshed.requests,
            })),
        };
        report.status = RunStatus::of(&outcome);
        // The sweep's own connection may be the casualty; a fresh one records the end.
        if sync_logs::finish_run(&mut begun.conn, begun.run_id, &outcome).await.is_err() {
            let recorded = match self.pool.get().await {
                Ok(mut fresh) => sync_logs::finish_run(&mut fresh, begun.run_id, &outcome)
                    .await
                    .map(|_| ())
                    .map_err(StoreError::from),
                Err(e) => Err(StoreError::from(e)),
            };
            if let Err(e) = recorded {
                tracing::error!(run.id = %begun.run_id, error = %ErrorChain(&e), "cannot record the end of the association sweep");
            }
        }
        tracing::info!(
            run.id = %begun.run_id, run.status = report.status.as_str(), records = report.records,
            edges = report.refreshed.edges, written = report.refreshed.written, removed = report.refreshed.removed,
            requests = report.refreshed.requests, error = report.error.as_deref(), "association sweep finished"
        );
        report
    }

    /// [`Sweeper::begin`] then [`Sweeper::run`].
    pub async fn sweep(&self, trigger: RunTrigger, full: bool) -> Result<SweepReport, SweepError> {
        let begun = self.begin(trigger, full).await?;
        Ok(self.run(begun).await)
    }

    async fn work(
        &self,
        conn: &mut AsyncPgConnection,
        since: Option<DateTime<Utc>>,
        report: &mut SweepReport,
    ) -> Result<(), SyncError> {
        for kind in ObjectKind::SYNCED_RECORDS {
            let Some(table) = RecordTable::for_kind(kind) else { continue };
            // Records revived whose edges no fetch read (the process stopped first).
            loop {
                let ids = take_any_revived(conn, table, BATCH_READ_MAX as i64).await?;
                if ids.is_empty() {
                    break;
                }
                let done = refresh_around(&self.hubspot, conn, kind, &ids, Lane::Background).await?;
                report.records += ids.len();
                report.refreshed.add(done);
            }
            let mut after: Option<String> = None;
            loop {
                let ids = live_ids(conn, table, since, after.as_deref(), BATCH_READ_MAX as i64).await?;
                let Some(last) = ids.last().cloned() else { break };
                // Reading every record reads both directions anyway; a few changed ones need the other side.
                let done = match since {
                    Some(_) => refresh_around(&self.hubspot, conn, kind, &ids, Lane::Background).await?,
                    None => refresh(&self.hubspot, conn, kind, &ids, Lane::Background).await?,
                };
                report.records += ids.len();
                report.refreshed.add(done);
                after = Some(last);
            }
        }
        Ok(())
    }
}

fn clamp(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

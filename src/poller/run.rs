//! One run from start to finish: the object's advisory lock, the `sync_logs` row, the mode
//! actually run (no history, or an interrupted full pass, means full), the work, the outcome.
//!
//! An interrupted full pass is resumed by the next run whatever it was asked to do, unless the
//! pass is stuck: after [`STUCK_AFTER`] runs in a row failed without moving its checkpoint (a
//! list page that never loads), incremental runs run incrementally again, so changes keep
//! arriving, and only full runs (the schedule's, a forced one) keep trying the pass.

use std::sync::Arc;
use std::time::Instant;

use diesel_async::AsyncPgConnection;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::core::{Inner, PollerError, RunSummary};
use super::job::Job;
use super::slots::Started;
use super::tally::{Progress, Tally};
use super::{full, incremental, owners};
use crate::kind::ObjectKind;
use crate::objects::SyncError;
use crate::store::sync_logs::{self, RunMode, RunStatus, RunTrigger};
use crate::store::{StoreError, locks, sync_state};
use crate::telemetry::ErrorChain;

/// Tells whoever waits for the run's id (a `trigger` call) how the run started.
pub struct StartNotice {
    pub tx: Option<oneshot::Sender<Result<Uuid, PollerError>>>,
}

impl StartNotice {
    /// The run has its `sync_logs` row (here, or in another instance when `elsewhere`).
    fn started(&mut self, inner: &Inner, kind: ObjectKind, id: Uuid) {
        inner.slots.started(kind, Started::Running(id));
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Ok(id));
        }
    }

    /// The run could not start.
    fn refused(&mut self, inner: &Inner, kind: ObjectKind, error: &PollerError) {
        inner.slots.started(kind, Started::Failed(error.to_string()));
        if let Some(tx) = self.tx.take() {
            let _ = tx.send(Err(PollerError::NotStarted { kind, reason: error.to_string() }));
        }
    }
}

/// The id of the run another instance is doing for this object, if visible.
async fn running_elsewhere(conn: &mut AsyncPgConnection, kind: ObjectKind) -> Option<Uuid> {
    let recent = sync_logs::recent(conn, Some(kind.as_str()), 1).await.ok()?;
    recent.into_iter().find(|r| r.status == RunStatus::Running).map(|r| r.id)
}

/// Runs in a row that fail without moving an interrupted full pass's checkpoint before incremental
/// runs stop resuming it.
pub const STUCK_AFTER: i32 = 3;

/// The mode to run: full when asked, when there is no watermark yet, or when a full pass was
/// interrupted (it resumes) and is not stuck.
async fn effective_mode(
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    requested: RunMode,
) -> Result<RunMode, PollerError> {
    if requested == RunMode::Full {
        return Ok(RunMode::Full);
    }
    let state = sync_state::get(conn, kind.as_str()).await.map_err(StoreError::from)?;
    let Some(state) = state else { return Ok(RunMode::Full) };
    let unfinished_full = state.full_cursor.is_some() && kind != ObjectKind::Owners;
    if unfinished_full && state.full_stuck_runs < STUCK_AFTER {
        return Ok(RunMode::Full);
    }
    if unfinished_full {
        tracing::warn!(
            object.kind = %kind, failed_runs = state.full_stuck_runs, position = state.full_cursor.as_deref(),
            "an interrupted full sync is stuck; this incremental run goes ahead without it, and full runs keep retrying it"
        );
    }
    Ok(if incremental_from(&state).is_none() { RunMode::Full } else { RunMode::Incremental })
}

/// Where an incremental run starts: the watermark; while the first full pass is stuck, its
/// start (changes made since are fetched; the pass still owes the rest).
fn incremental_from(state: &sync_state::SyncState) -> Option<chrono::DateTime<chrono::Utc>> {
    state.watermark.or(state.full_started_at.filter(|_| state.full_stuck_runs >= STUCK_AFTER))
}

/// Takes the object's lock and opens the `sync_logs` row.
async fn begin(
    inner: &Inner,
    kind: ObjectKind,
    requested: RunMode,
    trigger: RunTrigger,
    notice: &mut StartNotice,
) -> Result<(AsyncPgConnection, RunMode, Uuid), PollerError> {
    let mut conn = locks::dedicated(&inner.pool).await?;
    if !locks::try_lock_object(&mut conn, kind).await? {
        let run_id = running_elsewhere(&mut conn, kind).await;
        if let Some(id) = run_id {
            notice.started(inner, kind, id);
        }
        return Err(PollerError::Busy { kind, run_id });
    }
    // Holding the lock, no run of this object is in progress anywhere: a `running` row left
    // behind is a run that was cut off (crash, database outage) before it could be closed.
    let abandoned = sync_logs::fail_abandoned(&mut conn, kind.as_str()).await.map_err(StoreError::from)?;
    if abandoned > 0 {
        tracing::warn!(object.kind = %kind, runs = abandoned, "closed interrupted runs as failed");
    }
    let mode = effective_mode(&mut conn, kind, requested).await?;
    let id = sync_logs::start_run(&mut conn, kind.as_str(), trigger, mode).await.map_err(StoreError::from)?;
    notice.started(inner, kind, id);
    Ok((conn, mode, id))
}

/// Runs one sync of `kind` to completion and records it.
pub async fn execute(
    inner: &Inner,
    kind: ObjectKind,
    requested: RunMode,
    trigger: RunTrigger,
    mut notice: StartNotice,
) -> Result<RunSummary, PollerError> {
    let started = Instant::now();
    let (mut conn, mode, run_id) = match begin(inner, kind, requested, trigger, &mut notice).await {
        Ok(begun) => begun,
        Err(e) => {
            notice.refused(inner, kind, &e);
            return Err(e);
        }
    };
    tracing::info!(
        object.kind = %kind, run.id = %run_id, run.mode = mode.as_str(), run.trigger = trigger.as_str(),
        "sync run started"
    );
    let progress = inner.track(kind, run_id);
    let (tally, result) = work(inner, &mut conn, kind, mode, progress).await;
    if mode == RunMode::Full && result.is_err() && kind != ObjectKind::Owners {
        note_full_failure(&mut conn, kind).await;
    }
    let fatal = result.err().map(|e| (ErrorChain(&e).to_string(), e.details()));
    let outcome = tally.outcome(fatal);
    let status = finish(inner, &mut conn, run_id, &outcome).await;
    inner.untrack(kind, run_id);
    let status = status?;
    let summary = RunSummary {
        run_id,
        kind,
        mode,
        trigger,
        status,
        records_processed: tally.processed,
        records_failed: tally.failed,
        pages: tally.pages,
        error: outcome.fatal_error.clone(),
        duration: started.elapsed(),
    };
    summary.record();
    Ok(summary)
}

/// Counts a failed full run against its unfinished pass; says so when the pass is stuck.
async fn note_full_failure(conn: &mut AsyncPgConnection, kind: ObjectKind) {
    match sync_state::note_full_failure(conn, kind.as_str()).await {
        Ok(Some(runs)) if runs >= STUCK_AFTER => tracing::error!(
            object.kind = %kind, failed_runs = runs,
            "the interrupted full sync failed {runs} runs in a row at the same position; incremental runs no longer \
             resume it, full runs keep retrying it: see the failed runs' errors in sync_logs"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(object.kind = %kind, error = %e, "cannot count the failed full sync run"),
    }
}

/// The mode-specific work; the tally survives a failure so the counts are kept.
async fn work(
    inner: &Inner,
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    mode: RunMode,
    progress: Arc<Progress>,
) -> (Tally, Result<(), SyncError>) {
    let tally = Tally::new(progress);
    let read_since = match crate::store::db_now(conn).await {
        Ok(now) => now,
        Err(e) => return (tally, Err(e.into())),
    };
    // A search may answer from an index a few seconds behind (the skew covers that lag): a row
    // archived within it is not revived by what the search returns.
    let lag = match mode {
        RunMode::Incremental => chrono::Duration::from_std(inner.options.skew).unwrap_or_default(),
        RunMode::Full | RunMode::Audit | RunMode::Maintenance => chrono::Duration::zero(),
    };
    let write = crate::objects::WriteContext { read_since: Some(read_since - lag), ..inner.options.write.clone() };
    let mut job = Job { kind, hubspot: &inner.hubspot, conn, options: &inner.options, write, tally };
    let result = async {
        if kind == ObjectKind::Owners {
            return owners::run(&mut job).await;
        }
        match mode {
            // Audits are not poller runs (`crate::audit`); asked for one, the poller does a full pass.
            RunMode::Full | RunMode::Audit | RunMode::Maintenance => full::run(&mut job).await,
            RunMode::Incremental => {
                let state = sync_state::get(job.conn, kind.as_str()).await?;
                match state.as_ref().and_then(incremental_from) {
                    Some(mark) => incremental::run(&mut job, mark).await,
                    None => full::run(&mut job).await,
                }
            }
        }
    }
    .await;
    (job.tally, result)
}

/// Closes the `sync_logs` row, on a fresh pooled connection if the run's own one broke.
async fn finish(
    inner: &Inner,
    conn: &mut AsyncPgConnection,
    run_id: Uuid,
    outcome: &sync_logs::RunOutcome,
) -> Result<RunStatus, PollerError> {
    let status = match sync_logs::finish_run(conn, run_id, outcome).await {
        Ok(status) => status,
        Err(_) => {
            let mut pooled = inner.pool.get().await.map_err(StoreError::from)?;
            sync_logs::finish_run(&mut pooled, run_id, outcome).await.map_err(StoreError::from)?
        }
    };
    Ok(status.unwrap_or_else(|| RunStatus::of(outcome)))
}

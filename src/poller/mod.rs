//! The reconciliation poller: full and incremental syncs per object, one `sync_logs` row per
//! run, on cron schedules ([`scheduler`]) or on demand ([`Poller::trigger`], [`Poller::run`]).
//!
//! - [`full`]: list pages streamed into the store with a resumable checkpoint; finds deletions.
//! - [`incremental`]: search by last-modified window, walked by id past the 10,000 cap.
//! - [`owners`]: owners to `staff` (and owners HubSpot lists no more archived).
//! - [`fast`]: the fast polling lanes (searches every few seconds when webhooks are off).
//! - [`leader`]: which instance leads (schedules, sends alerts) when several share a database.
//! - [`slots`]: one run per object per process, later requests coalesced into one follow-up;
//!   `store::locks`: a PostgreSQL advisory lock per object across instances.
//! - [`associations`]: the association sweep (`SCHEDULE_ASSOCIATIONS`), one `sync_logs` row of
//!   sync type `associations` per sweep.
//! - [`control`]: what the operations surface asks of the poller; [`listen`]: runs asked for
//!   with `trigger_hubspot_sync()`.
//!
//! Every run is a task tracked by the poller: [`Poller::shutdown`] waits for them within the
//! grace, then aborts what is left and closes its `sync_logs` rows as `failed`, so no row is left
//! `running` by a clean stop.

pub mod associations;
pub mod control;
mod core;
pub mod fast;
mod full;
mod incremental;
mod job;
pub mod leader;
pub mod listen;
mod owners;
mod run;
pub mod scheduler;
mod slots;
mod tally;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use uuid::Uuid;

pub use core::{PollerError, PollerOptions, RunSummary};
pub use leader::{Election, Leadership};
pub use scheduler::{Schedules, run_scheduler};
pub use tally::Progress;

use crate::hubspot::HubSpot;
use crate::kind::ObjectKind;
use crate::store::Pool;
use crate::store::sync_logs::{self, RunOutcome};
pub use crate::store::sync_logs::{RunMode as Mode, RunStatus, RunTrigger as Trigger};
use crate::telemetry::ErrorChain;
use core::{Inner, lock};
use run::StartNotice;
use slots::{Claim, Started};

/// The error recorded for a run that shutdown cut off.
pub const INTERRUPTED_BY_SHUTDOWN: &str =
    "interrupted by shutdown: the run did not finish within SHUTDOWN_GRACE; the next run picks up from here";

/// Runs reconciliation syncs. Cheap to clone.
#[derive(Clone)]
pub struct Poller {
    inner: Arc<Inner>,
}

impl Poller {
    pub fn new(pool: Pool, hubspot: HubSpot, options: PollerOptions) -> Self {
        Self { inner: Arc::new(Inner::new(pool, hubspot, options)) }
    }

    /// Starts one run now (recorded in `sync_logs` with this trigger) and returns its id without
    /// waiting for the end. While a run of the object is in progress (here or in another
    /// instance), returns that run's id; requests made during a run here are coalesced into one
    /// follow-up run.
    pub async fn trigger(&self, kind: ObjectKind, mode: Mode, trigger: Trigger) -> Result<Uuid, PollerError> {
        if self.inner.is_stopping() {
            return Err(PollerError::Stopped);
        }
        match self.inner.slots.claim(kind, mode, trigger) {
            Claim::Busy(mut started) => {
                let state = started.wait_for(|s| *s != Started::Pending).await.map_err(|_| PollerError::Stopped)?;
                match state.clone() {
                    Started::Running(id) => Ok(id),
                    Started::Failed(reason) => Err(PollerError::NotStarted { kind, reason }),
                    Started::Pending => Err(PollerError::Stopped),
                }
            }
            Claim::Claimed => {
                let (tx, rx) = oneshot::channel();
                let this = self.clone();
                self.inner.spawn(async move { this.drive(kind, mode, trigger, StartNotice { tx: Some(tx) }).await });
                rx.await.map_err(|_| PollerError::Stopped)?
            }
        }
    }

    /// Runs one sync of `kind` to completion (the CLI's `sync`).
    pub async fn run(&self, kind: ObjectKind, mode: Mode, trigger: Trigger) -> Result<RunSummary, PollerError> {
        if self.inner.is_stopping() {
            return Err(PollerError::Stopped);
        }
        match self.inner.slots.claim(kind, mode, trigger) {
            Claim::Busy(started) => {
                let run_id = match &*started.borrow() {
                    Started::Running(id) => Some(*id),
                    _ => None,
                };
                Err(PollerError::Busy { kind, run_id })
            }
            Claim::Claimed => {
                let result = run::execute(&self.inner, kind, mode, trigger, StartNotice { tx: None }).await;
                if let Some((mode, trigger)) = self.inner.slots.release(kind) {
                    let this = self.clone();
                    self.inner.spawn(async move { this.drive(kind, mode, trigger, StartNotice { tx: None }).await });
                }
                result
            }
        }
    }

    /// Runs a claimed object, then each coalesced follow-up, then frees it.
    async fn drive(&self, kind: ObjectKind, mode: Mode, trigger: Trigger, notice: StartNotice) {
        let mut next = Some((mode, trigger, notice));
        while let Some((mode, trigger, notice)) = next.take() {
            if let Err(e) = run::execute(&self.inner, kind, mode, trigger, notice).await {
                tracing::warn!(object.kind = %kind, error = %ErrorChain(&e), "sync run did not take place");
            }
            next = self.inner.slots.release(kind).map(|(m, t)| (m, t, StartNotice { tx: None }));
            if self.inner.is_stopping() {
                break;
            }
        }
    }

    /// Runs one association sweep to completion (the CLI's `sync associations`).
    pub async fn sweep_associations(&self, trigger: Trigger) -> Result<associations::SweepSummary, PollerError> {
        if self.inner.is_stopping() {
            return Err(PollerError::Stopped);
        }
        let run_id = associations::begin(&self.inner, trigger).await?;
        associations::execute(&self.inner, run_id).await
    }

    /// Starts an association sweep now and returns its `sync_logs` id without waiting for the
    /// end.
    pub async fn trigger_sweep(&self, trigger: Trigger) -> Result<Uuid, PollerError> {
        if self.inner.is_stopping() {
            return Err(PollerError::Stopped);
        }
        let run_id = associations::begin(&self.inner, trigger).await?;
        let this = self.clone();
        self.inner.spawn(async move {
            if let Err(e) = associations::execute(&this.inner, run_id).await {
                tracing::warn!(run.id = %run_id, error = %ErrorChain(&e), "the association sweep could not be recorded");
            }
        });
        Ok(run_id)
    }

    /// The next scheduled time per object (set while the scheduler runs).
    pub fn next_runs(&self) -> Vec<(ObjectKind, Option<DateTime<Utc>>)> {
        let next = lock(&self.inner.next_runs);
        ObjectKind::ALL.iter().map(|k| (*k, next.get(k).copied())).collect()
    }

    fn set_next_runs(&self, next: HashMap<ObjectKind, DateTime<Utc>>) {
        *lock(&self.inner.next_runs) = next;
    }

    /// Live counters of the object's run in progress, if one is.
    pub fn progress(&self, kind: ObjectKind) -> Option<Arc<Progress>> {
        lock(&self.inner.progress).get(&kind).cloned()
    }

    /// Whether a run of the object is in progress in this process.
    pub fn is_running(&self, kind: ObjectKind) -> bool {
        self.inner.slots.is_running(kind)
    }

    /// Starts `task` (a scheduled run) as one of the poller's tracked tasks.
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.inner.spawn(task);
    }

    /// Stops starting runs, waits up to `grace` for those in flight, then aborts what is left and
    /// closes its `sync_logs` rows as `failed` ([`INTERRUPTED_BY_SHUTDOWN`]). Returns how many
    /// runs it had to close.
    pub async fn shutdown(&self, grace: Duration) -> usize {
        self.inner.stopping.store(true, Ordering::SeqCst);
        self.inner.tasks.close();
        if tokio::time::timeout(grace, self.inner.tasks.wait()).await.is_ok() {
            return 0;
        }
        self.inner.abort_all();
        let runs = self.inner.active_runs();
        let outcome = RunOutcome {
            records_processed: 0,
            records_failed: 0,
            fatal_error: Some(INTERRUPTED_BY_SHUTDOWN.to_owned()),
            details: None,
        };
        let mut closed = 0;
        match self.inner.pool.get().await {
            Ok(mut conn) => {
                for (run_id, kind) in runs {
                    match sync_logs::finish_run(&mut conn, run_id, &outcome).await {
                        Ok(Some(_)) => {
                            closed += 1;
                            tracing::warn!(object.kind = %kind, run.id = %run_id, "{INTERRUPTED_BY_SHUTDOWN}");
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::error!(run.id = %run_id, error = %ErrorChain(&e), "cannot close an interrupted run; the next run of the object closes it")
                        }
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "cannot close interrupted runs; the next run of each object closes them")
            }
        }
        closed
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub fn hubspot(&self) -> &HubSpot {
        &self.inner.hubspot
    }
}

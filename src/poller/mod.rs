//! The reconciliation poller: full and incremental syncs per object, one `sync_logs` row per
//! run, on cron schedules ([`scheduler`]) or on demand ([`Poller::trigger`], [`Poller::run`]).
//!
//! - [`full`]: list pages streamed into the store with a resumable checkpoint; finds deletions.
//! - [`incremental`]: search by last-modified window, walked by id past the 10,000 cap.
//! - [`owners`]: owners to `staff`.
//! - [`slots`]: one run per object per process, later requests coalesced into one follow-up;
//!   [`lock`]: a PostgreSQL advisory lock per object across instances.

pub mod control;
pub mod listen;
mod full;
mod incremental;
mod job;
mod owners;
mod run;
pub mod scheduler;
mod slots;
mod tally;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::oneshot;
use uuid::Uuid;

pub use scheduler::{Schedules, run_scheduler};
pub use tally::Progress;

use crate::hubspot::HubSpot;
use crate::kind::ObjectKind;
use crate::objects::WriteContext;
pub use crate::store::sync_logs::{RunMode as Mode, RunStatus, RunTrigger as Trigger};
use crate::store::{Pool, StoreError};
use run::StartNotice;
use slots::{Claim, Slots, Started};

/// How the poller runs (defaults suit production).
#[derive(Clone, Debug)]
pub struct PollerOptions {
    /// How far before the last good watermark an incremental run starts (search index lag).
    pub overlap: Duration,
    /// How far before now an incremental window ends (records this fresh wait for the next run).
    pub skew: Duration,
    pub write: WriteContext,
}

impl Default for PollerOptions {
    fn default() -> Self {
        Self { overlap: Duration::from_secs(5 * 60), skew: Duration::from_secs(5), write: WriteContext::default() }
    }
}

/// Why a run could not be started or recorded (a run that fails is a `failed` row, not this).
#[derive(Debug, thiserror::Error)]
pub enum PollerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a {kind} sync is already running")]
    Busy { kind: ObjectKind, run_id: Option<Uuid> },
    #[error("the {kind} sync could not start: {reason}")]
    NotStarted { kind: ObjectKind, reason: String },
    #[error("the sync task stopped unexpectedly")]
    Stopped,
}

/// How a finished run went.
#[derive(Clone, Debug)]
pub struct RunSummary {
    pub run_id: Uuid,
    pub kind: ObjectKind,
    pub mode: Mode,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub records_processed: u64,
    pub records_failed: u64,
    pub pages: u64,
    /// Why the run could not complete, for `failed` runs.
    pub error: Option<String>,
    pub duration: Duration,
}

impl RunSummary {
    fn record(&self) {
        // Run metrics come from sync_logs (`alerts::monitor`), so runs of `hubspot-sync sync` count too.
        tracing::info!(
            object.kind = %self.kind, run.id = %self.run_id, run.mode = self.mode.as_str(),
            run.status = self.status.as_str(), records.processed = self.records_processed,
            records.failed = self.records_failed, pages = self.pages,
            duration_ms = self.duration.as_millis() as u64, error = self.error.as_deref(),
            "sync run finished"
        );
    }
}

struct Inner {
    pool: Pool,
    hubspot: HubSpot,
    options: PollerOptions,
    slots: Slots,
    progress: Mutex<HashMap<ObjectKind, Arc<Progress>>>,
    next_runs: Mutex<HashMap<ObjectKind, DateTime<Utc>>>,
}

impl Inner {
    fn track(&self, kind: ObjectKind) -> Arc<Progress> {
        let progress = Arc::new(Progress::default());
        self.progress.lock().unwrap_or_else(PoisonError::into_inner).insert(kind, progress.clone());
        progress
    }

    fn untrack(&self, kind: ObjectKind) {
        self.progress.lock().unwrap_or_else(PoisonError::into_inner).remove(&kind);
    }
}

/// Runs reconciliation syncs. Cheap to clone.
#[derive(Clone)]
pub struct Poller {
    inner: Arc<Inner>,
}

impl Poller {
    pub fn new(pool: Pool, hubspot: HubSpot, options: PollerOptions) -> Self {
        Self {
            inner: Arc::new(Inner {
                pool,
                hubspot,
                options,
                slots: Slots::default(),
                progress: Mutex::default(),
                next_runs: Mutex::default(),
            }),
        }
    }

    /// Starts one run now (recorded in `sync_logs` with this trigger) and returns its id without
    /// waiting for the end. While a run of the object is in progress (here or in another
    /// instance), returns that run's id; requests made during a run here are coalesced into one
    /// follow-up run.
    pub async fn trigger(&self, kind: ObjectKind, mode: Mode, trigger: Trigger) -> Result<Uuid, PollerError> {
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
                tokio::spawn(async move { this.drive(kind, mode, trigger, StartNotice { tx: Some(tx) }).await });
                rx.await.map_err(|_| PollerError::Stopped)?
            }
        }
    }

    /// Runs one sync of `kind` to completion (the CLI's `sync`).
    pub async fn run(&self, kind: ObjectKind, mode: Mode, trigger: Trigger) -> Result<RunSummary, PollerError> {
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
                    tokio::spawn(async move { this.drive(kind, mode, trigger, StartNotice { tx: None }).await });
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
                tracing::warn!(object.kind = %kind, error = %e, "sync run did not take place");
            }
            next = self.inner.slots.release(kind).map(|(m, t)| (m, t, StartNotice { tx: None }));
        }
    }

    /// The next scheduled time per object (set while the scheduler runs).
    pub fn next_runs(&self) -> Vec<(ObjectKind, Option<DateTime<Utc>>)> {
        let next = self.inner.next_runs.lock().unwrap_or_else(PoisonError::into_inner);
        ObjectKind::ALL.iter().map(|k| (*k, next.get(k).copied())).collect()
    }

    fn set_next_runs(&self, next: HashMap<ObjectKind, DateTime<Utc>>) {
        *self.inner.next_runs.lock().unwrap_or_else(PoisonError::into_inner) = next;
    }

    /// Live counters of the object's run in progress, if one is.
    pub fn progress(&self, kind: ObjectKind) -> Option<Arc<Progress>> {
        self.inner.progress.lock().unwrap_or_else(PoisonError::into_inner).get(&kind).cloned()
    }

    /// Whether a run of the object is in progress in this process.
    pub fn is_running(&self, kind: ObjectKind) -> bool {
        self.inner.slots.is_running(kind)
    }

    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    pub fn hubspot(&self) -> &HubSpot {
        &self.inner.hubspot
    }
}

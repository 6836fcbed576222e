//! What the poller's parts share: its options, errors, the summary of a run, and the state every
//! run of a process reaches (`Inner`: pool, client, run slots, progress, tracked tasks).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::AbortHandle;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

use super::slots::Slots;
use super::tally::Progress;
use crate::hubspot::HubSpot;
use crate::kind::ObjectKind;
use crate::objects::WriteContext;
use crate::store::sync_logs::{RunMode as Mode, RunStatus, RunTrigger as Trigger};
use crate::store::{Pool, StoreError};

/// How the poller runs (defaults suit production).
#[derive(Clone, Debug)]
pub struct PollerOptions {
    /// How far before the last good watermark an incremental run starts (search index lag).
    pub overlap: Duration,
    /// How far before now an incremental window ends (records this fresh wait for the next run).
    pub skew: Duration,
    pub write: WriteContext,
    /// A parked record holds the incremental watermark for this many failed attempts, then
    /// stops holding it (it stays parked and is retried; later runs do not re-read everything
    /// since it).
    pub hold_watermark_attempts: i32,
    /// Backoff of parked records (`sync_failures.next_attempt`).
    pub parked_backoff: crate::store::sync_failures::Backoff,
}

/// Failed attempts after which a parked record stops holding the watermark.
pub const HOLD_WATERMARK_ATTEMPTS: i32 = 3;

impl Default for PollerOptions {
    fn default() -> Self {
        Self {
            overlap: Duration::from_secs(5 * 60),
            skew: Duration::from_secs(5),
            write: WriteContext::default(),
            hold_watermark_attempts: HOLD_WATERMARK_ATTEMPTS,
            parked_backoff: crate::store::sync_failures::Backoff::default(),
        }
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
    pub fn record(&self) {
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

/// What the poller's runs share.
pub struct Inner {
    pub pool: Pool,
    pub hubspot: HubSpot,
    pub options: PollerOptions,
    pub slots: Slots,
    pub progress: Mutex<HashMap<ObjectKind, Arc<Progress>>>,
    pub next_runs: Mutex<HashMap<ObjectKind, DateTime<Utc>>>,
    /// Every task that runs syncs, so shutdown can wait for them (and abort what outlasts the
    /// grace).
    pub tasks: TaskTracker,
    aborts: Mutex<Vec<AbortHandle>>,
    /// Runs with an open `sync_logs` row in this process.
    active: Mutex<HashMap<Uuid, ObjectKind>>,
    /// Set by shutdown: no run starts after it.
    pub stopping: AtomicBool,
    /// Set while an association sweep runs in this process.
    pub sweeping: AtomicBool,
    /// When the scheduler fires the association sweep next (set while it runs).
    pub next_sweep: Mutex<Option<DateTime<Utc>>>,
}

impl Inner {
    pub fn new(pool: Pool, hubspot: HubSpot, options: PollerOptions) -> Self {
        Self {
            pool,
            hubspot,
            options,
            slots: Slots::default(),
            progress: Mutex::default(),
            next_runs: Mutex::default(),
            tasks: TaskTracker::new(),
            aborts: Mutex::default(),
            active: Mutex::default(),
            stopping: AtomicBool::new(false),
            sweeping: AtomicBool::new(false),
            next_sweep: Mutex::default(),
        }
    }

    /// Starts a task that runs syncs, tracked for shutdown.
    pub fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let handle = self.tasks.spawn(crate::telemetry::account::carry(task));
        let mut aborts = lock(&self.aborts);
        aborts.retain(|h| !h.is_finished());
        aborts.push(handle.abort_handle());
    }

    /// Aborts every tracked task (they are cut at their next await; transactions roll back).
    pub fn abort_all(&self) {
        for handle in lock(&self.aborts).drain(..) {
            handle.abort();
        }
    }

    pub fn track(&self, kind: ObjectKind, run_id: Uuid) -> Arc<Progress> {
        let progress = Arc::new(Progress::default());
        lock(&self.progress).insert(kind, progress.clone());
        lock(&self.active).insert(run_id, kind);
        progress
    }

    pub fn untrack(&self, kind: ObjectKind, run_id: Uuid) {
        lock(&self.progress).remove(&kind);
        lock(&self.active).remove(&run_id);
    }

    /// The runs with an open row in this process.
    pub fn active_runs(&self) -> Vec<(Uuid, ObjectKind)> {
        lock(&self.active).iter().map(|(id, kind)| (*id, *kind)).collect()
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// A poisoned lock still holds consistent data here (plain maps and lists).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

//! What the operations surface asks of the reconciliation poller: start a run now (force-sync
//! button, `POST /api/sync/{object}`, `trigger_hubspot_sync()`), and when each object runs next.
//!
//! The poller implements [`SyncControl`]; [`ScheduleOnly`] stands in where no poller runs (it
//! knows the schedules but cannot start runs), and tests use their own implementation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::{Poller, PollerError};
use crate::config::ScheduleSettings;
use crate::kind::ObjectKind;
use crate::store::sync_logs::{RunMode, RunTrigger};

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// Nothing in this process can run syncs, or it is shutting down.
    #[error("sync runs are not available: {0}")]
    Unavailable(String),
    /// The run could not be recorded or started.
    #[error("the run could not be started: {0}")]
    Failed(String),
}

/// Starts reconciliation runs and knows their schedule.
pub trait SyncControl: Send + Sync + 'static {
    /// Starts a run of `kind` now and returns its `sync_logs` id at once (the run goes on in the
    /// background).
    fn trigger(
        &self,
        kind: ObjectKind,
        mode: RunMode,
        trigger: RunTrigger,
    ) -> BoxFuture<'_, Result<Uuid, TriggerError>>;

    /// The next scheduled run per object (`None` when the schedule never fires again).
    fn next_runs(&self) -> Vec<(ObjectKind, Option<DateTime<Utc>>)>;

    /// When the association sweep runs next, if known.
    fn next_sweep(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// Starts an association sweep now and returns its `sync_logs` id at once.
    fn trigger_associations(&self, trigger: RunTrigger) -> BoxFuture<'_, Result<Uuid, TriggerError>> {
        let _ = trigger;
        Box::pin(async { Err(TriggerError::Unavailable("no association sweep runs in this process".into())) })
    }
}

/// A shared [`SyncControl`].
pub type SharedControl = Arc<dyn SyncControl>;

/// The pollers of the accounts other than the default one that this process runs, by portal
/// id (filled by the per-account runtime; force sync with `?account=N` reads it). Cheap to clone.
#[derive(Clone, Default)]
pub struct AccountControls {
    controls: Arc<std::sync::RwLock<std::collections::HashMap<i64, SharedControl>>>,
}

impl AccountControls {
    pub fn insert(&self, portal_id: i64, control: SharedControl) {
        self.controls.write().unwrap_or_else(std::sync::PoisonError::into_inner).insert(portal_id, control);
    }

    pub fn remove(&self, portal_id: i64) {
        self.controls.write().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&portal_id);
    }

    /// Every account's poller running here.
    pub fn all(&self) -> Vec<SharedControl> {
        self.controls.read().unwrap_or_else(std::sync::PoisonError::into_inner).values().cloned().collect()
    }

    /// The poller of `portal_id`, while this process runs it.
    pub fn get(&self, portal_id: i64) -> Option<SharedControl> {
        self.controls.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&portal_id).cloned()
    }
}

/// The schedule of each object, with no poller behind it: `next_runs` works, `trigger` answers
/// [`TriggerError::Unavailable`].
#[derive(Clone, Debug)]
pub struct ScheduleOnly {
    pub schedules: ScheduleSettings,
}

impl ScheduleOnly {
    /// Next run per object after `now`, from the cron schedules.
    pub fn next_runs_after(&self, now: DateTime<Utc>) -> Vec<(ObjectKind, Option<DateTime<Utc>>)> {
        ObjectKind::ALL.into_iter().map(|kind| (kind, self.schedules.of(kind).next_after(now))).collect()
    }
}

impl SyncControl for ScheduleOnly {
    fn trigger(&self, _: ObjectKind, _: RunMode, _: RunTrigger) -> BoxFuture<'_, Result<Uuid, TriggerError>> {
        Box::pin(async { Err(TriggerError::Unavailable("no reconciliation poller runs in this process".into())) })
    }

    fn next_runs(&self) -> Vec<(ObjectKind, Option<DateTime<Utc>>)> {
        self.next_runs_after(Utc::now())
    }

    fn next_sweep(&self) -> Option<DateTime<Utc>> {
        self.schedules.schedule_associations.next_after(Utc::now())
    }
}

impl SyncControl for Poller {
    fn trigger(
        &self,
        kind: ObjectKind,
        mode: RunMode,
        trigger: RunTrigger,
    ) -> BoxFuture<'_, Result<Uuid, TriggerError>> {
        Box::pin(async move {
            Poller::trigger(self, kind, mode, trigger).await.map_err(|e| match e {
                PollerError::Stopped => TriggerError::Unavailable(e.to_string()),
                other => TriggerError::Failed(other.to_string()),
            })
        })
    }

    fn next_runs(&self) -> Vec<(ObjectKind, Option<DateTime<Utc>>)> {
        Poller::next_runs(self)
    }

    fn next_sweep(&self) -> Option<DateTime<Utc>> {
        *super::core::lock(&self.inner.next_sweep)
    }

    fn trigger_associations(&self, trigger: RunTrigger) -> BoxFuture<'_, Result<Uuid, TriggerError>> {
        Box::pin(async move {
            self.trigger_sweep(trigger).await.map_err(|e| match e {
                PollerError::Stopped => TriggerError::Unavailable(e.to_string()),
                other => TriggerError::Failed(other.to_string()),
            })
        })
    }
}

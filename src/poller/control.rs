//! The poller behind the operations surface ([`SyncControl`]): force sync, the SQL trigger and
//! the status API's next-run times.

use chrono::{DateTime, Utc};
use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::{Mode, Poller, PollerError, Trigger};
use crate::objects::ObjectKind;
use crate::ops::control::{SyncControl, TriggerError};

impl SyncControl for Poller {
    fn trigger(&self, kind: ObjectKind, mode: Mode, trigger: Trigger) -> BoxFuture<'_, Result<Uuid, TriggerError>> {
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
}

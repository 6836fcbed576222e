//! Which HubSpot account the running task works for, and the `account` label it gives the
//! per-account metrics (`crate::metric::PER_ACCOUNT`).
//!
//! An account's parts (its fetchers, poller, scheduler, fast polling lanes, HubSpot client) run
//! inside [`scope`]; every task they start goes through [`spawn`] or [`carry`], which take the
//! scope along (a tokio task-local is not inherited by a spawned task). The recorder layer
//! ([`Labelled`]) reads the scope when a metric is recorded and adds `account`: the default
//! account (no scope) is `default`; another account is its portal id, for the first
//! [`MAX_LABELS`] accounts this process records for, and `other` beyond, so the label's
//! cardinality stays bounded however many accounts a process runs.
//!
//! Chosen over passing a label to every metric call: one place adds it, so a new metric on the
//! per-account list gets it without touching its call sites; the cost is that a task started
//! with a bare `tokio::spawn` inside an account's parts would record as `default`, which
//! `tests/account_spawns.rs` refuses in the modules that run per account.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Metadata, Recorder, SharedString, Unit};

use crate::metric;

tokio::task_local! {
    /// The portal id of the account the current task works for (absent: the default account).
    static ACCOUNT: i64;
}

/// Most accounts labelled by their portal id; others share [`OTHER`].
pub const MAX_LABELS: usize = 50;
/// The label of the default account.
pub const DEFAULT: &str = "default";
/// The label of accounts past [`MAX_LABELS`].
pub const OTHER: &str = "other";
/// The label's name.
pub const LABEL: &str = "account";

/// Runs `future` as work of the account `portal_id`.
pub fn scope<F: Future>(portal_id: i64, future: F) -> impl Future<Output = F::Output> {
    ACCOUNT.scope(portal_id, future)
}

/// Runs `f` as work of `portal_id` (synchronous code, such as a queue push in a handler).
pub fn in_scope<R>(portal_id: i64, f: impl FnOnce() -> R) -> R {
    ACCOUNT.sync_scope(portal_id, f)
}

/// The account the current task works for (`None`: the default account).
pub fn current() -> Option<i64> {
    ACCOUNT.try_with(|p| *p).ok()
}

/// `future` carrying the current task's account with it, wherever it is polled.
pub fn carry<F: Future>(future: F) -> impl Future<Output = F::Output> {
    let portal = current();
    async move {
        match portal {
            Some(portal) => ACCOUNT.scope(portal, future).await,
            None => future.await,
        }
    }
}

/// `tokio::spawn` of [`carry`]`(future)`: the task works for the spawner's account.
pub fn spawn<F>(future: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(carry(future))
}

/// A recorder that adds the `account` label to the per-account metrics, then records in `inner`.
pub struct Labelled<R> {
    inner: R,
    labels: Mutex<HashMap<i64, SharedString>>,
}

impl<R> Labelled<R> {
    pub fn new(inner: R) -> Self {
        Self { inner, labels: Mutex::new(HashMap::new()) }
    }

    /// The label of `portal`: its id while fewer than [`MAX_LABELS`] are given out, else `other`.
    fn label_of(&self, portal: Option<i64>) -> SharedString {
        let Some(portal) = portal else { return SharedString::const_str(DEFAULT) };
        let mut labels = self.labels.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(label) = labels.get(&portal) {
            return label.clone();
        }
        if labels.len() >= MAX_LABELS {
            return SharedString::const_str(OTHER);
        }
        let label = SharedString::from(portal.to_string());
        labels.insert(portal, label.clone());
        label
    }

    /// The key with the `account` label for a per-account metric; the key itself (borrowed, not
    /// copied: this runs at every recording) for any other.
    fn key<'k>(&self, key: &'k Key) -> std::borrow::Cow<'k, Key> {
        if !metric::PER_ACCOUNT.contains(&key.name()) {
            return std::borrow::Cow::Borrowed(key);
        }
        std::borrow::Cow::Owned(key.with_extra_labels(vec![Label::new(LABEL, self.label_of(current()))]))
    }
}

impl<R: Recorder> Recorder for Labelled<R> {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.inner.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.inner.register_counter(&self.key(key), metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.inner.register_gauge(&self.key(key), metadata)
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        self.inner.register_histogram(&self.key(key), metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_scope_goes_with_spawned_tasks_and_only_with_them() {
        let inside = scope(2002, async { spawn(async { current() }).await.unwrap() }).await;
        assert_eq!(inside, Some(2002));
        let bare = scope(2002, async { tokio::spawn(async { current() }).await.unwrap() }).await;
        assert_eq!(bare, None, "a bare spawn loses the scope: why every per-account spawn carries it");
        assert_eq!(current(), None);
        assert_eq!(in_scope(7, current), Some(7));
    }

    #[test]
    fn labels_are_portal_ids_up_to_the_bound_then_other() {
        let layer = Labelled::new(metrics::NoopRecorder);
        assert_eq!(layer.label_of(None).as_ref(), DEFAULT);
        for portal in 0..MAX_LABELS as i64 {
            assert_eq!(layer.label_of(Some(portal)).as_ref(), portal.to_string());
        }
        assert_eq!(layer.label_of(Some(9_999)).as_ref(), OTHER);
        assert_eq!(layer.label_of(Some(3)).as_ref(), "3", "a labelled account keeps its label");
    }

    #[test]
    fn only_per_account_metrics_get_the_label() {
        let layer = Labelled::new(metrics::NoopRecorder);
        let requests = Key::from_name(metric::HUBSPOT_REQUESTS);
        let per_account = layer.key(&requests);
        assert_eq!(per_account.labels().map(|l| (l.key(), l.value())).collect::<Vec<_>>(), [(LABEL, DEFAULT)]);
        let http = Key::from_name(metric::HTTP_REQUESTS);
        let process = layer.key(&http);
        assert_eq!(process.labels().count(), 0);
    }
}

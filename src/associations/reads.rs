//! Edge reads for records stored live for the first time by the webhook fetchers (new records,
//! restored ones): the fetchers hand their ids over ([`EdgeReads::push`]) and one loop
//! ([`EdgeReads::run`]) reads their associations in batches of up to 100 per kind, on the
//! real-time lane, after a short window that lets ids of several fetches share a read. A read
//! that fails is retried with backoff; ids left when the process stops are read by the next
//! sweep (their rows were written since its last good run).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hubspot::{BATCH_READ_MAX, HubSpot, Lane};
use crate::kind::ObjectKind;
use crate::store::Pool;
use crate::telemetry::ErrorChain;

/// Ids waiting for their edges to be read, per kind. Share it as `Arc<EdgeReads>`.
#[derive(Default)]
pub struct EdgeReads {
    waiting: Mutex<HashMap<ObjectKind, BTreeSet<String>>>,
    notify: Notify,
    /// Wakes a loop waiting out its window when the reads are closed.
    closing: Notify,
    closed: AtomicBool,
}

impl EdgeReads {
    fn lock(&self) -> MutexGuard<'_, HashMap<ObjectKind, BTreeSet<String>>> {
        self.waiting.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues the edge read of records `ids` of `kind`.
    pub fn push(&self, kind: ObjectKind, ids: impl IntoIterator<Item = String>) {
        let mut waiting = self.lock();
        let set = waiting.entry(kind).or_default();
        let before = set.len();
        set.extend(ids);
        if set.len() > before {
            drop(waiting);
            self.notify.notify_one();
        }
    }

    /// Ids waiting, every kind together.
    pub fn len(&self) -> usize {
        self.lock().values().map(BTreeSet::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// No more ids will come: [`EdgeReads::run`] reads what waits, then returns.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.notify_waiters();
        self.notify.notify_one();
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }

    /// Waits `window` for more ids to arrive, or less when the reads are closed meanwhile;
    /// false when cancelled.
    async fn gather(&self, window: Duration, cancel: &CancellationToken) -> bool {
        let closing = self.closing.notified();
        tokio::pin!(closing);
        closing.as_mut().enable();
        if self.is_closed() {
            return true;
        }
        tokio::select! {
            () = tokio::time::sleep(window) => true,
            () = closing => true,
            () = cancel.cancelled() => false,
        }
    }

    /// Up to 100 waiting ids of one kind that has some.
    fn take(&self) -> Option<(ObjectKind, Vec<String>)> {
        let mut waiting = self.lock();
        let (kind, set) = waiting.iter_mut().find(|(_, set)| !set.is_empty())?;
        let ids: Vec<String> = set.iter().take(BATCH_READ_MAX).cloned().collect();
        for id in &ids {
            set.remove(id);
        }
        Some((*kind, ids))
    }

    /// Reads waiting edges until closed (then empty) or cancelled; `window` is how long a first
    /// id waits for others to share its read.
    pub async fn run(&self, hubspot: HubSpot, pool: Pool, window: Duration, cancel: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            if self.is_empty() {
                if self.is_closed() {
                    return;
                }
                if cancel.run_until_cancelled(self.notify.notified()).await.is_none()
                    || !self.gather(window, &cancel).await
                {
                    return;
                }
            }
            let Some((kind, ids)) = self.take() else { continue };
            let read = async {
                let mut conn = pool.get().await?;
                super::refresh_around(&hubspot, &mut conn, kind, &ids, Lane::Realtime).await
            };
            match cancel.run_until_cancelled(read).await {
                None => return,
                Some(Ok(done)) => {
                    failures = 0;
                    tracing::debug!(object.kind = %kind, records = ids.len(), edges = done.edges, "edges of new records read");
                }
                Some(Err(e)) => {
                    failures = failures.saturating_add(1);
                    let delay =
                        Duration::from_millis(500).saturating_mul(1 << failures.min(6)).min(Duration::from_secs(30));
                    tracing::warn!(object.kind = %kind, records = ids.len(), error = %ErrorChain(&e),
                        retry_in_ms = delay.as_millis() as u64, "edges of new records not read; retrying");
                    self.push(kind, ids);
                    // Closed or not, the read is tried again: a drain is bounded by its grace.
                    if cancel.run_until_cancelled(tokio::time::sleep(delay)).await.is_none() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_taken_per_kind_at_most_100_at_a_time() {
        let reads = EdgeReads::default();
        reads.push(ObjectKind::Deals, (0..150).map(|i| format!("{i:03}")));
        reads.push(ObjectKind::Deals, ["000".to_owned()]);
        assert_eq!(reads.len(), 150, "an id waiting once is read once");
        let (kind, first) = reads.take().unwrap();
        assert_eq!((kind, first.len()), (ObjectKind::Deals, 100));
        assert_eq!(reads.take().unwrap().1.len(), 50);
        assert!(reads.take().is_none() && reads.is_empty());
    }
}

//! Edge reads for records stored live for the first time by the webhook fetchers (new records,
//! restored ones). The list is a table, `association_reads_due`: the fetchers put their new
//! records there (`store::associations::queue_reads`), the migration's trigger puts every record
//! revived there, whoever revives it. One loop ([`EdgeReads::run`]) reads their associations in
//! batches of up to 100 per kind on the real-time lane, after a short window that lets several
//! fetches share a read, and takes them off the list once read. So nothing waits in memory: what
//! a crash or a stop leaves on the list is read by the next process, or by the next sweep.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::hubspot::{BATCH_READ_MAX, HubSpot, Lane};
use crate::kind::ObjectKind;
use crate::objects::SyncError;
use crate::store::Pool;
use crate::store::associations::{done_reads, due_reads};
use crate::store::records::RecordTable;
use crate::telemetry::ErrorChain;

/// How often the loop looks at the list when nothing woke it (leftovers of another process).
const LOOK_EVERY: Duration = Duration::from_secs(30);

/// Wakes and stops the edge-read loop. Share it as `Arc<EdgeReads>`.
#[derive(Default)]
pub struct EdgeReads {
    notify: Notify,
    /// Wakes a loop waiting out its window when the reads are closed.
    closing: Notify,
    closed: AtomicBool,
}

impl EdgeReads {
    /// Something may have been put on the list.
    pub fn wake(&self) {
        self.notify.notify_one();
    }

    /// No more reads will be asked for: [`EdgeReads::run`] reads what is on the list, then returns.
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

    /// Reads the edges on the list until closed (then the list is done) or cancelled; `window` is
    /// how long a woken loop waits for more before it reads.
    pub async fn run(&self, hubspot: HubSpot, pool: Pool, window: Duration, cancel: CancellationToken) {
        let mut failures: u32 = 0;
        loop {
            match read_some(&hubspot, &pool).await {
                Ok(true) => {
                    failures = 0;
                    continue;
                }
                Ok(false) if self.is_closed() => return,
                Ok(false) => {
                    let woken = tokio::time::timeout(LOOK_EVERY, self.notify.notified());
                    if cancel.run_until_cancelled(woken).await.is_none() || !self.gather(window, &cancel).await {
                        return;
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay =
                        Duration::from_millis(500).saturating_mul(1 << failures.min(6)).min(Duration::from_secs(30));
                    tracing::warn!(error = %ErrorChain(&e), retry_in_ms = delay.as_millis() as u64,
                        "edges of new records not read; retrying (they stay on the list)");
                    // Closed or not, the read is tried again: a drain is bounded by its grace.
                    if cancel.run_until_cancelled(tokio::time::sleep(delay)).await.is_none() {
                        return;
                    }
                }
            }
        }
    }
}

/// Reads the edges of up to 100 listed records of each kind; false when the list was empty.
async fn read_some(hubspot: &HubSpot, pool: &Pool) -> Result<bool, SyncError> {
    let mut conn = pool.get().await?;
    let mut any = false;
    for kind in ObjectKind::SYNCED_RECORDS {
        let Some(table) = RecordTable::for_kind(kind) else { continue };
        let (ids, upto) = due_reads(&mut conn, table, BATCH_READ_MAX as i64).await?;
        let Some(upto) = upto else { continue };
        any = true;
        let done = super::refresh_around(hubspot, &mut conn, kind, &ids, Lane::Realtime).await?;
        done_reads(&mut conn, table, &ids, upto).await?;
        tracing::debug!(object.kind = %kind, records = ids.len(), edges = done.edges, "edges of new records read");
    }
    Ok(any)
}

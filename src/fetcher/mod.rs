//! Batch fetchers: one drain loop per object kind (contacts, deals, calls) turning queued ids
//! into rows.
//!
//! Each loop takes up to 100 ids, or whatever arrived within `FETCH_WINDOW` (200 ms by default)
//! of the oldest one, makes one batch read on the HubSpot client's real-time lane (served before
//! the poller's background lane, within the same shared request budget) and one upsert
//! (last-modified wins, so a webhook fetch racing a poller run is safe); see [`batch`]. A batch
//! that fails goes back to the queue, ahead of newer ids, and its loop backs off (500 ms doubling
//! to 30 s): ids are never dropped.
//!
//! A record that cannot be read or stored is parked in `sync_failures` and the rest of its batch
//! is stored (see [`batch`]); the retry loop queues parked ids again once their backoff has
//! elapsed (every [`FetcherOptions::retry_every`]), and a record that finally stores is
//! un-parked.
//!
//! Shutdown ([`Fetchers::drain`]): the queue is closed (webhooks get 503), each loop empties its
//! lane without waiting for windows, and finishes its batch in flight; what is still queued when
//! the grace runs out is logged and left to the poller (see `crate::queue`).

pub mod batch;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::hubspot::{BATCH_READ_MAX, HubSpot, Lane};
use crate::kind::ObjectKind;
use crate::objects::WriteContext;
use crate::queue::Queue;
use crate::store::Pool;
use crate::store::sync_failures::{self, Backoff};

/// The kinds webhooks are delivered for (owners have no webhooks).
pub const KINDS: [ObjectKind; 3] = [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls];

use crate::metric;

/// How the loops behave.
#[derive(Clone, Debug)]
pub struct FetcherOptions {
    /// `FETCH_WINDOW`: how long a partial batch waits for more ids.
    pub window: Duration,
    /// Ids per batch read (HubSpot: at most 100).
    pub max_batch: usize,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    pub write: WriteContext,
    /// Backoff of parked records (`sync_failures.next_attempt`).
    pub parked_backoff: Backoff,
    /// How often the retry loop looks for parked ids that are due.
    pub retry_every: Duration,
    /// The budget lane of the reads: `Realtime` for webhook ids; `Polling` when only the fast
    /// polling lanes feed the queue (their reads count in their share of the budget).
    pub lane: Lane,
}

impl FetcherOptions {
    pub fn new(window: Duration, write: WriteContext) -> Self {
        Self {
            window,
            max_batch: BATCH_READ_MAX,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            write,
            parked_backoff: Backoff::default(),
            retry_every: Duration::from_secs(1),
            lane: Lane::Realtime,
        }
    }
}

/// What a drain left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// True when every loop finished within the grace.
    pub complete: bool,
    /// Ids still queued (lost to this process; the poller recovers them).
    pub left: usize,
}

/// The running loops.
pub struct Fetchers {
    queue: Arc<Queue>,
    tasks: JoinSet<()>,
    cancel: CancellationToken,
}

impl Fetchers {
    /// Starts one loop per kind in [`KINDS`] on the current runtime.
    pub fn start(queue: Arc<Queue>, hubspot: HubSpot, pool: Pool, options: FetcherOptions) -> Self {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let options = Arc::new(options);
        for kind in KINDS {
            let drain = Loop {
                kind,
                queue: queue.clone(),
                hubspot: hubspot.clone(),
                pool: pool.clone(),
                options: options.clone(),
                cancel: cancel.clone(),
            };
            tasks.spawn(drain.run());
        }
        tasks.spawn(retry_parked(queue.clone(), pool, options.retry_every, cancel.clone()));
        let (ages, stop) = (queue.clone(), cancel.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                ages.publish_age();
            }
        });
        Self { queue, tasks, cancel }
    }

    /// Closes the queue and waits, at most `grace`, for every loop to empty its lane and finish
    /// its batch in flight; then stops them.
    pub async fn drain(mut self, grace: Duration) -> Drained {
        self.queue.close();
        let waiting = self.queue.depth();
        tracing::info!(queued = waiting, grace_ms = grace.as_millis() as u64, "draining the webhook queue");
        let all = async { while self.tasks.join_next().await.is_some() {} };
        let complete = tokio::time::timeout(grace, all).await.is_ok();
        self.cancel.cancel();
        self.tasks.shutdown().await;
        let left = self.queue.depth();
        if complete {
            tracing::info!("webhook queue drained");
        } else {
            tracing::warn!(left, "shutdown grace over: ids left in the queue go to the next reconciliation run");
        }
        Drained { complete, left }
    }
}

struct Loop {
    kind: ObjectKind,
    queue: Arc<Queue>,
    hubspot: HubSpot,
    pool: Pool,
    options: Arc<FetcherOptions>,
    cancel: CancellationToken,
}

impl Loop {
    async fn run(self) {
        let mut failures: u32 = 0;
        let object = self.kind.as_str();
        loop {
            let due = self.queue.wait_ready(self.kind, self.options.max_batch, self.options.window);
            let Some(true) = self.cancel.run_until_cancelled(due).await else { return };
            // Take the budget slot before the ids: ids arriving while the budget is spent join
            // this batch, so under a tight budget batches grow instead of reads queueing up.
            if self.cancel.run_until_cancelled(self.hubspot.reserve(self.options.lane)).await.is_none() {
                return;
            }
            let crate::queue::Taken { ids, associated, queued } =
                self.queue.take_ready_timed(self.kind, self.options.max_batch);
            if ids.is_empty() {
                continue;
            }
            metrics::histogram!(metric::FETCHER_BATCH_SIZE, "object" => object).record(ids.len() as f64);
            let work = batch::run(
                self.kind,
                &ids,
                &associated,
                &self.hubspot,
                &self.pool,
                &self.options.write,
                self.options.parked_backoff,
                self.options.lane,
            );
            let Some(result) = self.cancel.run_until_cancelled(work).await else {
                self.queue.requeue_marked(self.kind, ids, &associated);
                return;
            };
            match result {
                Ok(outcome) => {
                    failures = 0;
                    let now = tokio::time::Instant::now();
                    self.queue.freshness().stored(self.kind, &queued, outcome.requests as u64, now);
                    let covered = self.queue.settle(self.kind, &outcome.versions);
                    if covered > 0 {
                        metrics::counter!(metric::QUEUE_COVERED, "object" => object).increment(covered as u64);
                    }
                    metrics::counter!(metric::FETCHER_BATCHES, "object" => object).increment(1);
                    tracing::debug!(object.kind = object, ids = ids.len(), ?outcome, "batch stored");
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = self.backoff(failures);
                    metrics::counter!(metric::FETCHER_FAILURES, "object" => object).increment(1);
                    tracing::warn!(object.kind = object, ids = ids.len(), error = %e, retry_in_ms = delay.as_millis() as u64,
                        "batch failed; ids put back");
                    self.queue.requeue_marked(self.kind, ids, &associated);
                    if self.cancel.run_until_cancelled(tokio::time::sleep(delay)).await.is_none() {
                        return;
                    }
                }
            }
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exp = self.options.backoff_min.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
        exp.min(self.options.backoff_max)
    }
}

/// How long a claimed parked id waits before it is claimed again when its retry never reports
/// (process stopped, queue full).
const RETRY_HOLD: Duration = Duration::from_secs(5 * 60);

/// Queues parked ids whose backoff has elapsed, every `every`, until cancelled or the queue
/// closes (ids claimed while the queue refuses them are due again after [`RETRY_HOLD`]).
async fn retry_parked(queue: Arc<Queue>, pool: Pool, every: Duration, cancel: CancellationToken) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while cancel.run_until_cancelled(tick.tick()).await.is_some() && !queue.is_closed() {
        let mut conn = match pool.get().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::debug!(error = %e, "parked records not checked; database unavailable");
                continue;
            }
        };
        for kind in KINDS {
            let limit = BATCH_READ_MAX as i64;
            let ids = match sync_failures::claim_due(&mut conn, kind.as_str(), limit, RETRY_HOLD).await {
                Ok(ids) if ids.is_empty() => continue,
                Ok(ids) => ids,
                Err(e) => {
                    tracing::warn!(object.kind = %kind, error = %e, "parked records not checked; retrying next tick");
                    continue;
                }
            };
            let items: Vec<(ObjectKind, String)> = ids.into_iter().map(|id| (kind, id)).collect();
            match queue.push_batch(&items) {
                Ok(_) => {
                    metrics::counter!(metric::PARKED_RETRIES, "object" => kind.as_str()).increment(items.len() as u64);
                    tracing::info!(object.kind = %kind, ids = items.len(), "parked records queued for another try");
                }
                Err(e) => tracing::warn!(object.kind = %kind, ids = items.len(), error = %e,
                    "parked records not queued; they are due again later"),
            }
        }
    }
}

impl Drop for Fetchers {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

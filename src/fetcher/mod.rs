//! Batch fetchers: one dispatcher turning queued ids of every kind (contacts, deals, calls)
//! into batch reads and rows.
//!
//! For each slot of the HubSpot budget the dispatcher decides which kind it reads ([`dispatch`]:
//! a full batch of 100 at once; partial batches of all kinds together at most one per
//! `FETCH_WINDOW`, 200 ms by default, and at once after an idle window; the kind whose oldest id
//! is oldest first). It reserves the slot on the client's real-time lane (served before the
//! poller's background lane, within the same shared request budget) before it chooses and
//! takes the ids, so ids arriving while the budget is spent join the batch; then it starts the
//! read and goes on to the next slot: the budget, not the dispatcher, paces the reads (at most
//! [`FetcherOptions::max_in_flight`] at once, so their writes never hold the whole pool). Each read is one batch read and one upsert (last-modified wins, so a webhook fetch
//! racing a poller run is safe); see [`batch`]. A batch that fails goes back to the queue, ahead
//! of newer ids, and its kind backs off (500 ms doubling to 30 s) while the others go on: ids
//! are never dropped.
//!
//! A record that cannot be read or stored is parked in `sync_failures` and the rest of its batch
//! is stored (see [`batch`]); the retry loop queues parked ids again once their backoff has
//! elapsed (every [`FetcherOptions::retry_every`]), and a record that finally stores is
//! un-parked.
//!
//! Shutdown ([`Fetchers::drain`]): the queue is closed (webhooks get 503), the dispatcher empties
//! every lane without waiting for the pace, and the reads in flight finish; what is still queued
//! when the grace runs out is logged and left to the poller (see `crate::queue`).

pub mod batch;
pub mod dispatch;

use crate::telemetry::account;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::hubspot::{BATCH_READ_MAX, HubSpot, Lane};
use crate::kind::ObjectKind;
use crate::objects::WriteContext;
use crate::queue::Queue;
use crate::store::Pool;
use crate::store::sync_failures::{self, Backoff};

/// Default of [`FetcherOptions::max_in_flight`]: a few reads at once, well under the database
/// pool's 10 connections.
pub const MAX_IN_FLIGHT: usize = 4;

/// The kinds webhooks are delivered for (owners have no webhooks).
pub const KINDS: [ObjectKind; 3] = [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls];

use crate::metric;

/// How the fetchers behave.
#[derive(Clone, Debug)]
pub struct FetcherOptions {
    /// `FETCH_WINDOW`: partial batches of all kinds together go at most one per window (see
    /// [`dispatch`]).
    pub window: Duration,
    /// Ids per batch read (HubSpot: at most 100).
    pub max_batch: usize,
    /// Reads in flight at once, at most: the budget decides when reads go, this only keeps
    /// their writes from taking the whole database pool (a budget idle after a large import
    /// admits dozens at once).
    pub max_in_flight: usize,
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
    /// The background reads of new records' edges ([`batch`]) in flight at once: each holds a
    /// pooled connection while it waits for the budget, so an import of thousands of new
    /// records must not take the pool from the fetchers' own writes.
    pub edge_readers: Arc<tokio::sync::Semaphore>,
}

/// Background edge reads in flight at once, per set of fetchers.
pub const EDGE_READERS: usize = 2;

impl FetcherOptions {
    pub fn new(window: Duration, write: WriteContext) -> Self {
        Self {
            window,
            max_batch: BATCH_READ_MAX,
            max_in_flight: MAX_IN_FLIGHT,
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            write,
            parked_backoff: Backoff::default(),
            retry_every: Duration::from_secs(1),
            lane: Lane::Realtime,
            edge_readers: Arc::new(tokio::sync::Semaphore::new(EDGE_READERS)),
        }
    }
}

/// What a drain left behind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Drained {
    /// True when every lane was emptied and every read finished within the grace.
    pub complete: bool,
    /// Ids still queued (lost to this process; the poller recovers them).
    pub left: usize,
}

/// The running dispatcher and retry loop.
pub struct Fetchers {
    queue: Arc<Queue>,
    tasks: JoinSet<()>,
    cancel: CancellationToken,
}

impl Fetchers {
    /// Starts the dispatcher of [`KINDS`] and the retry loop on the current runtime.
    pub fn start(queue: Arc<Queue>, hubspot: HubSpot, pool: Pool, options: FetcherOptions) -> Self {
        let cancel = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let options = Arc::new(options);
        let dispatcher = Dispatcher {
            queue: queue.clone(),
            hubspot: hubspot.clone(),
            pool: pool.clone(),
            options: options.clone(),
            cancel: cancel.clone(),
        };
        tasks.spawn(account::carry(dispatcher.run()));
        tasks.spawn(account::carry(retry_parked(queue.clone(), pool, options.retry_every, cancel.clone())));
        let (ages, stop) = (queue.clone(), cancel.clone());
        account::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while stop.run_until_cancelled(tick.tick()).await.is_some() {
                ages.publish_age();
            }
        });
        Self { queue, tasks, cancel }
    }

    /// Closes the queue and waits, at most `grace`, for the dispatcher to empty every lane and
    /// for the reads in flight to finish; then stops them (reads cut short put their ids back).
    pub async fn drain(mut self, grace: Duration) -> Drained {
        self.queue.close();
        let waiting = self.queue.depth();
        tracing::info!(queued = waiting, grace_ms = grace.as_millis() as u64, "draining the webhook queue");
        let all = async { while self.tasks.join_next().await.is_some() {} };
        let complete = tokio::time::timeout(grace, all).await.is_ok();
        self.cancel.cancel();
        // Cancelled, the dispatcher stops its reads at once (their ids go back to the queue) and
        // ends; aborting is the last resort.
        let stopped = async { while self.tasks.join_next().await.is_some() {} };
        let _ = tokio::time::timeout(Duration::from_secs(1), stopped).await;
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

struct Dispatcher {
    queue: Arc<Queue>,
    hubspot: HubSpot,
    pool: Pool,
    options: Arc<FetcherOptions>,
    cancel: CancellationToken,
}

/// What the dispatcher keeps between decisions.
struct State {
    reads: JoinSet<()>,
    backoffs: Arc<Mutex<Backoffs>>,
    pace: dispatch::Pace,
}

/// Failed reads in a row, per kind, and until when that kind backs off: written by each read as
/// it ends, before its ids go back to the queue (so the dispatcher, woken by them, sees it).
#[derive(Default)]
struct Backoffs {
    failures: HashMap<ObjectKind, u32>,
    until: HashMap<ObjectKind, Instant>,
}

impl Backoffs {
    fn succeeded(&mut self, kind: ObjectKind) {
        self.failures.remove(&kind);
        self.until.remove(&kind);
    }

    /// Notes a failure; returns the backoff it starts.
    fn failed(&mut self, kind: ObjectKind, options: &FetcherOptions) -> Duration {
        let n = self.failures.entry(kind).or_default();
        *n = n.saturating_add(1);
        let delay = backoff(options, *n);
        self.until.insert(kind, Instant::now() + delay);
        delay
    }
}

impl Dispatcher {
    async fn run(self) {
        let mut st = State {
            reads: JoinSet::new(),
            backoffs: Arc::default(),
            pace: dispatch::Pace {
                max_batch: self.options.max_batch.max(1),
                window: self.options.window,
                last_partial: None,
                closed: false,
            },
        };
        loop {
            // A push between looking and waiting leaves a permit: the wait below ends at once.
            let changed = self.queue.changed();
            let (lanes, done) = self.lanes(&mut st);
            if done && st.reads.is_empty() {
                return;
            }
            let room = st.reads.len() < self.options.max_in_flight.max(1);
            let wait_until = match dispatch::decide(&lanes, &st.pace, Instant::now()) {
                dispatch::Decision::Read(_) if !room => None,
                dispatch::Decision::Read(_) => {
                    if !self.read_next(&mut st).await {
                        break;
                    }
                    continue;
                }
                dispatch::Decision::WaitUntil(at) => Some(at),
                dispatch::Decision::Idle => None,
            };
            let sleep = async {
                match wait_until {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let has_reads = !st.reads.is_empty();
            tokio::select! {
                () = self.cancel.cancelled() => break,
                () = changed => {}
                () = sleep => {}
                Some(_) = st.reads.join_next(), if has_reads => {}
            }
        }
        // Cancelled: the reads in flight see it at once and put their ids back.
        while st.reads.join_next().await.is_some() {}
    }

    /// The lanes of [`KINDS`] for the policy, and whether the queue is closed and empty.
    fn lanes(&self, st: &mut State) -> (Vec<dispatch::Lane>, bool) {
        while st.reads.try_join_next().is_some() {}
        let until = st.backoffs.lock().unwrap_or_else(PoisonError::into_inner).until.clone();
        let (views, closed) = self.queue.view();
        st.pace.closed = closed;
        let lanes: Vec<dispatch::Lane> = views
            .into_iter()
            .filter(|v| KINDS.contains(&v.kind))
            .map(|v| dispatch::Lane {
                kind: v.kind,
                waiting: v.waiting,
                oldest: v.oldest,
                backoff_until: until.get(&v.kind).copied(),
            })
            .collect();
        let done = closed && lanes.iter().all(|l| l.waiting == 0);
        (lanes, done)
    }

    /// Reserves the next budget slot, then chooses the kind again (ids arrived meanwhile), takes
    /// its ids and starts the read. False when cancelled.
    async fn read_next(&self, st: &mut State) -> bool {
        if self.cancel.run_until_cancelled(self.hubspot.reserve(self.options.lane)).await.is_none() {
            return false;
        }
        let (lanes, _) = self.lanes(st);
        let now = Instant::now();
        let pace = &mut st.pace;
        let dispatch::Decision::Read(kind) = dispatch::decide(&lanes, pace, now) else {
            // Settled by other reads meanwhile: the slot goes unused.
            return true;
        };
        let taken = self.queue.take_ready_timed(kind, pace.max_batch);
        if taken.ids.is_empty() {
            return true;
        }
        if taken.ids.len() < pace.max_batch {
            pace.last_partial = Some(now);
        }
        metrics::histogram!(metric::FETCHER_BATCH_SIZE, "object" => kind.as_str()).record(taken.ids.len() as f64);
        let read = Read {
            kind,
            queue: self.queue.clone(),
            hubspot: self.hubspot.clone(),
            pool: self.pool.clone(),
            options: self.options.clone(),
            cancel: self.cancel.clone(),
            backoffs: st.backoffs.clone(),
        };
        st.reads.spawn(account::carry(read.run(taken)));
        true
    }
}

/// The backoff after `failures` failed reads of one kind in a row.
fn backoff(options: &FetcherOptions, failures: u32) -> Duration {
    let exp = options.backoff_min.saturating_mul(1u32 << failures.saturating_sub(1).min(16));
    exp.min(options.backoff_max)
}

/// One batch read in flight.
struct Read {
    kind: ObjectKind,
    queue: Arc<Queue>,
    hubspot: HubSpot,
    pool: Pool,
    options: Arc<FetcherOptions>,
    cancel: CancellationToken,
    backoffs: Arc<Mutex<Backoffs>>,
}

/// Ids taken for a read: reported finished once stored, else put back (ahead of newer ids), even
/// when the read is dropped mid-way.
struct Holding {
    queue: Arc<Queue>,
    kind: ObjectKind,
    ids: Vec<String>,
    associated: HashSet<String>,
    stored: bool,
}

impl Drop for Holding {
    fn drop(&mut self) {
        if self.stored {
            self.queue.finished(self.kind, &self.ids);
        } else {
            self.queue.requeue_marked(self.kind, std::mem::take(&mut self.ids), &self.associated);
        }
    }
}

impl Read {
    async fn run(self, taken: crate::queue::Taken) {
        let kind = self.kind;
        let object = kind.as_str();
        let crate::queue::Taken { ids, associated, queued } = taken;
        let mut holding = Holding { queue: self.queue.clone(), kind, ids, associated, stored: false };
        let reader = batch::Reader {
            hubspot: &self.hubspot,
            pool: &self.pool,
            queue: &self.queue,
            write: &self.options.write,
            backoff: self.options.parked_backoff,
            lane: self.options.lane,
            edge_readers: &self.options.edge_readers,
        };
        let work = batch::run(kind, &holding.ids, &holding.associated, &reader);
        let Some(result) = self.cancel.run_until_cancelled(work).await else { return };
        let mut backoffs = self.backoffs.lock().unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(outcome) => {
                backoffs.succeeded(kind);
                drop(backoffs);
                holding.stored = true;
                let now = Instant::now();
                self.queue.freshness().stored(kind, &queued, outcome.requests as u64, now);
                let covered = self.queue.settle(kind, &outcome.versions);
                if covered > 0 {
                    metrics::counter!(metric::QUEUE_COVERED, "object" => object).increment(covered as u64);
                }
                metrics::counter!(metric::FETCHER_BATCHES, "object" => object).increment(1);
                tracing::debug!(object.kind = object, ids = holding.ids.len(), ?outcome, "batch stored");
            }
            Err(e) => {
                let delay = backoffs.failed(kind, &self.options);
                drop(backoffs);
                metrics::counter!(metric::FETCHER_FAILURES, "object" => object).increment(1);
                tracing::warn!(object.kind = object, ids = holding.ids.len(), error = %e, retry_in_ms = delay.as_millis() as u64,
                    "batch failed; ids put back");
            }
        }
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

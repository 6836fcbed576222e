//! The fast polling lanes: fresh data for accounts that cannot receive webhooks.
//!
//! Two lanes per polled object, run by the leader only:
//! - **fast**, every `FAST_POLL_INTERVAL` (10 s): a search for records modified from where its
//!   last window ended (minus `FAST_POLL_OVERLAP`, 10 s, which covers HubSpot's search index lag
//!   up to that long) to now;
//! - **delayed**, every `FAST_POLL_DELAYED_INTERVAL` (1 min): the same search over windows that
//!   end `FAST_POLL_DELAY` (2 min) ago, for changes the index showed too late for the fast lane.
//!
//! What a search finds becomes rows in one of two ways (`FAST_POLL_WRITE`):
//! - **straight from the search results** (`auto`, when every property kept fits in one search
//!   body, as for the incremental runs): records already read at that version are skipped, the
//!   rest written (newer wins), and their versions told to the queue
//!   (`crate::queue::Queue::settle`) so that no later event or search reads them again; a record
//!   the database refuses, or one that does not decode, is queued for the fetchers, which park it;
//! - **through the queue** (`queue`, or when the properties do not fit): the search asks only for
//!   ids and `updatedAt`, and the ids go into the webhook queue as changes timed by their
//!   `updatedAt`, so the batch fetchers read them like webhook ids (up to 100 per read).
//!
//! Either way an id already read at that version, or already waiting, costs nothing: the
//! overlaps and the delayed lane find most changes again and drop them there.
//!
//! The incremental runs' rules hold (see `super::incremental`): each window is walked in
//! `hs_object_id` order, every page a fresh query for ids above the last one seen, so more than
//! 10,000 records with one timestamp pass HubSpot's search cap and none is skipped or read twice;
//! a window moves the lane's watermark only once every page of it was read and queued, so a page
//! that fails leaves the watermark where it was and the next pass searches the window again.
//!
//! Budget: every search and every read of what they find goes on the `Polling` lane of the
//! shared budget (`crate::hubspot::limiter`), which gives way to webhook fetches and scheduled
//! runs and never spends more than `FAST_POLL_BUDGET_SHARE` of it.
//!
//! Watermarks live in memory: a lane that starts (or leads again) begins `FAST_POLL_DELAY` back;
//! what changed before that is the incremental runs' to find, as they do without the lanes. The
//! schedules stay the safety net: deletions and merges, which searches do not show, wait for the
//! weekly full pass, as they do without webhooks.

mod status;
mod window;

use crate::telemetry::account;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use status::{Figures, LaneFigures, LaneName, ObjectMode, Pass, PollingStatus};
pub use window::Watermark;

use super::leader::Leadership;
use crate::config::{FastPollWrite, PollingSettings};
use crate::hubspot::{HubSpot, HubSpotError, Lane, RecordPage, SearchWindow};
use crate::kind::ObjectKind;
use crate::metric;
use crate::objects::{WriteContext, write_isolating};
use crate::queue::{Change, Queue, QueueError};
use crate::store::{Pool, StoreError, ping_conn};
use crate::telemetry::ErrorChain;

/// How the lanes run (from `FAST_POLL_*`).
#[derive(Clone, Debug)]
pub struct FastOptions {
    pub interval: Duration,
    pub overlap: Duration,
    pub delay: Duration,
    pub delayed_interval: Duration,
    pub objects: Vec<ObjectKind>,
    pub write: FastPollWrite,
}

impl From<&PollingSettings> for FastOptions {
    fn from(s: &PollingSettings) -> Self {
        Self {
            interval: s.fast_poll_interval,
            overlap: s.fast_poll_overlap,
            delay: s.fast_poll_delay,
            delayed_interval: s.fast_poll_delayed_interval,
            objects: s.fast_poll_objects.clone(),
            write: s.fast_poll_write,
        }
    }
}

/// Why a pass stopped before the end of its window.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("a search page failed")]
    Search(#[from] HubSpotError),
    #[error("the changes found could not be queued")]
    Queue(#[from] QueueError),
    #[error("the records found could not be written")]
    Store(#[from] StoreError),
}

/// Where the lanes write what they find straight from the search results.
#[derive(Clone)]
pub struct Writer {
    pub pool: Pool,
    pub context: WriteContext,
}

/// The lanes of every polled object, before they start.
pub struct FastPolling {
    hubspot: HubSpot,
    queue: Arc<Queue>,
    writer: Writer,
    options: FastOptions,
    leadership: Leadership,
    figures: Arc<Figures>,
}

impl FastPolling {
    /// Lanes that search with `hubspot`, write with `writer` or queue into `queue` (drained by
    /// the batch fetchers), while `leadership` says this process leads.
    pub fn new(
        hubspot: HubSpot,
        queue: Arc<Queue>,
        writer: Writer,
        options: FastOptions,
        leadership: Leadership,
    ) -> Self {
        Self { hubspot, queue, writer, options, leadership, figures: Arc::default() }
    }

    /// The lanes' figures (for the status API).
    pub fn figures(&self) -> Arc<Figures> {
        self.figures.clone()
    }

    /// Runs every lane until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let mut lanes = JoinSet::new();
        for kind in self.options.objects.iter().copied() {
            for (name, every, delay) in [
                (LaneName::Fast, self.options.interval, Duration::ZERO),
                (LaneName::Delayed, self.options.delayed_interval, self.options.delay),
            ] {
                let lane = LaneTask {
                    kind,
                    name,
                    every,
                    delay,
                    overlap: self.options.overlap,
                    reach: self.options.delay,
                    hubspot: self.hubspot.clone(),
                    queue: self.queue.clone(),
                    writer: (self.options.write == FastPollWrite::Auto).then(|| self.writer.clone()),
                    figures: self.figures.clone(),
                };
                lanes.spawn(account::carry(lane.run(self.leadership.clone(), shutdown.clone())));
            }
        }
        tracing::info!(
            objects = ?self.options.objects.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
            interval_ms = self.options.interval.as_millis() as u64,
            delay_ms = self.options.delay.as_millis() as u64,
            "fast polling lanes started (no webhooks)"
        );
        account::spawn(async move { while lanes.join_next().await.is_some() {} })
    }
}

/// One lane of one object.
struct LaneTask {
    kind: ObjectKind,
    name: LaneName,
    every: Duration,
    /// How far behind now its windows end.
    delay: Duration,
    overlap: Duration,
    /// How far back it starts when it takes the lead.
    reach: Duration,
    hubspot: HubSpot,
    queue: Arc<Queue>,
    /// Set when rows may be written straight from the search results.
    writer: Option<Writer>,
    figures: Arc<Figures>,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

impl LaneTask {
    async fn run(self, mut leadership: Leadership, shutdown: CancellationToken) {
        let mut mark: Option<Watermark> = None;
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = leadership.acquired() => {}
            }
            let now = now_ms();
            let mut current = mark.map_or(Watermark::starting(now, self.reach), |m| m.at_least(now, self.reach));
            let mut tick = tokio::time::interval(self.every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return,
                    () = leadership.lost() => break,
                    _ = tick.tick() => {}
                }
                let pass = tokio::select! {
                    biased;
                    () = shutdown.cancelled() => return,
                    pass = self.pass(current) => pass,
                };
                match pass {
                    Ok(next) => current = next,
                    Err(PassError::Queue(QueueError::Closed)) => return,
                    Err(e) => tracing::warn!(
                        object.kind = %self.kind, lane = self.name.as_str(), error = %ErrorChain(&e),
                        "fast polling pass failed; the next pass searches the same window again"
                    ),
                }
                self.publish_lag();
                mark = Some(current);
            }
        }
    }

    /// Searches the next window page by page, queueing what each page names; returns the
    /// watermark moved to the window's end once every page was read and queued.
    async fn pass(&self, mark: Watermark) -> Result<Watermark, PassError> {
        let mut window = mark.next_window(now_ms(), self.overlap, self.delay);
        let mut pass = Pass::default();
        let result = self.walk(&mut window, &mut pass).await;
        let (object, lane) = (self.kind.as_str(), self.name.as_str());
        metrics::counter!(metric::FAST_POLL_FOUND, "object" => object, "lane" => lane).increment(pass.found);
        metrics::counter!(metric::FAST_POLL_QUEUED, "object" => object, "lane" => lane).increment(pass.queued);
        metrics::counter!(metric::FAST_POLL_STORED, "object" => object, "lane" => lane).increment(pass.stored);
        let outcome = if result.is_ok() { "ok" } else { "failed" };
        metrics::counter!(metric::FAST_POLL_PASSES, "object" => object, "lane" => lane, "outcome" => outcome)
            .increment(1);
        match &result {
            Ok(()) => pass.covered_to = DateTime::from_timestamp_millis(window.to_ms),
            Err(e) => pass.error = Some(ErrorChain(e).to_string()),
        }
        self.figures.record(self.kind, self.name, pass);
        result.map(|()| mark.advanced(&window))
    }

    async fn walk(&self, window: &mut SearchWindow, pass: &mut Pass) -> Result<(), PassError> {
        loop {
            let full = match &self.writer {
                Some(_) => self.hubspot.search_modified_inline(self.kind, window, Lane::Polling).await?,
                None => None,
            };
            let next = match (full, &self.writer) {
                (Some(page), Some(writer)) => {
                    pass.searches += 1;
                    let next = page.next.clone();
                    self.store(page, writer, pass).await?;
                    next
                }
                _ => {
                    let page = self.hubspot.search_changed(self.kind, window, Lane::Polling).await?;
                    pass.searches += 1;
                    let next = page.next.clone();
                    self.enqueue(page, pass)?;
                    next
                }
            };
            match next {
                Some(after) => window.after_id = Some(after),
                None => return Ok(()),
            }
        }
    }

    /// Queues the ids of a page (timed by their `updatedAt`) for the batch fetchers.
    fn enqueue(&self, page: RecordPage, pass: &mut Pass) -> Result<(), PassError> {
        let mut changes: Vec<Change> = page
            .records
            .iter()
            .map(|r| Change { kind: self.kind, id: r.id.clone(), changed_at: Some(r.updated_at.timestamp_millis()) })
            .collect();
        // A result that does not decode is read anyway (its fetch parks it if it must).
        changes.extend(page.invalid.iter().filter_map(|r| r.id.clone()).map(|id| Change::untimed(self.kind, id)));
        let pushed = self.queue.push_changes(&changes, &[])?;
        pass.found += changes.len() as u64;
        pass.queued += pushed.added as u64;
        Ok(())
    }

    /// Writes the records of a page that carries every kept property: those already read at
    /// their version are skipped; the versions written are told to the queue; what the database
    /// refuses, or does not decode, is queued for the fetchers (which park it).
    async fn store(&self, page: RecordPage, writer: &Writer, pass: &mut Pass) -> Result<(), PassError> {
        pass.found += (page.records.len() + page.invalid.len()) as u64;
        let fresh: Vec<_> = page
            .records
            .into_iter()
            .filter(|r| !self.queue.has_read(self.kind, &r.id, r.updated_at.timestamp_millis()))
            .collect();
        let mut versions: Vec<(String, i64)> =
            fresh.iter().map(|r| (r.id.clone(), r.updated_at.timestamp_millis())).collect();
        let mut retry: Vec<Change> =
            page.invalid.into_iter().filter_map(|r| r.id).map(|id| Change::untimed(self.kind, id)).collect();
        if !fresh.is_empty() {
            let mut conn = writer.pool.get().await.map_err(StoreError::from)?;
            let report = write_isolating(&mut conn, self.kind, fresh, &writer.context).await;
            if !report.failed.is_empty() {
                // Refused one by one because the database is gone: the pass fails instead.
                ping_conn(&mut conn).await?;
            }
            let refused: std::collections::HashSet<&str> = report.failed.iter().map(|f| f.id.as_str()).collect();
            versions.retain(|(id, _)| !refused.contains(id.as_str()));
            retry.extend(report.failed.iter().map(|f| Change::untimed(self.kind, f.id.clone())));
        }
        self.queue.settle(self.kind, &versions);
        pass.stored += versions.len() as u64;
        let pushed = self.queue.push_changes(&retry, &[])?;
        pass.queued += pushed.added as u64;
        Ok(())
    }

    fn publish_lag(&self) {
        let lag = self.figures.lane(self.kind, self.name).lag(Utc::now());
        if let Some(lag) = lag {
            let seconds = lag.num_milliseconds() as f64 / 1000.0;
            metrics::gauge!(metric::FAST_POLL_LAG, "object" => self.kind.as_str(), "lane" => self.name.as_str())
                .set(seconds);
        }
    }
}

//! The webhook queue: ids of changed objects waiting for a batch fetch, in memory.
//!
//! - **Keyed by (object kind, id)**: an id already waiting is not added twice, so a burst of
//!   events for one record costs one fetch. An id taken by a fetcher is no longer "waiting": an
//!   event arriving while its fetch is in flight queues it again, because that fetch may have read
//!   the record just before the change.
//! - **Bounded** by `QUEUE_CAPACITY` distinct ids, waiting or held by a read in flight. A batch that would not fit is refused
//!   as a whole ([`QueueError::Full`]), the handler answers 503 and HubSpot retries it later.
//!   Ids put back after a failed fetch ([`Queue::requeue`]) ignore the bound: they were accepted
//!   once and are never dropped.
//! - **A change already read costs nothing**: an event says when its change happened
//!   (`occurredAt`); an id whose last read returned an `updatedAt` at or after that time is not
//!   queued, and one waiting is dropped as soon as a read covers every change that queued it
//!   ([`Queue::settle`]). So a delivery HubSpot repeats, or one that arrives while its record's
//!   read is in flight, costs no second read. Changes without a time (restores, merges,
//!   deletions read back as archived) are always read.
//! - **Association ends are marked**: an id queued only by association changes
//!   ([`Queue::push_marked`]) is handed out marked ([`Queue::take_ready_marked`]), and its fetch
//!   never archives it when HubSpot does not find it; any other event naming it clears the mark.
//! - **Fair across kinds**: one lane per object kind; the fetchers' dispatcher serves the lane
//!   whose oldest id is oldest ([`Queue::view`]), so a flood of contact changes never delays a
//!   deal's fetch for long. Within a lane, oldest first.
//! - **Deletions and merges are remembered** ([`Queue::gone`]): a read that does not find such
//!   an id live is resolved from the webhook, and only an id a read may have raced is read again.
//! - **Metrics** (names in `crate::metric`): `hubspot_sync_queue_depth`,
//!   `hubspot_sync_queue_oldest_age_seconds`, `hubspot_sync_queue_offered_total`,
//!   `hubspot_sync_queue_deduplicated_total` and `hubspot_sync_queue_dedup_ratio`
//!   (deduplicated / offered).
//!
//! **What a crash loses, and what recovers it.** The queue lives only in this process. A crash
//! (or a kill after the shutdown grace) loses the ids waiting and in flight: their webhooks were
//! already answered 204, so HubSpot will not send them again. The reconciliation poller recovers
//! them: its next run searches everything modified since its watermark (the last successful
//! run's start, with an overlap), which covers every change acknowledged since, and the weekly
//! full pass covers deletions. Deletions, merges and privacy deletions never wait here: the
//! handler writes them before answering, so a crash cannot lose them. Webhooks refused with 503
//! (full queue, shutting down) are retried by HubSpot for up to a day.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::kind::ObjectKind;

use crate::metric;

pub mod freshness;
pub use freshness::Freshness;

/// Why ids were not queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueError {
    #[error("the webhook queue is full")]
    Full,
    #[error("the webhook queue is closed (shutting down)")]
    Closed,
}

/// What a push did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Ids newly waiting.
    pub added: usize,
    /// Ids that were already waiting (or repeated within the push), or whose change a read has
    /// already covered.
    pub deduplicated: usize,
}

/// A record to read because it changed: its kind, its id, and when HubSpot says the change
/// happened (Unix ms), when it says (a read returning an `updatedAt` at or after it covers it).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Change {
    pub kind: ObjectKind,
    pub id: String,
    pub changed_at: Option<i64>,
}

impl Change {
    /// A change that must be read whatever was read before (no time, or not a plain change).
    pub fn untimed(kind: ObjectKind, id: impl Into<String>) -> Self {
        Self { kind, id: id.into(), changed_at: None }
    }
}

/// Most ids per kind whose last read `updatedAt` is remembered (two generations of half this).
const REMEMBERED: usize = 200_000;

/// A bounded memory per id in two generations (the older one is dropped when the newer fills),
/// so recent entries are always remembered and memory stays bounded.
struct Remembered<V> {
    current: HashMap<String, V>,
    previous: HashMap<String, V>,
}

impl<V> Default for Remembered<V> {
    fn default() -> Self {
        Self { current: HashMap::new(), previous: HashMap::new() }
    }
}

impl<V> Remembered<V> {
    fn get(&self, id: &str) -> Option<&V> {
        self.current.get(id).or_else(|| self.previous.get(id))
    }

    fn put(&mut self, id: &str, value: V) {
        if self.current.len() >= REMEMBERED / 2 {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(id.to_owned(), value);
    }
}

/// The `updatedAt` (Unix ms) the latest reads returned, per id.
#[derive(Default)]
struct ReadVersions(Remembered<i64>);

impl ReadVersions {
    fn get(&self, id: &str) -> Option<i64> {
        self.0.get(id).copied()
    }

    fn covers(&self, id: &str, changed_at: i64) -> bool {
        self.get(id).is_some_and(|read| read >= changed_at)
    }

    fn record(&mut self, id: &str, updated_at: i64) {
        if self.get(id).is_some_and(|known| known >= updated_at) {
            return;
        }
        self.0.put(id, updated_at);
    }
}

/// What a webhook already said happened to a record that is no longer live: a read that does
/// not find it live is resolved from this, without asking HubSpot again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Gone {
    /// Deleted at this time (Unix ms).
    Deleted(i64),
    /// Merged into this record.
    Merged(String),
}

/// A point-in-time view for the status API.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueSnapshot {
    pub depth: usize,
    pub capacity: usize,
    pub oldest_age: Option<Duration>,
    pub offered: u64,
    pub deduplicated: u64,
    pub closed: bool,
}

#[derive(Default)]
struct Lane {
    order: VecDeque<(String, Instant)>,
    waiting: HashSet<String>,
    /// Waiting ids queued only by association changes (a subset of `waiting`): the fetcher
    /// reads them but never archives them when HubSpot does not find them.
    associated: HashSet<String>,
    /// Waiting ids every one of whose queuing events carried a time: the newest. A read
    /// returning an `updatedAt` at or after it makes the wait pointless.
    changed_at: HashMap<String, i64>,
    read: ReadVersions,
    /// Deletions and merges webhooks announced (see [`Queue::gone`]).
    gone: Remembered<Gone>,
    /// Ids taken and not yet reported read ([`Queue::finished`]), with how many reads hold each.
    in_flight: HashMap<String, usize>,
    notify: std::sync::Arc<Notify>,
}

#[derive(Default)]
struct State {
    lanes: HashMap<ObjectKind, Lane>,
    depth: usize,
    offered: u64,
    deduplicated: u64,
    closed: bool,
}

/// The deduplicating, bounded, per-kind queue. Share it as `Arc<Queue>`.
pub struct Queue {
    state: Mutex<State>,
    capacity: usize,
    freshness: Freshness,
    /// Woken by every push, requeue and close: the one dispatcher of the fetchers waits on it.
    changed: Notify,
}

/// One kind's lane as the dispatcher sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneView {
    pub kind: ObjectKind,
    /// Ids waiting.
    pub waiting: usize,
    /// When the oldest waiting id was queued.
    pub oldest: Option<Instant>,
}

/// Ids taken for one batch read.
#[derive(Clone, Debug, Default)]
pub struct Taken {
    pub ids: Vec<String>,
    /// Those queued only by association changes (never archived when not found).
    pub associated: HashSet<String>,
    /// When each id was queued, in the order of `ids`.
    pub queued: Vec<Instant>,
}

impl Queue {
    pub fn new(capacity: usize) -> Self {
        let mut state = State::default();
        for kind in ObjectKind::ALL {
            state.lanes.insert(kind, Lane::default());
        }
        Self {
            state: Mutex::new(state),
            capacity: capacity.max(1),
            freshness: Freshness::default(),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues every id of a webhook batch, or none of them when they would not fit.
    pub fn push_batch(&self, items: &[(ObjectKind, String)]) -> Result<Pushed, QueueError> {
        self.push_marked(items, &[])
    }

    /// [`Queue::push_changes`] of changes without a time.
    pub fn push_marked(
        &self,
        items: &[(ObjectKind, String)],
        associated: &[(ObjectKind, String)],
    ) -> Result<Pushed, QueueError> {
        let changes: Vec<Change> = items.iter().map(|(kind, id)| Change::untimed(*kind, id.clone())).collect();
        self.push_changes(&changes, associated)
    }

    /// Queues `changes` and `associated` (ids named by association changes, see
    /// [`Queue::take_ready_marked`]), all or none. An id queued by any other event is not an
    /// associated one, whichever came first. A timed change a read has already covered is not
    /// queued (counted as deduplicated).
    pub fn push_changes(&self, changes: &[Change], associated: &[(ObjectKind, String)]) -> Result<Pushed, QueueError> {
        let mut state = self.lock();
        if state.closed {
            return Err(QueueError::Closed);
        }
        let covered = |state: &State, c: &Change| {
            c.changed_at.is_some_and(|at| state.lanes.get(&c.kind).is_some_and(|lane| lane.read.covers(&c.id, at)))
        };
        let wanted: Vec<&Change> = changes.iter().filter(|c| !covered(&state, c)).collect();
        let all = || {
            wanted
                .iter()
                .map(|c| (c.kind, c.id.as_str(), c.changed_at, false))
                .chain(associated.iter().map(|(kind, id)| (*kind, id.as_str(), None, true)))
        };
        let mut fresh: HashSet<(ObjectKind, &str)> = HashSet::new();
        for (kind, id, _, _) in all() {
            let waiting = state.lanes.get(&kind).is_some_and(|lane| lane.waiting.contains(id));
            if !waiting {
                fresh.insert((kind, id));
            }
        }
        // Ids a read holds take room too (until it ends), counted once: one pushed again while
        // read waits again without more room.
        let held = Self::held(&state);
        let new_room = fresh
            .iter()
            .filter(|(kind, id)| !state.lanes.get(kind).is_some_and(|lane| lane.in_flight.contains_key(*id)))
            .count();
        if state.depth + held + new_room > self.capacity {
            return Err(QueueError::Full);
        }
        let now = Instant::now();
        let offered = changes.len() + associated.len();
        for kind in ObjectKind::ALL {
            let of_kind = changes.iter().filter(|c| c.kind == kind).count()
                + associated.iter().filter(|(k, _)| *k == kind).count();
            if of_kind > 0 {
                self.freshness.events(kind, of_kind as u64, now);
            }
        }
        let pushed = Pushed { added: fresh.len(), deduplicated: offered - fresh.len() };
        let firm: HashSet<(ObjectKind, &str)> = wanted.iter().map(|c| (c.kind, c.id.as_str())).collect();
        for (kind, id, changed_at, by_association) in all() {
            let lane = state.lanes.entry(kind).or_default();
            let is_fresh = fresh.remove(&(kind, id));
            if is_fresh {
                lane.waiting.insert(id.to_owned());
                lane.order.push_back((id.to_owned(), now));
                lane.notify.notify_one();
                if by_association && !firm.contains(&(kind, id)) {
                    lane.associated.insert(id.to_owned());
                }
            } else if !by_association {
                lane.associated.remove(id);
            }
            if by_association {
                continue;
            }
            // The newest time of every change waiting for this id; one without a time wins (an
            // id waiting without an entry is read whatever).
            match changed_at {
                Some(at) if is_fresh => {
                    lane.changed_at.insert(id.to_owned(), at);
                }
                Some(at) => {
                    if let Some(known) = lane.changed_at.get_mut(id) {
                        *known = (*known).max(at);
                    }
                }
                None => {
                    lane.changed_at.remove(id);
                }
            }
        }
        state.depth += pushed.added;
        self.freshness.depth(state.depth);
        state.offered += offered as u64;
        state.deduplicated += pushed.deduplicated as u64;
        Self::publish(&state, pushed);
        if pushed.added > 0 {
            self.changed.notify_one();
        }
        Ok(pushed)
    }

    /// Ids taken by reads in flight and not waiting again: they take room until their read ends.
    fn held(state: &State) -> usize {
        state.lanes.values().map(|lane| lane.in_flight.keys().filter(|id| !lane.waiting.contains(*id)).count()).sum()
    }

    /// Records what reads of `kind` returned (`(id, updatedAt)` in Unix ms): later changes they
    /// cover are not queued, and waiting ids whose every change they cover stop waiting.
    /// Returns how many stopped waiting.
    pub fn settle(&self, kind: ObjectKind, versions: &[(String, i64)]) -> usize {
        let mut state = self.lock();
        let lane = state.lanes.entry(kind).or_default();
        let mut dropped = HashSet::new();
        for (id, updated_at) in versions {
            lane.read.record(id, *updated_at);
            if lane.changed_at.get(id).is_some_and(|at| at <= updated_at) {
                lane.changed_at.remove(id);
                lane.waiting.remove(id);
                lane.associated.remove(id);
                dropped.insert(id.as_str());
            }
        }
        if !dropped.is_empty() {
            lane.order.retain(|(id, _)| !dropped.contains(id.as_str()));
            state.depth -= dropped.len();
            Self::publish(&state, Pushed::default());
        }
        dropped.len()
    }

    /// Whether a read of `kind` already returned `id` at `changed_at` (Unix ms) or later.
    pub fn has_read(&self, kind: ObjectKind, id: &str, changed_at: i64) -> bool {
        self.lock().lanes.get(&kind).is_some_and(|lane| lane.read.covers(id, changed_at))
    }

    /// Puts ids back after a failed fetch, ahead of newer ones, whatever the bound or shutdown
    /// (their read is over: [`Queue::finished`] is implied).
    pub fn requeue(&self, kind: ObjectKind, ids: Vec<String>) {
        self.requeue_marked(kind, ids, &HashSet::new());
    }

    /// [`Queue::requeue`] keeping which ids came from association changes only (as
    /// [`Queue::take_ready_marked`] gave them).
    pub fn requeue_marked(&self, kind: ObjectKind, ids: Vec<String>, associated: &HashSet<String>) {
        let mut state = self.lock();
        let lane = state.lanes.entry(kind).or_default();
        Self::land(lane, &ids);
        let now = Instant::now();
        let mut added = 0;
        for id in ids.into_iter().rev() {
            let by_association = associated.contains(&id);
            lane.changed_at.remove(&id);
            if lane.waiting.insert(id.clone()) {
                if by_association {
                    lane.associated.insert(id.clone());
                }
                lane.order.push_front((id, now));
                added += 1;
            } else if !by_association {
                lane.associated.remove(&id);
            }
        }
        lane.notify.notify_one();
        state.depth += added;
        Self::publish(&state, Pushed::default());
        self.changed.notify_one();
    }

    /// Waits for ids of `kind` and takes up to `max` of them: as soon as `max` are waiting, or
    /// `window` after the oldest one arrived, or at once while shutting down. `None` once the
    /// queue is closed and this kind's lane is empty: the fetcher is done.
    pub async fn take(&self, kind: ObjectKind, max: usize, window: Duration) -> Option<Vec<String>> {
        if !self.wait_ready(kind, max, window).await {
            return None;
        }
        Some(self.take_ready(kind, max))
    }

    /// Waits until a batch of `kind` is due (as [`Queue::take`] would take it) without taking
    /// it; `false` once the queue is closed and this kind's lane is empty. (The fetchers'
    /// dispatcher looks at every lane at once instead: [`Queue::view`], [`Queue::changed`].)
    pub async fn wait_ready(&self, kind: ObjectKind, max: usize, window: Duration) -> bool {
        let notify = self.lock().lanes.entry(kind).or_default().notify.clone();
        loop {
            // Register for a wake-up before looking, so a push in between is not missed.
            let notified = notify.notified();
            let deadline = {
                let mut state = self.lock();
                let closed = state.closed;
                let lane = state.lanes.entry(kind).or_default();
                let (front, len) = (lane.order.front().map(|(_, since)| *since), lane.order.len());
                match front {
                    None if closed => return false,
                    None => None,
                    Some(since) if closed || len >= max || since.elapsed() >= window => return true,
                    Some(since) => Some(since + window),
                }
            };
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = notified => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => notified.await,
            }
        }
    }

    /// Takes up to `max` ids of `kind` now (none when its lane is empty).
    pub fn take_ready(&self, kind: ObjectKind, max: usize) -> Vec<String> {
        self.take_ready_marked(kind, max).0
    }

    /// [`Queue::take_ready`], also telling which of the ids were queued only by association
    /// changes: those must never be archived when HubSpot does not find them.
    pub fn take_ready_marked(&self, kind: ObjectKind, max: usize) -> (Vec<String>, HashSet<String>) {
        let taken = self.take_ready_timed(kind, max);
        (taken.ids, taken.associated)
    }

    /// [`Queue::take_ready_marked`], also telling when each id was queued.
    pub fn take_ready_timed(&self, kind: ObjectKind, max: usize) -> Taken {
        let mut state = self.lock();
        self.take_now(&mut state, kind, max)
    }

    /// The real-time path's freshness figures (fetchers record what they stored).
    pub fn freshness(&self) -> &Freshness {
        &self.freshness
    }

    fn take_now(&self, state: &mut State, kind: ObjectKind, max: usize) -> Taken {
        let lane = state.lanes.entry(kind).or_default();
        let max = max.max(1);
        let (ids, queued): (Vec<String>, Vec<Instant>) = if lane.in_flight.is_empty() {
            let n = lane.order.len().min(max);
            lane.order.drain(..n).unzip()
        } else {
            // An id whose read is in flight stays waiting until that read ends: it may cover it.
            let mut taken = Vec::new();
            let mut kept = VecDeque::with_capacity(lane.order.len());
            for (id, since) in lane.order.drain(..) {
                if taken.len() < max && !lane.in_flight.contains_key(&id) {
                    taken.push((id, since));
                } else {
                    kept.push_back((id, since));
                }
            }
            lane.order = kept;
            taken.into_iter().unzip()
        };
        let mut associated = HashSet::new();
        for id in &ids {
            *lane.in_flight.entry(id.clone()).or_default() += 1;
            lane.waiting.remove(id);
            lane.changed_at.remove(id);
            if lane.associated.remove(id) {
                associated.insert(id.clone());
            }
        }
        if !lane.order.is_empty() {
            lane.notify.notify_one();
        }
        state.depth -= ids.len();
        Self::publish(state, Pushed::default());
        Taken { ids, associated, queued }
    }

    /// Every lane's waiting ids and oldest one, and whether the queue is closed.
    pub fn view(&self) -> (Vec<LaneView>, bool) {
        let state = self.lock();
        let mut lanes: Vec<LaneView> = state
            .lanes
            .iter()
            .map(|(kind, lane)| {
                // Ids whose read is in flight wait for it to end before they can be taken.
                let held = lane.in_flight.keys().filter(|id| lane.waiting.contains(*id)).count();
                let mut free = lane.order.iter().filter(|(id, _)| !lane.in_flight.contains_key(id));
                LaneView { kind: *kind, waiting: lane.order.len() - held, oldest: free.next().map(|(_, since)| *since) }
            })
            .collect();
        lanes.sort_by_key(|l| l.kind.as_str());
        (lanes, state.closed)
    }

    /// Resolves after the next push, requeue or close (one registered before it was called
    /// counts: a change between looking at [`Queue::view`] and waiting is not missed).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// Reports ids taken for a read as read: they are no longer in flight, and those queued
    /// again meanwhile (and not covered by that read, see [`Queue::settle`]) can be taken.
    pub fn finished(&self, kind: ObjectKind, ids: &[String]) {
        let mut state = self.lock();
        let lane = state.lanes.entry(kind).or_default();
        if Self::land(lane, ids) {
            self.changed.notify_one();
        }
    }

    /// Takes `ids` out of flight; true when one of them is waiting again.
    fn land(lane: &mut Lane, ids: &[String]) -> bool {
        let mut waiting = false;
        for id in ids {
            if let Some(n) = lane.in_flight.get_mut(id) {
                *n -= 1;
                if *n == 0 {
                    lane.in_flight.remove(id);
                    waiting |= lane.waiting.contains(id);
                }
            }
        }
        waiting
    }

    /// Remembers deletions and merges a webhook announces (call it before they are written).
    /// Returns the ids among them that may have been read live before the change and written
    /// after it: a read of them is in flight, or an earlier read returned them (a restore
    /// delivered before its deletion). Only those need reading again; every other deletion or
    /// merge is applied from its event alone.
    pub fn gone(&self, items: &[(ObjectKind, String, Gone)]) -> Vec<(ObjectKind, String)> {
        let mut state = self.lock();
        let mut racing = Vec::new();
        for (kind, id, gone) in items {
            let lane = state.lanes.entry(*kind).or_default();
            if lane.in_flight.contains_key(id) || lane.read.get(id).is_some() {
                racing.push((*kind, id.clone()));
            }
            lane.gone.put(id, gone.clone());
        }
        racing
    }

    /// What webhooks said of those of `ids` that are known gone (see [`Queue::gone`]).
    pub fn known_gone(&self, kind: ObjectKind, ids: &[String]) -> Vec<(String, Gone)> {
        let state = self.lock();
        let Some(lane) = state.lanes.get(&kind) else { return Vec::new() };
        ids.iter().filter_map(|id| lane.gone.get(id).map(|g| (id.clone(), g.clone()))).collect()
    }

    /// Stops intake: later pushes fail with [`QueueError::Closed`]; fetchers drain what waits.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        for lane in state.lanes.values() {
            lane.notify.notify_waiters();
            lane.notify.notify_one();
        }
        self.changed.notify_one();
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Ids waiting, all kinds together.
    pub fn depth(&self) -> usize {
        self.lock().depth
    }

    /// Ids of one kind waiting.
    pub fn depth_of(&self, kind: ObjectKind) -> usize {
        self.lock().lanes.get(&kind).map_or(0, |lane| lane.order.len())
    }

    pub fn snapshot(&self) -> QueueSnapshot {
        let state = self.lock();
        QueueSnapshot {
            depth: state.depth,
            capacity: self.capacity,
            oldest_age: Self::oldest(&state).map(|since| since.elapsed()),
            offered: state.offered,
            deduplicated: state.deduplicated,
            closed: state.closed,
        }
    }

    /// Refreshes the age gauge (it changes with time alone; the fetchers call this every second)
    /// and samples the depth for the live charts.
    pub fn publish_age(&self) {
        let state = self.lock();
        self.freshness.depth(state.depth);
        let age = Self::oldest(&state).map_or(0.0, |since| since.elapsed().as_secs_f64());
        metrics::gauge!(metric::QUEUE_OLDEST_AGE).set(age);
    }

    fn oldest(state: &State) -> Option<Instant> {
        state.lanes.values().filter_map(|lane| lane.order.front().map(|(_, since)| *since)).min()
    }

    fn publish(state: &State, pushed: Pushed) {
        metrics::gauge!(metric::QUEUE_DEPTH).set(state.depth as f64);
        if pushed.added + pushed.deduplicated > 0 {
            metrics::counter!(metric::QUEUE_OFFERED).increment((pushed.added + pushed.deduplicated) as u64);
            metrics::counter!(metric::QUEUE_DEDUPLICATED).increment(pushed.deduplicated as u64);
            let ratio = if state.offered == 0 { 0.0 } else { state.deduplicated as f64 / state.offered as f64 };
            metrics::gauge!(metric::QUEUE_DEDUP_RATIO).set(ratio);
        }
    }
}

#[cfg(test)]
mod tests;

//! The process-wide request budget: at most `HUBSPOT_REQUESTS_PER_10S` requests in ANY rolling
//! 10-second window, at most 5 searches in any second, real-time callers served before
//! background ones, background ones before the polling lane (which may spend at most its share of
//! the budget), and a pause that every caller honours after a 429.
//!
//! Burst arithmetic: a GCRA or token bucket allowing a burst of `b` and replenishing one cell
//! every `T = W / N` admits, in a window of length `W`, up to `b + N - 1` requests, so "N per W"
//! with burst N allows almost 2N in some window; burst 1 keeps the bound but spaces every
//! request `T` apart, so an idle process needs ~0.8 s for 8 requests. The budget therefore has
//! two parts, checked together under one lock ([`WindowLog`]):
//! - an exact sliding-window log: the send times of the last N requests; a new one is admitted
//!   once the oldest has left the window. That is HubSpot's own rule, "at most N in any rolling
//!   window", whatever the pattern of requests;
//! - a GCRA pacer with a small burst (N/12, at least 1) at the full rate: after idle, a handful of
//!   requests go at once (an incremental run with nothing to do), while a saturated budget is
//!   spent evenly, one request every `T`, instead of in bursts that then wait out a whole window.
//!
//! The pacer alone would let `b - 1` extra requests into a window, the log alone would let a
//! burst pattern repeat every window; together they give the bound, full throughput (a run
//! limited by the budget takes `requests / N * W`) and short waits. The window is lengthened by a
//! margin that absorbs network jitter between sending a request and HubSpot counting it. The
//! one-second search limit has no room for such a margin (a request admitted early and sent late
//! under load, beside ones sent at once, reached the simulator as a sixth search in a second), so
//! a search counts until its answer arrives ([`WindowLog::held`], [`Admission`]).
//! governor (GCRA) was the first choice; it cannot bound a rolling window exactly with a burst
//! above 1, and pairing it with a separate log would take a GCRA cell even when the log refuses.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Who is asking: webhook fetchers (`Realtime`) go before the poller's runs (`Background`), and
/// both before the fast polling lanes and their reads (`Polling`), which also never spend more
/// than their share of the budget ([`BudgetOptions::polling_share`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Realtime,
    Background,
    Polling,
    /// Bulk reads that may wait: they go only while no real-time or background caller (nor a
    /// due search) waits and no full pass is in its records part ([`Budget::begin_records`]),
    /// with no share of their own (a full pass's association reads, so the records of every
    /// object's pass go first).
    Bulk,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realtime => "realtime",
            Self::Background => "background",
            Self::Polling => "polling",
            Self::Bulk => "bulk",
        }
    }
}

/// At most `limit` admissions in any window of length `window` (the log), paced at one per
/// `window / limit` with a burst of `burst` (the GCRA).
///
/// A held log ([`WindowLog::held`]) counts each admission until its request is answered
/// ([`WindowLog::release`]) instead of at the moment it was admitted: the server counts a request
/// somewhere between the two, and a request admitted early but sent late (a new connection, a
/// busy runtime) could otherwise reach it inside the same second as ones admitted a whole window
/// later.
#[derive(Debug)]
pub struct WindowLog {
    limit: usize,
    window: Duration,
    held: bool,
    /// GCRA emission interval and tolerance (`(burst - 1) * interval`).
    interval: Duration,
    tolerance: Duration,
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    /// The last `limit` admissions, oldest admitted first.
    admitted: VecDeque<Slot>,
    /// GCRA theoretical arrival time of the next request.
    tat: Option<Instant>,
    next_id: u64,
}

/// One admission: when it counts, and whether it still waits for its answer (a held log).
#[derive(Clone, Copy, Debug)]
struct Slot {
    id: u64,
    at: Instant,
    open: bool,
}

/// An admission of a held log, named for [`WindowLog::release`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SlotId(u64);

/// How often a held log looks again when its oldest admission is still unanswered a whole window
/// after it was admitted (a slow answer: rare, so a short poll beats a wake-up channel).
const OPEN_POLL: Duration = Duration::from_millis(5);

impl WindowLog {
    pub fn new(limit: u32, window: Duration, burst: u32) -> Self {
        let limit = limit.max(1);
        let burst = burst.clamp(1, limit);
        let interval = window.div_f64(f64::from(limit));
        Self {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
            window,
            held: false,
            interval,
            tolerance: interval * (burst - 1),
            state: Mutex::new(LogState::default()),
        }
    }

    /// A log whose admissions count until released ([`WindowLog::release`]), at the moment of
    /// their release.
    pub fn held(limit: u32, window: Duration, burst: u32) -> Self {
        Self { held: true, ..Self::new(limit, window, burst) }
    }

    /// Admits one request at `now`, or says when the next admission is possible.
    pub fn try_admit(&self, now: Instant) -> Result<(), Instant> {
        self.admit(now).map(drop)
    }

    /// [`WindowLog::try_admit`], naming the admission (for [`WindowLog::release`]).
    pub fn admit(&self, now: Instant) -> Result<SlotId, Instant> {
        Self::try_admit_all(&[self], now).map(|ids| ids[0])
    }

    /// Admits one request at `now` into every log of `logs` together, or into none, saying when
    /// all could admit; the admissions in the order of `logs`. Locks them in the order given:
    /// callers always pass them in one order.
    pub fn try_admit_all(logs: &[&WindowLog], now: Instant) -> Result<Vec<SlotId>, Instant> {
        let mut states: Vec<_> =
            logs.iter().map(|log| log.state.lock().unwrap_or_else(PoisonError::into_inner)).collect();
        let ready = logs.iter().zip(&states).map(|(log, state)| log.next_slot(state, now)).max().unwrap_or(now);
        if ready > now {
            return Err(ready);
        }
        Ok(logs.iter().zip(states.iter_mut()).map(|(log, state)| log.record(state, now)).collect())
    }

    /// The request of admission `id` was answered (or given up) at `at`: a held log counts it
    /// at `at` from now on. Nothing for a log that is not held.
    pub fn release(&self, id: SlotId, at: Instant) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = state.admitted.iter_mut().find(|slot| slot.id == id.0 && slot.open) {
            slot.at = slot.at.max(at);
            slot.open = false;
        }
    }

    /// When the log would admit a request (`now` or later), without admitting it.
    pub fn ready_at(&self, now: Instant) -> Instant {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.next_slot(&state, now)
    }

    fn record(&self, state: &mut LogState, now: Instant) -> SlotId {
        if state.admitted.len() == self.limit {
            state.admitted.pop_front();
        }
        let id = state.next_id;
        state.next_id += 1;
        state.admitted.push_back(Slot { id, at: now, open: self.held });
        state.tat = Some(state.tat.map_or(now, |tat| tat.max(now)) + self.interval);
        SlotId(id)
    }

    /// The log: with `limit` admissions logged, the oldest must have counted a full window ago
    /// (then any window holding `now` holds at most `limit - 1` others; the ones before it were
    /// each a window old when a later one was admitted, whatever the order of their answers); an
    /// oldest still unanswered is waited for. The pacer: not before the theoretical arrival time
    /// minus the burst tolerance.
    fn next_slot(&self, state: &LogState, now: Instant) -> Instant {
        let log = match state.admitted.front() {
            Some(oldest) if state.admitted.len() == self.limit && oldest.open => {
                (oldest.at + self.window).max(now + OPEN_POLL)
            }
            Some(oldest) if state.admitted.len() == self.limit => oldest.at + self.window,
            _ => now,
        };
        let pacer = state.tat.map_or(now, |tat| tat.checked_sub(self.tolerance).unwrap_or(now));
        now.max(log).max(pacer)
    }
}

/// A moment before which callers must not send (set by a 429).
#[derive(Debug, Default)]
pub struct PauseGate {
    until: Mutex<Option<Instant>>,
}

impl PauseGate {
    /// Extends the pause to at least `now + wait`.
    pub fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut slot = self.until.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none_or(|t| t < until) {
            *slot = Some(until);
        }
    }

    fn until(&self) -> Option<Instant> {
        *self.until.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn in_force(&self) -> bool {
        self.until().is_some_and(|t| t > Instant::now())
    }

    /// Resolves once no pause is in force.
    pub async fn wait(&self) {
        while let Some(until) = self.until().filter(|t| *t > Instant::now()) {
            tokio::time::sleep_until(until).await;
        }
    }
}

/// Settings of a [`Budget`].
#[derive(Clone, Debug)]
pub struct BudgetOptions {
    pub requests: u32,
    pub window: Duration,
    pub margin: Duration,
    /// Searches per second (HubSpot: 5); 0 turns the search limit off.
    pub searches_per_second: u32,
    /// What lengthens the search limit's one-second window (network jitter between admitting a
    /// search and HubSpot counting it).
    pub search_margin: Duration,
    /// Whether a search also takes a slot of the 10-second budget (`HUBSPOT_SEARCHES_IN_BUDGET`;
    /// HubSpot leaves this unsettled, counting them is the conservative model).
    pub searches_in_budget: bool,
    /// The most the `Polling` lane may spend, as a share of `requests` (0.0-1.0; at least one
    /// request per window).
    pub polling_share: f64,
}

/// Default of [`BudgetOptions::polling_share`]: a fifth of the budget.
pub const DEFAULT_POLLING_SHARE: f64 = 0.2;

/// The shared budget. One per process (inside the `HubSpot` client, which is cloned, not rebuilt).
pub struct Budget {
    general: WindowLog,
    search: Option<WindowLog>,
    /// Paused by a 429 on the 10-second or daily budget: every caller waits.
    pub general_pause: PauseGate,
    /// Paused by a 429 on the secondly search limit: searches wait.
    pub search_pause: PauseGate,
    /// The `Polling` lane's own log: at most its share of the budget in any window.
    polling: WindowLog,
    /// When the `Polling` lane's recent requests were admitted (the last [`SHARE_SPAN`]).
    polling_sent: Mutex<VecDeque<Instant>>,
    requests: u32,
    searches_in_budget: bool,
    realtime_waiting: AtomicUsize,
    realtime_idle: Notify,
    /// Background callers waiting (the `Polling` lane gives way to them too).
    background_waiting: AtomicUsize,
    background_idle: Notify,
    /// Searches whose search slot is due and that wait for a budget slot: other background
    /// requests give way to them, so a full pass's searches use the search limit to the full.
    searches_due: AtomicUsize,
    searches_idle: Notify,
    /// Full passes in their records part: the `Bulk` lane waits for all of them to end, not
    /// only for the moments their walkers wait (a walker with a page in flight does not wait,
    /// and a bulk read would take the slot it is about to ask for).
    records_parts: AtomicUsize,
    records_idle: Notify,
}

/// The span over which [`Budget::polling_share_used`] is measured.
pub const SHARE_SPAN: Duration = Duration::from_secs(60);

impl Budget {
    pub fn new(options: &BudgetOptions) -> Self {
        Self {
            general: WindowLog::new(options.requests, options.window + options.margin, options.requests / 12),
            // A search counts until its answer arrives (a held log): HubSpot counted it somewhere
            // between its admission and its answer, so a sixth search one second after the
            // first one's answer cannot share a second with it, however late the first was
            // sent. The search margin covers only the clocks' difference. Bursts of at most 3
            // (one search per object of an incremental run of contacts, deals and calls).
            search: (options.searches_per_second > 0).then(|| {
                let per_second = options.searches_per_second;
                WindowLog::held(per_second, Duration::from_secs(1) + options.search_margin, 3.min(per_second))
            }),
            general_pause: PauseGate::default(),
            search_pause: PauseGate::default(),
            polling: Self::polling_log(options),
            polling_sent: Mutex::new(VecDeque::new()),
            requests: options.requests.max(1),
            searches_in_budget: options.searches_in_budget,
            realtime_waiting: AtomicUsize::new(0),
            realtime_idle: Notify::new(),
            background_waiting: AtomicUsize::new(0),
            background_idle: Notify::new(),
            searches_due: AtomicUsize::new(0),
            searches_idle: Notify::new(),
            records_parts: AtomicUsize::new(0),
            records_idle: Notify::new(),
        }
    }

    /// The `Polling` lane's share as a log over the same window: a burst of half of it, so one
    /// tick's searches and reads of every object go at once.
    fn polling_log(options: &BudgetOptions) -> WindowLog {
        let share = if options.polling_share.is_finite() { options.polling_share.clamp(0.0, 1.0) } else { 0.0 };
        let limit = ((f64::from(options.requests) * share).floor() as u32).max(1);
        WindowLog::new(limit, options.window + options.margin, limit.div_ceil(2))
    }

    /// Whether searches take a slot of the budget too (`HUBSPOT_SEARCHES_IN_BUDGET`).
    pub fn searches_in_budget(&self) -> bool {
        self.searches_in_budget
    }

    /// Requests allowed per window (`HUBSPOT_REQUESTS_PER_10S`).
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// The share of the budget the `Polling` lane spent over the last [`SHARE_SPAN`] (0.0-1.0).
    pub fn polling_share_used(&self) -> f64 {
        let now = Instant::now();
        let mut sent = self.polling_sent.lock().unwrap_or_else(PoisonError::into_inner);
        Self::prune(&mut sent, now);
        let windows = SHARE_SPAN.as_secs_f64() / self.general.window.as_secs_f64();
        sent.len() as f64 / (f64::from(self.requests) * windows)
    }

    fn prune(sent: &mut VecDeque<Instant>, now: Instant) {
        while sent.front().is_some_and(|at| now.saturating_duration_since(*at) >= SHARE_SPAN) {
            sent.pop_front();
        }
    }

    /// A full pass's records part begins: `Bulk` requests wait until [`Budget::end_records`]
    /// has been called as many times.
    pub fn begin_records(&self) {
        self.records_parts.fetch_add(1, Ordering::SeqCst);
    }

    /// A records part begun with [`Budget::begin_records`] ended.
    pub fn end_records(&self) {
        if self.records_parts.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.records_idle.notify_waiters();
        }
    }

    /// Waits until one request may be sent now. The caller keeps the [`Admission`] until the
    /// request's answer (its status line) arrived, or it gave up: a search's slot counts until
    /// then.
    pub async fn acquire(&self, lane: Lane, is_search: bool) -> Admission<'_> {
        loop {
            if is_search {
                self.search_pause.wait().await;
            }
            self.general_pause.wait().await;
            let search = match lane {
                // The polling lane may wait long (it gives way): its search slot is taken with
                // the others, at the moment it is sent.
                Lane::Polling => self.take_polling(is_search).await,
                _ if is_search => self.take_search(lane).await,
                Lane::Realtime => self.take_realtime().await,
                Lane::Background => self.take_background().await,
                Lane::Bulk => self.take_bulk().await,
            };
            let admission = Admission { search: self.search.as_ref().zip(search) };
            // A 429 seen by another caller while this one waited: do not send into it.
            if !self.general_pause.in_force() && (!is_search || !self.search_pause.in_force()) {
                return admission;
            }
        }
    }

    /// A search of the real-time or background lane: its search slot and (when searches count
    /// against the budget) a budget slot, taken together; while it waits for the budget slot
    /// only, other background requests give way to it (real-time ones still go first).
    async fn take_search(&self, lane: Lane) -> Option<SlotId> {
        let search = match (&self.search, self.searches_in_budget) {
            (None, false) => return None,
            (None, true) if lane == Lane::Realtime => return self.take_realtime().await,
            (None, true) => return self.take_background().await,
            (Some(search), false) => return Some(Self::take(search).await),
            (Some(search), true) => search,
        };
        let logs = [search, &self.general];
        loop {
            let now = Instant::now();
            let due = search.ready_at(now);
            if due > now {
                tokio::time::sleep_until(due).await;
                continue;
            }
            self.searches_due.fetch_add(1, Ordering::SeqCst);
            let admitted = loop {
                if lane != Lane::Realtime {
                    Self::gone(&self.realtime_waiting, &self.realtime_idle).await;
                }
                let now = Instant::now();
                match WindowLog::try_admit_all(&logs, now) {
                    Ok(ids) => break Some(ids[0]),
                    // Another search took the search slot meanwhile: wait for the next one.
                    Err(_) if search.ready_at(now) > now => break None,
                    Err(not_until) => tokio::time::sleep_until(not_until).await,
                }
            };
            if self.searches_due.fetch_sub(1, Ordering::SeqCst) == 1 {
                self.searches_idle.notify_waiters();
            }
            if admitted.is_some() {
                return admitted;
            }
        }
    }

    /// Takes one general slot now (waiting for it as [`Budget::acquire`] does) for a request the
    /// caller sends right after, marked prepaid: a batch fetcher reserves before it takes its ids,
    /// so ids arriving while it waits join the batch. Not for searches.
    pub async fn reserve(&self, lane: Lane) {
        drop(self.acquire(lane, false).await);
    }

    async fn take(log: &WindowLog) -> SlotId {
        loop {
            match log.admit(Instant::now()) {
                Ok(id) => return id,
                Err(not_until) => tokio::time::sleep_until(not_until).await,
            }
        }
    }

    /// Takes a general slot (no search slot: `None`).
    async fn take_realtime(&self) -> Option<SlotId> {
        self.realtime_waiting.fetch_add(1, Ordering::SeqCst);
        Self::take(&self.general).await;
        if self.realtime_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.realtime_idle.notify_waiters();
        }
        None
    }

    /// Takes a general slot (no search slot: `None`).
    async fn take_background(&self) -> Option<SlotId> {
        self.background_waiting.fetch_add(1, Ordering::SeqCst);
        loop {
            Self::gone(&self.realtime_waiting, &self.realtime_idle).await;
            Self::gone(&self.searches_due, &self.searches_idle).await;
            match self.general.try_admit(Instant::now()) {
                Ok(()) => break,
                Err(not_until) => tokio::time::sleep_until(not_until).await,
            }
        }
        if self.background_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.background_idle.notify_waiters();
        }
        None
    }

    /// The `Bulk` lane: only while no records part runs and no real-time or background caller,
    /// nor a due search, waits.
    async fn take_bulk(&self) -> Option<SlotId> {
        loop {
            Self::gone(&self.records_parts, &self.records_idle).await;
            Self::gone(&self.realtime_waiting, &self.realtime_idle).await;
            Self::gone(&self.background_waiting, &self.background_idle).await;
            Self::gone(&self.searches_due, &self.searches_idle).await;
            let waiting = |n: &AtomicUsize| n.load(Ordering::SeqCst) > 0;
            if waiting(&self.realtime_waiting) || waiting(&self.background_waiting) || waiting(&self.records_parts) {
                continue;
            }
            match self.general.try_admit(Instant::now()) {
                Ok(()) => return None,
                Err(not_until) => tokio::time::sleep_until(not_until).await,
            }
        }
    }

    /// The `Polling` lane: only while no real-time or background caller waits, and within its
    /// share (its own log and the general one admit together, or neither does).
    async fn take_polling(&self, is_search: bool) -> Option<SlotId> {
        let mut logs = Vec::with_capacity(3);
        let searched = is_search && self.search.is_some();
        if let (true, Some(search)) = (searched, &self.search) {
            logs.push(search);
        }
        logs.push(&self.polling);
        if !is_search || self.searches_in_budget {
            logs.push(&self.general);
        }
        loop {
            Self::gone(&self.realtime_waiting, &self.realtime_idle).await;
            Self::gone(&self.background_waiting, &self.background_idle).await;
            Self::gone(&self.searches_due, &self.searches_idle).await;
            if self.realtime_waiting.load(Ordering::SeqCst) > 0 {
                continue;
            }
            let now = Instant::now();
            match WindowLog::try_admit_all(&logs, now) {
                Ok(ids) => {
                    let mut sent = self.polling_sent.lock().unwrap_or_else(PoisonError::into_inner);
                    Self::prune(&mut sent, now);
                    sent.push_back(now);
                    return searched.then(|| ids[0]);
                }
                // Woken early when others stop waiting is harmless: the loop looks again.
                Err(not_until) => tokio::time::sleep_until(not_until).await,
            }
        }
    }

    /// Resolves when no caller counted by `waiting` is waiting for the budget.
    async fn gone(waiting: &AtomicUsize, idle: &Notify) {
        loop {
            let notified = idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if waiting.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One admitted request. A search's slot counts until this is dropped: keep it until the answer
/// arrived (or the request was given up).
#[must_use = "a search slot counts until the admission is dropped: keep it until the answer arrives"]
pub struct Admission<'a> {
    search: Option<(&'a WindowLog, SlotId)>,
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        if let Some((log, id)) = self.search.take() {
            log.release(id, Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most admissions inside any half-open window of `window` (the simulator's definition).
    fn max_in_window(times: &[Duration], window: Duration) -> usize {
        (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t < times[i] + window).count()).max().unwrap_or(0)
    }

    /// A greedy caller against the log on a controlled clock: it retries at the earliest moment
    /// the log names, and additionally probes at odd moments (an early probe must be refused).
    fn greedy_admissions(
        requests: u32,
        burst: u32,
        window: Duration,
        margin: Duration,
        total: Duration,
    ) -> Vec<Duration> {
        let log = WindowLog::new(requests, window + margin, burst);
        let start = Instant::now();
        let mut now = start;
        let mut admitted = Vec::new();
        while now - start < total {
            match log.try_admit(now) {
                Ok(()) => admitted.push(now - start),
                Err(not_until) => {
                    let wait = not_until - now;
                    now += if admitted.len() % 3 == 0 { wait / 2 + Duration::from_nanos(1) } else { wait };
                }
            }
        }
        admitted
    }

    #[test]
    fn no_rolling_window_exceeds_the_budget() {
        let cases = [
            (100, 8, Duration::ZERO),
            (100, 100, Duration::from_millis(200)),
            (100, 1, Duration::ZERO),
            (7, 7, Duration::ZERO),
        ];
        for (requests, burst, margin) in cases {
            let window = Duration::from_secs(10);
            let admitted = greedy_admissions(requests, burst, window, margin, Duration::from_secs(120));
            assert!(max_in_window(&admitted, window) <= requests as usize, "{requests} per 10 s broken");
            // And the budget is used: 12 windows' worth, minus the margin's share.
            let floor = (120.0 * f64::from(requests) / (10.0 + margin.as_secs_f64())).floor() as usize;
            assert!(admitted.len() >= floor, "only {} of {floor} admitted", admitted.len());
        }
    }

    #[test]
    fn an_idle_budget_admits_a_burst_then_holds_the_window() {
        let log = WindowLog::new(8, Duration::from_secs(10), 8);
        let t0 = Instant::now();
        for _ in 0..8 {
            assert_eq!(log.try_admit(t0), Ok(()), "an idle process sends its first requests at once");
        }
        assert_eq!(log.try_admit(t0 + Duration::from_secs(5)), Err(t0 + Duration::from_secs(10)));
        assert_eq!(log.try_admit(t0 + Duration::from_secs(10)), Ok(()));
    }

    #[test]
    fn a_saturated_budget_is_spent_evenly_after_a_small_burst() {
        // 100 per 10 s with a burst of 8: 8 at once, then one every 100 ms, never a long stall.
        let admitted = greedy_admissions(100, 8, Duration::from_secs(10), Duration::ZERO, Duration::from_secs(60));
        assert!(admitted[..8].iter().all(|t| *t == Duration::ZERO), "{:?}", &admitted[..8]);
        let longest_gap = admitted.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        assert!(longest_gap <= Duration::from_millis(800), "a stall of {longest_gap:?}");
        let steady = admitted.iter().filter(|t| **t >= Duration::from_secs(10)).count();
        assert!(steady >= 495, "the full rate is kept: {steady} in the last 50 s");
    }

    #[test]
    fn search_limit_is_five_per_second() {
        let admitted = greedy_admissions(5, 5, Duration::from_secs(1), Duration::ZERO, Duration::from_secs(30));
        assert!(max_in_window(&admitted, Duration::from_secs(1)) <= 5);
        assert!(admitted.len() >= 150, "the search budget is used");
    }

    // A paused clock: time moves only when every task waits, so no bound depends on the machine.
    #[tokio::test(start_paused = true)]
    async fn a_pause_holds_every_caller() {
        let gate = PauseGate::default();
        gate.pause(Duration::from_millis(80));
        let started = Instant::now();
        tokio::join!(gate.wait(), gate.wait());
        assert!(started.elapsed() >= Duration::from_millis(80));
        gate.pause(Duration::ZERO);
        let again = Instant::now();
        gate.wait().await;
        assert!(again.elapsed() < Duration::from_millis(80), "a shorter pause does not shorten nor extend");
    }

    #[tokio::test(start_paused = true)]
    async fn realtime_goes_before_background() {
        // One request per 50 ms; the background caller queues first, then a real-time caller.
        let budget = std::sync::Arc::new(Budget::new(&BudgetOptions {
            requests: 1,
            window: Duration::from_millis(50),
            margin: Duration::ZERO,
            searches_per_second: 0,
            search_margin: Duration::ZERO,
            searches_in_budget: true,
            polling_share: DEFAULT_POLLING_SHARE,
        }));
        drop(budget.acquire(Lane::Background, false).await); // uses the first cell
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (b, o) = (budget.clone(), order.clone());
        let background = tokio::spawn(async move {
            drop(b.acquire(Lane::Background, false).await);
            o.lock().unwrap().push(Lane::Background);
        });
        tokio::task::yield_now().await;
        let (b, o) = (budget.clone(), order.clone());
        let realtime = tokio::spawn(async move {
            drop(b.acquire(Lane::Realtime, false).await);
            o.lock().unwrap().push(Lane::Realtime);
        });
        realtime.await.unwrap();
        background.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec![Lane::Realtime, Lane::Background]);
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_reads_give_way_to_background_ones() {
        // One request per 50 ms; a bulk read queues first, then a background one: the background
        // one goes first, the bulk one next.
        let budget = budget(1, Duration::from_millis(50), DEFAULT_POLLING_SHARE);
        drop(budget.acquire(Lane::Background, false).await); // uses the first cell
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for lane in [Lane::Bulk, Lane::Background] {
            let (b, o) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                drop(b.acquire(lane, false).await);
                o.lock().unwrap().push(lane);
            }));
            tokio::task::yield_now().await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![Lane::Background, Lane::Bulk]);
    }

    #[tokio::test(start_paused = true)]
    async fn bulk_reads_wait_for_every_records_part_even_between_its_requests() {
        // Plenty of budget, nobody waiting for it: a bulk read still waits while a records part
        // runs (its walkers are between requests), and goes as soon as the last one ends.
        let budget = budget(100, Duration::from_millis(50), DEFAULT_POLLING_SHARE);
        budget.begin_records();
        budget.begin_records();
        let b = budget.clone();
        let bulk = tokio::spawn(async move { drop(b.acquire(Lane::Bulk, false).await) });
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!bulk.is_finished(), "a bulk read went during a records part");
        budget.end_records();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!bulk.is_finished(), "a bulk read went while one records part still ran");
        budget.end_records();
        tokio::time::timeout(Duration::from_secs(5), bulk).await.expect("the bulk read goes").unwrap();
    }

    fn budget(requests: u32, window: Duration, polling_share: f64) -> std::sync::Arc<Budget> {
        std::sync::Arc::new(Budget::new(&BudgetOptions {
            requests,
            window,
            margin: Duration::ZERO,
            searches_per_second: 0,
            search_margin: Duration::ZERO,
            searches_in_budget: true,
            polling_share,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn the_polling_lane_keeps_to_its_share_of_the_budget() {
        // 100 per 10 s, a fifth for polling: a greedy poller gets 20 in any 10 s, no more.
        let budget = budget(100, Duration::from_secs(10), 0.2);
        let start = Instant::now();
        let mut sent = Vec::new();
        while start.elapsed() < Duration::from_secs(60) {
            drop(budget.acquire(Lane::Polling, false).await);
            sent.push(start.elapsed());
        }
        assert!(max_in_window(&sent, Duration::from_secs(10)) <= 20, "the share is a ceiling");
        assert!(sent.len() >= 6 * 20, "and it is usable: {} in 60 s", sent.len());
        let used = budget.polling_share_used();
        assert!((0.17..=0.21).contains(&used), "a fifth of the last minute's budget, measured: {used}");
        // The rest of the budget is still there for the others.
        let others = Instant::now();
        for _ in 0..50 {
            drop(budget.acquire(Lane::Background, false).await);
        }
        assert!(others.elapsed() < Duration::from_secs(10), "background requests were not held by the share");
    }

    #[tokio::test(start_paused = true)]
    async fn the_polling_lane_gives_way_to_realtime_and_background() {
        // One request per 50 ms, all of it open to polling; polling queues first, then background,
        // then a real-time caller: they are served in the opposite order.
        let budget = budget(1, Duration::from_millis(50), 1.0);
        drop(budget.acquire(Lane::Background, false).await); // uses the first cell
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for lane in [Lane::Polling, Lane::Background, Lane::Realtime] {
            let (b, o) = (budget.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                drop(b.acquire(lane, false).await);
                o.lock().unwrap().push(lane);
            }));
            tokio::task::yield_now().await;
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![Lane::Realtime, Lane::Background, Lane::Polling]);
    }

    #[tokio::test(start_paused = true)]
    async fn polling_searches_keep_to_the_search_limit() {
        // Searches 2/s: the polling lane takes its search slot together with its other slots.
        let budget = std::sync::Arc::new(Budget::new(&BudgetOptions {
            requests: 100,
            window: Duration::from_secs(10),
            margin: Duration::ZERO,
            searches_per_second: 2,
            search_margin: Duration::ZERO,
            searches_in_budget: true,
            polling_share: 0.5,
        }));
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..10 {
            drop(budget.acquire(Lane::Polling, true).await);
            sent.push(start.elapsed());
        }
        assert!(max_in_window(&sent, Duration::from_secs(1)) <= 2, "{sent:?}");
    }

    /// Searches admitted at the limit but sent late (the first ones open their connections
    /// while the runtime is busy), then later ones sent at once: the server, counting each at
    /// its arrival, must never see more than 5 in a second. Each search keeps its admission
    /// until its answer (50 ms after arrival), as the transport does.
    #[tokio::test(start_paused = true)]
    async fn searches_sent_late_never_bunch_at_the_server() {
        for in_budget in [true, false] {
            let budget = std::sync::Arc::new(Budget::new(&BudgetOptions {
                requests: 100,
                window: Duration::from_secs(10),
                margin: Duration::ZERO,
                searches_per_second: 5,
                search_margin: Duration::ZERO,
                searches_in_budget: in_budget,
                polling_share: DEFAULT_POLLING_SHARE,
            }));
            let start = Instant::now();
            let arrivals = std::sync::Arc::new(Mutex::new(Vec::new()));
            let mut walkers = Vec::new();
            for walker in 0..3u64 {
                let (budget, arrivals) = (budget.clone(), arrivals.clone());
                walkers.push(tokio::spawn(async move {
                    for page in 0..12u64 {
                        let admission = budget.acquire(Lane::Background, true).await;
                        // The first pages are sent late; the delay varies per walker.
                        let late = if page < 2 { 150 + 60 * walker } else { (walker * 7 + page * 13) % 20 };
                        tokio::time::sleep(Duration::from_millis(late)).await;
                        arrivals.lock().unwrap().push(start.elapsed());
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        drop(admission);
                    }
                }));
            }
            for walker in walkers {
                walker.await.unwrap();
            }
            let mut arrivals = arrivals.lock().unwrap().clone();
            arrivals.sort();
            assert_eq!(arrivals.len(), 36);
            let most = max_in_window(&arrivals, Duration::from_secs(1));
            assert!(most <= 5, "{most} searches reached the server in one second: {arrivals:?}");
        }
    }

    /// A held log counts an admission at its release, and waits for an unanswered oldest one.
    #[test]
    fn a_held_log_counts_each_admission_until_it_is_released() {
        let second = Duration::from_secs(1);
        let log = WindowLog::held(2, second, 2);
        let t0 = Instant::now();
        let first = log.admit(t0).unwrap();
        let second_id = log.admit(t0).unwrap();
        // The oldest is unanswered: not even a whole window later.
        assert!(log.try_admit(t0 + second).is_err());
        log.release(second_id, t0 + Duration::from_millis(100));
        log.release(first, t0 + Duration::from_millis(300));
        // Answered at 300 ms: a third goes one window after that, not after its admission.
        assert_eq!(log.try_admit(t0 + second), Err(t0 + Duration::from_millis(1300)));
        let third = log.admit(t0 + Duration::from_millis(1300)).unwrap();
        let _fourth = log.admit(t0 + Duration::from_millis(2300)).unwrap();
        // A slow answer: the oldest (third) is waited for past a window, looked at every poll,
        // and once answered counts from its answer.
        let late = t0 + Duration::from_millis(3400);
        assert_eq!(log.try_admit(late), Err(late + OPEN_POLL));
        log.release(third, late);
        assert_eq!(log.ready_at(late), late + second);
    }

    /// A greedy searcher and a greedy lister share 10 requests a second and 5 searches: counted
    /// in the budget, searches keep their 5 a second (they go first) and lists get the rest;
    /// outside it, lists get all 10. No second ever holds more than the limits allow.
    #[tokio::test(start_paused = true)]
    async fn searches_in_or_outside_the_budget() {
        for in_budget in [true, false] {
            let budget = std::sync::Arc::new(Budget::new(&BudgetOptions {
                requests: 10,
                window: Duration::from_secs(1),
                margin: Duration::ZERO,
                searches_per_second: 5,
                search_margin: Duration::ZERO,
                searches_in_budget: in_budget,
                polling_share: DEFAULT_POLLING_SHARE,
            }));
            let start = Instant::now();
            let run = |is_search: bool| {
                let budget = budget.clone();
                tokio::spawn(async move {
                    let mut sent = Vec::new();
                    while start.elapsed() < Duration::from_secs(6) {
                        drop(budget.acquire(Lane::Background, is_search).await);
                        sent.push(start.elapsed());
                    }
                    sent
                })
            };
            let (searches, lists) = (run(true), run(false));
            let (searches, lists) = (searches.await.unwrap(), lists.await.unwrap());
            let second = Duration::from_secs(1);
            assert!(max_in_window(&searches, second) <= 5, "{searches:?}");
            assert!(searches.len() >= 28, "searches use their limit: {}", searches.len());
            if in_budget {
                let mut all = [searches.clone(), lists.clone()].concat();
                all.sort();
                assert!(max_in_window(&all, second) <= 10);
                assert!((24..=34).contains(&lists.len()), "lists get the rest: {}", lists.len());
            } else {
                assert!(max_in_window(&lists, second) <= 10);
                assert!(lists.len() >= 56, "lists get the whole budget: {}", lists.len());
            }
        }
    }
}

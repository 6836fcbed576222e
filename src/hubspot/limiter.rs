//! The process-wide request budget: at most `HUBSPOT_REQUESTS_PER_10S` requests in ANY rolling
//! 10-second window, at most 5 searches in any second, real-time callers served before
//! background ones, and a pause that every caller honours after a 429.
//!
//! Burst arithmetic: a GCRA (or token bucket) allowing a burst of `b` and replenishing one cell
//! every `T` admits, in a window of length `W`, up to `b + ceil(W / T) - 1` requests: a full
//! bucket at the window's start plus everything replenished during it. "N per W" with burst N
//! therefore allows almost 2N in some window. So the burst is 1 and `T = (W + margin) / N`: any
//! window of length `W` then holds at most `N` starts, and the margin absorbs network jitter
//! between sending a request and HubSpot counting it. Throughput over a long run is
//! `N / (W + margin)`, within 2% of the budget with the default margin.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Who is asking: webhook fetchers (`Realtime`) go before the poller (`Background`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    Realtime,
    Background,
}

impl Lane {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Realtime => "realtime",
            Self::Background => "background",
        }
    }
}

/// The spacing between two requests so that no window of `window` holds more than `requests`.
/// Rounded up to the nanosecond: rounding down would let `requests + 1` fit in one window.
pub fn spacing(requests: u32, window: Duration, margin: Duration) -> Duration {
    let nanos = (window + margin).as_nanos().div_ceil(u128::from(requests.max(1)));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX).max(1))
}

/// The GCRA quota for "at most `requests` in any `window`": burst 1, one cell per [`spacing`].
pub fn quota(requests: u32, window: Duration, margin: Duration) -> Quota {
    let period = spacing(requests, window, margin);
    Quota::with_period(period).unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN)).allow_burst(NonZeroU32::MIN)
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
}

/// The shared budget. One per process (inside the `HubSpot` client, which is cloned, not rebuilt).
pub struct Budget {
    clock: DefaultClock,
    general: DefaultDirectRateLimiter,
    search: Option<DefaultDirectRateLimiter>,
    /// Paused by a 429 on the 10-second or daily budget: every caller waits.
    pub general_pause: PauseGate,
    /// Paused by a 429 on the secondly search limit: searches wait.
    pub search_pause: PauseGate,
    realtime_waiting: AtomicUsize,
    realtime_idle: Notify,
}

impl Budget {
    pub fn new(options: &BudgetOptions) -> Self {
        let clock = DefaultClock::default();
        let limiter = |q| RateLimiter::direct_with_clock(q, clock.clone());
        let margin_1s = options.margin.mul_f64(0.1);
        Self {
            general: limiter(quota(options.requests, options.window, options.margin)),
            search: (options.searches_per_second > 0)
                .then(|| limiter(quota(options.searches_per_second, Duration::from_secs(1), margin_1s))),
            clock,
            general_pause: PauseGate::default(),
            search_pause: PauseGate::default(),
            realtime_waiting: AtomicUsize::new(0),
            realtime_idle: Notify::new(),
        }
    }

    /// Waits until one request may be sent now.
    pub async fn acquire(&self, lane: Lane, is_search: bool) {
        loop {
            if is_search {
                self.search_pause.wait().await;
                if let Some(search) = &self.search {
                    self.take(search).await;
                }
            }
            self.general_pause.wait().await;
            match lane {
                Lane::Realtime => self.take_realtime().await,
                Lane::Background => self.take_background().await,
            }
            // A 429 seen by another caller while this one waited: do not send into it.
            let paused = |g: &PauseGate| g.until().is_some_and(|t| t > Instant::now());
            if !paused(&self.general_pause) && (!is_search || !paused(&self.search_pause)) {
                return;
            }
        }
    }

    async fn take(&self, limiter: &DefaultDirectRateLimiter) {
        while let Err(not_until) = limiter.check() {
            tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await;
        }
    }

    async fn take_realtime(&self) {
        self.realtime_waiting.fetch_add(1, Ordering::SeqCst);
        self.take(&self.general).await;
        if self.realtime_waiting.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.realtime_idle.notify_waiters();
        }
    }

    async fn take_background(&self) {
        loop {
            self.realtime_gone().await;
            match self.general.check() {
                Ok(()) => return,
                Err(not_until) => tokio::time::sleep(not_until.wait_time_from(self.clock.now())).await,
            }
        }
    }

    /// Resolves when no real-time caller is waiting for the budget.
    async fn realtime_gone(&self) {
        loop {
            let notified = self.realtime_idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.realtime_waiting.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use governor::clock::Reference;

    /// The most admissions inside any half-open window of `window` (the simulator's definition).
    fn max_in_window(times: &[Duration], window: Duration) -> usize {
        (0..times.len()).map(|i| times[i..].iter().take_while(|t| **t < times[i] + window).count()).max().unwrap_or(0)
    }

    /// A greedy caller against the quota on a controlled clock: it retries at the earliest
    /// moment the limiter names, and additionally probes at odd moments.
    fn greedy_admissions(requests: u32, window: Duration, margin: Duration, total: Duration) -> Vec<Duration> {
        let clock = FakeRelativeClock::default();
        let limiter = RateLimiter::direct_with_clock(quota(requests, window, margin), clock.clone());
        let start = clock.now();
        let mut admitted = Vec::new();
        while clock.now().duration_since(start) < total.into() {
            match limiter.check() {
                Ok(()) => admitted.push(clock.now().duration_since(start).into()),
                Err(not_until) => {
                    let wait = not_until.wait_time_from(clock.now());
                    // Probe early sometimes: an early probe must be refused, never admitted.
                    clock.advance(if admitted.len() % 3 == 0 { wait / 2 + Duration::from_nanos(1) } else { wait });
                }
            }
        }
        admitted
    }

    #[test]
    fn no_rolling_window_exceeds_the_budget() {
        for (requests, margin) in [(100, Duration::ZERO), (100, Duration::from_millis(200)), (7, Duration::ZERO)] {
            let window = Duration::from_secs(10);
            let admitted = greedy_admissions(requests, window, margin, Duration::from_secs(120));
            assert!(max_in_window(&admitted, window) <= requests as usize, "{requests} per 10 s broken");
            // And the budget is used: 12 windows' worth, minus the margin's share.
            let floor = (120.0 * f64::from(requests) / (10.0 + margin.as_secs_f64())).floor() as usize;
            assert!(admitted.len() >= floor, "only {} of {floor} admitted", admitted.len());
        }
    }

    #[test]
    fn a_token_bucket_with_full_burst_would_break_the_bound() {
        // Why burst is 1: "100 per 10 s" with burst 100 lets ~200 through in one window.
        let clock = FakeRelativeClock::default();
        let naive = Quota::with_period(Duration::from_millis(100)).unwrap().allow_burst(NonZeroU32::new(100).unwrap());
        let limiter = RateLimiter::direct_with_clock(naive, clock.clone());
        let start = clock.now();
        let mut admitted = Vec::new();
        while clock.now().duration_since(start) < Duration::from_secs(20).into() {
            match limiter.check() {
                Ok(()) => admitted.push(clock.now().duration_since(start).into()),
                Err(n) => clock.advance(n.wait_time_from(clock.now())),
            }
        }
        assert!(max_in_window(&admitted, Duration::from_secs(10)) > 100);
    }

    #[test]
    fn search_limit_is_five_per_second() {
        let admitted = greedy_admissions(5, Duration::from_secs(1), Duration::ZERO, Duration::from_secs(30));
        assert!(max_in_window(&admitted, Duration::from_secs(1)) <= 5);
    }

    #[tokio::test]
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

    #[tokio::test]
    async fn realtime_goes_before_background() {
        // One request per 50 ms; the background caller queues first, then a real-time caller.
        let budget = std::sync::Arc::new(Budget::new(&BudgetOptions {
            requests: 1,
            window: Duration::from_millis(50),
            margin: Duration::ZERO,
            searches_per_second: 0,
        }));
        budget.acquire(Lane::Background, false).await; // uses the first cell
        let order = std::sync::Arc::new(Mutex::new(Vec::new()));
        let (b, o) = (budget.clone(), order.clone());
        let background = tokio::spawn(async move {
            b.acquire(Lane::Background, false).await;
            o.lock().unwrap().push(Lane::Background);
        });
        tokio::task::yield_now().await;
        let (b, o) = (budget.clone(), order.clone());
        let realtime = tokio::spawn(async move {
            b.acquire(Lane::Realtime, false).await;
            o.lock().unwrap().push(Lane::Realtime);
        });
        realtime.await.unwrap();
        background.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec![Lane::Realtime, Lane::Background]);
    }
}

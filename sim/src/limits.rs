//! Rate limits: a truly rolling 10-second request budget, the 5-per-second search limit and a
//! daily quota, all driven by an injectable [`Clock`] so tests need not sleep.
//!
//! The window keeps the timestamp of every request it served; a request is admitted only if
//! fewer than `max` requests were served in the `window_ms` before it (inclusive of now), so no
//! window of that length can ever contain more than `max` served requests. Rejected requests
//! (429) do not consume budget.

use crate::errors::Policy;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Milliseconds since the Unix epoch, from the system or a manual source.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Clock { manual: None }
    }

    /// A clock that only moves when told to.
    pub fn manual(start_ms: i64) -> Self {
        Clock { manual: Some(Arc::new(AtomicI64::new(start_ms))) }
    }

    pub fn now_ms(&self) -> i64 {
        match &self.manual {
            Some(a) => a.load(Ordering::SeqCst),
            None => chrono::Utc::now().timestamp_millis(),
        }
    }

    /// Moves a manual clock forward (no effect on the system clock).
    pub fn advance(&self, ms: i64) {
        if let Some(a) = &self.manual {
            a.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

/// A rolling window of served-request timestamps.
#[derive(Debug)]
pub struct RollingWindow {
    pub window_ms: i64,
    pub max: u32,
    hits: VecDeque<i64>,
    /// The most requests ever seen inside one window.
    pub max_seen: usize,
}

impl RollingWindow {
    pub fn new(window_ms: i64, max: u32) -> Self {
        RollingWindow { window_ms, max, hits: VecDeque::new(), max_seen: 0 }
    }

    fn prune(&mut self, now: i64) {
        while let Some(&t) = self.hits.front() {
            if t <= now - self.window_ms {
                self.hits.pop_front();
            } else {
                break;
            }
        }
    }

    /// Admits a request at `now` (returning what remains) or refuses it (`None`). `max == 0` is off.
    pub fn try_acquire(&mut self, now: i64) -> Option<u32> {
        self.prune(now);
        if self.max > 0 && self.hits.len() >= self.max as usize {
            return None;
        }
        self.hits.push_back(now);
        self.max_seen = self.max_seen.max(self.hits.len());
        if self.max == 0 {
            // Unlimited: keep only enough history for the statistic.
            return Some(u32::MAX);
        }
        Some(self.max - self.hits.len() as u32)
    }
}

/// Limit settings.
#[derive(Debug, Clone)]
pub struct LimitConfig {
    /// Requests per window; 0 turns the budget off.
    pub requests_per_window: u32,
    pub window_ms: i64,
    /// Search requests per second; 0 turns it off.
    pub search_per_second: u32,
    /// Requests per UTC day; 0 turns it off.
    pub daily: u64,
    /// Whether searches also take a slot of the 10-second budget (HubSpot leaves it unsettled;
    /// `true`, the stricter model, by default).
    pub searches_in_budget: bool,
}

/// Result of admitting a request.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    pub remaining: Option<u32>,
    pub daily_remaining: Option<u64>,
    pub daily_max: Option<u64>,
}

/// All limits of one simulator.
#[derive(Debug)]
pub struct Limits {
    pub cfg: LimitConfig,
    burst: Mutex<RollingWindow>,
    search: Mutex<RollingWindow>,
    daily: Mutex<(i64, u64)>,
}

impl Limits {
    pub fn new(cfg: LimitConfig) -> Self {
        Limits {
            burst: Mutex::new(RollingWindow::new(cfg.window_ms, cfg.requests_per_window)),
            search: Mutex::new(RollingWindow::new(1000, cfg.search_per_second)),
            daily: Mutex::new((0, 0)),
            cfg,
        }
    }

    /// Admits one API request, or names the policy that refuses it. Search requests must pass
    /// the secondly search limit and, unless `searches_in_budget` is off, the 10-second budget.
    pub fn admit(&self, now: i64, is_search: bool) -> Result<Admitted, Policy> {
        let day = now.div_euclid(86_400_000);
        let mut daily = self.daily.lock().unwrap_or_else(PoisonError::into_inner);
        if daily.0 != day {
            *daily = (day, 0);
        }
        if self.cfg.daily > 0 && daily.1 >= self.cfg.daily {
            return Err(Policy::Daily);
        }
        if is_search {
            let mut s = self.search.lock().unwrap_or_else(PoisonError::into_inner);
            s.prune(now);
            if s.max > 0 && s.hits.len() >= s.max as usize {
                return Err(Policy::Secondly);
            }
        }
        let remaining = if is_search && !self.cfg.searches_in_budget {
            self.cfg.requests_per_window
        } else {
            let mut b = self.burst.lock().unwrap_or_else(PoisonError::into_inner);
            b.try_acquire(now).ok_or(Policy::TenSecondlyRolling)?
        };
        if is_search {
            let mut s = self.search.lock().unwrap_or_else(PoisonError::into_inner);
            let _ = s.try_acquire(now);
        }
        daily.1 += 1;
        Ok(Admitted {
            remaining: (self.cfg.requests_per_window > 0).then_some(remaining),
            daily_remaining: (self.cfg.daily > 0).then(|| self.cfg.daily - daily.1),
            daily_max: (self.cfg.daily > 0).then_some(self.cfg.daily),
        })
    }

    /// (most requests in any budget window, most searches in any second)
    pub fn max_seen(&self) -> (usize, usize) {
        let b = self.burst.lock().unwrap_or_else(PoisonError::into_inner).max_seen;
        let s = self.search.lock().unwrap_or_else(PoisonError::into_inner).max_seen;
        (b, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_never_exceeds_budget() {
        let mut w = RollingWindow::new(10_000, 5);
        let mut served = Vec::new();
        // A request every 500 ms for a minute.
        for i in 0..120 {
            let t = i * 500;
            if w.try_acquire(t).is_some() {
                served.push(t);
            }
        }
        for (i, &t) in served.iter().enumerate() {
            let in_window = served[i..].iter().take_while(|&&u| u < t + 10_000).count();
            assert!(in_window <= 5, "{in_window} served in window starting {t}");
        }
        assert_eq!(w.max_seen, 5);
        // 5 per 10 s over 60 s: exactly 30 served.
        assert_eq!(served.len(), 30);
    }

    #[test]
    fn zero_means_off() {
        let mut w = RollingWindow::new(10_000, 0);
        for _ in 0..1000 {
            assert!(w.try_acquire(0).is_some());
        }
    }
}

//! Fault injection: latency, a random error rate and "fail the next N calls", applied to API
//! calls after the limits admitted them. Decisions come from a seeded RNG, so a run with the same
//! seed and the same request order injects the same faults.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, PoisonError};

/// Body of `POST /_sim/faults`. Every field is optional; an absent field takes its default, so
/// `{}` resets to no faults (plus the `--latency-ms` base latency).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default)]
pub struct FaultConfig {
    /// Probability (0.0-1.0) that a call fails with `status`.
    pub error_rate: f64,
    /// Status of injected errors: 500, 502, 503, 504, 429, ...
    pub status: u16,
    /// Added latency per call, in ms.
    pub latency_ms: Option<u64>,
    /// `Retry-After` seconds sent with injected errors (typically 429).
    pub retry_after: Option<u64>,
    /// Fail exactly the next N calls, then fall back to `error_rate`.
    pub fail_next: u32,
    /// Every list page (`GET /crm/.../objects/{type}`, live or archived) whose `after` cursor is
    /// at or past this id fails with `status`, on every attempt: a page that never loads.
    pub fail_list_after: Option<u64>,
    /// Every search page that asks for ids above one at or past this id (an `hs_object_id`
    /// `GT`/`GTE` filter, as a search walked by id asks for its later pages) fails with
    /// `status`, on every attempt: a search page that never loads.
    pub fail_search_after: Option<u64>,
    /// Search index lag, in ms: a record changed less than this long ago is not matched or
    /// returned by searches yet (HubSpot's index trails writes by a few seconds). Absent: the
    /// simulator's `--search-lag-ms` (0 unless set).
    pub search_lag_ms: Option<u64>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            error_rate: 0.0,
            status: 500,
            latency_ms: None,
            retry_after: None,
            fail_next: 0,
            fail_list_after: None,
            fail_search_after: None,
            search_lag_ms: None,
        }
    }
}

/// What to do with one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub latency_ms: u64,
    /// (status, retry_after) when the call must fail.
    pub fail: Option<(u16, Option<u64>)>,
}

#[derive(Debug)]
pub struct Faults {
    base_latency_ms: u64,
    base_search_lag_ms: u64,
    state: Mutex<(FaultConfig, StdRng)>,
}

impl Faults {
    pub fn new(base_latency_ms: u64, seed: u64) -> Self {
        Faults {
            base_latency_ms,
            base_search_lag_ms: 0,
            state: Mutex::new((FaultConfig::default(), StdRng::seed_from_u64(seed ^ 0xFA17))),
        }
    }

    /// The search index lag used while the fault settings name none (`--search-lag-ms`).
    pub fn with_search_lag(mut self, ms: u64) -> Self {
        self.base_search_lag_ms = ms;
        self
    }

    /// The current search index lag, in ms (0: searches see every change at once).
    pub fn search_lag_ms(&self) -> u64 {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0.search_lag_ms.unwrap_or(self.base_search_lag_ms)
    }

    /// Replaces the configuration (validated: rate within 0..=1, status 400..=599).
    pub fn set(&self, cfg: FaultConfig) -> Result<(), String> {
        if !(0.0..=1.0).contains(&cfg.error_rate) {
            return Err(format!("error_rate must be within 0.0-1.0, got {}", cfg.error_rate));
        }
        if !(400..=599).contains(&cfg.status) {
            return Err(format!("status must be a 4xx or 5xx code, got {}", cfg.status));
        }
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0 = cfg;
        Ok(())
    }

    pub fn get(&self) -> FaultConfig {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).0.clone()
    }

    /// The status a list page starting at cursor `after` fails with, if it must.
    pub fn list_page_fails(&self, after: Option<u64>) -> Option<u16> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let cfg = &st.0;
        match (cfg.fail_list_after, after) {
            (Some(from), Some(after)) if after >= from => Some(cfg.status),
            _ => None,
        }
    }

    /// The status a search asking for ids above `after` fails with, if it must.
    pub fn search_page_fails(&self, after: Option<u64>) -> Option<u16> {
        let st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let cfg = &st.0;
        match (cfg.fail_search_after, after) {
            (Some(from), Some(after)) if after >= from => Some(cfg.status),
            _ => None,
        }
    }

    pub fn decide(&self) -> Decision {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (cfg, rng) = &mut *st;
        let latency_ms = cfg.latency_ms.unwrap_or(self.base_latency_ms);
        let fail = if cfg.fail_next > 0 {
            cfg.fail_next -= 1;
            true
        } else {
            cfg.error_rate > 0.0 && rng.random::<f64>() < cfg.error_rate
        };
        Decision { latency_ms, fail: fail.then_some((cfg.status, cfg.retry_after)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_then_rate() {
        let f = Faults::new(7, 1);
        f.set(FaultConfig { fail_next: 2, status: 503, ..Default::default() }).unwrap();
        assert_eq!(f.decide().fail, Some((503, None)));
        assert_eq!(f.decide().fail, Some((503, None)));
        assert_eq!(f.decide(), Decision { latency_ms: 7, fail: None });
        f.set(FaultConfig { error_rate: 1.0, status: 429, retry_after: Some(2), ..Default::default() }).unwrap();
        assert_eq!(f.decide().fail, Some((429, Some(2))));
        assert!(f.set(FaultConfig { error_rate: 1.5, ..Default::default() }).is_err());
    }

    #[test]
    fn search_pages_past_an_id_always_fail() {
        let f = Faults::new(0, 1);
        assert_eq!(f.search_page_fails(Some(500)), None);
        f.set(FaultConfig { fail_search_after: Some(100), status: 502, ..Default::default() }).unwrap();
        assert_eq!(f.search_page_fails(None), None, "a first page loads");
        assert_eq!(f.search_page_fails(Some(99)), None);
        assert_eq!(f.search_page_fails(Some(100)), Some(502));
        assert_eq!(f.search_page_fails(Some(100)), Some(502), "on every attempt");
    }

    #[test]
    fn list_pages_past_a_cursor_always_fail() {
        let f = Faults::new(0, 1);
        f.set(FaultConfig { fail_list_after: Some(500), status: 502, ..Default::default() }).unwrap();
        assert_eq!(f.list_page_fails(None), None);
        assert_eq!(f.list_page_fails(Some(499)), None);
        assert_eq!(f.list_page_fails(Some(500)), Some(502));
        assert_eq!(f.list_page_fails(Some(900)), Some(502), "every time");
        assert_eq!(f.decide().fail, None, "other calls are not affected");
    }

    #[test]
    fn search_lag_defaults_to_the_base_and_can_be_set() {
        let f = Faults::new(0, 1).with_search_lag(3000);
        assert_eq!(f.search_lag_ms(), 3000);
        f.set(FaultConfig { search_lag_ms: Some(500), ..Default::default() }).unwrap();
        assert_eq!(f.search_lag_ms(), 500);
        f.set(FaultConfig::default()).unwrap();
        assert_eq!(f.search_lag_ms(), 3000, "{{}} resets to the base");
    }

    #[test]
    fn error_rate_is_roughly_honoured() {
        let f = Faults::new(0, 42);
        f.set(FaultConfig { error_rate: 0.3, ..Default::default() }).unwrap();
        let fails = (0..10_000).filter(|_| f.decide().fail.is_some()).count();
        assert!((2700..3300).contains(&fails), "{fails}");
    }
}

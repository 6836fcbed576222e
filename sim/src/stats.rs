//! Counters behind `GET /_sim/stats`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Debug, Default)]
pub struct Stats {
    /// "METHOD /pattern" -> requests that reached the API (whatever the answer).
    endpoints: Mutex<BTreeMap<String, u64>>,
    /// "contacts.batch_read" etc. -> requests served by a handler; "contacts.batch_read_ids" ->
    /// the ids those batch reads asked for.
    operations: Mutex<BTreeMap<String, u64>>,
    pub requests_total: AtomicU64,
    pub responses_429: AtomicU64,
    pub responses_429_ten_secondly: AtomicU64,
    pub responses_429_secondly: AtomicU64,
    pub responses_429_daily: AtomicU64,
    pub responses_401: AtomicU64,
    pub responses_414: AtomicU64,
    pub faults_injected: AtomicU64,
}

fn bump(m: &Mutex<BTreeMap<String, u64>>, key: &str) {
    let mut m = m.lock().unwrap_or_else(PoisonError::into_inner);
    match m.get_mut(key) {
        Some(v) => *v += 1,
        None => {
            m.insert(key.to_string(), 1);
        }
    }
}

impl Stats {
    pub fn endpoint(&self, key: &str) {
        self.requests_total.fetch_add(1, Ordering::Relaxed);
        bump(&self.endpoints, key);
    }

    pub fn operation(&self, key: &str) {
        bump(&self.operations, key);
    }

    /// Adds `n` to the count under `key` (ids asked for by batch reads, say).
    pub fn operation_add(&self, key: &str, n: u64) {
        let mut m = self.operations.lock().unwrap_or_else(PoisonError::into_inner);
        *m.entry(key.to_string()).or_default() += n;
    }

    pub fn incr(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    pub fn endpoints(&self) -> BTreeMap<String, u64> {
        self.endpoints.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    pub fn operations(&self) -> BTreeMap<String, u64> {
        self.operations.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

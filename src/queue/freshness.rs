//! How fresh the real-time path keeps the copy, per object kind, over the last five minutes:
//! how long an id waited from its webhook to its stored row (p50, p99), and how many HubSpot
//! reads the fetchers made per event that asked for one. Memory is bounded: at most
//! [`MAX_SAMPLES`] latencies per kind (the newest), and counts per second.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

use crate::kind::ObjectKind;
use crate::minutes::Minutes;

/// The span the figures cover.
pub const WINDOW: Duration = Duration::from_secs(5 * 60);
/// Most latencies kept per kind (the newest win).
pub const MAX_SAMPLES: usize = 20_000;

/// The figures of one kind over the last [`WINDOW`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Figures {
    /// Webhook to stored row: the median and the 99th percentile; `None` without samples.
    pub p50: Option<Duration>,
    pub p99: Option<Duration>,
    /// Ids stored (the latencies measured).
    pub stored: usize,
    /// Events that asked for a read (ids offered to the queue, repeats included).
    pub events: u64,
    /// HubSpot requests the fetchers made.
    pub reads: u64,
}

impl Figures {
    /// Reads per event; `None` before any event.
    pub fn reads_per_event(&self) -> Option<f64> {
        (self.events > 0).then(|| self.reads as f64 / self.events as f64)
    }
}

#[derive(Default)]
struct Recent {
    latencies: VecDeque<(Instant, Duration)>,
    /// (second, count) pairs, oldest first.
    events: VecDeque<(Instant, u64)>,
    reads: VecDeque<(Instant, u64)>,
}

impl Recent {
    fn prune(&mut self, now: Instant) {
        let old = |at: &Instant| now.saturating_duration_since(*at) > WINDOW;
        while self.latencies.front().is_some_and(|(at, _)| old(at)) {
            self.latencies.pop_front();
        }
        for counts in [&mut self.events, &mut self.reads] {
            while counts.front().is_some_and(|(at, _)| old(at)) {
                counts.pop_front();
            }
        }
    }
}

/// Adds `n` to the per-second counts, merging into the newest second.
fn count(counts: &mut VecDeque<(Instant, u64)>, n: u64, now: Instant) {
    match counts.back_mut() {
        Some((at, total)) if now.saturating_duration_since(*at) < Duration::from_secs(1) => *total += n,
        _ => counts.push_back((now, n)),
    }
}

/// One minute of the real-time path, over every kind (the status page's live charts).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveMinute {
    /// Ids stored by the fetchers, and their webhook-to-row latencies' sum and maximum.
    pub stored: u64,
    pub latency_sum_ms: u64,
    pub latency_max_ms: u64,
    /// The deepest the queue was seen (sampled every second and at every push).
    pub depth_max: u64,
}

impl LiveMinute {
    /// The mean webhook-to-row latency; `None` without stored ids.
    pub fn latency_avg_ms(&self) -> Option<u64> {
        (self.stored > 0).then(|| self.latency_sum_ms / self.stored)
    }
}

/// The recorder, shared by the queue (events) and the fetchers (stored ids, reads).
#[derive(Default)]
pub struct Freshness {
    kinds: Mutex<HashMap<ObjectKind, Recent>>,
    minutes: Minutes<LiveMinute>,
}

impl Freshness {
    fn with<T>(&self, kind: ObjectKind, now: Instant, f: impl FnOnce(&mut Recent) -> T) -> T {
        let mut kinds = self.kinds.lock().unwrap_or_else(PoisonError::into_inner);
        let recent = kinds.entry(kind).or_default();
        recent.prune(now);
        f(recent)
    }

    /// `n` events of `kind` asked for a read.
    pub fn events(&self, kind: ObjectKind, n: u64, now: Instant) {
        self.with(kind, now, |r| count(&mut r.events, n, now));
    }

    /// A batch of `kind` was stored at `now`: its ids had been queued at `queued`, and it cost
    /// `reads` HubSpot requests.
    pub fn stored(&self, kind: ObjectKind, queued: &[Instant], reads: u64, now: Instant) {
        self.minutes.update(Utc::now(), |m| {
            for at in queued {
                let ms = now.saturating_duration_since(*at).as_millis() as u64;
                m.stored += 1;
                m.latency_sum_ms += ms;
                m.latency_max_ms = m.latency_max_ms.max(ms);
            }
        });
        self.with(kind, now, |r| {
            count(&mut r.reads, reads, now);
            for at in queued {
                r.latencies.push_back((now, now.saturating_duration_since(*at)));
            }
            let excess = r.latencies.len().saturating_sub(MAX_SAMPLES);
            r.latencies.drain(..excess);
        });
    }

    /// The queue held `depth` ids.
    pub fn depth(&self, depth: usize) {
        self.minutes.update(Utc::now(), |m| m.depth_max = m.depth_max.max(depth as u64));
    }

    /// The last `minutes` minutes (at most an hour), oldest first, the current one last.
    pub fn per_minute(&self, now: DateTime<Utc>, minutes: usize) -> Vec<(DateTime<Utc>, LiveMinute)> {
        self.minutes.series(now, minutes)
    }

    /// The figures of `kind` over the last [`WINDOW`] before `now`.
    pub fn figures(&self, kind: ObjectKind, now: Instant) -> Figures {
        self.with(kind, now, |r| {
            let mut sorted: Vec<Duration> = r.latencies.iter().map(|(_, d)| *d).collect();
            sorted.sort_unstable();
            let rank = |q: f64| -> Option<Duration> {
                let last = sorted.len().checked_sub(1)?;
                sorted.get(((last as f64) * q).round() as usize).copied()
            };
            Figures {
                p50: rank(0.50),
                p99: rank(0.99),
                stored: sorted.len(),
                events: r.events.iter().map(|(_, n)| n).sum(),
                reads: r.reads.iter().map(|(_, n)| n).sum(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_reads_per_event_over_the_window() {
        let f = Freshness::default();
        let start = Instant::now();
        let later = start + Duration::from_secs(10);
        let queued: Vec<Instant> = (1..=100).map(|ms| later - Duration::from_millis(ms)).collect();
        f.events(ObjectKind::Deals, 400, start);
        f.stored(ObjectKind::Deals, &queued, 2, later);
        let figures = f.figures(ObjectKind::Deals, later);
        assert_eq!(figures.p50, Some(Duration::from_millis(51)));
        assert_eq!(figures.p99, Some(Duration::from_millis(99)));
        assert_eq!((figures.stored, figures.events, figures.reads), (100, 400, 2));
        assert_eq!(figures.reads_per_event(), Some(0.005));
        assert_eq!(f.figures(ObjectKind::Calls, later), Figures::default(), "kinds are apart");
        // Five minutes on, it is all forgotten.
        let gone = f.figures(ObjectKind::Deals, later + WINDOW + Duration::from_secs(1));
        assert_eq!(gone, Figures::default());
        assert_eq!(gone.reads_per_event(), None);
    }

    #[test]
    fn samples_are_bounded() {
        let f = Freshness::default();
        let now = Instant::now();
        let queued = vec![now; MAX_SAMPLES + 500];
        f.stored(ObjectKind::Contacts, &queued, 1, now);
        assert_eq!(f.figures(ObjectKind::Contacts, now).stored, MAX_SAMPLES);
    }
}

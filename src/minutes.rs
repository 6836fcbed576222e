//! Per-minute figures over the last hour, for the status page's live charts: a ring of one-minute
//! buckets keyed by the Unix minute, each bucket any small `Copy` summary (requests and 429s,
//! latencies, the queue's depth). A bucket is reset when its minute comes round again, so the
//! ring never holds more than [`RING_MINUTES`] and needs no cleaning. One short lock per update.

use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};

/// Minutes kept (one hour).
pub const RING_MINUTES: usize = 60;

/// The last hour of `B`, minute by minute.
#[derive(Debug)]
pub struct Minutes<B> {
    ring: Mutex<[(i64, B); RING_MINUTES]>,
}

impl<B: Copy + Default> Default for Minutes<B> {
    fn default() -> Self {
        Self { ring: Mutex::new([(i64::MIN, B::default()); RING_MINUTES]) }
    }
}

impl<B: Copy + Default> Minutes<B> {
    /// Applies `f` to the bucket of the minute holding `now` (a fresh one at each new minute).
    pub fn update(&self, now: DateTime<Utc>, f: impl FnOnce(&mut B)) {
        let minute = now.timestamp().div_euclid(60);
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = &mut ring[minute.rem_euclid(RING_MINUTES as i64) as usize];
        if slot.0 != minute {
            *slot = (minute, B::default());
        }
        f(&mut slot.1);
    }

    /// The last `minutes` minutes (at most an hour), oldest first, the current (incomplete) one
    /// last, each with its start; minutes without updates hold `B::default()`.
    pub fn series(&self, now: DateTime<Utc>, minutes: usize) -> Vec<(DateTime<Utc>, B)> {
        let minutes = minutes.clamp(1, RING_MINUTES) as i64;
        let current = now.timestamp().div_euclid(60);
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        (current - minutes + 1..=current)
            .map(|minute| {
                let (at, bucket) = ring[minute.rem_euclid(RING_MINUTES as i64) as usize];
                let bucket = if at == minute { bucket } else { B::default() };
                (DateTime::from_timestamp(minute * 60, 0).unwrap_or(now), bucket)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(hour: u32, minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, hour, minute, second).unwrap()
    }

    #[test]
    fn buckets_are_per_minute_and_reset_when_their_minute_comes_round() {
        let ring: Minutes<u64> = Minutes::default();
        ring.update(at(10, 0, 5), |n| *n += 1);
        ring.update(at(10, 0, 59), |n| *n += 2);
        ring.update(at(10, 2, 0), |n| *n += 7);
        let s = ring.series(at(10, 2, 30), 3);
        assert_eq!(s.iter().map(|(_, n)| *n).collect::<Vec<_>>(), [3, 0, 7]);
        assert_eq!(s[0].0, at(10, 0, 0));
        // An hour later the same slot belongs to another minute: the old count is gone.
        ring.update(at(11, 0, 1), |n| *n += 1);
        assert_eq!(ring.series(at(11, 0, 2), 1)[0].1, 1);
        assert_eq!(ring.series(at(11, 2, 0), 60).iter().map(|(_, n)| *n).sum::<u64>(), 1, "10:02 is over an hour old");
    }
}

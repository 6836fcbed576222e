//! Live webhook figures for the status API, the page and the signature-spike alert: totals,
//! the last webhook's time, and a ring of one-minute buckets covering the last hour.
//!
//! The webhook handler calls [`WebhookStats::accepted`] or [`WebhookStats::rejected`] once per
//! request; both also update the Prometheus counters (see [`crate::metric`]), so the
//! handler does not count twice. Cheap: a few atomics and one short uncontended lock.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::{DateTime, Utc};

use crate::metric;

/// Minutes kept in the ring (one hour).
const RING_MINUTES: usize = 60;

/// Why a webhook request was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Missing, forged or stale signature (401): the signature-spike alert counts these.
    Signature,
    /// Malformed body (400), body too large (413) or too slow (408).
    Malformed,
    /// Queue full (503).
    QueueFull,
    /// The deletions, merges or privacy deletions could not be written: database down (503).
    Database,
    /// No HubSpot token, so nothing could be fetched (503).
    NotConfigured,
    /// The process is shutting down (503).
    ShuttingDown,
    /// As many webhook requests as `WEBHOOK_MAX_CONCURRENT` were already being handled (503).
    Busy,
    /// A verified batch of an account this process does not run (503; HubSpot retries).
    AccountNotServed,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Malformed => "malformed",
            Self::QueueFull => "queue_full",
            Self::Database => "database",
            Self::NotConfigured => "not_configured",
            Self::ShuttingDown => "shutting_down",
            Self::Busy => "busy",
            Self::AccountNotServed => "account_not_served",
        }
    }
}

/// Counts for one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Bucket {
    minute: i64,
    received: u64,
    rejected: u64,
    signature_failures: u64,
}

/// Sums over a window of whole minutes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WindowCounts {
    /// Webhook requests, accepted or not.
    pub received: u64,
    /// Requests refused (any reason).
    pub rejected: u64,
    /// Requests refused for their signature.
    pub signature_failures: u64,
}

/// Webhook counters shared by the webhook handler (writer) and the status API and alerts
/// (readers).
#[derive(Debug)]
pub struct WebhookStats {
    received_total: AtomicU64,
    rejected_total: AtomicU64,
    /// Unix milliseconds of the last webhook request; 0 when none yet.
    last_webhook_ms: AtomicI64,
    ring: Mutex<[Bucket; RING_MINUTES]>,
}

impl Default for WebhookStats {
    fn default() -> Self {
        Self {
            received_total: AtomicU64::new(0),
            rejected_total: AtomicU64::new(0),
            last_webhook_ms: AtomicI64::new(0),
            ring: Mutex::new([Bucket::default(); RING_MINUTES]),
        }
    }
}

impl WebhookStats {
    pub fn new() -> Self {
        Self::default()
    }

    /// A webhook request was accepted with `events` events in it.
    pub fn accepted(&self, events: usize) {
        self.accepted_at(Utc::now(), events);
    }

    /// A webhook request was refused.
    pub fn rejected(&self, reason: Rejection) {
        self.rejected_at(Utc::now(), reason);
    }

    /// [`Self::accepted`] at a given time (tests).
    pub fn accepted_at(&self, now: DateTime<Utc>, events: usize) {
        self.record(now, None);
        metrics::counter!(metric::WEBHOOK_EVENTS_RECEIVED).increment(events as u64);
    }

    /// [`Self::rejected`] at a given time (tests).
    pub fn rejected_at(&self, now: DateTime<Utc>, reason: Rejection) {
        self.record(now, Some(reason));
        self.rejected_total.fetch_add(1, Ordering::Relaxed);
        metrics::counter!(metric::WEBHOOK_REQUESTS_REJECTED, "reason" => reason.as_str()).increment(1);
    }

    fn record(&self, now: DateTime<Utc>, rejection: Option<Rejection>) {
        self.received_total.fetch_add(1, Ordering::Relaxed);
        self.last_webhook_ms.fetch_max(now.timestamp_millis(), Ordering::Relaxed);
        let minute = now.timestamp().div_euclid(60);
        let mut ring = self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let bucket = &mut ring[minute.rem_euclid(RING_MINUTES as i64) as usize];
        if bucket.minute != minute {
            *bucket = Bucket { minute, ..Bucket::default() };
        }
        bucket.received += 1;
        if let Some(reason) = rejection {
            bucket.rejected += 1;
            if reason == Rejection::Signature {
                bucket.signature_failures += 1;
            }
        }
    }

    /// Counts over the last `minutes` minutes (the current minute included), at most an hour.
    pub fn window(&self, now: DateTime<Utc>, minutes: usize) -> WindowCounts {
        let current = now.timestamp().div_euclid(60);
        let oldest = current - minutes.clamp(1, RING_MINUTES) as i64 + 1;
        let ring = self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ring.iter().filter(|b| b.minute >= oldest && b.minute <= current).fold(WindowCounts::default(), |acc, b| {
            WindowCounts {
                received: acc.received + b.received,
                rejected: acc.rejected + b.rejected,
                signature_failures: acc.signature_failures + b.signature_failures,
            }
        })
    }

    /// Requests received and rejected in each of the last `minutes` whole minutes (at most an
    /// hour), oldest first, each with the minute's start; minutes without requests count 0.
    pub fn per_minute(&self, now: DateTime<Utc>, minutes: usize) -> Vec<(DateTime<Utc>, u64, u64)> {
        let minutes = minutes.min(RING_MINUTES) as i64;
        let current = now.timestamp().div_euclid(60);
        let ring = self.ring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        (current - minutes + 1..=current)
            .map(|minute| {
                let b = ring[minute.rem_euclid(RING_MINUTES as i64) as usize];
                let (received, rejected) = if b.minute == minute { (b.received, b.rejected) } else { (0, 0) };
                (DateTime::from_timestamp(minute * 60, 0).unwrap_or(now), received, rejected)
            })
            .collect()
    }

    /// Counts over the last hour.
    pub fn last_hour(&self, now: DateTime<Utc>) -> WindowCounts {
        self.window(now, RING_MINUTES)
    }

    /// When the last webhook request arrived, if any has.
    pub fn last_webhook(&self) -> Option<DateTime<Utc>> {
        match self.last_webhook_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => DateTime::from_timestamp_millis(ms),
        }
    }

    /// Requests since the process started: (received, rejected).
    pub fn totals(&self) -> (u64, u64) {
        (self.received_total.load(Ordering::Relaxed), self.rejected_total.load(Ordering::Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(minute: u32, second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 10, minute, second).unwrap()
    }

    #[test]
    fn windows_count_whole_minutes() {
        let stats = WebhookStats::new();
        stats.accepted_at(at(0, 5), 3);
        stats.rejected_at(at(0, 50), Rejection::Signature);
        stats.rejected_at(at(4, 0), Rejection::Malformed);
        stats.accepted_at(at(5, 1), 1);
        let five = stats.window(at(5, 30), 5);
        assert_eq!(five, WindowCounts { received: 2, rejected: 1, signature_failures: 0 });
        let hour = stats.last_hour(at(5, 30));
        assert_eq!(hour, WindowCounts { received: 4, rejected: 2, signature_failures: 1 });
        assert_eq!(stats.last_webhook(), Some(at(5, 1)));
        assert_eq!(stats.totals(), (4, 2));
    }

    #[test]
    fn old_minutes_fall_out_of_the_ring() {
        let stats = WebhookStats::new();
        stats.rejected_at(at(0, 0), Rejection::Signature);
        let later = at(0, 0) + chrono::Duration::minutes(61);
        assert_eq!(stats.last_hour(later), WindowCounts::default());
        // The same slot is reused for a new minute without mixing in the old counts.
        stats.accepted_at(at(0, 0) + chrono::Duration::minutes(60), 1);
        assert_eq!(stats.last_hour(later).received, 1);
        assert_eq!(stats.last_hour(later).signature_failures, 0);
    }

    #[test]
    fn no_webhook_yet() {
        assert_eq!(WebhookStats::new().last_webhook(), None);
    }
}

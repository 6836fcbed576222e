//! Counting one run: records handled and failed, the ids that failed and why, HubSpot's error
//! body when the run could not complete; turned into the `sync_logs` outcome at the end.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::hubspot::InvalidRecord;
use crate::objects::FailedRecord;
use crate::store::sync_logs::RunOutcome;

/// Failed ids kept in `error_details` (the count is always exact).
const MAX_LISTED: usize = 200;

/// Live counters of a running run, readable from elsewhere (the CLI's progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    pub records: AtomicU64,
    pub pages: AtomicU64,
    /// Expected records when known (a search's `total`), else 0.
    pub total: AtomicU64,
}

impl Progress {
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (self.records.load(Ordering::Relaxed), self.pages.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed))
    }
}

/// What a run has done so far.
#[derive(Debug, Default)]
pub struct Tally {
    pub processed: u64,
    pub failed: u64,
    pub pages: u64,
    failures: Vec<FailedRecord>,
    invalid: Vec<InvalidRecord>,
    /// Ids that failed (decode or store), so deletion detection leaves them alone.
    pub failed_ids: Vec<String>,
    /// The oldest last-modified time among records that failed to store and still hold the
    /// watermark (it stops there).
    pub earliest_failed: Option<DateTime<Utc>>,
    /// Parked records that failed too often to hold the watermark any longer (it moves past them).
    pub released: Vec<String>,
    /// Rows a full pass marked archived because HubSpot no longer returns them.
    pub archived_unseen: u64,
    /// Records outside `HUBSPOT_SYNC_CONFIG`'s filter (written archived), in `error_details`.
    pub filtered: u64,
    /// Failures of the earlier runs of a resumed full pass, counted in `failed` ([`Tally::carry`]).
    pub carried: u64,
    pub progress: Arc<Progress>,
}

impl Tally {
    pub fn new(progress: Arc<Progress>) -> Self {
        Self { progress, ..Self::default() }
    }

    /// Counts `n` pages more, written together with the last one counted (a full pass merges pages that waited).
    pub fn more_pages(&mut self, n: usize) {
        self.pages += n as u64;
        self.progress.pages.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Counts one page: `handled` records written or attempted, plus the failures, each with its
    /// last-modified time and whether it still holds the watermark.
    pub fn page(
        &mut self,
        handled: usize,
        failures: Vec<(FailedRecord, DateTime<Utc>, bool)>,
        invalid: Vec<InvalidRecord>,
    ) {
        self.pages += 1;
        let handled = (handled + invalid.len()) as u64;
        self.processed += handled;
        self.failed += (failures.len() + invalid.len()) as u64;
        self.progress.records.fetch_add(handled, Ordering::Relaxed);
        self.progress.pages.fetch_add(1, Ordering::Relaxed);
        for (failure, updated_at, holds) in failures {
            tracing::warn!(hubspot.id = %failure.id, reason = %failure.reason, holds_watermark = holds,
                "record could not be stored; parked");
            if holds {
                self.earliest_failed = Some(self.earliest_failed.map_or(updated_at, |t| t.min(updated_at)));
            } else if self.released.len() < MAX_LISTED {
                self.released.push(failure.id.clone());
            }
            self.failed_ids.push(failure.id.clone());
            if self.failures.len() < MAX_LISTED {
                self.failures.push(failure);
            }
        }
        for record in invalid {
            tracing::warn!(hubspot.id = ?record.id, reason = %record.reason, "record could not be read");
            self.failed_ids.extend(record.id.clone());
            if self.invalid.len() < MAX_LISTED {
                self.invalid.push(record);
            }
        }
    }

    /// Counts what the earlier runs of a resumed full pass could not read or store (before its
    /// checkpoint): this pass did not see them either, so they stay failed (the run is
    /// `partial`, deletion detection leaves them alone, the watermark stops at them).
    pub fn carry(&mut self, failed_ids: Vec<String>, earliest_failed: Option<DateTime<Utc>>) {
        let n = failed_ids.len() as u64;
        self.processed += n;
        self.failed += n;
        self.carried += n;
        if let Some(at) = earliest_failed {
            self.earliest_failed = Some(self.earliest_failed.map_or(at, |t| t.min(at)));
        }
        self.failed_ids.extend(failed_ids);
    }

    /// The `sync_logs` outcome; `fatal` is the error that stopped the run, with its details.
    pub fn outcome(&self, fatal: Option<(String, Value)>) -> RunOutcome {
        let has_details = fatal.is_some() || self.failed > 0 || self.archived_unseen > 0 || self.filtered > 0;
        let details = has_details.then(|| {
            json!({
                "pages": self.pages,
                "archived_unseen": self.archived_unseen,
                "filtered": self.filtered,
                "failed_before_resume": self.carried,
                "failed_ids": self.failed_ids.iter().take(MAX_LISTED).collect::<Vec<_>>(),
                "parked": self.failed_ids.len(),
                "watermark_released_ids": self.released,
                "store_failures": self.failures,
                "unreadable_records": self.invalid,
                "hubspot": fatal.as_ref().map(|(_, d)| d.clone()),
            })
        });
        RunOutcome {
            records_processed: i32::try_from(self.processed).unwrap_or(i32::MAX),
            records_failed: i32::try_from(self.failed).unwrap_or(i32::MAX),
            fatal_error: fatal.map(|(message, _)| message),
            details,
        }
    }
}

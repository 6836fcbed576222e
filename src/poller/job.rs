//! What one run works with, whatever its mode: the client, a connection, the tally, and the
//! page sink that writes records and counts what failed.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tokio::sync::mpsc;

use super::core::PollerOptions;
use super::tally::Tally;
use crate::hubspot::{HubSpot, HubSpotError, InvalidRecord, RecordPage};
use crate::kind::ObjectKind;
use crate::objects::{Prepared, SyncError, WriteContext, prepare, write_prepared};
use crate::store::records::{self, RecordTable};
use crate::store::sync_failures::{self, NewFailure};

/// One run's working set.
pub struct Job<'a> {
    pub kind: ObjectKind,
    pub hubspot: &'a HubSpot,
    pub conn: &'a mut AsyncPgConnection,
    pub options: &'a PollerOptions,
    /// The options' write context, with `read_since` the run's start (database clock): every
    /// page this run writes was read after it, so a live record revives a row archived before.
    pub write: WriteContext,
    pub tally: Tally,
}

impl Job<'_> {
    /// Writes one page; records the database refuses are counted, not fatal. Those, and
    /// unreadable records with an id, are parked in `sync_failures`; stored ones are un-parked.
    /// A refused record holds the watermark until it has failed
    /// [`PollerOptions::hold_watermark_attempts`] times.
    pub async fn store(&mut self, page: RecordPage) {
        self.store_page(page).await;
    }

    /// [`Job::store`], returning the ids of the live records it stored that the copy did not
    /// hold live before (new to it, or restored): their edges are still to be read.
    pub async fn store_noting_new(&mut self, page: RecordPage) -> Result<Vec<String>, SyncError> {
        let Some(table) = RecordTable::for_kind(self.kind) else {
            self.store_page(page).await;
            return Ok(Vec::new());
        };
        let live: Vec<String> = page.records.iter().filter(|r| !r.archived).map(|r| r.id.clone()).collect();
        let known: HashSet<String> = records::existing(self.conn, table, &live).await?.into_iter().collect();
        let failed = self.store_page(page).await;
        Ok(live.into_iter().filter(|id| !known.contains(id) && !failed.contains(id)).collect())
    }

    /// Writes one page; returns the ids of the records the database refused.
    async fn store_page(&mut self, page: RecordPage) -> HashSet<String> {
        let RecordPage { records, invalid, .. } = page;
        self.store_prepared(prepare(self.kind, records, &self.write), invalid).await
    }

    /// [`Job::store`] of records already mapped ([`prepare`] with this job's `write` context)
    /// and the unreadable records of their pages; returns the ids the database refused.
    pub async fn store_prepared(&mut self, prepared: Prepared, invalid: Vec<InvalidRecord>) -> HashSet<String> {
        let updated: HashMap<String, DateTime<Utc>> =
            prepared.records().iter().map(|r| (r.id.clone(), r.updated_at)).collect();
        let handled = prepared.records().len();
        let report = write_prepared(self.conn, prepared, &self.write).await;
        self.tally.filtered += report.filtered as u64;
        let failed_ids: HashSet<String> = report.failed.iter().map(|f| f.id.clone()).collect();
        let attempts = self.park(&updated, &report.failed, &invalid).await;
        let failures = report
            .failed
            .into_iter()
            .map(|f| {
                let at = updated.get(&f.id).copied().unwrap_or_else(Utc::now);
                // Unknown attempts (parking failed): the record holds the watermark.
                let holds = attempts.get(&f.id).is_none_or(|n| *n < self.options.hold_watermark_attempts);
                (f, at, holds)
            })
            .collect();
        self.tally.page(handled, failures, invalid);
        failed_ids
    }

    /// Parks what failed and un-parks what was stored; returns the attempts of each parked id.
    /// Nothing is parked while the database itself is unreachable (the run fails on its own).
    async fn park(
        &mut self,
        updated: &HashMap<String, DateTime<Utc>>,
        failed: &[crate::objects::FailedRecord],
        invalid: &[crate::hubspot::InvalidRecord],
    ) -> HashMap<String, i32> {
        let object = self.kind.as_str();
        let mut parked: Vec<NewFailure> = failed
            .iter()
            .map(|f| NewFailure {
                hubspot_id: f.id.clone(),
                error: f.reason.clone(),
                updated_at: updated.get(&f.id).copied(),
            })
            .collect();
        parked.extend(
            invalid.iter().filter_map(|r| {
                Some(NewFailure { hubspot_id: r.id.clone()?, error: r.reason.clone(), updated_at: None })
            }),
        );
        if !failed.is_empty() && crate::store::ping_conn(self.conn).await.is_err() {
            return HashMap::new();
        }
        let stored: Vec<String> =
            updated.keys().filter(|id| !parked.iter().any(|p| &p.hubspot_id == *id)).cloned().collect();
        if let Err(e) = sync_failures::clear(self.conn, object, &stored).await {
            tracing::warn!(object.kind = object, error = %e, "stored records not un-parked");
        }
        match sync_failures::park(self.conn, object, &parked, self.options.parked_backoff).await {
            Ok(attempts) => {
                let n = parked.len() as u64;
                if n > 0 {
                    metrics::counter!(crate::metric::RECORDS_PARKED, "object" => object).increment(n);
                }
                attempts.into_iter().collect()
            }
            Err(e) => {
                tracing::warn!(object.kind = object, error = %e, "failed records not parked");
                HashMap::new()
            }
        }
    }
}

/// A page and the cursor that follows it (`None` after the last page).
pub type Fetched<C, P = RecordPage> = Result<(P, Option<C>), HubSpotError>;

/// Aborts the page fetcher when the run stops early.
pub struct Fetcher(tokio::task::JoinHandle<()>);

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Fetches pages ahead of the writer (at most `depth` waiting, so memory stays bounded): the
/// next request is in flight while the previous page is written.
pub fn fetch_ahead<C, P, F, Fut>(first: C, depth: usize, mut fetch: F) -> (mpsc::Receiver<Fetched<C, P>>, Fetcher)
where
    C: Clone + Send + 'static,
    P: Send + 'static,
    F: FnMut(C) -> Fut + Send + 'static,
    Fut: Future<Output = Fetched<C, P>> + Send,
{
    let (tx, rx) = mpsc::channel(depth.max(1));
    let task = crate::telemetry::account::spawn(async move {
        let mut cursor = first;
        loop {
            let fetched = fetch(cursor).await;
            let next = match &fetched {
                Ok((_, Some(next))) => Some(next.clone()),
                _ => None,
            };
            if tx.send(fetched).await.is_err() {
                return;
            }
            match next {
                Some(next) => cursor = next,
                None => return,
            }
        }
    });
    (rx, Fetcher(task))
}

//! What one run works with, whatever its mode: the client, a connection, the tally, and the
//! page sink that writes records and counts what failed.

use std::collections::HashMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tokio::sync::mpsc;

use super::core::PollerOptions;
use super::tally::Tally;
use crate::hubspot::{HubSpot, HubSpotError, InvalidRecord, RecordPage};
use crate::kind::ObjectKind;
use crate::objects::{Prepared, WriteContext, prepare, write_prepared};
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
        let ready = ReadyPage::new(self.kind, page, &self.write);
        self.store_ready(ready, 1).await;
    }

    /// [`Job::store`] of a page mapped beforehand, or of `pages` pages merged into one
    /// ([`Gathered::next`]): one write, counted as that many pages.
    pub async fn store_ready(&mut self, page: ReadyPage, pages: usize) {
        let ReadyPage { prepared, invalid } = page;
        let updated: HashMap<String, DateTime<Utc>> =
            prepared.records().iter().map(|r| (r.id.clone(), r.updated_at)).collect();
        let handled = prepared.records().len();
        let report = write_prepared(self.conn, prepared, &self.write).await;
        self.tally.filtered += report.filtered as u64;
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
        self.tally.more_pages(pages.saturating_sub(1));
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

/// A page whose records are mapped to rows ([`prepare`]), and its unreadable records.
pub struct ReadyPage {
    pub prepared: Prepared,
    pub invalid: Vec<InvalidRecord>,
}

impl ReadyPage {
    /// `page`'s records of `kind` mapped with `write`'s filter.
    pub fn new(kind: ObjectKind, page: RecordPage, write: &WriteContext) -> Self {
        Self { prepared: prepare(kind, page.records, write), invalid: page.invalid }
    }

    fn len(&self) -> usize {
        self.prepared.records().len()
    }

    fn append(&mut self, other: ReadyPage) {
        self.prepared.append(other.prepared);
        self.invalid.extend(other.invalid);
    }
}

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
    let task = tokio::spawn(async move {
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

/// Pages of a full pass fetched ahead of the writer: enough to fill one [`GATHER_RECORDS`] write.
pub const GATHER_AHEAD: usize = 10;

/// Most records written together when pages wait for the writer: the largest upsert statement
/// (`store::records::MAX_BATCH`).
pub const GATHER_RECORDS: usize = crate::store::records::MAX_BATCH;

/// Pages read from [`fetch_ahead`] and merged while they wait: when the database is slower than
/// HubSpot, the pages that arrived during one write are written by the next as one statement
/// (one upsert, one un-parking, one checkpoint instead of one per page); when it is faster,
/// every page is written as it comes, as before.
pub struct Gathered<C> {
    pages: mpsc::Receiver<Fetched<C, ReadyPage>>,
    /// A page (or error) taken from the channel that did not fit the last merge.
    held: Option<Fetched<C, ReadyPage>>,
}

impl<C> Gathered<C> {
    pub fn new(pages: mpsc::Receiver<Fetched<C, ReadyPage>>) -> Self {
        Self { pages, held: None }
    }

    /// The next page, merged with those already waiting behind it (at most `max_records`
    /// records, unless one page alone has more): its records and invalid records in order, the
    /// cursor after the last one merged, and how many pages were merged. An error is returned
    /// after the pages before it, on its own.
    pub async fn next(&mut self, max_records: usize) -> Option<(Fetched<C, ReadyPage>, usize)> {
        let first = match self.held.take() {
            Some(held) => held,
            None => self.pages.recv().await?,
        };
        let (mut page, mut next) = match first {
            Ok(first) => first,
            Err(e) => return Some((Err(e), 1)),
        };
        let mut merged = 1;
        while next.is_some() {
            let Ok(waiting) = self.pages.try_recv() else { break };
            match waiting {
                Ok((more, after)) if page.len() + more.len() <= max_records => {
                    page.append(more);
                    next = after;
                    merged += 1;
                }
                other => {
                    self.held = Some(other);
                    break;
                }
            }
        }
        Some((Ok((page, next)), merged))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::Record;

    fn page(ids: std::ops::Range<u32>) -> ReadyPage {
        let records = ids
            .map(|i| Record {
                id: i.to_string(),
                properties: Default::default(),
                created_at: None,
                updated_at: Utc::now(),
                archived: false,
            })
            .collect();
        let page = RecordPage {
            records,
            invalid: vec![InvalidRecord { id: None, reason: "odd".into() }],
            ..RecordPage::default()
        };
        ReadyPage::new(ObjectKind::Calls, page, &WriteContext::default())
    }

    fn ids(page: &ReadyPage) -> Vec<String> {
        page.prepared.records().iter().map(|r| r.id.clone()).collect()
    }

    fn range(from: u32, to: u32) -> Vec<String> {
        (from..to).map(|i| i.to_string()).collect()
    }

    #[tokio::test]
    async fn waiting_pages_are_merged_in_order_up_to_the_cap() {
        let (tx, rx) = mpsc::channel::<Fetched<u32, ReadyPage>>(10);
        for (n, next) in [(0, Some(1)), (1, Some(2)), (2, Some(3)), (3, None)] {
            tx.send(Ok((page(n * 100..n * 100 + 100), next))).await.unwrap();
        }
        drop(tx);
        let mut gathered = Gathered::new(rx);
        let (first, merged) = gathered.next(250).await.unwrap();
        let (first, next) = first.unwrap();
        assert_eq!((merged, next), (2, Some(2)), "a third page would pass 250 records");
        assert_eq!(ids(&first), range(0, 200));
        assert_eq!(first.invalid.len(), 2);
        let (second, merged) = gathered.next(250).await.unwrap();
        let (second, next) = second.unwrap();
        assert_eq!((merged, next), (2, None), "the page held back comes first, with the last one");
        assert_eq!(ids(&second), range(200, 400));
        assert!(gathered.next(250).await.is_none());
    }

    #[tokio::test]
    async fn a_page_that_is_not_waiting_is_not_awaited() {
        let (tx, rx) = mpsc::channel::<Fetched<u32, ReadyPage>>(10);
        tx.send(Ok((page(0..100), Some(1)))).await.unwrap();
        let mut gathered = Gathered::new(rx);
        let (first, merged) = gathered.next(1_000).await.unwrap();
        assert_eq!(merged, 1);
        assert_eq!(first.unwrap().1, Some(1));
        tx.send(Ok((page(100..200), None))).await.unwrap();
        let (second, merged) = gathered.next(1_000).await.unwrap();
        assert_eq!(merged, 1);
        assert_eq!(ids(&second.unwrap().0), range(100, 200));
    }

    #[tokio::test]
    async fn an_error_comes_after_the_pages_before_it_and_alone() {
        let (tx, rx) = mpsc::channel::<Fetched<u32, ReadyPage>>(10);
        tx.send(Ok((page(0..100), Some(1)))).await.unwrap();
        tx.send(Ok((page(100..200), Some(2)))).await.unwrap();
        tx.send(Err(HubSpotError::NotFound { message: "gone".into() })).await.unwrap();
        drop(tx);
        let mut gathered = Gathered::new(rx);
        let (first, merged) = gathered.next(1_000).await.unwrap();
        let (first, next) = first.unwrap();
        assert_eq!((merged, next), (2, Some(2)), "the cursor after the last page written, not past the error");
        assert_eq!(ids(&first), range(0, 200));
        let (error, merged) = gathered.next(1_000).await.unwrap();
        assert!(matches!(error, Err(HubSpotError::NotFound { .. })));
        assert_eq!(merged, 1);
        assert!(gathered.next(1_000).await.is_none());
    }
}

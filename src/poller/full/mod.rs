//! A full pass: every archived record (archived list), and every live one (list and search
//! pages), written page by page as they arrive. After each page the position is saved in `sync_state`, so an
//! interrupted pass resumes there (the pass keeps its original start time).
//!
//! Deletions: archived records come back with `archived = true` and are stored so. Records
//! HubSpot no longer returns at all (merged away, permanently deleted) are found at the end:
//! every record the pass saw was written after the pass started (or is newer already), so a
//! live row not written since then was not seen, and is marked archived, except the ids the pass
//! could not read or store. Those are saved with each checkpoint, so a resumed pass knows the
//! failures of the runs before it too (it never archives them, and says `partial`).
//!
//! After the records, the associations of every live record are read again (v4 batch read,
//! `Bulk` lane): edges HubSpot no longer reports are marked removed, and so are the edges of
//! archived records. The records part holds [`HubSpot::records_part`], so these reads wait until
//! every pass still running has its records (a bulk read taking a slot while a walker's page is
//! in flight delayed the records part by about a tenth at 100 requests / 10 s).
//!
//! Live ids are read by two walkers (`plan`): list pages from the lowest id, search pages of 200
//! (`hs_object_id` ranges) from the highest, claimed so both end together; the checkpoint holds
//! both. Each walker maps its pages to rows as they arrive (`objects::prepare`), so the writer
//! only binds and sends; the few records of a list page the plan gives to the searches are
//! dropped, with their rows, when the page is written (`Prepared::retain`). Rows in the searched
//! ids that a pass did not see are read again (batch read) before they are archived, as a search
//! index trails writes by a few seconds.
//!
//! The property list is read again at the start of every pass, so custom properties created
//! since the last read are fetched.

mod plan;

use crate::telemetry::account;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use super::core::lock;
use super::job::Job;
use crate::hubspot::{HubSpot, HubSpotError, InvalidRecord, Lane, RecordPage};
use crate::kind::ObjectKind;
use crate::objects::associations as edges;
use crate::objects::{Prepared, SyncError, WriteContext, prepare};
use crate::store::{associations, records, sync_state};
use plan::{Checkpoint, Effect, Plan, SearchStep};

/// Where to start: a saved checkpoint (with the failures before it, carried into the tally), or
/// the beginning (saved as one).
async fn start(job: &mut Job<'_>) -> Result<(DateTime<Utc>, Checkpoint), SyncError> {
    let kind = job.kind.as_str();
    let state = sync_state::get(job.conn, kind).await?;
    let saved = state.and_then(|s| {
        let checkpoint = Checkpoint::decode(s.full_cursor.as_deref()?)?;
        Some((s.full_started_at?, checkpoint, s.full_failed_ids, s.full_earliest_failed))
    });
    if let Some((started, checkpoint, failed_ids, earliest_failed)) = saved {
        tracing::info!(
            object.kind = kind, position = %checkpoint.encode(), failed_before = failed_ids.len(),
            "resuming an interrupted full sync"
        );
        job.tally.carry(failed_ids, earliest_failed);
        return Ok((started, checkpoint));
    }
    let started = crate::store::db_now(job.conn).await?;
    sync_state::save_full_checkpoint(job.conn, kind, Some(&Checkpoint::START.encode()), started).await?;
    Ok((started, Checkpoint::START))
}

/// A fetched page, mapped to rows on the walker's task (so the writer only binds and sends),
/// with its unreadable records and what writing it does to the checkpoint.
struct Page {
    rows: Prepared,
    invalid: Vec<InvalidRecord>,
    effect: Effect,
}

/// A fetched page, or why fetching stopped.
type Fetched = Result<Page, HubSpotError>;

/// What a walker needs to fetch and map pages.
#[derive(Clone)]
struct Walker {
    hubspot: HubSpot,
    kind: ObjectKind,
    write: WriteContext,
    plan: Arc<Mutex<Plan>>,
    tx: mpsc::Sender<Fetched>,
}

impl Walker {
    /// Maps a fetched page's records and sends it to the writer; false when the walk is over
    /// (the writer stopped, or the fetch failed).
    async fn send(&self, fetched: Result<(RecordPage, Effect), HubSpotError>) -> bool {
        let fetched = fetched.map(|(page, effect)| Page {
            rows: prepare(self.kind, page.records, &self.write),
            invalid: page.invalid,
            effect,
        });
        let failed = fetched.is_err();
        self.tx.send(fetched).await.is_ok() && !failed
    }
}

/// Aborts the walkers when the pass stops early.
struct Walkers(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Walkers {
    fn drop(&mut self) {
        for walker in &self.0 {
            walker.abort();
        }
    }
}

/// Runs (or resumes) a full pass: a list walker and a search walker fetch and map ahead (at
/// most [`GATHER_AHEAD`] pages waiting, so memory stays bounded) and this task writes the pages
/// and saves the checkpoint after each write. Pages that arrived while the last write ran are
/// written together (up to [`GATHER_RECORDS`] records: one upsert, one un-parking, one
/// checkpoint), each first judged by the plan in the order it came, as if written alone.
pub async fn run(job: &mut Job<'_>) -> Result<(), SyncError> {
    // Until the records are done, association reads (of passes already past theirs) wait.
    let records_part = job.hubspot.records_part();
    if let Err(e) = job.hubspot.refresh_properties(job.kind).await {
        tracing::warn!(object.kind = %job.kind, error = %e, "cannot re-read the property list before a full sync");
    }
    let (started, first) = start(job).await?;
    let kind = job.kind;
    let searching = records::RecordTable::for_kind(kind).is_some();
    let plan = Arc::new(Mutex::new(Plan::new(first, job.hubspot.search_share(), searching)));
    let (tx, mut pages) = mpsc::channel(GATHER_AHEAD);
    let walker = Walker { hubspot: job.hubspot.clone(), kind, write: job.write.clone(), plan: plan.clone(), tx };
    let _walkers = Walkers(vec![account::spawn(walk_list(walker.clone())), account::spawn(walk_searches(walker))]);
    let mut held = None;
    // Where the writer's time goes (logged at the end): waiting for pages, or writing them.
    let (mut waited, mut wrote, mut writes) = (Duration::ZERO, Duration::ZERO, 0u32);
    loop {
        let asked = Instant::now();
        let first = match held.take() {
            Some(first) => first,
            None => match pages.recv().await {
                Some(first) => first,
                None => break,
            },
        };
        waited += asked.elapsed();
        let writing = Instant::now();
        let mut batch: Option<Prepared> = None;
        let mut invalid = Vec::new();
        let mut merged = 0;
        let mut next = Some(first);
        while let Some(fetched) = next.take() {
            take_page(&plan, &mut batch, &mut invalid, fetched?);
            merged += 1;
            let gathered = batch.as_ref().map_or(0, |b| b.records().len());
            next = match pages.try_recv() {
                Ok(Ok(page)) if gathered + page.rows.records().len() <= GATHER_RECORDS => Some(Ok(page)),
                Ok(other) => {
                    held = Some(other);
                    None
                }
                Err(_) => None,
            };
        }
        job.tally.more_pages(merged - 1);
        let failed_before = job.tally.failed_ids.len();
        if let Some(batch) = batch {
            job.store_prepared(batch, invalid).await;
        }
        let checkpoint = lock(&plan).checkpoint();
        if !checkpoint.is_done() {
            let failed = &job.tally.failed_ids[failed_before..];
            let earliest = job.tally.earliest_failed;
            sync_state::advance_full_checkpoint(job.conn, kind.as_str(), &checkpoint.encode(), failed, earliest)
                .await?;
        }
        wrote += writing.elapsed();
        writes += 1;
    }
    tracing::info!(
        object.kind = %kind, writes, waiting_ms = waited.as_millis() as u64, writing_ms = wrote.as_millis() as u64,
        "full pass: the records written"
    );
    let left = lock(&plan).checkpoint();
    if !left.is_done() {
        // Both walkers stopped with ids left: never archive what was not read.
        return Err(SyncError::Incomplete(left.encode()));
    }
    if let Some(boundary) = left.boundary {
        reread_unseen(job, started, boundary).await?;
    }
    finish(job, started).await?;
    drop(records_part);
    read_all_edges(job).await
}

/// Adds a fetched page to the batch being gathered: the records the plan keeps of it (a list
/// page mapped before the searches claimed part of it loses that part here), and its effect on
/// the plan (the checkpoint is saved only once the batch is written).
fn take_page(plan: &Mutex<Plan>, batch: &mut Option<Prepared>, invalid: &mut Vec<InvalidRecord>, page: Page) {
    let Page { mut rows, invalid: unreadable, effect } = page;
    let mut plan = lock(plan);
    rows.retain(|record| plan.keeps(&effect, record));
    plan.apply(effect);
    invalid.extend(unreadable);
    match batch {
        Some(batch) => batch.append(rows),
        None => *batch = Some(rows),
    }
}

/// Pages fetched ahead of the writer (both walkers together): enough to fill one write.
const GATHER_AHEAD: usize = 20;

/// Most records written together when pages wait for the writer: two upsert statements,
/// pipelined (`store::records::upsert_rows`), one un-parking and one checkpoint.
const GATHER_RECORDS: usize = 2 * crate::store::records::MAX_BATCH;

/// Reads again (batch reads of live records) the rows searches should have seen and did not,
/// before they are archived as unseen: a search index a few seconds behind can miss a record
/// changed or created just before; what HubSpot still has is stored, the rest is archived.
async fn reread_unseen(job: &mut Job<'_>, started: DateTime<Utc>, boundary: u64) -> Result<(), SyncError> {
    let Some(table) = records::RecordTable::for_kind(job.kind) else { return Ok(()) };
    let unseen = records::unseen_above(job.conn, table, started, boundary).await?;
    if unseen.is_empty() {
        return Ok(());
    }
    let read = job.hubspot.batch_read(job.kind, &unseen, Lane::Background).await?;
    tracing::info!(
        object.kind = %job.kind, unseen = unseen.len(), still_live = read.records.len(),
        "read again the records the searches did not return"
    );
    job.store(RecordPage { records: read.records, invalid: read.invalid, next: None, total: None }).await;
    Ok(())
}

/// The list walker: archived pages, then live ones up to the boundary.
async fn walk_list(walker: Walker) {
    loop {
        let Some((archived, after)) = lock(&walker.plan).next_list() else { return };
        let fetched =
            walker.hubspot.list_page(walker.kind, after.as_deref(), archived, Lane::Background).await.map(|page| {
                let effect = lock(&walker.plan).list_fetched(archived, &page.records, page.next.clone());
                (page, effect)
            });
        if !walker.send(fetched).await {
            return;
        }
    }
}

/// How long the search walker waits for the list to tell it more (its first live page).
const WAIT: Duration = Duration::from_millis(20);

/// The search walker: the highest ids, then ranges claimed downwards, each read upwards.
async fn walk_searches(walker: Walker) {
    let (hubspot, kind, plan) = (&walker.hubspot, walker.kind, &walker.plan);
    loop {
        let step = lock(plan).next_search();
        let fetched = match step {
            SearchStep::Finished => return,
            SearchStep::Wait => {
                tokio::time::sleep(WAIT).await;
                continue;
            }
            SearchStep::Top => hubspot.search_top(kind, Lane::Background).await.map(|mut page| {
                let (effect, kept) = lock(plan).top_fetched(std::mem::take(&mut page.records), page.total);
                page.records = kept;
                (page, effect)
            }),
            SearchStep::Range(range) => {
                hubspot.search_id_range(kind, range.after, range.upto, Lane::Background).await.map(|page| {
                    let next = page.next.as_deref().and_then(|id| id.parse().ok());
                    let effect = lock(plan).range_fetched(&range, next, page.total);
                    (page, effect)
                })
            }
        };
        if !walker.send(fetched).await {
            return;
        }
    }
}

/// Marks unseen records archived and closes the pass.
async fn finish(job: &mut Job<'_>, started: DateTime<Utc>) -> Result<(), SyncError> {
    if let Some(table) = records::RecordTable::for_kind(job.kind) {
        let gone = records::archive_unseen(job.conn, table, started, &job.tally.failed_ids).await?;
        if gone > 0 {
            tracing::info!(object.kind = %job.kind, records = gone, "marked records HubSpot no longer returns as archived");
        }
        job.tally.archived_unseen = gone as u64;
    }
    let watermark = job.tally.earliest_failed.map_or(started, |t| t.min(started));
    sync_state::complete_full_sync(job.conn, job.kind.as_str(), watermark).await?;
    Ok(())
}

/// Reads the associations of every live record of the kind (to the other kinds and companies)
/// and marks removed the edges HubSpot no longer reports, and those of archived records.
async fn read_all_edges(job: &mut Job<'_>) -> Result<(), SyncError> {
    let Some(table) = records::RecordTable::for_kind(job.kind) else { return Ok(()) };
    let ids = associations::live_ids(job.conn, table.name(), table.key(), None).await?;
    // `Bulk`: they give way to the records of passes still running (other objects').
    let report = edges::sync_edges(job.hubspot, job.conn, job.kind, &ids, Lane::Bulk).await?;
    let archived = edges::remove_edges_of_archived(job.conn, job.kind).await?;
    tracing::info!(
        object.kind = %job.kind, records = report.records, edges_written = report.written,
        edges_removed = report.removed + archived, records_failed = report.failed,
        "read the associations of every live record"
    );
    Ok(())
}

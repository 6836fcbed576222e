//! A full pass: every live record, then every archived one, from the list API, written page by
//! page as they arrive (pages that arrived while the last write ran are written together, up to
//! 1,000 records: `job::Gathered`). After each write the position is saved in `sync_state`, so
//! an interrupted pass resumes there (the pass keeps its original start time).
//!
//! Deletions: archived records come back with `archived = true` and are stored so. Records
//! HubSpot no longer returns at all (merged away, permanently deleted) are found at the end:
//! every record the pass saw was written after the pass started (or is newer already), so a
//! live row not written since then was not seen, and is marked archived, except the ids the pass
//! could not read or store. Those are saved with each checkpoint, so a resumed pass knows the
//! failures of the runs before it too (it never archives them, and says `partial`).
//!
//! After the records, the associations of every live record are read again (v4 batch read,
//! `Background` lane): edges HubSpot no longer reports are marked removed, and so are the edges
//! of archived records.
//!
//! The property list is read again at the start of every pass, so custom properties created
//! since the last read are fetched.

use chrono::{DateTime, Utc};

use super::job::{GATHER_AHEAD, GATHER_RECORDS, Gathered, Job, ReadyPage, fetch_ahead};
use crate::hubspot::Lane;
use crate::objects::SyncError;
use crate::objects::associations as edges;
use crate::store::{associations, records, sync_state};

/// Where a pass is: which list, and HubSpot's cursor within it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    pub archived: bool,
    pub after: Option<String>,
}

impl Position {
    pub const START: Position = Position { archived: false, after: None };

    /// `live:<after>` or `archived:<after>`, as kept in `sync_state.full_cursor`.
    pub fn encode(&self) -> String {
        let list = if self.archived { "archived" } else { "live" };
        format!("{list}:{}", self.after.as_deref().unwrap_or(""))
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let (list, after) = raw.split_once(':')?;
        let after = (!after.is_empty()).then(|| after.to_owned());
        match list {
            "live" => Some(Self { archived: false, after }),
            "archived" => Some(Self { archived: true, after }),
            _ => None,
        }
    }

    /// The position after a page whose next cursor is `next`; `None` when the pass is done.
    pub fn then(&self, next: Option<String>) -> Option<Self> {
        match (next, self.archived) {
            (Some(after), archived) => Some(Self { archived, after: Some(after) }),
            (None, false) => Some(Self { archived: true, after: None }),
            (None, true) => None,
        }
    }
}

/// Where to start: a saved checkpoint (with the failures before it, carried into the tally), or
/// the beginning (saved as one).
async fn start(job: &mut Job<'_>) -> Result<(DateTime<Utc>, Position), SyncError> {
    let kind = job.kind.as_str();
    let state = sync_state::get(job.conn, kind).await?;
    let saved = state.and_then(|s| {
        let position = Position::decode(s.full_cursor.as_deref()?)?;
        Some((s.full_started_at?, position, s.full_failed_ids, s.full_earliest_failed))
    });
    if let Some((started, position, failed_ids, earliest_failed)) = saved {
        tracing::info!(
            object.kind = kind, position = %position.encode(), failed_before = failed_ids.len(),
            "resuming an interrupted full sync"
        );
        job.tally.carry(failed_ids, earliest_failed);
        return Ok((started, position));
    }
    let started = crate::store::db_now(job.conn).await?;
    sync_state::save_full_checkpoint(job.conn, kind, Some(&Position::START.encode()), started).await?;
    Ok((started, Position::START))
}

/// Runs (or resumes) a full pass.
pub async fn run(job: &mut Job<'_>) -> Result<(), SyncError> {
    if let Err(e) = job.hubspot.refresh_properties(job.kind).await {
        tracing::warn!(object.kind = %job.kind, error = %e, "cannot re-read the property list before a full sync");
    }
    let (started, first) = start(job).await?;
    let (kind, hubspot, write) = (job.kind, job.hubspot.clone(), job.write.clone());
    // Pages are mapped to rows as they arrive, while the writer waits for the database.
    let (pages, _fetcher) = fetch_ahead(first, GATHER_AHEAD, move |position: Position| {
        let (hubspot, write) = (hubspot.clone(), write.clone());
        async move {
            let page = hubspot.list_page(kind, position.after.as_deref(), position.archived, Lane::Background).await?;
            let next = position.then(page.next.clone());
            Ok((ReadyPage::new(kind, page, &write), next))
        }
    });
    let mut pages = Gathered::new(pages);
    while let Some((fetched, merged)) = pages.next(GATHER_RECORDS).await {
        let (page, next) = fetched?;
        let failed_before = job.tally.failed_ids.len();
        job.store_ready(page, merged).await;
        if let Some(next) = next {
            let failed = &job.tally.failed_ids[failed_before..];
            let earliest = job.tally.earliest_failed;
            sync_state::advance_full_checkpoint(job.conn, kind.as_str(), &next.encode(), failed, earliest).await?;
        }
    }
    finish(job, started).await
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
    read_all_edges(job).await
}

/// Reads the associations of every live record of the kind (to the other kinds and companies)
/// and marks removed the edges HubSpot no longer reports, and those of archived records.
async fn read_all_edges(job: &mut Job<'_>) -> Result<(), SyncError> {
    let Some(table) = records::RecordTable::for_kind(job.kind) else { return Ok(()) };
    let ids = associations::live_ids(job.conn, table.name(), table.key(), None).await?;
    let report = edges::sync_edges(job.hubspot, job.conn, job.kind, &ids, Lane::Background).await?;
    let archived = edges::remove_edges_of_archived(job.conn, job.kind).await?;
    tracing::info!(
        object.kind = %job.kind, records = report.records, edges_written = report.written,
        edges_removed = report.removed + archived, records_failed = report.failed,
        "read the associations of every live record"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_and_advance() {
        for p in [Position::START, Position { archived: true, after: Some("123".into()) }] {
            assert_eq!(Position::decode(&p.encode()), Some(p));
        }
        assert_eq!(Position::decode("bogus"), None);
        let live = Position { archived: false, after: Some("5".into()) };
        assert_eq!(live.then(Some("9".into())), Some(Position { archived: false, after: Some("9".into()) }));
        assert_eq!(live.then(None), Some(Position { archived: true, after: None }));
        assert_eq!(Position { archived: true, after: None }.then(None), None);
    }
}

//! One batch: ids in, one batch read, one upsert, archive what HubSpot no longer has.
//!
//! Reading the answer (docs/hubspot.md §3.3, §6): records come back by id, in no promised order;
//! an id answered under another id was merged into that record (found through the survivor's
//! `hs_merged_object_ids`, else by reading the id alone); an id HubSpot does not find live whose
//! deletion or merge a webhook already announced (`crate::queue::Queue::known_gone`) is archived
//! from that event, with no second read; the other ids not found live are read again among
//! archived records: found there, they are written as archived (with HubSpot's own
//! `updatedAt`); found nowhere (permanently deleted), their rows are marked archived, unless only
//! association changes named them (an association event proves nothing about its ends).
//!
//! Poison records never fail the batch: a per-id error in HubSpot's 207 answer (other than
//! not-found), a record that does not decode, and a record the database refuses are **parked**
//! in `sync_failures` (retried with backoff by the fetcher's retry loop) while the rest of the
//! batch is stored; every other asked id is un-parked. Only a failure of the whole read or of
//! the database itself fails the batch (it then goes back to the queue).

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;

use crate::hubspot::{HubSpot, InvalidRecord, Lane, Record};
use crate::kind::ObjectKind;
use crate::objects::{self, SyncError, WriteContext};
use crate::queue::{Gone, Queue};
use crate::store::associations;
use crate::store::records::{self, RecordTable};
use crate::store::sync_failures::{self, Backoff, NewFailure};
use crate::store::{Pool, ping_conn};

/// What one batch did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// Records HubSpot returned (live and archived).
    pub fetched: usize,
    /// Rows inserted or changed by the upsert.
    pub written: usize,
    /// Asked ids that were merged into another record.
    pub merged: usize,
    /// Asked ids HubSpot no longer has at all.
    pub gone: usize,
    /// HubSpot requests made.
    pub requests: usize,
    /// Asked ids that could not be read or stored, parked in `sync_failures`.
    pub parked: usize,
    /// Asked ids not found live whose deletion or merge a webhook had announced: archived from
    /// it, without an archived read.
    pub known_gone: usize,
    /// `(id, updatedAt in Unix ms)` of every record read and stored: the changes they cover
    /// need no other read (`crate::queue::Queue::settle`).
    pub versions: Vec<(String, i64)>,
}

/// Asked ids that came back under another id, paired with that id.
fn merged_ids(asked: &[String], records: &[Record], not_found: &[String]) -> (Vec<(String, String)>, Vec<String>) {
    let returned: HashSet<&str> = records.iter().map(|r| r.id.as_str()).collect();
    let missing: HashSet<&str> = not_found.iter().map(String::as_str).collect();
    let mut merged = Vec::new();
    let mut unresolved = Vec::new();
    for id in asked {
        if returned.contains(id.as_str()) || missing.contains(id.as_str()) {
            continue;
        }
        let survivor = records.iter().find(|r| {
            r.prop("hs_merged_object_ids").is_some_and(|list| list.split(';').any(|old| old.trim() == id.as_str()))
        });
        match survivor {
            Some(r) => merged.push((id.clone(), r.id.clone())),
            None if asked.len() == 1 && records.len() == 1 => merged.push((id.clone(), records[0].id.clone())),
            None => unresolved.push(id.clone()),
        }
    }
    (merged, unresolved)
}

/// Per-id read errors and undecodable records as failures to park (those without an id can only
/// be logged).
fn unreadable(kind: ObjectKind, invalid: Vec<InvalidRecord>, into: &mut Vec<NewFailure>) {
    for record in invalid {
        match record.id {
            Some(id) => into.push(NewFailure { hubspot_id: id, error: record.reason, updated_at: None }),
            None => tracing::warn!(object.kind = %kind, reason = %record.reason, "record without id not usable"),
        }
    }
}

/// The database's clock now, on a connection given back at once (the read that follows may be
/// slow).
async fn db_clock(pool: &Pool) -> Result<chrono::DateTime<Utc>, SyncError> {
    let mut conn = pool.get().await?;
    Ok(crate::store::db_now(&mut conn).await?)
}

/// What every batch read uses.
pub struct Reader<'a> {
    pub hubspot: &'a HubSpot,
    pub pool: &'a Pool,
    /// Where deletions and merges announced by webhooks are remembered.
    pub queue: &'a Queue,
    pub write: &'a WriteContext,
    /// Backoff of parked records.
    pub backoff: Backoff,
    /// The budget lane of the reads.
    pub lane: Lane,
    /// Bounds the background edge reads ([`read_first_edges`]).
    pub edge_readers: &'a std::sync::Arc<tokio::sync::Semaphore>,
}

/// Fetches and stores one batch of ids of one kind. Ids in `associated` were named only by
/// association changes: one HubSpot does not find is left alone, never archived (unless a
/// webhook announced its deletion or merge).
pub async fn run(
    kind: ObjectKind,
    ids: &[String],
    associated: &HashSet<String>,
    reader: &Reader<'_>,
) -> Result<Outcome, SyncError> {
    let Reader { hubspot, pool, queue, write: ctx, backoff, lane, edge_readers } = *reader;
    let Some(table) = RecordTable::for_kind(kind) else { return Ok(Outcome::default()) };
    // When this batch's reads start, on the database's clock: a row archived before it that
    // HubSpot answers live was restored, whatever its `updatedAt` (HubSpot need not move it).
    let started = db_clock(pool).await?;
    let ctx = &WriteContext { read_since: Some(started), ..ctx.clone() };
    let mut outcome = Outcome { requests: 1, ..Outcome::default() };
    // The dispatcher reserved this call's budget slot before it took the ids.
    let read = hubspot.batch_read_reserved(kind, ids, lane).await?;
    let mut records = read.records;
    let mut failed = Vec::new();
    unreadable(kind, read.invalid, &mut failed);
    let unreadable_ids: HashSet<&str> = failed.iter().map(|f| f.hubspot_id.as_str()).collect();
    let asked: Vec<String> = ids.iter().filter(|id| !unreadable_ids.contains(id.as_str())).cloned().collect();
    let (mut merged, unresolved) = merged_ids(&asked, &records, &read.not_found);
    // Rare: several ids merged into records that do not list them; ask for each alone.
    for id in unresolved {
        outcome.requests += 1;
        let alone = hubspot.batch_read(kind, std::slice::from_ref(&id), lane).await?;
        if let [survivor] = &alone.records[..] {
            merged.push((id, survivor.id.clone()));
        }
        records.extend(alone.records);
        unreadable(kind, alone.invalid, &mut failed);
    }
    let mut gone = Vec::new();
    let mut deleted: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let known = queue.known_gone(kind, &read.not_found);
    outcome.known_gone = known.len();
    let known_ids: HashSet<String> = known.iter().map(|(id, _)| id.clone()).collect();
    for (id, how) in known {
        match how {
            Gone::Deleted(at) => deleted.entry(at).or_default().push(id),
            Gone::Merged(survivor) => merged.push((id, survivor)),
        }
    }
    let unknown: Vec<String> = read.not_found.iter().filter(|id| !known_ids.contains(*id)).cloned().collect();
    if !unknown.is_empty() {
        outcome.requests += 1;
        let archived = hubspot.batch_read_in(kind, &unknown, true, lane).await?;
        let (also_merged, _) = merged_ids(&unknown, &archived.records, &archived.not_found);
        merged.extend(also_merged);
        records.extend(archived.records);
        unreadable(kind, archived.invalid, &mut failed);
        gone = archived.not_found;
        gone.retain(|id| !associated.contains(id));
    }
    outcome.fetched = records.len();
    outcome.merged = merged.len();
    outcome.gone = gone.len();
    let updated: BTreeMap<String, chrono::DateTime<Utc>> =
        records.iter().map(|r| (r.id.clone(), r.updated_at)).collect();
    let mut conn = pool.get().await?;
    let read_ids: Vec<String> = records.iter().filter(|r| !r.archived).map(|r| r.id.clone()).collect();
    let read_archived: Vec<String> = records.iter().filter(|r| r.archived).map(|r| r.id.clone()).collect();
    // Records stored for the first time, or live again (restored): their edges are read.
    let known_rows: HashSet<String> = records::existing(&mut conn, table, &read_ids).await?.into_iter().collect();
    let first_seen: Vec<String> = read_ids.into_iter().filter(|id| !known_rows.contains(id)).collect();
    let report = objects::write_isolating(&mut conn, kind, records, ctx).await;
    if !report.failed.is_empty() {
        // Records refused one by one while the database itself is gone are not poison: the
        // batch fails and goes back to the queue.
        ping_conn(&mut conn).await?;
    }
    outcome.written = report.written;
    failed.extend(report.failed.into_iter().map(|f| NewFailure {
        updated_at: updated.get(&f.id).copied(),
        hubspot_id: f.id,
        error: f.reason,
    }));
    let mut by_survivor: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (old, survivor) in merged {
        by_survivor.entry(survivor).or_default().push(old);
    }
    let type_id = kind.type_id().unwrap_or_default();
    // Read archived (deleted): no live edges, whatever moved to them before.
    associations::mark_removed(&mut conn, type_id, &read_archived, started).await?;
    for (survivor, old) in by_survivor {
        records::mark_archived(&mut conn, table, &old, Some(&survivor)).await?;
        associations::move_edges(&mut conn, type_id, &old, &survivor, started).await?;
    }
    if !gone.is_empty() {
        records::archive_deleted(&mut conn, table, &gone, started).await?;
        associations::mark_removed(&mut conn, type_id, &gone, started).await?;
    }
    for (at, ids) in deleted {
        let at = chrono::DateTime::from_timestamp_millis(at).unwrap_or(started);
        records::archive_deleted(&mut conn, table, &ids, at).await?;
        associations::mark_removed(&mut conn, type_id, &ids, at).await?;
    }
    // An archived record has no live edges (whatever moved to it or arrived since).
    let mut touched: Vec<String> = ids.iter().chain(updated.keys()).cloned().collect();
    touched.sort();
    touched.dedup();
    let archived_now = records::archived_among(&mut conn, table, &touched).await?;
    associations::mark_removed_all(&mut conn, type_id, &archived_now).await?;
    let parked_now: HashSet<&str> = failed.iter().map(|f| f.hubspot_id.as_str()).collect();
    let first_seen: Vec<String> = first_seen.into_iter().filter(|id| !parked_now.contains(id.as_str())).collect();
    read_first_edges(hubspot, pool, edge_readers, kind, first_seen);
    let parked: HashSet<&str> = failed.iter().map(|f| f.hubspot_id.as_str()).collect();
    outcome.versions = updated
        .iter()
        .filter(|(id, _)| !parked.contains(id.as_str()))
        .map(|(id, at)| (id.clone(), at.timestamp_millis()))
        .collect();
    let mut settled: Vec<String> =
        ids.iter().chain(updated.keys()).filter(|id| !parked.contains(id.as_str())).cloned().collect();
    settled.sort_unstable();
    settled.dedup();
    sync_failures::clear(&mut conn, kind.as_str(), &settled).await?;
    if !failed.is_empty() {
        let attempts = sync_failures::park(&mut conn, kind.as_str(), &failed, backoff).await?;
        outcome.parked = failed.len();
        metrics::counter!(crate::metric::RECORDS_PARKED, "object" => kind.as_str()).increment(failed.len() as u64);
        for (failure, (_, attempt)) in failed.iter().zip(&attempts) {
            tracing::warn!(object.kind = %kind, hubspot.id = %failure.hubspot_id, reason = %failure.error, attempts = attempt,
                "record parked in sync_failures; the rest of the batch is stored");
        }
    }
    Ok(outcome)
}

/// Reads the edges of records stored for the first time or live again, from both ends (a new
/// record's associations exist before any association event could reach us; a restored
/// record's come back with it; a merge's survivor takes the merged records'), in the background on the `Background` lane so
/// the real-time reads are not held up; what fails here the association sweep reads later.
/// At most [`super::EDGE_READERS`] run at once (each holds a connection while it waits for the
/// budget); the others wait for a place before taking a connection.
fn read_first_edges(
    hubspot: &HubSpot,
    pool: &Pool,
    places: &std::sync::Arc<tokio::sync::Semaphore>,
    kind: ObjectKind,
    ids: Vec<String>,
) {
    if ids.is_empty() {
        return;
    }
    let (hubspot, pool, places) = (hubspot.clone(), pool.clone(), places.clone());
    crate::telemetry::account::spawn(async move {
        let result = async {
            let _place = places.acquire_owned().await.ok();
            let mut conn = pool.get().await?;
            objects::associations::sync_edges_both_ways(&hubspot, &mut conn, kind, &ids, Lane::Background).await
        }
        .await;
        if let Err(e) = result {
            tracing::warn!(object.kind = %kind, records = ids.len(), error = %crate::telemetry::ErrorChain(&e),
                "cannot read the associations of new records; the association sweep will");
        }
    });
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn record(id: &str, merged_from: Option<&str>) -> Record {
        let mut properties = BTreeMap::new();
        properties.insert("hs_merged_object_ids".to_owned(), merged_from.map(str::to_owned));
        Record { id: id.into(), properties, created_at: None, updated_at: Utc::now(), archived: false }
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn an_id_answered_by_its_survivor_is_merged_into_it() {
        let asked = strings(&["1", "2", "3", "4"]);
        let records = vec![record("1", None), record("9", Some("2;7"))];
        let (merged, unresolved) = merged_ids(&asked, &records, &strings(&["3"]));
        assert_eq!(merged, vec![("2".to_owned(), "9".to_owned())]);
        assert_eq!(unresolved, ["4"], "not listed anywhere: read alone");
    }

    #[test]
    fn a_single_id_answered_under_another_id_is_merged() {
        let (merged, unresolved) = merged_ids(&strings(&["5"]), &[record("8", None)], &[]);
        assert_eq!(merged, vec![("5".to_owned(), "8".to_owned())]);
        assert!(unresolved.is_empty());
    }
}

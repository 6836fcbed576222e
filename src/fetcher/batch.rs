//! One batch: ids in, one batch read, one upsert, archive what HubSpot no longer has.
//!
//! Reading the answer (reference §3.3, §6): records come back by id, in no promised order; an id
//! answered under another id was merged into that record (found through the survivor's
//! `hs_merged_object_ids`, else by reading the id alone); ids HubSpot does not find live are
//! read again among archived records: found there, they are written as archived (with HubSpot's
//! own `updatedAt`); found nowhere (permanently deleted), their rows are marked archived, unless
//! only association changes named them (an association event proves nothing about its ends).

use std::collections::{BTreeMap, HashSet};

use chrono::Utc;

use crate::hubspot::{HubSpot, Lane, Record};
use crate::kind::ObjectKind;
use crate::objects::{self, SyncError, WriteContext};
use crate::store::Pool;
use crate::store::records::{self, RecordTable};

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

/// Fetches and stores one batch of ids of one kind. Ids in `associated` were named only by
/// association changes: one HubSpot does not find is left alone, never archived.
pub async fn run(
    kind: ObjectKind,
    ids: &[String],
    associated: &HashSet<String>,
    hubspot: &HubSpot,
    pool: &Pool,
    ctx: &WriteContext,
) -> Result<Outcome, SyncError> {
    let Some(table) = RecordTable::for_kind(kind) else { return Ok(Outcome::default()) };
    let started = Utc::now();
    let mut outcome = Outcome { requests: 1, ..Outcome::default() };
    // The fetcher loop reserved this call's budget slot before it took the ids.
    let read = hubspot.batch_read_reserved(kind, ids, Lane::Realtime).await?;
    let mut records = read.records;
    let (mut merged, unresolved) = merged_ids(ids, &records, &read.not_found);
    // Rare: several ids merged into records that do not list them; ask for each alone.
    for id in unresolved {
        outcome.requests += 1;
        let alone = hubspot.batch_read(kind, std::slice::from_ref(&id), Lane::Realtime).await?;
        if let [survivor] = &alone.records[..] {
            merged.push((id, survivor.id.clone()));
        }
        records.extend(alone.records);
    }
    let mut gone = Vec::new();
    if !read.not_found.is_empty() {
        outcome.requests += 1;
        let archived = hubspot.batch_read_in(kind, &read.not_found, true, Lane::Realtime).await?;
        let (also_merged, _) = merged_ids(&read.not_found, &archived.records, &archived.not_found);
        merged.extend(also_merged);
        records.extend(archived.records);
        gone = archived.not_found;
        gone.retain(|id| !associated.contains(id));
    }
    for invalid in read.invalid {
        tracing::warn!(object.kind = %kind, hubspot.id = ?invalid.id, reason = %invalid.reason, "record not usable");
    }
    outcome.fetched = records.len();
    outcome.merged = merged.len();
    outcome.gone = gone.len();
    let mut conn = pool.get().await?;
    outcome.written = objects::write_records(&mut conn, kind, records, ctx).await?;
    let mut by_survivor: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (old, survivor) in merged {
        by_survivor.entry(survivor).or_default().push(old);
    }
    for (survivor, old) in by_survivor {
        records::mark_archived(&mut conn, table, &old, Some(&survivor)).await?;
    }
    if !gone.is_empty() {
        records::archive_deleted(&mut conn, table, &gone, started).await?;
    }
    Ok(outcome)
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

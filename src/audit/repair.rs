//! `--repair`: reads again every id that differs (batch reads of up to 100 ids) and stores what
//! HubSpot says now: live records written (rows archived here made live first), ids HubSpot no
//! longer has live written as archived (merged ones pointing at their survivor), and the
//! listing corrected with what the reads taught, so the check after the repair compares with
//! HubSpot's latest word.

use std::collections::{HashMap, HashSet};

use diesel_async::AsyncPgConnection;

use super::compare::Listing;
use crate::hubspot::{HubSpot, Lane, Record};
use crate::kind::ObjectKind;
use crate::objects::{self, FailedRecord, SyncError, WriteContext};
use crate::store::audit as audit_store;
use crate::store::records::{self, RecordTable};

/// What a repair did.
#[derive(Clone, Debug, Default)]
pub struct Repaired {
    /// Rows written (inserted, changed or archived).
    pub written: usize,
    /// Records the database refused (they stay drift, and are named in the audit's details).
    pub failed: Vec<FailedRecord>,
}

/// Repairs `ids` of `kind`. `owners` are the owner records the listing returned in full.
pub async fn repair(
    kind: ObjectKind,
    ids: &[String],
    listing: &mut Listing,
    owners: &HashMap<String, Record>,
    hubspot: &HubSpot,
    conn: &mut AsyncPgConnection,
    ctx: &WriteContext,
) -> Result<Repaired, SyncError> {
    match RecordTable::for_kind(kind) {
        Some(table) => repair_records(kind, table, ids, listing, hubspot, conn, ctx).await,
        None => repair_owners(ids, listing, owners, hubspot, conn, ctx).await,
    }
}

fn add(out: &mut Repaired, report: objects::WriteReport) {
    out.written += report.written;
    out.failed.extend(report.failed);
}

async fn repair_records(
    kind: ObjectKind,
    table: RecordTable,
    ids: &[String],
    listing: &mut Listing,
    hubspot: &HubSpot,
    conn: &mut AsyncPgConnection,
    ctx: &WriteContext,
) -> Result<Repaired, SyncError> {
    let mut out = Repaired::default();
    let read = hubspot.batch_read(kind, ids, Lane::Background).await?;
    let asked: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let not_found: HashSet<&str> = read.not_found.iter().map(String::as_str).collect();
    let live: Vec<String> =
        read.records.iter().filter(|r| asked.contains(r.id.as_str())).map(|r| r.id.clone()).collect();
    for record in read.records.iter().filter(|r| asked.contains(r.id.as_str())) {
        listing.insert(record.id.clone(), record.updated_at);
    }
    // Merged away: asked, answered by a survivor under its own id. An id HubSpot answered with
    // an error (or undecodable) was not answered at all: it stays drift, never archived.
    let returned: HashSet<&str> = read.records.iter().map(|r| r.id.as_str()).collect();
    let unreadable: HashSet<&str> = read.invalid.iter().filter_map(|r| r.id.as_deref()).collect();
    let unanswered = |id: &&String| !returned.contains(id.as_str()) && !not_found.contains(id.as_str());
    let mut merged: Vec<(String, Option<String>)> = Vec::new();
    for id in ids.iter().filter(unanswered).filter(|id| !unreadable.contains(id.as_str())) {
        let survivor = read.records.iter().find(|r| {
            r.prop("hs_merged_object_ids").is_some_and(|list| list.split(';').any(|old| old.trim() == id.as_str()))
        });
        merged.push((id.clone(), survivor.map(|r| r.id.clone())));
    }
    for invalid in &read.invalid {
        let id = invalid.id.clone().unwrap_or_default();
        out.failed.push(FailedRecord { id, reason: invalid.reason.clone() });
    }
    out.written += audit_store::unarchive(conn, table, &live).await?;
    add(&mut out, objects::write_isolating(conn, kind, read.records, ctx).await);
    for (id, survivor) in merged {
        listing.remove(&id);
        out.written += records::mark_archived(conn, table, std::slice::from_ref(&id), survivor.as_deref()).await?;
    }
    if !read.not_found.is_empty() {
        let archived = hubspot.batch_read_in(kind, &read.not_found, true, Lane::Background).await?;
        add(&mut out, objects::write_isolating(conn, kind, archived.records, ctx).await);
        // Not live in HubSpot, whatever the archived read said: archived here too.
        out.written += records::mark_archived(conn, table, &read.not_found, None).await?;
        for id in &read.not_found {
            listing.remove(id);
        }
    }
    Ok(out)
}

async fn repair_owners(
    ids: &[String],
    listing: &mut Listing,
    owners: &HashMap<String, Record>,
    hubspot: &HubSpot,
    conn: &mut AsyncPgConnection,
    ctx: &WriteContext,
) -> Result<Repaired, SyncError> {
    let mut out = Repaired::default();
    let (known, unknown): (Vec<&String>, Vec<&String>) = ids.iter().partition(|id| owners.contains_key(*id));
    let listed: Vec<Record> = known.iter().filter_map(|id| owners.get(*id).cloned()).collect();
    add(&mut out, objects::write_isolating(conn, ObjectKind::Owners, listed, ctx).await);
    if unknown.is_empty() {
        return Ok(out);
    }
    let unknown: Vec<String> = unknown.into_iter().cloned().collect();
    let read = hubspot.batch_read(ObjectKind::Owners, &unknown, Lane::Background).await?;
    for record in &read.records {
        if record.archived {
            listing.remove(&record.id);
        } else {
            listing.insert(record.id.clone(), record.updated_at);
        }
    }
    add(&mut out, objects::write_isolating(conn, ObjectKind::Owners, read.records, ctx).await);
    out.written += audit_store::archive_staff(conn, &read.not_found).await?;
    for id in &read.not_found {
        listing.remove(id);
    }
    Ok(out)
}

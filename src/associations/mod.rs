//! Associations: which contact a deal and a call belong to, kept current like the records
//! (docs/hubspot.md §7), in the `associations` table (`store::associations`).
//!
//! - **Reads** ([`refresh`]): the associations of up to 100 records of one kind toward each
//!   target type ([`types::TARGETS`]) with HubSpot's batch read, each record's associations paged
//!   on their own; what HubSpot reports is live, the other edges of those records toward that
//!   type are marked removed. A full pass does this for every page of live records it lists;
//!   the webhook fetchers for every record they store live for the first time (new, or
//!   restored) through [`reads::EdgeReads`]; the sweep ([`sweep`]) for records changed since its
//!   last good run.
//! - **Events**: an association change webhook is applied from the event alone (the `webhook`
//!   module turns it into a `store::associations::EdgeChange`), ordered by `occurredAt`.
//! - **Merges and deletions**: a merge moves the merged records' edges to the survivor, as
//!   HubSpot does; an archived (deleted, merged-away) record keeps no live edge, in either
//!   direction (the database's triggers enforce it), and a privacy deletion erases the
//!   contact's edges.

pub mod reads;
pub mod sweep;
pub mod types;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use crate::hubspot::{AssociationEdge, AssociationRead, HubSpot, Lane};
use crate::kind::ObjectKind;
use crate::metric;
use crate::objects::SyncError;
use crate::store::associations::{self as edges, Direction, ReadEdge};

/// What one [`refresh`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Refreshed {
    /// Edges HubSpot reported.
    pub edges: usize,
    /// Rows inserted, revived or changed.
    pub written: usize,
    /// Live rows no longer reported, now removed.
    pub removed: usize,
    /// Records whose associations HubSpot could not give (left as they were).
    pub failed: usize,
    /// HubSpot calls made.
    pub requests: usize,
}

impl Refreshed {
    pub fn add(&mut self, other: Refreshed) {
        self.edges += other.edges;
        self.written += other.written;
        self.removed += other.removed;
        self.failed += other.failed;
        self.requests += other.requests;
    }
}

/// Reads the associations of records `ids` of `kind` toward every target type (the reads run
/// together) and stores them as of the reads' start.
pub async fn refresh(
    hubspot: &HubSpot,
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    ids: &[String],
    lane: Lane,
) -> Result<Refreshed, SyncError> {
    Ok(refresh_found(hubspot, conn, kind, ids, lane).await?.0)
}

/// [`refresh`], then the other direction: the associations toward `kind` of the records of our
/// kinds that `ids` are (or were, as stored) associated with. For records that were not live
/// here (new, restored) or changed, whose edges seen from the other side (a deal's toward a new
/// contact, a contact's toward a deal that dropped it) no read of those other records, whose
/// rows did not change, would bring.
pub async fn refresh_around(
    hubspot: &HubSpot,
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    ids: &[String],
    lane: Lane,
) -> Result<Refreshed, SyncError> {
    let (mut done, found) = refresh_found(hubspot, conn, kind, ids, lane).await?;
    let Some(own_type) = kind.type_id() else { return Ok(done) };
    let back = types::Target { name: kind.hubspot_name(), type_id: own_type };
    for (other, mut neighbours) in found {
        neighbours.sort();
        neighbours.dedup();
        for chunk in neighbours.chunks(crate::hubspot::BATCH_READ_MAX) {
            let read_at = crate::store::db_now(conn).await?;
            let read = hubspot.read_associations(other.hubspot_name(), back.name, chunk, lane).await?;
            let Some(from_type) = other.type_id() else { continue };
            done.add(store_read(conn, other, from_type, back, read, read_at).await?.0);
        }
    }
    Ok(done)
}

/// The reads and writes of [`refresh`]; also the ids found per target kind of ours.
async fn refresh_found(
    hubspot: &HubSpot,
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    ids: &[String],
    lane: Lane,
) -> Result<(Refreshed, Vec<(ObjectKind, Vec<String>)>), SyncError> {
    let targets = types::targets_of(kind);
    let mut found = Vec::new();
    let (Some(from_type), false) = (kind.type_id(), ids.is_empty() || targets.is_empty()) else {
        return Ok((Refreshed::default(), found));
    };
    let read_at = crate::store::db_now(conn).await?;
    let reads = targets.iter().map(|t| hubspot.read_associations(kind.hubspot_name(), t.name, ids, lane));
    let answers = futures_util::future::join_all(reads).await;
    let mut done = Refreshed::default();
    for (target, answer) in targets.iter().zip(answers) {
        let (stored, to_ids) = store_read(conn, kind, from_type, *target, answer?, read_at).await?;
        done.add(stored);
        if let Some(other) = ObjectKind::from_type_id(target.type_id) {
            found.push((other, to_ids));
        }
    }
    metrics::counter!(metric::ASSOCIATIONS_STORED, "object" => kind.as_str()).increment(done.written as u64);
    Ok((done, found))
}

/// Stores one read of `kind`'s records toward `target`; what it did, and the ids it found.
async fn store_read(
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    from_type: &str,
    target: types::Target,
    read: AssociationRead,
    read_at: DateTime<Utc>,
) -> Result<(Refreshed, Vec<String>), SyncError> {
    for failure in &read.failed {
        tracing::warn!(object.kind = %kind, hubspot.id = ?failure.id, to = target.name, reason = %failure.reason,
            "associations not readable; the record keeps the edges it had");
    }
    let direction = Direction { from_type, to_type: target.type_id };
    // The records at the other end, before and after: both may need their side read again.
    let mut to_ids = edges::live_targets(conn, direction, &read.complete).await?;
    to_ids.extend(read.edges.iter().map(|e| e.to_id.clone()));
    let seen: Vec<ReadEdge> = read.edges.into_iter().map(read_edge).collect();
    let stored = edges::replace(conn, direction, &read.complete, &seen, read_at).await?;
    let done = Refreshed {
        edges: seen.len(),
        written: stored.written,
        removed: stored.removed,
        failed: read.failed.len(),
        requests: read.requests,
    };
    Ok((done, to_ids))
}

fn read_edge(e: AssociationEdge) -> ReadEdge {
    let is_primary = types::is_primary(&e.category, e.label.as_deref());
    ReadEdge {
        from_id: e.from_id,
        to_id: e.to_id,
        type_id: e.type_id,
        category: e.category,
        label: e.label,
        is_primary,
    }
}

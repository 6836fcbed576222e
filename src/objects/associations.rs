//! Associations read from HubSpot and stored: the edges of some records of one kind to every
//! other object type we keep edges to ([`targets`]), read with the v4 batch read and written with
//! `store::associations::replace_for_sources` (edges HubSpot no longer reports are marked
//! removed). Used by the full pass and the association sweep (`Lane::Background`) and for a
//! record's first insert (its edges are read when it is first fetched).
//!
//! The rule for deletions: an archived record (deleted or merged away) has no live edges; its
//! edges, from it and to it, are marked removed ([`remove_edges_of_archived`]).

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;

use super::SyncError;
use crate::hubspot::{AssociationRead, HubSpot, Lane};
use crate::kind::{COMPANIES_TYPE_ID, ObjectKind};
use crate::store::associations::{self, Edge};
use crate::store::records::RecordTable;

/// Ids per association read and write.
pub const CHUNK: usize = 100;

/// The object type ids whose edges from `kind` are read: the other two record kinds and
/// companies.
pub fn targets(kind: ObjectKind) -> Vec<&'static str> {
    let mut out: Vec<&'static str> =
        ObjectKind::SYNCED_RECORDS.into_iter().filter(|k| *k != kind).filter_map(ObjectKind::type_id).collect();
    out.push(COMPANIES_TYPE_ID);
    out
}

/// Whether an association type is a primary one (HubSpot's primary company types, or the
/// `Primary` label).
fn primary(type_id: i32, label: Option<&str>) -> bool {
    matches!(type_id, 1 | 2 | 5 | 6) || label == Some("Primary")
}

/// The edges of an association read.
pub fn edges_of(from_type: &str, to_type: &str, read: &AssociationRead) -> Vec<Edge> {
    let mut out = Vec::new();
    for (from_id, associated) in &read.edges {
        for to in associated {
            for t in &to.types {
                out.push(Edge {
                    from_type: from_type.to_owned(),
                    from_id: from_id.clone(),
                    to_type: to_type.to_owned(),
                    to_id: to.to_id.clone(),
                    type_id: t.type_id,
                    category: t.category.clone(),
                    label: t.label.clone(),
                    is_primary: primary(t.type_id, t.label.as_deref()),
                });
            }
        }
    }
    out
}

/// What reading and storing edges did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EdgeReport {
    /// Records whose edges were read and stored.
    pub records: usize,
    /// Edge rows inserted or changed.
    pub written: usize,
    /// Edges marked removed (HubSpot no longer reports them).
    pub removed: usize,
    /// Records HubSpot could not read the edges of.
    pub failed: usize,
}

impl EdgeReport {
    pub fn add(&mut self, other: EdgeReport) {
        self.records += other.records;
        self.written += other.written;
        self.removed += other.removed;
        self.failed += other.failed;
    }
}

/// Reads and stores the edges of `ids` (records of `kind`) to every [`targets`] type, 100 ids
/// per call. `read_at` (database clock) is taken before each read.
pub async fn sync_edges(
    hubspot: &HubSpot,
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    ids: &[String],
    lane: Lane,
) -> Result<EdgeReport, SyncError> {
    let (report, _) = sync_edges_to(hubspot, conn, kind, ids, &targets(kind), lane).await?;
    Ok(report)
}

/// [`sync_edges`] of records new to the copy (or live again), read from both ends: their edges,
/// then the edges back to `kind` of every record of the other kinds they are associated with.
/// The other end's direction has its own type ids (user-defined labels too), and events about
/// it may have reached us before the record existed here (a merge's survivor), so it is read
/// rather than inferred.
pub async fn sync_edges_both_ways(
    hubspot: &HubSpot,
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    ids: &[String],
    lane: Lane,
) -> Result<EdgeReport, SyncError> {
    let Some(back) = kind.type_id() else { return Ok(EdgeReport::default()) };
    // What the copy believes points at them is read again too (an edge a merge moved here that
    // HubSpot had removed before the merge, say).
    let believed = associations::live_sources(conn, back, ids).await?;
    let (mut report, mut associated) = sync_edges_to(hubspot, conn, kind, ids, &targets(kind), lane).await?;
    for (from_type, from_id) in believed {
        if let Some(other) = ObjectKind::from_type_id(&from_type).and_then(ObjectKind::type_id) {
            associated.entry(other).or_default().insert(from_id);
        }
    }
    for (to_type, others) in associated {
        let Some(other) = ObjectKind::from_type_id(to_type) else { continue };
        let others: Vec<String> = others.into_iter().collect();
        let (back_report, _) = sync_edges_to(hubspot, conn, other, &others, &[back], lane).await?;
        report.written += back_report.written;
        report.removed += back_report.removed;
    }
    Ok(report)
}

/// Ids associated with the records read, per object type.
type Associated = std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>>;

async fn sync_edges_to(
    hubspot: &HubSpot,
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    ids: &[String],
    to_types: &[&'static str],
    lane: Lane,
) -> Result<(EdgeReport, Associated), SyncError> {
    let mut associated = Associated::new();
    let Some(from_type) = kind.type_id() else { return Ok((EdgeReport::default(), associated)) };
    let mut report = EdgeReport::default();
    for chunk in ids.chunks(CHUNK) {
        let mut failed_ids = std::collections::BTreeSet::new();
        for &to_type in to_types {
            let read_at: DateTime<Utc> = crate::store::db_now(conn).await?;
            let read = hubspot.read_associations(from_type, to_type, chunk, lane).await?;
            failed_ids.extend(read.failed.iter().map(|(id, _)| id.clone()));
            let answered: Vec<String> = read.edges.keys().cloned().collect();
            let edges = edges_of(from_type, to_type, &read);
            let ends: Vec<String> = edges.iter().map(|e| e.to_id.clone()).collect();
            associated.entry(to_type).or_default().extend(ends.iter().cloned());
            let done = associations::replace_for_sources(conn, from_type, &answered, to_type, edges, read_at).await?;
            report.written += done.written;
            report.removed += done.removed;
            // A record archived here while the read was in flight keeps no live edge.
            report.removed += remove_edges_of_archived_among(conn, kind, &answered).await?;
            if let Some(other) = ObjectKind::from_type_id(to_type) {
                report.removed += remove_edges_of_archived_among(conn, other, &ends).await?;
            }
        }
        report.failed += failed_ids.len();
        report.records += chunk.len() - failed_ids.len();
    }
    metrics::counter!(crate::metric::ASSOCIATIONS_WRITTEN).increment(report.written as u64);
    Ok((report, associated))
}

/// Marks removed the live edges of those of `ids` (records of `kind`) the copy holds archived.
pub async fn remove_edges_of_archived_among(
    conn: &mut AsyncPgConnection,
    kind: ObjectKind,
    ids: &[String],
) -> Result<usize, SyncError> {
    let (Some(table), Some(type_id)) = (RecordTable::for_kind(kind), kind.type_id()) else { return Ok(0) };
    if ids.is_empty() {
        return Ok(0);
    }
    let archived = crate::store::records::archived_among(conn, table, ids).await?;
    Ok(associations::mark_removed_all(conn, type_id, &archived).await?)
}

/// Marks removed the live edges of archived records of `kind` (the rule: an archived record has
/// no live edges). Returns the edges changed.
pub async fn remove_edges_of_archived(conn: &mut AsyncPgConnection, kind: ObjectKind) -> Result<usize, SyncError> {
    let (Some(table), Some(type_id)) = (RecordTable::for_kind(kind), kind.type_id()) else { return Ok(0) };
    let ids = associations::archived_with_live_edges(conn, table.name(), table.key(), type_id).await?;
    let now = crate::store::db_now(conn).await?;
    Ok(associations::mark_removed(conn, type_id, &ids, now).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hubspot::{Associated, AssociationType};

    #[test]
    fn targets_are_the_other_kinds_and_companies() {
        assert_eq!(targets(ObjectKind::Contacts), ["0-3", "0-48", "0-2"]);
        assert_eq!(targets(ObjectKind::Calls), ["0-1", "0-3", "0-2"]);
    }

    #[test]
    fn one_edge_per_association_type() {
        let mut read = AssociationRead::default();
        let t = |type_id, category: &str, label: Option<&str>| AssociationType {
            type_id,
            category: category.into(),
            label: label.map(Into::into),
        };
        read.edges.insert(
            "1".into(),
            vec![Associated {
                to_id: "9".into(),
                types: vec![t(279, "HUBSPOT_DEFINED", None), t(1, "HUBSPOT_DEFINED", Some("Primary"))],
            }],
        );
        read.edges.insert("2".into(), vec![]);
        let edges = edges_of("0-1", "0-2", &read);
        assert_eq!(edges.len(), 2);
        assert!(!edges[0].is_primary);
        assert!(edges[1].is_primary);
    }
}

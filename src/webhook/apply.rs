//! The writes a webhook batch makes before it is answered: privacy deletions, merges and
//! deletions. None of them needs a fetch, and none may wait in the in-memory queue: answering
//! 204 means they are in PostgreSQL, so a crash cannot lose them. They are written in one
//! transaction committed with `synchronous_commit = on` ([`store::commit_durably`]) whatever the
//! pool's or the database's default: with it off, a PostgreSQL crash right after the 204 could
//! lose them, and no poll ever brings back a privacy deletion.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel_async::AsyncConnection as _;

use super::event::Plan;
use crate::kind::ObjectKind;
use crate::store::records::{self, RecordTable};
use crate::store::{self, Pool, StoreError, associations, contacts};

/// Applies a plan's privacy deletions, then merges (the merged records' edges move to the
/// survivor), then deletions (an archived record has no live edges), then association changes,
/// in one durable transaction.
pub async fn apply(pool: &Pool, plan: &Plan) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    let mut deletions: BTreeMap<(ObjectKind, DateTime<Utc>), Vec<String>> = BTreeMap::new();
    for d in &plan.deletions {
        deletions.entry((d.kind, d.occurred_at)).or_default().push(d.id.clone());
    }
    conn.transaction(async |conn| {
        store::commit_durably(conn).await?;
        if !plan.privacy.is_empty() {
            // Takes the purge lock exclusively, before any row lock.
            let removed = contacts::privacy_delete(conn, &plan.privacy).await?;
            tracing::info!(contacts = plan.privacy.len(), rows_removed = removed, "privacy deletion applied");
        } else if !plan.merges.is_empty() || !plan.edges.is_empty() {
            // The edge writes below take the purge lock shared; taken after the merges' row locks,
            // a purge of one of those contacts would wait on this batch while it waits on the purge.
            associations::purge_lock_shared(conn).await?;
        }
        for merge in &plan.merges {
            if let Some(table) = RecordTable::for_kind(merge.kind) {
                records::mark_archived(conn, table, &merge.merged, Some(&merge.survivor)).await?;
            }
            if let Some(type_id) = merge.kind.type_id() {
                // Moved when the merge happened, so a deletion of the survivor after it (in this
                // batch or a later one) removes what moved.
                let at = match merge.occurred_at.and_then(DateTime::from_timestamp_millis) {
                    Some(at) => at,
                    None => store::db_now(conn).await?,
                };
                associations::move_edges(conn, type_id, &merge.merged, &merge.survivor, at).await?;
            }
        }
        for ((kind, at), ids) in deletions {
            if let Some(table) = RecordTable::for_kind(kind) {
                records::archive_deleted(conn, table, &ids, at).await?;
            }
            if let Some(type_id) = kind.type_id() {
                associations::mark_removed(conn, type_id, &ids, at).await?;
            }
        }
        apply_edges(conn, plan).await?;
        no_edges_of_archived(conn, plan).await?;
        Ok(())
    })
    .await
}

/// The association changes of a plan: each edge added or removed under the newest-wins rule;
/// removing a HubSpot-defined association removes every type of the pair in that direction
/// (its labels go with it), not older than the event.
async fn apply_edges(conn: &mut diesel_async::AsyncPgConnection, plan: &Plan) -> Result<(), StoreError> {
    if plan.edges.is_empty() {
        return Ok(());
    }
    associations::upsert(conn, plan.edges.clone()).await?;
    for change in plan.edges.iter().filter(|c| c.removed && c.edge.category == "HUBSPOT_DEFINED") {
        let e = &change.edge;
        associations::remove_pair(conn, &e.from_type, &e.from_id, &e.to_type, &e.to_id, change.at).await?;
    }
    Ok(())
}

/// An archived record has no live edges: among the records a plan touched (merged, survivors,
/// deleted, ends of association events), those the copy holds archived lose any live edge,
/// however recent (an event that reached us after the record's deletion or merge, reordered or
/// retried; edges a merge moved to a survivor merged away since). A restore reads them again.
async fn no_edges_of_archived(conn: &mut diesel_async::AsyncPgConnection, plan: &Plan) -> Result<(), StoreError> {
    for kind in ObjectKind::SYNCED_RECORDS {
        let (Some(table), Some(type_id)) = (RecordTable::for_kind(kind), kind.type_id()) else { continue };
        let mut ids: Vec<String> = plan
            .edges
            .iter()
            .flat_map(|c| [(&c.edge.from_type, &c.edge.from_id), (&c.edge.to_type, &c.edge.to_id)])
            .filter(|(t, _)| t.as_str() == type_id)
            .map(|(_, id)| id.clone())
            .collect();
        for merge in plan.merges.iter().filter(|m| m.kind == kind) {
            ids.extend(merge.merged.iter().cloned());
            ids.push(merge.survivor.clone());
        }
        ids.extend(plan.deletions.iter().filter(|d| d.kind == kind).map(|d| d.id.clone()));
        ids.sort();
        ids.dedup();
        if ids.is_empty() {
            continue;
        }
        let archived = records::archived_among(conn, table, &ids).await?;
        associations::mark_removed_all(conn, type_id, &archived).await?;
    }
    Ok(())
}

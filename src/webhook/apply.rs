//! The writes a webhook batch makes before it is answered: privacy deletions, association
//! changes, merges (which move the merged records' edges to the survivor) and deletions. None of
//! them needs a fetch, and none may wait in the in-memory queue: answering 204 means they are in
//! PostgreSQL, so a crash cannot lose them. Both transactions (the erasure's own and the rest)
//! commit with `synchronous_commit = on` ([`store::commit_durably`]) whatever the pool's or the
//! database's default: with it off, a PostgreSQL crash right after the 204 could lose them, and
//! no poll ever brings back a privacy deletion.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel_async::{AsyncConnection, AsyncPgConnection};

use super::event::Plan;
use crate::kind::ObjectKind;
use crate::store::associations::{self, Change};
use crate::store::records::{self, RecordTable};
use crate::store::{self, Pool, StoreError, contacts};

/// Applies a plan's privacy deletions, then its association changes, merges and deletions in
/// one transaction (one webhook batch at a time: concurrent merges would each move edges the
/// other has not committed), on one connection.
pub async fn apply(pool: &Pool, plan: &Plan) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    if !plan.privacy.is_empty() {
        let removed = contacts::privacy_delete(&mut conn, &plan.privacy).await?;
        tracing::info!(contacts = plan.privacy.len(), rows_removed = removed, "privacy deletion applied");
    }
    if plan.edges.is_empty() && plan.merges.is_empty() && plan.deletions.is_empty() && plan.privacy.is_empty() {
        return Ok(());
    }
    conn.transaction(async move |conn| {
        store::commit_durably(conn).await?;
        associations::lock_webhook_writes(conn).await?;
        if !plan.privacy.is_empty() {
            // Edges a merge moved onto an erased contact while the erasure ran.
            associations::delete_erased(conn).await?;
        }
        write_changes(conn, plan).await
    })
    .await
}

async fn write_changes(conn: &mut AsyncPgConnection, plan: &Plan) -> Result<(), StoreError> {
    for edge in &plan.edges {
        let changed = associations::apply_change(conn, edge).await?;
        let change = if matches!(edge.change, Change::Added { .. }) { "added" } else { "removed" };
        metrics::counter!(crate::metric::ASSOCIATION_EVENTS_APPLIED, "change" => change)
            .increment(changed.min(1) as u64);
    }
    for merge in &plan.merges {
        if let Some(object_type) = merge.kind.type_id() {
            associations::move_edges(conn, object_type, &merge.merged, &merge.survivor).await?;
        }
        if let Some(table) = RecordTable::for_kind(merge.kind) {
            records::mark_archived(conn, table, &merge.merged, Some(&merge.survivor)).await?;
        }
    }
    let mut deletions: BTreeMap<(ObjectKind, DateTime<Utc>), Vec<String>> = BTreeMap::new();
    for d in &plan.deletions {
        deletions.entry((d.kind, d.occurred_at)).or_default().push(d.id.clone());
    }
    for ((kind, at), ids) in deletions {
        if let Some(table) = RecordTable::for_kind(kind) {
            records::archive_deleted(conn, table, &ids, at).await?;
            // A record deleted before it was ever stored keeps no live edge either.
            associations::remove_touching_unstored(conn, table, &ids).await?;
        }
    }
    Ok(())
}

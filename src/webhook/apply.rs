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
use crate::store::{self, Pool, StoreError, contacts};

/// Applies a plan's privacy deletions, then merges, then deletions, in one durable transaction.
pub async fn apply(pool: &Pool, plan: &Plan) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    let mut deletions: BTreeMap<(ObjectKind, DateTime<Utc>), Vec<String>> = BTreeMap::new();
    for d in &plan.deletions {
        deletions.entry((d.kind, d.occurred_at)).or_default().push(d.id.clone());
    }
    conn.transaction(async |conn| {
        store::commit_durably(conn).await?;
        if !plan.privacy.is_empty() {
            let removed = contacts::privacy_delete(conn, &plan.privacy).await?;
            tracing::info!(contacts = plan.privacy.len(), rows_removed = removed, "privacy deletion applied");
        }
        for merge in &plan.merges {
            if let Some(table) = RecordTable::for_kind(merge.kind) {
                records::mark_archived(conn, table, &merge.merged, Some(&merge.survivor)).await?;
            }
        }
        for ((kind, at), ids) in deletions {
            if let Some(table) = RecordTable::for_kind(kind) {
                records::archive_deleted(conn, table, &ids, at).await?;
            }
        }
        Ok(())
    })
    .await
}

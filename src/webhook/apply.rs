//! The writes a webhook batch makes before it is answered: privacy deletions, merges and
//! deletions. None of them needs a fetch, and none may wait in the in-memory queue: answering
//! 204 means they are in PostgreSQL, so a crash cannot lose them.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::event::Plan;
use crate::kind::ObjectKind;
use crate::store::records::{self, RecordTable};
use crate::store::{Pool, StoreError, contacts};

/// Applies a plan's privacy deletions, then merges, then deletions, on one connection.
pub async fn apply(pool: &Pool, plan: &Plan) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    if !plan.privacy.is_empty() {
        let removed = contacts::privacy_delete(&mut conn, &plan.privacy).await?;
        tracing::info!(contacts = plan.privacy.len(), rows_removed = removed, "privacy deletion applied");
    }
    for merge in &plan.merges {
        if let Some(table) = RecordTable::for_kind(merge.kind) {
            records::mark_archived(&mut conn, table, &merge.merged, Some(&merge.survivor)).await?;
        }
    }
    let mut deletions: BTreeMap<(ObjectKind, DateTime<Utc>), Vec<String>> = BTreeMap::new();
    for d in &plan.deletions {
        deletions.entry((d.kind, d.occurred_at)).or_default().push(d.id.clone());
    }
    for ((kind, at), ids) in deletions {
        if let Some(table) = RecordTable::for_kind(kind) {
            records::archive_deleted(&mut conn, table, &ids, at).await?;
        }
    }
    Ok(())
}

//! What the three HubSpot record tables (`contacts`, `deals`, `calls`) share: newest-wins
//! de-duplication of a batch, marking rows archived (deleted or merged away), and the rule that
//! decides whether an incoming row may overwrite a stored one.
//!
//! The rule, written into every upsert's `ON CONFLICT ... WHERE` as [`NEWER_WINS`]: an incoming
//! row replaces a stored one only when its HubSpot `updated_at` is newer, or equal while the
//! stored row is not archived, and never a row merged away (HubSpot merges cannot be undone, and
//! reading a merged-away id answers with the survivor, so the only row that can arrive under that
//! id is one read before the merge). So a stale batch from a slow fetch never regresses a row,
//! and a fetch that read a record just before it was deleted or merged cannot bring it back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use crate::kind::ObjectKind;

/// The `ON CONFLICT ... DO UPDATE ... WHERE` condition shared by the record upserts; `t` is the
/// stored row, `excluded` the incoming one.
pub const NEWER_WINS: &str = "t.merged_into IS NULL AND (excluded.updated_at > t.updated_at \
     OR (excluded.updated_at = t.updated_at AND NOT t.archived))";

/// Most rows one upsert statement takes (PostgreSQL arrays have no practical limit; this bounds
/// statement size and lock time).
pub const MAX_BATCH: usize = 1_000;

/// A table holding HubSpot records (not `staff`, which has no `updated_at` rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordTable {
    Contacts,
    Deals,
    Calls,
}

impl RecordTable {
    pub fn for_kind(kind: ObjectKind) -> Option<Self> {
        match kind {
            ObjectKind::Contacts => Some(Self::Contacts),
            ObjectKind::Deals => Some(Self::Deals),
            ObjectKind::Calls => Some(Self::Calls),
            ObjectKind::Owners => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Contacts => "contacts",
            Self::Deals => "deals",
            Self::Calls => "calls",
        }
    }

    pub fn key(self) -> &'static str {
        match self {
            Self::Contacts => "hubspot_contact_id",
            Self::Deals => "hubspot_deal_id",
            Self::Calls => "hubspot_call_id",
        }
    }
}

/// Keeps one row per id, the one with the newest `updated_at` (PostgreSQL refuses an upsert
/// that touches the same row twice).
pub fn newest_per_id<T>(rows: Vec<T>, id: impl Fn(&T) -> &str, updated: impl Fn(&T) -> DateTime<Utc>) -> Vec<T> {
    let mut by_id: HashMap<String, T> = HashMap::with_capacity(rows.len());
    for row in rows {
        match by_id.get(id(&row)) {
            Some(kept) if updated(kept) >= updated(&row) => {}
            _ => {
                by_id.insert(id(&row).to_owned(), row);
            }
        }
    }
    by_id.into_values().collect()
}

/// Marks rows archived (deleted in HubSpot, or merged away into `merged_into`). Rows not stored
/// yet are left alone: there is nothing to hide. Returns the number of rows changed.
pub async fn mark_archived(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
    merged_into: Option<&str>,
) -> diesel::QueryResult<usize> {
    let sql = format!(
        "UPDATE {table} SET archived = true, archived_at = coalesce(archived_at, now()), \
         merged_into = coalesce($2, merged_into), synced_at = now() \
         WHERE {key} = ANY($1) AND (NOT archived OR merged_into IS DISTINCT FROM coalesce($2, merged_into))",
        table = table.name(),
        key = table.key(),
    );
    diesel::sql_query(sql).bind::<Array<Text>, _>(ids).bind::<Nullable<Text>, _>(merged_into).execute(conn).await
}

/// Marks archived the live rows no write has touched since `since` (a full pass that started
/// then did not see them: merged away or permanently deleted in HubSpot), except `keep` (ids
/// the pass saw but could not store). A row whose HubSpot `updated_at` is at or after `since` is
/// never touched: that version was read from HubSpot after the pass began, so the record was
/// live then, and whatever happened to it since arrives by webhook or by the next pass.
/// Returns the number of rows changed.
pub async fn archive_unseen(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    since: DateTime<Utc>,
    keep: &[String],
) -> diesel::QueryResult<usize> {
    let sql = format!(
        "UPDATE {table} SET archived = true, archived_at = coalesce(archived_at, now()), synced_at = now() \
         WHERE NOT archived AND synced_at < $1 AND updated_at < $1 AND NOT ({key} = ANY($2))",
        table = table.name(),
        key = table.key(),
    );
    diesel::sql_query(sql)
        .bind::<diesel::sql_types::Timestamptz, _>(since)
        .bind::<Array<Text>, _>(keep)
        .execute(conn)
        .await
}

/// Marks rows archived because HubSpot deleted them at `deleted_at` (a deletion webhook's
/// `occurredAt`), unless the stored row is newer than that: an out-of-order deletion that
/// arrives after a later restore was fetched leaves the restored row alone. `updated_at` moves
/// up to `deleted_at`, so a fetch that read the record before the deletion cannot bring it back
/// (see [`NEWER_WINS`]), while a later restore can. Rows not stored yet are left alone.
pub async fn archive_deleted(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
    deleted_at: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    let sql = format!(
        "UPDATE {table} SET archived = true, archived_at = coalesce(archived_at, $2), \
         updated_at = greatest(updated_at, $2), synced_at = now() \
         WHERE {key} = ANY($1) AND updated_at <= $2 AND (NOT archived OR updated_at < $2)",
        table = table.name(),
        key = table.key(),
    );
    diesel::sql_query(sql).bind::<Array<Text>, _>(ids).bind::<Timestamptz, _>(deleted_at).execute(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn newest_row_per_id_survives() {
        let t = |s| Utc.timestamp_opt(s, 0).single().unwrap();
        let rows = vec![("a", t(1)), ("b", t(5)), ("a", t(3)), ("a", t(2))];
        let mut kept = newest_per_id(rows, |r| r.0, |r| r.1);
        kept.sort();
        assert_eq!(kept, vec![("a", t(3)), ("b", t(5))]);
    }
}

//! `associations`: edges between HubSpot records, one row per direction and association type
//! (migration `associations`), written three ways:
//!
//! - [`replace`]: what a batch read of some records' associations toward one object type
//!   returned, at the time the read started. Edges it reports are live; edges of those records
//!   it no longer reports are marked removed.
//! - [`apply_change`]: one association change from a webhook, at HubSpot's `occurredAt`.
//! - [`move_edges`] and [`remove_touching`]: what a merge does to the merged records' edges.
//!
//! **Ordering.** `updated_at` is when the row's state last changed: an event's `occurredAt`, or
//! the start of the read that saw the change. A change applies only when it is newer than that,
//! so a removal older than the stored addition does not remove it, a duplicate changes nothing,
//! and a removal that arrives before its (older) addition leaves a removed row (a tombstone) that
//! the addition cannot bring back. A read changes only rows older than its start.
//!
//! **Ends.** The migration's triggers keep every live edge between live records: archiving a
//! record (deletion, merge) marks its edges removed, both directions, and an edge written live
//! toward a record archived here is stored removed; one naming a contact erased for privacy is
//! not stored at all.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::StoreError;
use super::records::RecordTable;

/// One edge a read reported, from a record of the read's `from` type to one of its `to` type.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadEdge {
    pub from_id: String,
    pub to_id: String,
    pub type_id: i32,
    pub category: String,
    pub label: Option<String>,
    pub is_primary: bool,
}

/// The two object types (HubSpot type ids, `0-1`) of the edges a read or an event concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Direction<'a> {
    pub from_type: &'a str,
    pub to_type: &'a str,
}

/// What a [`replace`] changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replaced {
    /// Rows inserted, revived or changed.
    pub written: usize,
    /// Live rows the read no longer reported, now removed.
    pub removed: usize,
}

/// Stores what a read of the associations of `from_ids` toward `direction.to_type` reported,
/// read from `read_at` on: `seen` edges are live, every other live edge of those records toward
/// that type that is older than the read is removed. Records left out of `from_ids` (their read
/// failed) keep their edges.
pub async fn replace(
    conn: &mut AsyncPgConnection,
    direction: Direction<'_>,
    from_ids: &[String],
    seen: &[ReadEdge],
    read_at: DateTime<Utc>,
) -> Result<Replaced, StoreError> {
    // One row per key, sorted: an upsert may touch a row once, and sorted writers never deadlock.
    let mut unique: BTreeMap<(&str, &str, i32), &ReadEdge> = BTreeMap::new();
    for edge in seen {
        unique.insert((edge.from_id.as_str(), edge.to_id.as_str(), edge.type_id), edge);
    }
    let edges: Vec<&ReadEdge> = unique.into_values().collect();
    let column = |f: fn(&ReadEdge) -> String| edges.iter().map(|e| f(e)).collect::<Vec<_>>();
    let written = diesel::sql_query(
        "INSERT INTO associations AS t (from_type, from_id, to_type, to_id, type_id, category, label, is_primary, \
             removed, updated_at, synced_at) \
         SELECT $1, s.from_id, $2, s.to_id, s.type_id, s.category, s.label, s.is_primary, false, $9, now() \
           FROM unnest($3::text[], $4::text[], $5::int[], $6::text[], $7::text[], $8::bool[]) \
                AS s(from_id, to_id, type_id, category, label, is_primary) \
         ON CONFLICT (from_type, from_id, to_type, to_id, type_id) DO UPDATE SET \
             category = excluded.category, label = excluded.label, is_primary = excluded.is_primary, \
             removed = false, removed_at = NULL, \
             updated_at = CASE WHEN t.removed THEN excluded.updated_at ELSE t.updated_at END, synced_at = now() \
         WHERE (t.removed AND t.updated_at < excluded.updated_at) \
            OR (NOT t.removed AND (t.category, t.label, t.is_primary) \
                IS DISTINCT FROM (excluded.category, excluded.label, excluded.is_primary))",
    )
    .bind::<Text, _>(direction.from_type)
    .bind::<Text, _>(direction.to_type)
    .bind::<Array<Text>, _>(column(|e| e.from_id.clone()))
    .bind::<Array<Text>, _>(column(|e| e.to_id.clone()))
    .bind::<Array<Integer>, _>(edges.iter().map(|e| e.type_id).collect::<Vec<_>>())
    .bind::<Array<Text>, _>(column(|e| e.category.clone()))
    .bind::<Array<Nullable<Text>>, _>(edges.iter().map(|e| e.label.clone()).collect::<Vec<_>>())
    .bind::<Array<Bool>, _>(edges.iter().map(|e| e.is_primary).collect::<Vec<_>>())
    .bind::<Timestamptz, _>(read_at)
    .execute(conn)
    .await?;
    let removed = diesel::sql_query(
        "UPDATE associations t SET removed = true, removed_at = $6, updated_at = $6, synced_at = now() \
          WHERE t.from_type = $1 AND t.from_id = ANY($3) AND t.to_type = $2 AND NOT t.removed AND t.updated_at < $6 \
            AND NOT EXISTS (SELECT 1 FROM unnest($4::text[], $5::text[]) AS s(key_from, key_to) \
                             WHERE s.key_from = t.from_id AND s.key_to = t.to_id || ':' || t.type_id)",
    )
    .bind::<Text, _>(direction.from_type)
    .bind::<Text, _>(direction.to_type)
    .bind::<Array<Text>, _>(from_ids)
    .bind::<Array<Text>, _>(column(|e| e.from_id.clone()))
    .bind::<Array<Text>, _>(column(|e| format!("{}:{}", e.to_id, e.type_id)))
    .bind::<Timestamptz, _>(read_at)
    .execute(conn)
    .await?;
    let settled = settle(conn, direction, from_ids).await?;
    Ok(Replaced { written, removed: removed + settled })
}

/// Marks removed the live edges of `from_ids` toward `direction.to_type` that touch a record
/// archived here: those an archiving that committed while they were written (each unaware of
/// the other) left live. Returns rows changed.
async fn settle(
    conn: &mut AsyncPgConnection,
    direction: Direction<'_>,
    from_ids: &[String],
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "UPDATE associations SET removed = true, removed_at = now(), synced_at = now() \
          WHERE from_type = $1 AND from_id = ANY($3) AND to_type = $2 AND NOT removed \
            AND (association_end_archived(from_type, from_id) OR association_end_archived(to_type, to_id))",
    )
    .bind::<Text, _>(direction.from_type)
    .bind::<Text, _>(direction.to_type)
    .bind::<Array<Text>, _>(from_ids)
    .execute(conn)
    .await?)
}

/// Serialises the webhook writes of edges, merges and deletions (call it inside the
/// transaction that makes them): two merges, or a merge and a deletion, applied at once would
/// each move or remove edges the other has not committed yet.
pub async fn lock_webhook_writes(conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind::<Integer, _>(WEBHOOK_WRITES_LOCK.0)
        .bind::<Integer, _>(WEBHOOK_WRITES_LOCK.1)
        .execute(conn)
        .await?;
    Ok(())
}

/// Deletes the edges touching contacts erased for privacy in the last day (call it holding
/// [`lock_webhook_writes`], after the erasure committed: a merge that moved a person's edges while
/// the erasure ran has committed by then, and any later write of such an edge is refused by the
/// migration's trigger). Returns rows deleted.
pub async fn delete_erased(conn: &mut AsyncPgConnection) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "DELETE FROM associations a USING privacy_deletions p \
          WHERE p.deleted_at >= now() - interval '1 day' \
            AND ((a.from_type = '0-1' AND a.from_id = p.hubspot_contact_id) \
              OR (a.to_type = '0-1' AND a.to_id = p.hubspot_contact_id))",
    )
    .execute(conn)
    .await?)
}

/// The advisory lock (two-key form, the namespace of `store::locks`) of [`lock_webhook_writes`].
pub const WEBHOOK_WRITES_LOCK: (i32, i32) = (0x4853, 301);

/// What an association change event says happened to one directed pair of records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The association type `type_id` was added (the label, when the event names none, is taken
    /// from another edge of the same type).
    Added { type_id: i32, category: String, label: Option<String>, is_primary: bool },
    /// The association type `type_id` was removed; the pair stays associated by its other types.
    RemovedType { type_id: i32, category: String },
    /// The association itself was removed, every type with it; `default_type_id` (the pair's
    /// unlabelled type) is recorded removed even when no row existed, so an older addition that
    /// arrives later cannot bring it back.
    RemovedPair { default_type_id: i32 },
}

/// One association change from a webhook event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeChange {
    pub from_type: String,
    pub from_id: String,
    pub to_type: String,
    pub to_id: String,
    pub change: Change,
    /// HubSpot's `occurredAt`.
    pub occurred_at: DateTime<Utc>,
}

/// Applies one change unless the stored state is as new or newer (see the module docs).
/// Returns the rows changed.
pub async fn apply_change(conn: &mut AsyncPgConnection, c: &EdgeChange) -> Result<usize, StoreError> {
    let base = |sql: &'static str| {
        diesel::sql_query(sql)
            .into_boxed()
            .bind::<Text, _>(c.from_type.clone())
            .bind::<Text, _>(c.from_id.clone())
            .bind::<Text, _>(c.to_type.clone())
            .bind::<Text, _>(c.to_id.clone())
            .bind::<Timestamptz, _>(c.occurred_at)
    };
    let changed = match &c.change {
        Change::Added { type_id, category, label, is_primary } => {
            base(
                "INSERT INTO associations AS t (from_type, from_id, to_type, to_id, type_id, category, label, \
                     is_primary, removed, updated_at, synced_at) \
                 VALUES ($1, $2, $3, $4, $6, $7, coalesce($8, CASE WHEN $7 <> 'HUBSPOT_DEFINED' THEN (SELECT l.label \
                     FROM associations l WHERE l.from_type = $1 AND l.to_type = $3 AND l.type_id = $6 \
                     AND l.label IS NOT NULL LIMIT 1) END), \
                     $9, false, $5, now()) \
                 ON CONFLICT (from_type, from_id, to_type, to_id, type_id) DO UPDATE SET \
                     removed = false, removed_at = NULL, category = excluded.category, \
                     label = coalesce(excluded.label, t.label), is_primary = excluded.is_primary, \
                     updated_at = excluded.updated_at, synced_at = now() \
                 WHERE t.updated_at < excluded.updated_at",
            )
            .bind::<Integer, _>(*type_id)
            .bind::<Text, _>(category.clone())
            .bind::<Nullable<Text>, _>(label.clone())
            .bind::<Bool, _>(*is_primary)
            .execute(conn)
            .await?
        }
        Change::RemovedType { type_id, category } => {
            base(
                "INSERT INTO associations AS t (from_type, from_id, to_type, to_id, type_id, category, removed, \
                     removed_at, updated_at, synced_at) \
                 VALUES ($1, $2, $3, $4, $6, $7, true, $5, $5, now()) \
                 ON CONFLICT (from_type, from_id, to_type, to_id, type_id) DO UPDATE SET \
                     removed = true, removed_at = excluded.removed_at, updated_at = excluded.updated_at, synced_at = now() \
                 WHERE t.updated_at < excluded.updated_at",
            )
            .bind::<Integer, _>(*type_id)
            .bind::<Text, _>(category.clone())
            .execute(conn)
            .await?
        }
        Change::RemovedPair { default_type_id } => {
            let removed = base(
                "UPDATE associations SET removed = true, removed_at = $5, updated_at = $5, synced_at = now() \
                  WHERE from_type = $1 AND from_id = $2 AND to_type = $3 AND to_id = $4 AND updated_at < $5",
            )
            .execute(conn)
            .await?;
            let tombstone = base(
                "INSERT INTO associations (from_type, from_id, to_type, to_id, type_id, category, removed, removed_at, \
                     updated_at, synced_at) \
                 VALUES ($1, $2, $3, $4, $6, 'HUBSPOT_DEFINED', true, $5, $5, now()) ON CONFLICT DO NOTHING",
            )
            .bind::<Integer, _>(*default_type_id)
            .execute(conn)
            .await?;
            removed + tombstone
        }
    };
    Ok(changed)
}

/// Gives `survivor` the live edges of the records `merged` into it, both directions (edges
/// between the merged records and the survivor themselves are dropped), as HubSpot does on a
/// merge, then removes the merged records' edges. Returns the edges moved.
pub async fn move_edges(
    conn: &mut AsyncPgConnection,
    object_type: &str,
    merged: &[String],
    survivor: &str,
) -> Result<usize, StoreError> {
    let moved = diesel::sql_query(
        "INSERT INTO associations AS t (from_type, from_id, to_type, to_id, type_id, category, label, is_primary, \
             removed, updated_at, synced_at) \
         SELECT from_type, CASE WHEN from_type = $1 AND from_id = ANY($2) THEN $3 ELSE from_id END, \
                to_type, CASE WHEN to_type = $1 AND to_id = ANY($2) THEN $3 ELSE to_id END, \
                type_id, min(category), min(label), bool_or(is_primary), false, now(), now() \
           FROM associations \
          WHERE NOT removed AND ((from_type = $1 AND from_id = ANY($2)) OR (to_type = $1 AND to_id = ANY($2))) \
            AND NOT (from_type = $1 AND to_type = $1 \
                     AND (from_id = ANY($2) OR from_id = $3) AND (to_id = ANY($2) OR to_id = $3)) \
          GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 \
         ON CONFLICT (from_type, from_id, to_type, to_id, type_id) DO UPDATE SET \
             removed = false, removed_at = NULL, updated_at = excluded.updated_at, synced_at = now() \
         WHERE t.removed",
    )
    .bind::<Text, _>(object_type)
    .bind::<Array<Text>, _>(merged)
    .bind::<Text, _>(survivor)
    .execute(conn)
    .await?;
    remove_touching(conn, object_type, merged).await?;
    Ok(moved)
}

/// Marks removed every live edge from or to records `ids` of `object_type`. Returns rows changed.
pub async fn remove_touching(
    conn: &mut AsyncPgConnection,
    object_type: &str,
    ids: &[String],
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "UPDATE associations SET removed = true, removed_at = now(), updated_at = greatest(updated_at, now()), \
             synced_at = now() \
          WHERE NOT removed AND ((from_type = $1 AND from_id = ANY($2)) OR (to_type = $1 AND to_id = ANY($2)))",
    )
    .bind::<Text, _>(object_type)
    .bind::<Array<Text>, _>(ids)
    .execute(conn)
    .await?)
}

/// Marks removed every live edge from or to those of records `ids` of `table` that have no row
/// (deleted before anyone stored them: no archiving can take their edges with it).
pub async fn remove_touching_unstored(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
) -> Result<usize, StoreError> {
    let sql = format!(
        "UPDATE associations a SET removed = true, removed_at = now(), synced_at = now() \
          FROM unnest($2::text[]) AS u(id) \
          WHERE NOT a.removed AND ((a.from_type = $1 AND a.from_id = u.id) OR (a.to_type = $1 AND a.to_id = u.id)) \
            AND NOT EXISTS (SELECT 1 FROM {table} r WHERE r.{key} = u.id)",
        table = table.name(),
        key = table.key(),
    );
    Ok(diesel::sql_query(sql).bind::<Text, _>(type_of(table)).bind::<Array<Text>, _>(ids).execute(conn).await?)
}

#[derive(QueryableByName)]
struct Id {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Those of `ids` with no live row in `table` (never stored, or archived): a fetch that now
/// stores them live is their first (or a restore), and their edges are read.
pub async fn not_live(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT u.id FROM unnest($1::text[]) AS u(id) \
          WHERE NOT EXISTS (SELECT 1 FROM {table} r WHERE r.{key} = u.id AND NOT r.archived)",
        table = table.name(),
        key = table.key(),
    );
    let rows: Vec<Id> = diesel::sql_query(sql).bind::<Array<Text>, _>(ids).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Those of `ids` of `table`'s object type that were revived (archived, then live again) since
/// their edges were last read, taken off the list: their edges are read now.
pub async fn take_revived(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<Id> =
        diesel::sql_query("DELETE FROM association_reads_due WHERE object_type = $1 AND id = ANY($2) RETURNING id")
            .bind::<Text, _>(type_of(table))
            .bind::<Array<Text>, _>(ids)
            .load(conn)
            .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Puts records `ids` of `table`'s type on the list of edge reads due (new records stored live
/// for the first time; revived ones are put there by the migration's trigger).
pub async fn queue_reads(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "INSERT INTO association_reads_due (object_type, id) SELECT $1, u.id FROM unnest($2::text[]) AS u(id) \
         ORDER BY u.id ON CONFLICT (object_type, id) DO UPDATE SET since = excluded.since",
    )
    .bind::<Text, _>(type_of(table))
    .bind::<Array<Text>, _>(ids)
    .execute(conn)
    .await?)
}

#[derive(QueryableByName)]
struct Due {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Timestamptz)]
    since: DateTime<Utc>,
}

/// Up to `limit` edge reads due for `table`'s type, oldest first: the ids and the latest time one
/// of them was put on the list (see [`done_reads`]).
pub async fn due_reads(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    limit: i64,
) -> Result<(Vec<String>, Option<DateTime<Utc>>), StoreError> {
    let rows: Vec<Due> = diesel::sql_query(
        "SELECT id, since FROM association_reads_due WHERE object_type = $1 ORDER BY since, id LIMIT $2",
    )
    .bind::<Text, _>(type_of(table))
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await?;
    let upto = rows.iter().map(|r| r.since).max();
    Ok((rows.into_iter().map(|r| r.id).collect(), upto))
}

/// Takes records `ids` off the list once their edges were read, unless put on it again after
/// `upto` (a change since the read began).
pub async fn done_reads(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
    upto: DateTime<Utc>,
) -> Result<usize, StoreError> {
    Ok(diesel::sql_query("DELETE FROM association_reads_due WHERE object_type = $1 AND id = ANY($2) AND since <= $3")
        .bind::<Text, _>(type_of(table))
        .bind::<Array<Text>, _>(ids)
        .bind::<Timestamptz, _>(upto)
        .execute(conn)
        .await?)
}

/// Up to `limit` revived records of `table`'s type left on the list (the sweep takes them),
/// taken off it.
pub async fn take_any_revived(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<Id> = diesel::sql_query(
        "DELETE FROM association_reads_due WHERE (object_type, id) IN ( \
             SELECT object_type, id FROM association_reads_due WHERE object_type = $1 ORDER BY id LIMIT $2) \
         RETURNING id",
    )
    .bind::<Text, _>(type_of(table))
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The object type id of a record table.
fn type_of(table: RecordTable) -> &'static str {
    match table {
        RecordTable::Contacts => "0-1",
        RecordTable::Deals => "0-3",
        RecordTable::Calls => "0-48",
    }
}

/// The records whose edges are to be read after a write of `live` (ids stored live): those
/// `before` found with no live row ([`not_live`], looked up before the write), and those the
/// write revived ([`take_revived`]).
pub async fn first_live(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    before: Vec<String>,
    live: &[String],
) -> Result<Vec<String>, StoreError> {
    let mut ids = before;
    ids.extend(take_revived(conn, table, live).await?);
    ids.sort();
    ids.dedup();
    Ok(ids)
}

/// Up to `limit` ids of live rows of `table` after `after`, in id order; with `since`, only rows
/// written since then (the sweep's "records changed since its last good run").
pub async fn live_ids(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    since: Option<DateTime<Utc>>,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, StoreError> {
    let sql = format!(
        "SELECT {key} AS id FROM {table} \
          WHERE NOT archived AND ($1::timestamptz IS NULL OR synced_at >= $1) AND ($2::text IS NULL OR {key} > $2) \
          ORDER BY {key} LIMIT $3",
        table = table.name(),
        key = table.key(),
    );
    let rows: Vec<Id> = diesel::sql_query(sql)
        .bind::<Nullable<Timestamptz>, _>(since)
        .bind::<Nullable<Text>, _>(after)
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// The records of type `direction.to_type` that records `from_ids` have live edges toward.
pub async fn live_targets(
    conn: &mut AsyncPgConnection,
    direction: Direction<'_>,
    from_ids: &[String],
) -> Result<Vec<String>, StoreError> {
    let rows: Vec<Id> = diesel::sql_query(
        "SELECT DISTINCT to_id AS id FROM associations           WHERE from_type = $1 AND from_id = ANY($3) AND to_type = $2 AND NOT removed",
    )
    .bind::<Text, _>(direction.from_type)
    .bind::<Text, _>(direction.to_type)
    .bind::<Array<Text>, _>(from_ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

/// Live edges stored.
pub async fn live_count(conn: &mut AsyncPgConnection) -> Result<i64, StoreError> {
    let row: Count =
        diesel::sql_query("SELECT count(*) AS n FROM associations WHERE NOT removed").get_result(conn).await?;
    Ok(row.n)
}

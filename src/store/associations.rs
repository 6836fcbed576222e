//! `associations`: edges between HubSpot records, one row per direction and association type.
//!
//! The rule every write keeps: a change applies only when it is at least as recent as the stored
//! row (`updated_at`: the event's `occurredAt`, or the start of the read that saw the edge). So a
//! removal older than the stored addition does not remove it, an addition older than the stored
//! removal does not bring it back, and duplicate or reordered events converge. Removed edges stay
//! as rows marked removed. Every multi-row write takes its rows in key order (no deadlocks
//! between two writers over the same edges).
//!
//! The rule for archived records: an archived record (deleted or merged away) has no live edge.
//! The archiving side marks its edges removed ([`mark_removed`], [`mark_removed_all`]); every write
//! that can make an edge live ([`upsert`], [`move_edges`], and so [`replace_for_sources`]) stores
//! an edge with an end the copy holds archived as removed, under a share lock on that end's row
//! (see `archived_ends_gate`), so neither side can miss the other however their transactions
//! interleave. Only a restore (the record live again in the copy) lets a later write make its
//! edges live.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, Bool, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::locks::PURGE_LOCK;
use super::records::RecordTable;
use crate::kind::ObjectKind;

/// One edge, in one direction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Edge {
    /// HubSpot object type id of the `from` end (`0-1`, `0-3`, `0-48`, `0-2`...).
    pub from_type: String,
    pub from_id: String,
    pub to_type: String,
    pub to_id: String,
    pub type_id: i32,
    /// `HUBSPOT_DEFINED`, `USER_DEFINED`, `INTEGRATOR_DEFINED`.
    pub category: String,
    pub label: Option<String>,
    pub is_primary: bool,
}

impl Edge {
    fn key(&self) -> (&str, &str, &str, &str, i32) {
        (&self.from_type, &self.from_id, &self.to_type, &self.to_id, self.type_id)
    }
}

/// An edge added or removed at a point in time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeChange {
    pub edge: Edge,
    pub removed: bool,
    pub at: DateTime<Utc>,
}

/// A stored edge (tests and exports read them back).
#[derive(Clone, Debug, PartialEq, Eq, QueryableByName)]
pub struct StoredEdge {
    #[diesel(sql_type = Text)]
    pub from_type: String,
    #[diesel(sql_type = Text)]
    pub from_id: String,
    #[diesel(sql_type = Text)]
    pub to_type: String,
    #[diesel(sql_type = Text)]
    pub to_id: String,
    #[diesel(sql_type = Integer)]
    pub type_id: i32,
    #[diesel(sql_type = Text)]
    pub category: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub label: Option<String>,
    #[diesel(sql_type = Bool)]
    pub is_primary: bool,
    #[diesel(sql_type = Bool)]
    pub removed: bool,
}

/// Most rows one statement takes.
const MAX_BATCH: usize = 1_000;

/// Keeps the newest change per key (a removal wins a tie), sorted by key.
fn newest_per_key(mut changes: Vec<EdgeChange>) -> Vec<EdgeChange> {
    changes.sort_by(|a, b| a.edge.key().cmp(&b.edge.key()).then(b.at.cmp(&a.at)).then(b.removed.cmp(&a.removed)));
    changes.dedup_by(|later, kept| later.edge.key() == kept.edge.key());
    changes
}

/// The rule every write that can make an edge live keeps: an archived record has no live edge.
/// `WITH` clauses, after a relation `ends(type_id, id)` naming the records at the ends of the
/// rows being written: each of them the copy holds is locked `FOR SHARE` (in key order, one table
/// after the other, before any edge row of it is written) and `gone` lists those archived. The
/// lock is what makes the rule hold against a concurrent archive: an archive not yet committed
/// holds the record's row, so the write waits for it and then sees the record archived; an
/// archive that comes later waits for this write to commit, and then its own removal of the
/// record's edges sees what this wrote. A record the copy does not hold is taken as live (its
/// first insert as archived removes its edges).
fn archived_ends_gate() -> String {
    let mut ctes = Vec::new();
    let mut gone = Vec::new();
    for kind in ObjectKind::SYNCED_RECORDS {
        let (Some(table), Some(type_id)) = (RecordTable::for_kind(kind), kind.type_id()) else { continue };
        let (name, key) = (table.name(), table.key());
        let cte = format!("lock_{name}");
        ctes.push(format!(
            "{cte} AS MATERIALIZED (SELECT {key} AS id, archived FROM {name} \
             WHERE portal_id = hubspot_sync_portal() AND {key} IN (SELECT id FROM ends WHERE type_id = '{type_id}') \
             ORDER BY {key} FOR SHARE)"
        ));
        gone.push(format!("SELECT '{type_id}'::text AS type_id, id FROM {cte} WHERE archived"));
    }
    format!("{}, gone AS MATERIALIZED ({})", ctes.join(", "), gone.join(" UNION ALL "))
}

/// Whether the edge row `{row}` has an end in `gone` (see [`archived_ends_gate`]).
fn has_archived_end(row: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM gone g WHERE (g.type_id = {row}.from_type AND g.id = {row}.from_id) \
         OR (g.type_id = {row}.to_type AND g.id = {row}.to_id))"
    )
}

/// The upsert of edge changes: an addition with an end the copy holds archived is stored as a
/// removal at its time (it never makes the edge live; a restore reads the record's edges again).
static UPSERT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH u AS MATERIALIZED (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], \
         $6::text[], $7::text[], $8::bool[], $9::bool[], $10::timestamptz[]) \
         AS u(from_type, from_id, to_type, to_id, type_id, category, label, is_primary, removed, at)), \
         ends AS (SELECT from_type AS type_id, from_id AS id FROM u UNION SELECT to_type, to_id FROM u), {gate}, \
         v AS (SELECT u.from_type, u.from_id, u.to_type, u.to_id, u.type_id, u.category, u.label, u.is_primary, \
         u.removed OR {dead} AS removed, u.at FROM u) \
         INSERT INTO associations AS t (from_type, from_id, to_type, to_id, type_id, category, label, \
         is_primary, removed, removed_at, updated_at, synced_at) \
         SELECT v.from_type, v.from_id, v.to_type, v.to_id, v.type_id, v.category, v.label, v.is_primary, v.removed, \
         CASE WHEN v.removed THEN v.at END, v.at, now() FROM v \
         ORDER BY v.from_type, v.from_id, v.to_type, v.to_id, v.type_id \
         ON CONFLICT (portal_id, from_type, from_id, to_type, to_id, type_id) DO UPDATE SET \
         category = CASE WHEN excluded.removed THEN t.category ELSE excluded.category END, \
         label = CASE WHEN excluded.removed THEN t.label ELSE coalesce(excluded.label, t.label) END, \
         is_primary = CASE WHEN excluded.removed THEN t.is_primary ELSE excluded.is_primary END, \
         removed = excluded.removed, \
         removed_at = CASE WHEN excluded.removed THEN coalesce(t.removed_at, excluded.removed_at) END, \
         updated_at = excluded.updated_at, synced_at = now() \
         WHERE excluded.updated_at > t.updated_at \
         OR (excluded.updated_at = t.updated_at AND (excluded.removed OR NOT t.removed))",
        gate = archived_ends_gate(),
        dead = has_archived_end("u"),
    )
});

/// Writes edge changes (additions and removals) under the newest-wins rule. A removal of an edge
/// never stored is stored as a removed row (a later, older addition then cannot bring it back).
/// Returns the rows inserted or changed.
pub async fn upsert(conn: &mut AsyncPgConnection, changes: Vec<EdgeChange>) -> diesel::QueryResult<usize> {
    let changes = newest_per_key(changes);
    if changes.is_empty() {
        return Ok(0);
    }
    conn.transaction(async |conn| {
        purge_lock_shared(conn).await?;
        upsert_chunks(conn, &changes).await
    })
    .await
}

/// Takes the privacy purge's advisory lock shared for the transaction, before any row lock: the
/// `associations_refuse_erased` trigger takes it too (to see a purge that commits meanwhile), and
/// taken there, after the rows of the edges' ends, a purge deleting one of those contacts would
/// wait on this writer while it waits on the purge.
/// A transaction that writes edges after locking rows of its own (a webhook batch archiving
/// merged contacts first) takes it at its start.
pub async fn purge_lock_shared(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    diesel::sql_query("SELECT pg_advisory_xact_lock_shared($1, $2)")
        .bind::<Integer, _>(PURGE_LOCK.0)
        .bind::<Integer, _>(PURGE_LOCK.1)
        .execute(conn)
        .await
        .map(drop)
}

async fn upsert_chunks(conn: &mut AsyncPgConnection, changes: &[EdgeChange]) -> diesel::QueryResult<usize> {
    let mut written = 0;
    for chunk in changes.chunks(MAX_BATCH) {
        let col = |f: fn(&EdgeChange) -> String| chunk.iter().map(f).collect::<Vec<_>>();
        written += diesel::sql_query(UPSERT.as_str())
            .bind::<Array<Text>, _>(col(|c| c.edge.from_type.clone()))
            .bind::<Array<Text>, _>(col(|c| c.edge.from_id.clone()))
            .bind::<Array<Text>, _>(col(|c| c.edge.to_type.clone()))
            .bind::<Array<Text>, _>(col(|c| c.edge.to_id.clone()))
            .bind::<Array<Integer>, _>(chunk.iter().map(|c| c.edge.type_id).collect::<Vec<_>>())
            .bind::<Array<Text>, _>(col(|c| c.edge.category.clone()))
            .bind::<Array<Nullable<Text>>, _>(chunk.iter().map(|c| c.edge.label.clone()).collect::<Vec<_>>())
            .bind::<Array<Bool>, _>(chunk.iter().map(|c| c.edge.is_primary).collect::<Vec<_>>())
            .bind::<Array<Bool>, _>(chunk.iter().map(|c| c.removed).collect::<Vec<_>>())
            .bind::<Array<Timestamptz>, _>(chunk.iter().map(|c| c.at).collect::<Vec<_>>())
            .execute(conn)
            .await?;
    }
    Ok(written)
}

/// Marks removed, at `at`, every live edge of `(from_type, from_id)` to `(to_type, to_id)`
/// whatever its type id, stored no later than `at` (a HubSpot-defined association removed takes
/// its labels with it). Returns the rows changed.
pub async fn remove_pair(
    conn: &mut AsyncPgConnection,
    from_type: &str,
    from_id: &str,
    to_type: &str,
    to_id: &str,
    at: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    diesel::sql_query(
        "UPDATE associations SET removed = true, removed_at = $5, updated_at = $5, synced_at = now() \
         WHERE portal_id = hubspot_sync_portal() AND from_type = $1 AND from_id = $2 AND to_type = $3 AND to_id = $4 \
         AND NOT removed AND updated_at <= $5",
    )
    .bind::<Text, _>(from_type)
    .bind::<Text, _>(from_id)
    .bind::<Text, _>(to_type)
    .bind::<Text, _>(to_id)
    .bind::<Timestamptz, _>(at)
    .execute(conn)
    .await
}

/// Marks removed every live edge from or to the records `ids` of type `type_id` (archived or
/// merged away: an archived record has no live edges), stored no later than `at`. Rows are
/// locked in key order first. Returns the rows changed.
pub async fn mark_removed(
    conn: &mut AsyncPgConnection,
    type_id: &str,
    ids: &[String],
    at: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    remove_of(conn, type_id, ids, Some(at)).await
}

/// Marks removed, now, every live edge from or to the records `ids` of type `type_id`, however
/// recent: for records the copy holds archived (an archived record has no live edges, whatever
/// arrived since; a restore reads its edges again).
pub async fn mark_removed_all(
    conn: &mut AsyncPgConnection,
    type_id: &str,
    ids: &[String],
) -> diesel::QueryResult<usize> {
    remove_of(conn, type_id, ids, None).await
}

async fn remove_of(
    conn: &mut AsyncPgConnection,
    type_id: &str,
    ids: &[String],
    at: Option<DateTime<Utc>>,
) -> diesel::QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "UPDATE associations a SET removed = true, removed_at = coalesce($3, now()), \
         updated_at = greatest(a.updated_at, coalesce($3, now())), synced_at = now() \
         FROM (SELECT from_type, from_id, to_type, to_id, type_id FROM associations \
         WHERE portal_id = hubspot_sync_portal() AND NOT removed AND ($3::timestamptz IS NULL OR updated_at <= $3) \
         AND ((from_type = $1 AND from_id = ANY($2)) \
         OR (to_type = $1 AND to_id = ANY($2))) \
         ORDER BY from_type, from_id, to_type, to_id, type_id FOR UPDATE) k \
         WHERE a.portal_id = hubspot_sync_portal() AND a.from_type = k.from_type AND a.from_id = k.from_id \
         AND a.to_type = k.to_type AND a.to_id = k.to_id AND a.type_id = k.type_id",
    )
    .bind::<Text, _>(type_id)
    .bind::<Array<Text>, _>(ids)
    .bind::<Nullable<Timestamptz>, _>(at)
    .execute(conn)
    .await
}

/// The two statements of [`move_edges`] (edges from the merged records, edges to them). An edge
/// whose other end the copy holds archived is copied as removed (see [`archived_ends_gate`]): a
/// merge never makes an edge of an archived record live, whatever deletion is committing at the
/// same time.
static MOVE: LazyLock<[String; 2]> = LazyLock::new(|| {
    [("from", "to"), ("to", "from")].map(|(end, other)| {
        format!(
            "WITH m AS MATERIALIZED (SELECT DISTINCT ON (from_type, from_id, to_type, to_id, type_id) from_type, \
             from_id, to_type, to_id, type_id, category, label, is_primary FROM ( \
             SELECT {end}_type, $3::text AS {end}_id, {other}_type, {other}_id, type_id, category, label, is_primary \
             FROM associations WHERE portal_id = hubspot_sync_portal() AND {end}_type = $1 AND {end}_id = ANY($2) AND NOT removed \
             AND NOT ({other}_type = $1 AND ({other}_id = $3 OR {other}_id = ANY($2)))) s \
             ORDER BY from_type, from_id, to_type, to_id, type_id), \
             ends AS (SELECT {other}_type AS type_id, {other}_id AS id FROM m UNION SELECT $1, $3), {gate} \
             INSERT INTO associations AS t (from_type, from_id, to_type, to_id, type_id, category, label, is_primary, \
             removed, removed_at, updated_at, synced_at) \
             SELECT m.from_type, m.from_id, m.to_type, m.to_id, m.type_id, m.category, m.label, m.is_primary, \
             {dead}, CASE WHEN {dead} THEN $4::timestamptz END, $4::timestamptz, now() FROM m \
             ORDER BY m.from_type, m.from_id, m.to_type, m.to_id, m.type_id \
             ON CONFLICT (portal_id, from_type, from_id, to_type, to_id, type_id) DO UPDATE SET removed = false, \
             removed_at = NULL, updated_at = excluded.updated_at, synced_at = now() \
             WHERE NOT excluded.removed AND t.removed AND t.updated_at <= excluded.updated_at",
            gate = archived_ends_gate(),
            dead = has_archived_end("m"),
        )
    })
});

/// Moves the live edges of records `merged` (of type `type_id`) to `survivor` at `at`, as
/// HubSpot does on a merge: each edge from or to a merged record is copied to the survivor
/// (live), and the merged records' edges are marked removed. Returns the edges copied.
pub async fn move_edges(
    conn: &mut AsyncPgConnection,
    type_id: &str,
    merged: &[String],
    survivor: &str,
    at: DateTime<Utc>,
) -> diesel::QueryResult<usize> {
    if merged.is_empty() {
        return Ok(0);
    }
    conn.transaction(async |conn| {
        purge_lock_shared(conn).await?;
        let mut copied = 0;
        for sql in MOVE.iter() {
            copied += diesel::sql_query(sql.as_str())
                .bind::<Text, _>(type_id)
                .bind::<Array<Text>, _>(merged)
                .bind::<Text, _>(survivor)
                .bind::<Timestamptz, _>(at)
                .execute(conn)
                .await?;
        }
        mark_removed(conn, type_id, merged, at).await?;
        Ok(copied)
    })
    .await
}

/// Deletes every edge from or to the records `ids` of type `type_id` (a privacy deletion: the
/// record is erased, and so is every trace of it; the `associations_refuse_erased` trigger keeps
/// any later write from naming an erased contact again). Returns the rows deleted.
pub async fn erase(conn: &mut AsyncPgConnection, type_id: &str, ids: &[String]) -> diesel::QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::sql_query(
        "DELETE FROM associations WHERE portal_id = hubspot_sync_portal() \
         AND ((from_type = $1 AND from_id = ANY($2)) OR (to_type = $1 AND to_id = ANY($2)))",
    )
    .bind::<Text, _>(type_id)
    .bind::<Array<Text>, _>(ids)
    .execute(conn)
    .await
}

/// What [`replace_for_sources`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Replaced {
    pub written: usize,
    pub removed: usize,
}

/// Stores what one read said about records `from_ids` (of type `from_type`) and their edges to
/// `to_type`: `edges` are live as of `read_at` (the read's start); their edges stored before
/// `read_at` and not among `edges` are marked removed (HubSpot no longer reports them). An edge
/// written after the read started (an event newer than the read) is left alone.
pub async fn replace_for_sources(
    conn: &mut AsyncPgConnection,
    from_type: &str,
    from_ids: &[String],
    to_type: &str,
    edges: Vec<Edge>,
    read_at: DateTime<Utc>,
) -> diesel::QueryResult<Replaced> {
    let keep: Vec<String> =
        edges.iter().map(|e| format!("{}\u{1f}{}\u{1f}{}", e.from_id, e.to_id, e.type_id)).collect();
    let written =
        upsert(conn, edges.into_iter().map(|edge| EdgeChange { edge, removed: false, at: read_at }).collect()).await?;
    let mut removed = 0;
    for chunk in from_ids.chunks(MAX_BATCH) {
        removed += diesel::sql_query(
            "UPDATE associations a SET removed = true, removed_at = $4, updated_at = $4, synced_at = now() \
             FROM (SELECT from_type, from_id, to_type, to_id, type_id FROM associations \
             WHERE portal_id = hubspot_sync_portal() AND from_type = $1 AND from_id = ANY($2) AND to_type = $3 \
             AND NOT removed AND updated_at < $4 \
             AND NOT (from_id || chr(31) || to_id || chr(31) || type_id::text = ANY($5)) \
             ORDER BY from_type, from_id, to_type, to_id, type_id FOR UPDATE) k \
             WHERE a.portal_id = hubspot_sync_portal() AND a.from_type = k.from_type AND a.from_id = k.from_id \
             AND a.to_type = k.to_type AND a.to_id = k.to_id AND a.type_id = k.type_id",
        )
        .bind::<Text, _>(from_type)
        .bind::<Array<Text>, _>(chunk)
        .bind::<Text, _>(to_type)
        .bind::<Timestamptz, _>(read_at)
        .bind::<Array<Text>, _>(&keep)
        .execute(conn)
        .await?;
    }
    Ok(Replaced { written, removed })
}

/// The records with a live edge to one of `to_ids` (of type `to_type`): `(from_type, from_id)`,
/// sorted, each once.
pub async fn live_sources(
    conn: &mut AsyncPgConnection,
    to_type: &str,
    to_ids: &[String],
) -> diesel::QueryResult<Vec<(String, String)>> {
    #[derive(QueryableByName)]
    struct Source {
        #[diesel(sql_type = Text)]
        from_type: String,
        #[diesel(sql_type = Text)]
        from_id: String,
    }
    let rows: Vec<Source> = diesel::sql_query(
        "SELECT DISTINCT from_type, from_id FROM associations WHERE portal_id = hubspot_sync_portal() AND to_type = $1 \
         AND to_id = ANY($2) AND NOT removed \
         ORDER BY from_type, from_id",
    )
    .bind::<Text, _>(to_type)
    .bind::<Array<Text>, _>(to_ids)
    .load(conn)
    .await?;
    Ok(rows.into_iter().map(|r| (r.from_type, r.from_id)).collect())
}

/// Every stored edge, live or removed, in key order.
pub async fn all(conn: &mut AsyncPgConnection) -> diesel::QueryResult<Vec<StoredEdge>> {
    diesel::sql_query(
        "SELECT from_type, from_id, to_type, to_id, type_id, category, label, is_primary, removed \
         FROM associations WHERE portal_id = hubspot_sync_portal() ORDER BY from_type, from_id, to_type, to_id, type_id",
    )
    .load(conn)
    .await
}

/// Ids of live records of `table` (`contacts`, `deals`, `calls`, keyed by `key`) changed
/// (`synced_at`) since `since`, or all live ones when `since` is `None`; in id order.
pub async fn live_ids(
    conn: &mut AsyncPgConnection,
    table: &str,
    key: &str,
    since: Option<DateTime<Utc>>,
) -> diesel::QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let sql = format!(
        "SELECT {key} AS id FROM {table} WHERE portal_id = hubspot_sync_portal() AND NOT archived AND ($1::timestamptz IS NULL OR synced_at >= $1) \
         ORDER BY {key}"
    );
    let rows: Vec<Id> = diesel::sql_query(sql).bind::<Nullable<Timestamptz>, _>(since).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Ids of archived records of `table` that still have live edges (from or to them).
pub async fn archived_with_live_edges(
    conn: &mut AsyncPgConnection,
    table: &str,
    key: &str,
    type_id: &str,
) -> diesel::QueryResult<Vec<String>> {
    #[derive(QueryableByName)]
    struct Id {
        #[diesel(sql_type = Text)]
        id: String,
    }
    let sql = format!(
        "SELECT r.{key} AS id FROM {table} r WHERE r.portal_id = hubspot_sync_portal() AND r.archived \
         AND (EXISTS (SELECT 1 FROM associations a WHERE a.portal_id = r.portal_id AND a.from_type = $1 \
         AND a.from_id = r.{key} AND NOT a.removed) OR EXISTS (SELECT 1 FROM associations a \
         WHERE a.portal_id = r.portal_id AND a.to_type = $1 AND a.to_id = r.{key} AND NOT a.removed)) ORDER BY r.{key}"
    );
    let rows: Vec<Id> = diesel::sql_query(sql).bind::<Text, _>(type_id).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn change(to: &str, removed: bool, s: i64) -> EdgeChange {
        EdgeChange {
            edge: Edge {
                from_type: "0-1".into(),
                from_id: "1".into(),
                to_type: "0-3".into(),
                to_id: to.into(),
                type_id: 4,
                category: "HUBSPOT_DEFINED".into(),
                label: None,
                is_primary: false,
            },
            removed,
            at: Utc.timestamp_opt(s, 0).single().unwrap(),
        }
    }

    #[test]
    fn newest_change_per_edge_in_key_order() {
        let kept = newest_per_key(vec![change("b", false, 1), change("a", true, 2), change("a", false, 3)]);
        assert_eq!(kept, vec![change("a", false, 3), change("b", false, 1)]);
        // A tie goes to the removal.
        let kept = newest_per_key(vec![change("a", false, 3), change("a", true, 3)]);
        assert_eq!(kept, vec![change("a", true, 3)]);
    }
}

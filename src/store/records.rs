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
//!
//! **Lock order.** Every multi-row write here touches rows in id order, so two writers whose rows
//! overlap (a webhook fetch and a poller page, a deletion and a full pass) wait for each other
//! instead of deadlocking: the upserts take their rows sorted by id ([`newest_per_id`]) and
//! insert them `ORDER BY` id whatever plan PostgreSQL picks, and the archiving `UPDATE`s lock
//! their rows `ORDER BY` id first ([`in_id_order`]) rather than in the scan's order.
//!
//! One exception ([`revived`]): HubSpot does not promise to move `updatedAt` when it restores a
//! record, so a live row from a read that started after the stored row was archived replaces it
//! whatever its `updated_at`: HubSpot said it is live after the deletion we recorded. Merged
//! rows stay final.

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use diesel::pg::Pg;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::sql_types::{Array, Bool, Jsonb, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::accounts::PORTAL_ROWS;
use crate::kind::ObjectKind;

/// The `ON CONFLICT ... DO UPDATE ... WHERE` condition shared by the record upserts; `t` is the
/// stored row, `excluded` the incoming one.
pub const NEWER_WINS: &str = "t.merged_into IS NULL AND (excluded.updated_at > t.updated_at \
     OR (excluded.updated_at = t.updated_at AND NOT t.archived))";

/// The second condition of the record upserts: an archived, unmerged stored row is revived by a
/// live incoming one read by a request that started after the row was archived; parameter
/// `$param` is that start (`NULL`: unknown, the rule does not apply).
pub fn revived(param: usize) -> String {
    format!(
        "(t.merged_into IS NULL AND t.archived AND NOT excluded.archived AND t.archived_at < ${param}::timestamptz)"
    )
}

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
/// that touches the same row twice), sorted by id: concurrent upserts then lock the rows they
/// share in the same order, and so never deadlock on each other.
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
    let mut rows: Vec<T> = by_id.into_values().collect();
    rows.sort_unstable_by(|a, b| id(a).cmp(id(b)));
    rows
}

/// An upsert statement being bound, one array parameter per column.
pub type Upsert<'a> = BoxedSqlQuery<'a, Pg, SqlQuery>;

/// One typed column of a record table, between the id and the columns every record table has.
pub struct Column<R> {
    /// The column's name in the table, and of the `unnest` output column.
    pub name: &'static str,
    /// The element type of its array parameter (`text`, `timestamptz`, `bigint`, ...).
    pub array_of: &'static str,
    /// The value inserted, when not `u.<name>`: a cast or a guard such as
    /// `u.status::deal_status`.
    pub value: Option<&'static str>,
    /// Binds the column's values of `rows`, in order, as one array.
    pub bind: for<'a> fn(Upsert<'a>, &'a [R]) -> Upsert<'a>,
}

/// A row of a record table: its id, the columns every record table has, and its description.
pub trait Record: Sized + Sync + 'static {
    /// The table the rows go to.
    const TABLE: RecordTable;
    /// The columns between the id and `created_at`, in order.
    const COLUMNS: &'static [Column<Self>];
    /// A condition every incoming row `u` must meet to be written at all, if any.
    const ONLY_IF: Option<&'static str> = None;

    fn id(&self) -> &str;
    fn created_at(&self) -> Option<DateTime<Utc>>;
    fn updated_at(&self) -> DateTime<Utc>;
    fn archived(&self) -> bool;
    fn properties(&self) -> &serde_json::Value;
}

/// The multi-row upsert of a record table, derived from its description: one `unnest` of an
/// array parameter per column (id, [`Record::COLUMNS`], `created_at`, `updated_at`, `archived`,
/// `properties`), and on conflict every column replaced under [`NEWER_WINS`] or [`revived`] (the
/// last parameter is the reads' start). A stored row that is archived keeps its first
/// `archived_at` and its `merged_into` only while the incoming row is archived too; a live
/// incoming row clears both.
pub fn upsert_sql<R: Record>() -> String {
    let table = R::TABLE;
    let typed = R::COLUMNS;
    let mut sql = String::with_capacity(2_048);
    let names = typed.iter().map(|c| c.name).collect::<Vec<_>>().join(", ");
    let _ = write!(
        sql,
        "INSERT INTO {name} AS t ({key}, {columns}, created_at, updated_at, archived, archived_at, properties, \
         synced_at) SELECT u.id, {values}, u.created_at, u.updated_at, u.archived, \
         CASE WHEN u.archived THEN now() END, u.properties, now() FROM unnest($1::text[], ",
        name = table.name(),
        key = table.key(),
        columns = names,
        values = typed
            .iter()
            .map(|c| c.value.map_or_else(|| format!("u.{}", c.name), str::to_owned))
            .collect::<Vec<_>>()
            .join(", "),
    );
    for (i, column) in typed.iter().enumerate() {
        let _ = write!(sql, "${}::{}[], ", i + 2, column.array_of);
    }
    let n = typed.len() + 1;
    let _ = write!(
        sql,
        "${}::timestamptz[], ${}::timestamptz[], ${}::bool[], ${}::jsonb[]) \
         AS u(id, {columns}, created_at, updated_at, archived, properties) ",
        n + 1,
        n + 2,
        n + 3,
        n + 4,
        columns = names,
    );
    if let Some(condition) = R::ONLY_IF {
        let _ = write!(sql, "WHERE {condition} ");
    }
    // Rows are bound sorted; the ORDER BY keeps them so whatever the plan (a hash join on
    // ONLY_IF could otherwise emit them in hash order): see "Lock order" above.
    sql.push_str("ORDER BY u.id ");
    let _ = write!(
        sql,
        "ON CONFLICT (portal_id, {key}) DO UPDATE SET {updates}, created_at = excluded.created_at, \
         updated_at = excluded.updated_at, archived = excluded.archived, \
         archived_at = CASE WHEN excluded.archived THEN coalesce(t.archived_at, excluded.archived_at) END, \
         merged_into = CASE WHEN excluded.archived THEN t.merged_into END, \
         properties = excluded.properties, synced_at = excluded.synced_at WHERE ({NEWER_WINS}) OR {revived}",
        key = table.key(),
        updates = typed.iter().map(|c| format!("{0} = excluded.{0}", c.name)).collect::<Vec<_>>().join(", "),
        revived = revived(n + 5),
    );
    sql
}

/// Writes `rows` with `sql` (the table's [`upsert_sql`]) in statements of up to [`MAX_BATCH`]
/// rows, after [`newest_per_id`]; `read_since` is when the reads that returned them started, if
/// known ([`revived`]). Returns the number of rows inserted or changed.
///
/// The statements are pipelined on the connection: each is sent as soon as it is bound, and the
/// next one is bound while PostgreSQL runs it (PostgreSQL runs them one after the other, in id
/// order). Each commits on its own, as before: when one fails, others may be written (the caller
/// then retries every row, which newest-wins makes harmless).
pub async fn upsert_rows<R: Record>(
    conn: &mut AsyncPgConnection,
    sql: &str,
    rows: Vec<R>,
    read_since: Option<DateTime<Utc>>,
) -> diesel::QueryResult<usize> {
    use futures_util::StreamExt;
    let rows = newest_per_id(rows, R::id, R::updated_at);
    let conn: &AsyncPgConnection = conn;
    let mut written = 0;
    let mut sent = futures_util::stream::FuturesOrdered::new();
    for chunk in rows.chunks(MAX_BATCH) {
        let mut statement = upsert_statement(sql, chunk, read_since).execute(&mut { conn });
        // The first poll queues the statement on the connection.
        match futures_util::future::poll_immediate(&mut statement).await {
            Some(result) => written += result?,
            None => sent.push_back(statement),
        }
    }
    while let Some(result) = sent.next().await {
        written += result?;
    }
    Ok(written)
}

/// One upsert statement ([`upsert_rows`]) of up to [`MAX_BATCH`] rows, bound.
fn upsert_statement<'a, R: Record>(sql: &'a str, chunk: &'a [R], read_since: Option<DateTime<Utc>>) -> Upsert<'a> {
    let mut query =
        diesel::sql_query(sql).into_boxed().bind::<Array<Text>, _>(chunk.iter().map(R::id).collect::<Vec<_>>());
    for column in R::COLUMNS {
        query = (column.bind)(query, chunk);
    }
    query
        .bind::<Array<Nullable<Timestamptz>>, _>(chunk.iter().map(R::created_at).collect::<Vec<_>>())
        .bind::<Array<Timestamptz>, _>(chunk.iter().map(R::updated_at).collect::<Vec<_>>())
        .bind::<Array<Bool>, _>(chunk.iter().map(R::archived).collect::<Vec<_>>())
        .bind::<Array<Jsonb>, _>(chunk.iter().map(R::properties).collect::<Vec<_>>())
        .bind::<Nullable<Timestamptz>, _>(read_since)
}

/// A [`Column`] of a row type:
/// `column!("name", "array element type", [sql = "value inserted",] SqlType, |row| value bound)`.
macro_rules! column {
    ($name:literal, $array_of:literal, sql = $sql:literal, $sql_type:ty, |$row:ident| $value:expr) => {
        column!(@ $name, $array_of, Some($sql), $sql_type, |$row| $value)
    };
    ($name:literal, $array_of:literal, $sql_type:ty, |$row:ident| $value:expr) => {
        column!(@ $name, $array_of, None, $sql_type, |$row| $value)
    };
    (@ $name:literal, $array_of:literal, $expr:expr, $sql_type:ty, |$row:ident| $value:expr) => {
        $crate::store::records::Column {
            name: $name,
            array_of: $array_of,
            value: $expr,
            bind: |query, rows| {
                query.bind::<diesel::sql_types::Array<$sql_type>, _>(rows.iter().map(|$row| $value).collect::<Vec<_>>())
            },
        }
    };
}
pub(crate) use column;

/// The [`Record`] accessors every synced row has in common, given the field holding its id.
macro_rules! row_accessors {
    ($id:ident) => {
        fn id(&self) -> &str {
            &self.$id
        }
        fn created_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
            self.created_at
        }
        fn updated_at(&self) -> chrono::DateTime<chrono::Utc> {
            self.updated_at
        }
        fn archived(&self) -> bool {
            self.archived
        }
        fn properties(&self) -> &serde_json::Value {
            &self.properties
        }
    };
}
pub(crate) use row_accessors;

/// `UPDATE {table} SET {set} WHERE {condition}` on the session's portal's rows that locks the rows it changes in id order
/// (`SELECT ... ORDER BY id FOR UPDATE` first), not in the order of whatever scan PostgreSQL
/// picks, so it cannot deadlock with an upsert or another update over the same rows.
/// `condition` names the table's columns unqualified; it is checked again on the locked row.
pub fn in_id_order(table: &str, key: &str, set: &str, condition: &str) -> String {
    format!(
        "UPDATE {table} SET {set} FROM (SELECT {key} AS locked_id FROM {table} WHERE {PORTAL_ROWS} AND {condition} \
         ORDER BY {key} FOR UPDATE) AS locked WHERE {PORTAL_ROWS} AND {key} = locked.locked_id AND {condition}"
    )
}

/// Which of `ids` have an archived row in `table`, sorted.
pub async fn archived_among(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
) -> diesel::QueryResult<Vec<String>> {
    ids_where(conn, table, ids, true).await
}

/// Which of `ids` have a live (not archived) row in `table`, sorted.
pub async fn existing(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
) -> diesel::QueryResult<Vec<String>> {
    ids_where(conn, table, ids, false).await
}

/// One id read back from a record table.
#[derive(diesel::QueryableByName)]
struct IdRow {
    #[diesel(sql_type = Text)]
    id: String,
}

/// Which of `ids` have a row in `table` with `archived` as given, sorted.
async fn ids_where(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
    archived: bool,
) -> diesel::QueryResult<Vec<String>> {
    let sql = format!(
        "SELECT {key} AS id FROM {name} WHERE {PORTAL_ROWS} AND {key} = ANY($1) AND archived = $2 ORDER BY {key}",
        key = table.key(),
        name = table.name()
    );
    let rows: Vec<IdRow> = diesel::sql_query(sql)
        .bind::<Array<Text>, _>(ids)
        .bind::<diesel::sql_types::Bool, _>(archived)
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
}

/// Marks rows archived (deleted in HubSpot, or merged away into `merged_into`). Rows not stored
/// yet are left alone: there is nothing to hide. Returns the number of rows changed.
pub async fn mark_archived(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    ids: &[String],
    merged_into: Option<&str>,
) -> diesel::QueryResult<usize> {
    let sql = in_id_order(
        table.name(),
        table.key(),
        "archived = true, archived_at = coalesce(archived_at, now()), merged_into = coalesce($2, merged_into), \
         synced_at = now()",
        &format!(
            "{key} = ANY($1) AND (NOT archived OR merged_into IS DISTINCT FROM coalesce($2, merged_into))",
            key = table.key()
        ),
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
    let sql = in_id_order(
        table.name(),
        table.key(),
        "archived = true, archived_at = coalesce(archived_at, now()), synced_at = now()",
        &format!("NOT archived AND synced_at < $1 AND updated_at < $1 AND NOT ({key} = ANY($2))", key = table.key()),
    );
    diesel::sql_query(sql)
        .bind::<diesel::sql_types::Timestamptz, _>(since)
        .bind::<Array<Text>, _>(keep)
        .execute(conn)
        .await
}

/// The live rows [`archive_unseen`] would archive whose ids are numerically above `above`: a
/// full pass reads them again before archiving (search pages, which covered those ids, may
/// miss a record their index has not caught up with).
pub async fn unseen_above(
    conn: &mut AsyncPgConnection,
    table: RecordTable,
    since: DateTime<Utc>,
    above: u64,
) -> diesel::QueryResult<Vec<String>> {
    // Ids are digits: longer is larger, equal lengths compare as text (no cast to fail).
    let sql = format!(
        "SELECT {key} AS id FROM {name} WHERE {PORTAL_ROWS} AND NOT archived AND synced_at < $1 AND updated_at < $1 \
         AND (length({key}) > length($2) OR (length({key}) = length($2) AND {key} > $2)) ORDER BY {key}",
        key = table.key(),
        name = table.name()
    );
    let rows: Vec<IdRow> =
        diesel::sql_query(sql).bind::<Timestamptz, _>(since).bind::<Text, _>(above.to_string()).load(conn).await?;
    Ok(rows.into_iter().map(|r| r.id).collect())
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
    let sql = in_id_order(
        table.name(),
        table.key(),
        "archived = true, archived_at = coalesce(archived_at, $2), updated_at = greatest(updated_at, $2), \
         synced_at = now()",
        &format!("{key} = ANY($1) AND updated_at <= $2 AND (NOT archived OR updated_at < $2)", key = table.key()),
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

    /// The statements as they were written by hand before they were derived (measured in
    /// BENCHMARKS.md): the derived ones must say the same, up to spacing.
    fn hand_written(table: RecordTable) -> String {
        match table {
            RecordTable::Contacts => format!(
                "INSERT INTO contacts AS t (hubspot_contact_id, email, first_name, last_name, phone, owner_id, \
             lifecycle_stage, status, created_at, updated_at, archived, archived_at, properties, synced_at) \
         SELECT u.id, u.email, u.first_name, u.last_name, u.phone, u.owner_id, u.lifecycle_stage, u.status, \
             u.created_at, u.updated_at, u.archived, CASE WHEN u.archived THEN now() END, u.properties, now() \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], \
             $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bool[], $12::jsonb[]) \
             AS u(id, email, first_name, last_name, phone, owner_id, lifecycle_stage, status, created_at, \
             updated_at, archived, properties) \
         WHERE NOT EXISTS (SELECT 1 FROM privacy_deletions p WHERE p.portal_id = hubspot_sync_portal() AND p.hubspot_contact_id = u.id) \
         ORDER BY u.id \
         ON CONFLICT (portal_id, hubspot_contact_id) DO UPDATE SET email = excluded.email, \
             first_name = excluded.first_name, last_name = excluded.last_name, phone = excluded.phone, \
             owner_id = excluded.owner_id, lifecycle_stage = excluded.lifecycle_stage, \
             status = excluded.status, created_at = excluded.created_at, updated_at = excluded.updated_at, \
             archived = excluded.archived, \
             archived_at = CASE WHEN excluded.archived THEN coalesce(t.archived_at, excluded.archived_at) END, \
             merged_into = CASE WHEN excluded.archived THEN t.merged_into END, \
             properties = excluded.properties, synced_at = excluded.synced_at \
         WHERE ({NEWER_WINS}) OR (t.merged_into IS NULL AND t.archived AND NOT excluded.archived \
             AND t.archived_at < $13::timestamptz)"
            ),
            RecordTable::Deals => format!(
                "INSERT INTO deals AS t (hubspot_deal_id, deal_name, deal_value, stage, status, close_date, closer_id, \
             pipeline, created_at, updated_at, archived, archived_at, properties, synced_at) \
         SELECT u.id, u.deal_name, \
             CASE WHEN u.deal_value ~ '^\\s*-?[0-9]+(\\.[0-9]+)?\\s*$' THEN u.deal_value::numeric END, \
             u.stage, u.status::deal_status, u.close_date, u.closer_id, u.pipeline, u.created_at, u.updated_at, \
             u.archived, CASE WHEN u.archived THEN now() END, u.properties, now() \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], \
             $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bool[], $12::jsonb[]) \
             AS u(id, deal_name, deal_value, stage, status, close_date, closer_id, pipeline, created_at, \
             updated_at, archived, properties) \
         ORDER BY u.id \
         ON CONFLICT (portal_id, hubspot_deal_id) DO UPDATE SET deal_name = excluded.deal_name, \
             deal_value = excluded.deal_value, stage = excluded.stage, status = excluded.status, \
             close_date = excluded.close_date, closer_id = excluded.closer_id, pipeline = excluded.pipeline, \
             created_at = excluded.created_at, updated_at = excluded.updated_at, archived = excluded.archived, \
             archived_at = CASE WHEN excluded.archived THEN coalesce(t.archived_at, excluded.archived_at) END, \
             merged_into = CASE WHEN excluded.archived THEN t.merged_into END, \
             properties = excluded.properties, synced_at = excluded.synced_at \
         WHERE ({NEWER_WINS}) OR (t.merged_into IS NULL AND t.archived AND NOT excluded.archived \
             AND t.archived_at < $13::timestamptz)"
            ),
            RecordTable::Calls => format!(
                "INSERT INTO calls AS t (hubspot_call_id, title, direction, disposition, status, duration_ms, called_at, \
             owner_id, created_at, updated_at, archived, archived_at, properties, synced_at) \
         SELECT u.id, u.title, u.direction, u.disposition, u.status, u.duration_ms, u.called_at, u.owner_id, \
             u.created_at, u.updated_at, u.archived, CASE WHEN u.archived THEN now() END, u.properties, now() \
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], \
             $7::timestamptz[], $8::text[], $9::timestamptz[], $10::timestamptz[], $11::bool[], $12::jsonb[]) \
             AS u(id, title, direction, disposition, status, duration_ms, called_at, owner_id, created_at, \
             updated_at, archived, properties) \
         ORDER BY u.id \
         ON CONFLICT (portal_id, hubspot_call_id) DO UPDATE SET title = excluded.title, direction = excluded.direction, \
             disposition = excluded.disposition, status = excluded.status, duration_ms = excluded.duration_ms, \
             called_at = excluded.called_at, owner_id = excluded.owner_id, created_at = excluded.created_at, \
             updated_at = excluded.updated_at, archived = excluded.archived, \
             archived_at = CASE WHEN excluded.archived THEN coalesce(t.archived_at, excluded.archived_at) END, \
             merged_into = CASE WHEN excluded.archived THEN t.merged_into END, \
             properties = excluded.properties, synced_at = excluded.synced_at \
         WHERE ({NEWER_WINS}) OR (t.merged_into IS NULL AND t.archived AND NOT excluded.archived \
             AND t.archived_at < $13::timestamptz)"
            ),
        }
    }

    fn spaced(sql: &str) -> String {
        sql.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn derived_upserts_equal_the_hand_written_ones() {
        use crate::store::{calls::CallRow, contacts::ContactRow, deals::DealRow};
        assert_eq!(spaced(&upsert_sql::<ContactRow>()), spaced(&hand_written(RecordTable::Contacts)));
        assert_eq!(spaced(&upsert_sql::<DealRow>()), spaced(&hand_written(RecordTable::Deals)));
        assert_eq!(spaced(&upsert_sql::<CallRow>()), spaced(&hand_written(RecordTable::Calls)));
    }

    #[test]
    fn derived_upserts_keep_the_rules() {
        use crate::store::{calls::CallRow, contacts::ContactRow, deals::DealRow};
        for (sql, table, params) in [
            (upsert_sql::<ContactRow>(), RecordTable::Contacts, ContactRow::COLUMNS.len() + 5),
            (upsert_sql::<DealRow>(), RecordTable::Deals, DealRow::COLUMNS.len() + 5),
            (upsert_sql::<CallRow>(), RecordTable::Calls, CallRow::COLUMNS.len() + 5),
        ] {
            assert!(sql.starts_with(&format!("INSERT INTO {} AS t ({}, ", table.name(), table.key())), "{sql}");
            assert!(sql.contains(&format!("ON CONFLICT (portal_id, {}) DO UPDATE SET ", table.key())), "{sql}");
            assert!(sql.ends_with(&format!("WHERE ({NEWER_WINS}) OR {}", revived(params + 1))), "{sql}");
            // One array parameter per bound column, numbered in order, then the reads' start.
            assert!(sql.contains(&format!("${params}::jsonb[])")), "{sql}");
            assert!(!sql.contains(&format!("${}", params + 2)), "{sql}");
            // A merged-away row keeps its survivor only while it stays archived.
            assert!(sql.contains("merged_into = CASE WHEN excluded.archived THEN t.merged_into END"), "{sql}");
            assert!(!sql.contains("merged_into = excluded"), "{sql}");
        }
        assert!(upsert_sql::<ContactRow>().contains("WHERE NOT EXISTS (SELECT 1 FROM privacy_deletions p"));
        assert!(!upsert_sql::<DealRow>().contains("privacy_deletions"));
        assert!(upsert_sql::<DealRow>().contains("u.status::deal_status"));
    }

    #[test]
    fn deduplicated_rows_come_sorted_by_id() {
        let t = |s| Utc.timestamp_opt(s, 0).single().unwrap();
        let rows = vec![("c", t(1)), ("a", t(1)), ("b", t(1)), ("a", t(2))];
        assert_eq!(newest_per_id(rows, |r| r.0, |r| r.1), vec![("a", t(2)), ("b", t(1)), ("c", t(1))]);
    }
}

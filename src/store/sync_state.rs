//! `sync_state`: per-object progress of the reconciliation poller: the incremental watermark
//! (which only ever moves forward) and the checkpoint of an unfinished full sync, with what that
//! sync could not read or store so far and how many runs in a row failed without moving it.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Integer, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::accounts::in_session_portal;
use super::schema::sync_state;

/// One object's progress.
#[derive(Clone, Debug, PartialEq, Queryable, Selectable)]
#[diesel(table_name = sync_state)]
pub struct SyncState {
    pub sync_type: String,
    pub watermark: Option<DateTime<Utc>>,
    pub full_cursor: Option<String>,
    pub full_started_at: Option<DateTime<Utc>>,
    pub full_completed_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    /// Ids the unfinished full sync could not read or store before its checkpoint.
    pub full_failed_ids: Vec<String>,
    /// The oldest last-modified time among those that failed to store.
    pub full_earliest_failed: Option<DateTime<Utc>>,
    /// Runs in a row that failed without moving the checkpoint.
    pub full_stuck_runs: i32,
}

/// The stored progress of one object, if it ever ran.
pub async fn get(conn: &mut AsyncPgConnection, sync_type: &str) -> QueryResult<Option<SyncState>> {
    sync_state::table
        .select(SyncState::as_select())
        .filter(in_session_portal())
        .filter(sync_state::sync_type.eq(sync_type))
        .first(conn)
        .await
        .optional()
}

/// Moves the watermark to `to` unless it is already later; returns the watermark now stored.
pub async fn advance_watermark(
    conn: &mut AsyncPgConnection,
    sync_type: &str,
    to: DateTime<Utc>,
) -> QueryResult<DateTime<Utc>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Timestamptz)]
        watermark: DateTime<Utc>,
    }
    let row: Row = diesel::sql_query(
        "INSERT INTO sync_state (sync_type, watermark) VALUES ($1, $2) \
         ON CONFLICT (portal_id, sync_type) DO UPDATE SET \
             watermark = greatest(sync_state.watermark, excluded.watermark), updated_at = now() \
         RETURNING watermark",
    )
    .bind::<Text, _>(sync_type)
    .bind::<Timestamptz, _>(to)
    .get_result(conn)
    .await?;
    Ok(row.watermark)
}

/// Starts the checkpoint of a full sync that started at `started_at` (nothing failed yet), so an
/// interrupted one resumes there.
pub async fn save_full_checkpoint(
    conn: &mut AsyncPgConnection,
    sync_type: &str,
    cursor: Option<&str>,
    started_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO sync_state (sync_type, full_cursor, full_started_at) VALUES ($1, $2, $3) \
         ON CONFLICT (portal_id, sync_type) DO UPDATE SET full_cursor = excluded.full_cursor, \
             full_started_at = excluded.full_started_at, full_failed_ids = '{}', full_earliest_failed = NULL, \
             full_stuck_runs = 0, updated_at = now()",
    )
    .bind::<Text, _>(sync_type)
    .bind::<Nullable<Text>, _>(cursor)
    .bind::<Timestamptz, _>(started_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves the checkpoint of the unfinished full sync to `cursor`, adding the ids the pages before
/// it could not read or store (and the oldest last-modified time among those that failed to
/// store), in one statement: a pass interrupted at any point resumes knowing every failure
/// before its checkpoint. The sync is no longer stuck.
pub async fn advance_full_checkpoint(
    conn: &mut AsyncPgConnection,
    sync_type: &str,
    cursor: &str,
    failed_ids: &[String],
    earliest_failed: Option<DateTime<Utc>>,
) -> QueryResult<()> {
    diesel::sql_query(
        "UPDATE sync_state SET full_cursor = $2, \
             full_failed_ids = ARRAY(SELECT DISTINCT unnest(full_failed_ids || $3::text[])), \
             full_earliest_failed = least(full_earliest_failed, $4), full_stuck_runs = 0, updated_at = now() \
         WHERE portal_id = hubspot_sync_portal() AND sync_type = $1",
    )
    .bind::<Text, _>(sync_type)
    .bind::<Text, _>(cursor)
    .bind::<Array<Text>, _>(failed_ids)
    .bind::<Nullable<Timestamptz>, _>(earliest_failed)
    .execute(conn)
    .await?;
    Ok(())
}

/// Counts a run that failed while a full sync is unfinished; returns the runs in a row that failed
/// without moving its checkpoint (`None` when no full sync is unfinished).
pub async fn note_full_failure(conn: &mut AsyncPgConnection, sync_type: &str) -> QueryResult<Option<i32>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Integer)]
        full_stuck_runs: i32,
    }
    let row: Option<Row> = diesel::sql_query(
        "UPDATE sync_state SET full_stuck_runs = full_stuck_runs + 1, updated_at = now() \
         WHERE portal_id = hubspot_sync_portal() AND sync_type = $1 AND full_cursor IS NOT NULL RETURNING full_stuck_runs",
    )
    .bind::<Text, _>(sync_type)
    .get_result(conn)
    .await
    .optional()?;
    Ok(row.map(|r| r.full_stuck_runs))
}

/// Closes a full sync that started at `started_at`: the checkpoint is cleared and the watermark
/// moves up to the start (everything changed since then is fetched by the next incremental run).
pub async fn complete_full_sync(
    conn: &mut AsyncPgConnection,
    sync_type: &str,
    started_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO sync_state (sync_type, watermark, full_started_at, full_completed_at) \
         VALUES ($1, $2, $2, now()) \
         ON CONFLICT (portal_id, sync_type) DO UPDATE SET full_cursor = NULL, full_completed_at = now(), \
             full_failed_ids = '{}', full_earliest_failed = NULL, full_stuck_runs = 0, \
             watermark = greatest(sync_state.watermark, excluded.watermark), updated_at = now()",
    )
    .bind::<Text, _>(sync_type)
    .bind::<Timestamptz, _>(started_at)
    .execute(conn)
    .await?;
    Ok(())
}

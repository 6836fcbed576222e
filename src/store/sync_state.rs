//! `sync_state`: per-object progress of the reconciliation poller: the incremental watermark
//! (which only ever moves forward) and the checkpoint of an unfinished full sync.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

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
}

/// The stored progress of one object, if it ever ran.
pub async fn get(conn: &mut AsyncPgConnection, sync_type: &str) -> QueryResult<Option<SyncState>> {
    sync_state::table.select(SyncState::as_select()).find(sync_type).first(conn).await.optional()
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
         ON CONFLICT (sync_type) DO UPDATE SET \
             watermark = greatest(sync_state.watermark, excluded.watermark), updated_at = now() \
         RETURNING watermark",
    )
    .bind::<Text, _>(sync_type)
    .bind::<Timestamptz, _>(to)
    .get_result(conn)
    .await?;
    Ok(row.watermark)
}

/// Records how far an unfinished full sync got, so an interrupted one resumes there.
pub async fn save_full_checkpoint(
    conn: &mut AsyncPgConnection,
    sync_type: &str,
    cursor: Option<&str>,
    started_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::sql_query(
        "INSERT INTO sync_state (sync_type, full_cursor, full_started_at) VALUES ($1, $2, $3) \
         ON CONFLICT (sync_type) DO UPDATE SET full_cursor = excluded.full_cursor, \
             full_started_at = excluded.full_started_at, updated_at = now()",
    )
    .bind::<Text, _>(sync_type)
    .bind::<Nullable<Text>, _>(cursor)
    .bind::<Timestamptz, _>(started_at)
    .execute(conn)
    .await?;
    Ok(())
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
         ON CONFLICT (sync_type) DO UPDATE SET full_cursor = NULL, full_completed_at = now(), \
             watermark = greatest(sync_state.watermark, excluded.watermark), updated_at = now()",
    )
    .bind::<Text, _>(sync_type)
    .bind::<Timestamptz, _>(started_at)
    .execute(conn)
    .await?;
    Ok(())
}

//! What the drift audit (the `audit` module) reads and writes: every stored id with its HubSpot
//! `updated_at`, the parked count of an object, the audit's own `sync_logs` row (mode `audit`,
//! its counts in `error_details`) and the latest audit per object.

use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Array, BigInt, Bool, Integer, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::StoreError;
use super::records::RecordTable;
use super::sync_logs::{self, RunMode, RunStatus, RunTrigger};
use crate::kind::ObjectKind;

/// One stored row as the audit compares it.
#[derive(Clone, Debug, PartialEq, QueryableByName)]
pub struct StoredRow {
    #[diesel(sql_type = Text)]
    pub id: String,
    /// HubSpot's `updatedAt` of the stored version (owners may have none).
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub updated_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    pub archived: bool,
    /// When this row was last written.
    #[diesel(sql_type = Timestamptz)]
    pub synced_at: DateTime<Utc>,
    /// Archived because the record is outside `HUBSPOT_SYNC_CONFIG`'s filter (not missing).
    #[diesel(sql_type = Bool)]
    pub filtered: bool,
}

/// Every row of `kind`'s table, archived ones included.
pub async fn stored(conn: &mut AsyncPgConnection, kind: ObjectKind) -> Result<Vec<StoredRow>, StoreError> {
    let sql = match RecordTable::for_kind(kind) {
        Some(table) => format!(
            "SELECT {key} AS id, updated_at, archived, synced_at, \
             (archived AND properties ? '_hubspot_sync_filtered') AS filtered FROM {table} \
             WHERE portal_id = hubspot_sync_portal()",
            key = table.key(),
            table = table.name()
        ),
        None => "SELECT id, updated_at, archived, synced_at, false AS filtered FROM staff \
                 WHERE portal_id = hubspot_sync_portal()"
            .to_owned(),
    };
    Ok(diesel::sql_query(sql).load(conn).await?)
}

/// Marks owners archived (HubSpot has them neither active nor archived). Returns rows changed.
pub async fn archive_staff(conn: &mut AsyncPgConnection, ids: &[String]) -> Result<usize, StoreError> {
    Ok(super::staff::archive(conn, ids).await?)
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    present: bool,
}

/// Records of `object` parked in `sync_failures`; 0 while that table does not exist.
pub async fn parked_count(conn: &mut AsyncPgConnection, object: &str) -> Result<i64, StoreError> {
    let table: Exists =
        diesel::sql_query("SELECT to_regclass('sync_failures') IS NOT NULL AS present").get_result(conn).await?;
    if !table.present {
        return Ok(0);
    }
    let count: Count = diesel::sql_query(
        "SELECT count(*) AS n FROM sync_failures WHERE portal_id = hubspot_sync_portal() AND object = $1",
    )
    .bind::<Text, _>(object)
    .get_result(conn)
    .await?;
    Ok(count.n)
}

/// Opens the `running` audit row of one object.
pub async fn start(conn: &mut AsyncPgConnection, object: &str, trigger: RunTrigger) -> Result<Uuid, StoreError> {
    Ok(sync_logs::start_run(conn, object, trigger, RunMode::Audit).await?)
}

/// Closes the `running` audit rows of `object` left by an audit that stopped before its end
/// (call it holding the object's audit lock). Returns the rows closed.
pub async fn fail_abandoned(conn: &mut AsyncPgConnection, object: &str) -> Result<usize, StoreError> {
    Ok(diesel::sql_query(
        "UPDATE sync_logs SET status = 'failed', completed_at = now(), error_details = jsonb_build_object( \
           'error', 'interrupted: the process stopped before recording the end of the audit') \
         WHERE portal_id = hubspot_sync_portal() AND sync_type = $1 AND status = 'running' AND mode = 'audit'",
    )
    .bind::<Text, _>(object)
    .execute(conn)
    .await?)
}

/// How an audit ended.
#[derive(Clone, Debug)]
pub struct AuditEnd {
    pub status: RunStatus,
    /// HubSpot ids compared.
    pub compared: i32,
    /// Drift left at the end (missing, extra and stale after any repair).
    pub drift_left: i32,
    /// The counts and samples (`error_details`).
    pub details: serde_json::Value,
}

/// Finishes an audit row once (a second call changes nothing).
pub async fn finish(conn: &mut AsyncPgConnection, id: Uuid, end: &AuditEnd) -> Result<bool, StoreError> {
    let updated = diesel::sql_query(
        "UPDATE sync_logs SET status = $2, completed_at = now(), \
         duration_ms = greatest(0, (extract(epoch FROM (now() - started_at)) * 1000)::bigint), \
         records_processed = $3, records_failed = $4, error_details = $5 \
         WHERE id = $1 AND status = 'running' AND mode = 'audit'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(end.status)
    .bind::<Integer, _>(end.compared)
    .bind::<Integer, _>(end.drift_left)
    .bind::<Jsonb, _>(&end.details)
    .execute(conn)
    .await?;
    Ok(updated == 1)
}

/// The latest finished audit of one object.
#[derive(Clone, Debug, PartialEq, QueryableByName)]
pub struct LastAudit {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub sync_type: String,
    #[diesel(sql_type = Text)]
    pub status: RunStatus,
    #[diesel(sql_type = Timestamptz)]
    pub completed_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub details: Option<serde_json::Value>,
}

/// The latest finished audit per object, by object name.
pub async fn latest(conn: &mut AsyncPgConnection) -> Result<Vec<LastAudit>, StoreError> {
    Ok(diesel::sql_query(
        "SELECT DISTINCT ON (sync_type) id, sync_type, status, completed_at, error_details AS details \
         FROM sync_logs WHERE portal_id = hubspot_sync_portal() AND platform = 'hubspot' AND mode = 'audit' \
         AND status <> 'running' \
         ORDER BY sync_type, started_at DESC",
    )
    .load(conn)
    .await?)
}

/// Makes live again rows HubSpot has just returned live under their own id (a read that
/// started after any deletion), so the upsert that follows is not refused by an archived row
/// with the same `updated_at`. Rows merged away stay archived. Returns rows changed.
pub async fn unarchive(conn: &mut AsyncPgConnection, table: RecordTable, ids: &[String]) -> Result<usize, StoreError> {
    let sql = super::records::in_id_order(
        table.name(),
        table.key(),
        "archived = false, archived_at = NULL, synced_at = now()",
        &format!("{key} = ANY($1) AND archived AND merged_into IS NULL", key = table.key()),
    );
    Ok(diesel::sql_query(sql).bind::<Array<Text>, _>(ids).execute(conn).await?)
}

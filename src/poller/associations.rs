//! The association sweep (`SCHEDULE_ASSOCIATIONS`, hourly by default; `hubspot-sync sync
//! associations`; `trigger_hubspot_sync('associations')`): one `sync_logs` row of sync type
//! `associations` (mode `incremental`) per sweep.
//!
//! Association changes need not move a record's last-modified date, so no search finds them:
//! without an event, only a read of the associations does. A sweep reads the edges of the
//! records changed since its last good run first (they are the likeliest to have new edges), then
//! of every other live record, to every other object type we keep edges to (v4 batch read, 100
//! ids per call, `Lane::Background`), marks removed what HubSpot no longer reports, and marks
//! removed the edges of archived records. `records_processed` is the records whose edges were
//! read, `records_failed` those HubSpot could not answer for; `error_details.details` holds the
//! edge counts.

use std::collections::HashSet;
use std::time::Instant;

use serde::Serialize;
use uuid::Uuid;

use super::core::{Inner, PollerError};
use crate::hubspot::Lane;
use crate::kind::ObjectKind;
use crate::objects::SyncError;
use crate::objects::associations::{self as edges, EdgeReport};
use crate::store::records::RecordTable;
use crate::store::sync_logs::{self, RunMode, RunOutcome, RunStatus, RunTrigger};
use crate::store::{StoreError, associations};
use crate::telemetry::ErrorChain;

/// The sync type of the sweep's `sync_logs` rows (and the name `sync` and
/// `trigger_hubspot_sync()` take).
pub const SYNC_TYPE: &str = "associations";

/// How a sweep went.
#[derive(Clone, Debug)]
pub struct SweepSummary {
    pub run_id: Uuid,
    pub status: RunStatus,
    pub report: EdgeReport,
    /// Records read first because they changed since the last good sweep.
    pub changed_first: usize,
    pub error: Option<String>,
    pub duration: std::time::Duration,
}

#[derive(Serialize)]
struct Details {
    edges_written: usize,
    edges_removed: usize,
    changed_records_first: usize,
}

/// Opens the sweep's `sync_logs` row (closing a `running` one left by a sweep that stopped).
pub async fn begin(inner: &Inner, trigger: RunTrigger) -> Result<Uuid, PollerError> {
    let mut conn = inner.pool.get().await.map_err(StoreError::from)?;
    // One sweep at a time in this process: a `running` row with none running here was cut off.
    if !inner.sweeping.load(std::sync::atomic::Ordering::SeqCst) {
        sync_logs::fail_abandoned(&mut conn, SYNC_TYPE).await.map_err(StoreError::from)?;
    }
    let id =
        sync_logs::start_run(&mut conn, SYNC_TYPE, trigger, RunMode::Incremental).await.map_err(StoreError::from)?;
    Ok(id)
}

/// Runs the sweep whose row `run_id` is open, and closes the row.
pub async fn execute(inner: &Inner, run_id: Uuid) -> Result<SweepSummary, PollerError> {
    let started = Instant::now();
    inner.sweeping.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut report = EdgeReport::default();
    let mut changed_first = 0;
    let result = sweep(inner, &mut report, &mut changed_first).await;
    inner.sweeping.store(false, std::sync::atomic::Ordering::SeqCst);
    let error = result.err().map(|e| ErrorChain(&e).to_string());
    let details =
        Details { edges_written: report.written, edges_removed: report.removed, changed_records_first: changed_first };
    let outcome = RunOutcome {
        records_processed: i32::try_from(report.records).unwrap_or(i32::MAX),
        records_failed: i32::try_from(report.failed).unwrap_or(i32::MAX),
        fatal_error: error.clone(),
        details: serde_json::to_value(&details).ok(),
    };
    let mut conn = inner.pool.get().await.map_err(StoreError::from)?;
    let status = sync_logs::finish_run(&mut conn, run_id, &outcome)
        .await
        .map_err(StoreError::from)?
        .unwrap_or_else(|| RunStatus::of(&outcome));
    tracing::info!(
        run.id = %run_id, run.status = status.as_str(), records = report.records, edges_written = report.written,
        edges_removed = report.removed, records_failed = report.failed, error = error.as_deref(),
        "association sweep finished"
    );
    Ok(SweepSummary { run_id, status, report, changed_first, error, duration: started.elapsed() })
}

async fn sweep(inner: &Inner, report: &mut EdgeReport, changed_first: &mut usize) -> Result<(), SyncError> {
    let mut conn = inner.pool.get().await?;
    let since = sync_logs::last_good_run(&mut conn, SYNC_TYPE).await?.map(|run| run.started_at);
    for kind in ObjectKind::SYNCED_RECORDS {
        let Some(table) = RecordTable::for_kind(kind) else { continue };
        let mut ids = match since {
            Some(since) => associations::live_ids(&mut conn, table.name(), table.key(), Some(since)).await?,
            None => Vec::new(),
        };
        *changed_first += ids.len();
        let first: HashSet<String> = ids.iter().cloned().collect();
        let all = associations::live_ids(&mut conn, table.name(), table.key(), None).await?;
        ids.extend(all.into_iter().filter(|id| !first.contains(id)));
        report.add(edges::sync_edges(&inner.hubspot, &mut conn, kind, &ids, Lane::Background).await?);
        report.removed += edges::remove_edges_of_archived(&mut conn, kind).await?;
    }
    Ok(())
}

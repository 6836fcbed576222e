//! The drift audit: is the copy exact? For one object it lists every live id with its
//! `updatedAt` from HubSpot as cheaply as the API allows (list pages of 100 asking for
//! `hs_object_id` alone: `ceil(n / 100)` requests; owners: their one list), compares them with
//! PostgreSQL ([`compare`]) and reports
//! - `missing`: live in HubSpot, absent or archived here;
//! - `extra`: live here, not live in HubSpot (deleted, archived or merged away);
//! - `stale`: live in both, older here;
//! - `parked`: records of the object parked in `sync_failures`.
//!
//! With repair ([`repair`]) every id that differs is read again (batch reads of 100) and stored,
//! then those ids are compared again: what still differs is the drift left. Each audit is one
//! `sync_logs` row of mode `audit` (counts in `error_details`), the gauges
//! `hubspot_sync_audit_drift{object,kind}` and `hubspot_sync_audit_drift_left{object}`, and the
//! status API's `last_audit`; drift left after a repair raises an alert (`alerts`). Run by
//! `hubspot-sync audit` and on `SCHEDULE_AUDIT` (with repair) by the scheduling instance.

pub mod compare;
mod repair;

use std::collections::HashMap;

use serde::Serialize;

use crate::hubspot::{HubSpot, HubSpotError, Lane, Record};
use crate::kind::ObjectKind;
use crate::metric;
use crate::objects::{SyncError, WriteContext};
use crate::store::audit::{self as audit_store, AuditEnd};
use crate::store::sync_logs::{RunStatus, RunTrigger};
use crate::store::{self, Pool, StoreError, locks};
use compare::{Drift, Listing, Scope};

/// Ids of each kind of drift kept in the audit's details (the counts are always whole).
pub const SAMPLE: usize = 20;

/// Why an audit could not be done.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("an audit of {0} is already running (in this or another process); try again when it ends")]
    Busy(ObjectKind),
    #[error(transparent)]
    Sync(#[from] SyncError),
}

impl From<StoreError> for AuditError {
    fn from(e: StoreError) -> Self {
        Self::Sync(e.into())
    }
}

impl From<HubSpotError> for AuditError {
    fn from(e: HubSpotError) -> Self {
        Self::Sync(e.into())
    }
}

/// The result of one object's audit (the `--json` element, plus what the text line shows).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub object: String,
    /// Drift found, before any repair.
    pub missing: usize,
    pub extra: usize,
    pub stale: usize,
    pub parked: i64,
    /// Ids of the drift found that no longer differ after the repair.
    pub repaired: usize,
    /// Missing, extra and stale ids still differing at the end.
    pub drift_left: usize,
    /// Live ids HubSpot listed.
    pub hubspot_ids: usize,
    /// The audit's `sync_logs` row.
    pub run_id: Option<uuid::Uuid>,
    /// Why the audit could not complete, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Audits objects against HubSpot. Cheap to clone.
#[derive(Clone)]
pub struct Auditor {
    pool: Pool,
    hubspot: HubSpot,
    write: WriteContext,
}

impl Auditor {
    pub fn new(pool: Pool, hubspot: HubSpot, write: WriteContext) -> Self {
        Self { pool, hubspot, write }
    }

    /// Audits one object (and repairs it when `repair`), recorded as one `sync_logs` row.
    /// `Err` only when it could not start (busy, database down); an audit that fails later is
    /// a `failed` row and a report with its `error`.
    pub async fn audit(&self, kind: ObjectKind, repair: bool, trigger: RunTrigger) -> Result<Report, AuditError> {
        let mut conn = locks::dedicated(&self.pool).await?;
        if !locks::try_lock_audit(&mut conn, kind).await? {
            return Err(AuditError::Busy(kind));
        }
        let abandoned = audit_store::fail_abandoned(&mut conn, kind.as_str()).await?;
        if abandoned > 0 {
            tracing::warn!(object.kind = %kind, audits = abandoned, "closed interrupted audits as failed");
        }
        let run_id = audit_store::start(&mut conn, kind.as_str(), trigger).await?;
        tracing::info!(object.kind = %kind, run.id = %run_id, repair, "drift audit started");
        let mut report = Report { object: kind.as_str().to_owned(), run_id: Some(run_id), ..Report::default() };
        let end = match self.compare_and_repair(&mut conn, kind, repair, &mut report).await {
            Ok(details) => AuditEnd {
                status: if report.drift_left == 0 { RunStatus::Success } else { RunStatus::Partial },
                compared: clamp(report.hubspot_ids),
                drift_left: clamp(report.drift_left),
                details,
            },
            Err(error) => {
                let message = error.to_string();
                tracing::warn!(object.kind = %kind, error = %message, "drift audit failed");
                report.error = Some(message.clone());
                let mut details = details_of(&report, repair, &Drift::default(), &[]);
                details["error"] = serde_json::Value::String(message);
                AuditEnd { status: RunStatus::Failed, compared: clamp(report.hubspot_ids), drift_left: 0, details }
            }
        };
        // The connection may be the casualty; a fresh one records the end.
        if audit_store::finish(&mut conn, run_id, &end).await.is_err() {
            let mut fresh = self.pool.get().await.map_err(StoreError::from)?;
            audit_store::finish(&mut fresh, run_id, &end).await?;
        }
        record_metrics(kind, &report);
        tracing::info!(
            object.kind = %kind, run.id = %run_id, missing = report.missing, extra = report.extra,
            stale = report.stale, parked = report.parked, repaired = report.repaired,
            drift_left = report.drift_left, "drift audit finished"
        );
        Ok(report)
    }

    async fn compare_and_repair(
        &self,
        conn: &mut diesel_async::AsyncPgConnection,
        kind: ObjectKind,
        repair: bool,
        report: &mut Report,
    ) -> Result<serde_json::Value, SyncError> {
        let started = store::db_now(conn).await?;
        let (mut listing, owners) = self.list(kind).await?;
        report.hubspot_ids = listing.len();
        let stored = audit_store::stored(conn, kind).await?;
        report.parked = audit_store::parked_count(conn, kind.as_str()).await?;
        let found = compare::compare(&listing, &stored, Scope::Everything { since: started });
        (report.missing, report.extra, report.stale) = (found.missing.len(), found.extra.len(), found.stale.len());
        let mut left = found.clone();
        let mut failed = Vec::new();
        if repair && found.total() > 0 {
            let ids = found.ids();
            // Its reads start after the listing: a row archived here before it that HubSpot answers
            // live was restored, whatever its `updatedAt`.
            let write = WriteContext { read_since: Some(started), ..self.write.clone() };
            let done = repair::repair(kind, &ids, &mut listing, &owners, &self.hubspot, conn, &write).await?;
            failed = done.failed;
            let stored = audit_store::stored(conn, kind).await?;
            left = compare::compare(&listing, &stored, Scope::Only(&ids));
        }
        report.drift_left = left.total();
        report.repaired = found.total().saturating_sub(left.total());
        Ok(details_of(report, repair, &left, &failed))
    }

    /// Every live id with its `updatedAt`, and the owner records themselves (they come whole).
    async fn list(&self, kind: ObjectKind) -> Result<(Listing, HashMap<String, Record>), HubSpotError> {
        let mut listing = Listing::new();
        let mut owners = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.hubspot.list_ids_page(kind, after.as_deref(), Lane::Background).await?;
            for invalid in &page.invalid {
                tracing::warn!(object.kind = %kind, hubspot.id = ?invalid.id, reason = %invalid.reason,
                    "audit: a listed record has no readable updatedAt");
            }
            for record in page.records {
                listing.insert(record.id.clone(), record.updated_at);
                if kind == ObjectKind::Owners {
                    owners.insert(record.id.clone(), record);
                }
            }
            match page.next {
                Some(next) if after.as_deref() != Some(next.as_str()) => after = Some(next),
                _ => return Ok((listing, owners)),
            }
        }
    }
}

fn clamp(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The audit's `error_details`: counts found, what is left, a sample of the ids left.
fn details_of(
    report: &Report,
    repair: bool,
    left: &Drift,
    failed: &[crate::objects::FailedRecord],
) -> serde_json::Value {
    let sample = |ids: &[String]| ids.iter().take(SAMPLE).cloned().collect::<Vec<_>>();
    serde_json::json!({
        "missing": report.missing,
        "extra": report.extra,
        "stale": report.stale,
        "parked": report.parked,
        "repair": repair,
        "repaired": report.repaired,
        "drift_left": report.drift_left,
        "hubspot_ids": report.hubspot_ids,
        "left": {
            "missing": sample(&left.missing),
            "extra": sample(&left.extra),
            "stale": sample(&left.stale),
        },
        "refused": failed.iter().take(SAMPLE).collect::<Vec<_>>(),
    })
}

fn record_metrics(kind: ObjectKind, report: &Report) {
    if report.error.is_some() {
        return;
    }
    for (name, value) in [
        ("missing", report.missing as f64),
        ("extra", report.extra as f64),
        ("stale", report.stale as f64),
        ("parked", report.parked as f64),
    ] {
        metrics::gauge!(metric::AUDIT_DRIFT, "object" => kind.as_str(), "kind" => name).set(value);
    }
    metrics::gauge!(metric::AUDIT_DRIFT_LEFT, "object" => kind.as_str()).set(report.drift_left as f64);
}

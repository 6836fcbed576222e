//! `hubspot-sync audit <object>... [--repair] [--json]`: compares HubSpot's live ids and
//! `updatedAt` with PostgreSQL and reports `missing`, `extra`, `stale` and `parked` per object
//! (see `crate::audit`); `--repair` reads again and stores what differs. One `sync_logs` row per
//! object (mode `audit`, trigger `manual`). Exit 0 when no drift is left, 1 when some is (or an
//! audit could not be done), 2 on bad usage.

use std::process::ExitCode;

use anyhow::Context as _;

use crate::audit::{Auditor, Report};
use crate::config::{CopySettings, DatabaseSettings, HubSpotSettings, OwnerSettings};
use crate::kind::ObjectKind;
use crate::store::sync_logs::RunTrigger;

use super::error::CliError;
use super::sync::{SyncTarget, kinds_of, parse_target};

#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Objects to audit: contacts, deals, calls, owners, or all.
    #[arg(required = true, value_name = "OBJECT", value_parser = parse_target)]
    pub objects: Vec<SyncTarget>,
    /// Read again and store every id that differs (batch reads of 100), then check them again.
    #[arg(long)]
    pub repair: bool,
    /// Print a JSON array of {"object", "missing", "extra", "stale", "parked", "repaired", ...}.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub hubspot: HubSpotSettings,
    #[command(flatten)]
    pub owners: OwnerSettings,
    #[command(flatten)]
    pub copy: CopySettings,
    #[command(flatten)]
    pub account: super::scope::AccountArg,
}

impl AuditArgs {
    /// The objects named, in a stable order, each once.
    pub fn kinds(&self) -> Vec<ObjectKind> {
        kinds_of(&self.objects)
    }
}

pub async fn run(args: AuditArgs) -> Result<ExitCode, CliError> {
    if args.account.account.is_none() {
        args.hubspot.access_token()?;
    }
    let copy = args.copy.load()?.supported()?;
    let (pool, hubspot) =
        super::scope::scoped(&args.account, &args.database, &args.hubspot, "hubspot-sync audit").await?;
    hubspot.access_token()?;
    // Repairs write as the sync does: records outside the filter archived, the properties kept.
    let (write, hubspot) = super::sync::writer_and_client(&args.owners, &hubspot, copy)?;
    let auditor = Auditor::new(pool, hubspot, write);
    let kinds = args.kinds();
    let audits = kinds.iter().map(|kind| auditor.audit(*kind, args.repair, RunTrigger::Manual));
    let results = futures_util::future::join_all(audits).await;
    let mut reports = Vec::new();
    let mut clean = true;
    for (kind, result) in kinds.iter().zip(results) {
        match result {
            Ok(report) => {
                clean &= report.drift_left == 0 && report.error.is_none();
                reports.push(report);
            }
            Err(e) => {
                clean = false;
                let error = format!("{e:#}");
                eprintln!("{kind:<9} not audited: {error}");
                reports.push(Report { object: kind.as_str().to_owned(), error: Some(error), ..Report::default() });
            }
        }
    }
    if args.json {
        let text = serde_json::to_string_pretty(&reports).context("cannot print the reports as JSON")?;
        println!("{text}");
    } else {
        for report in &reports {
            println!("{}", line(report, args.repair));
        }
    }
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The text line of one object's audit.
fn line(r: &Report, repair: bool) -> String {
    let mut out = format!(
        "{:<9} missing {:>6}  extra {:>6}  stale {:>6}  parked {:>6}",
        r.object, r.missing, r.extra, r.stale, r.parked
    );
    if repair {
        out.push_str(&format!("  repaired {:>6}", r.repaired));
    }
    out.push_str(&format!("  left {:>6}  ({} ids in HubSpot)", r.drift_left, r.hubspot_ids));
    if let Some(error) = &r.error {
        out.push_str(&format!("\n          error: {error}"));
    } else if r.drift_left > 0 && !repair {
        out.push_str("\n          run again with --repair to fetch what differs");
    }
    out
}

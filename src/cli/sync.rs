//! `hubspot-sync sync <object>... [--full]`: one reconciliation run per object now, the objects
//! in parallel under the shared HubSpot budget, each recorded in `sync_logs` with trigger
//! `manual`; `associations` runs the association sweep after them. Exit 0 when every run is `success` or `partial`, 1 when any is `failed`.
//!
//! On a terminal, a progress line per object (records, pages, rate, ETA when the total is known);
//! elsewhere a plain log line per object every few seconds.

mod progress;

use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::{CopySettings, DatabaseSettings, HubSpotSettings, OwnerSettings};
use crate::hubspot::{ClientOptions, HubSpot};
use crate::kind::ObjectKind;
use crate::objects::WriteContext;
use crate::poller::{Mode, Poller, PollerOptions, RunStatus, RunSummary, Trigger};

use super::error::CliError;

/// `all` or one object kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncTarget {
    All,
    One(ObjectKind),
    /// The association sweep (`sync` only).
    Associations,
}

/// Parses one `OBJECT` argument (`sync` and `audit` take the same ones).
pub(super) fn parse_target(raw: &str) -> Result<SyncTarget, String> {
    if raw == "all" {
        return Ok(SyncTarget::All);
    }
    if raw == crate::poller::associations::SYNC_TYPE {
        return Ok(SyncTarget::Associations);
    }
    raw.parse::<ObjectKind>().map(SyncTarget::One).map_err(|e| format!("{e}, associations, or all"))
}

#[derive(clap::Args, Debug)]
pub struct SyncArgs {
    /// Objects to sync: contacts, deals, calls, owners, all, or associations (the association
    /// sweep).
    #[arg(required = true, value_name = "OBJECT", value_parser = parse_target)]
    pub objects: Vec<SyncTarget>,
    /// Fetch everything instead of what changed since the last good run.
    #[arg(long)]
    pub full: bool,
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

impl SyncArgs {
    /// The objects named, in a stable order, each once.
    pub fn kinds(&self) -> Vec<ObjectKind> {
        kinds_of(&self.objects)
    }
}

/// The objects `targets` name, in a stable order, each once.
pub(super) fn kinds_of(targets: &[SyncTarget]) -> Vec<ObjectKind> {
    let mut kinds: Vec<ObjectKind> = targets
        .iter()
        .flat_map(|t| match t {
            SyncTarget::All => ObjectKind::ALL.to_vec(),
            SyncTarget::One(kind) => vec![*kind],
            SyncTarget::Associations => Vec::new(),
        })
        .collect();
    kinds.sort();
    kinds.dedup();
    kinds
}

/// How a one-off command writes (as `serve` does: records outside `HUBSPOT_SYNC_CONFIG`'s filter
/// archived) and the HubSpot client asking for the properties the file keeps.
pub(super) fn writer_and_client(
    owners: &OwnerSettings,
    hubspot: &HubSpotSettings,
    copy: crate::config::CopyConfig,
) -> Result<(WriteContext, HubSpot), CliError> {
    let write = WriteContext {
        owner_role: owners.owner_role.clone(),
        filters: crate::config::file::LiveFilters::new(copy.filters()),
        ..WriteContext::default()
    };
    let client = ClientOptions { copy, ..ClientOptions::default() };
    let hubspot = HubSpot::with_options(hubspot, client).context("cannot set up the HubSpot client")?;
    Ok((write, hubspot))
}

pub async fn run(args: SyncArgs) -> Result<ExitCode, CliError> {
    if args.account.account.is_none() {
        args.hubspot.access_token()?;
    }
    let copy = args.copy.load()?.supported()?;
    let (pool, hubspot) =
        super::scope::scoped(&args.account, &args.database, &args.hubspot, "hubspot-sync sync").await?;
    hubspot.access_token()?;
    let (write, hubspot) = writer_and_client(&args.owners, &hubspot, copy)?;
    let poller = Poller::new(pool, hubspot, PollerOptions { write, ..PollerOptions::default() });
    let mode = if args.full { Mode::Full } else { Mode::Incremental };
    let kinds = args.kinds();
    let display = progress::Display::start(poller.clone(), kinds.clone());
    let runs = kinds.iter().map(|kind| poller.run(*kind, mode, Trigger::Manual));
    let results = futures_util::future::join_all(runs).await;
    display.stop().await;
    let mut failed = false;
    if args.objects.contains(&SyncTarget::Associations) {
        match poller.sweep_associations(Trigger::Manual).await {
            Ok(s) => {
                failed |= s.status == RunStatus::Failed;
                println!(
                    "{:<12} {:<8} {:>8} records {:>6} failed {:>8} edges written {:>6} removed {:>8.1} s  run {}",
                    "associations",
                    s.status.as_str(),
                    s.report.records,
                    s.report.failed,
                    s.report.written,
                    s.report.removed,
                    s.duration.as_secs_f64(),
                    s.run_id
                );
                if let Some(error) = &s.error {
                    println!("          error: {error}");
                }
            }
            Err(e) => {
                failed = true;
                println!("associations not run: {e:#}");
            }
        }
    }
    for (kind, result) in kinds.iter().zip(results) {
        match result {
            Ok(summary) => {
                failed |= summary.status == RunStatus::Failed;
                println!("{}", line(&summary));
            }
            Err(e) => {
                failed = true;
                println!("{kind:<9} not run: {e:#}");
            }
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The summary line of one run.
fn line(s: &RunSummary) -> String {
    let mut out = format!(
        "{:<9} {:<8} {:<12} {:>8} records {:>6} failed {:>6} pages {:>8.1} s  run {}",
        s.kind.as_str(),
        s.status.as_str(),
        s.mode.as_str(),
        s.records_processed,
        s.records_failed,
        s.pages,
        s.duration.as_secs_f64(),
        s.run_id
    );
    if let Some(error) = &s.error {
        out.push_str(&format!("\n          error: {error}"));
    }
    out
}

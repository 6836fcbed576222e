//! `hubspot-sync status [--json]`: the latest run per object (`get_latest_sync_status()`).

use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::DatabaseSettings;
use crate::kind::ObjectKind;
use crate::store::sync_logs::{self, LatestStatus};

use super::CliError;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print the rows of get_latest_sync_status() as a JSON array.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseSettings,
}

pub async fn run(args: StatusArgs) -> Result<ExitCode, CliError> {
    let target = args.database.target()?;
    let mut conn = target.connect("hubspot-sync status").await.context("cannot connect to the database")?;
    let rows = sync_logs::latest_status(&mut conn).await.context("cannot read get_latest_sync_status()")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).context("cannot encode the status")?);
    } else {
        print!("{}", table(&rows));
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per object (those never run say so), then any other sync types found.
pub fn table(rows: &[LatestStatus]) -> String {
    let mut out = format!(
        "{:<10} {:<9} {:<25} {:>9} {:>7} {:>11}\n",
        "OBJECT", "STATUS", "LAST SYNC (UTC)", "PROCESSED", "FAILED", "DURATION"
    );
    let known = ObjectKind::ALL.map(ObjectKind::as_str);
    let extra = rows.iter().map(|r| r.sync_type.as_str()).filter(|t| !known.contains(t));
    for sync_type in known.into_iter().chain(extra) {
        match rows.iter().find(|r| r.sync_type == sync_type) {
            Some(r) => out.push_str(&format!(
                "{:<10} {:<9} {:<25} {:>9} {:>7} {:>11}\n",
                r.sync_type,
                r.status,
                r.last_sync_time.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
                r.records_processed,
                r.records_failed,
                r.duration_ms.map(|ms| format!("{ms} ms")).unwrap_or_default(),
            )),
            None => out.push_str(&format!("{sync_type:<10} {:<9}\n", "never")),
        }
    }
    out
}

//! `hubspot-sync status [--json]`: the latest run per object (`get_latest_sync_status()`).

use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::DatabaseSettings;
use crate::kind::ObjectKind;
use crate::store::accounts;
use crate::store::sync_logs::{self, LatestStatus};

use super::error::CliError;

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Print the rows of get_latest_sync_status() as a JSON array.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub database: DatabaseSettings,
    /// The HubSpot portal id of the account whose runs to show (default: the default account).
    #[arg(long, value_name = "PORTAL_ID", value_parser = clap::value_parser!(i64).range(0..))]
    pub account: Option<i64>,
}

/// Exit 0 with the rows; 1 when the database cannot be reached or is not migrated (saying so).
pub async fn run(args: StatusArgs) -> Result<ExitCode, CliError> {
    let target = args.database.target()?;
    let mut conn = target
        .connect("hubspot-sync status")
        .await
        .context("cannot connect to the database (check DATABASE_URL and that PostgreSQL is running)")?;
    super::migrate::check_migrated(&mut conn).await?;
    if let Some(portal_id) = args.account {
        if accounts::get(&mut conn, portal_id).await.context("cannot read the accounts")?.is_none() {
            return Err(
                anyhow::anyhow!("no account has portal id {portal_id} (see `hubspot-sync accounts list`)").into()
            );
        }
        accounts::enter(&mut conn, portal_id).await.context("cannot select the account")?;
    }
    let rows = sync_logs::latest_status(&mut conn).await.context("cannot read get_latest_sync_status()")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows).context("cannot encode the status")?);
    } else {
        print!("{}", table(&rows));
        if rows.is_empty() {
            let missing = ObjectKind::ALL.map(ObjectKind::as_str).join(", ");
            eprintln!("no runs recorded yet ({missing}): run `hubspot-sync sync all`, or let `serve` run its schedule");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The rows of `get_latest_sync_status()` as a table: the same rows, in the same order, as
/// `status --json`.
pub fn table(rows: &[LatestStatus]) -> String {
    let mut out = format!(
        "{:<10} {:<9} {:<25} {:>9} {:>7} {:>11}\n",
        "OBJECT", "STATUS", "LAST SYNC (UTC)", "PROCESSED", "FAILED", "DURATION"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<10} {:<9} {:<25} {:>9} {:>7} {:>11}\n",
            r.sync_type,
            r.status,
            r.last_sync_time.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
            r.records_processed,
            r.records_failed,
            r.duration_ms.map(|ms| format!("{ms} ms")).unwrap_or_default(),
        ));
    }
    out
}

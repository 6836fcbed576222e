//! The command line: one binary, roles as subcommands (`serve`, `migrate`, `sync`, `audit`,
//! `status`, `alert-test`, `demo`, `config`, `accounts`). Each subcommand flattens the settings it reads, so its `--help` lists them.
//!
//! Exit codes: 0 ok; 1 a failed run or an error at run time; 2 bad usage or a missing or invalid
//! setting (reported by name before anything else happens); 3 a port is already in use (the
//! message names `PORT` or `METRICS_PORT`).

mod accounts;
mod alert_test;
mod audit;
mod config;
mod demo;
mod error;
mod migrate;
mod scope;
mod serve;
mod status;
mod sync;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;
use crate::telemetry;

pub use error::CliError;
pub use serve::ServeArgs;

#[derive(Parser, Debug)]
#[command(
    name = "hubspot-sync",
    version,
    about = "Keeps a PostgreSQL copy of a HubSpot CRM account current in near real time"
)]
pub struct Cli {
    /// Log output: pretty (default on a terminal) or json (default elsewhere). RUST_LOG sets levels.
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", global = true)]
    pub log_format: Option<LogFormat>,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: the size of a variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Webhook receiver, batch fetchers, reconciliation poller, status API and page.
    Serve(serve::ServeArgs),
    /// Applies pending migrations, then exits.
    Migrate(migrate::MigrateArgs),
    /// One reconciliation run per object now, recorded in sync_logs.
    Sync(sync::SyncArgs),
    /// Compares HubSpot's ids and updatedAt with PostgreSQL: missing, extra, stale, parked per object.
    Audit(audit::AuditArgs),
    /// Latest run per object, as a table or JSON.
    Status(status::StatusArgs),
    /// Sends a test alert through every configured channel (webhook, e-mail); exit 1 if one fails.
    AlertTest(alert_test::AlertTestArgs),
    /// Checks HUBSPOT_SYNC_CONFIG (config check) or prints a starting one (config suggest OBJECT).
    Config(config::ConfigArgs),
    /// Manages the HubSpot accounts of a multi-account database (add, list, remove).
    Accounts(accounts::AccountsArgs),
    /// serve plus a bundled simulator emitting signed webhooks, with a private PostgreSQL.
    Demo(demo::DemoArgs),
}

/// Entry point of the `hubspot-sync` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn run(command: Command) -> Result<ExitCode, CliError> {
    match command {
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(args) => migrate::run(args).await,
        Command::Sync(args) => sync::run(args).await,
        Command::Audit(args) => audit::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::AlertTest(args) => alert_test::run(args).await,
        Command::Config(args) => config::run(args).await,
        Command::Accounts(args) => accounts::run(args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_printed_by_its_parent_is_not_repeated() {
        let store = crate::store::StoreError::Migration("relation \"contacts\" already exists".into());
        let err = CliError::from(anyhow::Error::from(store).context("cannot apply the migrations"));
        assert_eq!(
            err.to_string(),
            "cannot apply the migrations: migration failed: relation \"contacts\" already exists"
        );
        let plain = CliError::from(anyhow::anyhow!("inner").context("outer"));
        assert_eq!(plain.to_string(), "outer: inner");
    }
}

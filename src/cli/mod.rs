//! The command line: one binary, roles as subcommands (`serve`, `migrate`, `sync`, `status`,
//! `demo`). Each subcommand flattens the settings it reads, so its `--help` lists them.
//!
//! Exit codes: 0 ok; 1 a failed run or an error at run time; 2 bad usage or a missing or invalid
//! setting (reported by name before anything else happens).

mod demo;
mod migrate;
mod serve;
mod status;
mod sync;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{ConfigError, LogFormat};
use crate::telemetry;

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

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Webhook receiver, batch fetchers, reconciliation poller, status API and page.
    Serve(serve::ServeArgs),
    /// Applies pending migrations, then exits.
    Migrate(migrate::MigrateArgs),
    /// One reconciliation run per object now, recorded in sync_logs.
    Sync(sync::SyncArgs),
    /// Latest run per object, as a table or JSON.
    Status(status::StatusArgs),
    /// serve plus a bundled simulator emitting signed webhooks, with a private PostgreSQL.
    Demo(demo::DemoArgs),
}

/// Why a command did not succeed, and so which exit code it gets.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{}", causes(.0))]
    Failed(#[from] anyhow::Error),
}

/// An error and its causes joined with `: ` (as `{:#}` does), leaving out a cause whose text
/// its parent already ends with: errors such as `StoreError` print their cause and also return
/// it as `source()`, and the line should not repeat it.
fn causes(error: &anyhow::Error) -> String {
    let mut text = String::new();
    let mut parent = String::new();
    for cause in error.chain() {
        let current = cause.to_string();
        if !parent.ends_with(&current) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&current);
        }
        parent = current;
    }
    text
}

impl CliError {
    fn exit_code(&self) -> ExitCode {
        match self {
            Self::Config(_) => ExitCode::from(2),
            Self::Failed(_) => ExitCode::from(1),
        }
    }
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
        Command::Status(args) => status::run(args).await,
        Command::Demo(args) => demo::run(args).await,
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

//! `hubspot-sync migrate`: applies pending migrations (Fly's release command).

use std::process::ExitCode;

use crate::config::DatabaseSettings;
use crate::store::migrations;

use super::CliError;

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
}

pub async fn run(args: MigrateArgs) -> Result<ExitCode, CliError> {
    let target = args.database.target()?;
    let applied = migrations::run_pending(&target).await.map_err(anyhow::Error::from)?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        for version in &applied {
            println!("applied {version}");
        }
        println!("{} migration(s) applied", applied.len());
    }
    Ok(ExitCode::SUCCESS)
}

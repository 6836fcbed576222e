//! `hubspot-sync demo`: serve plus a bundled simulator and a private PostgreSQL. It lands with
//! issue 6; until then it says it is not available yet.

use std::process::ExitCode;

use anyhow::anyhow;

use super::CliError;
use super::serve::ServeArgs;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub async fn run(_args: DemoArgs) -> Result<ExitCode, CliError> {
    Err(anyhow!("demo is not yet available in this build (it lands with issue 6)").into())
}

//! `hubspot-sync serve`: the long-running process. So far: health and readiness probes with
//! graceful shutdown on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;

use crate::app::AppState;
use crate::config::{
    DatabaseSettings, HubSpotSettings, OwnerSettings, ScheduleSettings, ServerSettings, WebhookSettings,
};
use crate::runtime::{self, ServeOptions};
use crate::store;

use super::CliError;

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub hubspot: HubSpotSettings,
    #[command(flatten)]
    pub webhooks: WebhookSettings,
    #[command(flatten)]
    pub server: ServerSettings,
    #[command(flatten)]
    pub schedules: ScheduleSettings,
    #[command(flatten)]
    pub owners: OwnerSettings,
}

impl ServeArgs {
    /// Checks the settings and builds what the server needs; no connection is opened yet.
    pub fn options(&self) -> Result<ServeOptions, CliError> {
        let target = self.database.target()?;
        let pool =
            store::build_pool(&target, &self.database.pool_options("hubspot-sync")).map_err(anyhow::Error::from)?;
        Ok(ServeOptions {
            bind: SocketAddr::new(self.server.bind, self.server.port),
            shutdown_grace: self.server.shutdown_grace,
            state: AppState { pool },
        })
    }
}

pub async fn run(args: ServeArgs) -> Result<ExitCode, CliError> {
    let server = runtime::start(args.options()?)?;
    let token = server.shutdown_token();
    tokio::spawn(async move {
        runtime::termination_signal().await;
        token.cancel();
    });
    server.wait().await?;
    tracing::info!("stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

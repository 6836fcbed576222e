//! `hubspot-sync demo`: the whole product on one machine with one command. A private PostgreSQL
//! under `./.hubspot-sync/` (when `DATABASE_URL` is unset), the migrations, an in-process
//! `hubspot-sim` that changes records at a steady rate and delivers signed webhooks for them,
//! and `serve` against both. Ctrl-C stops `serve` (which drains its queue), then the simulator,
//! then PostgreSQL.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use hubspot_sim::{Sim, SimHandle, SimOptions, WebhookConfig};

use super::CliError;
use super::serve::{self, ServeArgs};
use crate::config::{Secret, SecretList};
use crate::localpg::{LocalPgOptions, LocalPostgres};
use crate::store::migrations;

#[derive(clap::Args, Debug)]
pub struct DemoArgs {
    /// Changes per second the bundled simulator makes (each delivered as a signed webhook).
    #[arg(long, env = "DEMO_CHURN_PER_S", value_name = "DEMO_CHURN_PER_S", default_value_t = 2.0)]
    pub churn_per_s: f64,
    /// Contacts in the simulated account (deals, calls and owners scale with it).
    #[arg(long, env = "DEMO_CONTACTS", value_name = "DEMO_CONTACTS", default_value_t = 2_000)]
    pub contacts: usize,
    /// Where the private PostgreSQL keeps its data when `DATABASE_URL` is unset.
    #[arg(long, env = "DEMO_DATA_DIR", value_name = "DEMO_DATA_DIR", default_value = ".hubspot-sync/postgres")]
    pub data_dir: PathBuf,
    #[command(flatten)]
    pub serve: ServeArgs,
}

pub async fn run(mut args: DemoArgs) -> Result<ExitCode, CliError> {
    let postgres = match args.serve.database.database_url {
        Some(_) => None,
        None => {
            let pg = start_postgres(args.data_dir.clone()).await?;
            args.serve.database.database_url = Some(Secret::new(pg.url()));
            Some(pg)
        }
    };
    let target = args.serve.database.target()?;
    migrations::run_pending(&target).await.context("cannot apply the migrations")?;

    let client_secret = random_token();
    let sim = start_sim(&args, &client_secret).await?;
    point_serve_at_sim(&mut args.serve, &sim, &client_secret)?;
    print_banner(&args, &sim, postgres.as_ref());

    let outcome = serve::run(args.serve).await;
    sim.shutdown().await;
    if let Some(pg) = postgres {
        pg.stop().await;
    }
    outcome
}

async fn start_postgres(data_dir: PathBuf) -> anyhow::Result<LocalPostgres> {
    eprintln!("starting a private PostgreSQL in {} ...", data_dir.display());
    let options = LocalPgOptions { data_dir: Some(data_dir), ..Default::default() };
    let pg = tokio::task::spawn_blocking(move || LocalPostgres::start(options))
        .await
        .context("the PostgreSQL starter panicked")?
        .context("cannot start a private PostgreSQL (or set DATABASE_URL)")?;
    Ok(pg)
}

async fn start_sim(args: &DemoArgs, client_secret: &str) -> anyhow::Result<SimHandle> {
    let webhook_url = format!("http://127.0.0.1:{}/webhooks/hubspot", args.serve.server.port);
    let contacts = args.contacts.max(10);
    let options = SimOptions {
        contacts,
        deals: contacts / 3,
        calls: contacts,
        owners: 20,
        requests_per_10s: 0,
        churn_per_s: args.churn_per_s.max(0.0),
        webhook: Some(WebhookConfig::new(webhook_url, client_secret)),
        ..Default::default()
    };
    Sim::start(options).await.context("cannot start the HubSpot simulator")
}

/// Makes `serve` call the simulator and accept its webhooks; keeps an admin token the user set.
fn point_serve_at_sim(serve: &mut ServeArgs, sim: &SimHandle, client_secret: &str) -> anyhow::Result<()> {
    serve.hubspot.hubspot_api_base = sim.url().parse().context("the simulator's URL")?;
    serve.hubspot.hubspot_access_token = Some(Secret::new("demo-token"));
    serve.webhooks.hubspot_client_secret = Some(client_secret.parse::<SecretList>().map_err(anyhow::Error::msg)?);
    serve.webhooks.public_url = None;
    if serve.server.admin_token.is_none() {
        serve.server.admin_token = Some(Secret::new(random_token()));
    }
    Ok(())
}

fn print_banner(args: &DemoArgs, sim: &SimHandle, postgres: Option<&LocalPostgres>) {
    let port = args.serve.server.port;
    let admin = args.serve.server.admin_token.as_ref().map(|t| t.expose().to_owned()).unwrap_or_default();
    let database = match postgres {
        Some(pg) => format!("{} (data in {})", pg.url(), pg.data_dir().display()),
        None => "DATABASE_URL".to_owned(),
    };
    println!(
        "\nhubspot-sync demo is running\n  status page:  http://127.0.0.1:{port}/\n  admin token:  {admin}  \
         (for the force-sync buttons)\n  metrics:      http://127.0.0.1:{}/metrics\n  simulator:    {}\n  \
         database:     {database}\nPress Ctrl-C to stop.\n",
        args.serve.server.metrics_port,
        sim.url(),
    );
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

//! `hubspot-sim` command line: serves the simulator until Ctrl-C / SIGTERM.

use clap::Parser;
use hubspot_sim::{Sim, SimOptions, WebhookConfig};
use std::net::IpAddr;

/// A HubSpot CRM API simulator (see sim/README.md).
#[derive(Debug, Parser)]
#[command(name = "hubspot-sim", version)]
struct Cli {
    /// Port to listen on (0 picks a free one and prints it).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    #[arg(long, default_value_t = 1000)]
    contacts: usize,
    #[arg(long, default_value_t = 300)]
    deals: usize,
    #[arg(long, default_value_t = 2000)]
    calls: usize,
    #[arg(long, default_value_t = 20)]
    owners: usize,
    /// Seed of the generated data and of every random decision.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Rolling 10-second request budget; 0 (the default) turns it off.
    #[arg(long = "requests-per-10s", default_value_t = 0)]
    requests_per_10s: u32,
    /// Search requests per second; 0 turns the limit off.
    #[arg(long, default_value_t = 5)]
    search_per_second: u32,
    /// Whether searches also count against --requests-per-10s (`false`: only the search limit).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    searches_in_budget: bool,
    /// Daily request quota; 0 turns it off.
    #[arg(long, default_value_t = 1_000_000)]
    requests_per_day: u64,
    /// Latency added to every API call, in ms.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Where webhooks are delivered; needs --client-secret.
    #[arg(long, requires = "client_secret")]
    webhook_url: Option<String>,
    /// App client secret that signs webhooks.
    #[arg(long)]
    client_secret: Option<String>,
    /// Base backoff between webhook retries, in ms (doubles per retry).
    #[arg(long, default_value_t = 1000)]
    webhook_retry_ms: u64,
    /// Probability of delivering a webhook batch twice.
    #[arg(long, default_value_t = 0.01)]
    webhook_duplicate_rate: f64,
    /// Probability of delivering a webhook batch shuffled and late.
    #[arg(long, default_value_t = 0.02)]
    webhook_reorder_rate: f64,
    /// Sign webhooks with v1 only (no v3 headers), as some private-app setups are reported to receive.
    #[arg(long)]
    webhook_v1_only: bool,
    /// Background changes per second (with webhooks), for the demo.
    #[arg(long, default_value_t = 0.0)]
    churn_per_s: f64,
    /// Search index lag in ms: records changed more recently are not found by searches yet.
    #[arg(long, default_value_t = 0)]
    search_lag_ms: u64,
    /// Custom properties of mixed types added to every object (several hundred, as real portals).
    #[arg(long, default_value_t = 0)]
    extra_properties: usize,
    /// Associated records per page of one input of an association batch read.
    #[arg(long, default_value_t = 500)]
    association_page_size: usize,
    /// HTTP worker threads (0: one per core, at most 4).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Serve several portals (comma-separated portal ids), each with its own data (seed + its
    /// index), budget (--requests-per-10s each), faults, stats and webhooks (their portalId).
    /// API tokens choose the portal: `Bearer pat-<portalId>[-anything]` (others get 401);
    /// control requests take `X-Sim-Portal: <id>` or `?portal=<id>` (default: the first).
    /// Unset: one portal, any non-empty token.
    #[arg(long, value_delimiter = ',')]
    portals: Vec<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let webhook = match (cli.webhook_url, cli.client_secret) {
        (Some(url), Some(secret)) => {
            let mut w = WebhookConfig::new(url, secret);
            w.retry_base_ms = cli.webhook_retry_ms;
            w.duplicate_rate = cli.webhook_duplicate_rate;
            w.reorder_rate = cli.webhook_reorder_rate;
            w.v1_only = cli.webhook_v1_only;
            Some(w)
        }
        _ => None,
    };
    let handle = Sim::start(SimOptions {
        bind: cli.bind,
        port: cli.port,
        contacts: cli.contacts,
        deals: cli.deals,
        calls: cli.calls,
        owners: cli.owners,
        seed: cli.seed,
        requests_per_10s: cli.requests_per_10s,
        search_per_second: cli.search_per_second,
        searches_in_budget: cli.searches_in_budget,
        requests_per_day: cli.requests_per_day,
        latency_ms: cli.latency_ms,
        webhook,
        churn_per_s: cli.churn_per_s,
        workers: cli.workers,
        search_lag_ms: cli.search_lag_ms,
        extra_properties: cli.extra_properties,
        association_page_size: cli.association_page_size,
        portals: cli.portals,
        ..SimOptions::default()
    })
    .await?;
    // Tools wait for this line to know the port.
    println!("hubspot-sim listening on {}", handle.url());
    tracing::info!(url = handle.url(), "hubspot-sim ready");
    wait_for_signal().await;
    handle.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

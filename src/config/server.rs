//! The `serve` process: ports, queue, admin access, alerts, shutdown and logging.

use std::net::IpAddr;
use std::time::Duration;

use super::{Secret, parse_duration};

/// Default of `WEBHOOK_MAX_CONCURRENT`: HubSpot sends at most 10 requests at once per account
/// (its default `maxConcurrentRequests`), so 64 leaves room for several accounts and a burst of
/// retries, and 64 bodies of 256 KiB hold at most 16 MiB.
pub const DEFAULT_WEBHOOK_MAX_CONCURRENT: u32 = 64;

/// Default of `HTTP_MAX_CONNECTIONS`: far above what HubSpot (at most 10 requests at once per
/// account), a proxy's pool and the probes open, and within a default file-descriptor limit of
/// 4096 (each connection takes two: its socket and its watchdog's duplicate).
pub const DEFAULT_HTTP_MAX_CONNECTIONS: u32 = 1024;

/// Log output format (`LOG_FORMAT`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// What `serve` listens on and how it behaves.
#[derive(clap::Args, Debug, Clone)]
pub struct ServerSettings {
    /// HTTP port of the webhook receiver, status API and page.
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// Address the HTTP server binds.
    #[arg(long, env = "BIND", value_name = "BIND", default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Port of the Prometheus endpoint, kept off the public port.
    #[arg(long, env = "METRICS_PORT", value_name = "METRICS_PORT", default_value_t = 9091)]
    pub metrics_port: u16,
    /// Most distinct object ids waiting in the webhook queue; beyond it webhooks get 503.
    #[arg(long, env = "QUEUE_CAPACITY", value_name = "QUEUE_CAPACITY", default_value_t = 1_000_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub queue_capacity: u64,
    /// Most webhook requests handled at once (bodies being read, checked or applied); beyond it
    /// webhooks get 503 at once, unread, and HubSpot retries them. Bounds the memory held by
    /// bodies not yet authenticated: this many times the 256 KiB body limit.
    #[arg(long, env = "WEBHOOK_MAX_CONCURRENT", value_name = "WEBHOOK_MAX_CONCURRENT",
          default_value_t = DEFAULT_WEBHOOK_MAX_CONCURRENT, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub webhook_max_concurrent: u32,
    /// How long a connection of the public port is kept open, idle, for its next request (HubSpot
    /// reuses connections); `0s` closes every connection after one request. The next request's
    /// head must then be complete within 5 s more, whatever the client trickles.
    #[arg(long, env = "HTTP_KEEP_ALIVE", value_name = "HTTP_KEEP_ALIVE", default_value = "15s",
          value_parser = parse_duration)]
    pub http_keep_alive: Duration,
    /// Most connections the public port holds at once; one beyond is closed as soon as it is
    /// accepted (HubSpot retries the delivery).
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", value_name = "HTTP_MAX_CONNECTIONS",
          default_value_t = DEFAULT_HTTP_MAX_CONNECTIONS, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub http_max_connections: u32,
    /// Bearer token for the admin endpoints; when unset they answer 401.
    #[arg(long, env = "ADMIN_TOKEN", value_name = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Where alerts go (Slack-compatible webhook, e-mail).
    #[command(flatten)]
    pub alerts: super::AlertSettings,
    /// The signed owner-change webhook.
    #[command(flatten)]
    pub owner_hook: super::OwnerHookSettings,
    /// How often the alert conditions are checked (and their messages sent).
    #[arg(long, env = "ALERT_CHECK_INTERVAL", value_name = "ALERT_CHECK_INTERVAL", default_value = "30s",
          value_parser = parse_duration)]
    pub alert_check_interval: Duration,
    /// How long SIGTERM waits for the webhook queue and in-flight batches to drain.
    #[arg(long, env = "SHUTDOWN_GRACE", value_name = "SHUTDOWN_GRACE", default_value = "25s",
          value_parser = parse_duration)]
    pub shutdown_grace: Duration,
    /// How long a batch fetcher waits for more ids before reading a partial batch.
    #[arg(long, env = "FETCH_WINDOW", value_name = "FETCH_WINDOW", default_value = "200ms",
          value_parser = parse_duration)]
    pub fetch_window: Duration,
}

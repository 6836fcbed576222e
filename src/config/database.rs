//! `DATABASE_URL`, `DATABASE_CA_CERT` and the pool's limits. `store` turns them into a connection
//! target and a pool (`DatabaseSettings::target`, `DatabaseSettings::pool_options`).

use std::path::PathBuf;
use std::time::Duration;

use super::{Secret, parse_duration};

/// Where the PostgreSQL copy lives and how the pool treats it.
#[derive(clap::Args, Debug, Clone)]
pub struct DatabaseSettings {
    /// PostgreSQL URL; `sslmode` is honoured (disable, prefer, require, verify-ca, verify-full).
    /// For Supabase use the direct connection or the session pooler (port 5432), never the
    /// transaction pooler (6543).
    #[arg(long, env = "DATABASE_URL", value_name = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,
    /// PEM file of the CA that signs the database's certificate (for verify-ca / verify-full).
    #[arg(long, env = "DATABASE_CA_CERT", value_name = "DATABASE_CA_CERT")]
    pub database_ca_cert: Option<PathBuf>,
    /// Most connections in the pool.
    #[arg(long, env = "DATABASE_POOL_SIZE", value_name = "DATABASE_POOL_SIZE", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub database_pool_size: u32,
    /// How long a caller waits for a pooled connection before the request fails with 503.
    #[arg(long, env = "DATABASE_POOL_TIMEOUT", value_name = "DATABASE_POOL_TIMEOUT", default_value = "5s",
          value_parser = parse_duration)]
    pub database_pool_timeout: Duration,
    /// `statement_timeout` set on every connection.
    #[arg(long, env = "DATABASE_STATEMENT_TIMEOUT", value_name = "DATABASE_STATEMENT_TIMEOUT",
          default_value = "30s", value_parser = parse_duration)]
    pub database_statement_timeout: Duration,
    /// `synchronous_commit` for our connections. `false` (the default) lets commits return before
    /// the WAL is flushed: a PostgreSQL crash may lose the last moments of writes, which the next
    /// reconciliation run fetches again from HubSpot; upserts run about twice as fast. The
    /// webhook's deletions, merges and privacy deletions commit with it on whatever this says.
    #[arg(long, env = "DATABASE_SYNCHRONOUS_COMMIT", value_name = "DATABASE_SYNCHRONOUS_COMMIT",
          default_value = "false", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub database_synchronous_commit: bool,
}

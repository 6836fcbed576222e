//! What the load harnesses (`sync`, `ingest`, `freshness`) share: a PostgreSQL server with one
//! scratch database per scenario, `serve` settings built through the real command line, the
//! simulator at the seed account's size, percentiles, and the machine line printed next to every
//! table.
#![allow(dead_code)] // each bench uses a different part of this module

use std::time::Duration;

use clap::Parser as _;
use hubspot_sim::SimOptions;
use hubspot_sync::cli::{Cli, Command, ServeArgs};
use hubspot_sync::localpg::{LocalPgOptions, LocalPostgres};
use hubspot_sync::store::connect::DbTarget;
use hubspot_sync::store::migrations;

/// The seed account's size (issue 4): contacts, deals, calls, owners.
pub const SEED: (usize, usize, usize, usize) = (31_636, 1_193, 8_100, 20);

/// The simulator at the seed account's size, otherwise `opts`.
pub fn seed_sized(opts: SimOptions) -> SimOptions {
    let (contacts, deals, calls, owners) = SEED;
    SimOptions { contacts, deals, calls, owners, ..opts }
}

/// A PostgreSQL server: `BENCH_DATABASE_URL`, `TEST_DATABASE_URL` or `DATABASE_URL`, else a
/// private one started from the installed binaries (kept for the life of this value).
pub struct Postgres {
    url: String,
    admin: DbTarget,
    _local: Option<LocalPostgres>,
}

/// One freshly created and migrated database, dropped by [`Scratch::drop_db`].
pub struct Scratch {
    pub url: String,
    pub target: DbTarget,
    name: String,
}

impl Postgres {
    pub async fn find() -> Postgres {
        let from_env =
            ["BENCH_DATABASE_URL", "TEST_DATABASE_URL", "DATABASE_URL"].iter().find_map(|v| std::env::var(v).ok());
        let (url, local) = match from_env {
            Some(url) => (url, None),
            None => {
                let pg = tokio::task::spawn_blocking(|| LocalPostgres::start(LocalPgOptions::default()))
                    .await
                    .unwrap()
                    .unwrap();
                (pg.url(), Some(pg))
            }
        };
        Postgres { admin: DbTarget::parse(&url, None).unwrap(), url, _local: local }
    }

    /// A new database with every migration applied.
    pub async fn scratch(&self) -> Scratch {
        let admin = self.admin.connect_raw("hubspot-sync bench").await.unwrap();
        let name = format!("hsbench_{}", uuid::Uuid::new_v4().simple());
        admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
        let target = self.admin.with_database(&name);
        migrations::run_pending(&target).await.unwrap();
        let mut url = url::Url::parse(&self.url).unwrap();
        url.set_path(&format!("/{name}"));
        Scratch { url: url.to_string(), target, name }
    }

    pub async fn drop_db(&self, scratch: Scratch) {
        let admin = self.admin.connect_raw("hubspot-sync bench").await.unwrap();
        admin.batch_execute(&format!("DROP DATABASE \"{}\" WITH (FORCE)", scratch.name)).await.unwrap();
    }
}

impl Scratch {
    pub async fn client(&self) -> tokio_postgres::Client {
        self.target.connect_raw("hubspot-sync bench").await.unwrap()
    }

    /// Records a successful run of every object, so `serve` starts no catch-up run of its own.
    pub async fn quiet_poller(&self) {
        self.client()
            .await
            .batch_execute(
                "INSERT INTO sync_logs (sync_type, status, trigger, mode, completed_at, duration_ms) \
                 SELECT k, 'success', 'manual', 'full', now(), 0 \
                 FROM unnest(ARRAY['contacts','deals','calls','owners']) k",
            )
            .await
            .unwrap();
    }
}

/// A cron expression that never fires within a benchmark (1 January, midnight).
const NEVER: &str = "0 0 1 1 *";

/// `serve` settings parsed by the real command line: this database, the given HubSpot, webhooks
/// signed with `secret`, no schedule firing, port 0 unless `extra` says otherwise.
pub fn serve_args(db_url: &str, api_base: &str, secret: &str, extra: &[&str]) -> ServeArgs {
    let mut argv = vec![
        "hubspot-sync",
        "serve",
        "--database-url",
        db_url,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--hubspot-access-token",
        "pat-bench",
        "--hubspot-api-base",
        api_base,
        "--hubspot-client-secret",
        secret,
    ];
    for schedule in
        ["--schedule-contacts", "--schedule-deals", "--schedule-calls", "--schedule-owners", "--schedule-full"]
    {
        argv.extend_from_slice(&[schedule, NEVER]);
    }
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Serve(args) => args,
        other => panic!("parsed {other:?}"),
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The value at quantile `q` (0.0-1.0) of sorted samples (nearest rank).
pub fn quantile<T: Copy>(sorted: &[T], q: f64) -> T {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `load average 1.23 1.10 0.98` from `/proc/loadavg` (other work on the same cores).
pub fn load() -> String {
    let raw = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let parts: Vec<&str> = raw.split_whitespace().take(3).collect();
    format!("load average {}", parts.join(" "))
}

/// The machine line printed above each table: cores, CPU model, date, load.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores ({cpu}), {}, {}", chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"), load())
}

/// A markdown table.
pub fn table(header: &[&str], align_right_from: usize, rows: &[Vec<String>]) {
    println!("| {} |", header.join(" | "));
    let rule: Vec<&str> = (0..header.len()).map(|i| if i >= align_right_from { "---:" } else { "---" }).collect();
    println!("|{}|", rule.join("|"));
    for row in rows {
        println!("| {} |", row.join(" | "));
    }
}

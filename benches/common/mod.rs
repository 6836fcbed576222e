//! What the load harnesses (`sync`, `ingest`, `freshness`) share: a PostgreSQL server with one
//! scratch database per scenario, `serve` settings built through the real command line, the
//! simulator at the seed account's size, percentiles, and the machine line printed next to every
//! table.
#![allow(dead_code)] // each bench uses a different part of this module

use std::time::Duration;

use clap::Parser as _;
use std::collections::{HashMap, HashSet};

use hubspot_sim::{SimHandle, SimOptions};
use hubspot_sync::cli::{Cli, Command, ServeArgs};
use hubspot_sync::hubspot::record::decode_object;
use hubspot_sync::localpg::{LocalPgOptions, LocalPostgres};
use hubspot_sync::objects::{self, ObjectKind, WriteContext};
use hubspot_sync::store::connect::DbTarget;
use hubspot_sync::store::migrations;
use hubspot_sync::store::records::{self, RecordTable};

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

/// The kinds webhooks and the fast lanes change.
pub const KINDS: [ObjectKind; 3] = [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls];

/// Copies the simulator's data into PostgreSQL, as a full sync would, without its requests.
pub async fn copy_data(db: &Scratch, sim: &SimHandle) {
    db.quiet_poller().await;
    let mut conn = db.target.connect("hubspot-sync bench").await.unwrap();
    for kind in KINDS {
        let lines = sim.export_json(kind.as_str());
        let all: Vec<_> = lines.iter().map(|l| decode_object(l.clone()).unwrap()).collect();
        for chunk in all.chunks(1000) {
            objects::write_records(&mut conn, kind, chunk.to_vec(), &WriteContext::default()).await.unwrap();
        }
        let table = RecordTable::for_kind(kind).unwrap();
        for line in lines.iter().filter(|l| l["mergedInto"].is_string()) {
            let id = line["id"].as_str().unwrap().to_owned();
            records::mark_archived(&mut conn, table, &[id], line["mergedInto"].as_str()).await.unwrap();
        }
    }
}

/// The trigger that records when each (portal, row, `updated_at`) version is first written (table
/// `bench_seen`).
pub async fn track_versions(db: &Scratch) {
    let mut sql = String::from(
        "CREATE UNLOGGED TABLE bench_seen (portal_id bigint, tbl text, id text, updated_at timestamptz, \
             seen_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (portal_id, tbl, id, updated_at)); \
         CREATE FUNCTION bench_seen() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             INSERT INTO bench_seen (portal_id, tbl, id, updated_at) \
             VALUES (NEW.portal_id, TG_TABLE_NAME, to_jsonb(NEW) ->> TG_ARGV[0], NEW.updated_at) ON CONFLICT DO NOTHING; \
             RETURN NULL; END $$;",
    );
    for kind in KINDS {
        let table = RecordTable::for_kind(kind).unwrap();
        sql.push_str(&format!(
            "CREATE TRIGGER bench_seen AFTER INSERT OR UPDATE ON {t} FOR EACH ROW EXECUTE FUNCTION bench_seen('{k}');",
            t = table.name(),
            k = table.key()
        ));
    }
    db.client().await.batch_execute(&sql).await.unwrap();
}

/// How many ids of `changed` do not hold HubSpot's latest version in PostgreSQL.
pub async fn stale_records(
    client: &tokio_postgres::Client,
    sim: &SimHandle,
    changed: &HashMap<ObjectKind, HashSet<String>>,
) -> usize {
    let mut stale = 0;
    for kind in KINDS {
        let Some(ids) = changed.get(&kind) else { continue };
        let table = RecordTable::for_kind(kind).unwrap();
        let sql = format!(
            "SELECT {key}, (extract(epoch FROM updated_at) * 1000)::bigint FROM {t}",
            key = table.key(),
            t = table.name()
        );
        let stored: HashMap<String, i64> =
            client.query(&sql, &[]).await.unwrap().into_iter().map(|r| (r.get(0), r.get(1))).collect();
        for line in sim.export_json(kind.as_str()) {
            let id = line["id"].as_str().unwrap();
            if !ids.contains(id) {
                continue;
            }
            let want =
                chrono::DateTime::parse_from_rfc3339(line["updatedAt"].as_str().unwrap()).unwrap().timestamp_millis();
            if stored.get(id) != Some(&want) {
                stale += 1;
            }
        }
    }
    stale
}

/// Records whose stored `updated_at` or `archived` differ from the simulator's export (missing
/// ones included; a merged-away id counts when stored live), and stored ids the export lacks.
pub async fn differences(db: &Scratch, sim: &SimHandle) -> usize {
    let client = db.client().await;
    let mut differ = 0;
    for kind in KINDS {
        let table = RecordTable::for_kind(kind).unwrap();
        let sql = format!(
            "SELECT {key}, (extract(epoch FROM updated_at) * 1000)::bigint, archived FROM {t}",
            key = table.key(),
            t = table.name()
        );
        let mut stored: HashMap<String, (i64, bool)> =
            client.query(&sql, &[]).await.unwrap().into_iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
        for line in sim.export_json(kind.as_str()) {
            let id = line["id"].as_str().unwrap();
            let row = stored.remove(id);
            if line["mergedInto"].is_string() {
                differ += usize::from(row.is_some_and(|(_, archived)| !archived));
                continue;
            }
            let want =
                chrono::DateTime::parse_from_rfc3339(line["updatedAt"].as_str().unwrap()).unwrap().timestamp_millis();
            differ += usize::from(row != Some((want, line["archived"] == true)));
        }
        differ += stored.len();
    }
    differ
}

//! Accounts per machine (issue 20): how many accounts `serve` keeps fresh at a steady churn before
//! the real-time path's freshness target is missed, and how that moves from one to three `serve`
//! processes on this machine.
//!
//! `cargo bench -p hubspot-sync --bench accounts` (PostgreSQL as for the other benches). For each
//! P in `BENCH_PROCESSES` (default `1`; e.g. `1,3`) and each K in `BENCH_ACCOUNTS` (default
//! `5,10,15,20,25,30`), on a fresh database:
//!
//! - one in-process `hubspot-sim` serves K portals (`SimOptions::portals`, ids 101..), each seeded
//!   small (`BENCH_CONTACTS`, default 100 contacts, a third as many deals, half as many calls, 5
//!   owners), each with its own budget (HubSpot's 100 requests / 10 s) and 50 ms latency, and
//!   delivers each portal's signed webhooks (its `portalId` on them) to the first process;
//! - the first portal is the default account (`HUBSPOT_PORTAL_ID`), the K-1 others are rows of
//!   the accounts table (`store::accounts::add`, what `accounts add` runs: token and secret named
//!   by variables, budget 100 / 10 s each);
//! - P `hubspot-sync serve` processes (the real binary, `DATABASE_POOL_SIZE` = `BENCH_POOL`,
//!   default 4; schedules that never fire; `BENCH_SERVE_BIN` runs another copy of the binary)
//!   start on it, and each account's first sync runs;
//! - once every account holds its portal's contacts, every portal changes
//!   `BENCH_CHANGES_PER_S` records (default 5: all but two contacts, one deal, one call) once a
//!   second for `BENCH_SECONDS` (default 20) after a 3 s warm-up.
//!
//! Freshness of a change: the simulator's `updatedAt` of the new version (its clock is this
//! machine's; the webhook leaves at that moment) to the moment PostgreSQL first wrote that
//! version of the row, recorded with `clock_timestamp()` by a row trigger the bench adds (per
//! portal, table, id, `updated_at`), as in the `freshness` bench. This is the change-to-row time
//! HubSpot's user sees; it contains the webhook's delivery, the fetch window, the budget and the
//! write. A version replaced in HubSpot before any fetch read it is never written (counted). After
//! the stream, every changed record must hold its portal's latest version (`stale`).
//!
//! A K passes when every account's p95 is within `BENCH_TARGET_MS` (default 1,000 ms: the
//! real-time path's p99 target in BENCHMARKS.md, held here at p95 per account) and no account is
//! stale. The K steps of a P stop at the first failure, or before a step whose connections would
//! not fit in PostgreSQL's `max_connections` (what other sessions use counted), which is then
//! reported as the limit. CPU: the serve processes' user+system seconds per wall second of the
//! measured stream (100% = one core), and the whole machine's busy share (`/proc/stat`, the
//! simulator, PostgreSQL and other work on the machine included).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly by design

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use common::{Postgres, Scratch, free_port, machine, quantile, track_versions};
use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, WebhookConfig};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::store::accounts::{self, NewAccount};
use hubspot_sync::store::records::RecordTable;
use tokio::process::{Child, Command};

const SECRET: &str = "bench-client-secret";
const FIRST_PORTAL: u64 = 101;
const WARM_UP: Duration = Duration::from_secs(3);
const NEVER: &str = "0 0 1 1 *";
/// Connections a `serve` process holds besides its default pool (leases, hand-over, listeners):
/// an estimate for the check before a step; the peak seen is reported.
const PROCESS_EXTRA_CONNECTIONS: usize = 6;

struct Knobs {
    processes: Vec<usize>,
    accounts: Vec<usize>,
    contacts: usize,
    changes_per_s: usize,
    seconds: u64,
    target_ms: f64,
    pool: usize,
}

fn list(name: &str, default: &str) -> Vec<usize> {
    std::env::var(name).unwrap_or_else(|_| default.into()).split(',').map(|s| s.trim().parse().unwrap()).collect()
}

fn number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

impl Knobs {
    fn from_env() -> Knobs {
        Knobs {
            processes: list("BENCH_PROCESSES", "1"),
            accounts: list("BENCH_ACCOUNTS", "5,10,15,20,25,30"),
            contacts: number("BENCH_CONTACTS", 100),
            changes_per_s: number("BENCH_CHANGES_PER_S", 5).max(3),
            seconds: number("BENCH_SECONDS", 20) as u64,
            target_ms: number("BENCH_TARGET_MS", 1000) as f64,
            pool: number("BENCH_POOL", 4),
        }
    }
}

/// One account's figures over the measured stream.
struct AccountResult {
    changes: u64,
    latencies_ms: Vec<f64>,
    stale: usize,
}

impl AccountResult {
    fn p95(&self) -> f64 {
        if self.latencies_ms.is_empty() { f64::INFINITY } else { quantile(&self.latencies_ms, 0.95) }
    }
}

struct Step {
    k: usize,
    p: usize,
    synced_in: Duration,
    accounts: BTreeMap<u64, AccountResult>,
    serve_cpu: f64,
    machine_busy: f64,
    peak_connections: i64,
    load: String,
}

impl Step {
    fn passes(&self, target_ms: f64) -> bool {
        self.accounts.values().all(|a| a.p95() <= target_ms && a.stale == 0)
    }

    fn worst(&self) -> (u64, f64) {
        self.accounts.iter().map(|(id, a)| (*id, a.p95())).fold((0, 0.0), |w, x| if x.1 > w.1 { x } else { w })
    }

    fn all_latencies(&self) -> Vec<f64> {
        let mut all: Vec<f64> = self.accounts.values().flat_map(|a| a.latencies_ms.iter().copied()).collect();
        all.sort_by(f64::total_cmp);
        all
    }
}

fn token_env(portal: u64) -> String {
    format!("BENCH_TOKEN_{portal}")
}

/// The default account takes the first portal; the others become rows of the accounts table.
async fn add_accounts(db: &Scratch, portals: &[u64]) {
    let mut conn = db.target.connect("hubspot-sync bench accounts").await.unwrap();
    accounts::adopt_default_portal(&mut conn, portals[0] as i64).await.unwrap();
    for &portal in &portals[1..] {
        let account = NewAccount {
            portal_id: portal as i64,
            name: format!("portal {portal}"),
            token_env: token_env(portal),
            client_secret_env: Some("BENCH_CLIENT_SECRET".into()),
            api_base: None,
            requests_per_10s: Some(100),
            schedule_incremental: None,
            schedule_full: None,
        };
        accounts::add(&mut conn, account).await.unwrap();
    }
}

/// Starts one `hubspot-sync serve` on `port`, its log in the temp directory.
fn start_serve(db: &Scratch, sim: &SimHandle, portals: &[u64], port: u16, pool: usize, n: usize) -> Child {
    let log = std::env::temp_dir().join(format!("bench-accounts-serve-{n}.log"));
    let log = std::fs::File::create(log).unwrap();
    // `BENCH_SERVE_BIN`: a copy of the binary, when the target directory is shared with builds.
    let bin = std::env::var("BENCH_SERVE_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_hubspot-sync").to_owned());
    let mut command = Command::new(bin);
    command
        .args(["serve", "--bind", "127.0.0.1", "--port", &port.to_string(), "--metrics-port", "0"])
        .env("DATABASE_URL", &db.url)
        .env("DATABASE_POOL_SIZE", pool.to_string())
        .env("HUBSPOT_ACCESS_TOKEN", format!("pat-{}", portals[0]))
        .env("HUBSPOT_PORTAL_ID", portals[0].to_string())
        .env("HUBSPOT_API_BASE", sim.url())
        .env("HUBSPOT_CLIENT_SECRET", SECRET)
        .env("HUBSPOT_REQUESTS_PER_10S", "100")
        .env("BENCH_CLIENT_SECRET", SECRET)
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .kill_on_drop(true);
    for var in ["SCHEDULE_CONTACTS", "SCHEDULE_DEALS", "SCHEDULE_CALLS", "SCHEDULE_OWNERS", "SCHEDULE_FULL"] {
        command.env(var, NEVER);
    }
    for &portal in portals {
        command.env(token_env(portal), format!("pat-{portal}"));
    }
    command.spawn().unwrap()
}

/// Live contacts of a portal in the simulator (neither archived nor merged away).
fn live_contacts(sim: &SimHandle, portal: u64) -> i64 {
    let export = sim.portal(portal).unwrap().export("contacts").unwrap_or_default();
    export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["archived"] != true && !l["mergedInto"].is_string())
        .count() as i64
}

/// Waits until every portal's live contacts are all in PostgreSQL (each account's first sync
/// done).
async fn until_synced(db: &Scratch, sim: &SimHandle, portals: &[u64]) -> Duration {
    let want: HashMap<i64, i64> = portals.iter().map(|p| (*p as i64, live_contacts(sim, *p))).collect();
    let client = db.client().await;
    let started = Instant::now();
    loop {
        let rows =
            client.query("SELECT portal_id, count(*) FROM contacts WHERE NOT archived GROUP BY 1", &[]).await.unwrap();
        let counts: HashMap<i64, i64> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        let done = want.iter().filter(|(p, n)| counts.get(p).copied().unwrap_or(0) >= **n).count();
        if done == portals.len() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "after 300 s only {done} of {} accounts hold their contacts (logs: bench-accounts-serve-*.log in the temp dir)",
            portals.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// User+system CPU seconds of a process so far.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the stat line (utime, stime) are 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// (busy, total) jiffies of the whole machine.
fn machine_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = stat.lines().next().unwrap_or_default();
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

/// PostgreSQL's `max_connections` and the sessions open now (all databases).
async fn connections(pg_client: &tokio_postgres::Client) -> (usize, usize) {
    let max: String = pg_client.query_one("SHOW max_connections", &[]).await.unwrap().get(0);
    let used: i64 = pg_client.query_one("SELECT count(*) FROM pg_stat_activity", &[]).await.unwrap().get(0);
    (max.parse().unwrap(), used as usize)
}

/// Connections a step needs at most: each process's default pool and extras, 3 per other account
/// (`runtime::accounts::DEFAULT_ACCOUNT_POOL_SIZE`, `ACCOUNT_POOL_SIZE`) on whichever process runs it, and the bench's own.
fn connections_needed(k: usize, p: usize, pool: usize) -> usize {
    p * (pool + PROCESS_EXTRA_CONNECTIONS)
        + usize::from(hubspot_sync::runtime::accounts::DEFAULT_ACCOUNT_POOL_SIZE) * (k - 1)
        + 2
}

/// Every portal changes records once a second for the warm-up and `seconds`; the ids changed per
/// portal and kind, and the changes made within the measured window.
async fn churn(
    sim: &SimHandle,
    portals: &[u64],
    knobs: &Knobs,
) -> (HashMap<(u64, ObjectKind), HashSet<String>>, HashMap<u64, u64>) {
    let mix = [(ObjectKind::Contacts, knobs.changes_per_s - 2), (ObjectKind::Deals, 1), (ObjectKind::Calls, 1)];
    let mut changed: HashMap<(u64, ObjectKind), HashSet<String>> = HashMap::new();
    let mut measured: HashMap<u64, u64> = HashMap::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < WARM_UP + Duration::from_secs(knobs.seconds) {
        tick.tick().await;
        let in_window = started.elapsed() >= WARM_UP;
        for &portal in portals {
            let state = sim.portal(portal).unwrap();
            for (kind, n) in mix {
                let req = ChurnRequest { object: kind.as_str().into(), updates: n, ..ChurnRequest::default() };
                let report = state.churn(&req).unwrap();
                if in_window {
                    *measured.entry(portal).or_default() += report.updated.len() as u64;
                }
                changed.entry((portal, kind)).or_default().extend(report.updated);
            }
        }
    }
    (changed, measured)
}

/// Per portal, how many changed ids do not hold the portal's latest version in PostgreSQL.
async fn stale(
    client: &tokio_postgres::Client,
    sim: &SimHandle,
    changed: &HashMap<(u64, ObjectKind), HashSet<String>>,
) -> HashMap<u64, usize> {
    let mut stale: HashMap<u64, usize> = HashMap::new();
    for ((portal, kind), ids) in changed {
        let table = RecordTable::for_kind(*kind).unwrap();
        let sql = format!(
            "SELECT {key}, (extract(epoch FROM updated_at) * 1000)::bigint FROM {t} WHERE portal_id = $1",
            key = table.key(),
            t = table.name()
        );
        let stored: HashMap<String, i64> =
            client.query(&sql, &[&(*portal as i64)]).await.unwrap().into_iter().map(|r| (r.get(0), r.get(1))).collect();
        let export = sim.portal(*portal).unwrap().export(kind.as_str()).unwrap_or_default();
        for line in export.lines() {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = line["id"].as_str().unwrap();
            if !ids.contains(id) {
                continue;
            }
            let want =
                chrono::DateTime::parse_from_rfc3339(line["updatedAt"].as_str().unwrap()).unwrap().timestamp_millis();
            if stored.get(id) != Some(&want) {
                *stale.entry(*portal).or_default() += 1;
            }
        }
    }
    stale
}

async fn step(pg: &Postgres, k: usize, p: usize, knobs: &Knobs) -> Step {
    let portals: Vec<u64> = (FIRST_PORTAL..FIRST_PORTAL + k as u64).collect();
    let ports: Vec<u16> = (0..p).map(|_| free_port()).collect();
    let hooks = WebhookConfig::new(format!("http://127.0.0.1:{}/webhooks/hubspot", ports[0]), SECRET);
    let contacts = knobs.contacts;
    let opts = SimOptions {
        contacts,
        deals: contacts / 3,
        calls: contacts / 2,
        owners: 5,
        requests_per_10s: 100,
        latency_ms: 50,
        webhook: Some(hooks),
        portals: portals.clone(),
        ..SimOptions::default()
    };
    let sim = Sim::start(opts).await.unwrap();
    let db = pg.scratch().await;
    add_accounts(&db, &portals).await;
    track_versions(&db).await;
    let mut children: Vec<Child> =
        ports.iter().enumerate().map(|(n, port)| start_serve(&db, &sim, &portals, *port, knobs.pool, n)).collect();
    let synced_in = until_synced(&db, &sim, &portals).await;

    let client = db.client().await;
    let db_name: String = client.query_one("SELECT current_database()", &[]).await.unwrap().get(0);
    let pids: Vec<u32> = children.iter().map(|c| c.id().unwrap()).collect();
    let cpu_before: f64 = pids.iter().map(|p| cpu_seconds(*p)).sum();
    let jiffies_before = machine_jiffies();
    let started = Instant::now();
    let measure_from = chrono::Utc::now().timestamp_millis() + WARM_UP.as_millis() as i64;
    let peak = Arc::new(AtomicI64::new(0));
    let sampler = {
        let (client, peak) = (db.client().await, peak.clone());
        tokio::spawn(async move {
            loop {
                let n: i64 = client
                    .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", &[&db_name])
                    .await
                    .unwrap()
                    .get(0);
                peak.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let (changed, measured) = churn(&sim, &portals, knobs).await;
    let measure_to = chrono::Utc::now().timestamp_millis();
    let serve_cpu = (pids.iter().map(|p| cpu_seconds(*p)).sum::<f64>() - cpu_before) / started.elapsed().as_secs_f64();
    let jiffies_after = machine_jiffies();
    let machine_busy = (jiffies_after.0 - jiffies_before.0) as f64 / (jiffies_after.1 - jiffies_before.1).max(1) as f64;
    let load = common::load();

    // Drain: webhooks delivered, then nothing new written for 2 s (at most 60 s).
    sim.wait_webhooks_idle(Duration::from_secs(60)).await;
    let drain_started = Instant::now();
    let mut last = -1i64;
    loop {
        let seen: i64 = client.query_one("SELECT count(*) FROM bench_seen", &[]).await.unwrap().get(0);
        if seen == last || drain_started.elapsed() > Duration::from_secs(60) {
            break;
        }
        last = seen;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    sampler.abort();
    let peak_connections = peak.load(Ordering::Relaxed) - 2; // less the sampler's and the bench's sessions
    let stale = stale(&client, &sim, &changed).await;
    let rows = client
        .query(
            "SELECT portal_id, (extract(epoch FROM seen_at - updated_at) * 1000)::float8 FROM bench_seen \
             WHERE updated_at >= to_timestamp($1::bigint / 1000.0) AND updated_at <= to_timestamp($2::bigint / 1000.0)",
            &[&measure_from, &measure_to],
        )
        .await
        .unwrap();
    let mut accounts: BTreeMap<u64, AccountResult> = portals
        .iter()
        .map(|p| {
            let result = AccountResult {
                changes: measured.get(p).copied().unwrap_or(0),
                latencies_ms: Vec::new(),
                stale: stale.get(p).copied().unwrap_or(0),
            };
            (*p, result)
        })
        .collect();
    for row in rows {
        let portal = row.get::<_, i64>(0) as u64;
        if let Some(a) = accounts.get_mut(&portal) {
            a.latencies_ms.push(row.get(1));
        }
    }
    for a in accounts.values_mut() {
        a.latencies_ms.sort_by(f64::total_cmp);
    }
    for child in &mut children {
        child.start_kill().unwrap();
        let _ = child.wait().await;
    }
    drop(client);
    pg.drop_db(db).await;
    sim.shutdown().await;
    Step { k, p, synced_in, accounts, serve_cpu, machine_busy, peak_connections, load }
}

fn row(s: &Step, target_ms: f64) -> Vec<String> {
    let all = s.all_latencies();
    let (worst_portal, worst) = s.worst();
    let changes: u64 = s.accounts.values().map(|a| a.changes).sum();
    let written = all.len();
    let stale: usize = s.accounts.values().map(|a| a.stale).sum();
    let missing = s.accounts.values().filter(|a| a.latencies_ms.is_empty()).count();
    let q = |p: f64| if all.is_empty() { "-".to_owned() } else { format!("{:.0}", quantile(&all, p)) };
    vec![
        s.p.to_string(),
        s.k.to_string(),
        format!("{:.0} s", s.synced_in.as_secs_f64()),
        format!("{changes} ({written} written)"),
        q(0.5),
        q(0.95),
        if worst.is_finite() {
            format!("{worst:.0} ({worst_portal})")
        } else {
            format!("none written ({missing} accounts)")
        },
        stale.to_string(),
        if s.passes(target_ms) { "yes".into() } else { "**no**".into() },
        format!("{:.0}%", s.serve_cpu * 100.0),
        format!("{:.0}%", s.machine_busy * 100.0),
        s.peak_connections.to_string(),
        s.load.clone(),
    ]
}

#[tokio::main]
async fn main() {
    let knobs = Knobs::from_env();
    let pg = Postgres::find().await;
    let admin = pg.scratch().await;
    let admin_client = admin.client().await;
    println!("machine: {}", machine());
    println!(
        "each account: {} contacts, {} deals, {} calls; {} changes/s ({} contacts, 1 deal, 1 call) for {} s after {} s; \
         budget 100 / 10 s and 50 ms latency per portal; DATABASE_POOL_SIZE {}; target: every account's p95 <= {} ms",
        knobs.contacts,
        knobs.contacts / 3,
        knobs.contacts / 2,
        knobs.changes_per_s,
        knobs.changes_per_s - 2,
        knobs.seconds,
        WARM_UP.as_secs(),
        knobs.pool,
        knobs.target_ms
    );
    println!();
    let mut rows = Vec::new();
    let mut verdicts = Vec::new();
    for &p in &knobs.processes {
        let mut best: Option<usize> = None;
        let mut limit = "every K tried passed".to_owned();
        for &k in &knobs.accounts {
            let (max, used) = connections(&admin_client).await;
            let need = connections_needed(k, p, knobs.pool);
            if need + used + 5 > max {
                limit = format!("connections: K={k} needs about {need}, {used} of {max} in use by others");
                break;
            }
            eprintln!("P={p} K={k}: starting ({})", common::load());
            let s = step(&pg, k, p, &knobs).await;
            let r = row(&s, knobs.target_ms);
            eprintln!("| {} |", r.join(" | "));
            rows.push(r);
            if s.passes(knobs.target_ms) {
                best = Some(k);
            } else {
                limit = format!("freshness at K={k}");
                break;
            }
        }
        verdicts.push(vec![p.to_string(), best.map_or_else(|| "none".to_owned(), |k| k.to_string()), limit]);
    }
    drop(admin_client);
    pg.drop_db(admin).await;
    println!();
    common::table(
        &[
            "P",
            "K",
            "first syncs",
            "changes (versions written)",
            "p50 ms",
            "p95 ms",
            "worst account p95 ms (portal)",
            "stale",
            "target met",
            "serve CPU",
            "machine busy",
            "peak connections (serve)",
            "after the stream",
        ],
        1,
        &rows,
    );
    println!();
    common::table(&["P", "largest K meeting the target", "what stopped it"], 1, &verdicts);
}

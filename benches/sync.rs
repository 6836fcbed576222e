//! Issue 4's benchmarks: the `hubspot-sync sync` binary against an in-process `hubspot-sim` the
//! size of the seed account (31,636 contacts, 1,193 deals, 8,100 calls, 20 owners).
//!
//! `cargo bench -p hubspot-sync --bench sync` (PostgreSQL from `BENCH_DATABASE_URL`,
//! `TEST_DATABASE_URL` or `DATABASE_URL`, else a private one; a fresh database per scenario).
//!
//! - (a) budget: HubSpot's 100 requests per 10 s (enforced by the simulator too) and 50 ms
//!   latency per call. `sync all --full`'s wall time against the floor the budget sets: every
//!   request the simulator served, at 10 per second. Target: within 10% of that floor.
//! - (b) throughput: no budget (`HUBSPOT_REQUESTS_PER_10S=100000`, simulator unlimited) and no
//!   latency: rows written to PostgreSQL per second of `sync all --full`. Target: >= 20,000.
//!   Next to it, the records phase (the first run's start to the last object's full pass
//!   completed in `sync_state`, before the associations are read) and the baseline of issue 21:
//!   `COPY` of the same rows (every stored column) into the same tables of a fresh database, one
//!   stream per table, one after the other. Target: records phase within 1.5x of `COPY`, and at
//!   least 30,000 rows/s.
//! - (c) incremental, nothing changed, right after (a) (after 10 s, so the rolling window is
//!   clear as it is between scheduled runs) and after (b): requests used and wall time of
//!   `sync all`. Target: one search per object, under 300 ms.
//!
//! `BENCH_MAPPED_COLUMNS=N` (1 to 10) first adds N typed columns of `HUBSPOT_SYNC_CONFIG` to
//! `contacts` and passes the file to `sync`: the cost of generated columns is the ratio of the
//! rows/s of two runs of (b), with and without.
//!
//! Wall time is the binary's whole life (start, connecting, runs, exit), timed from here; the
//! runs' own durations from `sync_logs` are shown next to it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly by design

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Postgres, Scratch, machine, seed_sized, thousands};
use hubspot_sim::{Sim, SimHandle, SimOptions};
use serde_json::Value;

/// What one `sync` invocation did.
struct Invocation {
    wall: Duration,
    /// Requests the simulator served during it, by operation (`contacts.list`, ...).
    operations: BTreeMap<String, u64>,
    requests: u64,
    /// `sync_type -> (duration_ms, records_processed, status)` of the runs it recorded.
    runs: BTreeMap<String, (i64, i32, String)>,
    /// The longest records part of the full passes (start to `full_completed_at`), in ms.
    records_part_ms: i64,
    /// Requests the simulator served by operation from the start to the end of the records part
    /// (sampled every 100 ms: the first sample after its end).
    records_part_ops: BTreeMap<String, u64>,
}

impl Invocation {
    fn ops(&self, suffix: &str) -> u64 {
        self.operations.iter().filter(|(k, _)| k.ends_with(suffix)).map(|(_, v)| v).sum()
    }

    fn longest_run_ms(&self) -> i64 {
        self.runs.values().map(|r| r.0).max().unwrap_or(0)
    }
}

fn counters(stats: &Value) -> (u64, BTreeMap<String, u64>) {
    let ops = stats["operations"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    (stats["requests_total"].as_u64().unwrap_or(0), ops)
}

/// Typed columns over the simulator's contact properties, one of every type but boolean (no
/// contact property holds one): `BENCH_MAPPED_COLUMNS=N` maps the first N.
const MAPPINGS: [&str; 10] = [
    r#"m_email = { property = "email", type = "text" }"#,
    r#"m_nps = { property = "nps_score", type = "integer" }"#,
    r#"m_created = { property = "createdate", type = "timestamptz" }"#,
    r#"m_modified = { property = "lastmodifieddate", type = "timestamptz" }"#,
    r#"m_first = { property = "firstname", type = "text" }"#,
    r#"m_nps_num = { property = "nps_score", type = "numeric" }"#,
    r#"m_created_on = { property = "createdate", type = "date" }"#,
    r#"m_tier = { property = "membership_tier", type = "text[]" }"#,
    r#"m_object_id = { property = "hs_object_id", type = "integer" }"#,
    r#"m_source = { property = "signup_source", type = "text" }"#,
];

/// With `BENCH_MAPPED_COLUMNS=N` (1 to 10): the first N of [`MAPPINGS`] written to a config file
/// and applied to `db` as generated columns (what `hubspot-sync migrate` does); the file's path,
/// for `HUBSPOT_SYNC_CONFIG`.
async fn mapped_columns(db: &Scratch) -> Option<std::path::PathBuf> {
    let n = std::env::var("BENCH_MAPPED_COLUMNS").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0).min(10);
    if n == 0 {
        return None;
    }
    let text = format!("[contacts.columns]\n{}\n", MAPPINGS[..n].join("\n"));
    let path = std::env::temp_dir().join(format!("hubspot-sync-bench-{}.toml", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let config = hubspot_sync::config::CopyConfig::parse(&text, None).unwrap();
    let mut conn = db.target.connect("hubspot-sync bench").await.unwrap();
    hubspot_sync::store::mapped_columns::apply(&mut conn, &config).await.unwrap();
    Some(path)
}

/// Runs `hubspot-sync sync all [--full]` against `sim` and `db` and waits for it (with
/// `HUBSPOT_SYNC_CONFIG=config` when given).
async fn sync_all(
    db: &Scratch,
    sim: &SimHandle,
    budget: u32,
    full: bool,
    config: Option<&std::path::Path>,
    searches_in_budget: bool,
) -> Invocation {
    let (requests_before, ops_before) = counters(&sim.stats());
    let client = db.client().await;
    let since: String =
        client.query_one("SELECT coalesce(max(started_at), 'epoch')::text FROM sync_logs", &[]).await.unwrap().get(0);
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_hubspot-sync"));
    command
        .args(["sync", "all"])
        .args(full.then_some("--full"))
        .env("DATABASE_URL", &db.url)
        .env("HUBSPOT_ACCESS_TOKEN", "pat-bench")
        .env("HUBSPOT_API_BASE", sim.url())
        .env("HUBSPOT_REQUESTS_PER_10S", budget.to_string())
        .env("HUBSPOT_SEARCHES_IN_BUDGET", searches_in_budget.to_string())
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", std::env::var("BENCH_RUST_LOG").unwrap_or_else(|_| "warn".to_owned()))
        .stdin(std::process::Stdio::null());
    if let Some(path) = config {
        command.env("HUBSPOT_SYNC_CONFIG", path);
    }
    let started = Instant::now();
    let output = command.output();
    tokio::pin!(output);
    let mut samples = Vec::new();
    let output = loop {
        tokio::select! {
            done = &mut output => break done.unwrap(),
            () = tokio::time::sleep(Duration::from_millis(100)) => {
                samples.push((started.elapsed(), counters(&sim.stats()).1));
            }
        }
    };
    let wall = started.elapsed();
    assert!(
        output.status.success(),
        "sync failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if let Ok(path) = std::env::var("BENCH_LOG") {
        // `BENCH_RUST_LOG=info BENCH_LOG=/tmp/x.log`: the binary's log of each invocation, appended.
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        file.write_all(&output.stdout).unwrap();
        file.write_all(&output.stderr).unwrap();
    }
    let (requests_after, ops_after) = counters(&sim.stats());
    let operations = ops_after
        .into_iter()
        .map(|(k, v)| {
            let before = ops_before.get(&k).copied().unwrap_or(0);
            (k, v - before)
        })
        .filter(|(_, v)| *v > 0)
        .collect();
    let runs = client
        .query(
            "SELECT sync_type, duration_ms, records_processed, status FROM sync_logs WHERE started_at > $1::text::timestamptz",
            &[&since],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get::<_, String>(0), (r.get::<_, i64>(1), r.get::<_, i32>(2), r.get::<_, String>(3))))
        .collect();
    // The records part of each full pass: from its start to `full_completed_at` (set when the
    // records are done, before the association reads).
    let records_part_ms = client
        .query_one(
            "SELECT coalesce(max(extract(epoch FROM s.full_completed_at - l.started_at) * 1000), 0)::bigint \
             FROM sync_state s JOIN sync_logs l ON l.sync_type = s.sync_type \
             WHERE l.started_at > $1::text::timestamptz AND l.mode = 'full'",
            &[&since],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    // The records part's end on this clock: the process start plus the first run's delay (the
    // binary connects first) plus the longest part.
    let end_ms: f64 = client
        .query_one(
            "SELECT coalesce(extract(epoch FROM max(s.full_completed_at) - min(l.started_at)) * 1000, 0)::float8 \
             FROM sync_state s JOIN sync_logs l ON l.sync_type = s.sync_type \
             WHERE l.started_at > $1::text::timestamptz AND l.mode = 'full'",
            &[&since],
        )
        .await
        .unwrap()
        .get(0);
    let records_part_ops = samples
        .into_iter()
        .find(|(at, _)| at.as_secs_f64() * 1000.0 >= end_ms)
        .map(|(_, ops)| {
            ops.into_iter()
                .map(|(k, v)| {
                    let before = ops_before.get(&k).copied().unwrap_or(0);
                    (k, v - before)
                })
                .filter(|(_, v)| *v > 0)
                .collect()
        })
        .unwrap_or_default();
    Invocation { wall, operations, requests: requests_after - requests_before, runs, records_part_ms, records_part_ops }
}

async fn rows_stored(db: &Scratch) -> u64 {
    let sql = "SELECT (SELECT count(*) FROM contacts) + (SELECT count(*) FROM deals) \
               + (SELECT count(*) FROM calls) + (SELECT count(*) FROM staff)";
    db.client().await.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) as u64
}

fn runs_line(inv: &Invocation) -> String {
    inv.runs
        .iter()
        .map(|(kind, (ms, records, status))| format!("{kind} {ms} ms/{records}/{status}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main]
async fn main() {
    // `-- a` or `-- b` runs one scenario (with its (c)); both by default.
    let only: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let wanted = |s: &str| only.is_empty() || only.iter().any(|o| o == s);
    let pg = Postgres::find().await;
    println!("machine: {}", machine());
    if wanted("a") {
        scenario_a(&pg, true).await;
    }
    if wanted("a2") {
        scenario_a(&pg, false).await;
    }
    if wanted("b") {
        scenario_b(&pg).await;
    }
}

/// (a) HubSpot's budget and latency (searches counted in the budget, or with `a2` outside it, on
/// both sides), then (c) on the same data.
async fn scenario_a(pg: &Postgres, searches_in_budget: bool) {
    let sim = Sim::start(seed_sized(SimOptions {
        requests_per_10s: 100,
        latency_ms: 50,
        searches_in_budget,
        ..SimOptions::default()
    }))
    .await
    .unwrap();
    let db = pg.scratch().await;
    let config = mapped_columns(&db).await;
    let full_a = sync_all(&db, &sim, 100, true, config.as_deref(), searches_in_budget).await;
    let rows_a = rows_stored(&db).await;
    let stats = sim.stats();
    let max_window = stats["max_requests_in_window"].as_u64().unwrap_or(0);
    let max_searches = stats["max_searches_in_1s"].as_u64().unwrap_or(0);
    let throttled = stats["responses_429"].as_u64().unwrap_or(0);
    let differences = common::differences(&db, &sim).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let incr_a = sync_all(&db, &sim, 100, false, config.as_deref(), searches_in_budget).await;
    let load_a = common::load();
    pg.drop_db(db).await;
    sim.shutdown().await;

    let pages = full_a.ops(".list");
    let searches = full_a.ops(".search");
    let floor = Duration::from_secs_f64(full_a.requests as f64 / 10.0);
    let records = Duration::from_millis(full_a.records_part_ms as u64);
    // Issue 21: the list-only floor of the records part on this account (414 requests).
    let list_floor = Duration::from_secs_f64(41.4);
    let page_floor = Duration::from_secs_f64(pages as f64 / 10.0);
    println!();
    let model = if searches_in_budget { "searches in the budget" } else { "searches outside the budget" };
    println!("(a) `sync all --full`, 100 requests / 10 s, 50 ms latency, {model} ({load_a} after (a) and (c))");
    println!();
    common::table(
        &[
            "list pages",
            "search pages",
            "records part",
            "÷ list floor (41.4 s)",
            "whole pass",
            "max in any 10 s",
            "max searches in any 1 s",
            "429s",
            "differences",
        ],
        0,
        &[vec![
            thousands(pages),
            thousands(searches),
            secs(records),
            format!("{:.3}", records.as_secs_f64() / list_floor.as_secs_f64()),
            secs(full_a.wall),
            max_window.to_string(),
            max_searches.to_string(),
            throttled.to_string(),
            differences.to_string(),
        ]],
    );
    println!();
    common::table(
        &["rows stored", "list pages", "requests", "floor (requests / 10 per s)", "wall time", "wall ÷ floor"],
        0,
        &[vec![
            thousands(rows_a),
            thousands(pages),
            format!("{} ({:?})", thousands(full_a.requests), full_a.operations),
            secs(floor),
            secs(full_a.wall),
            format!("{:.3}", full_a.wall.as_secs_f64() / floor.as_secs_f64()),
        ]],
    );
    println!();
    println!(
        "pages-only floor {} (wall ÷ it {:.3}); most requests in any 10 s window: {max_window}; 429s: {throttled}; \
         runs: {}",
        secs(page_floor),
        full_a.wall.as_secs_f64() / page_floor.as_secs_f64(),
        runs_line(&full_a)
    );
    let part: u64 = full_a.records_part_ops.values().sum();
    println!(
        "requests in the records part (to the first 100 ms sample after its end; the first run's start \
         taken as the process start): {part} ({:?}); at 9.8 a second the part allows {:.0}",
        full_a.records_part_ops,
        records.as_secs_f64() * 9.8
    );
    incremental_table("after (a): 100 requests / 10 s, 50 ms latency", &incr_a);
}

/// (b) no budget, no latency, then (c) again.
async fn scenario_b(pg: &Postgres) {
    let sim = Sim::start(seed_sized(SimOptions { search_per_second: 0, ..SimOptions::default() })).await.unwrap();
    let db = pg.scratch().await;
    let config = mapped_columns(&db).await;
    let full_b = sync_all(&db, &sim, 100_000, true, config.as_deref(), true).await;
    let rows_b = rows_stored(&db).await;
    let records_phase = records_phase(&db).await;
    let copy = copy_baseline(pg, &db).await;
    let incr_b = sync_all(&db, &sim, 100_000, false, config.as_deref(), true).await;
    let load_b = common::load();
    pg.drop_db(db).await;
    sim.shutdown().await;

    println!();
    println!("(b) `sync all --full`, no budget, no latency ({load_b} after (b) and (c))");
    println!();
    common::table(
        &["rows stored", "requests", "wall time", "rows/s (wall)", "longest run (sync_logs)", "rows/s (longest run)"],
        0,
        &[vec![
            thousands(rows_b),
            thousands(full_b.requests),
            secs(full_b.wall),
            thousands((rows_b as f64 / full_b.wall.as_secs_f64()) as u64),
            format!("{} ms", full_b.longest_run_ms()),
            thousands((rows_b as f64 * 1000.0 / full_b.longest_run_ms().max(1) as f64) as u64),
        ]],
    );
    println!();
    println!("runs: {}", runs_line(&full_b));
    println!();
    println!("records phase (every object's records stored, before the associations) against COPY of the same rows:");
    println!();
    common::table(
        &[
            "rows",
            "records phase",
            "rows/s (records phase)",
            "COPY, same rows and tables",
            "COPY rows/s",
            "records phase ÷ COPY",
        ],
        0,
        &[vec![
            thousands(copy.rows),
            secs(records_phase),
            thousands((rows_b as f64 / records_phase.as_secs_f64()) as u64),
            secs(copy.time),
            thousands((copy.rows as f64 / copy.time.as_secs_f64()) as u64),
            format!("{:.2}", records_phase.as_secs_f64() / copy.time.as_secs_f64()),
        ]],
    );
    println!();
    println!("COPY by table: {}", copy.by_table.join(", "));
    println!();
    incremental_table("after (b): no budget, no latency", &incr_b);
}

/// From the first run's start to the last full pass completed (`sync_state.updated_at`, set
/// when an object's records are all stored, before its associations are read).
async fn records_phase(db: &Scratch) -> Duration {
    let sql = "SELECT extract(epoch FROM max(s.updated_at) - min(l.started_at))::float8 \
               FROM sync_state s JOIN sync_logs l ON l.sync_type = s.sync_type";
    Duration::from_secs_f64(db.client().await.query_one(sql, &[]).await.unwrap().get::<_, f64>(0))
}

/// What [`copy_baseline`] measured.
struct Copied {
    rows: u64,
    time: Duration,
    by_table: Vec<String>,
}

/// `COPY ... FROM STDIN` (text format) of every row `db` holds in the record tables and `staff`
/// (every column but the generated ones) into the same tables of a fresh database (with the same
/// typed columns), one table after the other; the time of the `COPY`s alone.
async fn copy_baseline(pg: &Postgres, db: &Scratch) -> Copied {
    use futures_util::{SinkExt, TryStreamExt};
    let source = db.client().await;
    let fresh = pg.scratch().await;
    let _ = mapped_columns(&fresh).await;
    let target = fresh.client().await;
    let mut copied = Copied { rows: 0, time: Duration::ZERO, by_table: Vec::new() };
    for table in ["contacts", "deals", "calls", "staff"] {
        let columns: Vec<String> = source
            .query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' \
                 AND table_name = $1 AND is_generated = 'NEVER' ORDER BY ordinal_position",
                &[&table],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| format!("\"{}\"", r.get::<_, String>(0)))
            .collect();
        let columns = columns.join(", ");
        let out = source.copy_out(&format!("COPY (SELECT {columns} FROM {table}) TO STDOUT")).await.unwrap();
        let chunks: Vec<bytes::Bytes> = out.try_collect().await.unwrap();
        let data: Vec<u8> = chunks.concat();
        let rows = data.iter().filter(|b| **b == b'\n').count() as u64;
        let started = Instant::now();
        let sink = target.copy_in(&format!("COPY {table} ({columns}) FROM STDIN")).await.unwrap();
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from(data)).await.unwrap();
        sink.finish().await.unwrap();
        let took = started.elapsed();
        copied.rows += rows;
        copied.time += took;
        copied.by_table.push(format!("{table} {} rows {:.0} ms", thousands(rows), common::ms(took)));
    }
    drop(target);
    pg.drop_db(fresh).await;
    copied
}

/// (c): what an incremental run with nothing to do used.
fn incremental_table(setting: &str, inv: &Invocation) {
    println!();
    println!("(c) `sync all` (incremental), nothing changed, {setting}");
    println!();
    common::table(
        &["requests", "by operation", "wall time (process)", "longest run (sync_logs)"],
        0,
        &[vec![
            inv.requests.to_string(),
            format!("{:?}", inv.operations),
            format!("{:.0} ms", common::ms(inv.wall)),
            format!("{} ms", inv.longest_run_ms()),
        ]],
    );
    println!();
    println!("runs: {}", runs_line(inv));
}

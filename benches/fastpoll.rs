//! Issue 17: freshness without webhooks. An in-process `hubspot-sim` the size of the seed account
//! (50 ms latency on every API call, HubSpot's 100 requests per 10 s, a search index that shows a
//! change 3 s after it happens) changes records at a steady rate spread evenly over contacts,
//! deals and calls, and sends no webhooks. An in-process server (`runtime::start`) runs with
//! `HUBSPOT_CLIENT_SECRET` unset and default settings: the fast polling lanes (every 10 s, and
//! the delayed lane every minute, 2 minutes behind), `FAST_POLL_BUDGET_SHARE` 20%, budget 100 per
//! 10 s, and the default incremental schedules of contacts (every 5 min), deals and calls (every
//! 15 min), their watermarks at the start as after a sync (owners, the full pass and the audit
//! are daily or weekly and left out).
//!
//! `cargo bench -p hubspot-sync --bench fastpoll [-- RATE SECONDS]` (defaults: 5 changes/s for
//! 240 s, the first 20 s not measured). PostgreSQL as for the other benches; the database starts
//! as a copy of the simulator.
//!
//! Freshness of a change: the simulator's `updatedAt` of the new version to the moment
//! PostgreSQL first wrote that version (an `AFTER INSERT OR UPDATE` trigger records
//! `clock_timestamp()` per row and `updated_at`, as in `benches/freshness.rs`). A version
//! overwritten in HubSpot before any read is never written; those are counted. At the end every
//! changed record must hold HubSpot's latest version.
//!
//! Efficiency: every HubSpot request the simulator served from the start of the stream until the
//! copy caught up (schedules included), per change; and the share of the budget the lanes used,
//! as the server measures it over each last minute (`fast_polling_budget_used` of the status
//! API), sampled every 10 s.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly by design

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use clap::Parser as _;
use common::{
    KINDS, Postgres, Scratch, copy_data, machine, quantile, seed_sized, stale_records, thousands, track_versions,
};
use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, TYPICAL_SEARCH_LAG_MS};
use hubspot_sync::cli::{Cli, Command, ServeArgs};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::runtime;
use hubspot_sync::store::sync_state;

const WARM_UP: Duration = Duration::from_secs(20);
const TICK: Duration = Duration::from_millis(50);
/// A cron expression that never fires within a benchmark (1 January, midnight).
const NEVER: &str = "0 0 1 1 *";
/// The longest the copy may take to catch up after the stream (the delayed lane trails by 2 min).
const CATCH_UP: Duration = Duration::from_secs(240);

/// `serve` as a user without webhooks runs it: no client secret, the default lanes and the
/// default incremental schedules.
fn serve_args(db_url: &str, api_base: &str) -> ServeArgs {
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
        "--hubspot-requests-per-10s",
        "100",
    ];
    for schedule in ["--schedule-owners", "--schedule-full", "--schedule-audit"] {
        argv.extend_from_slice(&[schedule, NEVER]);
    }
    match Cli::try_parse_from(argv).unwrap().command {
        Command::Serve(args) => args,
        other => panic!("parsed {other:?}"),
    }
}

/// Copies the simulator's data into PostgreSQL (as a full sync would, without its requests),
/// records a good run and a watermark of now for every object, then adds the trigger that
/// records when each version is first written.
async fn copy_of(db: &Scratch, sim: &SimHandle) {
    copy_data(db, sim).await;
    let mut conn = db.target.connect("hubspot-sync bench").await.unwrap();
    for kind in KINDS {
        sync_state::advance_watermark(&mut conn, kind.as_str(), chrono::Utc::now()).await.unwrap();
    }
    track_versions(db).await;
}

/// The lanes' share of the budget over the last minute, as the server reports it.
async fn share_used(http: &reqwest::Client, base: &str) -> Option<f64> {
    let status: serde_json::Value = http.get(format!("{base}/api/sync/status")).send().await.ok()?.json().await.ok()?;
    status[0]["live"]["fast_polling_budget_used"].as_f64()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let rate: f64 = args.first().map_or(5.0, |s| s.parse().unwrap());
    let seconds: u64 = args.get(1).map_or(240, |s| s.parse().unwrap());
    let pg = Postgres::find().await;
    println!("machine: {}", machine());
    println!(
        "{rate} changes/s (a third each: contacts, deals, calls) for {seconds} s, the first {} s not measured; \
         simulator latency 50 ms, search index lag {} ms, budget 100 requests / 10 s; no webhooks",
        WARM_UP.as_secs(),
        TYPICAL_SEARCH_LAG_MS
    );
    println!();

    let opts = SimOptions {
        requests_per_10s: 100,
        latency_ms: 50,
        search_lag_ms: TYPICAL_SEARCH_LAG_MS,
        ..SimOptions::default()
    };
    let sim = Sim::start(seed_sized(opts)).await.unwrap();
    let db = pg.scratch().await;
    copy_of(&db, &sim).await;
    let server = runtime::start(serve_args(&db.url, sim.url()).options().unwrap()).unwrap();
    let base = format!("http://{}", server.addr);
    let http = reqwest::Client::new();

    let before = sim.stats();
    let started = Instant::now();
    let measure_from = chrono::Utc::now().timestamp_millis() + WARM_UP.as_millis() as i64;
    let stream = WARM_UP + Duration::from_secs(seconds);
    let mut done: HashMap<ObjectKind, u64> = HashMap::new();
    let mut changed: HashMap<ObjectKind, HashSet<String>> = HashMap::new();
    let (mut changes, mut measured_changes) = (0u64, 0u64);
    let mut shares = Vec::new();
    let mut next_sample = started + Duration::from_secs(60);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().min(stream);
        for kind in KINDS {
            let due = (rate / 3.0 * elapsed.as_secs_f64()) as u64;
            let so_far = done.entry(kind).or_default();
            if due > *so_far {
                let n = due - *so_far;
                let req = ChurnRequest { object: kind.as_str().into(), updates: n as usize, ..ChurnRequest::default() };
                let report = sim.churn(&req).unwrap();
                *so_far = due;
                changes += report.updated.len() as u64;
                if elapsed >= WARM_UP {
                    measured_changes += report.updated.len() as u64;
                }
                changed.entry(kind).or_default().extend(report.updated);
            }
        }
        if Instant::now() >= next_sample {
            shares.extend(share_used(&http, &base).await);
            next_sample += Duration::from_secs(10);
        }
        if elapsed >= stream {
            break;
        }
    }
    let measure_to = chrono::Utc::now().timestamp_millis();
    let stream_secs = started.elapsed().as_secs_f64();

    // Catch-up: every changed record holds HubSpot's latest version.
    let client = db.client().await;
    let stream_end = Instant::now();
    let mut left = stale_records(&client, &sim, &changed).await;
    while left > 0 && stream_end.elapsed() < CATCH_UP {
        tokio::time::sleep(Duration::from_secs(2)).await;
        left = stale_records(&client, &sim, &changed).await;
    }
    let caught_up_after = stream_end.elapsed();
    let after = sim.stats();
    let load = common::load();
    let total_secs = started.elapsed().as_secs_f64();
    server.stop().await.unwrap();

    let rows = client
        .query(
            "SELECT (extract(epoch FROM seen_at - updated_at) * 1000)::float8 FROM bench_seen \
             WHERE updated_at >= to_timestamp($1::bigint / 1000.0) AND updated_at <= to_timestamp($2::bigint / 1000.0)",
            &[&measure_from, &measure_to],
        )
        .await
        .unwrap();
    let mut latencies_ms: Vec<f64> = rows.iter().map(|r| r.get::<_, f64>(0)).collect();
    latencies_ms.sort_by(f64::total_cmp);
    let runs = client
        .query(
            "SELECT sync_type, mode, records_processed FROM sync_logs WHERE trigger <> 'manual' ORDER BY started_at",
            &[],
        )
        .await
        .unwrap();
    drop(client);
    pg.drop_db(db).await;
    sim.shutdown().await;

    let count = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or(0);
    let ops = |v: &serde_json::Value, suffix: &str| {
        v["operations"].as_object().map_or(0, |m| {
            m.iter().filter(|(k, _)| k.ends_with(suffix)).map(|(_, n)| n.as_u64().unwrap_or(0)).sum::<u64>()
        })
    };
    let requests = count(&after, "requests_total") - count(&before, "requests_total");
    let searches = ops(&after, ".search") - ops(&before, ".search");
    let reads = ops(&after, ".batch_read") - ops(&before, ".batch_read");
    let responses_429 = count(&after, "responses_429") - count(&before, "responses_429");
    let q = |p| format!("{:.1}", quantile(&latencies_ms, p) / 1000.0);
    let never = measured_changes.saturating_sub(latencies_ms.len() as u64);
    shares.sort_by(f64::total_cmp);
    let mean_share = shares.iter().sum::<f64>() / shares.len().max(1) as f64;
    let max_share = shares.last().copied().unwrap_or(0.0);
    let all_share = requests as f64 / (total_secs / 10.0 * 100.0);

    println!("freshness: change in the simulator to the version written in PostgreSQL (seconds)");
    println!();
    common::table(
        &["changes/s", "changes measured", "versions written", "p50 s", "p90 s", "p99 s", "max s", "stale at end"],
        0,
        &[vec![
            format!("{:.2}", changes as f64 / stream_secs),
            thousands(measured_changes),
            format!("{} ({never} never written)", thousands(latencies_ms.len() as u64)),
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0),
            left.to_string(),
        ]],
    );
    println!();
    println!(
        "efficiency: HubSpot requests from the stream's start until the copy caught up ({caught_up_after:.0?} after the stream)"
    );
    println!();
    common::table(
        &[
            "changes",
            "requests",
            "searches",
            "batch reads",
            "requests per change",
            "429s",
            "lanes' budget share (mean / max of 1-min samples)",
            "all requests' budget share",
            "after the run",
        ],
        0,
        &[vec![
            thousands(changes),
            thousands(requests),
            thousands(searches),
            thousands(reads),
            format!("{:.3}", requests as f64 / changes.max(1) as f64),
            responses_429.to_string(),
            format!("{:.1}% / {:.1}% ({} samples)", mean_share * 100.0, max_share * 100.0, shares.len()),
            format!("{:.1}%", all_share * 100.0),
            load,
        ]],
    );
    println!();
    let runs: Vec<String> = runs
        .iter()
        .map(|r| format!("{} {} ({} records)", r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, i32>(2)))
        .collect();
    println!("scheduled runs during the bench: {}", if runs.is_empty() { "none".to_owned() } else { runs.join(", ") });
}

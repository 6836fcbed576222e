//! Issue 5 (b) and (c): freshness and efficiency of the real-time path under a steady stream of
//! changes. An in-process `hubspot-sim` the size of the seed account (50 ms latency on every API
//! call, HubSpot's 100 requests per 10 s) changes records at a steady rate and delivers HubSpot's
//! signed webhooks (with its usual 1% duplicates and 2% reordered batches) to an in-process
//! server (`runtime::start`, default settings: `FETCH_WINDOW` 200 ms, budget 100 per 10 s).
//!
//! `cargo bench -p hubspot-sync --bench freshness [-- RATE SECONDS]` (defaults: 500 changes/s
//! for 20 s, the first 2 s not measured; `BENCH_BUDGET=0` lifts the request budget on both sides,
//! to see what the budget costs). PostgreSQL as for the other benches; the database
//! starts as a copy of the simulator (as after a full sync), and the poller stays idle.
//!
//! Freshness of a change: the simulator's `updatedAt` of the new version (its clock is this
//! machine's) to the moment PostgreSQL wrote that version: an `AFTER INSERT OR UPDATE` row
//! trigger added for the benchmark records `clock_timestamp()` per (row, `updated_at`) the first
//! time it is written (the commit follows within the same statement, in milliseconds). A version
//! overwritten in HubSpot before any fetch read it is never written; those are counted. At the
//! end every changed record must hold HubSpot's latest version.
//!
//! Efficiency: HubSpot requests the simulator served from the start of the stream until the
//! queue drained, divided by the changes made.
//!
//! Two mixes of objects: in proportion to the seed account's records (78% contacts, 20% calls,
//! 3% deals), and contacts only.
//!
//! (d), first: issue 15's mixed burst (every event type over three kinds, about 700 events in 23
//! batches over 1.35 s) and one event delivered 1,000 times (`burst.rs`); `-- burst` runs these
//! alone.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly by design

#[path = "freshness/burst.rs"]
mod burst;
mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{
    Postgres, SEED, Scratch, copy_data, free_port, machine, quantile, seed_sized, serve_args, stale_records, thousands,
    track_versions,
};
use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, WebhookConfig};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::runtime;

const SECRET: &str = "bench-client-secret";
const WARM_UP: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(10);

/// Copies the simulator's data into PostgreSQL (as a full sync would, without its requests),
/// then adds the trigger that records when each version is first written.
async fn copy_of(db: &Scratch, sim: &SimHandle) {
    copy_data(db, sim).await;
    track_versions(db).await;
}

struct Outcome {
    rate: f64,
    changes: u64,
    measured_changes: u64,
    latencies_ms: Vec<f64>,
    requests: u64,
    batch_reads: u64,
    responses_429: u64,
    stale_at_end: usize,
    webhooks: serde_json::Value,
    drained_after: Duration,
    load: String,
}

async fn scenario(pg: &Postgres, mix: &[(ObjectKind, f64)], rate: f64, seconds: u64, budget: u32) -> Outcome {
    let port = free_port();
    let hooks = WebhookConfig::new(format!("http://127.0.0.1:{port}/webhooks/hubspot"), SECRET);
    let opts = SimOptions { requests_per_10s: budget, latency_ms: 50, webhook: Some(hooks), ..SimOptions::default() };
    let sim = Sim::start(seed_sized(opts)).await.unwrap();
    let db = pg.scratch().await;
    copy_of(&db, &sim).await;
    let budget_arg = if budget == 0 { "100000".to_owned() } else { budget.to_string() };
    let mut args = serve_args(&db.url, sim.url(), SECRET, &["--hubspot-requests-per-10s", &budget_arg]);
    args.server.port = port;
    let server = runtime::start(args.options().unwrap()).unwrap();

    let before = sim.stats();
    let started = Instant::now();
    let measure_from = chrono::Utc::now().timestamp_millis() + WARM_UP.as_millis() as i64;
    let stream = WARM_UP + Duration::from_secs(seconds);
    let mut done: HashMap<ObjectKind, u64> = HashMap::new();
    let mut changed: HashMap<ObjectKind, HashSet<String>> = HashMap::new();
    let (mut changes, mut measured_changes) = (0u64, 0u64);
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().min(stream);
        for &(kind, share) in mix {
            let due = (rate * share * elapsed.as_secs_f64()) as u64;
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
        if elapsed >= stream {
            break;
        }
    }
    let measure_to = chrono::Utc::now().timestamp_millis();
    let actual_rate = changes as f64 / started.elapsed().as_secs_f64();

    // Drain: every webhook delivered, then nothing new written for a second.
    let stream_end = Instant::now();
    assert!(sim.wait_webhooks_idle(Duration::from_secs(60)).await, "webhooks still pending");
    let client = db.client().await;
    let mut last = -1i64;
    loop {
        let seen: i64 = client.query_one("SELECT count(*) FROM bench_seen", &[]).await.unwrap().get(0);
        if seen == last || stream_end.elapsed() > Duration::from_secs(60) {
            break;
        }
        last = seen;
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let drained_after = stream_end.elapsed().saturating_sub(Duration::from_secs(1));
    let after = sim.stats();
    let load = common::load();
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

    // Every changed record holds HubSpot's latest version.
    let stale_at_end = stale_records(&client, &sim, &changed).await;
    drop(client);
    pg.drop_db(db).await;
    sim.shutdown().await;

    let count = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or(0);
    let batch_reads = |v: &serde_json::Value| {
        v["operations"].as_object().map_or(0, |m| {
            m.iter().filter(|(k, _)| k.ends_with(".batch_read")).map(|(_, n)| n.as_u64().unwrap_or(0)).sum::<u64>()
        })
    };
    Outcome {
        rate: actual_rate,
        changes,
        measured_changes,
        latencies_ms,
        requests: count(&after, "requests_total") - count(&before, "requests_total"),
        batch_reads: batch_reads(&after) - batch_reads(&before),
        responses_429: count(&after, "responses_429") - count(&before, "responses_429"),
        stale_at_end,
        webhooks: after["webhooks"].clone(),
        drained_after,
        load,
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    // `-- burst`: issue 15's mixed burst and one event delivered 1,000 times, alone.
    let only_burst = args.first().is_some_and(|a| a == "burst");
    let args: Vec<String> = args.into_iter().filter(|a| a != "burst").collect();
    let rate: f64 = args.first().map_or(500.0, |s| s.parse().unwrap());
    let seconds: u64 = args.get(1).map_or(20, |s| s.parse().unwrap());
    let (contacts, deals, calls, _) = SEED;
    let total = (contacts + deals + calls) as f64;
    let proportional = [
        (ObjectKind::Contacts, contacts as f64 / total),
        (ObjectKind::Deals, deals as f64 / total),
        (ObjectKind::Calls, calls as f64 / total),
    ];
    let mixes: [(&str, &[(ObjectKind, f64)]); 2] =
        [("as the seed account (78/3/20)", &proportional), ("contacts only", &[(ObjectKind::Contacts, 1.0)])];
    // HubSpot's budget (requests per 10 s) on both sides; BENCH_BUDGET=0 turns it off (diagnosis).
    let budget: u32 = std::env::var("BENCH_BUDGET").map_or(100, |b| b.parse().unwrap());
    let pg = Postgres::find().await;
    println!("machine: {}", machine());
    println!();
    println!("(d) issue 15: a mixed burst, and one event delivered 1,000 times (budget 100 / 10 s, latency 50 ms)");
    println!();
    let mixed = burst::mixed(&pg).await;
    let repeated = burst::repeated(&pg).await;
    burst::report(&mixed, &repeated);
    if only_burst {
        return;
    }
    println!();
    println!(
        "{rate} changes/s for {seconds} s after {} s warm-up; simulator latency 50 ms; budget {}",
        WARM_UP.as_secs(),
        if budget == 0 { "off".to_owned() } else { format!("{budget} requests / 10 s") }
    );
    println!();
    let mut freshness = Vec::new();
    let mut efficiency = Vec::new();
    for (name, mix) in mixes {
        let o = scenario(&pg, mix, rate, seconds, budget).await;
        let q = |p| format!("{:.0}", quantile(&o.latencies_ms, p));
        freshness.push(vec![
            name.to_owned(),
            format!("{:.0}", o.rate),
            thousands(o.measured_changes),
            format!(
                "{} ({} never written)",
                thousands(o.latencies_ms.len() as u64),
                o.measured_changes.saturating_sub(o.latencies_ms.len() as u64)
            ),
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0),
            o.stale_at_end.to_string(),
            o.load.clone(),
        ]);
        efficiency.push(vec![
            name.to_owned(),
            thousands(o.changes),
            thousands(o.requests),
            thousands(o.batch_reads),
            format!("{:.1}", o.changes as f64 / o.batch_reads.max(1) as f64),
            format!("{:.4}", o.requests as f64 / o.changes.max(1) as f64),
            o.responses_429.to_string(),
            format!("{:.1} s", o.drained_after.as_secs_f64()),
            format!(
                "{} batches, {} duplicates, {} reordered, {} retried",
                o.webhooks["delivered"], o.webhooks["duplicates"], o.webhooks["reordered"], o.webhooks["retried"]
            ),
        ]);
    }
    println!("(b) freshness: change in the simulator to the version written in PostgreSQL");
    println!();
    common::table(
        &[
            "mix",
            "changes/s",
            "changes measured",
            "versions written",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "stale at end",
            "after the run",
        ],
        1,
        &freshness,
    );
    println!();
    println!("(c) efficiency: HubSpot requests per changed object (whole stream, warm-up and drain included)");
    println!();
    common::table(
        &[
            "mix",
            "changes",
            "requests",
            "batch reads",
            "changes per batch read",
            "requests per change",
            "429s",
            "drained after",
            "webhooks",
        ],
        1,
        &efficiency,
    );
}

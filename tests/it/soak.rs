//! The long run (manual): `serve` (the real binary) for `SOAK_SECS` (default 1,800 s) under
//! steady churn of `SOAK_CHANGES_PER_S` (default 500) changes per second delivered as webhooks,
//! with every object's reconciliation scheduled every minute, within HubSpot's Professional
//! budget (190 requests per 10 s). Every minute it prints the server's RSS, the webhook queue
//! depth and the database connections the server holds; at the end it stops the churn, lets the
//! queue and HubSpot's retries settle, and checks:
//! - memory stays flat: RSS at the end is within 1.5x (+32 MiB) of RSS after the first minute;
//! - no connection leaks: the server's PostgreSQL connections stay within the pool (10) plus the
//!   `LISTEN` connection, the leader lock and one lock per running object;
//! - zero differences between PostgreSQL and the simulator's export.
//!
//! `TEST_DATABASE_URL=... cargo test -p hubspot-sync --test it soak -- --ignored --nocapture`

use std::time::{Duration, Instant};

use hubspot_sim::{ChurnRequest, Sim, SimOptions, WebhookConfig};

use crate::harness::binary::ServeBinary;
use crate::harness::compare::{Merges, all_differences};
use crate::harness::hooks::SECRET;
use crate::harness::{PATIENCE, TestDb};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or("VmRSS: 0 kB");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

async fn connections(db: &TestDb) -> i64 {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
               AND application_name LIKE 'hubspot-sync%' AND application_name <> 'hubspot-sync tests'";
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

async fn queue_depth(port: u16) -> Option<u64> {
    let status: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/api/sync/status")).await.ok()?.json().await.ok()?;
    // One element per object, each with the same live figures.
    status.as_array()?.first()?["live"]["queue_depth"].as_u64()
}

#[tokio::test]
#[ignore = "the 30-minute soak; run by hand"]
async fn soak_steady_churn_keeps_memory_and_connections_flat_and_converges() {
    let secs = env_num("SOAK_SECS", 1800);
    let per_second = env_num("SOAK_CHANGES_PER_S", 500) as usize;
    let port = crate::harness::free_port();
    let mut hooks = WebhookConfig::new(format!("http://127.0.0.1:{port}/webhooks/hubspot"), SECRET);
    hooks.retry_base_ms = 500;
    hooks.retry_max_ms = 10_000;
    let sim = Sim::start(SimOptions {
        contacts: 20_000,
        deals: 5_000,
        calls: 10_000,
        owners: 20,
        requests_per_10s: 190,
        webhook: Some(hooks),
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let db = TestDb::new().await;
    let every_minute = "* * * * *";
    let serve = ServeBinary::new(&db.url())
        .hubspot(&sim)
        .port(port)
        .env("RUST_LOG", "warn")
        .env("HUBSPOT_CLIENT_SECRET", SECRET)
        .env("HUBSPOT_REQUESTS_PER_10S", "190")
        .env("SCHEDULE_CONTACTS", every_minute)
        .env("SCHEDULE_DEALS", every_minute)
        .env("SCHEDULE_CALLS", every_minute)
        .env("SCHEDULE_OWNERS", every_minute)
        .inherit_stderr()
        .spawn()
        .await;
    let pid = serve.pid();
    // Steady churn: every 100 ms, a tenth of a second's changes, spread over the three kinds.
    let started = Instant::now();
    let tick = per_second / 10;
    let (mut baseline, mut peak_connections, mut minute) = (0u64, 0i64, 0u64);
    let mut churn = tokio::time::interval(Duration::from_millis(100));
    let mut changes = 0usize;
    while started.elapsed() < Duration::from_secs(secs) {
        churn.tick().await;
        for (object, share) in [("contacts", 2), ("deals", 1), ("calls", 2)] {
            let n = tick * share / 5;
            let rare = usize::from(changes % 200 < n);
            let req = ChurnRequest {
                object: object.into(),
                creates: n / 5,
                updates: n - n / 5 - rare,
                deletes: rare,
                merges: if object == "calls" { 0 } else { rare },
                ..ChurnRequest::default()
            };
            changes += sim.churn(&req).unwrap().events as usize;
        }
        if started.elapsed() >= Duration::from_secs(60 * (minute + 1)) {
            minute += 1;
            let (rss, conns) = (rss_kib(pid), connections(&db).await);
            peak_connections = peak_connections.max(conns);
            if minute == 1 {
                baseline = rss;
            }
            println!(
                "soak minute {minute}: rss {rss} KiB, queue {:?}, db connections {conns}, events {changes}, {}",
                queue_depth(port).await,
                sim.stats()["webhooks"]
            );
        }
    }
    let end_rss = rss_kib(pid);
    assert!(sim.wait_webhooks_idle(Duration::from_secs(600)).await, "webhooks still pending: {}", sim.stats());
    let settle = Instant::now() + Duration::from_secs(300);
    while queue_depth(port).await != Some(0) && Instant::now() < settle {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // One more scheduled minute so the reconciliation sees the last changes.
    tokio::time::sleep(Duration::from_secs(75)).await;
    let end_connections = connections(&db).await;
    serve.signal("-TERM");
    let (code, _) = serve.exit(PATIENCE).await;
    let diffs = all_differences(&db, &sim, Merges::Archived, true).await;
    println!(
        "soak of {secs} s, {changes} events: rss {baseline} KiB after 1 min -> {end_rss} KiB at the end; \
         db connections peak {peak_connections}, end {end_connections}; {} differences; exit {code:?}",
        diffs.len()
    );
    assert_eq!(code, Some(0));
    assert!(end_rss <= baseline * 3 / 2 + 32 * 1024, "memory grew: {baseline} -> {end_rss} KiB");
    assert!(peak_connections <= 10 + 2 + 4, "connections: peak {peak_connections}");
    assert!(diffs.is_empty(), "{} differences:\n{}", diffs.len(), diffs[..diffs.len().min(10)].join("\n"));
}

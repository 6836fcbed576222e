//! Deploy and crash, with the real binary, in the middle of a webhook burst from the simulator.
//!
//! - Deploy: SIGTERM drains the queue and exits 0 within `SHUTDOWN_GRACE`; the next instance
//!   takes HubSpot's retries of what was refused meanwhile, and the database matches the
//!   simulator's export with no reconciliation run at all.
//! - Crash: `kill -9` loses whatever was acknowledged but only queued in memory; the restarted
//!   instance takes the retries, and the next reconciliation run converges. Deletions, merges and
//!   privacy deletions were written before they were acknowledged, so nothing is lost for good.
//!
//! Bursts are `FAULT_BURST_EVENTS` events (3,000 by default; the 20,000 with
//! `FAULT_BURST_EVENTS=20000`).

use std::time::Duration;

use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, WebhookConfig};

use crate::harness::binary::{ServeBinary, ServeProcess, command_for};
use crate::harness::compare::{Merges, all_differences, assert_converged};
use crate::harness::hooks::SECRET;
use crate::harness::{PATIENCE, TestDb, eventually, free_port};

/// `SHUTDOWN_GRACE`: generous, so a drain on a busy machine still ends within it.
const GRACE: Duration = Duration::from_secs(120);
const ADMIN_TOKEN: &str = "fault-admin";

fn burst_events() -> usize {
    std::env::var("FAULT_BURST_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(3_000)
}

/// A simulator whose webhooks go to `port` and whose API answers in about 20 ms (so fetchers lag
/// behind the burst and a queue is waiting when the signal comes).
async fn deploy_sim(port: u16) -> SimHandle {
    let mut hooks = WebhookConfig::new(format!("http://127.0.0.1:{port}/webhooks/hubspot"), SECRET);
    hooks.retry_base_ms = 250;
    hooks.retry_max_ms = 4000;
    let opts = SimOptions {
        contacts: 2_000,
        deals: 600,
        calls: 1_000,
        owners: 8,
        latency_ms: 20,
        webhook: Some(hooks),
        workers: 2,
        ..SimOptions::default()
    };
    Sim::start(opts).await.unwrap()
}

/// `hubspot-sync sync <args>`; its exit code must be 0.
async fn sync(db: &TestDb, sim: &SimHandle, args: &[&str]) {
    let out = command_for(db, sim).env("RUST_LOG", "info").arg("sync").args(args).output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "sync {args:?}: {text}");
}

/// `hubspot-sync serve` on `port`, no schedule firing, up and answering.
async fn serve(db: &TestDb, sim: &SimHandle, port: u16) -> ServeProcess {
    ServeBinary::new(&db.url())
        .hubspot(sim)
        .port(port)
        .env("RUST_LOG", "info")
        .env("HUBSPOT_REQUESTS_PER_10S", "1000")
        .env("HUBSPOT_CLIENT_SECRET", SECRET)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("SHUTDOWN_GRACE", format!("{}s", GRACE.as_secs()))
        .env("FETCH_WINDOW", "100ms")
        .quiet_schedules()
        .spawn()
        .await
}

/// Some webhook batches of the burst were delivered (more are on the way).
async fn mid_burst(sim: &SimHandle) {
    eventually(PATIENCE, "no webhook delivered", || async {
        sim.stats()["webhooks"]["delivered"].as_u64().unwrap_or(0) >= 5
    })
    .await;
}

/// About `events` webhook events over the three kinds: mostly updates and creations, some
/// deletions and merges, and privacy deletions of contacts.
fn burst(sim: &SimHandle, events: usize) {
    let per_round = 600;
    for round in 0..events.div_ceil(per_round) {
        for object in ["contacts", "deals", "calls"] {
            let req = ChurnRequest {
                object: object.into(),
                creates: 30,
                updates: 160,
                deletes: 6,
                merges: if object == "calls" { 0 } else { 2 },
                privacy_deletions: if object == "contacts" && round % 3 == 0 { 1 } else { 0 },
                ..ChurnRequest::default()
            };
            sim.churn(&req).unwrap();
        }
    }
}

/// A database holding a first full copy of the simulator (`sync all --full`).
async fn synced(sim: &SimHandle) -> TestDb {
    let db = TestDb::new().await;
    sync(&db, sim, &["all", "--full"]).await;
    db
}

async fn runs(db: &TestDb) -> i64 {
    db.client().await.query_one("SELECT count(*) FROM sync_logs", &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn sigterm_during_a_burst_drains_exits_0_and_matches_without_reconciliation() {
    let port = free_port();
    let sim = deploy_sim(port).await;
    let db = synced(&sim).await;
    let runs_before = runs(&db).await;
    let old = serve(&db, &sim, port).await;
    burst(&sim, burst_events());
    mid_burst(&sim).await;
    old.signal("-TERM");
    let (code, logs) = old.exit(GRACE + PATIENCE).await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("webhook queue drained"), "the queue drained within the grace: {logs}");
    // The deploy's new instance takes HubSpot's retries of what was refused during the drain.
    let new = serve(&db, &sim, port).await;
    assert!(sim.wait_webhooks_idle(GRACE + PATIENCE).await, "webhooks still pending: {}", sim.stats());
    new.signal("-TERM");
    let (code, logs) = new.exit(GRACE + PATIENCE).await;
    assert_eq!(code, Some(0), "{logs}");
    let stats = sim.stats();
    println!("deploy during a burst of {} events: {}", burst_events(), stats["webhooks"]);
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "{stats}");
    assert_eq!(runs(&db).await, runs_before, "no reconciliation run took place");
    assert_converged(&db, &sim, Merges::Pointer, true).await;
}

#[tokio::test]
async fn kill_9_during_a_burst_then_restart_and_the_next_run_converge() {
    let port = free_port();
    let sim = deploy_sim(port).await;
    let db = synced(&sim).await;
    let crashed = serve(&db, &sim, port).await;
    burst(&sim, burst_events());
    mid_burst(&sim).await;
    // A forced full run is in progress too: the crash cuts it off before it records its end.
    let forced = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/api/sync/contacts?full=true"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status().as_u16(), 202);
    assert_eq!(crashed.kill().await, None, "killed by a signal");
    let restarted = serve(&db, &sim, port).await;
    assert!(sim.wait_webhooks_idle(GRACE + PATIENCE).await, "webhooks still pending: {}", sim.stats());
    assert_eq!(sim.stats()["webhooks"]["batches_failed"], 0, "{}", sim.stats());
    let lost = all_differences(&db, &sim, Merges::Pointer, true).await.len();
    println!("after the crash and the retries, before reconciliation: {lost} differences");
    // The next reconciliation run: incremental runs stop `skew` (5 s) before now, so the last
    // changes must be that old.
    tokio::time::sleep(Duration::from_secs(6)).await;
    sync(&db, &sim, &["all"]).await;
    let running: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM sync_logs WHERE status = 'running'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(running, 0, "the run the crash cut off is closed (failed), not left running");
    let interrupted: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM sync_logs WHERE status = 'failed' AND error_details->>'error' LIKE 'interrupted%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(interrupted, 1, "the forced run the crash cut off");
    restarted.signal("-TERM");
    let (code, logs) = restarted.exit(GRACE + PATIENCE).await;
    assert_eq!(code, Some(0), "{logs}");
    println!("crash during a burst of {} events: {}", burst_events(), sim.stats()["webhooks"]);
    assert_converged(&db, &sim, Merges::Pointer, true).await;
}

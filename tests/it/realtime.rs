//! The real-time path end to end: `hubspot-sim` delivers signed webhook batches (with its own
//! duplicates, reordering and retries) to a running server, whose fetchers read the simulator's
//! API and write PostgreSQL. After the server drains, PostgreSQL must equal the simulator's
//! export: every live record with the same properties, times and named columns; every deleted or
//! merged one archived (with the pointer to its survivor); privacy-deleted contacts gone.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, WebhookConfig};

use crate::harness::compare::{Merges, assert_converged, seed};
use crate::harness::{TestDb, bin, free_port};
use crate::webhook::{NEVER, SECRET, post, post_changes, quiet_poller, serve_args, signed, start};

/// A small simulator delivering webhooks to `port`, with many duplicates and reorderings.
async fn sim_for(port: u16) -> SimHandle {
    let mut hooks = WebhookConfig::new(format!("http://127.0.0.1:{port}/webhooks/hubspot"), SECRET);
    hooks.duplicate_rate = 0.2;
    hooks.reorder_rate = 0.2;
    hooks.retry_base_ms = 100;
    hooks.retry_max_ms = 1000;
    let opts =
        SimOptions { contacts: 300, deals: 150, calls: 300, owners: 5, webhook: Some(hooks), ..SimOptions::default() };
    Sim::start(opts).await.unwrap()
}

fn churn(object: &str, creates: usize, updates: usize, deletes: usize, merges: usize, restores: usize) -> ChurnRequest {
    ChurnRequest { object: object.into(), creates, updates, deletes, merges, restores, ..ChurnRequest::default() }
}

#[tokio::test]
async fn churn_of_every_kind_converges_to_the_simulator() {
    let db = TestDb::new().await;
    let port = free_port();
    let sim = sim_for(port).await;
    seed(&db, &sim).await;
    let mut args = serve_args(&db, sim.url(), &["--fetch-window", "100ms"]);
    args.server.port = port;
    let (server, url) = start(&args);
    let mut restored = Vec::new();
    for round in 0..3 {
        for object in ["contacts", "deals", "calls"] {
            // HubSpot's times have millisecond resolution: a deletion and a restore of one record
            // within one millisecond cannot be ordered by anyone (the simulator can pick a record
            // it just deleted for a restore in the same call), so those changes are spaced out.
            sim.churn(&churn(object, 15, 40, 8, 3, 0)).unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
            let report = sim.churn(&churn(object, 0, 0, 0, 0, 4)).unwrap();
            tokio::time::sleep(Duration::from_millis(3)).await;
            restored.extend(report.restored.iter().map(|id| (object, id.clone())));
        }
        let privacy = ChurnRequest {
            object: "contacts".into(),
            privacy_deletions: 2,
            bulk_updates: 20 * round,
            ..ChurnRequest::default()
        };
        tokio::time::sleep(Duration::from_millis(3)).await;
        sim.churn(&privacy).unwrap();
    }
    assert!(sim.wait_webhooks_idle(Duration::from_secs(15)).await, "webhooks still pending");
    // A late, out-of-order deletion of a record restored since must not archive it again.
    let (object, id) = restored.first().cloned().expect("some record was restored");
    let kind = if object == "calls" { "object" } else { &object[..object.len() - 1] };
    let stale = serde_json::json!([{"subscriptionType": format!("{kind}.deletion"), "objectTypeId": "0-48",
        "objectId": id.parse::<u64>().unwrap(), "occurredAt": 1_000, "changeFlag": "DELETED"}]);
    let body = serde_json::to_vec(&stale).unwrap();
    assert_eq!(
        post(&url, body.clone(), &signed(SECRET, &url, &body, chrono::Utc::now().timestamp_millis())).await,
        204
    );
    server.stop().await.unwrap();
    let stats = sim.stats();
    assert!(stats["webhooks"]["duplicates"].as_u64().unwrap() > 0, "the sim sent duplicates: {stats}");
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "{stats}");
    assert_converged(&db, &sim, Merges::Pointer, false).await;
}

#[tokio::test]
async fn a_full_queue_refuses_with_503_and_hubspot_retries_converge() {
    let db = TestDb::new().await;
    let port = free_port();
    let sim = sim_for(port).await;
    seed(&db, &sim).await;
    let mut args = serve_args(&db, sim.url(), &["--queue-capacity", "150", "--fetch-window", "50ms"]);
    args.server.port = port;
    let (server, _url) = start(&args);
    for object in ["contacts", "deals", "calls"] {
        sim.churn(&churn(object, 60, 100, 0, 0, 0)).unwrap();
    }
    assert!(sim.wait_webhooks_idle(Duration::from_secs(18)).await, "webhooks still pending");
    server.stop().await.unwrap();
    let stats = sim.stats();
    assert!(stats["webhooks"]["retried"].as_u64().unwrap() > 0, "some batches met a full queue: {stats}");
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "{stats}");
    assert_converged(&db, &sim, Merges::Pointer, false).await;
}

#[tokio::test]
async fn one_event_delivered_1000_times_costs_a_few_batch_reads() {
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 50, deals: 5, calls: 5, owners: 2, ..SimOptions::default() }).await.unwrap();
    quiet_poller(&db).await;
    let (server, url) = start(&serve_args(&db, sim.url(), &[]));
    let id: u64 = sim.export_json("contacts")[0]["id"].as_str().unwrap().parse().unwrap();
    for _ in 0..50 {
        let ids = [id];
        let posts = (0..20).map(|_| post_changes(&url, "contact", &ids));
        let codes = futures_util::future::join_all(posts).await;
        assert!(codes.iter().all(|c| *c == 204), "{codes:?}");
    }
    server.stop().await.unwrap();
    let reads = sim.stats()["operations"]["contacts.batch_read"].as_u64().unwrap_or(0);
    println!("1000 deliveries of one event -> {reads} batch reads");
    assert!((1..=50).contains(&reads), "{reads} batch reads for 1000 deliveries");
    let stored: i64 = db.client().await.query_one("SELECT count(*) FROM contacts", &[]).await.unwrap().get(0);
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn sigterm_with_a_full_queue_drains_it_and_exits_0() {
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 400, deals: 5, calls: 5, owners: 2, ..SimOptions::default() }).await.unwrap();
    let port = free_port();
    quiet_poller(&db).await;
    let child = Command::new(bin())
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("BIND", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("METRICS_PORT", "0")
        .env("HUBSPOT_ACCESS_TOKEN", "pat-test")
        .env("HUBSPOT_API_BASE", sim.url())
        .env("HUBSPOT_CLIENT_SECRET", SECRET)
        // Ids wait for an hour unless a batch of 100 fills: only the drain sends the rest.
        .env("FETCH_WINDOW", "1h")
        .env("SCHEDULE_CONTACTS", NEVER)
        .env("SCHEDULE_DEALS", NEVER)
        .env("SCHEDULE_CALLS", NEVER)
        .env("SCHEDULE_OWNERS", NEVER)
        .env("SCHEDULE_FULL", NEVER)
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/webhooks/hubspot");
    let deadline = Instant::now() + Duration::from_secs(15);
    while reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_err() {
        assert!(Instant::now() < deadline, "serve did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let live = sim.export_json("contacts").into_iter().filter(|c| c["archived"] == false);
    let ids: Vec<u64> = live.map(|c| c["id"].as_str().unwrap().parse().unwrap()).collect();
    for chunk in ids[..350].chunks(70) {
        assert_eq!(post_changes(&url, "contact", chunk).await, 204);
    }
    assert!(Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait_with_output()).await.unwrap().unwrap();
    let logs = String::from_utf8_lossy(&status.stderr);
    assert_eq!(status.status.code(), Some(0), "{logs}");
    assert!(logs.contains("webhook queue drained"), "{logs}");
    let stored: i64 = db.client().await.query_one("SELECT count(*) FROM contacts", &[]).await.unwrap().get(0);
    assert_eq!(stored, 350, "every queued id was fetched and stored before exit");
}

/// Prints how long a change takes from the simulator to a visible row (no timed assertion).
#[tokio::test]
async fn a_change_reaches_postgresql_through_its_webhook() {
    let db = TestDb::new().await;
    let port = free_port();
    let sim = sim_for(port).await;
    seed(&db, &sim).await;
    let mut args = serve_args(&db, sim.url(), &[]);
    args.server.port = port;
    let (server, _url) = start(&args);
    let client = db.client().await;
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let id = sim.churn(&churn("deals", 1, 0, 0, 0, 0)).unwrap().created.remove(0);
        let deadline = Instant::now() + Duration::from_secs(10);
        let sql = "SELECT count(*) FROM deals WHERE hubspot_deal_id = $1";
        while client.query_one(sql, &[&id]).await.unwrap().get::<_, i64>(0) == 0 {
            assert!(Instant::now() < deadline, "deal {id} never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!("change -> row: p50 {:?}, max {:?} (FETCH_WINDOW 200ms)", latencies[5], latencies[9]);
    server.stop().await.unwrap();
}

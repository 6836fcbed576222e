//! The real-time path end to end: `hubspot-sim` delivers signed webhook batches (with its own
//! duplicates, reordering and retries) to a running server, whose fetchers read the simulator's
//! API and write PostgreSQL. After the server drains, PostgreSQL must equal the simulator's
//! export: every live record with the same properties, times and named columns; every deleted or
//! merged one archived (with the pointer to its survivor); privacy-deleted contacts gone.

use std::time::{Duration, Instant};

use hubspot_sim::{ChurnRequest, Sim, SimOptions, WebhookConfig};

use crate::harness::app::AppBuilder;
use crate::harness::binary::ServeBinary;
use crate::harness::compare::{Merges, assert_converged};
use crate::harness::control::quiet_poller;
use crate::harness::hooks::{SECRET, post, post_changes, post_signed, signed};
use crate::harness::{PATIENCE, TestApp, TestDb, eventually, until_some};

/// A small simulator delivering webhooks to the app, with many duplicates and reorderings; the
/// database starts as a copy of it.
fn churned_app() -> AppBuilder {
    let opts = SimOptions { contacts: 300, deals: 150, calls: 300, owners: 5, ..SimOptions::default() };
    TestApp::builder().sim(opts).sim_webhooks(noisy).seeded()
}

fn noisy(hooks: &mut WebhookConfig) {
    hooks.duplicate_rate = 0.2;
    hooks.reorder_rate = 0.2;
    hooks.retry_base_ms = 100;
    hooks.retry_max_ms = 1000;
}

fn churn(object: &str, creates: usize, updates: usize, deletes: usize, merges: usize, restores: usize) -> ChurnRequest {
    ChurnRequest { object: object.into(), creates, updates, deletes, merges, restores, ..ChurnRequest::default() }
}

#[tokio::test]
async fn churn_of_every_kind_converges_to_the_simulator() {
    let mut app = churned_app().arg("--fetch-window", "100ms").start().await;
    let (sim, url) = (app.sim.take().unwrap(), app.webhook_url.clone());
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
    assert!(sim.wait_webhooks_idle(PATIENCE).await, "webhooks still pending");
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
    app.stop().await;
    let stats = sim.stats();
    assert!(stats["webhooks"]["duplicates"].as_u64().unwrap() > 0, "the sim sent duplicates: {stats}");
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "{stats}");
    assert_converged(&app.db, &sim, Merges::Pointer, false).await;
}

/// A HubSpot that signs with v1 only (as some private-app setups are reported to receive) and
/// delivers every batch twice: fresh bodies are accepted, a duplicate that arrives after its
/// original was accepted is refused as a replay and HubSpot's retry (a new `attemptNumber`, so
/// a new body) is accepted; nothing is given up and everything converges.
#[tokio::test]
async fn v1_only_deliveries_with_duplicates_converge() {
    let opts = SimOptions { contacts: 100, deals: 50, calls: 100, owners: 5, ..SimOptions::default() };
    let v1_only = |hooks: &mut WebhookConfig| {
        noisy(hooks);
        hooks.duplicate_rate = 1.0;
        hooks.v1_only = true;
    };
    let mut app =
        TestApp::builder().sim(opts).sim_webhooks(v1_only).seeded().arg("--fetch-window", "100ms").start().await;
    let sim = app.sim.take().unwrap();
    for object in ["contacts", "deals", "calls"] {
        sim.churn(&churn(object, 10, 20, 4, 2, 0)).unwrap();
    }
    assert!(sim.wait_webhooks_idle(PATIENCE).await, "webhooks still pending");
    app.stop().await;
    let stats = sim.stats();
    assert!(stats["webhooks"]["duplicates"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "{stats}");
    assert_eq!(app.db.count("SELECT count(*) FROM webhook_v3_seen").await, 0, "no v3 was ever sent");
    assert_converged(&app.db, &sim, Merges::Pointer, false).await;
}

#[tokio::test]
async fn a_full_queue_refuses_with_503_and_hubspot_retries_converge() {
    // Partial batches go at most one a second (full ones at once): the burst outruns the reads
    // and meets the 150-id bound.
    let mut app = churned_app().arg("--queue-capacity", "150").arg("--fetch-window", "1s").start().await;
    let sim = app.sim.take().unwrap();
    for object in ["contacts", "deals", "calls"] {
        sim.churn(&churn(object, 60, 100, 0, 0, 0)).unwrap();
    }
    assert!(sim.wait_webhooks_idle(PATIENCE).await, "webhooks still pending");
    app.stop().await;
    let stats = sim.stats();
    assert!(stats["webhooks"]["retried"].as_u64().unwrap() > 0, "some batches met a full queue: {stats}");
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "{stats}");
    assert_converged(&app.db, &sim, Merges::Pointer, false).await;
}

/// Ids wait in the queue, where a waiting id takes no room: however many times one change is
/// delivered meanwhile, it is read once. The first delivery finds the fetchers idle and is read
/// at once; every later one (each with a new `occurredAt`, so none is covered by that read)
/// waits out the hour-long fetch window with the others, and the drain at shutdown reads them
/// in one batch: two reads at most, whatever the speed of the deliveries.
#[tokio::test]
async fn one_event_delivered_1000_times_costs_one_batch_read() {
    let small = SimOptions { contacts: 50, deals: 5, calls: 5, owners: 2, ..SimOptions::default() };
    let mut app = TestApp::builder().sim(small).quiet_poller().arg("--fetch-window", "1h").start().await;
    let url = app.webhook_url.clone();
    let id: u64 = app.sim().export_json("contacts")[0]["id"].as_str().unwrap().parse().unwrap();
    for _ in 0..50 {
        let ids = [id];
        let posts = (0..20).map(|_| post_changes(&url, "contact", &ids));
        let codes = futures_util::future::join_all(posts).await;
        assert!(codes.iter().all(|c| *c == 204), "{codes:?}");
    }
    app.stop().await;
    let reads = app.sim().stats()["operations"]["contacts.batch_read"].as_u64().unwrap_or(0);
    println!("1000 deliveries of one event -> {reads} batch reads");
    assert!((1..=2).contains(&reads), "{reads} batch reads for 1000 deliveries");
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 1);
}

/// Ids waiting for a read whose deletion a webhook then announces: the read does not find them
/// live, and they are archived from the deletion events, with no second (archived) read.
#[tokio::test]
async fn a_read_that_misses_ids_whose_deletion_was_announced_costs_no_archived_read() {
    let small = SimOptions { contacts: 50, deals: 0, calls: 0, owners: 2, ..SimOptions::default() };
    let mut app = TestApp::builder().sim(small).seeded().arg("--fetch-window", "1h").start().await;
    let url = app.webhook_url.clone();
    let live: u64 = app.sim().export_json("contacts")[0]["id"].as_str().unwrap().parse().unwrap();
    // The idle dispatcher reads a lone change at once; after it, partial batches wait the hour.
    assert_eq!(post_changes(&url, "contact", &[live]).await, 204);
    let read = || app.sim().stats()["operations"]["contacts.batch_read"].as_u64().unwrap_or(0);
    eventually(PATIENCE, "the first read", || async { read() >= 1 }).await;
    let report = app.sim().churn(&churn("contacts", 0, 0, 3, 0, 0)).unwrap();
    let gone: Vec<u64> = report.deleted.iter().map(|id| id.parse().unwrap()).collect();
    assert_eq!(post_changes(&url, "contact", &gone).await, 204, "changes of the three, queued");
    let now = chrono::Utc::now().timestamp_millis();
    let deletions: Vec<serde_json::Value> = gone
        .iter()
        .map(|id| {
            serde_json::json!({"eventId": 900 + id, "subscriptionType": "contact.deletion", "objectId": id,
            "occurredAt": now, "portalId": 62515, "appId": 54321, "attemptNumber": 0})
        })
        .collect();
    assert_eq!(post_signed(&url, serde_json::to_vec(&deletions).unwrap()).await, 204);
    // The drain at shutdown reads the three in one batch and finds none of them live.
    app.stop().await;
    let stats = app.sim().stats();
    assert_eq!(stats["operations"]["contacts.batch_read"], 2, "{stats}");
    assert!(stats["operations"]["contacts.batch_read_archived"].is_null(), "no archived read: {stats}");
    assert_eq!(stats["operations"]["contacts.batch_read_ids"], 4, "{stats}");
    for id in &report.deleted {
        assert_eq!(
            app.db
                .count(&format!("SELECT count(*) FROM contacts WHERE hubspot_contact_id = '{id}' AND archived"))
                .await,
            1
        );
    }
}

#[tokio::test]
async fn a_delivery_repeated_after_its_read_costs_no_other_read() {
    let small = SimOptions { contacts: 50, deals: 5, calls: 5, owners: 2, ..SimOptions::default() };
    let mut app = TestApp::builder().sim(small).quiet_poller().arg("--fetch-window", "20ms").start().await;
    let url = app.webhook_url.clone();
    let record = app.sim().export_json("contacts").into_iter().find(|r| r["archived"] == false).unwrap();
    let id: u64 = record["id"].as_str().unwrap().parse().unwrap();
    let changed_at = chrono::DateTime::parse_from_rfc3339(record["updatedAt"].as_str().unwrap()).unwrap();
    // HubSpot repeats a delivery with the same event: same id, same `occurredAt`.
    let event = serde_json::json!([{"eventId": 77, "subscriptionType": "contact.propertyChange", "objectId": id,
        "occurredAt": changed_at.timestamp_millis(), "propertyName": "firstname", "propertyValue": "x",
        "portalId": 62515, "appId": 54321, "attemptNumber": 0}]);
    let body = serde_json::to_vec(&event).unwrap();
    let deliver = || post_signed(&url, body.clone());
    assert_eq!(deliver().await, 204);
    let sim = app.sim.take().unwrap();
    let reads = || sim.stats()["operations"]["contacts.batch_read"].as_u64().unwrap_or(0);
    eventually(PATIENCE, "the first delivery is read", || async { reads() == 1 }).await;
    // Repeats while the row is being written and long after, each past the fetch window.
    for _ in 0..50 {
        let codes = futures_util::future::join_all((0..20).map(|_| deliver())).await;
        assert!(codes.iter().all(|c| *c == 204), "{codes:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    // A new change of the same record is read again.
    let newer = serde_json::json!([{"eventId": 78, "subscriptionType": "contact.propertyChange", "objectId": id,
        "occurredAt": changed_at.timestamp_millis() + 1, "propertyName": "firstname", "propertyValue": "y"}]);
    assert_eq!(post_signed(&url, serde_json::to_vec(&newer).unwrap()).await, 204);
    eventually(PATIENCE, "the newer change is read", || async { reads() >= 2 }).await;
    app.stop().await;
    assert_eq!(reads(), 2, "1,000 repeats of one delivery cost no read");
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 1);
}

#[tokio::test]
async fn sigterm_with_a_full_queue_drains_it_and_exits_0() {
    let small = SimOptions { contacts: 400, deals: 5, calls: 5, owners: 2, ..SimOptions::default() };
    let (db, sim) = (TestDb::new().await, Sim::start(small).await.unwrap());
    quiet_poller(&db).await;
    let serve = ServeBinary::new(&db.url())
        .hubspot(&sim)
        .env("HUBSPOT_CLIENT_SECRET", SECRET)
        // Ids wait for an hour unless a batch of 100 fills: only the drain sends the rest.
        .env("FETCH_WINDOW", "1h")
        .quiet_schedules()
        .spawn()
        .await;
    let url = serve.url("/webhooks/hubspot");
    let live = sim.export_json("contacts").into_iter().filter(|c| c["archived"] == false);
    let ids: Vec<u64> = live.map(|c| c["id"].as_str().unwrap().parse().unwrap()).collect();
    for chunk in ids[..350].chunks(70) {
        assert_eq!(post_changes(&url, "contact", chunk).await, 204);
    }
    serve.signal("-TERM");
    let (code, logs) = serve.exit(PATIENCE).await;
    assert_eq!(code, Some(0), "{logs}");
    assert!(logs.contains("webhook queue drained"), "{logs}");
    let stored = db.count("SELECT count(*) FROM contacts").await;
    assert_eq!(stored, 350, "every queued id was fetched and stored before exit");
}

/// Prints how long a change takes from the simulator to a visible row (no timed assertion).
#[tokio::test]
async fn a_change_reaches_postgresql_through_its_webhook() {
    let mut app = churned_app().start().await;
    let client = app.db.client().await;
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let started = Instant::now();
        let id = app.sim().churn(&churn("deals", 1, 0, 0, 0, 0)).unwrap().created.remove(0);
        let sql = "SELECT count(*) FROM deals WHERE hubspot_deal_id = $1";
        eventually(PATIENCE, &format!("deal {id} never arrived"), || async {
            client.query_one(sql, &[&id]).await.unwrap().get::<_, i64>(0) > 0
        })
        .await;
        latencies.push(started.elapsed());
    }
    latencies.sort();
    println!("change -> row: p50 {:?}, max {:?} (FETCH_WINDOW 200ms)", latencies[5], latencies[9]);
    app.stop().await;
}

#[tokio::test]
async fn a_restore_that_keeps_updated_at_is_live_after_its_webhook_read() {
    let opts = SimOptions { contacts: 120, deals: 5, calls: 5, owners: 2, ..SimOptions::default() };
    let mut app =
        TestApp::builder().sim(opts).sim_webhooks(|_| {}).seeded().arg("--fetch-window", "100ms").start().await;
    let sim = app.sim.take().unwrap();
    let deleted = sim.churn(&churn("contacts", 0, 0, 10, 0, 0)).unwrap().deleted;
    let archived = |ids: Vec<String>| {
        let db = app.db.clone();
        async move {
            let rows = db
                .client()
                .await
                .query("SELECT count(*) FROM contacts WHERE archived AND hubspot_contact_id = ANY($1)", &[&ids])
                .await
                .unwrap();
            rows[0].get::<_, i64>(0)
        }
    };
    eventually(PATIENCE, "the deletions are applied", || {
        let n = archived(deleted.clone());
        async move { n.await == 10 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(3)).await;
    // HubSpot restores them without moving `updatedAt`: only the read that follows the restore
    // webhook can tell they are live again.
    let restore = ChurnRequest { restore_keeps_updated_at: true, ..churn("contacts", 0, 0, 0, 0, 10) };
    let restored = sim.churn(&restore).unwrap().restored;
    assert_eq!(restored.len(), 10);
    eventually(PATIENCE, "the restored records are live", || {
        let n = archived(restored.clone());
        async move { n.await == 0 }
    })
    .await;
    assert!(sim.wait_webhooks_idle(PATIENCE).await, "webhooks still pending");
    app.stop().await;
    assert_converged(&app.db, &sim, Merges::Pointer, false).await;
}

#[tokio::test]
async fn the_status_api_shows_webhook_to_row_latency_and_reads_per_event() {
    let small = SimOptions { contacts: 60, deals: 5, calls: 5, owners: 2, ..SimOptions::default() };
    let mut app = TestApp::builder().sim(small).quiet_poller().arg("--fetch-window", "50ms").start().await;
    let url = app.webhook_url.clone();
    let live = app.sim().export_json("contacts").into_iter().filter(|c| c["archived"] == false);
    let ids: Vec<u64> = live.take(40).map(|c| c["id"].as_str().unwrap().parse().unwrap()).collect();
    for chunk in ids.chunks(10) {
        assert_eq!(post_changes(&url, "contact", chunk).await, 204);
    }
    let status = format!("{}/api/sync/status", app.base);
    let contacts = until_some(PATIENCE, "40 contacts stored through webhooks", || async {
        let rows: Vec<serde_json::Value> = reqwest::get(&status).await.unwrap().json().await.unwrap();
        let row = rows.into_iter().find(|r| r["sync_type"] == "contacts").unwrap();
        (row["realtime"]["records_stored"].as_u64() == Some(40)).then_some(row)
    })
    .await;
    let r = &contacts["realtime"];
    let (p50, p99) = (r["change_to_row_p50_ms"].as_u64().unwrap(), r["change_to_row_p99_ms"].as_u64().unwrap());
    assert!(p50 <= p99, "{r}");
    assert_eq!(r["events"], 40, "{r}");
    let reads = r["reads"].as_u64().unwrap();
    assert!((1..=4).contains(&reads), "40 ids in 4 posts, batches of up to 100: {r}");
    assert_eq!(r["reads_per_event"].as_f64().unwrap(), reads as f64 / 40.0, "{r}");
    let rows: Vec<serde_json::Value> = reqwest::get(&status).await.unwrap().json().await.unwrap();
    let of = |kind: &str| rows.iter().find(|r| r["sync_type"] == kind).unwrap()["realtime"].clone();
    assert!(of("owners").is_null(), "owners have no webhooks");
    assert_eq!(of("deals")["records_stored"], 0);
    assert!(of("deals")["change_to_row_p50_ms"].is_null());
    app.stop().await;
}

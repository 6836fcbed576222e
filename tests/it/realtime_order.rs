//! Issue 15's convergence proofs for the real-time path: a mixed burst (every event type over
//! three kinds) delivered with 20% duplicates and 20% reordered batches converges to zero
//! differences; and events that overtake each other, posted by hand in the wrong order against
//! the simulator's state (a deletion before its record's creation, a restore before its
//! deletion), converge too.

use std::time::Duration;

use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, WebhookConfig};

use crate::harness::compare::{Merges, assert_converged};
use crate::harness::hooks::post_signed;
use crate::harness::{PATIENCE, TestApp, TestDb, eventually};

fn noisy(hooks: &mut WebhookConfig) {
    hooks.duplicate_rate = 0.2;
    hooks.reorder_rate = 0.2;
    hooks.retry_base_ms = 100;
    hooks.retry_max_ms = 1000;
}

/// The shape of issue 15's burst: 23 batches over contacts, deals and calls in turn, each with
/// creations, property changes, a deletion, a merge and (contacts) a privacy deletion, each
/// followed by a restore (in its own call: HubSpot's times have millisecond resolution, and a
/// deletion and a restore of one record within one millisecond cannot be ordered by anyone).
/// Small accounts, so changes hit the same records again.
#[tokio::test]
async fn a_mixed_burst_with_20_percent_duplicates_and_reordering_converges() {
    let opts = SimOptions { contacts: 100, deals: 100, calls: 100, owners: 5, ..SimOptions::default() };
    let mut app = TestApp::builder().sim(opts).sim_webhooks(noisy).seeded().start().await;
    let sim = app.sim.take().unwrap();
    let mut events = 0;
    for batch in 0..23 {
        let object = ["contacts", "deals", "calls"][batch % 3];
        let req = ChurnRequest {
            object: object.into(),
            creates: 3,
            updates: 22,
            deletes: 1,
            merges: 1,
            privacy_deletions: usize::from(object == "contacts"),
            ..ChurnRequest::default()
        };
        events += sim.churn(&req).unwrap().events;
        tokio::time::sleep(Duration::from_millis(3)).await;
        let restore = ChurnRequest { object: object.into(), restores: 1, ..ChurnRequest::default() };
        events += sim.churn(&restore).unwrap().events;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(events > 600, "a burst of about 700 events ({events})");
    assert!(sim.wait_webhooks_idle(PATIENCE).await, "webhooks still pending");
    app.stop().await;
    let stats = sim.stats();
    assert!(stats["webhooks"]["duplicates"].as_u64().unwrap() > 0, "the sim sent duplicates: {stats}");
    assert!(stats["webhooks"]["reordered"].as_u64().unwrap() > 0, "the sim reordered batches: {stats}");
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "{stats}");
    assert_converged(&app.db, &sim, Merges::Pointer, false).await;
}

/// The simulator's export line of a contact.
fn contact(sim: &SimHandle, id: &str) -> serde_json::Value {
    sim.export_json("contacts").into_iter().find(|l| l["id"] == id).expect("the contact is in the export")
}

fn millis(line: &serde_json::Value, field: &str) -> i64 {
    let raw = line[field].as_str().unwrap_or_else(|| panic!("{field} in {line}"));
    chrono::DateTime::parse_from_rfc3339(raw).unwrap().timestamp_millis()
}

/// A signed batch of one contact event as HubSpot sends it (`action`: `creation`, `deletion`,
/// `restore`), posted; its status.
async fn post_event(url: &str, action: &str, id: &str, occurred_at: i64, event_id: u64) -> u16 {
    let mut event = serde_json::json!({"eventId": event_id, "subscriptionId": 1_000_001, "portalId": 62515,
        "appId": 54321, "occurredAt": occurred_at, "subscriptionType": format!("contact.{action}"),
        "attemptNumber": 0, "objectId": id.parse::<u64>().unwrap(), "changeSource": "CRM_UI"});
    match action {
        "creation" => event["changeFlag"] = "NEW".into(),
        "deletion" => event["changeFlag"] = "DELETED".into(),
        _ => {}
    }
    post_signed(url, serde_json::to_vec(&[event]).unwrap()).await
}

/// `(live, updated_at ms)` of a stored contact, `None` when there is no row.
async fn stored(db: &TestDb, id: &str) -> Option<(bool, i64)> {
    db.client()
        .await
        .query_opt(
            "SELECT NOT archived, (extract(epoch FROM updated_at) * 1000)::bigint FROM contacts \
             WHERE hubspot_contact_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// A simulator with no contacts, sending no webhooks (the test posts them).
async fn quiet_sim() -> SimHandle {
    Sim::start(SimOptions { contacts: 0, deals: 3, calls: 3, owners: 2, ..SimOptions::default() }).await.unwrap()
}

/// A contact is created and deleted in HubSpot; the deletion is delivered first, the creation
/// after it (and read after it). The contact ends archived here (or absent), never live.
#[tokio::test]
async fn a_deletion_that_overtakes_its_creation_converges() {
    let sim = quiet_sim().await;
    let mut app = TestApp::builder().started_sim(sim).seeded().arg("--fetch-window", "50ms").start().await;
    let sim = app.sim.take().unwrap();
    let url = app.webhook_url.clone();
    let id =
        sim.churn(&ChurnRequest { object: "contacts".into(), creates: 1, ..ChurnRequest::default() }).unwrap().created
            [0]
        .clone();
    let created_at = millis(&contact(&sim, &id), "createdAt");
    tokio::time::sleep(Duration::from_millis(3)).await;
    let deleted =
        sim.churn(&ChurnRequest { object: "contacts".into(), deletes: 1, ..ChurnRequest::default() }).unwrap();
    assert_eq!(deleted.deleted, vec![id.clone()], "the only contact is the one deleted");
    let deleted_at = millis(&contact(&sim, &id), "archivedAt");

    assert_eq!(post_event(&url, "deletion", &id, deleted_at, 2).await, 204);
    assert_eq!(post_event(&url, "creation", &id, created_at, 1).await, 204);
    // The creation is read: the batch read finds no live contact and the archived re-read
    // finds it deleted.
    let reads = || sim.stats()["operations"]["contacts.batch_read"].as_u64().unwrap_or(0);
    eventually(PATIENCE, "the creation's contact is read", || async { reads() > 0 }).await;
    app.stop().await;
    let row = stored(&app.db, &id).await;
    assert!(!row.is_some_and(|(live, _)| live), "a deleted contact is live here: {row:?}");
    assert_converged(&app.db, &sim, Merges::Pointer, false).await;
}

/// A live contact is deleted, then restored, in HubSpot; the restore is delivered (and read)
/// first, the deletion after it. The late deletion must not archive the restored contact.
#[tokio::test]
async fn a_restore_that_overtakes_its_deletion_converges() {
    let sim = quiet_sim().await;
    let id =
        sim.churn(&ChurnRequest { object: "contacts".into(), creates: 1, ..ChurnRequest::default() }).unwrap().created
            [0]
        .clone();
    // The database starts with the contact live (a copy of the simulator).
    let mut app = TestApp::builder().started_sim(sim).seeded().arg("--fetch-window", "50ms").start().await;
    let sim = app.sim.take().unwrap();
    let url = app.webhook_url.clone();
    tokio::time::sleep(Duration::from_millis(3)).await;
    let deleted =
        sim.churn(&ChurnRequest { object: "contacts".into(), deletes: 1, ..ChurnRequest::default() }).unwrap();
    assert_eq!(deleted.deleted, vec![id.clone()]);
    let deleted_at = millis(&contact(&sim, &id), "archivedAt");
    tokio::time::sleep(Duration::from_millis(3)).await;
    let restored =
        sim.churn(&ChurnRequest { object: "contacts".into(), restores: 1, ..ChurnRequest::default() }).unwrap();
    assert_eq!(restored.restored, vec![id.clone()]);
    let restored_at = millis(&contact(&sim, &id), "updatedAt");
    assert!(restored_at > deleted_at, "the restore is later than the deletion");

    assert_eq!(post_event(&url, "restore", &id, restored_at, 2).await, 204);
    eventually(PATIENCE, "the restore is read and stored", || async {
        stored(&app.db, &id).await == Some((true, restored_at))
    })
    .await;
    assert_eq!(post_event(&url, "deletion", &id, deleted_at, 1).await, 204);
    app.stop().await;
    assert_eq!(stored(&app.db, &id).await, Some((true, restored_at)), "the late deletion archived a restored contact");
    assert_converged(&app.db, &sim, Merges::Pointer, false).await;
}

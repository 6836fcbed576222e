//! Associations (issue 16): after a full sync `associations` equals the simulator's edges
//! (paged per input, v4 and dated paths); association-only churn lands through webhooks and,
//! with webhooks off, through the scheduled sweep; removals, re-additions, duplicates and
//! reordered events converge by `occurredAt`; merges move edges to the survivor; deletions leave
//! no live edge touching an archived record; a new record's edges are read when it is first
//! fetched; the sweep reads records changed since its last good run; sweeps show in the status
//! API and can be forced.

use std::time::Duration;

use chrono::Utc;
use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions};
use hubspot_sync::associations::sweep::Sweeper;
use hubspot_sync::config::ApiVersion;
use hubspot_sync::hubspot::HubSpot;
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::leader::Leadership;
use hubspot_sync::poller::scheduler::Target;
use hubspot_sync::poller::{Mode, Poller, PollerOptions, RunStatus, Schedules, Trigger, run_scheduler};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::harness::compare::{self, Merges, assert_converged, edge_differences};
use crate::harness::control::ADMIN_TOKEN;
use crate::harness::hooks::post_signed;
use crate::harness::hubspot::{client, fast_options, settings};
use crate::harness::{PATIENCE, TestApp, TestDb, eventually};

fn small(page: usize) -> SimOptions {
    SimOptions {
        contacts: 150,
        deals: 60,
        calls: 200,
        owners: 4,
        workers: 2,
        association_page_size: page,
        ..SimOptions::default()
    }
}

fn poller(db: &TestDb, hubspot: HubSpot, sweep_reads_all: bool) -> Poller {
    Poller::new(db.pool(), hubspot, PollerOptions { skew: Duration::ZERO, sweep_reads_all, ..PollerOptions::default() })
}

async fn full_sync(poller: &Poller) {
    for kind in ObjectKind::ALL {
        let summary = poller.run(kind, Mode::Full, Trigger::Manual).await.unwrap();
        assert_eq!(summary.status, RunStatus::Success, "{summary:?}");
    }
}

fn association_churn(object: &str, n: usize) -> ChurnRequest {
    ChurnRequest { object: object.into(), association_changes: n, ..ChurnRequest::default() }
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

/// Live edges with an end archived here: the rule is that there are none.
const LIVE_EDGES_TO_ARCHIVED: &str = "SELECT count(*) FROM associations a WHERE NOT a.removed AND ( \
     EXISTS (SELECT 1 FROM contacts c WHERE c.archived AND ((a.from_type = '0-1' AND c.hubspot_contact_id = a.from_id) \
         OR (a.to_type = '0-1' AND c.hubspot_contact_id = a.to_id))) \
  OR EXISTS (SELECT 1 FROM deals d WHERE d.archived AND ((a.from_type = '0-3' AND d.hubspot_deal_id = a.from_id) \
         OR (a.to_type = '0-3' AND d.hubspot_deal_id = a.to_id))) \
  OR EXISTS (SELECT 1 FROM calls k WHERE k.archived AND ((a.from_type = '0-48' AND k.hubspot_call_id = a.from_id) \
         OR (a.to_type = '0-48' AND k.hubspot_call_id = a.to_id))))";

#[tokio::test]
async fn a_full_sync_stores_every_edge_both_directions_paged_per_input() {
    // One association per page: every record with two or more is read over several pages.
    let (db, sim) = (TestDb::new().await, Sim::start(small(1)).await.unwrap());
    let poller = poller(&db, client(&sim), false);
    full_sync(&poller).await;
    let want = compare::export_edges(&sim);
    assert!(want.len() > 400, "the simulator has associations: {}", want.len());
    assert!(want.iter().any(|e| e.6.as_deref() == Some("Decision maker")), "labelled ones too");
    assert!(want.iter().any(|e| e.2 == "0-2"), "and toward companies");
    assert_eq!(edge_differences(&db, &sim).await, Vec::<String>::new());
    assert_converged(&db, &sim, Merges::Archived, true).await;
    let ops = &sim.stats()["operations"];
    let pages = ops["deals.contacts.associations"].as_u64().unwrap();
    assert!(pages > 1, "several pages of deals' contacts (60 deals fit one input list): {ops}");
    // The views fold a pair's types into one row.
    let pairs = want
        .iter()
        .filter(|e| e.0 == "0-3" && e.2 == "0-1")
        .map(|e| (&e.1, &e.3))
        .collect::<std::collections::BTreeSet<_>>();
    assert_eq!(count(&db, "SELECT count(*) FROM deal_contacts").await, pairs.len() as i64);
    assert!(count(&db, "SELECT count(*) FROM deal_contacts WHERE 'Decision maker' = ANY(labels)").await > 0);
    assert!(count(&db, "SELECT count(*) FROM call_contacts").await > 0);
    assert!(count(&db, "SELECT count(*) FROM call_deals").await > 0);
    assert!(count(&db, "SELECT count(*) FROM associations WHERE is_primary AND to_type = '0-2'").await > 0);
    // Removed in HubSpot without any event: the next full pass marks them removed, kept as rows.
    for object in ["contacts", "deals", "calls"] {
        sim.churn(&association_churn(object, 40)).unwrap();
    }
    assert!(!edge_differences(&db, &sim).await.is_empty(), "the churn changed edges");
    full_sync(&poller).await;
    assert_eq!(edge_differences(&db, &sim).await, Vec::<String>::new());
    assert!(count(&db, "SELECT count(*) FROM associations WHERE removed AND removed_at IS NOT NULL").await > 0);
}

#[tokio::test]
async fn the_dated_api_version_reads_the_same_edges() {
    let (db, sim) = (TestDb::new().await, Sim::start(small(500)).await.unwrap());
    let dated = ApiVersion::Dated("2026-03".into());
    let hubspot =
        HubSpot::with_options(&settings(&sim, 100_000, dated), fast_options(Duration::from_secs(10))).unwrap();
    full_sync(&poller(&db, hubspot, false)).await;
    assert_eq!(edge_differences(&db, &sim).await, Vec::<String>::new());
    let requests = sim.stats()["requests"].to_string();
    assert!(requests.contains("/crm/associations/2026-03/{from}/{to}/batch/read"), "{requests}");
    assert!(!requests.contains("/crm/v4/"), "{requests}");
}

#[tokio::test]
async fn association_only_churn_lands_through_webhooks() {
    let mut app =
        TestApp::builder().sim(small(500)).sim_webhooks(|_| {}).seeded().arg("--fetch-window", "50ms").start().await;
    let before = app.sim().export_json("contacts");
    for object in ["contacts", "deals", "calls"] {
        let report = app.sim().churn(&association_churn(object, 25)).unwrap();
        assert!(report.associations.iter().any(|a| a.removed), "{object}: removals");
        assert!(report.associations.iter().any(|a| !a.removed), "{object}: additions");
        assert!(report.events > 0);
    }
    assert_eq!(app.sim().export_json("contacts"), before, "no record changed");
    let db = app.db.clone();
    eventually(PATIENCE, "the edges converge from the events", || async {
        edge_differences(&db, app.sim()).await.is_empty()
    })
    .await;
    app.stop().await;
    assert_converged(&app.db, app.sim(), Merges::Pointer, false).await;
}

#[tokio::test]
async fn with_webhooks_off_the_scheduled_sweep_catches_association_churn() {
    let (db, sim) = (TestDb::new().await, Sim::start(small(500)).await.unwrap());
    compare::seed(&db, &sim).await;
    for object in ["contacts", "deals", "calls"] {
        sim.churn(&association_churn(object, 20)).unwrap();
    }
    assert!(!edge_differences(&db, &sim).await.is_empty(), "the churn changed edges (and sent no webhook)");
    let poller = poller(&db, client(&sim), true);
    let schedules = Schedules { entries: vec![(Target::Associations, "* * * * *".parse().unwrap())] };
    let stop = CancellationToken::new();
    let scheduler = tokio::spawn(run_scheduler(poller.clone(), schedules, Leadership::always(), stop.clone()));
    // Within one interval (a minute) of the schedule, plus the sweep itself.
    eventually(PATIENCE, "the sweep brings the edges", || async { edge_differences(&db, &sim).await.is_empty() }).await;
    stop.cancel();
    scheduler.await.unwrap();
    poller.shutdown(PATIENCE).await;
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, trigger, mode, records_processed, error_details::text FROM sync_logs \
             WHERE sync_type = 'associations' ORDER BY started_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    let (status, trigger, mode): (String, String, String) = (row.get(0), row.get(1), row.get(2));
    assert_eq!((status.as_str(), trigger.as_str(), mode.as_str()), ("success", "schedule", "full"));
    assert!(row.get::<_, i32>(3) > 300, "every live record was read: {}", row.get::<_, i32>(3));
    assert!(row.get::<_, String>(4).contains("\"written\""), "{}", row.get::<_, String>(4));
}

#[tokio::test]
async fn a_sweep_reads_the_records_changed_since_its_last_good_run() {
    let (db, sim) = (TestDb::new().await, Sim::start(small(500)).await.unwrap());
    compare::seed(&db, &sim).await;
    let sweeper = Sweeper::new(db.pool(), client(&sim), false);
    let first = sweeper.sweep(Trigger::Manual, false).await.unwrap();
    assert_eq!((first.mode, first.status), (Mode::Full, RunStatus::Success), "no good sweep yet: every record");
    // As if every row had been written long before the sweeps (they were written moments ago,
    // within the sweep's overlap): the sweeps seem to start ten minutes later than they did.
    let later = "UPDATE sync_logs SET started_at = started_at + interval '10 minutes' WHERE sync_type = 'associations'";
    db.client().await.execute(later, &[]).await.unwrap();
    let report = sim.churn(&association_churn("deals", 10)).unwrap();
    let changed: Vec<String> = report.associations.iter().map(|a| a.from.clone()).collect();
    let idle = sweeper.sweep(Trigger::Manual, false).await.unwrap();
    assert_eq!((idle.mode, idle.records), (Mode::Incremental, 0), "{idle:?}");
    assert!(!edge_differences(&db, &sim).await.is_empty(), "unchanged records are not read");
    // The deals' rows changed (as a fetch would write them): the sweep reads them, and the other
    // side of their edges (the contacts', before and after).
    db.client().await.execute(later, &[]).await.unwrap();
    db.client()
        .await
        .execute("UPDATE deals SET synced_at = now() + interval '1 hour' WHERE hubspot_deal_id = ANY($1)", &[&changed])
        .await
        .unwrap();
    let swept = sweeper.sweep(Trigger::Manual, false).await.unwrap();
    assert_eq!((swept.mode, swept.status), (Mode::Incremental, RunStatus::Success), "{swept:?}");
    assert_eq!(swept.records, changed.iter().collect::<std::collections::BTreeSet<_>>().len());
    assert_eq!(edge_differences(&db, &sim).await, Vec::<String>::new());
}

/// Signs and posts association change events to the app.
async fn post_events(url: &str, events: &[Value]) {
    assert_eq!(post_signed(url, serde_json::to_vec(events).unwrap()).await, 204);
}

fn legacy(from: &str, to: &str, removed: bool, at: i64) -> Value {
    json!({"eventId": at, "subscriptionId": 7, "portalId": 62515, "appId": 54321, "occurredAt": at,
        "subscriptionType": "contact.associationChange", "attemptNumber": 0, "objectId": from.parse::<u64>().unwrap(),
        "changeSource": "CRM_UI", "associationType": "CONTACT_TO_DEAL", "fromObjectId": from.parse::<u64>().unwrap(),
        "toObjectId": to.parse::<u64>().unwrap(), "associationRemoved": removed, "isPrimaryAssociation": false})
}

fn generic(from: &str, to: &str, type_id: i32, removed: bool, at: i64) -> Value {
    json!({"eventId": at, "subscriptionId": 9, "portalId": 62515, "appId": 54321, "occurredAt": at,
        "subscriptionType": "object.associationChange", "objectTypeId": "0-48", "attemptNumber": 0,
        "objectId": from.parse::<u64>().unwrap(), "changeSource": "CRM_UI", "fromObjectTypeId": "0-48",
        "toObjectTypeId": "0-1", "fromObjectId": from.parse::<u64>().unwrap(), "toObjectId": to.parse::<u64>().unwrap(),
        "associationTypeId": type_id, "associationCategory": "HUBSPOT_DEFINED", "associationRemoved": removed})
}

async fn edge_state(db: &TestDb, from: &str, to: &str) -> Option<(bool, i64)> {
    let row = db
        .client()
        .await
        .query_opt(
            "SELECT removed, (extract(epoch FROM updated_at) * 1000)::bigint FROM associations \
             WHERE from_id = $1 AND to_id = $2",
            &[&from, &to],
        )
        .await
        .unwrap()?;
    Some((row.get(0), row.get(1)))
}

#[tokio::test]
async fn removals_readditions_duplicates_and_reordered_events_converge_by_occurred_at() {
    let app = TestApp::builder().sim(small(500)).seeded().start().await;
    let (url, db) = (app.webhook_url.clone(), app.db.clone());
    let contact = app.sim().export_json("contacts").iter().find(|c| c["archived"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let deal = "5999999999";
    let t = Utc::now().timestamp_millis() - 60_000;
    // Added at t, removed at t+1, added again at t+2: delivered newest first, with duplicates.
    post_events(&url, &[legacy(&contact, deal, false, t + 2000), legacy(&contact, deal, false, t + 2000)]).await;
    post_events(&url, &[legacy(&contact, deal, true, t + 1000), legacy(&contact, deal, false, t)]).await;
    assert_eq!(edge_state(&db, &contact, deal).await, Some((false, t + 2000)), "the re-addition is the newest");
    // Removed at t+3; a stale addition (t+2.5) and a duplicate removal change nothing.
    post_events(&url, &[legacy(&contact, deal, true, t + 3000)]).await;
    post_events(&url, &[legacy(&contact, deal, false, t + 2500), legacy(&contact, deal, true, t + 3000)]).await;
    assert_eq!(edge_state(&db, &contact, deal).await, Some((true, t + 3000)), "the removal is the newest");
    // A removal that arrives before its (older) addition leaves a tombstone the addition cannot lift.
    let call = "40999999999";
    post_events(&url, &[generic(call, &contact, 194, true, t + 5000)]).await;
    post_events(&url, &[generic(call, &contact, 194, false, t + 4000)]).await;
    assert_eq!(edge_state(&db, call, &contact).await, Some((true, t + 5000)));
    post_events(&url, &[generic(call, &contact, 194, false, t + 6000)]).await;
    assert_eq!(edge_state(&db, call, &contact).await, Some((false, t + 6000)), "a newer addition does");
    assert_eq!(count(&db, &format!("SELECT count(*) FROM call_contacts WHERE hubspot_call_id = '{call}'")).await, 1);
}

#[tokio::test]
async fn merges_move_edges_to_the_survivor_and_deletions_leave_no_live_edge_to_archived_records() {
    let mut app =
        TestApp::builder().sim(small(500)).sim_webhooks(|_| {}).seeded().arg("--fetch-window", "50ms").start().await;
    let mut merged = Vec::new();
    for object in ["contacts", "deals"] {
        let report = app
            .sim()
            .churn(&ChurnRequest { object: object.into(), merges: 4, deletes: 5, ..ChurnRequest::default() })
            .unwrap();
        merged.extend(report.merged.into_iter().map(|m| (object, m)));
    }
    app.sim()
        .churn(&ChurnRequest { object: "calls".into(), deletes: 8, restores: 3, ..ChurnRequest::default() })
        .unwrap();
    assert!(app.sim().wait_webhooks_idle(PATIENCE).await);
    let db = app.db.clone();
    eventually(PATIENCE, "edges converge after merges and deletions", || async {
        edge_differences(&db, app.sim()).await.is_empty()
    })
    .await;
    app.stop().await;
    assert_converged(&app.db, app.sim(), Merges::Pointer, false).await;
    assert_eq!(count(&app.db, LIVE_EDGES_TO_ARCHIVED).await, 0, "no live edge touches an archived record");
    let want = compare::export_edges(app.sim());
    let mut moved = 0;
    for (object, m) in &merged {
        let type_id = if *object == "contacts" { "0-1" } else { "0-3" };
        let olds: Vec<&String> = std::iter::once(&m.primary).chain(&m.merged).collect();
        let live_old = count(&app.db, &format!(
            "SELECT count(*) FROM associations WHERE NOT removed AND ((from_type = '{type_id}' AND from_id IN ({0})) \
             OR (to_type = '{type_id}' AND to_id IN ({0})))",
            olds.iter().map(|id| format!("'{id}'")).collect::<Vec<_>>().join(","))).await;
        assert_eq!(live_old, 0, "{object} {m:?}: the merged records keep no live edge");
        moved += want.iter().filter(|e| (e.0 == type_id && e.1 == m.new) || (e.2 == type_id && e.3 == m.new)).count();
    }
    assert!(moved > 0, "the survivors carry the merged records' edges");
}

#[tokio::test]
async fn a_new_records_edges_are_read_when_it_is_first_fetched() {
    let mut app =
        TestApp::builder().sim(small(500)).sim_webhooks(|_| {}).seeded().arg("--fetch-window", "50ms").start().await;
    for object in ["contacts", "deals", "calls"] {
        let create = ChurnRequest {
            object: object.into(),
            creates: 5,
            creates_with_associations: true,
            associations_without_webhook: true,
            ..ChurnRequest::default()
        };
        let report = app.sim().churn(&create).unwrap();
        assert!(report.associations.len() >= 5, "{object}: created with associations");
    }
    let db = app.db.clone();
    eventually(PATIENCE, "the new records' edges (both directions) are read", || async {
        edge_differences(&db, app.sim()).await.is_empty()
    })
    .await;
    app.stop().await;
    assert_converged(&app.db, app.sim(), Merges::Pointer, false).await;
}

#[tokio::test]
async fn sweeps_show_in_the_status_api_and_can_be_forced() {
    let app = TestApp::builder().sim(small(500)).seeded().admin_token(ADMIN_TOKEN).start().await;
    let http = reqwest::Client::new();
    let status: Value = http.get(app.url("/api/sync/status")).send().await.unwrap().json().await.unwrap();
    let row = status.as_array().unwrap().iter().find(|r| r["sync_type"] == "associations").cloned().unwrap();
    assert_eq!(row["status"], "never", "{row}");
    let forced = http.post(app.url("/api/sync/associations?full=true")).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    assert_eq!(forced.status(), 202);
    let db = app.db.clone();
    eventually(PATIENCE, "the forced sweep finishes", || async {
        count(&db, "SELECT count(*) FROM sync_logs WHERE sync_type = 'associations' AND status = 'success'").await == 1
    })
    .await;
    let status: Value = http.get(app.url("/api/sync/status")).send().await.unwrap().json().await.unwrap();
    let row = status.as_array().unwrap().iter().find(|r| r["sync_type"] == "associations").cloned().unwrap();
    assert_eq!(row["status"], "success", "{row}");
    assert!(row["records_processed"].as_i64().unwrap() > 300, "{row}");
    let logs: Value =
        http.get(app.url("/api/sync/logs?object=associations")).send().await.unwrap().json().await.unwrap();
    assert_eq!(logs.as_array().unwrap().len(), 1, "{logs}");
    assert_eq!(logs[0]["mode"], "full");
}

/// The simulator's edge export lists only live ends; a sanity check of the harness itself.
#[tokio::test]
async fn the_simulators_export_has_only_edges_between_live_records() {
    let sim: SimHandle = Sim::start(small(500)).await.unwrap();
    let archived: std::collections::BTreeSet<String> = ["contacts", "deals", "calls"]
        .iter()
        .flat_map(|o| sim.export_json(o))
        .filter(|l| l["archived"] == true)
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect();
    let edges = compare::export_edges(&sim);
    assert!(!edges.is_empty());
    assert!(edges.iter().all(|e| !archived.contains(&e.1) && !archived.contains(&e.3)));
}

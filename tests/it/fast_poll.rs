//! The fast polling lanes end to end, webhooks off (`HUBSPOT_CLIENT_SECRET` unset), schedules
//! quiet: steady churn converges to the simulator; a change the search index shows too late for
//! the fast lane is found by the delayed lane; 12,000 records created with one timestamp pass the
//! search cap; a search page that fails loses nothing. Rows are written straight from the search
//! results (`FAST_POLL_WRITE=auto`, the simulator's properties fit in a search) or read by the
//! batch fetchers (`queue`). The status API shows each object's mode,
//! the lanes' figures and their budget share.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hubspot_sim::{ChurnRequest, FaultConfig, SimHandle, SimOptions, TYPICAL_SEARCH_LAG_MS};
use serde_json::Value;

use crate::harness::app::AppBuilder;
use crate::harness::compare::{Merges, all_differences};
use crate::harness::{PATIENCE, TestApp, eventually, until_some};

/// An app without webhooks whose fast polling lanes run, on a copy of the simulator.
fn polling_app(opts: SimOptions) -> AppBuilder {
    TestApp::builder().sim(opts).webhook_secrets(None).fast_polling().seeded().budget(2000)
}

async fn status(app: &TestApp) -> Value {
    reqwest::get(app.url("/api/sync/status")).await.unwrap().json().await.unwrap()
}

/// The figures of one lane (`fast` or `delayed`) of one object.
async fn lane(app: &TestApp, object: &str, lane: &str) -> Value {
    let all = status(app).await;
    let row = all.as_array().unwrap().iter().find(|r| r["sync_type"] == object).unwrap().clone();
    row["fast_polling"][lane].clone()
}

fn count(lane: &Value, key: &str) -> u64 {
    lane[key].as_u64().unwrap_or_else(|| panic!("{key} in {lane}"))
}

fn covered_to(lane: &Value) -> Option<DateTime<Utc>> {
    lane["covered_to"].as_str().map(|t| t.parse().unwrap())
}

async fn converged(app: &TestApp, sim: &SimHandle) -> bool {
    all_differences(&app.db, sim, Merges::Archived, false).await.is_empty()
}

fn churn(object: &str, creates: usize, updates: usize) -> ChurnRequest {
    ChurnRequest { object: object.into(), creates, updates, ..ChurnRequest::default() }
}

/// Steady churn of every kind with HubSpot's usual index lag, webhooks off, until PostgreSQL
/// equals the simulator; `write` is `FAST_POLL_WRITE`. Returns the deals' fast lane figures.
async fn steady_churn_converges(write: &str) -> Value {
    let opts = SimOptions {
        contacts: 300,
        deals: 100,
        calls: 300,
        owners: 5,
        search_lag_ms: TYPICAL_SEARCH_LAG_MS,
        ..SimOptions::default()
    };
    let mut app = polling_app(opts).arg("--fast-poll-interval", "500ms").arg("--fast-poll-write", write).start().await;
    let sim = app.sim.take().unwrap();
    let runs_before = app.db.count("SELECT count(*) FROM sync_logs").await;
    for _ in 0..8 {
        for object in ["contacts", "deals", "calls"] {
            sim.churn(&churn(object, 2, 8)).unwrap();
        }
        // A steady stream, not one burst.
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eventually(PATIENCE, "PostgreSQL equals the simulator", || converged(&app, &sim)).await;
    // The lanes did it: no reconciliation run took place.
    assert_eq!(app.db.count("SELECT count(*) FROM sync_logs").await, runs_before);
    let rows = status(&app).await;
    let modes: Vec<(&str, &str)> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["sync_type"].as_str().unwrap(), r["mode"].as_str().unwrap()))
        .collect();
    assert_eq!(
        modes,
        [
            ("contacts", "fast_polling"),
            ("deals", "fast_polling"),
            ("calls", "fast_polling"),
            ("owners", "schedules_only"),
            ("associations", "sweep")
        ]
    );
    let fast = lane(&app, "deals", "fast").await;
    assert!(count(&fast, "passes") > 0 && fast["lag_ms"].is_u64(), "{fast}");
    assert!(rows[3]["fast_polling"].is_null(), "owners are not polled");
    let live = &rows[0]["live"];
    assert_eq!(live["fast_polling_budget_share"], 0.2, "{live}");
    let used = live["fast_polling_budget_used"].as_f64().unwrap();
    assert!(used > 0.0 && used <= 0.2, "{live}");
    app.stop().await;
    sim.shutdown().await;
    fast
}

#[tokio::test]
async fn steady_churn_without_webhooks_converges_written_from_the_searches() {
    let fast = steady_churn_converges("auto").await;
    assert!(count(&fast, "stored") > 0, "the searches carried every property: {fast}");
}

#[tokio::test]
async fn steady_churn_without_webhooks_converges_through_the_fetchers() {
    let fast = steady_churn_converges("queue").await;
    assert!(count(&fast, "queued") > 0 && count(&fast, "stored") == 0, "ids only, read by the fetchers: {fast}");
}

/// The index shows a change 4 s after it happens; the fast lane's windows do not overlap, so it
/// has searched past the change before the index shows it; the delayed lane's windows end 10 s
/// ago, when the index does show it. Only a stall of the fast lane of 4 s or more could let it
/// find the change itself; an attempt where that happened is repeated with another change.
#[tokio::test]
async fn a_change_the_index_shows_late_is_found_by_the_delayed_lane() {
    let opts =
        SimOptions { contacts: 50, deals: 0, calls: 0, owners: 2, search_lag_ms: 4_000, ..SimOptions::default() };
    let mut app = polling_app(opts)
        .arg("--fast-poll-objects", "contacts")
        .arg("--fast-poll-interval", "200ms")
        .arg("--fast-poll-overlap", "0s")
        .arg("--fast-poll-delay", "10s")
        .arg("--fast-poll-delayed-interval", "1s")
        .start()
        .await;
    let sim = app.sim.take().unwrap();
    let mut attempts = Vec::new();
    for _ in 0..4 {
        let (fast_before, delayed_before) =
            (lane(&app, "contacts", "fast").await, lane(&app, "contacts", "delayed").await);
        let report = sim.churn(&churn("contacts", 0, 1)).unwrap();
        let id = report.updated[0].clone();
        let line = sim.export_json("contacts").into_iter().find(|l| l["id"] == id.as_str()).unwrap();
        let changed_at: DateTime<Utc> = line["updatedAt"].as_str().unwrap().parse().unwrap();
        eventually(PATIENCE, "the change is stored", || async {
            let sql = format!(
                "SELECT count(*) FROM contacts WHERE hubspot_contact_id = '{id}' AND updated_at = '{}'",
                changed_at.to_rfc3339()
            );
            app.db.count(&sql).await == 1
        })
        .await;
        let delayed_after = until_some(PATIENCE, "the delayed lane searches past the change", || async {
            let delayed = lane(&app, "contacts", "delayed").await;
            covered_to(&delayed).is_some_and(|t| t >= changed_at).then_some(delayed)
        })
        .await;
        let fast_after = lane(&app, "contacts", "fast").await;
        let taken = |lane: &Value| count(lane, "queued") + count(lane, "stored");
        let by_fast = taken(&fast_after) - taken(&fast_before);
        let by_delayed = taken(&delayed_after) - taken(&delayed_before);
        if (by_fast, by_delayed) == (0, 1) {
            assert!(converged(&app, &sim).await);
            app.stop().await;
            sim.shutdown().await;
            return;
        }
        attempts.push((by_fast, by_delayed));
    }
    panic!("the delayed lane never was the one to find the change: (fast, delayed) taken per attempt {attempts:?}");
}

#[tokio::test]
async fn twelve_thousand_records_created_with_one_timestamp_converge() {
    let opts =
        SimOptions { contacts: 100, deals: 0, calls: 0, owners: 2, search_per_second: 25, ..SimOptions::default() };
    let mut app =
        polling_app(opts).arg("--fast-poll-objects", "contacts").arg("--fast-poll-interval", "500ms").start().await;
    let sim = app.sim.take().unwrap();
    let report = sim.churn(&churn("contacts", 12_000, 0)).unwrap();
    assert_eq!(report.created.len(), 12_000);
    // The lanes may spend 20% of 100 requests / 10 s: 120 search pages of 100 take a minute of
    // budget alone, so the bound is a multiple of the usual patience (a loaded 2-core machine).
    eventually(PATIENCE * 4, "PostgreSQL equals the simulator", || converged(&app, &sim)).await;
    let shared = app.db.count("SELECT count(*) FROM contacts GROUP BY updated_at ORDER BY count(*) DESC LIMIT 1").await;
    assert_eq!(shared, 12_000, "one timestamp for the whole import");
    let fast = lane(&app, "contacts", "fast").await;
    assert_eq!(count(&fast, "failed_passes"), 0, "{fast}");
    app.stop().await;
    sim.shutdown().await;
}

/// The second and later pages of every search fail (after the client's retries) until the fault
/// is lifted: the lane's watermark stays, and the pages' records arrive once they load. The
/// delayed lane trails by an hour, so it cannot help.
#[tokio::test]
async fn a_search_page_that_fails_loses_no_change() {
    let opts = SimOptions { contacts: 50, deals: 0, calls: 0, owners: 2, ..SimOptions::default() };
    let mut app = polling_app(opts)
        .arg("--fast-poll-objects", "contacts")
        .arg("--fast-poll-interval", "300ms")
        .arg("--fast-poll-delay", "1h")
        .start()
        .await;
    let sim = app.sim.take().unwrap();
    sim.set_faults(FaultConfig { status: 500, fail_search_after: Some(0), ..FaultConfig::default() }).unwrap();
    let report = sim.churn(&churn("contacts", 450, 0)).unwrap();
    let first = sim.export_json("contacts").into_iter().find(|l| l["id"] == report.created[0].as_str()).unwrap();
    let imported_at: DateTime<Utc> = first["updatedAt"].as_str().unwrap().parse().unwrap();
    let failing = until_some(PATIENCE, "a pass fails on its second page", || async {
        let fast = lane(&app, "contacts", "fast").await;
        (count(&fast, "failed_passes") > 0).then_some(fast)
    })
    .await;
    assert_eq!(failing["failing"], true, "{failing}");
    eventually(PATIENCE, "the first page's records are stored", || async {
        app.db.count("SELECT count(*) FROM contacts").await == 50 + 200
    })
    .await;
    let still = lane(&app, "contacts", "fast").await;
    assert!(
        covered_to(&still).is_none_or(|t| t < imported_at),
        "no window holding the import counts as searched while its second page fails: {still}"
    );
    sim.set_faults(FaultConfig::default()).unwrap();
    eventually(PATIENCE, "PostgreSQL equals the simulator", || converged(&app, &sim)).await;
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 500);
    app.stop().await;
    sim.shutdown().await;
}

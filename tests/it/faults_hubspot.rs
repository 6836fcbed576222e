//! HubSpot trouble: 20% of calls fail with 5xx, latency spikes to 3 s, storms of 429s with and
//! without `Retry-After`. Reconciliation runs end `success` or `partial` (with details), or, when
//! HubSpot refuses everything for longer than the retries last, `failed` with HubSpot's answer in
//! the details; none hangs; the simulator's own rolling-window limiter never refuses a request
//! (the budget is never exceeded); webhook fetches are put back and retried; and once HubSpot
//! recovers, PostgreSQL equals the simulator's export with zero differences.

use std::time::Duration;

use hubspot_sim::{ChurnRequest, FaultConfig, Sim, SimHandle, SimOptions};
use hubspot_sync::config::ApiVersion;
use hubspot_sync::hubspot::record::decode_object;
use hubspot_sync::hubspot::{ClientOptions, HubSpot, RetryOptions};
use hubspot_sync::objects::{self, ObjectKind, WriteContext};
use hubspot_sync::poller::{Mode, Poller, RunStatus, RunSummary, Trigger};
use hubspot_sync::store::records::{self, RecordTable};
use serde_json::Value;

use crate::harness::compare::{Merges, assert_converged};
use crate::harness::hubspot::{poller, settings};
use crate::harness::{PATIENCE, TestApp, TestDb, eventually};

/// The simulator's budget, per `WINDOW_MS` (a short window keeps the test fast; the client uses
/// the same numbers, as production uses HubSpot's 100 per 10 s).
const BUDGET: u32 = 40;
const WINDOW_MS: i64 = 1000;
/// A run that takes longer than this hangs (generous: a busy machine is slow, not hung).
const NEVER_HANGS: Duration = Duration::from_secs(180);

async fn limited_sim(contacts: usize, deals: usize, calls: usize) -> SimHandle {
    Sim::start(SimOptions {
        contacts,
        deals,
        calls,
        owners: 7,
        requests_per_10s: BUDGET,
        window_ms: WINDOW_MS,
        workers: 2,
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

/// A client with the simulator's budget and window, and production's number of retries.
fn limited_client(sim: &SimHandle) -> HubSpot {
    let window = Duration::from_millis(WINDOW_MS as u64);
    let options = ClientOptions {
        window,
        window_margin: window / 20,
        retry: RetryOptions {
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(400),
            max_retries: 6,
        },
        ..ClientOptions::default()
    };
    HubSpot::with_options(&settings(sim, BUDGET, ApiVersion::V3), options).unwrap()
}

fn faults(error_rate: f64, status: u16, latency_ms: Option<u64>, retry_after: Option<u64>) -> FaultConfig {
    FaultConfig {
        error_rate,
        status,
        latency_ms,
        retry_after,
        fail_next: 0,
        fail_list_after: None,
        fail_search_after: None,
        search_lag_ms: None,
    }
}

/// Runs every object once (concurrently, as the scheduler may), each within [`NEVER_HANGS`].
async fn run_all(poller: &Poller, mode: Mode) -> Vec<RunSummary> {
    let runs = ObjectKind::ALL.map(|kind| async move {
        let run = tokio::time::timeout(NEVER_HANGS, poller.run(kind, mode, Trigger::Manual)).await;
        run.unwrap_or_else(|_| panic!("the {kind} run hung")).unwrap()
    });
    futures_util::future::join_all(runs).await
}

/// `sync_logs`'s row of a run: status and details.
async fn logged(db: &TestDb, run: &RunSummary) -> (String, Option<Value>) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, error_details::text FROM sync_logs WHERE id = $1::text::uuid",
            &[&run.run_id.to_string()],
        )
        .await
        .unwrap();
    (row.get(0), row.get::<_, Option<&str>>(1).map(|d| serde_json::from_str(d).unwrap()))
}

/// Every run ended `success`, or `partial` with details naming what failed.
async fn assert_success_or_partial(db: &TestDb, runs: &[RunSummary]) {
    for run in runs {
        let (status, details) = logged(db, run).await;
        match run.status {
            RunStatus::Success => assert_eq!(status, "success"),
            RunStatus::Partial => {
                assert_eq!(status, "partial");
                assert!(details.is_some(), "a partial run says what failed: {run:?}");
            }
            other => panic!("a {other:?} run under recoverable trouble: {run:?} {details:?}"),
        }
    }
}

/// The simulator's rolling-window limiter refused nothing and no window held more than the budget.
fn assert_within_budget(sim: &SimHandle) {
    let stats = sim.stats();
    assert_eq!(stats["responses_429_ten_secondly"], 0, "the real limiter refused requests: {stats}");
    let most = stats["max_requests_in_window"].as_u64().unwrap();
    assert!(most <= u64::from(BUDGET), "{most} requests in one window, budget {BUDGET}: {stats}");
}

fn churn_all(sim: &SimHandle, creates: usize, updates: usize, deletes: usize) {
    for object in ["contacts", "deals", "calls"] {
        let merges = if object == "calls" { 0 } else { 2 };
        let req = ChurnRequest { object: object.into(), creates, updates, deletes, merges, ..ChurnRequest::default() };
        sim.churn(&req).unwrap();
    }
}

#[tokio::test]
async fn flaky_and_slow_hubspot_runs_succeed_within_budget_and_converge() {
    let (db, sim) = (TestDb::new().await, limited_sim(400, 150, 200).await);
    let poller = poller(&db, limited_client(&sim));
    // 20% of calls fail with 5xx: retries absorb them.
    sim.set_faults(faults(0.2, 503, None, None)).unwrap();
    let runs = run_all(&poller, Mode::Full).await;
    assert_success_or_partial(&db, &runs).await;
    assert!(sim.stats()["faults_injected"].as_u64().unwrap() > 0, "faults were injected");
    // Changes land during a latency spike of 3 s per call, still with 20% 5xx.
    churn_all(&sim, 10, 25, 3);
    sim.set_faults(faults(0.2, 500, Some(3000), None)).unwrap();
    let runs = run_all(&poller, Mode::Incremental).await;
    assert_success_or_partial(&db, &runs).await;
    // HubSpot recovers; a full pass (the weekly one) also settles deletions and merges.
    sim.set_faults(FaultConfig::default()).unwrap();
    let runs = run_all(&poller, Mode::Full).await;
    assert_success_or_partial(&db, &runs).await;
    assert_within_budget(&sim);
    assert_converged(&db, &sim, Merges::Archived, true).await;
}

#[tokio::test]
async fn rate_limit_storms_with_and_without_retry_after_pause_then_recover() {
    let (db, sim) = (TestDb::new().await, limited_sim(300, 60, 60).await);
    let poller = poller(&db, limited_client(&sim));
    // Two storms shorter than the retries last: with Retry-After (1 s) and without (the client
    // waits for the rate-limit interval HubSpot announces). Every caller pauses; runs succeed.
    for retry_after in [Some(1), None] {
        sim.set_faults(faults(1.0, 429, None, retry_after)).unwrap();
        let before = sim.stats()["faults_injected"].as_u64().unwrap();
        let running = {
            let poller = poller.clone();
            tokio::spawn(async move { run_all(&poller, Mode::Full).await })
        };
        // The storm lasts 2.5 s from its first 429 (however long the runs take to get there).
        eventually(PATIENCE, "a request met the storm", || async {
            sim.stats()["faults_injected"].as_u64().unwrap() > before
        })
        .await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        sim.set_faults(FaultConfig::default()).unwrap();
        let runs = running.await.unwrap();
        assert_success_or_partial(&db, &runs).await;
        let storm = sim.stats()["faults_injected"].as_u64().unwrap() - before;
        // Four callers, each pausing about a second after a 429, for 2.5 s: a handful of 429s, not
        // a retry loop hammering HubSpot.
        assert!((1..=40).contains(&storm), "{storm} 429s during a 2.5 s storm (retry_after {retry_after:?})");
    }
    // A storm that outlasts every retry: the run ends `failed`, with HubSpot's answer, promptly.
    sim.set_faults(faults(1.0, 429, None, Some(1))).unwrap();
    let run = tokio::time::timeout(NEVER_HANGS, poller.run(ObjectKind::Deals, Mode::Incremental, Trigger::Manual))
        .await
        .expect("a run in an endless 429 storm still ends")
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let (status, details) = logged(&db, &run).await;
    assert_eq!(status, "failed");
    let details = details.expect("a failed run has details").to_string();
    assert!(details.contains("RATE_LIMIT") || details.contains("TEN_SECONDLY"), "{details}");
    // HubSpot recovers: the next runs converge.
    sim.set_faults(FaultConfig::default()).unwrap();
    churn_all(&sim, 5, 10, 2);
    let runs = run_all(&poller, Mode::Full).await;
    assert_success_or_partial(&db, &runs).await;
    assert_within_budget(&sim);
    assert_converged(&db, &sim, Merges::Archived, true).await;
}

#[tokio::test]
async fn a_429_asking_to_wait_an_hour_ends_the_run_promptly_with_details() {
    let (db, sim) = (TestDb::new().await, limited_sim(50, 20, 20).await);
    let poller = poller(&db, limited_client(&sim));
    sim.set_faults(faults(1.0, 429, None, Some(3600))).unwrap();
    let run = tokio::time::timeout(NEVER_HANGS, poller.run(ObjectKind::Deals, Mode::Full, Trigger::Manual))
        .await
        .expect("a Retry-After of an hour does not hold the run for an hour")
        .unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let (_, details) = logged(&db, &run).await;
    assert!(details.expect("details").to_string().contains("RATE_LIMIT"));
    // HubSpot recovers: the pause it asked for did not stop the client for an hour.
    sim.set_faults(FaultConfig::default()).unwrap();
    let runs = run_all(&poller, Mode::Full).await;
    assert_success_or_partial(&db, &runs).await;
    assert_converged(&db, &sim, Merges::Archived, true).await;
}

#[tokio::test]
async fn webhook_fetches_survive_5xx_and_429_storms_and_converge() {
    // HubSpot's real budget: 100 per 10 s, the server's default.
    let opts = SimOptions {
        contacts: 300,
        deals: 100,
        calls: 200,
        owners: 5,
        requests_per_10s: 100,
        workers: 2,
        ..SimOptions::default()
    };
    let mut app = TestApp::builder()
        .sim(opts)
        .sim_webhooks(|hooks| {
            hooks.retry_base_ms = 100;
            hooks.retry_max_ms = 1000;
        })
        .seeded()
        .arg("--fetch-window", "50ms")
        .start()
        .await;
    let (db, sim) = (app.db.clone(), app.sim.take().unwrap());
    // 20% 5xx and 3 s latency spikes while changes arrive.
    sim.set_faults(faults(0.2, 502, Some(300), None)).unwrap();
    churn_all(&sim, 20, 40, 4);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    sim.set_faults(faults(0.2, 500, Some(3000), None)).unwrap();
    churn_all(&sim, 10, 20, 2);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // A 429 storm with Retry-After, then without.
    // Each storm lasts until the server's fetches met it (however slowly they come), and 2 s.
    for retry_after in [Some(1), None] {
        let before = sim.stats()["faults_injected"].as_u64().unwrap();
        sim.set_faults(faults(1.0, 429, None, retry_after)).unwrap();
        churn_all(&sim, 5, 10, 1);
        eventually(PATIENCE, "a fetch met the storm", || async {
            sim.stats()["faults_injected"].as_u64().unwrap() > before
        })
        .await;
        tokio::time::sleep(Duration::from_millis(2000)).await;
    }
    sim.set_faults(FaultConfig::default()).unwrap();
    assert!(sim.wait_webhooks_idle(PATIENCE).await, "webhooks still pending: {}", sim.stats());
    app.stop().await;
    let stats = sim.stats();
    assert!(stats["faults_injected"].as_u64().unwrap() > 0, "{stats}");
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "no webhook was given up on: {stats}");
    assert_eq!(stats["responses_429_ten_secondly"], 0, "the real limiter refused nothing: {stats}");
    assert_converged(&db, &sim, Merges::Pointer, false).await;
}

/// Regression (found by `webhook_fetches_survive_5xx_and_429_storms_and_converge`): a batch read
/// sent before a merge, slowed by HubSpot, landed after the merge webhook archived the row; its
/// newer `updated_at` won and the merged-away record came back to life.
#[tokio::test]
async fn a_fetch_read_before_a_merge_cannot_revive_the_merged_row() {
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 5, deals: 5, calls: 5, owners: 1, ..SimOptions::default() }).await.unwrap();
    let mut line = sim.export_json("deals").into_iter().find(|l| l["archived"] == false).unwrap();
    let id = line["id"].as_str().unwrap().to_owned();
    let mut conn = db.conn().await;
    let write = |line: Value| decode_object(line).unwrap();
    objects::write_records(&mut conn, ObjectKind::Deals, vec![write(line.clone())], &WriteContext::default())
        .await
        .unwrap();
    records::mark_archived(&mut conn, RecordTable::Deals, std::slice::from_ref(&id), Some("999")).await.unwrap();
    // The stale read: an update from just before the merge.
    line["updatedAt"] = Value::from((chrono::Utc::now() + chrono::Duration::seconds(5)).to_rfc3339());
    line["properties"]["dealname"] = Value::from("read before the merge");
    objects::write_records(&mut conn, ObjectKind::Deals, vec![write(line)], &WriteContext::default()).await.unwrap();
    let row = db
        .client()
        .await
        .query_one("SELECT archived, merged_into, deal_name FROM deals WHERE hubspot_deal_id = $1", &[&id])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0), "the merged-away row stays archived");
    assert_eq!(row.get::<_, Option<String>>(1).as_deref(), Some("999"));
    assert_ne!(row.get::<_, Option<String>>(2).as_deref(), Some("read before the merge"));
}

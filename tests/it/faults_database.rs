//! Database outage: `serve` reaches PostgreSQL through a TCP proxy the test cuts during a burst of
//! webhooks from the simulator. While it lasts the process stays up (`/healthz` 200), `/readyz`
//! answers 503, and webhooks are acknowledged (ids queued) or answered 503 (writes that need the
//! database; HubSpot retries them), never lost; fetched rows that cannot be stored are put back
//! and retried. After the database returns everything converges to the simulator's export, and
//! the `LISTEN` connection (a SQL trigger starts a run) and the scheduler's leader lock come back.
//!
//! CI cuts for 8 s (`FAULT_DB_CUT_SECS` changes it); the 30 s outage is
//! `a_30_second_outage_during_a_burst_converges` (`--ignored`).

use std::time::{Duration, Instant};

use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions};

use crate::harness::compare::{Merges, assert_converged};
use crate::harness::hooks::{SECRET, post, post_changes, signed};
use crate::harness::wait::status_of;
use crate::harness::{PATIENCE, Proxy, TestApp, TestDb, eventually, within};

/// Key of the scheduler's leader lock (`poller::lock`: namespace "HS", key 100).
const LEADER_LOCK: (i64, i64) = (0x4853, 100);

fn env_secs(name: &str, default: u64) -> Duration {
    Duration::from_secs(std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.count(sql).await
}

async fn leader_lock_held(db: &TestDb) -> bool {
    let sql = format!(
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database \
         WHERE d.datname = current_database() AND l.locktype = 'advisory' AND l.granted \
         AND l.classid = {} AND l.objid = {} AND l.objsubid = 2",
        LEADER_LOCK.0, LEADER_LOCK.1
    );
    count(db, &sql).await == 1
}

async fn listening(db: &TestDb) -> bool {
    let sql = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
               AND application_name = 'hubspot-sync listen' AND query ILIKE 'LISTEN%'";
    count(db, sql).await > 0
}

fn churn(sim: &SimHandle, round: usize) {
    for object in ["contacts", "deals", "calls"] {
        let req = ChurnRequest {
            object: object.into(),
            creates: 15,
            updates: 40,
            deletes: 3,
            merges: if object == "calls" { 0 } else { 2 },
            privacy_deletions: if object == "contacts" && round % 2 == 1 { 1 } else { 0 },
            ..ChurnRequest::default()
        };
        sim.churn(&req).unwrap();
    }
}

/// The scenario, with the database unreachable for `cut`.
async fn outage_during_a_burst(cut: Duration) {
    let opts = SimOptions { contacts: 400, deals: 150, calls: 300, owners: 5, workers: 2, ..SimOptions::default() };
    // HubSpot retries for a day; the simulator's retries must outlast the cut.
    let retry_max = (cut / 2).max(Duration::from_secs(2));
    let mut app = TestApp::builder()
        .sim(opts)
        .sim_webhooks(move |hooks| {
            hooks.duplicate_rate = 0.05;
            hooks.reorder_rate = 0.05;
            hooks.retry_base_ms = 200;
            hooks.retry_max_ms = retry_max.as_millis() as u64;
        })
        .seeded()
        .through_proxy()
        .arg("--fetch-window", "50ms")
        .arg("--database-pool-timeout", "2s")
        .start()
        .await;
    let (db, sim, url) = (app.db.clone(), app.sim.take().unwrap(), app.webhook_url.clone());
    let proxy = app.proxy.take().unwrap();
    let (ready, health) = (app.url("/readyz"), app.url("/healthz"));
    eventually(PATIENCE, "ready before the cut", || async { status_of(&ready).await == Some(200) }).await;
    eventually(PATIENCE, "listening before the cut", || listening(&db)).await;
    eventually(PATIENCE, "leading before the cut", || leader_lock_held(&db)).await;

    churn(&sim, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.cut();
    let cut_at = Instant::now();
    let mut round = 1;
    let (mut not_ready, mut probes) = (0, 0);
    let met_the_outage = || sim.stats()["webhooks"]["retried"].as_u64().unwrap_or(0) > 0;
    // The cut lasts `cut`, and at least until some webhook of the simulator's met it (however
    // slowly the machine delivers them), within a generous bound.
    while cut_at.elapsed() < cut || !met_the_outage() {
        assert!(cut_at.elapsed() < cut + PATIENCE, "no webhook met the outage: {}", sim.stats());
        churn(&sim, round);
        round += 1;
        assert_eq!(status_of(&health).await, Some(200), "the process stays up during the outage");
        probes += 1;
        // Our own webhooks: a change is acknowledged (queued, no database needed); a deletion
        // must be written before it is acknowledged, so it is refused with 503 and retried.
        let live = sim.export_json("deals").into_iter().find(|l| l["archived"] == false).unwrap();
        let id: u64 = live["id"].as_str().unwrap().parse().unwrap();
        assert_eq!(post_changes(&url, "deal", &[id]).await, 204, "a change is acknowledged during the outage");
        let deletion = serde_json::json!([{"subscriptionType": "deal.deletion", "objectId": 1,
            "occurredAt": chrono::Utc::now().timestamp_millis()}]);
        let body = serde_json::to_vec(&deletion).unwrap();
        let at = chrono::Utc::now().timestamp_millis();
        assert_eq!(
            post(&url, body.clone(), &signed(SECRET, &url, &body, at)).await,
            503,
            "a deletion waits for the database"
        );
        if status_of(&ready).await == Some(503) {
            not_ready += 1;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert_eq!(not_ready, probes, "/readyz answered 503 throughout the outage");
    proxy.restore();
    let restored_at = Instant::now();
    eventually(PATIENCE, "ready again after the outage", || async { status_of(&ready).await == Some(200) }).await;
    churn(&sim, round);
    assert!(sim.wait_webhooks_idle(cut + PATIENCE).await, "webhooks still pending: {}", sim.stats());
    let stats = sim.stats();
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "a webhook was given up on (lost): {stats}");
    assert!(stats["webhooks"]["retried"].as_u64().unwrap() > 0, "some webhooks met the outage: {stats}");

    // The LISTEN connection is back: a SQL trigger starts a run.
    eventually(PATIENCE, "LISTEN re-established", || listening(&db)).await;
    db.client().await.execute("SELECT trigger_hubspot_sync('owners')", &[]).await.unwrap();
    eventually(PATIENCE, "the SQL trigger started a run", || async {
        count(&db, "SELECT count(*) FROM sync_logs WHERE trigger = 'sql' AND status <> 'running'").await > 0
    })
    .await;
    // The scheduler's leader lock is back (its connection is checked every 30 s).
    eventually(PATIENCE, "scheduler lock re-taken", || leader_lock_held(&db)).await;
    println!("outage of {cut:?}: recovered in {:?}, {}", restored_at.elapsed(), sim.stats()["webhooks"]);
    app.stop().await;
    assert_converged(&db, &sim, Merges::Pointer, false).await;
    drop(proxy);
}

#[tokio::test]
async fn a_database_outage_during_a_burst_loses_nothing_and_recovers() {
    outage_during_a_burst(env_secs("FAULT_DB_CUT_SECS", 8)).await;
}

#[tokio::test]
#[ignore = "the issue's 30 s outage; about 2 minutes"]
async fn a_30_second_outage_during_a_burst_converges() {
    outage_during_a_burst(Duration::from_secs(30)).await;
}

/// A reconciliation run that loses its database midway ends (never hangs) and is recorded as
/// `failed` once the database is back, not left `running` forever; the next run converges.
#[tokio::test]
async fn a_run_cut_off_by_an_outage_is_closed_and_the_next_one_converges() {
    use hubspot_sync::objects::ObjectKind;
    use hubspot_sync::poller::{Mode, Poller, PollerOptions, RunStatus, Trigger};
    use hubspot_sync::store::{self, connect::DbTarget, pool::PoolOptions};

    let db = TestDb::new().await;
    let proxy = Proxy::start(db.server_addr()).await;
    // 2,000 contacts at 100 ms a page: a full run takes a few seconds.
    let sim = Sim::start(SimOptions {
        contacts: 2_000,
        deals: 5,
        calls: 5,
        owners: 2,
        latency_ms: 100,
        workers: 2,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let target = DbTarget::parse(&db.url_through(proxy.addr), None).unwrap();
    let options = PoolOptions {
        application_name: "hubspot-sync outage test".into(),
        max_size: 4,
        wait_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(30),
        synchronous_commit: false,
    };
    let pool = store::build_pool(&target, &options).unwrap();
    let poller = Poller::new(pool, crate::harness::hubspot::client(&sim), PollerOptions::default());
    let running = {
        let poller = poller.clone();
        tokio::spawn(async move { poller.run(ObjectKind::Contacts, Mode::Full, Trigger::Manual).await })
    };
    eventually(PATIENCE, "the run started", || async {
        count(&db, "SELECT count(*) FROM sync_logs WHERE status = 'running'").await == 1
    })
    .await;
    // Midway: its first page is stored; 19 more pages of 100 ms each are still to come.
    eventually(PATIENCE, "the run stored its first page", || async {
        count(&db, "SELECT count(*) FROM contacts").await > 0
    })
    .await;
    proxy.cut();
    let outcome = within(PATIENCE, "the cut-off run ends", running).await.unwrap();
    println!("the run cut off by the outage: {outcome:?}");
    assert!(!matches!(&outcome, Ok(s) if s.status == RunStatus::Success), "{outcome:?}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.restore();
    let next = within(PATIENCE, "the next run ends", poller.run(ObjectKind::Contacts, Mode::Full, Trigger::Manual))
        .await
        .unwrap();
    assert_eq!(next.status, RunStatus::Success, "{next:?}");
    let client = db.client().await;
    let rows =
        client.query("SELECT status, error_details::text FROM sync_logs ORDER BY started_at", &[]).await.unwrap();
    let rows: Vec<(String, Option<String>)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].0, "failed", "the cut-off run is not left running: {rows:?}");
    assert!(rows[0].1.is_some(), "{rows:?}");
    let diffs = crate::harness::compare::differences(&db, &sim, ObjectKind::Contacts, Merges::Archived).await;
    assert!(diffs.is_empty(), "{diffs:?}");
}

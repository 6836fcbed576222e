//! Several HubSpot accounts in one `serve` (issue 20): each other account runs with its own
//! parts (pool scoped to its portal, HubSpot client and budget, queue, fetchers, poller and
//! schedules). Two simulators, each an account with its own data, converge each through
//! webhooks, scheduled and forced runs; a 429 storm on one leaves the other's webhooks landing
//! with no 429 and no pause of its own; `accounts add` and `accounts remove` take effect on a
//! running `serve`; `/metrics` carries the `account` label.

use std::time::Duration;

use hubspot_sim::{ChurnRequest, FaultConfig, Sim, SimHandle, SimOptions, WebhookConfig};
use hubspot_sync::store::accounts;

use crate::harness::binary::{ServeBinary, ServeProcess, command};
use crate::harness::compare::{Merges, all_differences};
use crate::harness::hooks::{NEVER, SECRET};
use crate::harness::{PATIENCE, TestDb, eventually, free_port};

pub(crate) const DEFAULT_PORTAL: i64 = 1001;
pub(crate) const EMEA_PORTAL: i64 = 2002;
pub(crate) const EMEA_SECRET: &str = "emea-app-secret";
const ADMIN: &str = "accounts-admin";
/// Long enough for a slow machine; every wait is for a condition.
const LONG: Duration = Duration::from_secs(240);

/// A simulator playing `portal`, its webhooks signed with `secret` and sent to `port`.
pub(crate) async fn account_sim(port: u16, portal: i64, secret: &str, seed: u64, contacts: usize) -> SimHandle {
    let mut hooks = WebhookConfig::new(format!("http://127.0.0.1:{port}/webhooks/hubspot"), secret);
    hooks.portal_id = portal as u64;
    hooks.retry_base_ms = 250;
    hooks.retry_max_ms = 2000;
    let opts = SimOptions {
        contacts,
        deals: contacts / 3,
        calls: contacts / 2,
        owners: 5,
        seed,
        webhook: Some(hooks),
        ..SimOptions::default()
    };
    Sim::start(opts).await.unwrap()
}

/// `hubspot-sync accounts <args>` on `db`; its exit code must be 0.
async fn accounts_cli(db: &TestDb, args: &[&str]) {
    let out = command().env("DATABASE_URL", db.url()).arg("accounts").args(args).output().await.unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "accounts {args:?}: {text}");
}

/// Adds the EMEA account: its token and secret variables, its simulator, `budget` and its own
/// incremental schedule.
pub(crate) async fn add_emea(db: &TestDb, sim: &SimHandle, budget: u32, schedule: &str) {
    let budget = budget.to_string();
    accounts_cli(
        db,
        &[
            "add",
            "--portal-id",
            "2002",
            "--name",
            "emea",
            "--token-env",
            "EMEA_TOKEN",
            "--client-secret-env",
            "EMEA_CLIENT_SECRET",
            "--api-base",
            sim.url(),
            "--requests-per-10s",
            &budget,
            "--schedule-incremental",
            schedule,
        ],
    )
    .await;
}

/// `serve` for the default account (portal 1001, `sim`), with the EMEA account's variables set;
/// the default account's schedules never fire.
async fn serve(db: &TestDb, sim: &SimHandle, port: u16, metrics_port: u16) -> ServeProcess {
    ServeBinary::new(&db.url())
        .hubspot(sim)
        .port(port)
        .quiet_schedules()
        .env("RUST_LOG", "info")
        .env("HUBSPOT_PORTAL_ID", DEFAULT_PORTAL.to_string())
        .env("HUBSPOT_CLIENT_SECRET", SECRET)
        .env("HUBSPOT_REQUESTS_PER_10S", "1000")
        .env("EMEA_TOKEN", "pat-emea-token")
        .env("EMEA_CLIENT_SECRET", EMEA_SECRET)
        .env("ADMIN_TOKEN", ADMIN)
        .env("FETCH_WINDOW", "100ms")
        .env("SHUTDOWN_GRACE", "20s")
        .env("METRICS_PORT", metrics_port.to_string())
        .env("ALERT_CHECK_INTERVAL", "1s")
        .spawn()
        .await
}

/// A database whose default account is portal 1001.
pub(crate) async fn database() -> TestDb {
    let db = TestDb::new().await;
    accounts::adopt_default_portal(&mut db.conn().await, DEFAULT_PORTAL).await.unwrap();
    db
}

/// Waits until the rows of `portal` (`None`: the default account) equal `sim`'s data.
pub(crate) async fn converged(db: &TestDb, sim: &SimHandle, portal: Option<i64>, what: &str) {
    let mut last = Vec::new();
    let deadline = tokio::time::Instant::now() + LONG;
    while tokio::time::Instant::now() < deadline {
        db.read_portal(portal);
        last = all_differences(db, sim, Merges::Archived, true).await;
        db.read_portal(None);
        if last.is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("{what}: {} differences, first ones:\n{}", last.len(), last[..last.len().min(10)].join("\n"));
}

/// Creations, updates, deletions and merges of every kind (each delivered as a webhook).
pub(crate) fn churn(sim: &SimHandle, n: usize) {
    for object in ["contacts", "deals", "calls"] {
        let req = ChurnRequest {
            object: object.into(),
            creates: n,
            updates: 3 * n,
            deletes: 1,
            merges: if object == "calls" { 0 } else { 1 },
            ..ChurnRequest::default()
        };
        sim.churn(&req).unwrap();
    }
}

/// The Prometheus text of `serve`'s metrics listener.
pub(crate) async fn scrape(metrics_port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap()
}

/// The sum of `metric`'s samples whose labels contain every one of `labels`.
fn sum(text: &str, metric: &str, labels: &[&str]) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn stat(sim: &SimHandle, name: &str) -> u64 {
    sim.stats()[name].as_u64().unwrap_or(0)
}

async fn runs(db: &TestDb, portal: i64, trigger: &str) -> i64 {
    db.count(&format!(
        "SELECT count(*) FROM sync_logs WHERE portal_id = {portal} AND trigger = '{trigger}' AND status <> 'running'"
    ))
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn two_accounts_in_one_serve_converge_each_and_a_429_storm_on_one_spares_the_other() {
    let (port, metrics_port) = (free_port(), free_port());
    let home = account_sim(port, DEFAULT_PORTAL, SECRET, 42, 120).await;
    let emea = account_sim(port, EMEA_PORTAL, EMEA_SECRET, 7, 80).await;
    let db = database().await;
    // Its own budget and its own schedule: an incremental run of every object each minute.
    add_emea(&db, &emea, 200, "* * * * *").await;
    let serve = serve(&db, &home, port, metrics_port).await;

    // The startup runs copy both accounts, each from its own simulator into its own portal.
    converged(&db, &home, None, "the default account's first copy").await;
    converged(&db, &emea, Some(EMEA_PORTAL), "the EMEA account's first copy").await;
    let other = db.count("SELECT count(*) FROM contacts WHERE portal_id NOT IN (1001, 2002)").await;
    assert_eq!(other, 0, "every row carries its account's portal id");
    assert!(db.count("SELECT count(*) FROM contacts WHERE portal_id = 2002").await >= 80);

    // Webhooks: each simulator's changes land in its own account.
    churn(&home, 4);
    churn(&emea, 4);
    converged(&db, &home, None, "the default account after its webhooks").await;
    converged(&db, &emea, Some(EMEA_PORTAL), "the EMEA account after its webhooks").await;

    // Its own schedule fires (the default account's never does in this test).
    eventually(LONG, "no scheduled run of the EMEA account", || async { runs(&db, EMEA_PORTAL, "schedule").await > 0 })
        .await;
    assert_eq!(runs(&db, DEFAULT_PORTAL, "schedule").await, 0, "the default account keeps its own schedules");

    // Force sync reaches the account's poller.
    let client = reqwest::Client::new();
    let forced =
        client.post(serve.url("/api/sync/deals?account=2002&full=true")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(forced.status().as_u16(), 202);
    let run_id = forced.json::<serde_json::Value>().await.unwrap()["run_id"].as_str().unwrap().to_owned();
    eventually(LONG, "the forced run of the EMEA account did not finish", || async {
        db.count(&format!(
            "SELECT count(*) FROM sync_logs WHERE id = '{run_id}' AND portal_id = 2002 AND status = 'success' AND mode = 'full'"
        ))
        .await
            == 1
    })
    .await;
    let unknown = client.post(serve.url("/api/sync/deals?account=9009")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(unknown.status().as_u16(), 404, "no account has that portal id");
    // So does the SQL trigger naming its portal.
    db.client().await.execute("SELECT trigger_hubspot_sync('calls', 2002)", &[]).await.unwrap();
    eventually(LONG, "trigger_hubspot_sync('calls', 2002) started no run of the EMEA account", || async {
        db.count("SELECT count(*) FROM sync_logs WHERE portal_id = 2002 AND trigger = 'sql' AND sync_type = 'calls'")
            .await
            > 0
    })
    .await;

    // A 429 storm on the EMEA account's HubSpot.
    // Each 429 pauses the account's client for its Retry-After (capped at 30 s): a budget shared
    // with the default account would hold the default account's reads as long.
    let storm = FaultConfig { error_rate: 1.0, status: 429, retry_after: Some(30), ..FaultConfig::default() };
    emea.set_faults(storm).unwrap();
    let home_429s = stat(&home, "responses_429");
    let home_requests = stat(&home, "requests_total");
    churn(&emea, 3);
    eventually(LONG, "the storm did not reach the EMEA account", || async {
        sum(&scrape(metrics_port).await, "hubspot_sync_hubspot_rate_limited_total", &["account=\"2002\""]) > 0.0
    })
    .await;
    // During the storm the default account's webhook changes land, at its own pace.
    churn(&home, 3);
    converged(&db, &home, None, "the default account during the other's storm").await;
    db.read_portal(Some(EMEA_PORTAL));
    let held = all_differences(&db, &emea, Merges::Archived, true).await;
    db.read_portal(None);
    assert!(!held.is_empty(), "the stormed account's own changes are still held while the other's landed");
    assert_eq!(stat(&home, "responses_429"), home_429s, "the default account's HubSpot saw no 429");
    assert!(stat(&home, "requests_total") > home_requests, "the default account kept reading");
    let text = scrape(metrics_port).await;
    assert_eq!(sum(&text, "hubspot_sync_hubspot_rate_limited_total", &["account=\"default\""]), 0.0);
    assert!(stat(&emea, "responses_429") > 0, "the storm was real");

    // After the storm the EMEA account catches up.
    emea.set_faults(FaultConfig::default()).unwrap();
    converged(&db, &emea, Some(EMEA_PORTAL), "the EMEA account after the storm").await;

    // Every per-account metric says whose it is. Runs are counted from `sync_logs` once
    // finished (every ALERT_CHECK_INTERVAL for the default account): one forced run of each.
    let forced = client.post(serve.url("/api/sync/calls")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(forced.status().as_u16(), 202);
    let forced = client.post(serve.url("/api/sync/calls?account=2002")).bearer_auth(ADMIN).send().await.unwrap();
    assert_eq!(forced.status().as_u16(), 202);
    eventually(LONG, "the forced runs were not counted in the metrics", || async {
        let text = scrape(metrics_port).await;
        ["default", "2002"].iter().all(|account| {
            sum(&text, "hubspot_sync_runs_total", &["object=\"calls\"", &format!("account=\"{account}\"")]) > 0.0
        })
    })
    .await;
    let text = scrape(metrics_port).await;
    for metric in
        ["hubspot_sync_hubspot_requests_total", "hubspot_sync_objects_upserted_total", "hubspot_sync_runs_total"]
    {
        assert!(sum(&text, metric, &["account=\"2002\""]) > 0.0, "{metric} of the EMEA account:\n{text}");
        assert!(sum(&text, metric, &["account=\"default\""]) > 0.0, "{metric} of the default account");
        let unlabelled =
            text.lines().filter(|l| l.starts_with(&format!("{metric}{{")) && !l.contains("account=\"")).count();
        assert_eq!(unlabelled, 0, "{metric}: every sample carries the account label");
    }
    assert!(sum(&text, "hubspot_sync_fetcher_batches_total", &["account=\"2002\""]) > 0.0, "its own fetchers");
    assert!(text.contains("hubspot_sync_queue_depth{account=\"2002\"}"), "its own queue");
    drop(serve);
}

/// `hubspot_sync_accounts_running` as `/metrics` reports it.
async fn accounts_running(metrics_port: u16) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("hubspot_sync_accounts_running ")?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_added_to_a_running_serve_is_synced_and_one_removed_is_stopped() {
    let (port, metrics_port) = (free_port(), free_port());
    let home = account_sim(port, DEFAULT_PORTAL, SECRET, 42, 40).await;
    let emea = account_sim(port, EMEA_PORTAL, EMEA_SECRET, 9, 60).await;
    let db = database().await;
    let serve = serve(&db, &home, port, metrics_port).await;
    converged(&db, &home, None, "the default account's first copy").await;
    assert_eq!(accounts_running(metrics_port).await, Some(0.0));

    // Added while serve runs: synced without a restart (its first runs, then its webhooks).
    add_emea(&db, &emea, 100, NEVER).await;
    eventually(PATIENCE, "the added account did not start", || async {
        accounts_running(metrics_port).await == Some(1.0)
    })
    .await;
    converged(&db, &emea, Some(EMEA_PORTAL), "the added account's first copy").await;
    churn(&emea, 3);
    converged(&db, &emea, Some(EMEA_PORTAL), "the added account's webhooks").await;

    // Removed: its parts stop; its webhooks are then for a portal that is no account (204,
    // nothing written), and force sync no longer finds it.
    accounts_cli(&db, &["remove", "--portal-id", "2002", "--delete-data"]).await;
    eventually(PATIENCE, "the removed account did not stop", || async {
        accounts_running(metrics_port).await == Some(0.0)
    })
    .await;
    let forced = reqwest::Client::new()
        .post(serve.url("/api/sync/contacts?account=2002"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status().as_u16(), 404);
    let requests = stat(&emea, "requests_total");
    churn(&home, 2);
    converged(&db, &home, None, "the default account goes on").await;
    assert_eq!(stat(&emea, "requests_total"), requests, "nothing reads the removed account's HubSpot any more");
    let (code, logs) = {
        serve.signal("-TERM");
        serve.exit(Duration::from_secs(120)).await
    };
    assert_eq!(code, Some(0));
    assert!(logs.contains("account stopped"), "the account's parts were stopped");
}

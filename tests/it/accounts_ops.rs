//! Operations by account (issue 20, item 4): with two accounts holding different runs, the
//! status API (`?account=N` on status, logs, history, failures) shows each account's rows and
//! never the other's, names where the accounts are listed for an unknown one, and lists the
//! accounts publicly with names and portal ids only; the alert monitor judges every account's
//! rows on their own and names the account; the retention job purges every account's old rows
//! and keeps each account's newest runs.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use hubspot_sync::alerts::Condition;
use hubspot_sync::alerts::monitor::Monitor;
use hubspot_sync::alerts::slack::Notifier;
use hubspot_sync::config::{RetentionSettings, ScheduleSettings, parse_retention};
use hubspot_sync::maintenance::Maintenance;
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Leadership, RunStatus};
use hubspot_sync::store::sync_logs::RunTrigger;
use hubspot_sync::webhook::stats::WebhookStats;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::harness::control::{ADMIN_TOKEN, DEFAULT_PORTAL, OTHER_PORTAL, finished_for, two_accounts};
use crate::harness::hooks::NEVER;
use crate::harness::{TestApp, TestDb, get_json};

/// Sums one number of every element of a JSON array.
fn sum(rows: &Value, key: &str) -> i64 {
    rows.as_array().unwrap().iter().map(|r| r[key].as_i64().unwrap_or(0)).sum()
}

/// The element of `/api/sync/status` for `object`.
fn object<'a>(status: &'a Value, object: &str) -> &'a Value {
    status.as_array().unwrap().iter().find(|r| r["sync_type"] == object).unwrap()
}

#[tokio::test]
async fn the_status_reads_show_the_account_asked_for_and_never_anothers_rows() {
    let mut app = TestApp::builder().recording_control().admin_token(ADMIN_TOKEN).start().await;
    let db = &app.db;
    two_accounts(db).await;
    finished_for(db, DEFAULT_PORTAL, "contacts", 250, 0, None).await;
    finished_for(db, DEFAULT_PORTAL, "deals", 40, 0, Some("HubSpot answered 502")).await;
    finished_for(db, OTHER_PORTAL, "contacts", 777, 3, None).await;
    finished_for(db, OTHER_PORTAL, "calls", 5, 0, None).await;
    db.client()
        .await
        .batch_execute(&format!(
            "INSERT INTO sync_failures (portal_id, object, hubspot_id, error) VALUES ({OTHER_PORTAL}, 'deals', '424242', 'refused')"
        ))
        .await
        .unwrap();
    let read = |path: &str, token: Option<&'static str>| {
        let url = app.url(path);
        async move { get_json(&url, token).await }
    };

    // Status: the default account without `account`, the same with its portal id; the other's own.
    let (code, default) = read("/api/sync/status", None).await;
    assert_eq!(code, 200, "{default}");
    assert_eq!(read(&format!("/api/sync/status?account={DEFAULT_PORTAL}"), None).await.1, default);
    let (code, other) = read(&format!("/api/sync/status?account={OTHER_PORTAL}"), None).await;
    assert_eq!(code, 200, "{other}");
    assert_eq!(
        (object(&default, "contacts")["records_processed"].as_i64(), object(&default, "deals")["status"].as_str()),
        (Some(250), Some("failed"))
    );
    assert_eq!(object(&default, "calls")["status"], "never");
    assert_eq!(object(&default, "deals")["parked"], 0);
    assert_eq!(object(&other, "contacts")["records_processed"], 777);
    assert_eq!(object(&other, "contacts")["status"], "partial");
    assert_eq!(object(&other, "deals")["status"], "never", "the default account's deals run is not the other's");
    assert_eq!(object(&other, "calls")["records_processed"], 5);
    assert_eq!(object(&other, "deals")["parked"], 1);
    assert!(object(&default, "contacts")["next_run"].is_string(), "this process schedules the default account");
    assert!(object(&other, "contacts")["next_run"].is_null(), "{other}");

    // Logs and history: each account's runs only.
    let (_, logs) = read(&format!("/api/sync/logs?account={OTHER_PORTAL}"), None).await;
    assert_eq!((logs.as_array().unwrap().len(), sum(&logs, "records_processed")), (2, 782), "{logs}");
    let (_, logs) = read("/api/sync/logs?object=contacts", None).await;
    assert_eq!(sum(&logs, "records_processed"), 250, "{logs}");
    let history_sum = |h: &Value| -> i64 {
        h["objects"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["records_processed"].as_array().unwrap())
            .map(|v| v.as_i64().unwrap())
            .sum()
    };
    let (code, history) = read(&format!("/api/sync/history?account={OTHER_PORTAL}&window=7d"), None).await;
    assert_eq!((code, history_sum(&history)), (200, 782), "{history}");
    assert_eq!(history_sum(&read("/api/sync/history", None).await.1), 290);

    // Failures: still admin only; each account's parked records.
    assert_eq!(read(&format!("/api/sync/failures?account={OTHER_PORTAL}"), None).await.0, 401);
    let (code, parked) = read(&format!("/api/sync/failures?account={OTHER_PORTAL}"), Some(ADMIN_TOKEN)).await;
    assert_eq!(code, 200);
    let ids: Vec<&str> = parked.as_array().unwrap().iter().map(|f| f["hubspot_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["424242"]);
    assert_eq!(read("/api/sync/failures", Some(ADMIN_TOKEN)).await.1, serde_json::json!([]));

    // An unknown account: 404 saying where the accounts are listed; a malformed one: 400.
    for path in ["/api/sync/status", "/api/sync/logs", "/api/sync/history"] {
        let (code, body) = read(&format!("{path}?account=3003"), None).await;
        assert_eq!(code, 404, "{path}: {body}");
        assert!(body["error"].as_str().unwrap().contains("GET /api/sync/accounts"), "{path}: {body}");
        assert_eq!(read(&format!("{path}?account=emea"), None).await.0, 400, "{path}");
    }
    assert_eq!(read("/api/sync/failures?account=3003", Some(ADMIN_TOKEN)).await.0, 404);

    // The public list: names and portal ids, nothing about the secrets.
    let (code, list) = read("/api/sync/accounts", None).await;
    assert_eq!(code, 200);
    assert_eq!(
        list,
        serde_json::json!([
            { "portal_id": DEFAULT_PORTAL, "name": "default", "is_default": true },
            { "portal_id": OTHER_PORTAL, "name": "emea", "is_default": false },
        ])
    );

    // The OpenAPI document names the parameter on each read.
    let (_, doc) = read("/api/openapi.json", None).await;
    for path in ["/api/sync/status", "/api/sync/logs", "/api/sync/history", "/api/sync/failures"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let account = params.iter().find(|p| p["name"] == "account").unwrap_or_else(|| panic!("{path}: {params:?}"));
        assert_eq!(
            (account["in"].as_str(), account["schema"]["type"].as_str()),
            (Some("query"), Some("integer")),
            "{path}"
        );
    }
    app.stop().await;
}

#[derive(Parser)]
struct Schedules {
    #[command(flatten)]
    schedules: ScheduleSettings,
}

/// A run of `object` for `portal` that finished `minutes_ago` minutes ago.
fn run_sql(portal: i64, object: &str, status: &str, minutes_ago: i32) -> String {
    format!(
        "INSERT INTO sync_logs (portal_id, sync_type, status, trigger, mode, started_at, completed_at, duration_ms, \
         records_processed) VALUES ({portal}, '{object}', '{status}', 'schedule', 'incremental', \
         now() - make_interval(mins => {minutes_ago}), now() - make_interval(mins => {minutes_ago}), 10, 1);"
    )
}

#[tokio::test]
async fn every_accounts_rows_are_judged_on_their_own_and_its_alerts_name_it() {
    let db = TestDb::new().await;
    two_accounts(&db).await;
    // Both accounts exist since three hours; the default one is healthy but for a failed deals run;
    // the other one's contacts last succeeded two hours ago (contacts run every 5 minutes) and its
    // calls failed.
    let mut sql = String::from("UPDATE accounts SET created_at = now() - interval '3 hours';");
    for object in ["contacts", "calls", "owners"] {
        sql += &run_sql(DEFAULT_PORTAL, object, "success", 1);
    }
    sql += &run_sql(DEFAULT_PORTAL, "deals", "success", 2);
    sql += &run_sql(DEFAULT_PORTAL, "deals", "failed", 1);
    sql += &run_sql(OTHER_PORTAL, "contacts", "success", 120);
    sql += &run_sql(OTHER_PORTAL, "deals", "success", 1);
    sql += &run_sql(OTHER_PORTAL, "calls", "success", 2);
    sql += &run_sql(OTHER_PORTAL, "calls", "failed", 1);
    sql += &run_sql(OTHER_PORTAL, "owners", "success", 1);
    db.client().await.batch_execute(&sql).await.unwrap();

    let schedules = Schedules::parse_from(["x"]).schedules;
    let started = Utc::now() - chrono::Duration::hours(3);
    let webhooks = Arc::new(WebhookStats::new());
    let mut monitor = Monitor::new(db.pool(), webhooks, schedules, None::<Notifier>, started, Leadership::always());
    let mut fired: Vec<(Option<i64>, Condition, bool, String)> = monitor
        .tick(Utc::now())
        .await
        .unwrap()
        .into_iter()
        .map(|t| (t.account, t.condition, t.firing, t.text))
        .collect();
    fired.sort_by_key(|f| (f.0, f.1));
    let keys: Vec<(Option<i64>, Condition)> = fired.iter().map(|f| (f.0, f.1)).collect();
    assert_eq!(
        keys,
        [
            (Some(DEFAULT_PORTAL), Condition::RunFailed(ObjectKind::Deals)),
            (Some(OTHER_PORTAL), Condition::RunFailed(ObjectKind::Calls)),
            (Some(OTHER_PORTAL), Condition::Overdue(ObjectKind::Contacts)),
        ],
        "{fired:?}"
    );
    assert!(fired.iter().all(|f| f.2));
    assert!(fired[0].3.starts_with("account default (portal 1001): deals sync failed"), "{fired:?}");
    assert!(fired[2].3.starts_with("account emea (portal 2002): contacts sync is overdue"), "{fired:?}");
    assert!(monitor.is_firing_for(Some(OTHER_PORTAL), Condition::Overdue(ObjectKind::Contacts)));
    assert!(!monitor.is_firing_for(Some(DEFAULT_PORTAL), Condition::Overdue(ObjectKind::Contacts)));
    assert!(monitor.tick(Utc::now()).await.unwrap().is_empty(), "once while they hold");

    // The other account's contacts run again: its alert clears, naming it; nothing else moves.
    finished_for(&db, OTHER_PORTAL, "contacts", 3, 0, None).await;
    let cleared = monitor.tick(Utc::now()).await.unwrap();
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert_eq!(
        (cleared[0].account, cleared[0].condition, cleared[0].firing),
        (Some(OTHER_PORTAL), Condition::Overdue(ObjectKind::Contacts), false)
    );
    assert!(
        cleared[0].text.starts_with("account emea (portal 2002): contacts sync is on schedule again"),
        "{cleared:?}"
    );
}

/// Old and recent `sync_logs` rows and owner history of `portal`, tagged `old` (to go) or
/// `keep`, and an owners run of 100 days ago tagged `owners` (kept while it is the account's
/// newest: the newest runs are protected).
fn retention_rows(portal: i64) -> String {
    format!(
        "INSERT INTO sync_logs (portal_id, sync_type, status, trigger, mode, started_at, completed_at, error_details) \
         SELECT {portal}, 'contacts', 'success', 'schedule', 'incremental', now() - make_interval(days => 100 + i), \
                now() - make_interval(days => 100 + i), '{{\"seed\": \"old\"}}' FROM generate_series(1, 30) i; \
         INSERT INTO sync_logs (portal_id, sync_type, status, trigger, mode, started_at, completed_at, error_details) \
         SELECT {portal}, 'contacts', 'success', 'schedule', 'incremental', now() - make_interval(days => i), \
                now() - make_interval(days => i), '{{\"seed\": \"keep\"}}' FROM generate_series(1, 3) i; \
         INSERT INTO sync_logs (portal_id, sync_type, status, trigger, mode, started_at, completed_at, error_details) \
         VALUES ({portal}, 'owners', 'success', 'schedule', 'incremental', now() - interval '100 days', \
                 now() - interval '100 days', '{{\"seed\": \"owners\"}}'); \
         INSERT INTO contact_owner_history (portal_id, hubspot_contact_id, previous_owner_id, new_owner_id, changed_at) \
         SELECT {portal}, 'old' || i, 'o1', 'o2', now() - interval '400 days' FROM generate_series(1, 25) i; \
         INSERT INTO contact_owner_history (portal_id, hubspot_contact_id, previous_owner_id, new_owner_id, changed_at) \
         SELECT {portal}, 'new' || i, 'o1', 'o2', now() - interval '10 days' FROM generate_series(1, 4) i;"
    )
}

#[tokio::test]
async fn retention_purges_every_accounts_old_rows_and_keeps_each_ones_newest_runs() {
    let db = TestDb::new().await;
    two_accounts(&db).await;
    let seeded = format!("{}{}", retention_rows(DEFAULT_PORTAL), retention_rows(OTHER_PORTAL));
    // The default account ran owners recently: the other's last owners run is still its newest.
    let recent_owners = "INSERT INTO sync_logs (sync_type, status, trigger, mode, started_at, completed_at) \
                         VALUES ('owners', 'success', 'schedule', 'incremental', now(), now())";
    db.client().await.batch_execute(&format!("{seeded}{recent_owners}")).await.unwrap();

    let settings = RetentionSettings {
        sync_logs_retention: parse_retention("90d").unwrap(),
        owner_history_retention: parse_retention("365d").unwrap(),
        schedule_maintenance: NEVER.parse().unwrap(),
    };
    let job = Maintenance::new(db.pool(), &settings, Leadership::always()).with_batches(7, Duration::ZERO);
    let report = job.run_once(RunTrigger::Manual, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    for portal in [DEFAULT_PORTAL, OTHER_PORTAL] {
        let count = |sql: String| {
            let db = &db;
            async move { db.count(&sql).await }
        };
        let logs = |seed: &str| {
            format!("SELECT count(*) FROM sync_logs WHERE portal_id = {portal} AND error_details->>'seed' = '{seed}'")
        };
        assert_eq!(count(logs("old")).await, 0, "portal {portal}: old runs purged");
        assert_eq!(count(logs("keep")).await, 3, "portal {portal}: recent runs kept");
        // The default account ran owners since: its old owners run goes; the other's is still its newest.
        let owners_kept = i64::from(portal == OTHER_PORTAL);
        assert_eq!(
            count(logs("owners")).await,
            owners_kept,
            "portal {portal}: each account's newest runs on their own"
        );
        let history = format!("SELECT count(*) FROM contact_owner_history WHERE portal_id = {portal}");
        assert_eq!(count(history).await, 4, "portal {portal}: old owner history purged, recent kept");
        let deleted = |table: &str| {
            report.tables.iter().filter(|t| t.portal_id == portal && t.table == table).map(|t| t.deleted).sum::<u64>()
        };
        let old_logs = 31 - owners_kept as u64;
        assert_eq!(
            (deleted("sync_logs"), deleted("contact_owner_history")),
            (old_logs, 25),
            "portal {portal}: {report:?}"
        );
    }
    assert_eq!(report.deleted(), 31 + 30 + 2 * 25);
}

//! The SQL trigger: `trigger_hubspot_sync()` reaches a running `serve` through `LISTEN`, starts
//! the run with trigger `sql`, and keeps working after the connection is killed and after the
//! database server restarts.

use hubspot_sync::localpg::{LocalPgOptions, LocalPostgres};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::listen::{self, APPLICATION_NAME};
use hubspot_sync::runtime::Background;
use hubspot_sync::store::connect::DbTarget;
use hubspot_sync::store::migrations;
use hubspot_sync::store::sync_logs::{RunMode, RunTrigger};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::harness::control::{RecordingControl, Started};
use crate::harness::{PATIENCE, TestApp, TestDb, eventually, within};

async fn next(started: &mut mpsc::UnboundedReceiver<Started>) -> Started {
    within(PATIENCE, "no run was started", started.recv()).await.expect("control dropped")
}

async fn listening_at_least(listening: &mut watch::Receiver<u64>, n: u64) {
    within(PATIENCE, "LISTEN not (re)established", listening.wait_for(|c| *c >= n)).await.unwrap();
}

async fn trigger(target: &DbTarget, sync_type: &str) {
    let client = target.connect_raw("test trigger").await.unwrap();
    client.execute("SELECT trigger_hubspot_sync($1)", &[&sync_type]).await.unwrap();
}

#[tokio::test]
async fn serve_runs_the_sync_a_sql_trigger_asks_for() {
    let mut app = TestApp::builder()
        .recording_control()
        .background(|db| Background { listen: Some(db.target.clone()), ..Background::default() })
        .start()
        .await;
    // Wait until serve's listener has issued LISTEN (NOTIFY before that would be lost).
    let client = app.db.client().await;
    eventually(PATIENCE, "serve never listened", || async {
        let row = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name = $1 AND query ILIKE 'LISTEN%'",
                &[&APPLICATION_NAME],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) > 0
    })
    .await;
    client.execute("SELECT trigger_hubspot_sync('deals')", &[]).await.unwrap();
    let (kind, mode, how, id) = app.next_started().await;
    assert_eq!((kind, mode, how), (ObjectKind::Deals, RunMode::Incremental, RunTrigger::Sql));
    let row =
        client.query_one("SELECT trigger FROM sync_logs WHERE id = $1::text::uuid", &[&id.to_string()]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "sql");

    client.execute("SELECT trigger_hubspot_sync('all')", &[]).await.unwrap();
    let mut kinds = Vec::new();
    for _ in 0..4 {
        kinds.push(app.next_started().await.0);
    }
    kinds.sort();
    assert_eq!(kinds, ObjectKind::ALL.to_vec());
    app.stop().await;
}

#[tokio::test]
async fn listening_resumes_after_the_connection_is_killed() {
    let db = TestDb::new().await;
    let (control, mut started) = RecordingControl::new(db.target.clone());
    let shutdown = CancellationToken::new();
    let mut handle = listen::spawn(db.target.clone(), control, shutdown.clone());
    listening_at_least(&mut handle.listening, 1).await;
    trigger(&db.target, "contacts").await;
    assert_eq!(next(&mut started).await.0, ObjectKind::Contacts);

    let admin = db.client().await;
    let killed = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1",
            &[&APPLICATION_NAME],
        )
        .await
        .unwrap();
    assert_eq!(killed.get::<_, i64>(0), 1);
    listening_at_least(&mut handle.listening, 2).await;
    trigger(&db.target, "calls").await;
    let (kind, _, how, _) = next(&mut started).await;
    assert_eq!((kind, how), (ObjectKind::Calls, RunTrigger::Sql));
    shutdown.cancel();
    handle.task.await.unwrap();
}

#[tokio::test]
async fn listening_resumes_after_a_database_restart() {
    let dir = tempfile::tempdir().unwrap();
    let options = LocalPgOptions { data_dir: Some(dir.path().join("cluster")), ..LocalPgOptions::default() };
    let first = {
        let options = options.clone();
        tokio::task::spawn_blocking(move || LocalPostgres::start(options)).await.unwrap().expect("start PostgreSQL")
    };
    let port = first.port();
    let target = DbTarget::parse(&format!("{}?sslmode=disable", first.url()), None).unwrap();
    migrations::run_pending(&target).await.unwrap();
    let (control, mut started) = RecordingControl::new(target.clone());
    let shutdown = CancellationToken::new();
    let mut handle = listen::spawn(target.clone(), control, shutdown.clone());
    listening_at_least(&mut handle.listening, 1).await;
    trigger(&target, "owners").await;
    assert_eq!(next(&mut started).await.0, ObjectKind::Owners);

    first.stop().await;
    let again = LocalPgOptions { port: Some(port), ..options };
    let second = tokio::task::spawn_blocking(move || LocalPostgres::start(again)).await.unwrap().expect("restart");
    listening_at_least(&mut handle.listening, 2).await;
    trigger(&target, "deals").await;
    let (kind, _, how, _) = next(&mut started).await;
    assert_eq!((kind, how), (ObjectKind::Deals, RunTrigger::Sql));
    shutdown.cancel();
    handle.task.await.unwrap();
    second.stop().await;
}

#[tokio::test]
async fn a_trigger_for_another_accounts_portal_is_left_to_it() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    hubspot_sync::store::accounts::adopt_default_portal(&mut conn, 1001).await.unwrap();
    let emea = hubspot_sync::store::accounts::NewAccount {
        portal_id: 2002,
        name: "emea".into(),
        token_env: "HUBSPOT_TOKEN_EMEA".into(),
        client_secret_env: None,
        api_base: None,
        requests_per_10s: None,
        schedule_incremental: None,
        schedule_full: None,
    };
    hubspot_sync::store::accounts::add(&mut conn, emea).await.unwrap();
    let (control, mut started) = RecordingControl::new(db.target.clone());
    let shutdown = CancellationToken::new();
    let mut handle = listen::spawn_for(db.target.clone(), control, shutdown.clone(), Some(1001));
    listening_at_least(&mut handle.listening, 1).await;
    let client = db.client().await;
    client.batch_execute("SELECT trigger_hubspot_sync('deals', 2002)").await.unwrap();
    client.batch_execute("SELECT trigger_hubspot_sync('calls', 1001)").await.unwrap();
    client.batch_execute("SELECT trigger_hubspot_sync('owners')").await.unwrap();
    // Notifications arrive in order: the first started run is this account's, then every account's.
    assert_eq!(next(&mut started).await.0, ObjectKind::Calls);
    assert_eq!(next(&mut started).await.0, ObjectKind::Owners);
    assert!(started.try_recv().is_err(), "portal 2002's deals were left to the process that runs it");
    shutdown.cancel();
    handle.task.await.unwrap();
}

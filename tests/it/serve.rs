//! `serve`: health and readiness probes, and graceful shutdown on SIGTERM.

use crate::harness::binary::ServeBinary;
use crate::harness::{PATIENCE, TestApp, TestDb, within};

async fn get(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn ready_when_the_database_answers() {
    let mut app = TestApp::builder().with_schedules().start().await;
    assert_eq!(get(&app.url("/healthz")).await.0, 200);
    let (status, body) = get(&app.url("/readyz")).await;
    assert_eq!((status, body["database"].as_str()), (200, Some("ok")));
    app.stop().await;
}

#[tokio::test]
async fn not_ready_but_alive_when_the_database_is_down() {
    let mut app = TestApp::builder()
        .with_schedules()
        .database_url("postgres://postgres@127.0.0.1:1/postgres?sslmode=disable")
        .start()
        .await;
    // Readiness answers (it does not wait for a database that is not there); a hang fails.
    let (status, body) = within(PATIENCE, "readiness answers", get(&app.url("/readyz"))).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not ready");
    assert_eq!(get(&app.url("/healthz")).await.0, 200, "the process itself is fine");
    app.stop().await;
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly_with_exit_0() {
    let db = TestDb::new().await;
    let serve = ServeBinary::new(&db.url()).spawn().await;
    serve.signal("-TERM");
    let (code, logs) = serve.exit(PATIENCE).await;
    assert_eq!(code, Some(0), "logs: {logs}");
    assert!(logs.contains("SIGTERM received") && logs.contains("stopped cleanly"), "{logs}");
}

//! Paths and methods outside the contract get a clear answer: a JSON 404 that says where the API
//! is, and 405 (with `Allow`) for a method a path does not take, such as a browser's GET on the
//! webhook URL.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::Command;

use crate::harness::{TestDb, bin, free_port};

#[tokio::test]
async fn unknown_paths_and_methods_get_clear_answers() {
    let db = TestDb::new().await;
    let port = free_port();
    let mut child = Command::new(bin())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("BIND", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("METRICS_PORT", "0")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while reqwest::get(format!("{base}/healthz")).await.map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(Instant::now() < deadline, "serve did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let get_webhook = reqwest::get(format!("{base}/webhooks/hubspot")).await.unwrap();
    assert_eq!(get_webhook.status().as_u16(), 405, "GET on the webhook path");
    let allow = get_webhook.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(allow.contains("POST"), "Allow names POST: {allow:?}");

    let missing = reqwest::get(format!("{base}/no/such/page")).await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("/api/openapi.json"), "the 404 says where the API is: {body}");

    let _ = child.kill().await;
}

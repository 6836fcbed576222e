//! `serve`: health and readiness probes, and graceful shutdown on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use hubspot_sync::cli::{Cli, Command as Sub};
use hubspot_sync::runtime;

use crate::harness::{TestDb, bin};

fn serve_args(database_url: &str) -> hubspot_sync::cli::ServeArgs {
    let cli = Cli::try_parse_from([
        "hubspot-sync",
        "serve",
        "--database-url",
        database_url,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
    ])
    .unwrap();
    match cli.command {
        Sub::Serve(args) => args,
        other => panic!("parsed {other:?}"),
    }
}

async fn get(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn ready_when_the_database_answers() {
    let db = TestDb::new().await;
    let server = runtime::start(serve_args(&db.url()).options().unwrap()).unwrap();
    let base = format!("http://{}", server.addr);
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!((status, body["database"].as_str()), (200, Some("ok")));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn not_ready_but_alive_when_the_database_is_down() {
    let server =
        runtime::start(serve_args("postgres://postgres@127.0.0.1:1/postgres?sslmode=disable").options().unwrap())
            .unwrap();
    let base = format!("http://{}", server.addr);
    let started = Instant::now();
    let (status, body) = get(&format!("{base}/readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "not ready");
    assert!(started.elapsed() < Duration::from_secs(4), "readiness must answer promptly");
    assert_eq!(get(&format!("{base}/healthz")).await.0, 200, "the process itself is fine");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn sigterm_stops_the_binary_cleanly_with_exit_0() {
    let db = TestDb::new().await;
    let port = crate::harness::free_port();
    let mut child = Command::new(bin())
        .args(["serve"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DATABASE_URL", db.url())
        .env("BIND", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("LOG_FORMAT", "json")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = reqwest::get(&url).await {
            assert_eq!(r.status().as_u16(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "serve did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let stopped_by = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < stopped_by, "serve did not stop within 10 s of SIGTERM");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let output = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&output.stderr);
    assert_eq!(status.code(), Some(0), "logs: {logs}");
    assert!(logs.contains("SIGTERM received") && logs.contains("stopped cleanly"), "{logs}");
}

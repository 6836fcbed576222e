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

/// With keep-alive and grace set to an hour, SIGTERM ends the process long before either:
/// kept-alive connections that sit idle are closed at once, and one that keeps sending requests
/// (as HubSpot does while it retries refused deliveries) is closed after its next answer or
/// between two (`keep_alive::shutdown_...` checks the `Connection: close`). Before: the graceful stop waited for every kept-alive connection to go idle for the
/// keep-alive time (a client sending all along held it until the grace ran out).
#[tokio::test]
async fn sigterm_with_kept_alive_connections_exits_before_their_idle_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let db = TestDb::new().await;
    let serve = ServeBinary::new(&db.url()).env("HTTP_KEEP_ALIVE", "1h").env("SHUTDOWN_GRACE", "1h").spawn().await;
    let addr = format!("127.0.0.1:{}", serve.port);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    let mut idle = Vec::new();
    for _ in 0..4 {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 1024];
        assert!(conn.read(&mut buf).await.unwrap() > 0, "answered");
        idle.push(conn);
    }
    // A client that sends one request after another until its connection is closed.
    let busy = {
        let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let mut buf = [0u8; 4096];
        let n = conn.read(&mut buf).await.unwrap();
        let (mut answers, mut seen) = (1u64, buf[..n].to_vec());
        let request = request.clone();
        tokio::spawn(async move {
            while conn.write_all(request.as_bytes()).await.is_ok() {
                match conn.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
                answers += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            (answers, String::from_utf8_lossy(&seen).into_owned())
        })
    };
    serve.signal("-TERM");
    let (code, logs) = serve.exit(PATIENCE).await;
    assert_eq!(code, Some(0), "logs: {logs}");
    for (n, conn) in idle.iter_mut().enumerate() {
        let mut buf = [0u8; 64];
        assert!(matches!(conn.read(&mut buf).await, Ok(0) | Err(_)), "idle connection {n} was closed");
    }
    let (answers, seen) = within(PATIENCE, "the busy client sees its connection end", busy).await.unwrap();
    assert!(answers > 0 && seen.starts_with("HTTP/1.1 200"), "the busy client was served before the close: {seen}");
}

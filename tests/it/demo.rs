//! `hubspot-sync demo`: one command starts a private PostgreSQL, the simulator and `serve`;
//! simulated changes arrive as signed webhooks and land in PostgreSQL; Ctrl-C stops everything.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{bin, free_port};

fn start_demo(data_dir: &std::path::Path, port: u16, metrics_port: u16) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(bin())
        .args(["demo", "--bind", "127.0.0.1", "--churn-per-s", "20", "--contacts", "300"])
        .args(["--port", &port.to_string(), "--metrics-port", &metrics_port.to_string()])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env("LOG_FORMAT", "json")
        .env("SCHEDULE_CONTACTS", "0 0 1 1 *")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (child, rx)
}

/// The banner line that starts with `label:`, e.g. `database:`.
fn banner_value(lines: &mpsc::Receiver<String>, label: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            if let Some(rest) = line.trim().strip_prefix(label) {
                return rest.split_whitespace().next().unwrap_or_default().to_owned();
            }
        }
    }
    panic!("demo printed no '{label}' line");
}

async fn contacts_written_after(database_url: &str, since: chrono::DateTime<chrono::Utc>) -> i64 {
    let target = hubspot_sync::store::connect::DbTarget::parse(database_url, None).unwrap();
    let Ok(client) = target.connect_raw("demo test").await else { return 0 };
    client
        .query_one("SELECT count(*) FROM contacts WHERE synced_at > $1::text::timestamptz", &[&since.to_rfc3339()])
        .await
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or(0)
}

fn interrupt(child: &Child) {
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo did not stop within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_everything_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let (mut child, lines) = start_demo(&dir.path().join("postgres"), port, metrics_port);
    let page = banner_value(&lines, "status page:");
    let database_url = banner_value(&lines, "database:");
    assert_eq!(page, format!("http://127.0.0.1:{port}/"));

    let started = chrono::Utc::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = false;
    while Instant::now() < deadline {
        let status = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.map(|r| r.status().as_u16());
        ready |= matches!(status, Ok(200));
        // Contacts are scheduled once a year here, so rows written now came through webhooks
        // (or the start-up run), either way through the simulator, serve and PostgreSQL.
        if ready && contacts_written_after(&database_url, started).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "serve never became ready");
    assert!(contacts_written_after(&database_url, started).await > 0, "no simulated change reached PostgreSQL");
    let page_html = reqwest::get(&page).await.unwrap().text().await.unwrap();
    assert!(page_html.contains("<html"), "the status page is served");

    interrupt(&child);
    let status = wait_exit(&mut child, Duration::from_secs(40));
    assert!(status.success(), "demo exited with {status}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "serve stopped");
    let pg_port = url::Url::parse(&database_url).unwrap().port().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err(), "the private PostgreSQL stopped");
    assert!(dir.path().join("postgres/PG_VERSION").exists(), "its data is kept for the next run");
}

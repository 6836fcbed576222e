//! Poller runs have one owner: a run in flight when `serve` gets SIGTERM either finishes within
//! `SHUTDOWN_GRACE` or is closed as `failed` ("interrupted by shutdown") before the process
//! exits; no `sync_logs` row is left `running`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use hubspot_sim::{Sim, SimOptions};
use tokio::io::AsyncReadExt as _;
use tokio::process::Command;

use crate::harness::{TestDb, bin, free_port};

/// A cron expression that does not fire during a test (1 January, midnight).
const NEVER: &str = "0 0 1 1 *";

async fn rows_with_status(db: &TestDb, status: &str) -> Vec<(String, Option<String>)> {
    let client = db.client().await;
    client
        .query(
            "SELECT sync_type, error_details->>'error' FROM sync_logs WHERE status = $1 ORDER BY started_at",
            &[&status],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

#[tokio::test]
async fn sigterm_during_a_run_leaves_no_running_row() {
    let db = TestDb::new().await;
    // Slow answers: the startup full pass over 3,000 contacts needs many pages, so it is still
    // running when the signal comes, and outlasts a one-second grace.
    let sim = Sim::start(SimOptions {
        contacts: 3_000,
        deals: 50,
        calls: 50,
        owners: 3,
        latency_ms: 1_500,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let port = free_port();
    let mut cmd = Command::new(bin());
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LOG_FORMAT", "json")
        .env("DATABASE_URL", db.url())
        .env("HUBSPOT_ACCESS_TOKEN", "pat-test")
        .env("HUBSPOT_API_BASE", sim.url())
        .env("BIND", "127.0.0.1")
        .env("PORT", port.to_string())
        .env("METRICS_PORT", "0")
        .env("SHUTDOWN_GRACE", "1s")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for schedule in ["SCHEDULE_CONTACTS", "SCHEDULE_DEALS", "SCHEDULE_CALLS", "SCHEDULE_OWNERS", "SCHEDULE_FULL"] {
        cmd.env(schedule, NEVER);
    }
    let mut child = cmd.spawn().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text).await;
        text
    });

    // The leader starts a run for every object that never synced: wait for the contacts run.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !rows_with_status(&db, "running").await.iter().any(|(kind, _)| kind == "contacts") {
        assert!(Instant::now() < deadline, "no contacts run started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::time::timeout(Duration::from_secs(120), child.wait()).await.expect("serve exits").unwrap();
    let logs = logs.await.unwrap();
    assert_eq!(status.code(), Some(0), "clean exit after SIGTERM; logs:\n{logs}");

    assert_eq!(rows_with_status(&db, "running").await, vec![], "no run is left running; logs:\n{logs}");
    let failed = rows_with_status(&db, "failed").await;
    let contacts = failed.iter().find(|(kind, _)| kind == "contacts").expect("the cut-off contacts run is failed");
    assert!(
        contacts.1.as_deref().is_some_and(|e| e.contains("interrupted by shutdown")),
        "the failed run says why: {contacts:?}"
    );
}

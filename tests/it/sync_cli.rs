//! `hubspot-sync sync` as a user runs it, against `hubspot-sim`: `sync all --full` copies the
//! account and exits 0, `status` then shows the new rows, an incremental run follows, and a run
//! that fails exits 1.

use std::process::Output;

use hubspot_sim::{FaultConfig, Sim, SimHandle, SimOptions};
use serde_json::Value;

use crate::harness::TestDb;
use crate::harness::binary::{ACCESS_TOKEN, command_for};

async fn run(args: &[&str], db: &TestDb, sim: &SimHandle) -> Output {
    command_for(db, sim).args(args).output().await.unwrap()
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[tokio::test]
async fn sync_all_full_then_incremental_then_status() {
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 150, deals: 40, calls: 60, owners: 4, workers: 2, ..SimOptions::default() })
            .await
            .unwrap();
    let full = run(&["sync", "all", "--full"], &db, &sim).await;
    assert_eq!(full.status.code(), Some(0), "{}", out(&full));
    let stdout = String::from_utf8_lossy(&full.stdout);
    for kind in ["contacts", "deals", "calls", "owners"] {
        assert!(stdout.lines().any(|l| l.starts_with(kind) && l.contains("success") && l.contains("full")), "{stdout}");
    }
    assert!(!out(&full).contains(ACCESS_TOKEN), "the token is never printed");
    let contacts: i64 = db.client().await.query_one("SELECT count(*) FROM contacts", &[]).await.unwrap().get(0);
    let expected = sim.export_json("contacts").iter().filter(|l| !l["mergedInto"].is_string()).count();
    assert_eq!(contacts as usize, expected, "every live and archived contact");
    let incremental = run(&["sync", "contacts", "deals"], &db, &sim).await;
    assert_eq!(incremental.status.code(), Some(0), "{}", out(&incremental));
    assert!(String::from_utf8_lossy(&incremental.stdout).contains("incremental"));
    let status = run(&["status", "--json"], &db, &sim).await;
    let rows: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows.len(), 4, "{rows:?}");
    assert!(rows.iter().all(|r| r["status"] == "success"), "{rows:?}");
    let triggers: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM sync_logs WHERE trigger = 'manual'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(triggers, 6);
}

#[tokio::test]
async fn a_failed_run_exits_1() {
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 20, deals: 5, calls: 5, owners: 2, workers: 1, ..SimOptions::default() })
            .await
            .unwrap();
    // A 400 is not retried, so the run fails at once.
    sim.set_faults(FaultConfig { status: 400, error_rate: 1.0, ..FaultConfig::default() }).unwrap();
    let failed = run(&["sync", "deals"], &db, &sim).await;
    assert_eq!(failed.status.code(), Some(1), "{}", out(&failed));
    assert!(String::from_utf8_lossy(&failed.stdout).contains("failed"));
    let status: String = db.client().await.query_one("SELECT status FROM sync_logs", &[]).await.unwrap().get(0);
    assert_eq!(status, "failed");
}

/// HubSpot unreachable: the run fails (exit 1) and both the output and `sync_logs` say why, down
/// to the operating system's "connection refused", not only reqwest's "error sending request".
#[tokio::test]
async fn an_unreachable_hubspot_is_reported_with_its_cause() {
    let db = TestDb::new().await;
    let port = crate::harness::free_port();
    let output = crate::harness::binary::command()
        .env("DATABASE_URL", db.url())
        .env("HUBSPOT_ACCESS_TOKEN", ACCESS_TOKEN)
        .env("HUBSPOT_API_BASE", format!("http://127.0.0.1:{port}"))
        .args(["sync", "owners"])
        .output()
        .await
        .unwrap();
    let text = out(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.to_lowercase().contains("refused"), "the cause is shown: {text}");
    assert!(!text.contains(ACCESS_TOKEN), "the token is never printed");
    let error: Option<String> = db
        .client()
        .await
        .query_one("SELECT error_details->>'error' FROM sync_logs WHERE sync_type = 'owners'", &[])
        .await
        .unwrap()
        .get(0);
    assert!(error.unwrap_or_default().to_lowercase().contains("refused"), "sync_logs keeps the cause");
}

//! Poller runs have one owner: a run in flight when `serve` gets SIGTERM either finishes within
//! `SHUTDOWN_GRACE` or is closed as `failed` ("interrupted by shutdown") before the process
//! exits; no `sync_logs` row is left `running`.

use hubspot_sim::{Sim, SimOptions};

use crate::harness::TestDb;
use crate::harness::binary::ServeBinary;
use crate::harness::wait::{PATIENCE, eventually};

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
    let serve = ServeBinary::new(&db.url()).hubspot(&sim).quiet_schedules().env("SHUTDOWN_GRACE", "1s").spawn().await;

    // The leader starts a run for every object that never synced: wait for the contacts run.
    eventually(PATIENCE, "a contacts run is running", || async {
        rows_with_status(&db, "running").await.iter().any(|(kind, _)| kind == "contacts")
    })
    .await;

    serve.signal("-TERM");
    let (code, logs) = serve.exit(PATIENCE).await;
    assert_eq!(code, Some(0), "clean exit after SIGTERM; logs:\n{logs}");

    assert_eq!(rows_with_status(&db, "running").await, vec![], "no run is left running; logs:\n{logs}");
    let failed = rows_with_status(&db, "failed").await;
    let contacts = failed.iter().find(|(kind, _)| kind == "contacts").expect("the cut-off contacts run is failed");
    assert!(
        contacts.1.as_deref().is_some_and(|e| e.contains("interrupted by shutdown")),
        "the failed run says why: {contacts:?}"
    );
}

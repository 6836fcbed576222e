//! `hubspot-sync audit` as a user runs it, against `hubspot-sim`: zero drift after a full sync;
//! rows deleted, regressed or archived behind its back in PostgreSQL (and records created,
//! changed and deleted in HubSpot without a webhook) reported as `missing`, `extra` and `stale`
//! with the right counts and exit 1; `--repair` brings the copy back to zero differences; bad
//! usage exits 2; the scheduled audit (`SCHEDULE_AUDIT`) runs in `serve` and records its rows.

use std::collections::BTreeMap;
use std::process::Output;

use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions};
use serde_json::Value;

use crate::harness::binary::{ServeBinary, command, command_for};
use crate::harness::compare::{self, Merges};
use crate::harness::{PATIENCE, TestDb, until_some};

async fn run(args: &[&str], db: &TestDb, sim: &SimHandle) -> Output {
    command_for(db, sim).args(args).output().await.unwrap()
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// `audit ... --json`: its exit code and its elements by object.
async fn audit(args: &[&str], db: &TestDb, sim: &SimHandle) -> (Option<i32>, BTreeMap<String, Value>) {
    let mut all = vec!["audit"];
    all.extend_from_slice(args);
    all.push("--json");
    let o = run(&all, db, sim).await;
    let rows: Vec<Value> =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("not a JSON array ({e}): {}", out(&o)));
    for row in &rows {
        for key in ["object", "missing", "extra", "stale", "parked", "repaired"] {
            assert!(row.get(key).is_some(), "{key} missing from {row}");
        }
    }
    (o.status.code(), rows.into_iter().map(|r| (r["object"].as_str().unwrap().to_owned(), r)).collect())
}

/// `(missing, extra, stale, parked, repaired, drift_left)` of one object.
fn counts(rows: &BTreeMap<String, Value>, object: &str) -> (u64, u64, u64, u64, u64, u64) {
    let r = &rows[object];
    let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} of {r}"));
    (n("missing"), n("extra"), n("stale"), n("parked"), n("repaired"), n("drift_left"))
}

fn ids(db_rows: Vec<tokio_postgres::Row>) -> Vec<String> {
    db_rows.iter().map(|r| r.get::<_, String>(0)).collect()
}

#[tokio::test]
async fn audit_reports_each_kind_of_drift_and_repair_clears_it() {
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 150, deals: 40, calls: 60, owners: 4, workers: 1, ..SimOptions::default() })
            .await
            .unwrap();
    let full = run(&["sync", "all", "--full"], &db, &sim).await;
    assert_eq!(full.status.code(), Some(0), "{}", out(&full));

    // Converged: zero drift everywhere, exit 0.
    let (code, rows) = audit(&["all"], &db, &sim).await;
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(rows.len(), 4, "{rows:?}");
    for object in ["contacts", "deals", "calls", "owners"] {
        assert_eq!(counts(&rows, object), (0, 0, 0, 0, 0, 0), "{object}: {rows:?}");
    }

    // Behind its back in PostgreSQL: 3 contacts deleted, 4 archived, 2 regressed; one deal that
    // HubSpot never had.
    let client = db.client().await;
    let live = ids(client
        .query("SELECT hubspot_contact_id FROM contacts WHERE NOT archived ORDER BY hubspot_contact_id LIMIT 9", &[])
        .await
        .unwrap());
    assert_eq!(live.len(), 9);
    client.execute("DELETE FROM contacts WHERE hubspot_contact_id = ANY($1)", &[&&live[0..3]]).await.unwrap();
    client
        .execute("UPDATE contacts SET archived = true WHERE hubspot_contact_id = ANY($1)", &[&&live[3..7]])
        .await
        .unwrap();
    client
        .execute(
            "UPDATE contacts SET updated_at = updated_at - interval '1 day' WHERE hubspot_contact_id = ANY($1)",
            &[&&live[7..9]],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO deals (hubspot_deal_id, deal_name, created_at, updated_at, archived, synced_at) \
             VALUES ('987654321987', 'never in HubSpot', now() - interval '3 days', now() - interval '2 days', \
             false, now() - interval '1 day')",
            &[],
        )
        .await
        .unwrap();
    // And in HubSpot without a webhook: 2 contacts created, 2 deals deleted, 3 calls changed.
    let churn = |object: &str, creates, deletes, updates| ChurnRequest {
        object: object.into(),
        creates,
        deletes,
        updates,
        ..ChurnRequest::default()
    };
    sim.churn(&churn("contacts", 2, 0, 0)).unwrap();
    sim.churn(&churn("deals", 0, 2, 0)).unwrap();
    let updated = sim.churn(&churn("calls", 0, 0, 3)).unwrap();
    assert_eq!(updated.updated.len(), 3);

    let (code, rows) = audit(&["contacts", "deals", "calls", "owners"], &db, &sim).await;
    assert_eq!(code, Some(1), "drift left: {rows:?}");
    assert_eq!(counts(&rows, "contacts"), (9, 0, 2, 0, 0, 11), "{rows:?}");
    assert_eq!(counts(&rows, "deals"), (0, 3, 0, 0, 0, 3), "{rows:?}");
    assert_eq!(counts(&rows, "calls"), (0, 0, 3, 0, 0, 3), "{rows:?}");
    assert_eq!(counts(&rows, "owners"), (0, 0, 0, 0, 0, 0), "{rows:?}");
    // Each audit is a sync_logs row of mode audit with its counts; the runs' status is untouched.
    let row = client
        .query_one(
            "SELECT status, trigger, (error_details->>'missing')::int, (error_details->>'stale')::int FROM sync_logs \
             WHERE mode = 'audit' AND sync_type = 'contacts' ORDER BY started_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1), row.get::<_, i32>(2), row.get::<_, i32>(3)),
        ("partial".to_owned(), "manual".to_owned(), 9, 2)
    );
    let status = run(&["status", "--json"], &db, &sim).await;
    let latest: Vec<Value> = serde_json::from_slice(&status.stdout).unwrap();
    assert!(latest.iter().all(|r| r["status"] == "success"), "audits are not runs: {latest:?}");

    // The repair: the same drift found, all of it repaired, exit 0, and the copy exact.
    let (code, rows) = audit(&["all", "--repair"], &db, &sim).await;
    assert_eq!(code, Some(0), "{rows:?}");
    assert_eq!(counts(&rows, "contacts"), (9, 0, 2, 0, 11, 0), "{rows:?}");
    assert_eq!(counts(&rows, "deals"), (0, 3, 0, 0, 3, 0), "{rows:?}");
    assert_eq!(counts(&rows, "calls"), (0, 0, 3, 0, 3, 0), "{rows:?}");
    compare::assert_converged(&db, &sim, Merges::Archived, true).await;
    let (code, rows) = audit(&["all"], &db, &sim).await;
    assert_eq!(code, Some(0), "{rows:?}");
    for object in ["contacts", "deals", "calls", "owners"] {
        assert_eq!(counts(&rows, object), (0, 0, 0, 0, 0, 0), "{object}: {rows:?}");
    }
    let audits = db.count("SELECT count(*) FROM sync_logs WHERE mode = 'audit'").await;
    assert_eq!(audits, 4 * 4, "one row per object per audit");
}

#[tokio::test]
async fn audit_text_output_and_bad_usage() {
    for args in [&["audit"][..], &["audit", "companies"], &["audit", "contacts", "--bogus"]] {
        let o = command().args(args).output().await.unwrap();
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", out(&o));
    }
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 30, deals: 5, calls: 5, owners: 2, workers: 1, ..SimOptions::default() })
            .await
            .unwrap();
    // Nothing synced yet: every live contact is missing; the text says how to repair.
    let live = sim.export_json("contacts").iter().filter(|l| l["archived"] == false).count();
    let o = run(&["audit", "contacts"], &db, &sim).await;
    assert_eq!(o.status.code(), Some(1), "{}", out(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with(&format!("contacts  missing {live:>6}")), "{text}");
    assert!(text.contains("--repair"), "{text}");
    let o = run(&["audit", "contacts", "--repair"], &db, &sim).await;
    assert_eq!(o.status.code(), Some(0), "{}", out(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains(&format!("repaired {live:>6}")), "{}", out(&o));
}

#[tokio::test]
async fn the_scheduled_audit_runs_in_serve_and_records_its_rows() {
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 40, deals: 10, calls: 10, owners: 3, workers: 1, ..SimOptions::default() })
            .await
            .unwrap();
    // The records as a full sync leaves them; the owners not yet (the audit's repair brings them).
    compare::seed(&db, &sim).await;
    let serve = ServeBinary::new(&db.url())
        .hubspot(&sim)
        .quiet_schedules()
        .env("SCHEDULE_AUDIT", "* * * * *")
        .env("ADMIN_TOKEN", "audit-admin")
        .spawn()
        .await;
    let finished = until_some(PATIENCE * 2, "the scheduled audit of every object", || async {
        let n = db
            .count("SELECT count(DISTINCT sync_type) FROM sync_logs WHERE mode = 'audit' AND status <> 'running'")
            .await;
        (n == 4).then_some(n)
    })
    .await;
    assert_eq!(finished, 4);
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT DISTINCT ON (sync_type) sync_type, status, trigger, error_details::text FROM sync_logs \
             WHERE mode = 'audit' ORDER BY sync_type, started_at",
            &[],
        )
        .await
        .unwrap();
    for row in &rows {
        let (object, status, trigger, details) = (
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            serde_json::from_str::<Value>(row.get::<_, &str>(3)).unwrap(),
        );
        assert_eq!((status.as_str(), trigger.as_str()), ("success", "schedule"), "{object}: {details}");
        assert_eq!(details["repair"], true, "{object}: {details}");
        assert_eq!(details["drift_left"], 0, "{object}: {details}");
        let expected_missing = if object == "owners" { 3 } else { 0 };
        assert_eq!(details["missing"], expected_missing, "{object}: {details}");
    }
    compare::assert_converged(&db, &sim, Merges::Archived, true).await;
    // The status API shows the last audit per object.
    let mut status: Vec<Value> = reqwest::get(serve.url("/api/sync/status")).await.unwrap().json().await.unwrap();
    // The association sweep's row has no audit.
    status.retain(|row| row["sync_type"] != "associations");
    for row in &status {
        let audit = &row["last_audit"];
        assert!(audit["completed_at"].is_string(), "{row}");
        assert_eq!(audit["drift_left"], 0, "{row}");
        assert_eq!(audit["status"], "success", "{row}");
    }
    assert_eq!(status.len(), 4, "{status:?}");
    serve.kill().await;
}

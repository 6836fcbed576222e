//! The reconciliation poller against a simulator as harsh as HubSpot (issue 13, defects 5-9):
//! a resumed full pass with failures before its interruption archives nothing live; a list page
//! that never loads does not block incremental runs; a restore that keeps `updatedAt` is live
//! after the next read; a custom property created at run time is fetched without a restart; a
//! schedule missed before the leader started runs at once. Each ends with zero differences.

use std::time::Duration;

use hubspot_sim::{ChurnRequest, FaultConfig, PropertyRequest, SimHandle};
use hubspot_sync::config::ApiVersion;
use hubspot_sync::hubspot::{ClientOptions, HubSpot};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Election, Mode, Poller, RunStatus, RunSummary, Schedules, Trigger, run_scheduler};
use hubspot_sync::store::sync_state;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::harness::compare::{self, Merges};
use crate::harness::hubspot::{client, fast_options, poller, settings, sim};
use crate::harness::{PATIENCE, TestDb, eventually};

async fn run(poller: &Poller, kind: ObjectKind, mode: Mode) -> RunSummary {
    poller.run(kind, mode, Trigger::Manual).await.unwrap()
}

/// Live contact ids in id order (the list API's order).
fn live_ids(sim: &SimHandle) -> Vec<u64> {
    let mut ids: Vec<u64> = sim
        .export_json("contacts")
        .iter()
        .filter(|l| l["archived"] == false)
        .map(|l| l["id"].as_str().unwrap().parse().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

async fn archived(db: &TestDb, id: &str) -> bool {
    db.client()
        .await
        .query_one("SELECT archived FROM contacts WHERE hubspot_contact_id = $1", &[&id])
        .await
        .unwrap()
        .get(0)
}

async fn details(db: &TestDb, summary: &RunSummary) -> Value {
    let raw: Option<String> = db
        .client()
        .await
        .query_one(
            "SELECT error_details::text FROM sync_logs WHERE id = $1::text::uuid",
            &[&summary.run_id.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    raw.map(|r| serde_json::from_str(&r).unwrap()).unwrap_or(Value::Null)
}

#[tokio::test]
async fn a_resumed_full_pass_with_earlier_failures_archives_nothing_live() {
    let (db, sim) = (TestDb::new().await, sim(350, 0, 0).await);
    let poller = poller(&db, client(&sim));
    assert_eq!(run(&poller, ObjectKind::Contacts, Mode::Full).await.status, RunStatus::Success);
    let ids = live_ids(&sim);
    // A record of the first page the database refuses during the next pass...
    let bad = ids[10].to_string();
    db.client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.hubspot_contact_id = '{bad}' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON contacts FOR EACH ROW EXECUTE FUNCTION refuse();"
        ))
        .await
        .unwrap();
    // ...which is interrupted at its third page.
    sim.set_faults(FaultConfig { fail_list_after: Some(ids[200]), ..FaultConfig::default() }).unwrap();
    let cut = run(&poller, ObjectKind::Contacts, Mode::Full).await;
    assert_eq!(cut.status, RunStatus::Failed, "{cut:?}");
    sim.set_faults(FaultConfig::default()).unwrap();
    db.client().await.batch_execute("DROP TRIGGER refuse ON contacts").await.unwrap();

    // The resumed pass does not read the first page again: the record is unseen, not gone.
    let resumed = run(&poller, ObjectKind::Contacts, Mode::Incremental).await;
    assert_eq!((resumed.mode, resumed.status), (Mode::Full, RunStatus::Partial), "{resumed:?}");
    assert!(!archived(&db, &bad).await, "{bad} is live in HubSpot: a pass that could not store it must not archive it");
    let details = details(&db, &resumed).await;
    assert_eq!(details["details"]["failed_before_resume"], 1, "{details}");
    assert_eq!(details["details"]["archived_unseen"], 0, "{details}");
    assert!(details["details"]["failed_ids"].as_array().unwrap().iter().any(|id| *id == bad.as_str()), "{details}");
    let mut conn = db.conn().await;
    let state = sync_state::get(&mut conn, "contacts").await.unwrap().unwrap();
    assert_eq!((state.full_cursor, state.full_failed_ids.len()), (None, 0), "the pass is closed");

    // The next pass reads it again, and the copy is exact.
    let next = run(&poller, ObjectKind::Contacts, Mode::Full).await;
    assert_eq!(next.status, RunStatus::Success, "{next:?}");
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;
}

#[tokio::test]
async fn a_stuck_list_page_does_not_block_incremental_runs() {
    let (db, sim) = (TestDb::new().await, sim(350, 0, 0).await);
    let poller = poller(&db, client(&sim));
    assert_eq!(run(&poller, ObjectKind::Contacts, Mode::Full).await.status, RunStatus::Success);
    let ids = live_ids(&sim);
    sim.set_faults(FaultConfig { fail_list_after: Some(ids[200]), status: 502, ..FaultConfig::default() }).unwrap();
    let stuck = run(&poller, ObjectKind::Contacts, Mode::Full).await;
    assert_eq!(stuck.status, RunStatus::Failed, "{stuck:?}");
    sim.churn(&ChurnRequest { object: "contacts".into(), creates: 5, updates: 20, ..Default::default() }).unwrap();

    // Scheduled incremental runs: a few resume the stuck pass and fail, then they run as asked.
    let mut runs = Vec::new();
    for _ in 0..5 {
        let summary = run(&poller, ObjectKind::Contacts, Mode::Incremental).await;
        let done = (summary.mode, summary.status) == (Mode::Incremental, RunStatus::Success);
        runs.push(summary);
        if done {
            break;
        }
    }
    let last = runs.last().unwrap();
    assert_eq!((last.mode, last.status), (Mode::Incremental, RunStatus::Success), "{runs:#?}");
    assert!(last.records_processed >= 20, "{last:?}");
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;
    let mut conn = db.conn().await;
    let state = sync_state::get(&mut conn, "contacts").await.unwrap().unwrap();
    assert!(state.full_cursor.is_some(), "the full pass is still owed");

    // A full run keeps trying the pass; once the page loads it completes.
    sim.set_faults(FaultConfig::default()).unwrap();
    let full = run(&poller, ObjectKind::Contacts, Mode::Full).await;
    assert_eq!((full.mode, full.status), (Mode::Full, RunStatus::Success), "{full:?}");
    let state = sync_state::get(&mut conn, "contacts").await.unwrap().unwrap();
    assert_eq!((state.full_cursor, state.full_stuck_runs), (None, 0));
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;
}

#[tokio::test]
async fn a_restore_that_keeps_updated_at_is_live_after_the_next_read() {
    let (db, sim) = (TestDb::new().await, sim(250, 0, 0).await);
    let poller = poller(&db, client(&sim));
    assert_eq!(run(&poller, ObjectKind::Contacts, Mode::Full).await.status, RunStatus::Success);
    sim.churn(&ChurnRequest { object: "contacts".into(), deletes: 8, ..Default::default() }).unwrap();
    assert_eq!(run(&poller, ObjectKind::Contacts, Mode::Full).await.status, RunStatus::Success);
    let restored = sim
        .churn(&ChurnRequest {
            object: "contacts".into(),
            restores: 8,
            restore_keeps_updated_at: true,
            ..Default::default()
        })
        .unwrap()
        .restored;
    assert!(!restored.is_empty());
    let archived_before = {
        let mut n = 0;
        for id in &restored {
            n += usize::from(archived(&db, id).await);
        }
        n
    };
    assert_eq!(archived_before, restored.len(), "every restored record was archived here");

    // The weekly full pass reads them live, with the same updatedAt: they are live again.
    let summary = run(&poller, ObjectKind::Contacts, Mode::Full).await;
    assert_eq!(summary.status, RunStatus::Success, "{summary:?}");
    for id in &restored {
        assert!(!archived(&db, id).await, "{id} was restored in HubSpot");
    }
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;
}

#[tokio::test]
async fn a_property_created_at_run_time_is_fetched_without_restart() {
    let (db, sim) = (TestDb::new().await, sim(200, 0, 0).await);
    // A long-lived process: its property list was read at its first sync.
    let weekly = poller(&db, client(&sim));
    assert_eq!(run(&weekly, ObjectKind::Contacts, Mode::Full).await.status, RunStatus::Success);
    let created = PropertyRequest {
        object: "contacts".into(),
        name: "coach_note".into(),
        set_on: 20,
        value: "call back on Monday".into(),
        ..Default::default()
    };
    let report = sim.create_property(&created).unwrap();
    assert_eq!(report.updated.len(), 20);
    // The next full pass reads the property list again.
    assert_eq!(run(&weekly, ObjectKind::Contacts, Mode::Full).await.status, RunStatus::Success);
    let stored: i64 = db.count("SELECT count(*) FROM contacts WHERE properties ? 'coach_note'").await;
    assert!(stored >= 20, "the new property was fetched by the full pass ({stored} rows have it)");
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;

    // Between full passes the list is re-read on a timer (here 300 ms instead of 15 minutes).
    let options =
        ClientOptions { properties_refresh: Duration::from_millis(300), ..fast_options(Duration::from_secs(10)) };
    let hubspot = HubSpot::with_options(&settings(&sim, 100_000, ApiVersion::V3), options).unwrap();
    let timed = poller(&db, hubspot);
    assert_eq!(run(&timed, ObjectKind::Contacts, Mode::Incremental).await.status, RunStatus::Success);
    let report = sim
        .create_property(&PropertyRequest { name: "coach_grade".into(), value: "A".into(), ..created.clone() })
        .unwrap();
    assert_eq!(report.updated.len(), 20);
    tokio::time::sleep(Duration::from_millis(400)).await; // at least the refresh interval
    let summary = run(&timed, ObjectKind::Contacts, Mode::Incremental).await;
    assert_eq!((summary.mode, summary.status), (Mode::Incremental, RunStatus::Success), "{summary:?}");
    let stored: i64 = db.count("SELECT count(*) FROM contacts WHERE properties->>'coach_grade' = 'A'").await;
    assert_eq!(stored, 20, "the incremental run fetched the new property");
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;
}

#[tokio::test]
async fn a_schedule_missed_before_leader_start_runs_at_once() {
    let (db, sim) = (TestDb::new().await, sim(150, 40, 40).await);
    compare::seed(&db, &sim).await;
    // The last runs (full ones) were eight days ago: the weekly full pass was missed.
    db.client()
        .await
        .batch_execute(
            "UPDATE sync_logs SET started_at = now() - interval '8 days', completed_at = now() - interval '8 days'",
        )
        .await
        .unwrap();
    // Meanwhile records were deleted and merged: only a full pass finds those gone for good.
    for object in ["contacts", "deals", "calls"] {
        let merges = if object == "calls" { 0 } else { 2 };
        sim.churn(&ChurnRequest { object: object.into(), deletes: 3, merges, ..Default::default() }).unwrap();
    }
    let weekly = "0 3 * * 0".parse().unwrap();
    let mut schedules = Schedules::uniform("0 0 1 1 *".parse().unwrap());
    for (target, schedule) in &mut schedules.entries {
        if *target == hubspot_sync::poller::scheduler::Target::FullPass {
            *schedule = weekly;
            break;
        }
    }
    let shutdown = CancellationToken::new();
    let election = Election::new(db.pool());
    tokio::spawn(run_scheduler(poller(&db, client(&sim)), schedules, election.leadership(), shutdown.clone()));
    election.spawn(shutdown.clone());
    eventually(PATIENCE, "the missed full pass of every object ran at once", || async {
        db.count(
            "SELECT count(DISTINCT sync_type) FROM sync_logs \
             WHERE mode = 'full' AND trigger = 'schedule' AND status = 'success' AND started_at > now() - interval '1 day'",
        )
        .await
            == 4
    })
    .await;
    shutdown.cancel();
    compare::assert_converged(&db, &sim, Merges::Archived, true).await;
}

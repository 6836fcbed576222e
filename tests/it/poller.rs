//! The reconciliation poller against `hubspot-sim` and PostgreSQL: a full sync converges to the
//! simulator's export; incremental runs after churn converge; a full pass catches deletions and
//! merges; more than 10,000 identical timestamps pass the search cap; 5xx give retries and
//! `failed` rows with details; a record the database refuses gives `partial`; an interrupted full
//! sync resumes at its checkpoint; triggers coalesce; two instances schedule each run once.

use std::time::Duration;

use hubspot_sim::{ChurnRequest, FaultConfig, OwnerChangeRequest, Sim, SimHandle, SimOptions};
use hubspot_sync::config::ApiVersion;
use hubspot_sync::hubspot::HubSpot;
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Election, Mode, Poller, RunStatus, Schedules, Trigger, run_scheduler};
use hubspot_sync::store::sync_state;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::harness::hubspot::{client, fast_options, poller, settings, sim};
use crate::harness::{PATIENCE, TestDb, compare, eventually, within};

async fn run_all(poller: &Poller, mode: Mode) {
    for kind in ObjectKind::ALL {
        let summary = poller.run(kind, mode, Trigger::Manual).await.unwrap();
        assert_eq!(summary.status, RunStatus::Success, "{summary:?}");
    }
}

/// Zero differences between PostgreSQL and the simulator's export, for live and archived records;
/// merged-away records are archived or absent. With `live_only`, archived ones are not checked.
async fn assert_converged(db: &TestDb, sim: &SimHandle, kind: ObjectKind, live_only: bool) {
    let stored = compare::rows(db, kind).await;
    let mut checked = 0;
    for line in sim.export_json(kind.as_str()) {
        let id = line["id"].as_str().unwrap();
        if line["mergedInto"].is_string() {
            if let Some(row) = stored.get(id) {
                assert_eq!(
                    row.values.last().unwrap().as_deref(),
                    Some("true"),
                    "{kind} {id} merged away but not archived"
                );
            }
            continue;
        }
        if live_only && line["archived"] == true {
            continue;
        }
        let row = stored.get(id).unwrap_or_else(|| panic!("{kind} {id} missing"));
        assert_eq!(row.values, compare::expected(kind, &line), "{kind} {id} differs");
        checked += 1;
    }
    assert!(checked > 0);
}

async fn assert_owners(db: &TestDb, sim: &SimHandle) {
    let client = db.client().await;
    let owners = sim.export_json("owners");
    for owner in &owners {
        let id = owner["id"].as_str().unwrap();
        let row = client
            .query_one("SELECT email, first_name, last_name, archived, role FROM staff WHERE id = $1", &[&id])
            .await
            .unwrap();
        assert_eq!(row.get::<_, Option<String>>(0).as_deref(), owner["email"].as_str());
        assert_eq!(row.get::<_, Option<String>>(1).as_deref(), owner["firstName"].as_str());
        assert_eq!(row.get::<_, Option<String>>(2).as_deref(), owner["lastName"].as_str());
        assert_eq!(row.get::<_, bool>(3), owner["archived"].as_bool().unwrap());
        assert_eq!(row.get::<_, String>(4), "coach");
    }
    let count: i64 = client.query_one("SELECT count(*) FROM staff", &[]).await.unwrap().get(0);
    assert_eq!(count as usize, owners.len());
}

#[tokio::test]
async fn full_sync_converges_to_the_export() {
    let (db, sim) = (TestDb::new().await, sim(300, 120, 200).await);
    let poller = poller(&db, client(&sim));
    run_all(&poller, Mode::Full).await;
    for kind in [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls] {
        assert_converged(&db, &sim, kind, false).await;
    }
    assert_owners(&db, &sim).await;
    // Type lies are stored raw: some deal amounts are "" or "1;2" in the seed.
    let client = db.client().await;
    let lies: i64 = client
        .query_one("SELECT count(*) FROM deals WHERE deal_value IS NULL AND properties->>'amount' IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(lies > 0, "the seed has type lies and they were tolerated");
    let logs = client.query("SELECT sync_type, status, trigger, mode FROM sync_logs", &[]).await.unwrap();
    assert_eq!(logs.len(), 4);
    assert!(logs.iter().all(|r| r.get::<_, String>(1) == "success" && r.get::<_, String>(3) == "full"));
}

/// `archived`, `archived_at` and `created_at` (times in epoch microseconds) of an owner.
async fn owner_row(db: &TestDb, id: &str) -> (bool, Option<i64>, i64) {
    let micros = |column: &str| format!("(extract(epoch FROM {column}) * 1000000)::bigint");
    let sql = format!("SELECT archived, {}, {} FROM staff WHERE id = $1", micros("archived_at"), micros("created_at"));
    let row = db.client().await.query_one(&sql, &[&id]).await.unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn owners_hubspot_lists_no_more_are_archived_and_live_again_when_they_return() {
    let (db, sim) = (TestDb::new().await, sim(0, 0, 0).await);
    let poller = poller(&db, client(&sim));
    let owners = |run: &'static str| {
        let poller = poller.clone();
        async move {
            let summary = poller.run(ObjectKind::Owners, Mode::Incremental, Trigger::Manual).await.unwrap();
            assert_eq!(summary.status, RunStatus::Success, "{run}: {summary:?}");
        }
    };
    owners("first").await;
    let live: Vec<String> = sim
        .export_json("owners")
        .iter()
        .filter(|o| o["archived"] == false)
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(live.len() >= 3);
    assert!(!owner_row(&db, &live[0]).await.0);

    // HubSpot removes one owner for good (gone from the active and the archived list).
    let gone =
        sim.change_owners(&OwnerChangeRequest { delete_ids: vec![live[0].clone()], ..Default::default() }).unwrap();
    assert_eq!(gone.deleted, [live[0].clone()]);
    owners("after the removal").await;
    let (archived, archived_at, _) = owner_row(&db, &live[0]).await;
    assert!(archived && archived_at.is_some(), "an owner HubSpot lists no more is archived in staff");
    assert!(
        compare::owner_differences(&db, &sim).await.is_empty(),
        "{:?}",
        compare::owner_differences(&db, &sim).await
    );
    let details = db
        .client()
        .await
        .query_one(
            "SELECT error_details #>> '{details,archived_unseen}' FROM sync_logs ORDER BY started_at DESC LIMIT 1",
            &[],
        )
        .await
        .unwrap()
        .get::<_, Option<String>>(0);
    assert_eq!(details.as_deref(), Some("1"), "the run says it archived one owner");

    // Deactivated, then reactivated: archived while HubSpot says so, live again after.
    let mut moved = sim.change_owners(&OwnerChangeRequest { archives: 1, ..Default::default() }).unwrap().archived;
    let moved = moved.remove(0);
    owners("after the deactivation").await;
    let first_archived_at = owner_row(&db, &moved).await.1;
    assert!(first_archived_at.is_some());
    owners("again").await;
    assert_eq!(owner_row(&db, &moved).await.1, first_archived_at, "archived_at is when it was first seen so");
    sim.change_owners(&OwnerChangeRequest { restores: 2, ..Default::default() }).unwrap();
    owners("after the reactivation").await;
    let (archived, archived_at, _) = owner_row(&db, &moved).await;
    assert_eq!((archived, archived_at), (false, None), "live again, with no archived_at");
    assert!(
        compare::owner_differences(&db, &sim).await.is_empty(),
        "{:?}",
        compare::owner_differences(&db, &sim).await
    );
    assert!(owner_row(&db, &live[0]).await.0, "the removed owner stays archived");
}

#[tokio::test]
async fn owners_created_at_is_kept_when_hubspot_omits_it() {
    let (db, sim) = (TestDb::new().await, sim(0, 0, 0).await);
    let poller = poller(&db, client(&sim));
    let omitted = sim.change_owners(&OwnerChangeRequest { omit_created_at: 3, ..Default::default() }).unwrap();
    let run = || async {
        let summary = poller.run(ObjectKind::Owners, Mode::Incremental, Trigger::Manual).await.unwrap();
        assert_eq!(summary.status, RunStatus::Success, "{summary:?}");
    };
    run().await;
    let first: Vec<_> = {
        let mut rows = Vec::new();
        for id in &omitted.created_at_omitted {
            rows.push(owner_row(&db, id).await.2);
        }
        rows
    };
    // Runs later (the database clock moves on between them; no fixed wait is needed: now() of a
    // later transaction is later), HubSpot still omitting createdAt.
    sim.change_owners(&OwnerChangeRequest { updates: 7, ..Default::default() }).unwrap();
    run().await;
    run().await;
    for (id, first) in omitted.created_at_omitted.iter().zip(&first) {
        assert_eq!(owner_row(&db, id).await.2, *first, "owner {id}: created_at must not move when HubSpot omits it");
    }
    // Owners whose createdAt HubSpot gives have exactly it.
    for owner in sim.export_json("owners").iter().filter(|o| o["createdAt"].is_string()) {
        let want: chrono::DateTime<chrono::Utc> = owner["createdAt"].as_str().unwrap().parse().unwrap();
        assert_eq!(owner_row(&db, owner["id"].as_str().unwrap()).await.2, want.timestamp_micros());
    }
}

#[tokio::test]
async fn incremental_after_churn_converges_with_one_search_per_page() {
    let (db, sim) = (TestDb::new().await, sim(300, 100, 150).await);
    let poller = poller(&db, client(&sim));
    run_all(&poller, Mode::Full).await;
    let before = sim.stats()["operations"].clone();
    for object in ["contacts", "deals", "calls"] {
        sim.churn(&ChurnRequest { object: object.into(), creates: 15, updates: 30, ..Default::default() }).unwrap();
    }
    for kind in [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls] {
        let summary = poller.run(kind, Mode::Incremental, Trigger::Manual).await.unwrap();
        assert_eq!((summary.status, summary.mode), (RunStatus::Success, Mode::Incremental), "{summary:?}");
        assert!(summary.records_processed >= 45, "{summary:?}");
        assert_converged(&db, &sim, kind, true).await;
    }
    let after = &sim.stats()["operations"];
    assert_eq!(after["contacts.list"], before["contacts.list"], "incremental runs do not list");
    assert_eq!(after["contacts.search"].as_u64().unwrap_or(0), 1, "one search page per object");
}

#[tokio::test]
async fn a_full_pass_catches_deletions_merges_and_privacy_deletions() {
    let (db, sim) = (TestDb::new().await, sim(200, 80, 60).await);
    let poller = poller(&db, client(&sim));
    run_all(&poller, Mode::Full).await;
    let mut gone = Vec::new();
    for object in ["contacts", "deals", "calls"] {
        let merges = if object == "calls" { 0 } else { 4 };
        let privacy = if object == "contacts" { 2 } else { 0 };
        let report = sim
            .churn(&ChurnRequest {
                object: object.into(),
                deletes: 5,
                merges,
                privacy_deletions: privacy,
                ..Default::default()
            })
            .unwrap();
        gone.extend(report.privacy_deleted);
    }
    for kind in [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls] {
        let summary = poller.run(kind, Mode::Full, Trigger::Manual).await.unwrap();
        assert_eq!(summary.status, RunStatus::Success);
        assert_converged(&db, &sim, kind, false).await;
    }
    let client = db.client().await;
    for id in &gone {
        let archived: bool = client
            .query_one("SELECT archived FROM contacts WHERE hubspot_contact_id = $1", &[id])
            .await
            .unwrap()
            .get(0);
        assert!(archived, "privacy-deleted contact {id} is no longer returned, so it is archived");
    }
    let merged: i64 = client.query_one("SELECT count(*) FROM deals WHERE archived", &[]).await.unwrap().get(0);
    assert!(merged >= 5 + 8, "5 deletions and 4 merges (2 ids each) archived, got {merged}");
}

#[tokio::test]
async fn more_than_10000_identical_timestamps_pass_the_search_cap() {
    let db = TestDb::new().await;
    let sim = Sim::start(SimOptions {
        contacts: 10_700,
        deals: 0,
        calls: 0,
        owners: 2,
        search_per_second: 25,
        workers: 2,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let options =
        hubspot_sync::hubspot::ClientOptions { searches_per_second: 25, ..fast_options(Duration::from_secs(10)) };
    let hubspot = HubSpot::with_options(&settings(&sim, 100_000, ApiVersion::V3), options).unwrap();
    let poller = poller(&db, hubspot);
    // History without a full sync: a watermark a minute ago.
    let mut conn = db.conn().await;
    sync_state::advance_watermark(&mut conn, "contacts", chrono::Utc::now() - chrono::Duration::minutes(1))
        .await
        .unwrap();
    let report =
        sim.churn(&ChurnRequest { object: "contacts".into(), bulk_updates: 10_050, ..Default::default() }).unwrap();
    assert_eq!(report.bulk_updated.len(), 10_050);
    let summary = poller.run(ObjectKind::Contacts, Mode::Incremental, Trigger::Manual).await.unwrap();
    assert_eq!((summary.status, summary.mode), (RunStatus::Success, Mode::Incremental), "{summary:?}");
    let client = db.client().await;
    let stamp = chrono::DateTime::parse_from_rfc3339(report.bulk_timestamp.as_deref().unwrap()).unwrap();
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'IN_PROGRESS'), \
             count(DISTINCT (extract(epoch FROM updated_at) * 1000)::bigint) FROM contacts",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, i64>(0), 10_050, "every bulk-updated record, once: {summary:?} {}", sim.stats());
    assert_eq!(row.get::<_, i64>(1), 10_050);
    assert_eq!(row.get::<_, i64>(2), 1, "one shared timestamp ({stamp})");
    let searches = sim.stats()["operations"]["contacts.search"].as_u64().unwrap();
    assert_eq!(searches, 10_050 / 200 + 1, "no loops: each page read once");
}

#[tokio::test]
async fn server_errors_fail_the_run_with_details_and_keep_the_watermark() {
    let (db, sim) = (TestDb::new().await, sim(120, 30, 30).await);
    let poller = poller(&db, client(&sim));
    // A few 503s are retried: the run succeeds.
    sim.set_faults(FaultConfig { status: 503, fail_next: 3, ..FaultConfig::default() }).unwrap();
    let summary = poller.run(ObjectKind::Deals, Mode::Full, Trigger::Manual).await.unwrap();
    assert_eq!(summary.status, RunStatus::Success);
    assert_eq!(sim.stats()["faults_injected"], 3);
    let mut conn = db.conn().await;
    let mark = sync_state::get(&mut conn, "deals").await.unwrap().unwrap().watermark;
    // Persistent 500s: the run fails, with HubSpot's body in the details; the watermark stays.
    sim.set_faults(FaultConfig { status: 500, error_rate: 1.0, ..FaultConfig::default() }).unwrap();
    let summary = poller.run(ObjectKind::Deals, Mode::Incremental, Trigger::Manual).await.unwrap();
    assert_eq!(summary.status, RunStatus::Failed);
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, error_details::text FROM sync_logs WHERE id = $1::text::uuid",
            &[&summary.run_id.to_string()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    let details: Value = serde_json::from_str(row.get(1)).unwrap();
    assert_eq!(details["details"]["hubspot"]["hubspot"]["category"], "INTERNAL_ERROR", "{details}");
    assert_eq!(sync_state::get(&mut conn, "deals").await.unwrap().unwrap().watermark, mark);
}

#[tokio::test]
async fn a_record_the_database_refuses_makes_the_run_partial() {
    let (db, sim) = (TestDb::new().await, sim(50, 40, 10).await);
    let bad =
        sim.export_json("deals").iter().find(|l| l["archived"] == false).unwrap()["id"].as_str().unwrap().to_owned();
    db.client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.hubspot_deal_id = '{bad}' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON deals FOR EACH ROW EXECUTE FUNCTION refuse();"
        ))
        .await
        .unwrap();
    let summary = poller(&db, client(&sim)).run(ObjectKind::Deals, Mode::Full, Trigger::Manual).await.unwrap();
    assert_eq!((summary.status, summary.records_failed), (RunStatus::Partial, 1), "{summary:?}");
    let client = db.client().await;
    let details: String = client
        .query_one(
            "SELECT error_details::text FROM sync_logs WHERE id = $1::text::uuid",
            &[&summary.run_id.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    let details: Value = serde_json::from_str(&details).unwrap();
    assert_eq!(details["details"]["failed_ids"], serde_json::json!([bad]), "{details}");
    let stored: i64 = client.query_one("SELECT count(*) FROM deals", &[]).await.unwrap().get(0);
    assert_eq!(stored as u64, summary.records_processed - 1);
}

#[tokio::test]
async fn an_interrupted_full_sync_resumes_at_its_checkpoint() {
    let (db, sim) = (TestDb::new().await, sim(350, 0, 0).await);
    let ids: Vec<u64> = sim
        .export_json("contacts")
        .iter()
        .filter(|l| l["archived"] == false)
        .map(|l| l["id"].as_str().unwrap().parse().unwrap())
        .collect();
    let resume_at = ids[200];
    // As an interrupted pass leaves it: the position of the third page, and its start time.
    let mut conn = db.conn().await;
    let started = chrono::Utc::now() - chrono::Duration::minutes(3);
    sync_state::save_full_checkpoint(&mut conn, "contacts", Some(&format!("live:{resume_at}")), started).await.unwrap();
    let summary =
        poller(&db, client(&sim)).run(ObjectKind::Contacts, Mode::Incremental, Trigger::Manual).await.unwrap();
    assert_eq!((summary.status, summary.mode), (RunStatus::Success, Mode::Full), "an unfinished pass resumes");
    let client = db.client().await;
    let min: String = client
        .query_one("SELECT min(hubspot_contact_id::bigint)::text FROM contacts WHERE NOT archived", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(min, resume_at.to_string(), "pages before the checkpoint were not fetched again");
    let state = sync_state::get(&mut conn, "contacts").await.unwrap().unwrap();
    assert_eq!(state.full_cursor, None);
    assert_eq!(state.watermark.map(|w| w.timestamp()), Some(started.timestamp()), "the pass keeps its start time");
}

#[tokio::test]
async fn triggers_during_a_run_return_its_id_and_coalesce_into_one_follow_up() {
    let (db, sim) = (TestDb::new().await, sim(400, 10, 10).await);
    // 500 ms a page: the run lasts seconds, while the three triggers below take a moment.
    sim.set_faults(FaultConfig { latency_ms: Some(500), ..FaultConfig::default() }).unwrap();
    let poller = poller(&db, client(&sim));
    let first = poller.trigger(ObjectKind::Contacts, Mode::Full, Trigger::Manual).await.unwrap();
    let second = poller.trigger(ObjectKind::Contacts, Mode::Incremental, Trigger::Sql).await.unwrap();
    let third = poller.trigger(ObjectKind::Contacts, Mode::Incremental, Trigger::Schedule).await.unwrap();
    assert_eq!((second, third), (first, first));
    let client = db.client().await;
    let finished = async {
        loop {
            let row = client
                .query_one("SELECT count(*), count(*) FILTER (WHERE status = 'running') FROM sync_logs", &[])
                .await
                .unwrap();
            if row.get::<_, i64>(0) == 2 && row.get::<_, i64>(1) == 0 && !poller.is_running(ObjectKind::Contacts) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    within(PATIENCE, "the run and one follow-up finish", finished).await;
    let triggers: Vec<String> = client
        .query("SELECT trigger FROM sync_logs ORDER BY started_at", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(triggers, ["manual", "sql"]);
}

#[tokio::test]
async fn two_instances_on_one_database_schedule_each_run_once() {
    let (db, sim) = (TestDb::new().await, sim(60, 20, 20).await);
    let never = Schedules::uniform("0 0 1 1 *".parse().unwrap());
    let shutdown = CancellationToken::new();
    let instances: Vec<Poller> = (0..2).map(|_| poller(&db, client(&sim))).collect();
    for p in &instances {
        let election = Election::new(db.pool());
        tokio::spawn(run_scheduler(p.clone(), never.clone(), election.leadership(), shutdown.clone()));
        election.spawn(shutdown.clone());
    }
    let client = db.client().await;
    eventually(PATIENCE, "startup runs finish", || async {
        db.count("SELECT count(*) FROM sync_logs WHERE status = 'success'").await >= 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = client.query("SELECT sync_type, trigger FROM sync_logs ORDER BY sync_type", &[]).await.unwrap();
    let runs: Vec<(String, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(runs.len(), 4, "one startup run per object, by one instance: {runs:?}");
    assert!(runs.iter().all(|(_, t)| t == "startup"));
    assert!(instances.iter().all(|p| p.next_runs().iter().all(|(_, at)| at.is_some())));
    shutdown.cancel();
}

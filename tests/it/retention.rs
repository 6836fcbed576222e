//! Retention (`SYNC_LOGS_RETENTION`, `OWNER_HISTORY_RETENTION`): the maintenance job deletes
//! exactly the rows older than their retention, in several batches, while a sync runs; the sync
//! completes; a `running` row and the newest runs of an idle object are kept whatever their age;
//! the job is one `sync_logs` row of type `maintenance`. And the daily schedule catches up a
//! firing missed while no instance led.

use std::time::Duration;

use hubspot_sync::config::{RetentionSettings, parse_retention};
use hubspot_sync::maintenance::{self, Maintenance};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Leadership, Mode, Poller, PollerOptions, RunStatus, Trigger};
use hubspot_sync::store::pool::PoolOptions;
use hubspot_sync::store::sync_logs::{self, RunTrigger};
use tokio_util::sync::CancellationToken;

use crate::harness::hooks::NEVER;
use crate::harness::hubspot::{client, sim};
use crate::harness::{PATIENCE, TestDb, eventually, until_some};

fn settings(sync_logs: &str, owner_history: &str, schedule: &str) -> RetentionSettings {
    RetentionSettings {
        sync_logs_retention: parse_retention(sync_logs).unwrap(),
        owner_history_retention: parse_retention(owner_history).unwrap(),
        schedule_maintenance: schedule.parse().unwrap(),
    }
}

/// `n` finished rows of `sync_type`/`mode`, started `from_days` days ago and one day apart
/// further back, tagged `seed` in `error_details` (`old` rows must go, `keep` rows stay).
fn rows(sync_type: &str, mode: &str, status: &str, n: i32, from_days: i32, seed: &str) -> String {
    format!(
        "INSERT INTO sync_logs (sync_type, status, trigger, mode, started_at, completed_at, duration_ms, \
         records_processed, error_details) \
         SELECT '{sync_type}', '{status}', 'schedule', '{mode}', now() - make_interval(days => {from_days} + i, secs => i), \
                now() - make_interval(days => {from_days} + i, secs => i) + interval '3 seconds', 3000, i, \
                jsonb_build_object('seed', '{seed}') \
         FROM generate_series(0, {n} - 1) i;"
    )
}

/// Old and new history: 2,479 `sync_logs` rows and 1,234 owner history rows to delete.
async fn seed(db: &TestDb) {
    let mut sql = String::new();
    for object in ["contacts", "deals", "calls"] {
        sql += &rows(object, "incremental", "success", 600, 100, "old");
        sql += &rows(object, "incremental", "failed", 100, 300, "old");
        sql += &rows(object, "incremental", "partial", 100, 500, "old");
        sql += &rows(object, "incremental", "success", 5, 1, "keep");
    }
    sql += &rows("contacts", "full", "success", 50, 95, "old");
    sql += &rows("contacts", "full", "success", 1, 2, "keep");
    sql += &rows("contacts", "audit", "success", 1, 120, "old");
    sql += &rows("contacts", "audit", "success", 1, 1, "keep");
    // An object idle for longer than the retention keeps its newest run (failed) and its newest
    // good run: the scheduler's catch-up and the overdue alert read them.
    sql += &rows("owners", "incremental", "failed", 1, 100, "keep");
    sql += &rows("owners", "incremental", "success", 1, 101, "keep");
    sql += &rows("owners", "incremental", "success", 28, 102, "old");
    // A run still going, started long ago: never deleted.
    sql += "INSERT INTO sync_logs (sync_type, status, trigger, mode, started_at, error_details) \
            VALUES ('deals', 'running', 'manual', 'full', now() - interval '200 days', '{\"seed\": \"keep\"}');";
    sql += "INSERT INTO contact_owner_history (hubspot_contact_id, previous_owner_id, new_owner_id, changed_at) \
            SELECT 'c' || i, 'o1', 'o2', now() - make_interval(days => 400 + i % 100) FROM generate_series(1, 1234) i; \
            INSERT INTO contact_owner_history (hubspot_contact_id, previous_owner_id, new_owner_id, changed_at) \
            SELECT 'n' || i, 'o2', 'o3', now() - make_interval(days => 10) FROM generate_series(1, 17) i;";
    db.client().await.batch_execute(&sql).await.unwrap();
}

const OLD_SYNC_LOGS: u64 = 3 * 800 + 50 + 1 + 28;
const KEPT_SEEDED: i64 = 3 * 5 + 1 + 1 + 2 + 1;

/// A pool whose statements may wait as long as the test needs (the sync waits for a lock).
fn patient_pool(db: &TestDb) -> hubspot_sync::store::Pool {
    let options = PoolOptions {
        application_name: "hubspot-sync retention test".into(),
        max_size: 8,
        wait_timeout: PATIENCE,
        statement_timeout: PATIENCE,
        synchronous_commit: false,
    };
    hubspot_sync::store::build_pool(&db.target, &options).unwrap()
}

#[tokio::test]
async fn retention_deletes_exactly_the_old_rows_in_batches_while_a_sync_runs() {
    let db = TestDb::new().await;
    let sim = sim(300, 0, 0).await;
    seed(&db).await;

    // The sync's writes wait behind a lock the test holds, so it is provably in progress for
    // the whole of the maintenance job; then the lock goes and the sync completes.
    let blocker = db.client().await;
    blocker.batch_execute("BEGIN; LOCK TABLE contacts IN EXCLUSIVE MODE").await.unwrap();
    let pool = patient_pool(&db);
    let poller =
        Poller::new(pool.clone(), client(&sim), PollerOptions { skew: Duration::ZERO, ..PollerOptions::default() });
    let run_id = poller.trigger(ObjectKind::Contacts, Mode::Incremental, Trigger::Manual).await.unwrap();
    eventually(PATIENCE, "the sync waits for the contacts lock", || async {
        db.count(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
             AND application_name = 'hubspot-sync retention test' AND wait_event_type = 'Lock'",
        )
        .await
            > 0
    })
    .await;

    let job = Maintenance::new(pool.clone(), &settings("90d", "365d", NEVER), Leadership::always())
        .with_batches(100, Duration::ZERO);
    let report = job.run_once(RunTrigger::Manual, &CancellationToken::new()).await.unwrap();
    assert_eq!(report.status, RunStatus::Success, "{report:?}");
    assert_eq!(report.error, None);
    let logs = report.tables.iter().find(|t| t.table == "sync_logs").unwrap();
    assert_eq!(logs.deleted, OLD_SYNC_LOGS, "{report:?}");
    assert_eq!(logs.batches, OLD_SYNC_LOGS.div_ceil(100), "100 rows per statement: {report:?}");
    let history = report.tables.iter().find(|t| t.table == "contact_owner_history").unwrap();
    assert_eq!((history.deleted, history.batches), (1234, 13), "{report:?}");

    // Exactly the old rows went: every seeded `keep` row is there, no `old` one is.
    assert_eq!(db.count("SELECT count(*) FROM sync_logs WHERE error_details->>'seed' = 'old'").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM sync_logs WHERE error_details->>'seed' = 'keep'").await, KEPT_SEEDED);
    assert_eq!(db.count("SELECT count(*) FROM contact_owner_history WHERE hubspot_contact_id LIKE 'c%'").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM contact_owner_history WHERE hubspot_contact_id LIKE 'n%'").await, 17);
    let sync_row = format!("SELECT count(*) FROM sync_logs WHERE id = '{run_id}' AND status = 'running'");
    assert_eq!(db.count(&sync_row).await, 1, "the sync ran all along, and its row is kept");

    // The job's own row.
    let row = db
        .client()
        .await
        .query_one(
            "SELECT status, trigger, mode, records_processed, (error_details->'details')::text FROM sync_logs \
             WHERE sync_type = 'maintenance'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "success");
    assert_eq!(row.get::<_, String>(1), "manual");
    assert_eq!(row.get::<_, String>(2), "maintenance");
    assert_eq!(row.get::<_, i32>(3) as u64, OLD_SYNC_LOGS + 1234);
    let details: serde_json::Value = serde_json::from_str(row.get::<_, &str>(4)).unwrap();
    assert_eq!(details[0]["table"], "sync_logs");
    assert_eq!(details[0]["batches"], OLD_SYNC_LOGS.div_ceil(100));
    assert_eq!(details[1]["deleted"], 1234);

    // The sync completes once its lock is free.
    blocker.batch_execute("COMMIT").await.unwrap();
    let status = until_some(PATIENCE, "the sync finishes", || async {
        let mut conn = db.conn().await;
        let row = sync_logs::recent(&mut conn, Some("contacts"), 1).await.unwrap().pop()?;
        (row.id == run_id && row.status != RunStatus::Running).then_some((row.status, row.records_processed))
    })
    .await;
    assert_eq!(status.0, RunStatus::Success);
    let live = sim.export_json("contacts").iter().filter(|c| c["archived"] != true).count() as i64;
    assert_eq!(db.count("SELECT count(*) FROM contacts WHERE NOT archived").await, live, "{status:?}");
    // The job is not an object's run: the latest status per object leaves it out.
    let mut conn = db.conn().await;
    let latest = sync_logs::latest_status(&mut conn).await.unwrap();
    assert!(latest.iter().all(|r| r.sync_type != maintenance::SYNC_TYPE), "{latest:?}");
    assert_eq!(latest.iter().find(|r| r.sync_type == "owners").unwrap().status, RunStatus::Failed);
}

#[tokio::test]
async fn keep_deletes_nothing_and_a_second_job_finds_nothing_left() {
    let db = TestDb::new().await;
    seed(&db).await;
    let pool = db.pool();
    let job = Maintenance::new(pool, &settings("keep", "keep", NEVER), Leadership::always());
    let report = job.run_once(RunTrigger::Manual, &CancellationToken::new()).await.unwrap();
    assert!(report.tables.is_empty() && report.deleted() == 0, "{report:?}");
    assert_eq!(db.count("SELECT count(*) FROM contact_owner_history").await, 1234 + 17);

    let job = Maintenance::new(db.pool(), &settings("90d", "keep", NEVER), Leadership::always());
    let first = job.run_once(RunTrigger::Manual, &CancellationToken::new()).await.unwrap();
    assert_eq!(first.deleted(), OLD_SYNC_LOGS, "one batch of 1,000 and more: {first:?}");
    assert_eq!(first.tables[0].batches, 3);
    assert_eq!(db.count("SELECT count(*) FROM contact_owner_history").await, 1234 + 17, "owner history kept");
    let second = job.run_once(RunTrigger::Manual, &CancellationToken::new()).await.unwrap();
    assert_eq!((second.status, second.deleted()), (RunStatus::Success, 0), "{second:?}");
}

#[tokio::test]
async fn a_missed_daily_job_is_caught_up_by_the_leader() {
    let db = TestDb::new().await;
    seed(&db).await;
    // The last job ran two days ago: today's firing was missed.
    db.client()
        .await
        .batch_execute(
            "INSERT INTO sync_logs (sync_type, status, trigger, mode, started_at, completed_at, duration_ms) \
             VALUES ('maintenance', 'success', 'schedule', 'maintenance', now() - interval '2 days', \
                     now() - interval '2 days', 10)",
        )
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let task = Maintenance::new(db.pool(), &settings("90d", "keep", "30 4 * * *"), Leadership::always())
        .spawn(shutdown.clone());
    eventually(PATIENCE, "the missed job runs", || async {
        db.count("SELECT count(*) FROM sync_logs WHERE sync_type = 'maintenance' AND status = 'success'").await == 2
    })
    .await;
    assert_eq!(db.count("SELECT count(*) FROM sync_logs WHERE error_details->>'seed' = 'old'").await, 0);
    let trigger = db
        .count("SELECT count(*) FROM sync_logs WHERE sync_type = 'maintenance' AND trigger = 'schedule' AND records_processed > 0")
        .await;
    assert_eq!(trigger, 1);
    shutdown.cancel();
    task.await.unwrap();
}

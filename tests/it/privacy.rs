//! Privacy deletions, deletions under a full queue and association events (issue 13, defects 1,
//! 2, 10 and 12): an erased person leaves nothing anywhere, aliases along merge chains and
//! aliases known only from `hs_merged_object_ids` included; an upsert overlapping the purge
//! never brings the contact back (two connections, both interleavings); a batch the full queue
//! refuses still has its deletions, merges and privacy deletions written; an association event
//! naming another kind's id archives nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use diesel_async::{AnsiTransactionManager, AsyncPgConnection, TransactionManager};
use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, WebhookConfig};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Mode, RunStatus, Trigger};
use hubspot_sync::store::calls::{self, CallRow};
use hubspot_sync::store::contacts::{self, ContactRow};
use hubspot_sync::store::deals::{self, DealRow};
use serde_json::json;

use crate::harness::compare::{Merges, assert_converged, seed};
use crate::harness::hooks::{SECRET, post, post_changes, signed};
use crate::harness::hubspot::{client, poller};
use crate::harness::{PATIENCE, TestApp, TestDb, free_port};

/// Serves `db` with `sim` as HubSpot (its webhooks go to `port`), fetching within 50 ms; gives
/// the simulator back for the test.
async fn serve(db: &Arc<TestDb>, sim: SimHandle, port: u16) -> (TestApp, SimHandle) {
    let mut app =
        TestApp::builder().db(db.clone()).started_sim(sim).port(port).arg("--fetch-window", "50ms").start().await;
    let sim = app.sim.take().expect("the app has the simulator");
    (app, sim)
}

async fn sim_for(port: u16, contacts: usize, deals: usize, calls: usize) -> SimHandle {
    let mut hooks = WebhookConfig::new(format!("http://127.0.0.1:{port}/webhooks/hubspot"), SECRET);
    hooks.retry_base_ms = 100;
    hooks.retry_max_ms = 1000;
    let opts = SimOptions { contacts, deals, calls, owners: 4, webhook: Some(hooks), ..SimOptions::default() };
    Sim::start(opts).await.unwrap()
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_600_000_000 + secs, 0).single().unwrap()
}

fn contact(id: &str, updated: i64, properties: serde_json::Value) -> ContactRow {
    ContactRow {
        hubspot_contact_id: id.to_owned(),
        email: Some(format!("person-{id}@example.org")),
        first_name: Some("Zoë".to_owned()),
        last_name: Some("Ångström".to_owned()),
        phone: Some("+44 20 7946 0000".to_owned()),
        owner_id: Some("77".to_owned()),
        lifecycle_stage: Some("lead".to_owned()),
        status: None,
        created_at: Some(at(0)),
        updated_at: at(updated),
        archived: false,
        properties,
    }
}

async fn contact_exists(db: &TestDb, id: &str) -> bool {
    let sql = "SELECT count(*) FROM contacts WHERE hubspot_contact_id = $1";
    db.client().await.query_one(sql, &[&id]).await.unwrap().get::<_, i64>(0) > 0
}

/// Rows of every table of the public schema whose text form contains `needle`.
async fn rows_containing(db: &TestDb, needle: &str) -> Vec<String> {
    let client = db.client().await;
    let tables = client.query("SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'", &[]).await.unwrap();
    let mut found = Vec::new();
    for table in tables {
        let name: String = table.get(0);
        let sql = format!("SELECT x::text FROM \"{name}\" x WHERE strpos(x::text, $1) > 0");
        for row in client.query(&sql, &[&needle]).await.unwrap() {
            found.push(format!("{name}: {}", row.get::<_, String>(0)));
        }
    }
    found
}

/// Defect 1: A and B merged into C, C and D into E (webhooks delivered); F and G merged into H
/// without a webhook (a full pass archives F and G with `merged_into` NULL; only H's
/// `hs_merged_object_ids` names them). Erasing E and H leaves none of the eight records, their
/// owner history or their personal data anywhere in the database.
#[tokio::test]
async fn an_erased_person_leaves_nothing_behind_aliases_chains_and_owner_history_included() {
    let db = Arc::new(TestDb::new().await);
    let port = free_port();
    let sim = sim_for(port, 60, 5, 5).await;
    seed(&db, &sim).await;
    let (mut app, sim) = serve(&db, sim, port).await;

    let chain = sim.churn(&ChurnRequest { object: "contacts".into(), chain_merges: 1, ..Default::default() }).unwrap();
    assert_eq!(chain.merged.len(), 2, "{chain:?}");
    let (first, second) = (&chain.merged[0], &chain.merged[1]);
    assert_eq!(second.primary, first.new, "the second merge takes the first one's survivor");
    let silent = sim
        .churn(&ChurnRequest {
            object: "contacts".into(),
            merges: 1,
            merges_without_webhook: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(silent.events, 0, "no webhook for this merge");
    assert!(sim.wait_webhooks_idle(PATIENCE).await, "webhooks still pending");
    // The weekly full pass: F and G are no longer listed, so they are archived without a pointer.
    let poller = poller(&db, client(&sim));
    let summary = poller.run(ObjectKind::Contacts, Mode::Full, Trigger::Manual).await.unwrap();
    assert_eq!(summary.status, RunStatus::Success, "{summary:?}");

    let mut person: Vec<String> = [first, second, &silent.merged[0]]
        .iter()
        .flat_map(|m| m.merged.iter().cloned().chain([m.primary.clone(), m.new.clone()]))
        .collect();
    person.sort();
    person.dedup();
    assert_eq!(person.len(), 8, "A, B, C, D, E and F, G, H: {person:?}");
    let client = db.client().await;
    let stored: i64 = client
        .query_one("SELECT count(*) FROM contacts WHERE hubspot_contact_id = ANY($1)", &[&person])
        .await
        .unwrap()
        .get(0);
    // C may never be stored: its fetch can come after its second merge, and answer with E.
    assert!(stored >= 7, "the records of the person are stored before the erasure: {stored}");
    let unpointed: i64 = client
        .query_one(
            "SELECT count(*) FROM contacts WHERE hubspot_contact_id = ANY($1) AND archived AND merged_into IS NULL",
            &[&person],
        )
        .await
        .unwrap()
        .get(0);
    assert!(unpointed >= 2, "F and G are archived with no pointer to H");
    // Owner changes on every one of them, aliases included.
    client
        .execute("UPDATE contacts SET owner_id = 'former-owner' WHERE hubspot_contact_id = ANY($1)", &[&person])
        .await
        .unwrap();
    let export = sim.export_json("contacts");
    let mut personal: Vec<String> = Vec::new();
    for line in export.iter().filter(|l| person.iter().any(|id| l["id"].as_str() == Some(id))) {
        for name in ["email", "phone"] {
            if let Some(value) = line["properties"][name].as_str().filter(|v| v.len() > 5) {
                personal.push(value.to_owned());
            }
        }
    }
    assert!(personal.len() >= 8, "emails and phones to look for: {personal:?}");
    assert!(!rows_containing(&db, &personal[0]).await.is_empty(), "the data is there before");

    let erased = sim
        .churn(&ChurnRequest {
            object: "contacts".into(),
            privacy_delete_ids: vec![second.new.clone(), silent.merged[0].new.clone()],
            ..Default::default()
        })
        .unwrap();
    assert_eq!(erased.privacy_deleted.len(), 2, "{erased:?}");
    assert!(sim.wait_webhooks_idle(PATIENCE).await, "webhooks still pending");
    app.stop().await;

    for value in &personal {
        let left = rows_containing(&db, value).await;
        assert!(left.is_empty(), "{value} is still stored: {left:?}");
    }
    let remembered: i64 = client
        .query_one("SELECT count(*) FROM privacy_deletions WHERE hubspot_contact_id = ANY($1)", &[&person])
        .await
        .unwrap()
        .get(0);
    assert_eq!(remembered, 8, "every id of the person is recorded, so none can be written back");
    for table in ["contacts", "contact_owner_history"] {
        let sql = format!("SELECT count(*) FROM {table} WHERE hubspot_contact_id = ANY($1)");
        let left: i64 = client.query_one(&sql, &[&person]).await.unwrap().get(0);
        assert_eq!(left, 0, "{table} still holds {left} rows of the person");
    }
    assert_converged(&db, &sim, Merges::Archived, false).await;
}

/// Waits until the backend `pid` waits for a lock, or `done` says its work finished.
async fn blocked_or_done(db: &TestDb, pid: i32, done: impl Fn() -> bool) {
    let client = db.client().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let row = client
            .query_one("SELECT coalesce(wait_event_type, '') FROM pg_stat_activity WHERE pid = $1", &[&pid])
            .await
            .unwrap();
        if row.get::<_, String>(0) == "Lock" || done() {
            return;
        }
        assert!(Instant::now() < deadline, "backend {pid} neither blocked nor finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn backend_pid(conn: &mut AsyncPgConnection) -> i32 {
    #[derive(diesel::QueryableByName)]
    struct Pid {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        pid: i32,
    }
    let row: Pid =
        diesel_async::RunQueryDsl::get_result(diesel::sql_query("SELECT pg_backend_pid() AS pid"), conn).await.unwrap();
    row.pid
}

/// Defect 2: two connections, both interleavings. An upsert statement that began before the
/// purge committed (it is waiting on the purge) does not re-insert the contact; a purge that
/// began while an upsert's transaction was open removes what that upsert wrote. A row naming an
/// erased id among those merged into it is refused too.
#[tokio::test]
async fn an_upsert_overlapping_a_privacy_deletion_never_brings_the_contact_back() {
    let db = TestDb::new().await;
    let mut purge = db.conn().await;
    let mut upsert = db.conn().await;
    let upsert_pid = backend_pid(&mut upsert).await;
    contacts::upsert_batch(&mut purge, vec![contact("1", 10, json!({"email": "person-1@example.org"}))]).await.unwrap();

    // 1. The purge runs first and stays uncommitted; the upsert starts and waits; the purge commits.
    AnsiTransactionManager::begin_transaction(&mut purge).await.unwrap();
    assert_eq!(contacts::privacy_delete(&mut purge, &["1".to_owned()]).await.unwrap(), 1);
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = finished.clone();
    let late = tokio::spawn(async move {
        let written = contacts::upsert_batch(&mut upsert, vec![contact("1", 99, json!({}))]).await.unwrap();
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        (written, upsert)
    });
    blocked_or_done(&db, upsert_pid, || finished.load(std::sync::atomic::Ordering::SeqCst)).await;
    AnsiTransactionManager::commit_transaction(&mut purge).await.unwrap();
    let (written, mut upsert) = late.await.unwrap();
    assert_eq!(written, 0, "the upsert that overlapped the purge wrote nothing");
    assert!(!contact_exists(&db, "1").await, "the erased contact came back");

    // 2. The upsert's transaction is open when the purge starts; it commits while the purge waits.
    AnsiTransactionManager::begin_transaction(&mut upsert).await.unwrap();
    let row = contact("2", 10, json!({"email": "person-2@example.org"}));
    assert_eq!(contacts::upsert_batch(&mut upsert, vec![row]).await.unwrap(), 1);
    let purge_pid = backend_pid(&mut purge).await;
    let finished = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = finished.clone();
    let erase = tokio::spawn(async move {
        contacts::privacy_delete(&mut purge, &["2".to_owned()]).await.unwrap();
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        purge
    });
    blocked_or_done(&db, purge_pid, || finished.load(std::sync::atomic::Ordering::SeqCst)).await;
    AnsiTransactionManager::commit_transaction(&mut upsert).await.unwrap();
    let mut purge = erase.await.unwrap();
    assert!(!contact_exists(&db, "2").await, "the purge left what the overlapping upsert wrote");

    // 3. A survivor naming an erased id as merged into it is the same person: refused.
    let survivor = contact("3", 20, json!({"hs_merged_object_ids": "1;2"}));
    assert_eq!(contacts::upsert_batch(&mut purge, vec![survivor]).await.unwrap(), 0);
    assert!(!contact_exists(&db, "3").await);
}

/// Defect 10: the queue is full (capacity 2, ids held by a one-hour fetch window); a batch
/// carrying a change to fetch, a deletion, a merge and a privacy deletion is refused with 503,
/// and still its deletion, merge and privacy deletion are in PostgreSQL.
#[tokio::test]
async fn a_batch_refused_by_a_full_queue_still_has_its_deletions_written() {
    let db = Arc::new(TestDb::new().await);
    let mut conn = db.conn().await;
    let people = ["501", "502", "503"].map(|id| contact(id, 10, json!({"email": format!("person-{id}@example.org")})));
    contacts::upsert_batch(&mut conn, people.to_vec()).await.unwrap();
    let deal = DealRow {
        hubspot_deal_id: "601".into(),
        deal_name: Some("Renewal".into()),
        deal_value: Some("10.00".into()),
        stage: None,
        status: None,
        close_date: None,
        closer_id: None,
        pipeline: None,
        created_at: Some(at(0)),
        updated_at: at(10),
        archived: false,
        properties: json!({}),
    };
    deals::upsert_batch(&mut conn, vec![deal]).await.unwrap();
    let mut app = TestApp::builder()
        .db(db.clone())
        .quiet_poller()
        .unreachable_hubspot()
        .arg("--queue-capacity", "2")
        .arg("--fetch-window", "1h")
        .arg("--shutdown-grace", "1s")
        .start()
        .await;
    let url = app.webhook_url.clone();
    assert_eq!(post_changes(&url, "contact", &[1, 2]).await, 204, "the queue is now full");
    let now = Utc::now().timestamp_millis();
    let batch = json!([
        {"eventId": 1, "subscriptionType": "contact.propertyChange", "objectId": 9, "occurredAt": now,
         "propertyName": "firstname", "propertyValue": "x"},
        {"eventId": 2, "subscriptionType": "deal.deletion", "objectId": 601, "occurredAt": now, "changeFlag": "DELETED"},
        {"eventId": 3, "subscriptionType": "contact.privacyDeletion", "objectId": 501, "occurredAt": now,
         "changeSource": "GDPR"},
        {"eventId": 4, "subscriptionType": "contact.merge", "objectId": 503, "occurredAt": now,
         "primaryObjectId": 503, "mergedObjectIds": [502], "newObjectId": 503, "numberOfPropertiesMoved": 1}
    ]);
    let body = serde_json::to_vec(&batch).unwrap();
    // HubSpot retries a refused batch: every attempt is refused, and each writes the same.
    for _ in 0..2 {
        let code = post(&url, body.clone(), &signed(SECRET, &url, &body, Utc::now().timestamp_millis())).await;
        assert_eq!(code, 503, "the full queue refuses the batch");
    }
    app.stop().await;
    let client = db.client().await;
    let deal_archived: bool =
        client.query_one("SELECT archived FROM deals WHERE hubspot_deal_id = '601'", &[]).await.unwrap().get(0);
    assert!(deal_archived, "the deletion of a refused batch is written");
    assert!(!contact_exists(&db, "501").await, "the privacy deletion of a refused batch is written");
    let erased: i64 = client
        .query_one("SELECT count(*) FROM privacy_deletions WHERE hubspot_contact_id = '501'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(erased, 1);
    let merged = client
        .query_one("SELECT archived, merged_into FROM contacts WHERE hubspot_contact_id = '502'", &[])
        .await
        .unwrap();
    assert_eq!((merged.get::<_, bool>(0), merged.get::<_, Option<String>>(1)), (true, Some("503".to_owned())));
    assert!(!contact_exists(&db, "9").await, "nothing was fetched for the refused change");
}

/// Defect 12: the simulator sends association changes with HubSpot's fields, one event per
/// direction on each end's subscription, so half of them carry another kind's id in `objectId`
/// and `fromObjectId`. Real portals number each kind on its own, so that number can be a stored
/// record of the subscription's kind (the simulator keeps kinds' ids apart, so such rows are
/// planted here): none of them is archived, and the copy still equals HubSpot.
#[tokio::test]
async fn an_association_event_naming_another_kinds_id_archives_nothing() {
    let db = Arc::new(TestDb::new().await);
    let port = free_port();
    let sim = sim_for(port, 40, 15, 15).await;
    seed(&db, &sim).await;
    let live = |object: &str| -> Vec<String> {
        let lines = sim.export_json(object);
        lines.iter().filter(|l| l["archived"] == false).map(|l| l["id"].as_str().unwrap().to_owned()).collect()
    };
    let (deal_ids, contact_ids) = (live("deals"), live("contacts"));
    // A contact stored under every deal's number, a call under every contact's number.
    let mut conn = db.conn().await;
    let planted: Vec<ContactRow> = deal_ids.iter().map(|id| contact(id, 10, json!({}))).collect();
    contacts::upsert_batch(&mut conn, planted).await.unwrap();
    let planted_calls: Vec<CallRow> = contact_ids
        .iter()
        .map(|id| CallRow {
            hubspot_call_id: id.clone(),
            title: Some("planted".into()),
            direction: None,
            disposition: None,
            status: None,
            duration_ms: None,
            called_at: None,
            owner_id: None,
            created_at: Some(at(0)),
            updated_at: at(10),
            archived: false,
            properties: json!({}),
        })
        .collect();
    calls::upsert_batch(&mut conn, planted_calls).await.unwrap();

    let (mut app, sim) = serve(&db, sim, port).await;
    let mut pairs = HashSet::new();
    for object in ["contacts", "deals", "calls"] {
        let report =
            sim.churn(&ChurnRequest { object: object.into(), association_changes: 10, ..Default::default() }).unwrap();
        assert_eq!(report.associations.len(), 10, "{report:?}");
        assert!(report.events >= 20, "an event per direction: {report:?}");
        pairs.extend(report.associations.into_iter().map(|a| (a.from, a.to)));
    }
    assert!(sim.wait_webhooks_idle(PATIENCE).await, "webhooks still pending");
    app.stop().await;
    let client = db.client().await;
    let archived: i64 = client
        .query_one("SELECT count(*) FROM contacts WHERE hubspot_contact_id = ANY($1) AND archived", &[&deal_ids])
        .await
        .unwrap()
        .get(0);
    assert_eq!(archived, 0, "contacts numbered as associated deals were archived");
    let archived: i64 = client
        .query_one("SELECT count(*) FROM calls WHERE hubspot_call_id = ANY($1) AND archived", &[&contact_ids])
        .await
        .unwrap()
        .get(0);
    assert_eq!(archived, 0, "calls numbered as associated contacts were archived");
    assert!(!pairs.is_empty());
    client.execute("DELETE FROM contacts WHERE hubspot_contact_id = ANY($1)", &[&deal_ids]).await.unwrap();
    client.execute("DELETE FROM calls WHERE title = 'planted'", &[]).await.unwrap();
    assert_converged(&db, &sim, Merges::Pointer, false).await;
}

/// A parked record's error text can quote the person's values: erasing the person removes it.
#[tokio::test]
async fn erasing_a_person_removes_their_parked_failures() {
    use hubspot_sync::store::sync_failures::{self, Backoff, NewFailure};
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let failure = |id: &str| NewFailure {
        hubspot_id: id.into(),
        error: format!("value too long: person-{id}@example.org"),
        updated_at: None,
    };
    sync_failures::park(&mut conn, "contacts", &[failure("701"), failure("702")], Backoff::default()).await.unwrap();
    contacts::privacy_delete(&mut conn, &["701".to_owned()]).await.unwrap();
    let left: Vec<String> = db
        .client()
        .await
        .query("SELECT hubspot_id FROM sync_failures ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(left, ["702"], "only the erased person's failure is gone");
}

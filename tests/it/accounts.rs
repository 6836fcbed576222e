//! Several HubSpot accounts in one database (issue 20): a synced single-account database migrates
//! in place (every row kept, moved to the default account's portal, no re-sync); two portals
//! hold the same HubSpot ids apart; `hubspot-sync accounts` adds, lists and removes accounts and
//! never deletes rows unless told; the SQL interface takes a portal id.

use diesel_async::{AsyncPgConnection, SimpleAsyncConnection};
use diesel_migrations::MigrationHarness;
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Mode, RunStatus, Trigger};
use hubspot_sync::store::accounts::{self, Adopted, NewAccount};
use hubspot_sync::store::associations::{self, Edge, EdgeChange};
use hubspot_sync::store::contacts::{self, ContactRow};
use hubspot_sync::store::migrations::{self, MIGRATIONS};
use hubspot_sync::store::records::{self, RecordTable};
use hubspot_sync::store::{StoreError, sync_logs, sync_state};
use serde_json::json;

use crate::harness::binary::command;
use crate::harness::hubspot::{client, poller, sim};
use crate::harness::{PATIENCE, TestDb, compare, within};

/// This build's accounts migration (its version: the folder name's digits).
const ACCOUNTS_MIGRATION: &str = "20261203130001";

/// Every table that carries `portal_id`, with its row count.
async fn counts(db: &TestDb) -> Vec<(String, i64)> {
    let mut out = Vec::new();
    for table in accounts::SCOPED_TABLES {
        out.push((table.to_owned(), db.count(&format!("SELECT count(*) FROM {table}")).await));
    }
    out
}

/// Reverts migrations until the accounts migration is no longer applied: the database is then a
/// single-account one, as every database was before it.
async fn back_to_single_account(db: &TestDb) {
    migrations::with_sync_connection(&db.target, |conn| {
        loop {
            let applied = conn.applied_migrations().map_err(StoreError::Migration)?;
            if !applied.iter().any(|v| v.to_string() == ACCOUNTS_MIGRATION) {
                return Ok(());
            }
            conn.revert_last_migration(MIGRATIONS).map_err(StoreError::Migration)?;
        }
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_synced_single_account_database_migrates_in_place_and_needs_no_resync() {
    let sim = sim(60, 25, 25).await;
    let db = TestDb::new().await;
    let poller = poller(&db, client(&sim));
    for kind in ObjectKind::ALL {
        let summary = poller.run(kind, Mode::Full, Trigger::Manual).await.unwrap();
        assert_eq!(summary.status, RunStatus::Success, "{summary:?}");
    }
    // Edges, owner history and a parked record, so every kind of row is carried over.
    compare::seed_edges(&db, &sim).await;
    db.client()
        .await
        .batch_execute(
            "INSERT INTO sync_failures (object, hubspot_id, error) VALUES ('deals', '424242', 'refused'); \
             INSERT INTO contact_owner_history (hubspot_contact_id, previous_owner_id, new_owner_id, changed_at) \
             VALUES ('1', '5', '6', now()); \
             INSERT INTO privacy_deletions (hubspot_contact_id) VALUES ('99999999')",
        )
        .await
        .unwrap();
    back_to_single_account(&db).await;
    let before = counts(&db).await;
    let status_before = db.client().await.query("SELECT * FROM get_latest_sync_status()", &[]).await.unwrap().len();
    assert!(before.iter().filter(|(_, n)| *n > 0).count() >= 8, "{before:?}");

    // Migrate in place: every row kept, under the default account's portal (0 until known).
    migrations::run_pending(&db.target).await.unwrap();
    assert_eq!(counts(&db).await, before, "no row lost or added by the migration");
    for table in accounts::SCOPED_TABLES {
        assert_eq!(db.count(&format!("SELECT count(*) FROM {table} WHERE portal_id <> 0")).await, 0, "{table}");
    }
    // HUBSPOT_PORTAL_ID becomes known: the rows move to it, once.
    let mut conn = db.conn().await;
    let Adopted::Rewritten(moved) = accounts::adopt_default_portal(&mut conn, 62515).await.unwrap() else {
        panic!("the rows should have moved");
    };
    assert_eq!(moved.iter().map(|(_, n)| n).sum::<i64>(), before.iter().map(|(_, n)| n).sum::<i64>());
    assert_eq!(accounts::adopt_default_portal(&mut conn, 62515).await.unwrap(), Adopted::Unchanged);
    assert!(accounts::adopt_default_portal(&mut conn, 777).await.is_err(), "a second, different portal id is refused");
    assert_eq!(counts(&db).await, before);
    for table in accounts::SCOPED_TABLES {
        assert_eq!(db.count(&format!("SELECT count(*) FROM {table} WHERE portal_id <> 62515")).await, 0, "{table}");
    }
    assert_eq!(
        db.client().await.query("SELECT * FROM get_latest_sync_status()", &[]).await.unwrap().len(),
        status_before,
        "the latest status reads the same runs"
    );
    // No re-sync: the poller resumes from the kept watermarks and last runs. Each object's next
    // run is incremental and finds nothing to store; the copy still equals HubSpot.
    assert!(sync_state::get(&mut conn, "contacts").await.unwrap().and_then(|s| s.watermark).is_some());
    for kind in ObjectKind::ALL {
        assert!(sync_logs::last_good_run(&mut conn, kind.as_str()).await.unwrap().is_some(), "{kind}");
    }
    let poller = crate::harness::hubspot::poller(&db, client(&sim));
    for kind in [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls] {
        let summary = poller.run(kind, Mode::Incremental, Trigger::Manual).await.unwrap();
        assert_eq!(summary.status, RunStatus::Success, "{summary:?}");
        assert_eq!(summary.records_processed, 0, "{kind}: nothing changed, nothing re-read: {summary:?}");
    }
    compare::assert_converged(&db, &sim, compare::Merges::Archived, true).await;
}

fn contact(id: &str, name: &str, updated: i64) -> ContactRow {
    ContactRow {
        hubspot_contact_id: id.into(),
        email: Some(format!("{name}@example.com")),
        first_name: Some(name.into()),
        last_name: None,
        phone: None,
        owner_id: None,
        lifecycle_stage: None,
        status: None,
        created_at: None,
        updated_at: chrono::DateTime::from_timestamp(updated, 0).unwrap(),
        archived: false,
        properties: json!({ "firstname": name }),
    }
}

/// A connection working for `portal_id` (as an account's pool's connections do).
async fn scoped(db: &TestDb, portal_id: i64) -> AsyncPgConnection {
    let mut conn = db.conn().await;
    conn.batch_execute(&accounts::session_setting(portal_id)).await.unwrap();
    conn
}

async fn two_accounts(db: &TestDb) {
    let mut conn = db.conn().await;
    accounts::adopt_default_portal(&mut conn, 1001).await.unwrap();
    accounts::add(&mut conn, new_account(2002, "emea")).await.unwrap();
}

fn new_account(portal_id: i64, name: &str) -> NewAccount {
    NewAccount {
        portal_id,
        name: name.into(),
        token_env: format!("HUBSPOT_TOKEN_{portal_id}"),
        client_secret_env: None,
        api_base: None,
        requests_per_10s: None,
        schedule_incremental: None,
        schedule_full: None,
    }
}

#[tokio::test]
async fn two_portals_hold_the_same_hubspot_ids_apart() {
    let db = TestDb::new().await;
    let mut default = db.conn().await;
    // No second account while the default one's portal id is unknown.
    let err = accounts::add(&mut default, new_account(2002, "emea")).await.unwrap_err();
    assert!(err.to_string().contains("HUBSPOT_PORTAL_ID"), "{err}");
    two_accounts(&db).await;
    let mut emea = scoped(&db, 2002).await;
    let mut us = scoped(&db, 1001).await;

    contacts::upsert_batch(&mut default, vec![contact("1", "ada", 10)]).await.unwrap();
    contacts::upsert_batch(&mut emea, vec![contact("1", "zoe", 20)]).await.unwrap();
    contacts::upsert_batch(&mut emea, vec![contact("2", "max", 20)]).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM contacts WHERE hubspot_contact_id = '1'").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM contacts WHERE portal_id = 1001 AND first_name = 'ada'").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM contacts WHERE portal_id = 2002 AND first_name = 'zoe'").await, 1);
    // Each session sees and changes its own portal's rows only.
    let ids = vec!["1".to_owned(), "2".to_owned()];
    assert_eq!(records::existing(&mut us, RecordTable::Contacts, &ids).await.unwrap(), ["1"]);
    assert_eq!(records::existing(&mut emea, RecordTable::Contacts, &ids).await.unwrap(), ["1", "2"]);
    assert_eq!(records::mark_archived(&mut emea, RecordTable::Contacts, &ids[..1], None).await.unwrap(), 1);
    assert_eq!(db.count("SELECT count(*) FROM contacts WHERE archived").await, 1);
    assert_eq!(records::existing(&mut us, RecordTable::Contacts, &ids).await.unwrap(), ["1"]);
    // The same edge, the same watermark name, in both portals.
    let edge = Edge {
        from_type: "0-1".into(),
        from_id: "1".into(),
        to_type: "0-3".into(),
        to_id: "9".into(),
        type_id: 4,
        category: "HUBSPOT_DEFINED".into(),
        label: None,
        is_primary: false,
    };
    let at = chrono::Utc::now();
    for conn in [&mut us, &mut emea] {
        associations::upsert(conn, vec![EdgeChange { edge: edge.clone(), removed: false, at }]).await.unwrap();
        sync_state::advance_watermark(conn, "contacts", at).await.unwrap();
    }
    assert_eq!(db.count("SELECT count(*) FROM associations").await, 2);
    assert_eq!(db.count("SELECT count(*) FROM sync_state WHERE sync_type = 'contacts'").await, 2);
    assert_eq!(associations::all(&mut emea).await.unwrap().len(), 1);
    // Owner history carries the portal of the row that changed.
    let mut changed = contact("1", "zoe", 30);
    changed.owner_id = Some("7".into());
    contacts::upsert_batch(&mut emea, vec![changed]).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM contact_owner_history WHERE portal_id = 2002").await, 1);
    assert_eq!(db.count("SELECT count(*) FROM owner_change_deliveries WHERE portal_id = 2002").await, 1);
}

#[tokio::test]
async fn the_sql_interface_takes_a_portal_id() {
    let db = TestDb::new().await;
    two_accounts(&db).await;
    let mut emea = scoped(&db, 2002).await;
    let id = sync_logs::start_run(&mut emea, "deals", sync_logs::RunTrigger::Manual, sync_logs::RunMode::Full)
        .await
        .unwrap();
    let outcome = sync_logs::RunOutcome { records_processed: 5, records_failed: 0, fatal_error: None, details: None };
    sync_logs::finish_run(&mut emea, id, &outcome).await.unwrap();
    let client = db.client().await;
    let rows =
        client.query("SELECT sync_type, records_processed FROM get_latest_sync_status(2002)", &[]).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!((rows[0].get::<_, String>(0), rows[0].get::<_, i32>(1)), ("deals".to_owned(), 5));
    assert!(client.query("SELECT * FROM get_latest_sync_status()", &[]).await.unwrap().is_empty(), "default: none");
    assert_eq!(sync_logs::latest_status(&mut emea).await.unwrap().len(), 1, "the session's portal");

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut listener = hubspot_sync::store::notify::Listener::start(&db.target, "test", "hubspot_sync").await.unwrap();
    tokio::spawn(async move {
        while let Some(payload) = listener.next_payload().await {
            let _ = tx.send(payload);
        }
    });
    client.batch_execute("SELECT trigger_hubspot_sync('deals', 2002)").await.unwrap();
    let payload = within(PATIENCE, "the NOTIFY arrives", rx.recv()).await.unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&payload).unwrap(),
        json!({"sync_type": "deals", "portal_id": 2002})
    );
    let err = client.batch_execute("SELECT trigger_hubspot_sync('deals', 3003)").await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("unknown portal id 3003"), "{err:?}");
}

async fn accounts_cli(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = command();
    cmd.env("DATABASE_URL", db.url()).arg("accounts").args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = within(PATIENCE, "the command ends", cmd.output()).await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn accounts_are_added_listed_and_removed_only_with_their_rows_when_told() {
    let db = TestDb::new().await;
    let add = ["add", "--portal-id", "2002", "--name", "emea", "--token-env", "HUBSPOT_TOKEN_EMEA"];
    let (code, _, err) = accounts_cli(&db, &add, &[]).await;
    assert_eq!(code, 1, "refused while the default portal id is unknown: {err}");
    assert!(err.contains("HUBSPOT_PORTAL_ID"), "{err}");
    // A secret where its variable's name belongs is bad usage, and is not echoed back stored.
    let (code, _, _) =
        accounts_cli(&db, &["add", "--portal-id", "2002", "--name", "x", "--token-env", "pat-na1-abc"], &[]).await;
    assert_eq!(code, 2);

    let mut migrate = command();
    migrate.env("DATABASE_URL", db.url()).env("HUBSPOT_PORTAL_ID", "1001").arg("migrate");
    let out = within(PATIENCE, "migrate ends", migrate.output()).await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let (code, out, err) = accounts_cli(&db, &add, &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("added account 2002"), "{out}");
    assert!(err.contains("HUBSPOT_TOKEN_EMEA is not set here"), "{err}");
    let (code, _, _) = accounts_cli(&db, &add, &[]).await;
    assert_eq!(code, 1, "the same portal twice");

    let (code, out, _) = accounts_cli(&db, &["list", "--json"], &[]).await;
    assert_eq!(code, 0);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(list[0]["portal_id"], 1001);
    assert_eq!(list[0]["is_default"], true);
    assert_eq!(list[1]["portal_id"], 2002);
    assert_eq!(list[1]["token_env"], "HUBSPOT_TOKEN_EMEA");
    let (_, table, _) = accounts_cli(&db, &["list"], &[]).await;
    assert!(table.contains("emea") && table.contains("HUBSPOT_TOKEN_EMEA"), "{table}");

    let mut emea = scoped(&db, 2002).await;
    contacts::upsert_batch(&mut emea, vec![contact("1", "zoe", 20)]).await.unwrap();
    let (code, _, err) = accounts_cli(&db, &["remove", "--portal-id", "2002"], &[]).await;
    assert_eq!(code, 1);
    assert!(err.contains("contacts: 1") && err.contains("--delete-data"), "{err}");
    assert_eq!(db.count("SELECT count(*) FROM contacts WHERE portal_id = 2002").await, 1, "nothing removed");
    let (code, _, err) = accounts_cli(&db, &["remove", "--portal-id", "1001", "--delete-data"], &[]).await;
    assert_eq!(code, 1, "the default account stays");
    assert!(err.contains("default account"), "{err}");
    let (code, out, err) = accounts_cli(&db, &["remove", "--portal-id", "2002", "--delete-data"], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("1 rows deleted"), "{out}");
    assert_eq!(db.count("SELECT count(*) FROM contacts").await, 0);
    assert_eq!(db.count("SELECT count(*) FROM accounts").await, 1);
}

#[tokio::test]
async fn the_admin_api_manages_accounts_and_never_drops_rows_unasked() {
    const TOKEN: &str = "admin-token-for-accounts";
    let mut app = crate::harness::app::TestApp::builder().admin_token(TOKEN).start().await;
    let http = reqwest::Client::new();
    let accounts_url = app.url("/api/accounts");
    assert_eq!(http.get(&accounts_url).send().await.unwrap().status(), 401);
    let list: serde_json::Value =
        http.get(&accounts_url).bearer_auth(TOKEN).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["is_default"], true);

    let body = json!({ "portal_id": 2002, "name": "emea", "token_env": "HUBSPOT_TOKEN_EMEA" });
    let post = || http.post(&accounts_url).bearer_auth(TOKEN);
    let r = post().json(&body).send().await.unwrap();
    assert_eq!(r.status(), 409, "refused while the default portal id is unknown");
    assert!(r.text().await.unwrap().contains("HUBSPOT_PORTAL_ID"));
    accounts::adopt_default_portal(&mut app.db.conn().await, 1001).await.unwrap();
    let r =
        post().json(&json!({ "portal_id": 2002, "name": "emea", "token_env": "pat-na1-0000" })).send().await.unwrap();
    assert_eq!(r.status(), 422, "a secret where its variable's name belongs");
    let r = post().json(&body).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let added: serde_json::Value = r.json().await.unwrap();
    assert_eq!((added["portal_id"].as_i64(), added["token_env"].as_str()), (Some(2002), Some("HUBSPOT_TOKEN_EMEA")));
    assert_eq!(post().json(&body).send().await.unwrap().status(), 409, "taken");

    let mut emea = scoped(&app.db, 2002).await;
    contacts::upsert_batch(&mut emea, vec![contact("1", "zoe", 20)]).await.unwrap();
    let one = app.url("/api/accounts/2002");
    let r = http.delete(&one).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("delete_data=true"));
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 1, "nothing deleted");
    assert_eq!(http.delete(app.url("/api/accounts/1001")).bearer_auth(TOKEN).send().await.unwrap().status(), 409);
    assert_eq!(http.delete(app.url("/api/accounts/3003")).bearer_auth(TOKEN).send().await.unwrap().status(), 404);
    let r = http.delete(format!("{one}?delete_data=true")).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let removed: serde_json::Value = r.json().await.unwrap();
    assert_eq!(removed["rows_deleted"]["contacts"], 1);
    assert_eq!(app.db.count("SELECT count(*) FROM contacts").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn sync_audit_and_status_work_on_the_account_they_are_given() {
    let us = sim(40, 15, 15).await;
    let emea = hubspot_sim::Sim::start(hubspot_sim::SimOptions {
        contacts: 30,
        deals: 12,
        calls: 12,
        owners: 5,
        workers: 2,
        seed: 99,
        ..hubspot_sim::SimOptions::default()
    })
    .await
    .unwrap();
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    accounts::adopt_default_portal(&mut conn, 1001).await.unwrap();
    let account = NewAccount { api_base: Some(emea.url().to_owned()), ..new_account(2002, "emea") };
    accounts::add(&mut conn, account).await.unwrap();
    let run = |args: &[&str], token: bool| {
        let mut cmd = crate::harness::binary::command_for(&db, &us);
        cmd.args(args);
        if token {
            cmd.env("HUBSPOT_TOKEN_2002", "pat-eu1-emea-token");
        }
        async move {
            let out = within(PATIENCE, "the command ends", cmd.output()).await.unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, _, err) = run(&["sync", "all", "--account", "2002"], false).await;
    assert_eq!(code, Some(2), "the account's token variable is missing: {err}");
    assert!(err.contains("HUBSPOT_TOKEN_2002"), "{err}");
    assert!(!err.contains("pat-"), "no secret printed: {err}");

    let (code, _, err) = run(&["sync", "all"], false).await;
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["sync", "all", "--account", "2002"], true).await;
    assert_eq!(code, Some(0), "{err}");
    // Each portal holds its own HubSpot's copy, ids shared or not.
    compare::assert_converged(&db, &us, compare::Merges::Archived, true).await;
    db.read_portal(Some(2002));
    compare::assert_converged(&db, &emea, compare::Merges::Archived, true).await;
    db.read_portal(None);
    assert_eq!(
        db.count("SELECT count(*) FROM contacts WHERE portal_id = 2002").await,
        emea.export_json("contacts").iter().filter(|l| l["archived"] == false).count() as i64
    );
    let (code, out, err) = run(&["audit", "all", "--account", "2002", "--json"], true).await;
    assert_eq!(code, Some(0), "no drift in the account's own portal: {out} {err}");
    let (code, out, _) = run(&["status", "--account", "2002", "--json"], false).await;
    assert_eq!(code, Some(0));
    let rows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 4, "{rows}");
    let (code, _, err) = run(&["status", "--account", "3003"], false).await;
    assert_eq!(code, Some(1), "{err}");
}

/// A deletion event of contact `id` from `portal`.
fn deletion(portal: i64, id: &str) -> Vec<u8> {
    serde_json::to_vec(&json!([{
        "eventId": 1, "subscriptionId": 1, "portalId": portal, "appId": 54321, "attemptNumber": 0,
        "occurredAt": chrono::Utc::now().timestamp_millis(), "subscriptionType": "contact.deletion",
        "objectId": id.parse::<u64>().unwrap(), "changeSource": "CRM"
    }]))
    .unwrap()
}

#[tokio::test]
async fn one_webhook_url_routes_each_portal_and_verifies_it_with_its_own_secret() {
    use crate::harness::hooks::{SECRET, SECRETS, post, signed};
    const EMEA_SECRET: &str = "emea-app-secret";
    let sim = sim(5, 2, 2).await;
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    accounts::adopt_default_portal(&mut conn, 1001).await.unwrap();
    let account = NewAccount { client_secret_env: Some("EMEA_CLIENT_SECRET".into()), ..new_account(2002, "emea") };
    accounts::add(&mut conn, account).await.unwrap();
    // The same HubSpot id in both portals.
    contacts::upsert_batch(&mut conn, vec![contact("987654321", "ada", 10)]).await.unwrap();
    contacts::upsert_batch(&mut scoped(&db, 2002).await, vec![contact("987654321", "zoe", 10)]).await.unwrap();
    let serve = crate::harness::binary::ServeBinary::new(&db.url())
        .hubspot(&sim)
        .quiet_schedules()
        .env("HUBSPOT_CLIENT_SECRET", SECRETS)
        .env("HUBSPOT_PORTAL_ID", "1001")
        .env("EMEA_CLIENT_SECRET", EMEA_SECRET)
        .spawn()
        .await;
    let url = serve.url("/webhooks/hubspot");
    let now = || chrono::Utc::now().timestamp_millis();
    let live = |portal: i64| {
        format!(
            "SELECT count(*) FROM contacts WHERE portal_id = {portal} AND hubspot_contact_id = '987654321' AND NOT archived"
        )
    };

    // Portal 2002's event signed with the default account's secret: forged for that portal.
    let body = deletion(2002, "987654321");
    assert_eq!(post(&url, body.clone(), &signed(SECRET, &url, &body, now())).await, 401);
    // The default account's secret cannot be used for it either way round.
    let body = deletion(1001, "987654321");
    assert_eq!(post(&url, body.clone(), &signed(EMEA_SECRET, &url, &body, now())).await, 401);
    assert_eq!((db.count(&live(1001)).await, db.count(&live(2002)).await), (1, 1), "nothing written");
    // Signed with its own secret, portal 2002's batch is verified; this process does not run
    // the account (its token variable is unset), so the batch is stored for the account's lease
    // holder (204) and nothing is written yet. Signed with v1 only it gets 503: its replay rule
    // lives with the holder.
    let body = deletion(2002, "987654321");
    let v1_only: Vec<_> = signed(EMEA_SECRET, &url, &body, now()).into_iter().take(2).collect();
    assert_eq!(post(&url, body.clone(), &v1_only).await, 503);
    assert_eq!(post(&url, body.clone(), &signed(EMEA_SECRET, &url, &body, now())).await, 204);
    assert_eq!(db.count("SELECT count(*) FROM webhook_handoff WHERE portal_id = 2002").await, 1, "handed over");
    // An unknown portal: counted, answered 204, nothing written, whoever signed it.
    let body = deletion(9009, "987654321");
    assert_eq!(post(&url, body, &[]).await, 204);
    assert_eq!((db.count(&live(1001)).await, db.count(&live(2002)).await), (1, 1));
    // The default account's own batch deletes its own row, not portal 2002's namesake.
    let body = deletion(1001, "987654321");
    assert_eq!(post(&url, body.clone(), &signed(SECRET, &url, &body, now())).await, 204);
    assert_eq!((db.count(&live(1001)).await, db.count(&live(2002)).await), (0, 1));
    drop(serve);
}

//! Poison records (issue 13, defects 3, 4 and 11): values PostgreSQL cannot hold are stored in a
//! storable form; a record that still fails is parked in `sync_failures` and never blocks the
//! others; parked records are retried until they store, shown to the admin and stop holding the
//! incremental watermark after a few attempts. Driven through `hubspot-sim`'s planted values and
//! per-id batch-read errors; a record "the database refuses" is a test trigger that raises for
//! one id (any value the mapping does not foresee).

use std::collections::BTreeMap;
use std::time::Duration;

use hubspot_sim::{BatchErrorRequest, PlantRequest, Sim, SimHandle, SimOptions};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Mode, RunStatus, Trigger};
use hubspot_sync::store::sync_failures::{self, Backoff, NewFailure};
use hubspot_sync::store::sync_state;
use serde_json::Value;

use crate::harness::compare::{Merges, all_differences};
use crate::harness::get_json;
use crate::harness::hubspot::{client, poller};
use crate::harness::{PATIENCE, TestApp, TestDb, eventually};

const TOKEN: &str = "poison-admin-token";

/// A seeded app whose simulator delivers its webhooks to it, fetching within 200 ms.
async fn app(admin_token: Option<&str>) -> (TestApp, SimHandle) {
    let opts = SimOptions { contacts: 150, deals: 40, calls: 10, owners: 3, ..SimOptions::default() };
    let mut builder = TestApp::builder()
        .sim(opts)
        .sim_webhooks(|hooks| {
            hooks.retry_base_ms = 100;
            hooks.retry_max_ms = 1000;
        })
        .seeded()
        .arg("--fetch-window", "200ms");
    if let Some(token) = admin_token {
        builder = builder.admin_token(token);
    }
    let mut app = builder.start().await;
    let sim = app.sim.take().expect("the app has a simulator");
    (app, sim)
}

fn live_ids(sim: &SimHandle, object: &str) -> Vec<String> {
    sim.export_json(object)
        .iter()
        .filter(|l| l["archived"] == false)
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

fn plant(sim: &SimHandle, object: &str, id: &str, props: &[(&str, &str)]) {
    let properties: BTreeMap<String, Option<String>> =
        props.iter().map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned()))).collect();
    sim.plant(&PlantRequest { object: object.into(), id: id.into(), properties }).unwrap();
}

/// A trigger that makes PostgreSQL refuse every write of one contact.
async fn refuse_contact(db: &TestDb, id: &str) {
    db.client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.hubspot_contact_id = '{id}' THEN RAISE EXCEPTION 'refused for the test'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON contacts FOR EACH ROW EXECUTE FUNCTION refuse();"
        ))
        .await
        .unwrap();
}

async fn accept_again(db: &TestDb) {
    db.client().await.batch_execute("DROP TRIGGER refuse ON contacts").await.unwrap();
}

async fn first_names(db: &TestDb, ids: &[String]) -> Vec<Option<String>> {
    let client = db.client().await;
    let mut out = Vec::new();
    for id in ids {
        let row =
            client.query_opt("SELECT first_name FROM contacts WHERE hubspot_contact_id = $1", &[id]).await.unwrap();
        out.push(row.and_then(|r| r.get(0)));
    }
    out
}

async fn parked(db: &TestDb) -> Vec<(String, String, String, i32)> {
    db.client()
        .await
        .query("SELECT object, hubspot_id, error, attempts FROM sync_failures ORDER BY 1, 2", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test]
async fn a_webhook_batch_with_a_poison_record_stores_the_others_and_parks_it() {
    let (mut app, sim) = app(Some(TOKEN)).await;
    let db = app.db.clone();
    let ids: Vec<String> = live_ids(&sim, "contacts").into_iter().take(100).collect();
    let poison = ids[37].clone();
    refuse_contact(&db, &poison).await;
    let base = app.base.clone();
    for id in &ids {
        plant(&sim, "contacts", id, &[("firstname", &format!("renamed-{id}"))]);
    }
    let others: Vec<String> = ids.iter().filter(|id| **id != poison).cloned().collect();
    let want: Vec<Option<String>> = others.iter().map(|id| Some(format!("renamed-{id}"))).collect();
    eventually(PATIENCE, "the 99 other contacts are stored", || async { first_names(&db, &others).await == want })
        .await;
    eventually(PATIENCE, "the poison contact is parked", || async { parked(&db).await.iter().any(|p| p.1 == poison) })
        .await;
    let failures = parked(&db).await;
    assert_eq!(failures.len(), 1, "only the poison record is parked: {failures:?}");
    assert_eq!((failures[0].0.as_str(), failures[0].1.as_str()), ("contacts", poison.as_str()));
    assert!(failures[0].2.contains("refused for the test"), "{failures:?}");

    // Shown in the status API (a count per object) and, with the admin token, in the list.
    let (status, body) = get_json(&format!("{base}/api/sync/status"), None).await;
    assert_eq!(status, 200);
    let contacts = body.as_array().unwrap().iter().find(|r| r["sync_type"] == "contacts").unwrap();
    assert_eq!(contacts["parked"], 1, "{body}");
    assert!(contacts["oldest_parked"].is_string(), "{body}");
    let (status, list) = get_json(&format!("{base}/api/sync/failures"), Some(TOKEN)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list[0]["hubspot_id"], poison.as_str(), "{list}");
    assert!(list[0]["attempts"].as_i64().unwrap() >= 1, "{list}");

    // Once the database takes it, the retry loop stores it and un-parks it.
    accept_again(&db).await;
    eventually(PATIENCE, "the parked contact is retried and stored", || async {
        first_names(&db, std::slice::from_ref(&poison)).await == [Some(format!("renamed-{poison}"))]
            && parked(&db).await.is_empty()
    })
    .await;
    assert!(sim.wait_webhooks_idle(PATIENCE).await);
    app.stop().await;
    let diffs = all_differences(&db, &sim, Merges::Pointer, false).await;
    assert!(diffs.is_empty(), "{diffs:?}");
}

#[tokio::test]
async fn nul_bytes_and_impossible_dates_are_stored_with_the_raw_value_kept() {
    let (mut app, sim) = app(None).await;
    let db = app.db.clone();
    let contacts = live_ids(&sim, "contacts");
    let deals = live_ids(&sim, "deals");
    plant(
        &sim,
        "contacts",
        &contacts[0],
        &[("firstname", "An\u{0}n"), ("lastname", "\u{0}"), ("signup_source", "a\u{0}b")],
    );
    plant(&sim, "contacts", &contacts[1], &[("firstname", "plain")]);
    plant(&sim, "deals", &deals[0], &[("closedate", "-10000-01-01"), ("dealname", "Big\u{0} deal")]);
    plant(&sim, "deals", &deals[1], &[("closedate", "0000-00-00")]);
    plant(&sim, "deals", &deals[2], &[("closedate", "300000-01-01T00:00:00Z")]);
    let client = db.client().await;
    eventually(PATIENCE, "the contact with NUL bytes is stored", || async {
        first_names(&db, &contacts[..2]).await == [Some("Ann".to_owned()), Some("plain".to_owned())]
    })
    .await;
    let row = client
        .query_one(
            "SELECT last_name, properties->>'firstname', properties->>'lastname', properties->>'signup_source' \
             FROM contacts WHERE hubspot_contact_id = $1",
            &[&contacts[0]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<String>>(0), None, "a value of only NUL is no value");
    assert_eq!(row.get::<_, String>(1), "An\\u0000n", "the raw value is kept, NUL escaped");
    assert_eq!(row.get::<_, String>(2), "\\u0000");
    assert_eq!(row.get::<_, String>(3), "a\\u0000b");
    let deal = |id: String| {
        let client = &client;
        async move {
            client
                .query_opt(
                    "SELECT close_date IS NULL, properties->>'closedate', deal_name FROM deals \
                     WHERE hubspot_deal_id = $1 AND properties->>'closedate' IS DISTINCT FROM NULL",
                    &[&id],
                )
                .await
                .unwrap()
                .map(|r| (r.get::<_, bool>(0), r.get::<_, Option<String>>(1), r.get::<_, Option<String>>(2)))
        }
    };
    for (id, raw) in [(&deals[0], "-10000-01-01"), (&deals[1], "0000-00-00"), (&deals[2], "300000-01-01T00:00:00Z")] {
        eventually(PATIENCE, "the deal with an impossible date is stored", || async {
            deal(id.clone()).await.is_some_and(|(null, stored, _)| null && stored.as_deref() == Some(raw))
        })
        .await;
    }
    assert_eq!(deal(deals[0].clone()).await.unwrap().2.as_deref(), Some("Big deal"));
    assert!(parked(&db).await.is_empty(), "nothing parked: {:?}", parked(&db).await);
    assert!(sim.wait_webhooks_idle(PATIENCE).await);
    app.stop().await;
    let diffs = all_differences(&db, &sim, Merges::Pointer, false).await;
    assert!(diffs.is_empty(), "{diffs:?}");
}

#[tokio::test]
async fn per_id_batch_errors_are_parked_and_retried() {
    let (mut app, sim) = app(None).await;
    let db = app.db.clone();
    let ids = live_ids(&sim, "contacts");
    let (bad, good) = (ids[3].clone(), ids[4].clone());
    sim.set_batch_errors(&BatchErrorRequest {
        object: "contacts".into(),
        ids: vec![bad.clone()],
        ..Default::default()
    })
    .unwrap();
    plant(&sim, "contacts", &bad, &[("firstname", "bad-renamed")]);
    plant(&sim, "contacts", &good, &[("firstname", "good-renamed")]);
    eventually(PATIENCE, "the readable contact is stored", || async {
        first_names(&db, std::slice::from_ref(&good)).await == [Some("good-renamed".to_owned())]
    })
    .await;
    eventually(PATIENCE, "the errored id is parked, not dropped", || async {
        parked(&db).await.iter().any(|p| p.1 == bad && p.2.contains("VALIDATION_ERROR"))
    })
    .await;
    // Retried with backoff while HubSpot keeps answering with an error.
    eventually(PATIENCE, "the errored id is retried", || async {
        parked(&db).await.iter().any(|p| p.1 == bad && p.3 >= 2)
    })
    .await;
    assert_ne!(first_names(&db, std::slice::from_ref(&bad)).await, [Some("bad-renamed".to_owned())]);
    sim.set_batch_errors(&BatchErrorRequest {
        object: "contacts".into(),
        ids: vec![bad.clone()],
        clear: true,
        ..Default::default()
    })
    .unwrap();
    eventually(PATIENCE, "the id is stored once HubSpot answers it", || async {
        first_names(&db, std::slice::from_ref(&bad)).await == [Some("bad-renamed".to_owned())]
            && parked(&db).await.is_empty()
    })
    .await;
    assert!(sim.wait_webhooks_idle(PATIENCE).await);
    app.stop().await;
    let diffs = all_differences(&db, &sim, Merges::Pointer, false).await;
    assert!(diffs.is_empty(), "{diffs:?}");
}

#[tokio::test]
async fn the_watermark_moves_past_a_record_parked_three_times() {
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 60, deals: 0, calls: 0, owners: 2, ..SimOptions::default() }).await.unwrap();
    let poller = poller(&db, client(&sim));
    let first = poller.run(ObjectKind::Contacts, Mode::Full, Trigger::Manual).await.unwrap();
    assert_eq!(first.status, RunStatus::Success, "{first:?}");
    let poison = live_ids(&sim, "contacts")[10].clone();
    refuse_contact(&db, &poison).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    plant(&sim, "contacts", &poison, &[("firstname", "stuck")]);
    let updated = sim.export_json("contacts").iter().find(|l| l["id"] == poison.as_str()).unwrap()["updatedAt"]
        .as_str()
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&chrono::Utc))
        .unwrap();
    let mut conn = db.conn().await;
    for attempt in 1..=3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let run = poller.run(ObjectKind::Contacts, Mode::Incremental, Trigger::Manual).await.unwrap();
        // The only record changed is refused: the run says so (`failed`, as every record failed).
        assert_eq!((run.status, run.records_processed, run.records_failed), (RunStatus::Failed, 1, 1), "{run:?}");
        assert_eq!(
            parked(&db).await.iter().map(|p| (p.1.clone(), p.3)).collect::<Vec<_>>(),
            [(poison.clone(), attempt)]
        );
        let mark = sync_state::get(&mut conn, "contacts").await.unwrap().unwrap().watermark.unwrap();
        let details: String = db
            .client()
            .await
            .query_one(
                "SELECT error_details::text FROM sync_logs WHERE id = $1::text::uuid",
                &[&run.run_id.to_string()],
            )
            .await
            .unwrap()
            .get(0);
        let details: Value = serde_json::from_str(&details).unwrap();
        if attempt < 3 {
            assert!(mark <= updated, "attempt {attempt}: the parked record still holds the watermark");
            assert_eq!(details["details"]["watermark_released_ids"], serde_json::json!([]), "{details}");
        } else {
            assert!(mark > updated, "attempt {attempt}: the watermark moved past the parked record");
            assert_eq!(details["details"]["watermark_released_ids"], serde_json::json!([poison]), "{details}");
        }
    }
    // It stays parked until it stores; a later read (here, the next run's overlap) clears it.
    accept_again(&db).await;
    let run = poller.run(ObjectKind::Contacts, Mode::Incremental, Trigger::Manual).await.unwrap();
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert!(parked(&db).await.is_empty());
    let diffs = all_differences(&db, &sim, Merges::Pointer, false).await;
    assert!(diffs.is_empty(), "{diffs:?}");
}

#[tokio::test]
async fn the_failures_endpoint_needs_the_admin_token() {
    let mut app = TestApp::builder().recording_control().admin_token(TOKEN).start().await;
    let mut conn = app.db.conn().await;
    let failure = NewFailure { hubspot_id: "42".into(), error: "refused".into(), updated_at: None };
    sync_failures::park(&mut conn, "deals", &[failure], Backoff::default()).await.unwrap();
    let url = format!("{}/api/sync/failures", app.base);
    assert_eq!(get_json(&url, None).await.0, 401);
    assert_eq!(get_json(&url, Some("wrong-token")).await.0, 401);
    let (status, list) = get_json(&url, Some(TOKEN)).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!((list[0]["object"].as_str(), list[0]["hubspot_id"].as_str()), (Some("deals"), Some("42")));
    assert_eq!((list[0]["error"].as_str(), list[0]["attempts"].as_i64()), (Some("refused"), Some(1)));
    let (status, filtered) = get_json(&format!("{url}?object=contacts"), Some(TOKEN)).await;
    assert_eq!((status, filtered), (200, serde_json::json!([])));
    assert_eq!(get_json(&format!("{url}?object=nope"), Some(TOKEN)).await.0, 400);
    let (_, status) = get_json(&format!("{}/api/sync/status", app.base), None).await;
    let deals = status.as_array().unwrap().iter().find(|r| r["sync_type"] == "deals").unwrap();
    assert_eq!(deals["parked"], 1, "{status}");
    app.stop().await;
}

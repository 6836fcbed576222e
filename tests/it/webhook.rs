//! `POST /webhooks/hubspot`: the documented status codes for every signature case, the v3
//! requirement and the replay rule (across machines and restarts), body limits, malformed bodies,
//! a full queue, and durable commits of what is written before the answer, against a running
//! server on a real database.
//! Requests are signed with the simulator's own signing code (independent of the server's).

use chrono::Utc;
use hubspot_sim::webhooks::sign;

use crate::harness::TestApp;
use crate::harness::app::AppBuilder;
use crate::harness::hooks::{SECRET, post, post_changes, post_signed, signed};
use crate::harness::{PATIENCE, eventually};

/// A server whose HubSpot is unreachable: ids stay queued (a window of an hour: nothing here
/// needs HubSpot), and the drain gives up after 1 s.
fn offline() -> AppBuilder {
    TestApp::builder().unreachable_hubspot().arg("--shutdown-grace", "1s").arg("--fetch-window", "1h")
}

fn only(headers: Vec<(&'static str, String)>, keep: &[&str]) -> Vec<(&'static str, String)> {
    headers.into_iter().filter(|(name, _)| keep.contains(name)).collect()
}

/// The v1 signature headers (what is left of a delivery stripped of its v3 headers).
const V1: [&str; 2] = ["X-HubSpot-Signature", "X-HubSpot-Signature-Version"];

/// A one-event batch, distinct for each `n`.
fn change(n: u64) -> Vec<u8> {
    format!(
        r#"[{{"eventId":{n},"subscriptionType":"contact.propertyChange","objectId":{n},"propertyName":"firstname","propertyValue":"x","attemptNumber":0}}]"#
    )
    .into_bytes()
}

/// POSTs `body` signed with v1 only, as some private-app setups send.
async fn post_v1(url: &str, body: &[u8]) -> u16 {
    post(url, body.to_vec(), &only(signed(SECRET, url, body, Utc::now().timestamp_millis()), &V1)).await
}

#[tokio::test]
async fn signature_matrix_gives_the_documented_codes() {
    let mut app = offline().start().await;
    let url = app.webhook_url.clone();
    let with_query = format!("{url}?portal=62515&tag=a%3Ab%2Cc");
    let body = r#"[{"eventId":1,"subscriptionType":"contact.propertyChange","objectId":501,"propertyName":"firstname","propertyValue":"Zoë Ångström – 東京"}]"#.as_bytes();
    let now = Utc::now().timestamp_millis();
    let v3 = ["X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"];
    let v1 = ["X-HubSpot-Signature", "X-HubSpot-Signature-Version"];

    // v1 only (no v3 headers at all), before any v3 was seen; then another body signed v2.
    assert_eq!(post(&url, body, &only(signed(SECRET, &url, body, now), &v1)).await, 204);
    let v2_body = change(2);
    let v2 = [
        ("X-HubSpot-Signature", sign::v2(SECRET, "POST", &sign::signed_uri(&url), &v2_body)),
        ("X-HubSpot-Signature-Version", "v2".to_owned()),
    ];
    assert_eq!(post(&url, v2_body, &v2).await, 204);
    // Valid v3 with a query string (signed decoded) and a non-ASCII body.
    assert_eq!(post(&with_query, body, &only(signed(SECRET, &with_query, body, now), &v3)).await, 204);
    // The older of two rotated secrets still works.
    assert_eq!(post(&url, body, &signed("old-secret", &url, body, now)).await, 204);
    // v3 has been seen: v1 only is refused from now on (HUBSPOT_REQUIRE_V3=auto).
    assert_eq!(post(&url, change(3), &only(signed(SECRET, &url, &change(3), now), &v1)).await, 401);
    // Forged: unknown secret, tampered body, wrong URI.
    assert_eq!(post(&url, body, &signed("someone-else", &url, body, now)).await, 401);
    let tampered = &signed(SECRET, &url, body, now);
    assert_eq!(post(&url, &b"[]"[..], tampered).await, 401);
    assert_eq!(post(&url, body, &signed(SECRET, &format!("{url}/"), body, now)).await, 401);
    // Stale and future, with a valid v1 next to them.
    assert_eq!(post(&url, body, &signed(SECRET, &url, body, now - 301_000)).await, 401);
    assert_eq!(post(&url, body, &signed(SECRET, &url, body, now + 301_000)).await, 401);
    // Missing headers.
    assert_eq!(post(&url, body, &[]).await, 401);
    assert_eq!(post(&url, body, &only(signed(SECRET, &url, body, now), &["X-HubSpot-Signature-v3"])).await, 401);
    app.stop().await;

    // HUBSPOT_REQUIRE_V3: v1 alone is refused, v3 accepted.
    let mut app = offline().db(app.db.clone()).arg("--hubspot-require-v3", "true").start().await;
    let url = app.webhook_url.clone();
    assert_eq!(post(&url, body, &only(signed(SECRET, &url, body, now), &v1)).await, 401);
    assert_eq!(post(&url, body, &signed(SECRET, &url, body, now)).await, 204);
    app.stop().await;
}

#[tokio::test]
async fn public_url_is_what_the_signature_covers() {
    let mut app = offline().arg("--public-url", "https://sync.example.com").start().await;
    let url = app.webhook_url.clone();
    let body = br#"[{"subscriptionType":"deal.creation","objectId":7}]"#;
    let now = Utc::now().timestamp_millis();
    let public = "https://sync.example.com/webhooks/hubspot";
    assert_eq!(post(&url, &body[..], &signed(SECRET, public, body, now)).await, 204);
    assert_eq!(post(&url, &body[..], &signed(SECRET, &url, body, now)).await, 401, "the internal URL was not signed");
    app.stop().await;
}

#[tokio::test]
async fn bodies_too_large_malformed_or_not_arrays_are_refused_and_unknown_events_accepted() {
    let mut app = offline().start().await;
    let url = app.webhook_url.clone();
    let now = Utc::now().timestamp_millis();
    let send = |body: Vec<u8>| {
        let headers = signed(SECRET, &url, &body, now);
        let url = url.clone();
        async move { post(&url, body, &headers).await }
    };
    let mut huge = b"[".to_vec();
    huge.extend(std::iter::repeat_n(b' ', 1024 * 1024));
    huge.push(b']');
    assert_eq!(send(huge).await, 413);
    assert_eq!(send(b"[{\"objectId\":".to_vec()).await, 400);
    assert_eq!(send(br#"{"objectId":1}"#.to_vec()).await, 400);
    assert_eq!(send(b"[1, 2]".to_vec()).await, 400);
    let unknown = br#"[{"subscriptionType":"conversation.newMessage","objectId":1},
        {"subscriptionType":"company.creation","objectId":2,"somethingNew":{"a":[1]}},
        {"subscriptionType":"object.creation","objectTypeId":"0-5","objectId":3}]"#;
    assert_eq!(send(unknown.to_vec()).await, 204, "events we do not keep are accepted, never refused");
    assert_eq!(send(b"[]".to_vec()).await, 204);
    app.stop().await;
}

#[tokio::test]
async fn a_full_queue_answers_503_and_ids_already_waiting_still_fit() {
    let mut app =
        TestApp::builder().unreachable_hubspot().arg("--fetch-window", "1h").arg("--queue-capacity", "2").start().await;
    let url = app.webhook_url.clone();
    assert_eq!(post_changes(&url, "contact", &[1, 2]).await, 204);
    assert_eq!(post_changes(&url, "deal", &[3]).await, 503, "a third id does not fit");
    assert_eq!(post_changes(&url, "contact", &[2, 1, 2]).await, 204, "waiting ids take no room");
    // Shutting down with HubSpot unreachable: the drain gives up after the grace; exit is clean.
    app.stop().await;
}

#[tokio::test]
async fn without_a_hubspot_token_webhooks_get_503() {
    let mut app = TestApp::builder().webhook_secrets(Some(SECRET)).with_schedules().start().await;
    assert_eq!(post_changes(&app.webhook_url, "contact", &[1]).await, 503);
    app.stop().await;
}

/// `HUBSPOT_REQUIRE_V3=auto` (the default): v1 only is accepted until a valid v3 has been seen,
/// then refused, on every machine sharing the database and after a restart; a v1-only repeat of
/// an accepted body is refused before and after.
#[tokio::test]
async fn auto_accepts_v1_only_until_v3_is_seen_on_any_machine_and_after_a_restart() {
    let mut one = offline().start().await;
    let mut two = offline().db(one.db.clone()).start().await;
    let (a, b) = (one.webhook_url.clone(), two.webhook_url.clone());
    assert_eq!(post_v1(&a, &change(1)).await, 204, "v1 only, before any v3");
    assert_eq!(post_v1(&a, &change(1)).await, 401, "the same v1-only body again: a replay");
    assert_eq!(post_v1(&b, &change(1)).await, 401, "and a replay to another machine");
    assert_eq!(post_v1(&b, &change(2)).await, 204, "a fresh body on the other machine");

    assert_eq!(post_signed(&a, change(3)).await, 204, "v1 + v3, as HubSpot signs");
    assert_eq!(post_v1(&a, &change(4)).await, 401, "v3 has been seen: v1 only is refused");
    let db = one.db.clone();
    eventually(PATIENCE, "the v3 signature recorded", || async {
        db.count("SELECT count(*) FROM webhook_v3_seen").await == 1
    })
    .await;
    assert_eq!(post_v1(&b, &change(5)).await, 401, "the other machine reads it from PostgreSQL");
    assert_eq!(post_signed(&b, change(6)).await, 204, "v3 is accepted everywhere");
    one.stop().await;
    two.stop().await;

    let mut again = offline().db(db).start().await;
    let url = again.webhook_url.clone();
    assert_eq!(post_v1(&url, &change(7)).await, 401, "still refused after a restart");
    assert_eq!(post_signed(&url, change(8)).await, 204);
    again.stop().await;
}

/// `HUBSPOT_REQUIRE_V3=false`: fresh v1-only bodies are accepted, but a v1-only repeat of an
/// accepted body is refused, also when the body was accepted with v3 (a captured delivery
/// stripped of its v3 headers) and after a restart. A v3 delivery sent again within its 5
/// minutes stays accepted.
#[tokio::test]
async fn require_v3_false_accepts_fresh_v1_bodies_and_refuses_repeats_of_accepted_ones() {
    let mut app = offline().arg("--hubspot-require-v3", "false").start().await;
    let url = app.webhook_url.clone();
    let now = Utc::now().timestamp_millis();
    let captured = change(1);
    let delivery = signed(SECRET, &url, &captured, now);
    assert_eq!(post(&url, captured.clone(), &delivery).await, 204);
    assert_eq!(post(&url, captured.clone(), &delivery).await, 204, "the same v3 delivery again within 5 minutes");
    assert_eq!(post(&url, captured.clone(), &only(delivery, &V1)).await, 401, "stripped to v1: a replay");
    assert_eq!(post_v1(&url, &change(2)).await, 204, "a fresh v1-only body, v3 seen or not");
    assert_eq!(post_v1(&url, &change(2)).await, 401, "its repeat");
    app.stop().await;

    let mut app = offline().db(app.db.clone()).arg("--hubspot-require-v3", "false").start().await;
    let url = app.webhook_url.clone();
    let delivery = signed(SECRET, &url, &captured, now);
    assert_eq!(post(&url, captured.clone(), &only(delivery.clone(), &V1)).await, 401, "kept across a restart");
    assert_eq!(post_v1(&url, &change(2)).await, 401, "kept across a restart");
    assert_eq!(post_v1(&url, &change(3)).await, 204);
    assert_eq!(post(&url, captured.clone(), &delivery).await, 204, "v3 within its 5 minutes, after a restart");
    app.stop().await;
}

/// Deletions, merges and privacy deletions are answered 204 only once committed with
/// `synchronous_commit = on`, while every session of the process and the database default have it
/// off: a trigger records the setting each write ran with, inside the webhook's transaction.
#[tokio::test]
async fn webhook_deletions_merges_and_privacy_deletions_commit_with_synchronous_commit_on() {
    let db = std::sync::Arc::new(crate::harness::TestDb::new().await);
    db.client()
        .await
        .batch_execute(
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET synchronous_commit = off', current_database()); END $$;
             CREATE TABLE commit_settings (tbl text, op text, setting text);
             CREATE FUNCTION record_commit_setting() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO commit_settings VALUES (TG_TABLE_NAME, TG_OP, current_setting('synchronous_commit'));
                 RETURN NULL;
             END $$;
             CREATE TRIGGER record_commit_setting AFTER UPDATE OR DELETE ON contacts
                 FOR EACH ROW EXECUTE FUNCTION record_commit_setting();
             CREATE TRIGGER record_commit_setting AFTER UPDATE OR DELETE ON deals
                 FOR EACH ROW EXECUTE FUNCTION record_commit_setting();
             INSERT INTO contacts (hubspot_contact_id, created_at, updated_at) VALUES
                 ('11', now() - interval '1 day', now() - interval '1 day');
             INSERT INTO deals (hubspot_deal_id, created_at, updated_at) VALUES
                 ('21', now() - interval '1 day', now() - interval '1 day'),
                 ('22', now() - interval '1 day', now() - interval '1 day');",
        )
        .await
        .unwrap();
    let mut app = offline().db(db.clone()).start().await;
    let show = db.client().await.query_one("SHOW synchronous_commit", &[]).await.unwrap();
    assert_eq!(show.get::<_, String>(0), "off", "a new session of this database has it off");

    let now = Utc::now().timestamp_millis();
    let batch = serde_json::json!([
        {"subscriptionType": "deal.deletion", "objectId": 21, "occurredAt": now},
        {"subscriptionType": "deal.merge", "objectId": 23, "primaryObjectId": 23, "mergedObjectIds": [22]},
        {"subscriptionType": "contact.privacyDeletion", "objectId": 11, "occurredAt": now},
    ]);
    assert_eq!(post_signed(&app.webhook_url, serde_json::to_vec(&batch).unwrap()).await, 204);
    let rows =
        db.client().await.query("SELECT tbl, op, setting FROM commit_settings ORDER BY 1, 2", &[]).await.unwrap();
    let seen: Vec<(String, String, String)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let on = |tbl: &str, op: &str| (tbl.to_owned(), op.to_owned(), "on".to_owned());
    assert_eq!(seen, [on("contacts", "DELETE"), on("deals", "UPDATE"), on("deals", "UPDATE")], "{seen:?}");
    app.stop().await;
}

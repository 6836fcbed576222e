//! `POST /webhooks/hubspot`: the documented status codes for every signature case, body limits,
//! malformed bodies and a full queue, against a running server on a real database.
//! Requests are signed with the simulator's own signing code (independent of the server's).

use chrono::Utc;

use crate::harness::TestApp;
use crate::harness::app::AppBuilder;
use crate::harness::hooks::{SECRET, post, post_changes, signed};

/// A server whose HubSpot is unreachable: ids stay queued (a window of an hour: nothing here
/// needs HubSpot), and the drain gives up after 1 s.
fn offline() -> AppBuilder {
    TestApp::builder().unreachable_hubspot().arg("--shutdown-grace", "1s").arg("--fetch-window", "1h")
}

fn only(headers: Vec<(&'static str, String)>, keep: &[&str]) -> Vec<(&'static str, String)> {
    headers.into_iter().filter(|(name, _)| keep.contains(name)).collect()
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

    // Valid v3 with a query string (signed decoded) and a non-ASCII body.
    assert_eq!(post(&with_query, body, &only(signed(SECRET, &with_query, body, now), &v3)).await, 204);
    // The older of two rotated secrets still works.
    assert_eq!(post(&url, body, &signed("old-secret", &url, body, now)).await, 204);
    // v1 only (no v3 headers at all).
    assert_eq!(post(&url, body, &only(signed(SECRET, &url, body, now), &v1)).await, 204);
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

//! `POST /webhooks/hubspot`: the documented status codes for every signature case, body limits,
//! malformed bodies and a full queue, against a running server on a real database.
//! Requests are signed with the simulator's own signing code (independent of the server's).

use std::time::Duration;

use chrono::Utc;
use clap::Parser;
use hubspot_sim::webhooks::sign;
use hubspot_sync::cli::{Cli, Command as Sub, ServeArgs};
use hubspot_sync::runtime::{self, RunningServer};

use crate::harness::TestDb;

pub const SECRET: &str = "new-secret";
const SECRETS: &str = "old-secret,new-secret";

pub const NEVER: &str = "0 0 1 1 *";
const QUIET_SCHEDULES: [&str; 5] =
    ["--schedule-contacts", "--schedule-deals", "--schedule-calls", "--schedule-owners", "--schedule-full"];

/// Records a successful run of every object, so `serve` starts no catch-up run of its own.
pub async fn quiet_poller(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "INSERT INTO sync_logs (sync_type, status, trigger, mode, completed_at, duration_ms) \
             SELECT k, 'success', 'manual', 'full', now(), 0 FROM unnest(ARRAY['contacts','deals','calls','owners']) k",
        )
        .await
        .unwrap();
}

/// `serve` settings for a test: port 0, no metrics port clash, the given HubSpot API base.
pub fn serve_args(db: &TestDb, api_base: &str, extra: &[&str]) -> ServeArgs {
    let db_url = db.url();
    let mut argv = vec![
        "hubspot-sync",
        "serve",
        "--database-url",
        &db_url,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--hubspot-access-token",
        "pat-test",
        "--hubspot-api-base",
        api_base,
        "--hubspot-client-secret",
        SECRETS,
    ];
    // The reconciliation poller stays out of these tests: no schedule fires during them.
    for schedule in QUIET_SCHEDULES {
        argv.extend_from_slice(&[schedule, NEVER]);
    }
    argv.extend_from_slice(extra);
    match Cli::try_parse_from(argv).unwrap().command {
        Sub::Serve(args) => args,
        other => panic!("parsed {other:?}"),
    }
}

/// A server whose HubSpot is unreachable: ids stay queued, and the drain gives up after 1 s.
fn offline(db: &TestDb, extra: &[&str]) -> ServeArgs {
    let mut all = vec!["--shutdown-grace", "1s"];
    all.extend_from_slice(extra);
    serve_args(db, "http://127.0.0.1:1", &all)
}

pub fn start(args: &ServeArgs) -> (RunningServer, String) {
    let server = runtime::start(args.options().unwrap()).unwrap();
    let url = format!("http://{}/webhooks/hubspot", server.addr);
    (server, url)
}

/// Signature headers HubSpot would send for `body` to `url` at `ts` (v1 and v3).
pub fn signed(secret: &str, url: &str, body: &[u8], ts: i64) -> Vec<(&'static str, String)> {
    let ts = ts.to_string();
    vec![
        ("X-HubSpot-Signature", sign::v1(secret, body)),
        ("X-HubSpot-Signature-Version", "v1".into()),
        ("X-HubSpot-Signature-v3", sign::v3(secret, "POST", &sign::signed_uri(url), body, &ts)),
        ("X-HubSpot-Request-Timestamp", ts),
    ]
}

pub async fn post(url: &str, body: impl Into<reqwest::Body>, headers: &[(&'static str, String)]) -> u16 {
    let client = reqwest::Client::new();
    let mut req = client.post(url).header("Content-Type", "application/json").body(body);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.unwrap().status().as_u16()
}

/// A signed batch of `contact.propertyChange` events for `ids`.
pub async fn post_changes(url: &str, kind: &str, ids: &[u64]) -> u16 {
    let events: Vec<_> = ids
        .iter()
        .map(|id| {
            serde_json::json!({"eventId": id, "subscriptionType": format!("{kind}.propertyChange"),
            "objectId": id, "occurredAt": Utc::now().timestamp_millis(), "propertyName": "firstname",
            "propertyValue": "x", "portalId": 62515, "appId": 54321, "attemptNumber": 0})
        })
        .collect();
    let body = serde_json::to_vec(&events).unwrap();
    post(url, body.clone(), &signed(SECRET, url, &body, Utc::now().timestamp_millis())).await
}

fn only(headers: Vec<(&'static str, String)>, keep: &[&str]) -> Vec<(&'static str, String)> {
    headers.into_iter().filter(|(name, _)| keep.contains(name)).collect()
}

#[tokio::test]
async fn signature_matrix_gives_the_documented_codes() {
    let db = TestDb::new().await;
    // A long window keeps the ids queued: nothing here needs HubSpot.
    let (server, url) = start(&offline(&db, &["--fetch-window", "1h"]));
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
    server.stop().await.unwrap();

    // HUBSPOT_REQUIRE_V3: v1 alone is refused, v3 accepted.
    let (server, url) = start(&offline(&db, &["--fetch-window", "1h", "--hubspot-require-v3", "true"]));
    assert_eq!(post(&url, body, &only(signed(SECRET, &url, body, now), &v1)).await, 401);
    assert_eq!(post(&url, body, &signed(SECRET, &url, body, now)).await, 204);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn public_url_is_what_the_signature_covers() {
    let db = TestDb::new().await;
    let args = offline(&db, &["--fetch-window", "1h", "--public-url", "https://sync.example.com"]);
    let (server, url) = start(&args);
    let body = br#"[{"subscriptionType":"deal.creation","objectId":7}]"#;
    let now = Utc::now().timestamp_millis();
    let public = "https://sync.example.com/webhooks/hubspot";
    assert_eq!(post(&url, &body[..], &signed(SECRET, public, body, now)).await, 204);
    assert_eq!(post(&url, &body[..], &signed(SECRET, &url, body, now)).await, 401, "the internal URL was not signed");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn bodies_too_large_malformed_or_not_arrays_are_refused_and_unknown_events_accepted() {
    let db = TestDb::new().await;
    let (server, url) = start(&offline(&db, &["--fetch-window", "1h"]));
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
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_full_queue_answers_503_and_ids_already_waiting_still_fit() {
    let db = TestDb::new().await;
    let args = serve_args(&db, "http://127.0.0.1:1", &["--fetch-window", "1h", "--queue-capacity", "2"]);
    let (server, url) = start(&args);
    assert_eq!(post_changes(&url, "contact", &[1, 2]).await, 204);
    assert_eq!(post_changes(&url, "deal", &[3]).await, 503, "a third id does not fit");
    assert_eq!(post_changes(&url, "contact", &[2, 1, 2]).await, 204, "waiting ids take no room");
    // Shutting down with HubSpot unreachable: the drain gives up after the grace; exit is clean.
    tokio::time::timeout(Duration::from_secs(60), server.stop()).await.unwrap().unwrap();
}

#[tokio::test]
async fn without_a_hubspot_token_webhooks_get_503() {
    let db = TestDb::new().await;
    let db_url = db.url();
    let cli = Cli::try_parse_from([
        "hubspot-sync",
        "serve",
        "--database-url",
        &db_url,
        "--bind",
        "127.0.0.1",
        "--port",
        "0",
        "--metrics-port",
        "0",
        "--hubspot-client-secret",
        SECRET,
    ])
    .unwrap();
    let Sub::Serve(args) = cli.command else { panic!("serve") };
    let (server, url) = start(&args);
    assert_eq!(post_changes(&url, "contact", &[1]).await, 503);
    server.stop().await.unwrap();
}

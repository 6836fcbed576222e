//! Webhooks as HubSpot sends them, signed with the simulator's own signing code (independent of
//! the server's).

use chrono::Utc;
use hubspot_sim::webhooks::sign;

/// The secret the test apps verify with (the newer of [`SECRETS`]), and the simulator signs with.
pub const SECRET: &str = "new-secret";
/// Two rotated secrets, as `HUBSPOT_CLIENT_SECRET` takes them.
pub const SECRETS: &str = "old-secret,new-secret";

/// A cron expression that never fires during a test (1 January, midnight).
pub const NEVER: &str = "0 0 1 1 *";
/// The schedule settings, as `serve` flags and as environment variables.
pub const SCHEDULES: [(&str, &str); 8] = [
    ("--schedule-contacts", "SCHEDULE_CONTACTS"),
    ("--schedule-deals", "SCHEDULE_DEALS"),
    ("--schedule-calls", "SCHEDULE_CALLS"),
    ("--schedule-owners", "SCHEDULE_OWNERS"),
    ("--schedule-full", "SCHEDULE_FULL"),
    ("--schedule-audit", "SCHEDULE_AUDIT"),
    ("--schedule-maintenance", "SCHEDULE_MAINTENANCE"),
    ("--schedule-associations", "SCHEDULE_ASSOCIATIONS"),
];

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

/// POSTs `body` with `headers` to `url`; the answer's status.
pub async fn post(url: &str, body: impl Into<reqwest::Body>, headers: &[(&'static str, String)]) -> u16 {
    let client = reqwest::Client::new();
    let mut req = client.post(url).header("Content-Type", "application/json").body(body);
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    req.send().await.unwrap().status().as_u16()
}

/// POSTs `body` signed now with [`SECRET`].
pub async fn post_signed(url: &str, body: Vec<u8>) -> u16 {
    let headers = signed(SECRET, url, &body, Utc::now().timestamp_millis());
    post(url, body, &headers).await
}

/// A signed batch of `<kind>.propertyChange` events for `ids`.
pub async fn post_changes(url: &str, kind: &str, ids: &[u64]) -> u16 {
    let events: Vec<_> = ids
        .iter()
        .map(|id| {
            serde_json::json!({"eventId": id, "subscriptionType": format!("{kind}.propertyChange"),
            "objectId": id, "occurredAt": Utc::now().timestamp_millis(), "propertyName": "firstname",
            "propertyValue": "x", "portalId": 62515, "appId": 54321, "attemptNumber": 0})
        })
        .collect();
    post_signed(url, serde_json::to_vec(&events).unwrap()).await
}

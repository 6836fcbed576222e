//! What the public port gives away to anyone (issue 14, items 1, 3 and 10): metric series cannot
//! be multiplied by what a client sends; the status API shows summaries only without the admin
//! token (ids and error texts need it); every response carries the security headers.

use std::collections::BTreeSet;

use hubspot_sim::SimOptions;
use rand::Rng as _;
use serde_json::Value;

use crate::harness::binary::ServeBinary;
use crate::harness::control::{ADMIN_TOKEN, finished};
use crate::harness::get_json;
use crate::harness::{PATIENCE, TestApp, TestDb, free_port, until_some};

const HTTP_REQUESTS: &str = "hubspot_sync_http_requests_total";

/// The `http_requests_total` series of a Prometheus text scrape, and how many series (lines that
/// are not comments) it has in all.
async fn scrape(metrics_port: u16) -> (Vec<String>, usize) {
    let text = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap().text().await.unwrap();
    let series: Vec<&str> = text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')).collect();
    let requests = series.iter().filter(|l| l.starts_with(HTTP_REQUESTS)).map(|l| (*l).to_owned()).collect();
    (requests, series.len())
}

/// A random HTTP method token none of the usual ones: `Z` and 1 to 24 capital letters, or (one
/// time in 50) 7,000 of them.
fn random_method(rng: &mut impl rand::Rng) -> String {
    let len = if rng.random_ratio(1, 50) { 7000 } else { rng.random_range(1..=24) };
    std::iter::once('Z').chain((0..len).map(|_| rng.random_range(b'A'..=b'Z') as char)).collect()
}

/// Series that may first appear while the test runs whatever it sends (gauges of background
/// tasks): far fewer than the 300 random methods would add.
const SLACK: usize = 20;

/// 300 requests with random methods to random paths (and some to real ones) leave the number of
/// metric series where it was, give or take the few a closed set of labels allows; before the
/// fix each method made a series of its own.
#[tokio::test]
async fn random_methods_and_paths_leave_the_metric_series_bounded() {
    let db = TestDb::new().await;
    let metrics_port = free_port();
    let serve =
        ServeBinary::new(&db.url()).quiet_schedules().env("METRICS_PORT", metrics_port.to_string()).spawn().await;
    let http = reqwest::Client::new();
    // Every closed-set method once, so their series exist before the count.
    for method in ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        http.request(method, serve.url("/healthz")).send().await.unwrap();
    }
    http.request(reqwest::Method::from_bytes(b"WARMUP").unwrap(), serve.url("/healthz")).send().await.unwrap();
    let (_, before) = scrape(metrics_port).await;

    let mut statuses = BTreeSet::new();
    for i in 0..300 {
        let (method, path) = {
            let mut rng = rand::rng();
            let path = match i % 3 {
                0 => format!("/{}/{}", uuid::Uuid::new_v4(), rng.random::<u32>()),
                1 => "/api/sync/status".to_owned(),
                _ => "/webhooks/hubspot".to_owned(),
            };
            (random_method(&mut rng), path)
        };
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        if let Ok(response) = http.request(method, serve.url(&path)).send().await {
            statuses.insert(response.status().as_u16());
        }
    }
    let (requests, after) = scrape(metrics_port).await;
    println!("metric series: {before} before, {after} after 300 random requests (answered {statuses:?})");
    let allowed = ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "other"];
    for line in &requests {
        let method = line.split("method=\"").nth(1).and_then(|rest| rest.split('"').next()).unwrap_or_default();
        assert!(allowed.contains(&method), "a method label outside the closed set: {:.200}", line);
    }
    // The random requests can add only `other` with each status they were answered.
    assert!(
        after <= before + statuses.len() + SLACK,
        "{before} series before, {after} after:\n{}",
        requests.join("\n")
    );
    serve.kill().await;
}

/// Every string anywhere in `value`.
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => map.iter().for_each(|(k, v)| {
            out.push(k.clone());
            strings(v, out);
        }),
        _ => {}
    }
}

/// A real run that fails on one deal (PostgreSQL refuses it with a distinctive message), a run
/// stopped by a HubSpot error body and an audit that lists an id: without the admin token the
/// status API shows their status and counts but no id and no error text; with it, all of them.
#[tokio::test]
async fn without_the_admin_token_the_status_api_shows_no_ids_or_error_texts() {
    const PG_ERROR: &str = "tripwire-5d2c refused by the database";
    const HUBSPOT_BODY: &str = "corr-9f1e77";
    let mut app = TestApp::builder()
        .sim(SimOptions { port: 0, contacts: 10, deals: 12, calls: 5, owners: 2, ..SimOptions::default() })
        .quiet_poller()
        .admin_token(ADMIN_TOKEN)
        .start()
        .await;
    // A deal id has ten digits: no time or count can contain it by chance.
    let poison = app.sim().export_json("deals")[3]["id"].as_str().unwrap().to_owned();
    app.db
        .client()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.hubspot_deal_id = '{poison}' THEN RAISE EXCEPTION '{PG_ERROR}'; END IF; RETURN NEW; END $$; \
             CREATE TRIGGER refuse BEFORE INSERT OR UPDATE ON deals FOR EACH ROW EXECUTE FUNCTION refuse(); \
             INSERT INTO sync_logs (sync_type, status, trigger, mode, completed_at, duration_ms, \
                                    records_processed, records_failed, error_details) \
             VALUES ('calls', 'partial', 'schedule', 'audit', now(), 5, 5, 1, \
                     '{{\"missing\": 1, \"drift_left\": 1, \"missing_ids\": [\"{poison}\"]}}');"
        ))
        .await
        .unwrap();
    let fatal = format!("HubSpot answered 502: {{\"correlationId\":\"{HUBSPOT_BODY}\"}}");
    finished(&app.db, "contacts", 0, 0, Some(&fatal)).await;
    let forced = reqwest::Client::new()
        .post(app.url("/api/sync/deals?full=true"))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status().as_u16(), 202);
    let run_id = forced.json::<Value>().await.unwrap()["run_id"].as_str().unwrap().to_owned();
    let logs = app.url("/api/sync/logs?limit=50");
    let run = until_some(PATIENCE, "the deals run did not finish", || async {
        let (_, runs) = get_json(&logs, Some(ADMIN_TOKEN)).await;
        runs.as_array().unwrap().iter().find(|r| r["id"] == run_id.as_str() && r["status"] != "running").cloned()
    })
    .await;
    assert_eq!((run["status"].as_str(), run["records_failed"].as_i64()), (Some("partial"), Some(1)), "{run}");

    let secrets = [PG_ERROR, HUBSPOT_BODY, poison.as_str(), run_id.as_str()];
    for path in ["/api/sync/logs?limit=50", "/api/sync/logs?object=deals", "/api/sync/status"] {
        let (status, body) = get_json(&app.url(path), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        let raw = body.to_string();
        for secret in secrets {
            assert!(!raw.contains(secret), "{path} shows {secret:?} without the token: {raw}");
        }
        let mut shown = Vec::new();
        strings(&body, &mut shown);
        for text in &shown {
            assert!(uuid::Uuid::parse_str(text).is_err(), "{path} shows an id ({text}) without the token: {raw}");
        }
        assert!(!shown.iter().any(|k| k == "error_details"), "{path}: {raw}");
    }
    // The summaries are all there.
    let (_, runs) = get_json(&app.url("/api/sync/logs?object=deals"), None).await;
    assert_eq!((runs[0]["status"].as_str(), runs[0]["records_failed"].as_i64()), (Some("partial"), Some(1)));
    assert!(runs[0]["records_processed"].as_i64().unwrap() >= 12 && runs[0]["duration_ms"].is_i64(), "{runs}");
    let (_, status) = get_json(&app.url("/api/sync/status"), None).await;
    assert_eq!((status[0]["status"].as_str(), status[1]["status"].as_str()), (Some("failed"), Some("partial")));
    assert_eq!(status[1]["records_failed"], 1, "{status}");
    assert_eq!(status[2]["last_audit"]["drift_left"], 1, "{status}");
    assert_eq!(get_json(&app.url("/api/sync/failures"), None).await.0, 401);
    assert_eq!(get_json(&logs, Some("not-the-token")).await.0, 401, "a wrong token is refused, not read as none");

    // With the token: the ids and the texts.
    let (_, runs) = get_json(&logs, Some(ADMIN_TOKEN)).await;
    let raw = runs.to_string();
    for secret in secrets {
        assert!(raw.contains(secret), "the logs lack {secret:?} with the token: {raw}");
    }
    let (_, status) = get_json(&app.url("/api/sync/status"), Some(ADMIN_TOKEN)).await;
    assert!(uuid::Uuid::parse_str(status[2]["last_audit"]["run_id"].as_str().unwrap()).is_ok(), "{status}");
    app.stop().await;
}

/// The page, the API, a probe, a webhook refusal, a 404 and a 405 all carry the security headers;
/// the page's policy allows only its own (hashed) script and style.
#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let mut app = TestApp::builder().recording_control().start().await;
    let http = reqwest::Client::new();
    let requests = [
        ("/", http.get(app.url("/"))),
        ("/api/sync/status", http.get(app.url("/api/sync/status"))),
        ("/api/sync/logs?limit=abc", http.get(app.url("/api/sync/logs?limit=abc"))),
        ("/healthz", http.get(app.url("/healthz"))),
        ("/readyz", http.get(app.url("/readyz"))),
        ("/no/such/page", http.get(app.url("/no/such/page"))),
        ("GET /webhooks/hubspot", http.get(app.url("/webhooks/hubspot"))),
        ("POST /webhooks/hubspot", http.post(app.url("/webhooks/hubspot")).body("[]")),
        ("POST /api/sync/contacts", http.post(app.url("/api/sync/contacts"))),
    ];
    let mut statuses = Vec::new();
    for (what, request) in requests {
        let response = request.send().await.unwrap();
        statuses.push(response.status().as_u16());
        let h = response.headers();
        let header = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let csp = header("content-security-policy");
        assert!(csp.contains("frame-ancestors 'none'"), "{what}: {csp:?}");
        assert!(csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"), "{what}: {csp:?}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{what}");
        assert_eq!(header("x-frame-options"), "DENY", "{what}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{what}");
        if what == "/" {
            assert!(csp.contains("script-src 'sha256-") && csp.contains("style-src 'sha256-"), "{csp}");
        }
    }
    assert_eq!(statuses, [200, 200, 400, 200, 200, 404, 405, 401, 401], "the answers themselves are unchanged");
    app.stop().await;
}

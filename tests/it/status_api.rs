//! The status API, its OpenAPI document, the admin guard, request ids and `/metrics`, against a
//! real server on port 0 and a real database. Force sync goes to [`RecordingControl`], which
//! records a `running` row as the poller would (HubSpot is not involved).

use chrono::{DateTime, Utc};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::runtime::Background;
use hubspot_sync::store::sync_logs::{self, RunMode, RunTrigger};
use hubspot_sync::webhook::stats::Rejection;

use crate::harness::binary::ServeBinary;
use crate::harness::control::{ADMIN_TOKEN, finished, next_run_at};
use crate::harness::{PATIENCE, TestApp, TestDb, until_some};

async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(url).await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(serde_json::Value::Null))
}

/// `get_json` with the admin token: run ids and error details are shown.
async fn get_admin(url: &str) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new().get(url).bearer_auth(ADMIN_TOKEN).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn status_has_one_element_per_object_with_live_figures() {
    let mut app = TestApp::builder().recording_control().start().await;
    finished(&app.db, "contacts", 120, 0, None).await;
    finished(&app.db, "deals", 10, 0, Some("HubSpot answered 500")).await;
    let mut conn = app.db.conn().await;
    sync_logs::start_run(&mut conn, "calls", RunTrigger::Manual, RunMode::Full).await.unwrap();
    app.ops.webhooks.accepted(3);
    app.ops.webhooks.accepted(1);
    app.ops.webhooks.rejected(Rejection::Signature);

    let (status, body) = get_json(&format!("{}/api/sync/status", app.base)).await;
    assert_eq!(status, 200);
    let rows = body.as_array().unwrap();
    let types: Vec<_> = rows.iter().map(|r| r["sync_type"].as_str().unwrap()).collect();
    assert_eq!(types, ["contacts", "deals", "calls", "owners", "associations"], "the association sweep last");
    let statuses: Vec<_> = rows.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["success", "failed", "running", "never", "never"]);
    assert_eq!(rows[4]["mode"], "sweep");
    assert_eq!(rows[0]["records_processed"], 120);
    assert!(rows[0]["duration_ms"].is_i64() && rows[0]["last_sync_time"].is_string());
    assert!(rows[3]["last_sync_time"].is_null() && rows[3]["duration_ms"].is_null());
    assert_eq!(rows[0]["next_run"].as_str().map(|s| s.parse::<DateTime<Utc>>().unwrap()), Some(next_run_at()));
    assert!(rows[3]["next_run"].is_null());
    let live = &rows[2]["live"];
    assert_eq!(live["queue_depth"], 7);
    assert_eq!(live["webhooks_received_last_hour"], 3);
    assert_eq!(live["webhooks_rejected_last_hour"], 1);
    assert!(live["last_webhook_time"].is_string());
    app.stop().await;
}

#[tokio::test]
async fn logs_filter_by_object_and_validate_their_input() {
    let mut app = TestApp::builder().recording_control().admin_token(ADMIN_TOKEN).start().await;
    let first = finished(&app.db, "contacts", 1, 0, None).await;
    let second = finished(&app.db, "contacts", 2, 1, None).await;
    finished(&app.db, "deals", 3, 0, None).await;

    let (status, body) = get_admin(&format!("{}/api/sync/logs?object=contacts", app.base)).await;
    assert_eq!(status, 200);
    let ids: Vec<_> = body.as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids, [second.to_string(), first.to_string()], "newest first, contacts only");
    assert_eq!(body[0]["status"], "partial");
    assert_eq!(body[0]["trigger"], "schedule");

    let (_, all) = get_json(&format!("{}/api/sync/logs?limit=2", app.base)).await;
    assert_eq!(all.as_array().unwrap().len(), 2);
    for bad in ["object=companies", "object=", "limit=0", "limit=201", "limit=abc", "limit=-5"] {
        let (status, body) = get_json(&format!("{}/api/sync/logs?{bad}", app.base)).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn force_sync_needs_the_admin_token() {
    let mut app = TestApp::builder().recording_control().admin_token(ADMIN_TOKEN).start().await;
    let http = reqwest::Client::new();
    let url = format!("{}/api/sync/contacts", app.base);
    for auth in [None, Some("Bearer wrong"), Some(&*format!("Basic {ADMIN_TOKEN}")), Some("Bearer ")] {
        let mut request = http.post(&url);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    assert!(app.control.as_ref().unwrap().calls.lock().unwrap().is_empty(), "nothing started without the token");

    let bearer = format!("Bearer {ADMIN_TOKEN}");
    let response = http.post(&url).header("Authorization", &bearer).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let body: serde_json::Value = response.json().await.unwrap();
    let (kind, mode, trigger, id) = app.next_started().await;
    assert_eq!((kind, mode, trigger), (ObjectKind::Contacts, RunMode::Incremental, RunTrigger::Manual));
    assert_eq!(body["run_id"], id.to_string());

    let full = http.post(format!("{}/api/sync/deals?full=true", app.base)).header("Authorization", &bearer);
    assert_eq!(full.send().await.unwrap().status().as_u16(), 202);
    assert_eq!(app.next_started().await.1, RunMode::Full);

    let unknown = http.post(format!("{}/api/sync/companies", app.base)).header("Authorization", &bearer);
    assert_eq!(unknown.send().await.unwrap().status().as_u16(), 404);
    let unknown_anon = http.post(format!("{}/api/sync/companies", app.base)).send().await.unwrap();
    assert_eq!(unknown_anon.status().as_u16(), 401, "the guard answers before the path is looked at");

    let (_, logs) = get_admin(&format!("{}/api/sync/logs", app.base)).await;
    assert!(logs.as_array().unwrap().iter().any(|r| r["id"] == body["run_id"] && r["trigger"] == "manual"));
    app.stop().await;
}

#[tokio::test]
async fn without_admin_token_configured_every_admin_request_is_refused() {
    let mut app = TestApp::builder().recording_control().start().await;
    let response = reqwest::Client::new()
        .post(format!("{}/api/sync/contacts", app.base))
        .header("Authorization", "Bearer anything")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    app.stop().await;
}

#[tokio::test]
async fn openapi_document_covers_the_routes_it_describes() {
    let mut app = TestApp::builder().recording_control().admin_token(ADMIN_TOKEN).start().await;
    let (status, doc) = get_json(&format!("{}/api/openapi.json", app.base)).await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut listed: Vec<_> = paths.keys().cloned().collect();
    listed.sort();
    assert_eq!(
        listed,
        [
            "/api/accounts",
            "/api/accounts/{portal_id}",
            "/api/config/reload",
            "/api/sync/accounts",
            "/api/sync/failures",
            "/api/sync/history",
            "/api/sync/logs",
            "/api/sync/status",
            "/api/sync/{object}"
        ]
    );
    assert!(doc["components"]["securitySchemes"]["admin_token"].is_object());
    assert_refs_resolve(&doc, &doc);
    // Every documented operation is routed: none answers 404/405 with valid input.
    let http = reqwest::Client::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            // Portal 0: the default account (a removal of it is refused, 409: routed all the same).
            let url = format!("{}{}", app.base, path.replace("{object}", "owners").replace("{portal_id}", "0"));
            let request = match method.as_str() {
                "get" => http.get(&url),
                "post" => http.post(&url).header("Authorization", format!("Bearer {ADMIN_TOKEN}")),
                "delete" => http.delete(&url).header("Authorization", format!("Bearer {ADMIN_TOKEN}")),
                other => panic!("unexpected method {other}"),
            };
            let status = request.send().await.unwrap().status().as_u16();
            assert!(status != 404 && status != 405 && status < 500, "{method} {path}: {status}");
        }
    }
    app.stop().await;
}

/// Every `$ref` in the document points at something that exists.
fn assert_refs_resolve(doc: &serde_json::Value, node: &serde_json::Value) {
    match node {
        serde_json::Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(|r| r.as_str()) {
                let pointer = reference.strip_prefix('#').expect("local reference");
                assert!(doc.pointer(pointer).is_some(), "dangling reference {reference}");
            }
            map.values().for_each(|v| assert_refs_resolve(doc, v));
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| assert_refs_resolve(doc, v)),
        _ => {}
    }
}

#[tokio::test]
async fn request_ids_are_kept_or_made_and_echoed() {
    let mut app = TestApp::builder().recording_control().start().await;
    let http = reqwest::Client::new();
    let kept = http.get(format!("{}/healthz", app.base)).header("X-Request-Id", "abc-123").send().await.unwrap();
    assert_eq!(kept.headers()["x-request-id"], "abc-123");
    let made = http.get(format!("{}/healthz", app.base)).header("X-Request-Id", "bad id\t").send().await.unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    app.stop().await;
}

#[tokio::test]
async fn status_page_is_served_with_its_assets_inline() {
    let mut app = TestApp::builder().recording_control().start().await;
    let response = reqwest::get(format!("{}/", app.base)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = response.text().await.unwrap();
    assert!(html.contains("name=\"viewport\"") && html.contains("const REFRESH_MS = 30000;"));
    assert!(!html.contains("<script src") && !html.contains("<link rel=\"stylesheet\""), "no external assets");
    app.stop().await;
}

#[tokio::test]
async fn metrics_are_served_on_their_own_port() {
    let mut app = TestApp::builder()
        .recording_control()
        .background(|_| Background { metrics_bind: Some("127.0.0.1:0".parse().unwrap()), ..Background::default() })
        .start()
        .await;
    app.ops.webhooks.accepted(2);
    app.ops.webhooks.rejected(Rejection::Signature);
    metrics::gauge!(hubspot_sync::metric::HUBSPOT_BUDGET_REMAINING).set(42.0);
    let addr = app.metrics_addr.expect("metrics bound");
    assert_ne!(addr, app.addr);
    let text = reqwest::get(format!("http://{addr}/metrics")).await.unwrap().text().await.unwrap();
    for needle in [
        "hubspot_sync_webhook_events_received_total",
        "hubspot_sync_webhook_requests_rejected_total{reason=\"signature\"}",
        "hubspot_sync_queue_depth{account=\"default\"} 7",
        "hubspot_sync_hubspot_budget_remaining{account=\"default\"} 42",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    let public = reqwest::get(format!("{}/metrics", app.base)).await.unwrap();
    assert_eq!(public.status().as_u16(), 404, "metrics stay off the public port");
    app.stop().await;
}

/// Runs the `serve` binary with every secret set, exercises the operations surface (admin
/// requests with right and wrong tokens, a SQL trigger, an alert that cannot be delivered, a
/// metrics scrape), stops it, and checks its JSON logs: no secret and no seeded e-mail address in
/// any line, and every access line carries a request id.
#[tokio::test]
async fn serve_logs_are_json_with_request_ids_and_hold_no_secrets() {
    const ACCESS_TOKEN: &str = "pat-na1-access-token-7d1e";
    const CLIENT_SECRET: &str = "client-secret-b1946ac9";
    const DB_PASSWORD: &str = "db-password-e3b0c442";
    const ALERT_SECRET: &str = "alert-hook-secret-0a3f";
    const EMAIL: &str = "jane.doe.seeded@example.com";
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO contacts (hubspot_contact_id, email, first_name, created_at, updated_at) \
             VALUES ('901', '{EMAIL}', 'Jane', now(), now())"
        ))
        .await
        .unwrap();
    finished(&db, "deals", 5, 0, Some("HubSpot answered 500")).await;
    let sim =
        hubspot_sim::Sim::start(hubspot_sim::SimOptions { port: 0, contacts: 40, ..Default::default() }).await.unwrap();
    let metrics_port = crate::harness::free_port();
    let mut url = url::Url::parse(&db.url()).unwrap();
    url.set_password(Some(DB_PASSWORD)).unwrap();
    let serve = ServeBinary::new(url.as_str())
        .env("HUBSPOT_ACCESS_TOKEN", ACCESS_TOKEN)
        .env("HUBSPOT_CLIENT_SECRET", CLIENT_SECRET)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("ALERT_WEBHOOK_URL", format!("http://127.0.0.1:1/services/{ALERT_SECRET}"))
        .env("HUBSPOT_API_BASE", sim.url())
        .env("METRICS_PORT", metrics_port.to_string())
        .env("RUST_LOG", "info,hubspot_sync=debug")
        .spawn()
        .await;
    let base = serve.base.clone();
    let http = reqwest::Client::new();
    for auth in [format!("Bearer {ADMIN_TOKEN}x"), format!("Bearer {CLIENT_SECRET}")] {
        http.post(format!("{base}/api/sync/contacts")).header("Authorization", auth).send().await.unwrap();
    }
    // A full contacts run through the real poller, against the simulator.
    let forced = http
        .post(format!("{base}/api/sync/contacts?full=true"))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(forced.status().as_u16(), 202);
    let run_id = forced.json::<serde_json::Value>().await.unwrap()["run_id"].as_str().unwrap().to_owned();
    let run = wait_for_run(&base, &run_id).await;
    assert_eq!(run["status"], "success", "{run}");
    let emails: Vec<String> = reqwest::get(format!("{}/_sim/export/contacts", sim.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|c| c["properties"]["email"].as_str().map(str::to_owned))
        .collect();
    assert!(emails.len() >= 40, "the simulator seeds e-mail addresses");
    http.get(format!("{base}/api/sync/status")).send().await.unwrap();
    http.get(format!("{base}/api/sync/logs?object=contacts")).send().await.unwrap();
    http.get(format!("{base}/")).send().await.unwrap();
    client.execute("SELECT trigger_hubspot_sync('all')", &[]).await.unwrap();
    let scrape = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics")).await.unwrap();
    assert_eq!(scrape.status().as_u16(), 200);
    let text = scrape.text().await.unwrap();
    for needle in [
        "hubspot_sync_http_requests_total",
        "hubspot_sync_objects_fetched_total{object=\"contacts\",account=\"default\"}",
        "hubspot_sync_objects_upserted_total{object=\"contacts\",account=\"default\"}",
        "hubspot_sync_hubspot_requests_total{endpoint=\"contacts.list\",status=\"200\",account=\"default\"}",
        "hubspot_sync_hubspot_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // Let the first alert check and the NOTIFY be handled (more log lines to search; the
    // assertions below hold whatever the server managed to log meanwhile).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    serve.signal("-TERM");
    let (code, logs) = serve.exit(PATIENCE).await;
    assert_eq!(code, Some(0), "{logs}");
    for secret in [ADMIN_TOKEN, ACCESS_TOKEN, CLIENT_SECRET, DB_PASSWORD, ALERT_SECRET, EMAIL] {
        assert!(!logs.contains(secret), "{secret} appears in the logs:\n{logs}");
    }
    for email in &emails {
        assert!(!logs.contains(email.as_str()), "{email} appears in the logs");
    }
    sim.shutdown().await;
    let lines: Vec<serde_json::Value> =
        logs.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let access: Vec<_> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert!(access.len() >= 6, "{logs}");
    for line in access {
        let id = line["request_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty() && line["span"]["request_id"] == id, "{line}");
    }
}

/// Polls `/api/sync/logs` until the run is finished (a hang guard, not a timing assertion).
async fn wait_for_run(base: &str, run_id: &str) -> serde_json::Value {
    until_some(PATIENCE, &format!("run {run_id} did not finish"), || async {
        let (_, runs) = get_admin(&format!("{base}/api/sync/logs?limit=50")).await;
        runs.as_array().unwrap().iter().find(|r| r["id"] == run_id && r["status"] != "running").cloned()
    })
    .await
}

/// End to end with the real poller: force sync through the API runs against the simulator, the
/// run is recorded as `manual` and succeeds, and the status API shows it.
#[tokio::test]
async fn force_sync_runs_the_real_poller_against_the_simulator() {
    let mut app = TestApp::builder()
        .sim(hubspot_sim::SimOptions { port: 0, contacts: 25, ..Default::default() })
        .with_schedules()
        .webhook_secrets(None)
        .admin_token(ADMIN_TOKEN)
        .background(|db| Background { listen: Some(db.target.clone()), ..Background::default() })
        .start()
        .await;
    let base = app.base.clone();
    let response = reqwest::Client::new()
        .post(format!("{base}/api/sync/contacts?full=true"))
        .header("Authorization", format!("Bearer {ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let run_id = response.json::<serde_json::Value>().await.unwrap()["run_id"].as_str().unwrap().to_owned();
    let run = wait_for_run(&base, &run_id).await;
    assert_eq!(
        (run["status"].as_str(), run["trigger"].as_str(), run["mode"].as_str()),
        (Some("success"), Some("manual"), Some("full"))
    );
    assert!(run["records_processed"].as_i64().unwrap() >= 25, "{run}");
    let (_, status) = get_json(&format!("{base}/api/sync/status")).await;
    assert_eq!(status[0]["sync_type"], "contacts");
    // The start-up run and follow-up runs may finish after the forced one (with nothing left to
    // fetch), so the latest contacts row is any good run, or one still running.
    assert!(["success", "running"].contains(&status[0]["status"].as_str().unwrap()), "{status}");
    assert!(status[0]["last_sync_time"].is_string(), "{status}");
    let stored = app.db.count("SELECT count(*) FROM contacts").await;
    assert!(stored >= 25);
    app.stop().await;
    app.sim.take().unwrap().shutdown().await;
}

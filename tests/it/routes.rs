//! Paths and methods outside the contract get a clear answer: a JSON 404 that says where the API
//! is, and 405 (with `Allow`) for a method a path does not take, such as a browser's GET on the
//! webhook URL.

use crate::harness::TestDb;
use crate::harness::binary::ServeBinary;

#[tokio::test]
async fn unknown_paths_and_methods_get_clear_answers() {
    let db = TestDb::new().await;
    let serve = ServeBinary::new(&db.url()).spawn().await;

    let get_webhook = reqwest::get(serve.url("/webhooks/hubspot")).await.unwrap();
    assert_eq!(get_webhook.status().as_u16(), 405, "GET on the webhook path");
    let allow = get_webhook.headers().get("allow").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    assert!(allow.contains("POST"), "Allow names POST: {allow:?}");

    let missing = reqwest::get(serve.url("/no/such/page")).await.unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    let error = body["error"].as_str().unwrap_or_default();
    assert!(error.contains("/api/openapi.json"), "the 404 says where the API is: {body}");

    serve.kill().await;
}

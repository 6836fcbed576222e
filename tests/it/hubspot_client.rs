//! The HubSpot client against `hubspot-sim`: batch reads (split at 100, 207 not-found), property
//! discovery, both API path families, no 414 with long property lists, the request budget in
//! every rolling window, 429 pauses, retries of 5xx and no retries of 4xx.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hubspot_sim::{FaultConfig, Sim, SimHandle, SimOptions};
use hubspot_sync::config::{ApiVersion, HubSpotSettings, Secret};
use hubspot_sync::hubspot::{ClientOptions, HubSpot, HubSpotError, Lane, SearchWindow};
use hubspot_sync::objects::ObjectKind;

use crate::harness::hubspot::{client, fast_options, settings};
use crate::harness::{PATIENCE, eventually};

async fn small_sim() -> SimHandle {
    Sim::start(SimOptions { contacts: 250, deals: 60, calls: 80, owners: 6, workers: 2, ..SimOptions::default() })
        .await
        .unwrap()
}

fn stat(sim: &SimHandle, key: &str) -> u64 {
    sim.stats()[key].as_u64().unwrap_or_else(|| panic!("no {key} in {}", sim.stats()))
}

fn live_ids(sim: &SimHandle, object: &str) -> Vec<String> {
    sim.export_json(object)
        .into_iter()
        .filter(|l| l["archived"] == false)
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn batch_read_splits_at_100_and_reports_what_is_missing() {
    let sim = small_sim().await;
    let hubspot = client(&sim);
    let mut ids: Vec<String> = live_ids(&sim, "contacts").into_iter().take(150).collect();
    ids.push("999999999".into());
    ids.push(ids[0].clone()); // duplicates are read once
    let read = hubspot.batch_read(ObjectKind::Contacts, &ids, Lane::Realtime).await.unwrap();
    assert_eq!(read.records.len(), 150);
    assert_eq!(read.not_found, vec!["999999999".to_owned()]);
    assert!(read.invalid.is_empty());
    let props = &read.records[0].properties;
    for name in ["email", "hs_lead_status", "membership_tier", "nps_score", "hs_merged_object_ids"] {
        assert!(props.contains_key(name), "discovered property {name} missing: {props:?}");
    }
    assert_eq!(sim.stats()["operations"]["contacts.batch_read"], 2, "150 ids take two calls");
    assert_eq!(sim.stats()["operations"]["contacts.properties"], 1);
}

#[tokio::test]
async fn dated_api_versions_use_their_paths() {
    let sim = small_sim().await;
    let dated = ApiVersion::Dated("2026-03".into());
    let hubspot = HubSpot::with_options(&settings(&sim, 1000, dated), fast_options(Duration::from_secs(10))).unwrap();
    let page = hubspot.list_page(ObjectKind::Deals, None, false, Lane::Background).await.unwrap();
    assert_eq!(page.records.len(), live_ids(&sim, "deals").len());
    let owners = hubspot.owners_page(None, false, Lane::Background).await.unwrap();
    assert!(!owners.records.is_empty());
    let requests = sim.stats()["requests"].to_string();
    assert!(requests.contains("/crm/objects/2026-03/"), "{requests}");
    assert!(!requests.contains("/crm/v3/"), "{requests}");
}

#[tokio::test]
async fn long_property_lists_never_give_414() {
    let sim = small_sim().await;
    let mut names: Vec<String> = ["email", "firstname", "lastname", "lastmodifieddate", "hs_object_id"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    names.extend((0..600).map(|i| format!("custom_property_with_a_long_name_{i:04}")));
    let options = ClientOptions {
        properties: HashMap::from([(ObjectKind::Contacts, names)]),
        ..fast_options(Duration::from_secs(10))
    };
    let hubspot = HubSpot::with_options(&settings(&sim, 100_000, ApiVersion::V3), options).unwrap();
    let page = hubspot.list_page(ObjectKind::Contacts, None, false, Lane::Background).await.unwrap();
    assert_eq!(page.records.len(), 100);
    assert!(page.records.iter().all(|r| r.properties.contains_key("email")), "the full records were read");
    let window = SearchWindow { from_ms: 0, to_ms: chrono::Utc::now().timestamp_millis(), after_id: None };
    let found = hubspot.search_modified(ObjectKind::Contacts, &window, Lane::Background).await.unwrap();
    assert_eq!(found.records.len(), 200);
    assert!(found.records.iter().all(|r| r.properties.contains_key("firstname")));
    assert_eq!(stat(&sim, "responses_414"), 0);
    assert_eq!(sim.stats()["operations"]["contacts.search"], 1);
}

#[tokio::test]
async fn no_rolling_window_carries_more_than_the_budget() {
    // The simulator's window is 1 s here, and the client's too: 8 requests per second.
    let sim = Sim::start(SimOptions {
        contacts: 50,
        deals: 0,
        calls: 0,
        owners: 3,
        requests_per_10s: 8,
        window_ms: 1000,
        workers: 2,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let options = ClientOptions { window_margin: Duration::from_millis(20), ..fast_options(Duration::from_secs(1)) };
    let hubspot = HubSpot::with_options(&settings(&sim, 8, ApiVersion::V3), options).unwrap();
    let callers = (0..4).map(|i| {
        let hubspot = hubspot.clone();
        let lane = if i % 2 == 0 { Lane::Realtime } else { Lane::Background };
        tokio::spawn(async move {
            for _ in 0..5 {
                hubspot.owners_page(None, false, lane).await.unwrap();
            }
        })
    });
    for caller in callers {
        caller.await.unwrap();
    }
    assert_eq!(stat(&sim, "requests_total"), 20);
    assert_eq!(stat(&sim, "responses_429"), 0, "the budget kept every request under the limit");
    assert!(stat(&sim, "max_requests_in_window") <= 8, "{}", sim.stats());
}

#[tokio::test]
async fn a_429_pauses_every_caller_for_retry_after() {
    let sim = small_sim().await;
    let hubspot = client(&sim);
    sim.set_faults(FaultConfig { status: 429, retry_after: Some(1), fail_next: 1, ..FaultConfig::default() }).unwrap();
    let started = Instant::now();
    let first = hubspot.owners_page(None, false, Lane::Background);
    let second = async {
        // Sent once the first one got its 429 (however long that takes): it must wait out the
        // same pause.
        eventually(PATIENCE, "the first request met the 429", || async { stat(&sim, "responses_429") == 1 }).await;
        hubspot.owners_page(None, true, Lane::Realtime).await
    };
    let (first, second) = tokio::join!(first, second);
    first.unwrap();
    second.unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 was honoured");
    assert_eq!(stat(&sim, "responses_429"), 1);
    assert_eq!(stat(&sim, "requests_total"), 3, "one 429, then both requests once");
}

#[tokio::test]
async fn server_errors_are_retried_and_then_reported_with_their_body() {
    let sim = small_sim().await;
    let hubspot = client(&sim);
    sim.set_faults(FaultConfig { status: 503, fail_next: 2, ..FaultConfig::default() }).unwrap();
    hubspot.owners_page(None, false, Lane::Background).await.unwrap();
    assert_eq!(stat(&sim, "faults_injected"), 2);
    sim.set_faults(FaultConfig { status: 500, error_rate: 1.0, ..FaultConfig::default() }).unwrap();
    let error = hubspot.owners_page(None, false, Lane::Background).await.unwrap_err();
    match &error {
        HubSpotError::Server { status: 500, body: Some(body), .. } => assert_eq!(body["category"], "INTERNAL_ERROR"),
        other => panic!("expected a 500 with its body, got {other:?}"),
    }
    assert_eq!(stat(&sim, "faults_injected"), 2 + 5, "the first try and four retries");
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let sim = small_sim().await;
    let hubspot = client(&sim);
    sim.set_faults(FaultConfig { status: 400, fail_next: 1, ..FaultConfig::default() }).unwrap();
    let error = hubspot.owners_page(None, false, Lane::Background).await.unwrap_err();
    assert!(matches!(error, HubSpotError::BadRequest { status: 400, .. }), "{error:?}");
    assert_eq!(stat(&sim, "requests_total"), 1);
    // An unknown owner id is "not found", not an error.
    let read = hubspot.batch_read(ObjectKind::Owners, &["424242".to_owned()], Lane::Realtime).await.unwrap();
    assert_eq!(read.not_found, vec!["424242".to_owned()]);
    assert!(!format!("{hubspot:?}").contains("pat-na1"), "the token never prints");
}

#[tokio::test]
async fn an_unreachable_hubspot_is_a_transport_error_that_keeps_its_cause() {
    // Nothing listens on a port just freed: every attempt is refused.
    let port = crate::harness::free_port();
    let settings = HubSpotSettings {
        hubspot_access_token: Some(Secret::new("pat-na1-test-token")),
        hubspot_api_base: url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        hubspot_api_version: ApiVersion::V3,
        hubspot_requests_per_10s: 100_000,
        hubspot_searches_in_budget: true,
    };
    let hubspot = HubSpot::with_options(&settings, fast_options(Duration::from_secs(10))).unwrap();
    let error = hubspot.batch_read(ObjectKind::Contacts, &["1".to_owned()], Lane::Realtime).await.unwrap_err();
    assert!(matches!(error, HubSpotError::Transport { .. }), "{error:?}");
    assert!(std::error::Error::source(&error).is_some(), "the reqwest error is kept as the source");
    let display = error.to_string();
    assert!(display.starts_with("cannot reach HubSpot: "), "{display}");
    // The details (sync_logs.error_details) carry the whole chain: more than Display says.
    let details = error.details()["error"].as_str().unwrap().to_owned();
    assert!(details.starts_with(&display) && details.len() > display.len(), "{details}");
    assert!(!details.contains("pat-na1-test-token"), "{details}");
}

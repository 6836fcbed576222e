//! Webhook delivery to a local receiver: signatures, batch sizes, retries, concurrency, event
//! shapes for privacy deletions and merges, calls as generic `object.*` events.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hubspot_sim::webhooks::sign;
use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, WebhookConfig};
use serde_json::Value;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const SECRET: &str = "test-client-secret";
/// How long deliveries may take before a test calls them stuck: generous, so a busy machine is
/// slow, never red.
const PATIENCE: Duration = Duration::from_secs(120);

/// (headers, raw body) of one received request.
type Captured = (Vec<(String, String)>, Vec<u8>);

#[derive(Default)]
struct Receiver {
    /// (headers, raw body) of every request received.
    requests: Mutex<Vec<Captured>>,
    /// Fail this many requests first (500).
    fail_first: AtomicUsize,
    seen: AtomicUsize,
    delay_ms: AtomicUsize,
}

async fn receive(st: web::Data<Receiver>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let n = st.seen.fetch_add(1, Ordering::SeqCst);
    let headers =
        req.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    st.requests.lock().unwrap().push((headers, body.to_vec()));
    let d = st.delay_ms.load(Ordering::SeqCst);
    if d > 0 {
        tokio::time::sleep(Duration::from_millis(d as u64)).await;
    }
    if n < st.fail_first.load(Ordering::SeqCst) {
        HttpResponse::InternalServerError().finish()
    } else {
        HttpResponse::NoContent().finish()
    }
}

async fn receiver() -> (String, web::Data<Receiver>, actix_web::dev::ServerHandle) {
    let st = web::Data::new(Receiver::default());
    let data = st.clone();
    let server =
        HttpServer::new(move || App::new().app_data(data.clone()).route("/hubspot/webhooks", web::post().to(receive)))
            .workers(1)
            .disable_signals()
            .bind(("127.0.0.1", 0))
            .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    (format!("http://{addr}/hubspot/webhooks"), st, handle)
}

async fn sim_with(url: &str, f: impl FnOnce(&mut WebhookConfig)) -> SimHandle {
    let mut w = WebhookConfig::new(url, SECRET);
    w.retry_base_ms = 5;
    w.retry_max_ms = 20;
    w.duplicate_rate = 0.0;
    w.reorder_rate = 0.0;
    f(&mut w);
    Sim::start(SimOptions { contacts: 500, deals: 200, calls: 200, workers: 1, webhook: Some(w), ..Default::default() })
        .await
        .unwrap()
}

fn header<'a>(h: &'a [(String, String)], name: &str) -> &'a str {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).unwrap()
}

/// Every delivered body, parsed, after checking its signatures.
fn verified_events(url: &str, rec: &Receiver) -> Vec<Vec<Value>> {
    rec.requests
        .lock()
        .unwrap()
        .iter()
        .map(|(h, body)| {
            assert_eq!(header(h, "x-hubspot-signature-version"), "v1");
            assert_eq!(header(h, "x-hubspot-signature"), sign::v1(SECRET, body));
            let ts = header(h, "x-hubspot-request-timestamp");
            assert!(ts.parse::<i64>().is_ok());
            assert_eq!(header(h, "x-hubspot-signature-v3"), sign::v3(SECRET, "POST", url, body, ts));
            let events: Vec<Value> = serde_json::from_slice(body).unwrap();
            assert!(!events.is_empty() && events.len() <= 100, "batch of {}", events.len());
            events
        })
        .collect()
}

#[tokio::test]
async fn retries_are_counted_and_signatures_verify() {
    let (url, rec, rh) = receiver().await;
    rec.fail_first.store(3, Ordering::SeqCst);
    let h = sim_with(&url, |_| {}).await;
    let rep = h.churn(&ChurnRequest { object: "contacts".into(), creates: 250, ..Default::default() }).unwrap();
    assert_eq!(rep.created.len(), 250);
    assert_eq!(rep.events, 250);
    assert!(h.wait_webhooks_idle(PATIENCE).await);
    let batches = verified_events(&url, &rec);
    let stats = h.stats();
    assert_eq!(stats["webhooks"]["retried"], 3, "{stats}");
    assert_eq!(stats["webhooks"]["failed_attempts"], 3);
    assert_eq!(stats["webhooks"]["delivered"], 3);
    assert_eq!(stats["webhooks"]["events_delivered"], 250);
    assert!(stats["webhooks"]["max_batch_size"].as_u64().unwrap() <= 100);
    // Retried attempts carry attemptNumber > 0 and fresh signatures; every event arrived.
    let all: Vec<&Value> = batches.iter().flatten().collect();
    assert!(all.iter().any(|e| e["attemptNumber"].as_u64().unwrap() > 0));
    let mut delivered: Vec<String> = batches
        .iter()
        .skip(3)
        .flatten()
        .map(|e| {
            assert_eq!(e["subscriptionType"], "contact.creation");
            assert_eq!(e["portalId"], 62515);
            for f in ["eventId", "subscriptionId", "appId", "occurredAt", "objectId", "attemptNumber"] {
                assert!(e[f].is_u64(), "{f} in {e}");
            }
            assert!(e["changeSource"].is_string() && e["changeFlag"].is_string());
            e["objectId"].as_u64().unwrap().to_string()
        })
        .collect();
    delivered.sort();
    let mut created = rep.created.clone();
    created.sort();
    assert_eq!(delivered, created);
    h.shutdown().await;
    rh.stop(true).await;
}

#[tokio::test]
async fn privacy_deletion_merge_and_calls_events() {
    let (url, rec, rh) = receiver().await;
    let h = sim_with(&url, |_| {}).await;
    let p = h
        .churn(&ChurnRequest {
            object: "contacts".into(),
            privacy_deletions: 1,
            merges: 1,
            updates: 2,
            ..Default::default()
        })
        .unwrap();
    let c = h.churn(&ChurnRequest { object: "calls".into(), creates: 1, deletes: 1, ..Default::default() }).unwrap();
    let d = h.churn(&ChurnRequest { object: "deals".into(), updates: 1, restores: 1, ..Default::default() }).unwrap();
    assert!(h.wait_webhooks_idle(PATIENCE).await);
    let events: Vec<Value> = verified_events(&url, &rec).into_iter().flatten().collect();
    let gone: u64 = p.privacy_deleted[0].parse().unwrap();
    let kinds: Vec<&str> =
        events.iter().filter(|e| e["objectId"] == gone).map(|e| e["subscriptionType"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"contact.privacyDeletion") && kinds.contains(&"contact.deletion"), "{kinds:?}");
    // Gone for good: not even in the recycle bin.
    assert!(!h.export_json("contacts").iter().any(|r| r["id"].as_str() == Some(p.privacy_deleted[0].as_str())));
    let m = events.iter().find(|e| e["subscriptionType"] == "contact.merge").unwrap();
    assert_eq!(m["primaryObjectId"].as_u64().unwrap().to_string(), p.merged[0].primary);
    assert_eq!(m["mergedObjectIds"][0].as_u64().unwrap().to_string(), p.merged[0].merged[0]);
    assert_eq!(m["newObjectId"].as_u64().unwrap().to_string(), p.merged[0].new);
    assert!(m["numberOfPropertiesMoved"].is_u64());
    assert!(
        events
            .iter()
            .filter(|e| e["subscriptionType"] == "contact.propertyChange")
            .all(|e| e["propertyName"].is_string() && e["propertyValue"].is_string())
    );
    let calls: Vec<&Value> = events.iter().filter(|e| e["objectTypeId"] == "0-48").collect();
    let call_types: Vec<&str> = calls.iter().map(|e| e["subscriptionType"].as_str().unwrap()).collect();
    assert!(call_types.contains(&"object.creation") && call_types.contains(&"object.deletion"), "{call_types:?}");
    assert_eq!(
        calls.iter().find(|e| e["subscriptionType"] == "object.creation").unwrap()["objectId"]
            .as_u64()
            .unwrap()
            .to_string(),
        c.created[0]
    );
    assert!(events.iter().any(
        |e| e["subscriptionType"] == "deal.restore" && e["objectId"].as_u64().unwrap().to_string() == d.restored[0]
    ));
    assert!(events.iter().any(|e| e["subscriptionType"] == "deal.propertyChange"));
    h.shutdown().await;
    rh.stop(true).await;
}

#[tokio::test]
async fn slow_answers_are_retried_and_concurrency_is_capped() {
    let (url, rec, rh) = receiver().await;
    // Answers take 3 s, the sender gives up after 2 s (wide apart, so a busy machine cannot
    // blur "slow" and "fast"); once an attempt has been retried, answers become fast again.
    rec.delay_ms.store(3000, Ordering::SeqCst);
    let h = sim_with(&url, |w| w.timeout_ms = 2000).await;
    h.churn(&ChurnRequest { object: "deals".into(), creates: 1, ..Default::default() }).unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while h.stats()["webhooks"]["retried"].as_u64().unwrap_or(0) == 0 {
        assert!(std::time::Instant::now() < deadline, "no slow answer was retried: {}", h.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    rec.delay_ms.store(0, Ordering::SeqCst);
    assert!(h.wait_webhooks_idle(PATIENCE).await);
    let s = h.stats();
    assert!(s["webhooks"]["retried"].as_u64().unwrap() >= 1, "{s}");
    assert_eq!(s["webhooks"]["delivered"], 1);
    // 2,000 bulk updates sharing ONE timestamp: 20 batches, never more than 10 in flight.
    rec.delay_ms.store(30, Ordering::SeqCst);
    let rep = h.churn(&ChurnRequest { object: "contacts".into(), bulk_updates: 400, ..Default::default() }).unwrap();
    assert_eq!(rep.bulk_updated.len(), 400);
    assert!(h.wait_webhooks_idle(PATIENCE).await);
    let s = h.stats();
    assert!(s["webhooks"]["max_in_flight"].as_u64().unwrap() <= 10, "{s}");
    assert!(s["webhooks"]["max_batch_size"].as_u64().unwrap() <= 100);
    let ts = rep.bulk_timestamp.unwrap();
    let exported = h.export_json("contacts");
    let same = exported
        .iter()
        .filter(|r| rep.bulk_updated.contains(&r["id"].as_str().unwrap().to_string()))
        .filter(|r| r["updatedAt"] == ts.as_str() && r["properties"]["lastmodifieddate"] == ts.as_str())
        .count();
    assert_eq!(same, 400);
    h.shutdown().await;
    rh.stop(true).await;
}

#[tokio::test]
async fn duplicates_and_reordering_happen_when_asked() {
    let (url, rec, rh) = receiver().await;
    let h = sim_with(&url, |w| {
        w.duplicate_rate = 1.0;
        w.reorder_rate = 1.0;
        w.max_batch = 10;
    })
    .await;
    h.churn(&ChurnRequest { object: "contacts".into(), creates: 30, ..Default::default() }).unwrap();
    assert!(h.wait_webhooks_idle(PATIENCE).await);
    let batches = verified_events(&url, &rec);
    assert_eq!(batches.len(), 6);
    let ids: Vec<u64> = batches.iter().flatten().map(|e| e["eventId"].as_u64().unwrap()).collect();
    let mut uniq = ids.clone();
    uniq.sort();
    uniq.dedup();
    assert_eq!(uniq.len(), 30);
    assert!(ids.windows(2).any(|w| w[0] > w[1]), "some events out of order");
    let s = h.stats();
    assert_eq!(s["webhooks"]["duplicates"], 3);
    h.shutdown().await;
    rh.stop(true).await;
}

#[tokio::test]
async fn v1_only_deliveries_carry_no_v3_headers() {
    let (url, rec, rh) = receiver().await;
    let h = sim_with(&url, |w| w.v1_only = true).await;
    h.churn(&ChurnRequest { object: "contacts".into(), creates: 5, ..Default::default() }).unwrap();
    assert!(h.wait_webhooks_idle(PATIENCE).await);
    let requests = rec.requests.lock().unwrap().clone();
    assert!(!requests.is_empty());
    for (h, body) in &requests {
        assert_eq!(header(h, "x-hubspot-signature-version"), "v1");
        assert_eq!(header(h, "x-hubspot-signature"), sign::v1(SECRET, body));
        let has = |name: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
        assert!(!has("x-hubspot-signature-v3") && !has("x-hubspot-request-timestamp"), "{h:?}");
    }
    h.shutdown().await;
    rh.stop(true).await;
}

/// A receiver that reads each request head and closes the connection unanswered for the first
/// `drop_first` requests (as a server shutting down closes a kept-alive connection that a
/// request crossed), then answers 204 on a kept-alive connection.
async fn closing_receiver(drop_first: usize) -> (String, std::sync::Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hubspot/webhooks", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else { return };
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut read = Vec::new();
                let mut buf = [0u8; 16384];
                loop {
                    // One whole request: its head, then `Content-Length` bytes of body.
                    let (end, length) = loop {
                        if let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&read[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (end, length);
                        }
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read.extend_from_slice(&buf[..n]),
                        }
                    };
                    if counter.fetch_add(1, Ordering::SeqCst) < drop_first {
                        return; // closed unanswered
                    }
                    while read.len() < end + 4 + length {
                        match conn.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read.extend_from_slice(&buf[..n]),
                        }
                    }
                    read.drain(..end + 4 + length);
                    if conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

/// A delivery whose connection the receiver closes without answering (a deploy's old instance
/// closing kept-alive connections) is a failed attempt that HubSpot retries, not a lost batch.
#[tokio::test]
async fn deliveries_on_connections_closed_unanswered_are_retried() {
    let (url, seen) = closing_receiver(4).await;
    let h = sim_with(&url, |_| {}).await;
    h.churn(&ChurnRequest { object: "contacts".into(), creates: 250, ..Default::default() }).unwrap();
    assert!(h.wait_webhooks_idle(PATIENCE).await, "{}", h.stats());
    let stats = h.stats();
    assert_eq!(stats["webhooks"]["batches_failed"], 0, "{stats}");
    assert_eq!(stats["webhooks"]["events_delivered"], 250, "{stats}");
    assert!(stats["webhooks"]["failed_attempts"].as_u64().unwrap() >= 1, "{stats}");
    assert!(seen.load(Ordering::SeqCst) > 4);
}

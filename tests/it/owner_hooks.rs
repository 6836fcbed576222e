//! Owner-change hooks (issue 18): a change of a contact's or deal's owner by any path (webhook
//! fetch, incremental poll, full pass) gives exactly one owner history row, one
//! `NOTIFY hubspot_owner_changed` and one signed delivery to `OWNER_CHANGE_WEBHOOK_URL` (its
//! HMAC checked here); a receiver that fails twice gets the delivery on the third attempt with
//! the same delivery id; the initial copy fires none.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use hmac::{Hmac, Mac};
use hubspot_sim::{PlantRequest, SimHandle};
use hubspot_sync::store::notify::Listener;
use sha2::Sha256;
use tokio::sync::mpsc;

use crate::harness::binary::{ServeBinary, ServeProcess, command_for};
use crate::harness::control::quiet_poller;
use crate::harness::hooks::{SECRET, post_changes};
use crate::harness::hubspot::sim;
use crate::harness::{PATIENCE, TestDb, eventually, within};

const HOOK_SECRET: &str = "owner-hook-secret";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Delivery {
    signature: String,
    delivery_id: String,
    attempt: String,
    body: Vec<u8>,
    /// What the receiver answered.
    status: u16,
}

impl Delivery {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Whether the signature header is the HMAC-SHA256 of the body with the shared secret.
    fn signed(&self) -> bool {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(HOOK_SECRET.as_bytes()).unwrap();
        mac.update(&self.body);
        hex::decode(&self.signature).is_ok_and(|sig| mac.verify_slice(&sig).is_ok())
    }
}

/// A receiver answering 500 to its first `failures` requests, then 204; forwards every request.
struct Receiver {
    url: String,
    requests: mpsc::UnboundedReceiver<Delivery>,
    server: actix_web::dev::ServerHandle,
}

async fn receiver(failures: usize) -> Receiver {
    let (tx, requests) = mpsc::unbounded_channel::<Delivery>();
    let state = web::Data::new((tx, Arc::new(Mutex::new(failures))));
    let server = HttpServer::new(move || {
        App::new().app_data(state.clone()).route(
            "/owner-changes",
            web::post().to(
                |state: web::Data<(mpsc::UnboundedSender<Delivery>, Arc<Mutex<usize>>)>,
                 request: HttpRequest,
                 body: web::Bytes| async move {
                    let header = |name: &str| {
                        request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
                    };
                    let status = {
                        let mut left = state.1.lock().unwrap();
                        if *left > 0 {
                            *left -= 1;
                            500
                        } else {
                            204
                        }
                    };
                    let _ = state.0.send(Delivery {
                        signature: header("X-HubSpot-Sync-Signature"),
                        delivery_id: header("X-HubSpot-Sync-Delivery"),
                        attempt: header("X-HubSpot-Sync-Attempt"),
                        body: body.to_vec(),
                        status,
                    });
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).finish()
                },
            ),
        )
    })
    .workers(1)
    .disable_signals()
    .bind("127.0.0.1:0")
    .unwrap();
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    tokio::spawn(server);
    Receiver { url: format!("http://{addr}/owner-changes"), requests, server: handle }
}

/// A database holding the initial copy of a small portal (contacts and deals by a full pass of
/// the real binary), and every object marked synced so `serve` starts no run of its own.
async fn initial_copy(db: &TestDb) -> SimHandle {
    let sim = sim(30, 20, 0).await;
    let status = command_for(db, &sim).args(["sync", "contacts", "deals", "--full"]).status().await.unwrap();
    assert!(status.success(), "the initial copy");
    quiet_poller(db).await;
    sim
}

async fn serve(db: &TestDb, sim: &SimHandle, hook: &Receiver) -> ServeProcess {
    ServeBinary::new(&db.url())
        .hubspot(sim)
        .quiet_schedules()
        .env("HUBSPOT_CLIENT_SECRET", SECRET)
        .env("OWNER_CHANGE_WEBHOOK_URL", &hook.url)
        .env("OWNER_CHANGE_WEBHOOK_SECRET", HOOK_SECRET)
        .spawn()
        .await
}

/// Gives record `id` of `object` the owner `owner` in the simulator (its `updatedAt` moves).
fn reassign(sim: &SimHandle, object: &str, id: &str, owner: &str) {
    let properties = BTreeMap::from([("hubspot_owner_id".to_owned(), Some(owner.to_owned()))]);
    sim.plant(&PlantRequest { object: object.into(), id: id.into(), properties }).unwrap();
}

/// Ids of `object` in the simulator, live ones, in id order.
fn ids(sim: &SimHandle, object: &str) -> Vec<String> {
    let mut ids: Vec<String> = sim
        .export_json(object)
        .iter()
        .filter(|r| r["archived"] != true)
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort_by_key(|id| id.parse::<u64>().unwrap());
    ids
}

async fn history_rows(db: &TestDb, object: &str, id: &str) -> i64 {
    let (table, key) = match object {
        "contacts" => ("contact_owner_history", "hubspot_contact_id"),
        _ => ("deal_owner_history", "hubspot_deal_id"),
    };
    db.count(&format!("SELECT count(*) FROM {table} WHERE {key} = '{id}'")).await
}

async fn all_history(db: &TestDb) -> i64 {
    db.count("SELECT (SELECT count(*) FROM contact_owner_history) + (SELECT count(*) FROM deal_owner_history)").await
}

/// Waits for the next notification on the listener, as JSON.
async fn next_notification(listener: &mut Listener) -> serde_json::Value {
    let payload = within(PATIENCE, "a NOTIFY hubspot_owner_changed", listener.next_payload()).await.unwrap();
    serde_json::from_str(&payload).unwrap()
}

/// Waits for the next request the receiver got.
async fn next_delivery(hook: &mut Receiver) -> Delivery {
    within(PATIENCE, "an owner-change delivery", hook.requests.recv()).await.unwrap()
}

/// Checks one change: its history row, its notification and its signed delivery.
async fn one_change_of_each(
    db: &TestDb,
    listener: &mut Listener,
    hook: &mut Receiver,
    (object, id, owner): (&str, &str, &str),
) -> String {
    let note = next_notification(listener).await;
    assert_eq!((note["object"].as_str(), note["id"].as_str()), (Some(object), Some(id)), "{note}");
    assert_eq!(note["new_owner_id"], owner, "{note}");
    assert_ne!(note["old_owner_id"], owner, "{note}");
    assert!(note["changed_at"].as_str().is_some_and(|t| chrono::DateTime::parse_from_rfc3339(t).is_ok()), "{note}");
    assert_eq!(history_rows(db, object, id).await, 1, "one history row for {object} {id}");

    let delivery = next_delivery(hook).await;
    assert!(delivery.signed(), "the signature does not match the body: {delivery:?}");
    let body = delivery.json();
    assert_eq!((body["object"].as_str(), body["id"].as_str()), (Some(object), Some(id)), "{body}");
    assert_eq!(body["new_owner_id"], owner);
    assert_eq!(body["old_owner_id"], note["old_owner_id"]);
    assert_eq!(body["delivery_id"], delivery.delivery_id.as_str());
    assert_eq!(body["event"], "owner_changed");
    assert_eq!(delivery.attempt, "1");
    delivery.delivery_id
}

#[tokio::test]
async fn an_owner_change_by_webhook_poll_or_full_pass_fires_once_each() {
    let db = TestDb::new().await;
    let mut listener = Listener::start(&db.target, "owner hooks test", "hubspot_owner_changed").await.unwrap();
    let sim = initial_copy(&db).await;
    assert_eq!(all_history(&db).await, 0, "the initial copy is not a change");
    assert_eq!(db.count("SELECT count(*) FROM owner_change_deliveries").await, 0, "nor a delivery");
    let mut hook = receiver(0).await;
    let server = serve(&db, &sim, &hook).await;
    let (contacts, deals) = (ids(&sim, "contacts"), ids(&sim, "deals"));

    // Through a webhook: the fetcher reads the contact and writes it.
    reassign(&sim, "contacts", &contacts[3], "990001");
    assert_eq!(post_changes(&server.url("/webhooks/hubspot"), "contact", &[contacts[3].parse().unwrap()]).await, 204);
    let first = one_change_of_each(&db, &mut listener, &mut hook, ("contacts", &contacts[3], "990001")).await;

    // Through an incremental poll (another process: `hubspot-sync sync contacts`). Its window
    // ends a few seconds before now (HubSpot's search index lag), so it runs until it sees it.
    reassign(&sim, "contacts", &contacts[7], "990002");
    eventually(PATIENCE, "an incremental run reads the change", || async {
        assert!(command_for(&db, &sim).args(["sync", "contacts"]).status().await.unwrap().success());
        history_rows(&db, "contacts", &contacts[7]).await > 0
    })
    .await;
    let second = one_change_of_each(&db, &mut listener, &mut hook, ("contacts", &contacts[7], "990002")).await;

    // Through a full pass of deals.
    reassign(&sim, "deals", &deals[2], "990003");
    assert!(command_for(&db, &sim).args(["sync", "deals", "--full"]).status().await.unwrap().success());
    let third = one_change_of_each(&db, &mut listener, &mut hook, ("deals", &deals[2], "990003")).await;
    assert!(first != second && second != third && first != third, "each delivery has its own id");

    // Nothing else: a full pass that changes nothing fires nothing, every delivery went once.
    assert!(command_for(&db, &sim).args(["sync", "all", "--full"]).status().await.unwrap().success());
    eventually(PATIENCE, "the outbox empties", || async {
        db.count("SELECT count(*) FROM owner_change_deliveries").await == 0
    })
    .await;
    assert_eq!(all_history(&db).await, 3);
    server.signal("-TERM");
    let (code, logs) = server.exit(PATIENCE).await;
    assert_eq!(code, Some(0));
    assert!(!logs.contains(HOOK_SECRET), "the secret reached the log");
    assert!(hook.requests.try_recv().is_err(), "one delivery per change");
    assert!(
        tokio::time::timeout(std::time::Duration::from_millis(200), listener.next_payload()).await.is_err(),
        "one notification per change"
    );
    hook.server.stop(true).await;
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_delivery_on_the_third_try() {
    let db = TestDb::new().await;
    let sim = initial_copy(&db).await;
    let mut hook = receiver(2).await;
    let server = serve(&db, &sim, &hook).await;
    let deal = ids(&sim, "deals")[5].clone();
    reassign(&sim, "deals", &deal, "990009");
    assert_eq!(post_changes(&server.url("/webhooks/hubspot"), "deal", &[deal.parse().unwrap()]).await, 204);

    let tries = [next_delivery(&mut hook).await, next_delivery(&mut hook).await, next_delivery(&mut hook).await];
    assert_eq!(tries.iter().map(|d| d.status).collect::<Vec<_>>(), [500, 500, 204]);
    assert_eq!(tries.iter().map(|d| d.attempt.as_str()).collect::<Vec<_>>(), ["1", "2", "3"]);
    assert!(tries.iter().all(|d| d.delivery_id == tries[0].delivery_id && d.body == tries[0].body), "{tries:?}");
    assert!(tries.iter().all(Delivery::signed));
    assert_eq!(tries[0].json()["id"], deal.as_str());
    eventually(PATIENCE, "the delivered row leaves the outbox", || async {
        db.count("SELECT count(*) FROM owner_change_deliveries").await == 0
    })
    .await;
    assert_eq!(history_rows(&db, "deals", &deal).await, 1);
    server.signal("-TERM");
    assert_eq!(server.exit(PATIENCE).await.0, Some(0));
    assert!(hook.requests.try_recv().is_err(), "no fourth request");
    hook.server.stop(true).await;
}

/// Two accounts hold a contact of the same HubSpot id; each changes owner. Each delivery (and
/// each notification) names its portal, so a receiver can tell the two records apart.
#[tokio::test]
async fn each_delivery_names_the_portal_of_the_record() {
    use crate::harness::control::{DEFAULT_PORTAL, OTHER_PORTAL, two_accounts};
    use hubspot_sync::config::Secret;
    use hubspot_sync::owner_hooks::{Deliverer, Target};

    let db = TestDb::new().await;
    two_accounts(&db).await;
    let mut listener = Listener::start(&db.target, "owner hooks test", "hubspot_owner_changed").await.unwrap();
    let mut hook = receiver(0).await;
    let client = db.client().await;
    for (portal, owner) in [(DEFAULT_PORTAL, "501"), (OTHER_PORTAL, "502")] {
        client
            .batch_execute(&format!(
                "INSERT INTO contacts (portal_id, hubspot_contact_id, owner_id, updated_at) VALUES ({portal}, '7', '1', now()); \
                 UPDATE contacts SET owner_id = '{owner}', updated_at = now() WHERE portal_id = {portal} AND hubspot_contact_id = '7'"
            ))
            .await
            .unwrap();
    }
    let notes = [next_notification(&mut listener).await, next_notification(&mut listener).await];
    let noted: Vec<(i64, &str)> =
        notes.iter().map(|n| (n["portal_id"].as_i64().unwrap(), n["new_owner_id"].as_str().unwrap())).collect();
    assert_eq!(noted, [(DEFAULT_PORTAL, "501"), (OTHER_PORTAL, "502")], "{notes:?}");

    let target = Target::new(hook.url.parse().unwrap(), Secret::new(HOOK_SECRET.to_owned()));
    let deliverer = Deliverer::new(db.pool(), Some(target));
    eventually(PATIENCE, "both changes are delivered", || async {
        deliverer.pass().await.unwrap();
        db.count("SELECT count(*) FROM owner_change_deliveries").await == 0
    })
    .await;
    let mut delivered: Vec<(i64, String, String)> = Vec::new();
    for _ in 0..2 {
        let delivery = next_delivery(&mut hook).await;
        assert!(delivery.signed(), "{delivery:?}");
        let body = delivery.json();
        assert_eq!(body["id"], "7", "{body}");
        delivered.push((
            body["portal_id"].as_i64().unwrap(),
            body["new_owner_id"].to_string(),
            body["object"].to_string(),
        ));
    }
    delivered.sort();
    assert_eq!(
        delivered,
        [
            (DEFAULT_PORTAL, "\"501\"".to_owned(), "\"contacts\"".to_owned()),
            (OTHER_PORTAL, "\"502\"".to_owned(), "\"contacts\"".to_owned())
        ]
    );
    hook.server.stop(true).await;
}

//! Several portals in one simulator (`SimOptions::portals`, `--portals`): the token chooses the
//! portal; each has its own data, its own budget (one portal's 429s never reach another) and
//! webhooks carrying its own `portalId`; without portals nothing changes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::sync::Mutex;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, WebhookConfig};
use serde_json::Value;

async fn two_portals(requests_per_10s: u32, webhook: Option<WebhookConfig>) -> SimHandle {
    Sim::start(SimOptions {
        contacts: 40,
        deals: 10,
        calls: 10,
        workers: 1,
        requests_per_10s,
        portals: vec![101, 202],
        webhook,
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn get(h: &SimHandle, path: &str, token: &str) -> (u16, Value) {
    let r = reqwest::Client::new().get(format!("{}{path}", h.url())).bearer_auth(token).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Every contact (id, email) one token sees, page by page.
async fn contacts(h: &SimHandle, token: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut after = String::new();
    loop {
        let (status, body) =
            get(h, &format!("/crm/v3/objects/contacts?limit=100&properties=email{after}"), token).await;
        assert_eq!(status, 200, "{body}");
        for r in body["results"].as_array().unwrap() {
            out.push((
                r["id"].as_str().unwrap().to_owned(),
                r["properties"]["email"].as_str().unwrap_or("").to_owned(),
            ));
        }
        match body["paging"]["next"]["after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return out,
        }
    }
}

#[tokio::test]
async fn each_portal_has_its_own_data_chosen_by_the_token() {
    let h = two_portals(0, None).await;
    assert_eq!(h.portal_ids(), vec![101, 202]);
    let a = contacts(&h, "pat-101").await;
    let b = contacts(&h, "pat-202-any-suffix").await;
    assert!(a.len() > 30 && b.len() > 30, "{} and {} live contacts", a.len(), b.len());
    assert_ne!(a, b, "two portals, two seeded data sets");

    // A record created in one portal exists there only.
    let created = h
        .portal(101)
        .unwrap()
        .churn(&ChurnRequest { object: "contacts".into(), creates: 1, ..Default::default() })
        .unwrap()
        .created;
    let id = &created[0];
    assert_eq!(get(&h, &format!("/crm/v3/objects/contacts/{id}"), "pat-101").await.0, 200);
    let in_b = contacts(&h, "pat-202").await;
    assert_eq!(in_b, b, "portal 202 did not change");
    assert_eq!(contacts(&h, "pat-101").await.len(), a.len() + 1);

    // A token that names no portal served is refused as HubSpot refuses an unknown token.
    for token in ["pat-303", "pat-na1-test", "anything"] {
        let (status, body) = get(&h, "/crm/v3/objects/contacts", token).await;
        assert_eq!(status, 401, "{token}: {body}");
        assert_eq!(body["category"], "INVALID_AUTHENTICATION");
    }
    assert_eq!(hubspot_sim::control::stats_json(h.portal(101).unwrap())["responses_401"], 3, "counted");
    // Control requests name their portal.
    let export = |portal: &str| {
        let url = format!("{}/_sim/export/contacts?portal={portal}", h.url());
        async move { reqwest::get(url).await.unwrap() }
    };
    let r = export("101").await;
    assert_eq!(r.status().as_u16(), 200);
    let exported = |text: String| text.lines().count();
    assert_eq!(exported(r.text().await.unwrap()), exported(h.portal(101).unwrap().export("contacts").unwrap()));
    assert_eq!(
        exported(export("202").await.text().await.unwrap()),
        exported(h.portal(202).unwrap().export("contacts").unwrap())
    );
    assert_eq!(exported(export("101").await.text().await.unwrap()), 41, "the seeded 40 and the one created");
    assert_eq!(export("999").await.status().as_u16(), 404);
    h.shutdown().await;
}

#[tokio::test]
async fn one_portals_exhausted_budget_does_not_limit_another() {
    let h = two_portals(5, None).await;
    for n in 0..5 {
        assert_eq!(get(&h, "/crm/v3/objects/contacts?limit=1", "pat-101").await.0, 200, "request {n}");
    }
    let (status, body) = get(&h, "/crm/v3/objects/contacts?limit=1", "pat-101").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["policyName"], "TEN_SECONDLY_ROLLING");
    for n in 0..5 {
        assert_eq!(get(&h, "/crm/v3/objects/contacts?limit=1", "pat-202").await.0, 200, "portal 202, request {n}");
    }
    assert_eq!(get(&h, "/crm/v3/objects/contacts?limit=1", "pat-202").await.0, 429, "its own budget holds too");
    let stats = |p: u64| hubspot_sim::control::stats_json(h.portal(p).unwrap());
    assert_eq!(stats(101)["responses_429"], stats(202)["responses_429"]);
    h.shutdown().await;
}

#[derive(Default)]
struct Received(Mutex<Vec<Value>>);

async fn receive(st: web::Data<Received>, body: web::Json<Vec<Value>>) -> HttpResponse {
    st.0.lock().unwrap().extend(body.into_inner());
    HttpResponse::NoContent().finish()
}

#[tokio::test]
async fn each_portals_webhooks_carry_its_portal_id() {
    let received = web::Data::new(Received::default());
    let data = received.clone();
    let server = HttpServer::new(move || App::new().app_data(data.clone()).route("/hooks", web::post().to(receive)))
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap();
    let url = format!("http://{}/hooks", server.addrs()[0]);
    let server = server.run();
    let stop = server.handle();
    tokio::spawn(server);
    let mut cfg = WebhookConfig::new(url, "secret");
    cfg.duplicate_rate = 0.0;
    cfg.reorder_rate = 0.0;
    let h = two_portals(0, Some(cfg)).await;
    for (portal, creates) in [(101, 3), (202, 2)] {
        let req = ChurnRequest { object: "contacts".into(), creates, ..Default::default() };
        h.portal(portal).unwrap().churn(&req).unwrap();
    }
    assert!(h.wait_webhooks_idle(Duration::from_secs(60)).await);
    let events = received.0.lock().unwrap().clone();
    let of = |p: u64| events.iter().filter(|e| e["portalId"] == p).count();
    assert!(of(101) >= 3 && of(202) >= 2, "{events:?}");
    assert_eq!(of(101) + of(202), events.len(), "no event of another portal: {events:?}");
    h.shutdown().await;
    stop.stop(true).await;
}

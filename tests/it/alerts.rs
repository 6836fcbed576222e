//! Alerts against a local Slack-compatible receiver: each condition is announced once when it
//! starts to hold and once when it clears; undelivered messages are retried. Also checks that the
//! monitor records finished runs in the run-duration histogram, and that drift a real audit's
//! repair could not clear alerts until a later repair does.

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use chrono::{Duration, Utc};
use clap::Parser;
use hubspot_sync::alerts::monitor::Monitor;
use hubspot_sync::alerts::slack::Notifier;
use hubspot_sync::alerts::{Condition, Transition};
use hubspot_sync::config::ScheduleSettings;
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::webhook::stats::{Rejection, WebhookStats};
use tokio::sync::mpsc;

use hubspot_sim::{BatchErrorRequest, Sim, SimOptions};

use crate::harness::binary::command_for;
use crate::harness::compare::{self, Merges};
use crate::harness::control::finished;
use crate::harness::{TestApp, TestDb};

#[derive(Parser)]
struct Schedules {
    #[command(flatten)]
    schedules: ScheduleSettings,
}

/// A local incoming-webhook receiver; answers `status` and forwards each message's text.
struct Receiver {
    url: url::Url,
    messages: mpsc::UnboundedReceiver<String>,
    server: actix_web::dev::ServerHandle,
}

async fn receiver(status: u16) -> Receiver {
    let (tx, messages) = mpsc::unbounded_channel::<String>();
    let tx = web::Data::new(tx);
    let server = HttpServer::new(move || {
        App::new().app_data(tx.clone()).route(
            "/hooks/alerts",
            web::post().to(
                move |tx: web::Data<mpsc::UnboundedSender<String>>, body: web::Json<serde_json::Value>| async move {
                    let _ = tx.send(body["text"].as_str().unwrap_or_default().to_owned());
                    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("ok")
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
    Receiver { url: format!("http://{addr}/hooks/alerts").parse().unwrap(), messages, server: handle }
}

impl Receiver {
    /// Messages delivered so far (deliveries are awaited by `tick`, so they are all here).
    fn drain(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.messages.try_recv().ok()).collect()
    }
}

async fn app_and_monitor(url: url::Url) -> (TestApp, Monitor, Arc<WebhookStats>) {
    let app = TestApp::builder().recording_control().start().await;
    let webhooks = app.ops.webhooks.clone();
    let schedules = Schedules::parse_from(["x"]).schedules;
    let monitor = Monitor::new(app.pool.clone(), webhooks.clone(), schedules, Some(Notifier::new(url)), Utc::now());
    (app, monitor, webhooks)
}

fn firing(transitions: &[Transition]) -> Vec<(Condition, bool)> {
    transitions.iter().map(|t| (t.condition, t.firing)).collect()
}

#[tokio::test]
async fn each_condition_alerts_once_and_again_when_it_clears() {
    let mut hook = receiver(200).await;
    let (mut app, mut monitor, webhooks) = app_and_monitor(hook.url.clone()).await;
    let now = Utc::now();
    let contacts = ObjectKind::Contacts;
    let deals = ObjectKind::Deals;

    finished(&app.db, "contacts", 5, 0, Some("HubSpot answered 500 three times")).await;
    assert_eq!(firing(&monitor.tick(now).await.unwrap()), [(Condition::RunFailed(contacts), true)]);
    let sent = hook.drain();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].contains("contacts sync failed: HubSpot answered 500"), "{sent:?}");
    assert!(monitor.tick(now).await.unwrap().is_empty(), "once while it holds");
    assert!(hook.drain().is_empty());

    finished(&app.db, "contacts", 5, 0, None).await;
    assert_eq!(firing(&monitor.tick(now).await.unwrap()), [(Condition::RunFailed(contacts), false)]);
    assert!(hook.drain()[0].contains("resolved"));

    finished(&app.db, "deals", 100, 20, None).await;
    assert_eq!(firing(&monitor.tick(now).await.unwrap()), [(Condition::FailedRecords(deals), true)]);
    assert!(hook.drain()[0].contains("20 of 100 records failed"));
    finished(&app.db, "deals", 100, 10, None).await;
    assert_eq!(firing(&monitor.tick(now).await.unwrap()), [(Condition::FailedRecords(deals), false)]);
    hook.drain();

    for _ in 0..6 {
        webhooks.rejected_at(now, Rejection::Signature);
    }
    assert_eq!(firing(&monitor.tick(now).await.unwrap()), [(Condition::SignatureFailures, true)]);
    assert!(hook.drain()[0].contains("HUBSPOT_CLIENT_SECRET"));
    let later = now + Duration::minutes(6);
    assert_eq!(firing(&monitor.tick(later).await.unwrap()), [(Condition::SignatureFailures, false)]);
    hook.drain();

    // 31 minutes on: contacts (every 5 min) and deals and calls (every 15 min) are overdue.
    let overdue_at = now + Duration::minutes(31);
    let mut fired = firing(&monitor.tick(overdue_at).await.unwrap());
    fired.sort();
    let expected = [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls].map(|k| (Condition::Overdue(k), true));
    assert_eq!(fired, expected);
    assert_eq!(hook.drain().len(), 3);
    let id = finished(&app.db, "contacts", 1, 0, None).await;
    let client = app.db.client().await;
    let sql = format!("UPDATE sync_logs SET completed_at = '{}' WHERE id = '{id}'", overdue_at.to_rfc3339());
    client.batch_execute(&sql).await.unwrap();
    assert_eq!(firing(&monitor.tick(overdue_at).await.unwrap()), [(Condition::Overdue(contacts), false)]);
    assert!(monitor.is_firing(Condition::Overdue(ObjectKind::Deals)));
    hook.server.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn undelivered_alerts_are_retried() {
    let mut broken = receiver(500).await;
    let (mut app, mut monitor, _) = app_and_monitor(broken.url.clone()).await;
    finished(&app.db, "calls", 3, 3, None).await;
    assert!(monitor.tick(Utc::now()).await.unwrap().is_empty(), "500: not delivered");
    assert_eq!(broken.drain().len(), 2, "both conditions were attempted");
    assert!(monitor.tick(Utc::now()).await.unwrap().is_empty());
    assert_eq!(broken.drain().len(), 2, "and attempted again");
    assert!(!monitor.is_firing(Condition::RunFailed(ObjectKind::Calls)));
    broken.server.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn finished_runs_reach_the_duration_histogram() {
    let handle = hubspot_sync::telemetry::prometheus::install().expect("the test process installs the recorder");
    let hook = receiver(200).await;
    let (mut app, mut monitor, _) = app_and_monitor(hook.url.clone()).await;
    monitor.tick(Utc::now()).await.unwrap();
    finished(&app.db, "owners", 4, 0, None).await;
    monitor.tick(Utc::now()).await.unwrap();
    let text = handle.render();
    let owners_bucket = |l: &str| {
        l.starts_with("hubspot_sync_run_duration_seconds_bucket{")
            && l.contains("object=\"owners\"")
            && l.contains("le=\"+Inf\"")
    };
    assert!(text.lines().any(owners_bucket), "{text}");
    assert!(text.contains("hubspot_sync_runs_total{object=\"owners\",status=\"success\"}"), "{text}");
    hook.server.stop(true).await;
    app.stop().await;
}

#[tokio::test]
async fn drift_left_by_a_real_audit_repair_alerts_until_a_repair_clears_it() {
    let mut hook = receiver(200).await;
    let db = TestDb::new().await;
    let sim =
        Sim::start(SimOptions { contacts: 60, deals: 5, calls: 5, owners: 2, workers: 1, ..SimOptions::default() })
            .await
            .unwrap();
    compare::seed(&db, &sim).await;
    let schedules = Schedules::parse_from(["x"]).schedules;
    let webhooks = Arc::new(WebhookStats::new());
    let mut monitor = Monitor::new(db.pool(), webhooks, schedules, Some(Notifier::new(hook.url.clone())), Utc::now());
    assert!(monitor.tick(Utc::now()).await.unwrap().is_empty(), "nothing holds yet");

    // Five contacts vanish here behind the copy's back, and HubSpot cannot read them back for now.
    let client = db.client().await;
    let gone: Vec<String> = client
        .query("DELETE FROM contacts WHERE hubspot_contact_id IN (SELECT hubspot_contact_id FROM contacts ORDER BY 1 LIMIT 5) RETURNING hubspot_contact_id", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(gone.len(), 5);
    // And one row here is older than HubSpot's: stale, also unreadable for now.
    let stale: String = client
        .query_one(
            "UPDATE contacts SET updated_at = updated_at - interval '1 day' WHERE hubspot_contact_id = \
             (SELECT max(hubspot_contact_id) FROM contacts WHERE NOT archived) RETURNING hubspot_contact_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let unreadable = [gone.clone(), vec![stale.clone()]].concat();
    let errors = BatchErrorRequest { object: "contacts".into(), ids: unreadable, ..BatchErrorRequest::default() };
    sim.set_batch_errors(&errors).unwrap();
    let audit = command_for(&db, &sim).args(["audit", "contacts", "--repair"]).output().await.unwrap();
    assert_eq!(audit.status.code(), Some(1), "drift left: {}", String::from_utf8_lossy(&audit.stdout));

    let live: bool = client
        .query_one("SELECT NOT archived FROM contacts WHERE hubspot_contact_id = $1", &[&stale])
        .await
        .unwrap()
        .get(0);
    assert!(live, "a record HubSpot could not read is not taken for merged away");

    let fired = firing(&monitor.tick(Utc::now()).await.unwrap());
    assert_eq!(fired, [(Condition::AuditDrift(ObjectKind::Contacts), true)]);
    let sent = hook.drain();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("contacts drift audit") && sent[0].contains("6 ids still differ"), "{sent:?}");
    assert!(monitor.tick(Utc::now()).await.unwrap().is_empty(), "once while it holds");

    // HubSpot answers again: the next repair leaves nothing, and the alert clears.
    sim.set_batch_errors(&BatchErrorRequest { clear: true, ..errors }).unwrap();
    let audit = command_for(&db, &sim).args(["audit", "contacts", "--repair"]).output().await.unwrap();
    assert_eq!(audit.status.code(), Some(0), "{}", String::from_utf8_lossy(&audit.stdout));
    let fired = firing(&monitor.tick(Utc::now()).await.unwrap());
    assert_eq!(fired, [(Condition::AuditDrift(ObjectKind::Contacts), false)]);
    assert!(hook.drain()[0].contains("resolved"));
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;
    hook.server.stop(true).await;
}

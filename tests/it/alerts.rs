//! Alerts against a local Slack-compatible receiver: each condition is announced once when it
//! starts to hold and once when it clears; undelivered messages are retried; with two instances
//! on one database only the leader sends (each message once), and the other takes over when it
//! goes. Also checks that the monitor records finished runs in the run-duration histogram, and
//! that drift a real audit's repair could not clear alerts until a later repair does.

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, web};
use chrono::{Duration, Utc};
use clap::Parser;
use hubspot_sync::alerts::monitor::Monitor;
use hubspot_sync::alerts::slack::Notifier;
use hubspot_sync::alerts::{Condition, Transition};
use hubspot_sync::config::ScheduleSettings;
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Election, Leadership};
use hubspot_sync::webhook::stats::{Rejection, WebhookStats};
use tokio::sync::mpsc;

use hubspot_sim::{BatchErrorRequest, Sim, SimOptions};
use tokio_util::sync::CancellationToken;

use crate::harness::binary::{ServeBinary, command_for};
use crate::harness::compare::{self, Merges};
use crate::harness::control::{finished, quiet_poller};
use crate::harness::smtp::{self, SmtpServer};
use crate::harness::{PATIENCE, TestApp, TestDb, eventually, free_port, within};

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
    let monitor = Monitor::new(
        app.pool.clone(),
        webhooks.clone(),
        schedules,
        Some(Notifier::new(url)),
        Utc::now(),
        Leadership::always(),
    );
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
    assert!(
        text.contains("hubspot_sync_runs_total{object=\"owners\",status=\"success\",account=\"default\"}"),
        "{text}"
    );
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
    let notifier = Some(Notifier::new(hook.url.clone()));
    let mut monitor = Monitor::new(db.pool(), webhooks, schedules, notifier, Utc::now(), Leadership::always());
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

/// Two instances on one database, each with its election and its monitor checking the same
/// failed run: the message goes out once, from the leader. When the leader goes away, the other
/// takes over and announces what still holds, once (as a restart does).
#[tokio::test]
async fn two_instances_on_one_database_send_each_alert_once() {
    let mut hook = receiver(200).await;
    let db = TestDb::new().await;
    finished(&db, "contacts", 5, 0, Some("HubSpot answered 500 three times")).await;
    let schedules = Schedules::parse_from(["x"]).schedules;
    let mut instances = Vec::new();
    for _ in 0..2 {
        let (election, token) = (Election::new(db.pool()), CancellationToken::new());
        let leadership = election.leadership();
        election.spawn(token.clone());
        let notifier = Some(Notifier::new(hook.url.clone()));
        let stats = Arc::new(WebhookStats::new());
        let monitor = Monitor::new(db.pool(), stats, schedules.clone(), notifier, Utc::now(), leadership.clone());
        instances.push((leadership, monitor, token));
    }
    let leaders = |instances: &[(Leadership, Monitor, CancellationToken)]| -> Vec<usize> {
        (0..instances.len()).filter(|i| instances[*i].0.is_leader()).collect()
    };
    eventually(PATIENCE, "an instance leads", || std::future::ready(!leaders(&instances).is_empty())).await;
    let first = leaders(&instances);
    assert_eq!(first.len(), 1, "one leader");

    for round in 0..2 {
        for (_, monitor, _) in &mut instances {
            monitor.tick(Utc::now()).await.unwrap();
        }
        let sent = hook.drain();
        assert_eq!(sent.len(), if round == 0 { 1 } else { 0 }, "round {round}: {sent:?}");
    }

    // The leader stops (its lock is released); the other leads and announces, once.
    instances[first[0]].2.cancel();
    let other = 1 - first[0];
    eventually(PATIENCE, "the other instance takes over", || std::future::ready(leaders(&instances) == [other])).await;
    for (_, monitor, _) in &mut instances {
        monitor.tick(Utc::now()).await.unwrap();
    }
    let sent = hook.drain();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].contains("contacts sync failed"), "{sent:?}");
    for (_, _, token) in &instances {
        token.cancel();
    }
    hook.server.stop(true).await;
}

/// `hubspot_sync_leader` as the `/metrics` endpoint at `port` reports it, once it does.
async fn leader_gauge(port: u16) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix("hubspot_sync_leader ")).and_then(|v| v.trim().parse().ok())
}

/// The same with two real `serve` processes: the leader (its `hubspot_sync_leader` gauge 1)
/// announces the failed run; the other (gauge 0) says nothing while it stands by, then takes
/// over when the leader is killed and announces it.
#[tokio::test]
async fn two_serve_processes_send_one_alert_and_the_survivor_takes_over() {
    let mut hook = receiver(200).await;
    let db = TestDb::new().await;
    quiet_poller(&db).await;
    finished(&db, "contacts", 5, 0, Some("HubSpot answered 500 three times")).await;
    let serve = |metrics: u16| {
        ServeBinary::new(&db.url())
            .quiet_schedules()
            .env("ALERT_WEBHOOK_URL", hook.url.as_str())
            .env("METRICS_PORT", metrics.to_string())
            .spawn()
    };
    let gauge_is = |port: u16, want: f64| async move { leader_gauge(port).await == Some(want) };

    let (first_metrics, second_metrics) = (free_port(), free_port());
    let first = serve(first_metrics).await;
    let message = within(PATIENCE, "the leader announces", hook.messages.recv()).await.unwrap();
    assert!(message.contains("contacts sync failed"), "{message}");
    eventually(PATIENCE, "the first process says it leads", || gauge_is(first_metrics, 1.0)).await;
    let second = serve(second_metrics).await;
    eventually(PATIENCE, "the second process says it stands by", || gauge_is(second_metrics, 0.0)).await;
    assert!(hook.drain().is_empty(), "only the leader sends");

    assert_eq!(first.kill().await, None, "killed by the signal");
    let message = within(PATIENCE, "the survivor takes over and announces", hook.messages.recv()).await.unwrap();
    assert!(message.contains("contacts sync failed"), "{message}");
    assert_eq!(leader_gauge(second_metrics).await, Some(1.0), "the survivor says it leads");
    second.signal("-TERM");
    let (code, _) = second.exit(PATIENCE).await;
    assert_eq!(code, Some(0));
    assert!(hook.drain().is_empty(), "{:?}", hook.drain());
    hook.server.stop(true).await;
}

/// E-mail alerts from a running `serve`: a local SMTP server (with AUTH) gets one message when
/// a condition starts and one when it clears; neither the message nor the log holds the SMTP
/// password.
#[tokio::test]
async fn email_alerts_announce_a_condition_and_its_clearing_from_serve() {
    let mut smtp = SmtpServer::start().await;
    let db = TestDb::new().await;
    quiet_poller(&db).await;
    finished(&db, "contacts", 5, 0, Some("HubSpot answered 500 three times")).await;
    let serve = ServeBinary::new(&db.url())
        .quiet_schedules()
        .env("ALERT_EMAIL_TO", "ops@example.com, oncall@example.com")
        .env("ALERT_EMAIL_FROM", "hubspot-sync@example.com")
        .env("SMTP_URL", smtp::url(smtp.port, smtp::PASSWORD))
        .env("ALERT_CHECK_INTERVAL", "1s")
        .spawn()
        .await;
    let mail = within(PATIENCE, "the alert e-mail arrives", smtp.mails.recv()).await.unwrap();
    assert!(mail.subject().starts_with("[hubspot-sync] ALERT: contacts sync failed"), "{}", mail.subject());
    assert!(mail.text().contains("hubspot-sync: contacts sync failed: HubSpot answered 500"), "{}", mail.data);
    assert_eq!(mail.to.len(), 2, "{:?}", mail.to);
    assert!(mail.from.contains("hubspot-sync@example.com"), "{}", mail.from);

    finished(&db, "contacts", 5, 0, None).await;
    let mail = within(PATIENCE, "the clearing e-mail arrives", smtp.mails.recv()).await.unwrap();
    assert!(mail.subject().starts_with("[hubspot-sync] resolved: contacts sync recovered"), "{}", mail.subject());
    serve.signal("-TERM");
    let (code, logs) = serve.exit(PATIENCE).await;
    assert_eq!(code, Some(0));
    assert!(smtp.mails.try_recv().is_err(), "one message per transition");
    assert!(!logs.contains(smtp::PASSWORD), "the SMTP password reached the log");
}

/// `hubspot-sync alert-test` with the env of `vars`: exit code, stdout, stderr.
async fn alert_test(vars: &[(&str, String)]) -> (Option<i32>, String, String) {
    let mut cmd = crate::harness::binary::command();
    cmd.arg("alert-test");
    for (name, value) in vars {
        cmd.env(name, value);
    }
    let out = within(PATIENCE, "alert-test ends", cmd.output()).await.unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// `alert-test` sends through every channel and says which delivered; a wrong SMTP password is
/// a failure named as authentication (exit 1) while the webhook still delivers; no channel at
/// all is said and exits 1.
#[tokio::test]
async fn alert_test_reports_each_channel_and_a_wrong_password() {
    let mut hook = receiver(200).await;
    let mut smtp = SmtpServer::start().await;
    let (hook_url, smtp_port) = (hook.url.to_string(), smtp.port);
    let email = |password: &str| {
        vec![
            ("ALERT_WEBHOOK_URL", hook_url.clone()),
            ("ALERT_EMAIL_TO", "ops@example.com".to_owned()),
            ("ALERT_EMAIL_FROM", "hubspot-sync@example.com".to_owned()),
            ("SMTP_URL", smtp::url(smtp_port, password)),
        ]
    };

    let (code, stdout, stderr) = alert_test(&email(smtp::PASSWORD)).await;
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("webhook (ALERT_WEBHOOK_URL): delivered"), "{stdout}");
    assert!(stdout.contains("e-mail (SMTP_URL): delivered"), "{stdout}");
    let mail = smtp.mails.try_recv().expect("the test e-mail");
    assert_eq!(mail.subject(), "[hubspot-sync] test alert");
    assert!(hook.drain()[0].contains("test alert"));

    let wrong = "smtp-wrong-password";
    let (code, stdout, stderr) = alert_test(&email(wrong)).await;
    assert_eq!(code, Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("webhook (ALERT_WEBHOOK_URL): delivered"), "{stdout}");
    assert!(stdout.contains("e-mail (SMTP_URL): failed: authentication failed"), "{stdout}");
    assert!(!stdout.contains(wrong) && !stderr.contains(wrong), "the password was printed: {stdout}{stderr}");
    assert!(smtp.auth_failures.try_recv().is_ok(), "the server refused the password");
    assert!(smtp.mails.try_recv().is_err());

    let (code, _, stderr) = alert_test(&[]).await;
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no alert channel is configured"), "{stderr}");

    let (code, _, stderr) = alert_test(&[("ALERT_EMAIL_TO", "ops@example.com".to_owned())]).await;
    assert_eq!(code, Some(2), "an incomplete e-mail setup is bad usage");
    assert!(stderr.contains("ALERT_EMAIL_FROM is not set"), "{stderr}");
    hook.server.stop(true).await;
}

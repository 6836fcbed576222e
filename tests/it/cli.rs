//! The binary's contract: `--help`, settings errors named by variable, exit codes, `migrate`
//! and `status`.

use std::process::{Command, Output};

use crate::harness::{TestDb, bin};

/// Runs the binary with only the given environment (nothing inherited but PATH).
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin());
    cmd.env_clear().env("PATH", std::env::var_os("PATH").unwrap_or_default()).env("LOG_FORMAT", "json");
    cmd.args(args).envs(env.iter().copied());
    cmd.output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SERVE_VARIABLES: [&str; 28] = [
    "DATABASE_URL",
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_CLIENT_SECRET",
    "HUBSPOT_API_BASE",
    "HUBSPOT_API_VERSION",
    "HUBSPOT_REQUESTS_PER_10S",
    "HUBSPOT_REQUIRE_V3",
    "PUBLIC_URL",
    "PORT",
    "BIND",
    "METRICS_PORT",
    "DATABASE_CA_CERT",
    "QUEUE_CAPACITY",
    "OWNER_ROLE",
    "ALERT_WEBHOOK_URL",
    "ALERT_EMAIL_TO",
    "ALERT_EMAIL_FROM",
    "SMTP_URL",
    "ALERT_CHECK_INTERVAL",
    "OWNER_CHANGE_WEBHOOK_URL",
    "OWNER_CHANGE_WEBHOOK_SECRET",
    "ADMIN_TOKEN",
    "SCHEDULE_CONTACTS",
    "SCHEDULE_DEALS",
    "SCHEDULE_CALLS",
    "SCHEDULE_OWNERS",
    "SCHEDULE_FULL",
    "LOG_FORMAT",
];

#[test]
fn help_of_every_subcommand_lists_its_variables() {
    let serve = run(&["serve", "--help"], &[]);
    assert!(serve.status.success());
    let text = String::from_utf8_lossy(&serve.stdout);
    for var in SERVE_VARIABLES {
        assert!(text.contains(&format!("env: {var}")), "serve --help does not list {var}");
    }
    for (sub, vars) in [
        ("migrate", &["DATABASE_URL", "DATABASE_CA_CERT"][..]),
        ("status", &["DATABASE_URL"][..]),
        ("sync", &["DATABASE_URL", "HUBSPOT_ACCESS_TOKEN", "HUBSPOT_REQUESTS_PER_10S", "OWNER_ROLE"][..]),
        ("demo", &["HUBSPOT_CLIENT_SECRET", "PORT"][..]),
        ("alert-test", &["ALERT_WEBHOOK_URL", "ALERT_EMAIL_TO", "ALERT_EMAIL_FROM", "SMTP_URL"][..]),
    ] {
        let out = run(&[sub, "--help"], &[]);
        assert!(out.status.success(), "{sub} --help failed");
        let text = String::from_utf8_lossy(&out.stdout);
        for var in vars {
            assert!(text.contains(&format!("env: {var}")), "{sub} --help does not list {var}");
        }
    }
}

#[test]
fn help_never_shows_secret_values() {
    let env = [
        ("HUBSPOT_ACCESS_TOKEN", "pat-na1-topsecret"),
        ("HUBSPOT_CLIENT_SECRET", "client-topsecret"),
        ("ADMIN_TOKEN", "admin-topsecret"),
        ("DATABASE_URL", "postgres://u:pw-topsecret@localhost/db"),
        ("ALERT_WEBHOOK_URL", "https://hooks.example.com/T0/hook-topsecret"),
        ("SMTP_URL", "smtp://alerts:smtp-topsecret@mail.example.com:587"),
        ("OWNER_CHANGE_WEBHOOK_URL", "https://app.example.com/hooks/owner-topsecret"),
        ("OWNER_CHANGE_WEBHOOK_SECRET", "hmac-topsecret"),
    ];
    let out = run(&["serve", "--help"], &env);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("topsecret"), "a secret leaked into --help");
}

#[test]
fn a_missing_database_url_is_named_with_exit_code_2() {
    let out = run(&["migrate"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("DATABASE_URL is not set"), "{}", stderr(&out));
}

#[test]
fn invalid_settings_are_named_before_anything_happens() {
    let db = ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/x");
    for (var, value) in [
        ("PORT", "eighty"),
        ("SCHEDULE_CONTACTS", "*/5 * * *"),
        ("HUBSPOT_API_VERSION", "v4"),
        ("HUBSPOT_API_BASE", "not a url"),
        ("HUBSPOT_REQUESTS_PER_10S", "0"),
        ("QUEUE_CAPACITY", "-1"),
        ("SHUTDOWN_GRACE", "25"),
        ("HUBSPOT_REQUIRE_V3", "maybe"),
        ("BIND", "localhost:80"),
        ("SMTP_URL", "http://mail.example.com"),
        ("ALERT_EMAIL_TO", "not an address"),
        ("ALERT_CHECK_INTERVAL", "soon"),
    ] {
        let out = run(&["serve"], &[db, (var, value)]);
        assert_eq!(out.status.code(), Some(2), "{var}={value} was accepted");
        assert!(stderr(&out).contains(var), "the error for {var}={value} does not name it: {}", stderr(&out));
    }
}

#[test]
fn the_transaction_pooler_port_is_refused_with_the_reason() {
    let url = "postgres://postgres.abc:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres";
    let out = run(&["migrate"], &[("DATABASE_URL", url)]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("DATABASE_URL") && err.contains("6543") && err.contains("5432"), "{err}");
    assert!(!err.contains("pw@"), "the password leaked: {err}");
}

#[test]
fn sync_rejects_unknown_objects_as_bad_usage() {
    let out = run(&["sync", "companies"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("companies"));
    assert_eq!(run(&["sync"], &[]).status.code(), Some(2), "at least one object is required");
    assert_eq!(run(&["frobnicate"], &[]).status.code(), Some(2));
}

#[tokio::test]
async fn migrate_then_status_reports_the_latest_runs() {
    let db = TestDb::empty().await;
    let url = db.url();
    let out = run(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("migration(s) applied"));
    let again = run(&["migrate"], &[("DATABASE_URL", &url)]);
    assert!(String::from_utf8_lossy(&again.stdout).contains("up to date"));

    let empty = run(&["status", "--json"], &[("DATABASE_URL", &url)]);
    assert!(empty.status.success(), "{}", stderr(&empty));
    assert_eq!(serde_json::from_slice::<serde_json::Value>(&empty.stdout).unwrap(), serde_json::json!([]));

    db.client()
        .await
        .batch_execute(
            "INSERT INTO sync_logs (sync_type, status, trigger, mode, completed_at, duration_ms, records_processed, records_failed) \
             VALUES ('deals', 'partial', 'manual', 'full', now(), 1234, 50, 2)",
        )
        .await
        .unwrap();
    let json = run(&["status", "--json"], &[("DATABASE_URL", &url)]);
    let rows: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rows[0]["sync_type"], "deals");
    assert_eq!(rows[0]["status"], "partial");
    assert_eq!(rows[0]["records_processed"], 50);
    assert_eq!(rows[0]["records_failed"], 2);
    assert_eq!(rows[0]["duration_ms"], 1234);
    assert!(rows[0]["last_sync_time"].is_string());

    let table = run(&["status"], &[("DATABASE_URL", &url)]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.lines().any(|l| l.starts_with("deals") && l.contains("partial") && l.contains("1234 ms")), "{text}");
    let listed: Vec<&str> = text.lines().skip(1).filter_map(|l| l.split_whitespace().next()).collect();
    assert_eq!(listed, ["deals"], "the table lists the same rows as --json: {text}");
}

#[test]
fn status_against_an_unreachable_database_fails_with_exit_1() {
    let out = run(&["status"], &[("DATABASE_URL", "postgres://postgres@127.0.0.1:1/postgres?sslmode=disable")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot connect to the database"), "{}", stderr(&out));
}

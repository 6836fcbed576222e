//! `hubspot-sync demo`: one command starts a private PostgreSQL, the simulator and `serve`;
//! simulated changes arrive as signed webhooks and land in PostgreSQL; Ctrl-C stops everything.
//! The demo never touches `DATABASE_URL`'s database, a second demo in the same directory leaves
//! the first one alone, restarts converge with the simulator, SIGHUP stops everything, a busy
//! port is named with exit code 3; `serve`, `status` and `sync` say to run `migrate`. The demo
//! runs two simulated accounts, each converging in its own portal.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::harness::{bin, free_port};

fn start_demo(dir: &std::path::Path, port: u16, metrics_port: u16) -> (Child, mpsc::Receiver<String>) {
    start_demo_with(dir, port, metrics_port, 20.0, None)
}

fn start_demo_with(
    dir: &std::path::Path,
    port: u16,
    metrics_port: u16,
    churn: f64,
    database_url: Option<&str>,
) -> (Child, mpsc::Receiver<String>) {
    let mut command = Command::new(bin());
    command
        .args(["demo", "--bind", "127.0.0.1", "--churn-per-s", &churn.to_string(), "--contacts", "300"])
        .args(["--port", &port.to_string(), "--metrics-port", &metrics_port.to_string()])
        .arg("--dir")
        .arg(dir)
        .env_remove("DATABASE_URL")
        .env_remove("ADMIN_TOKEN")
        .env_remove("HUBSPOT_CLIENT_SECRET");
    if let Some(url) = database_url {
        command.env("DATABASE_URL", url);
    }
    let mut child = command
        .env("LOG_FORMAT", "json")
        .env("SCHEDULE_CONTACTS", "0 0 1 1 *")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    (child, rx)
}

/// The whole banner line that starts with `label`, after it.
fn banner_line(lines: &mpsc::Receiver<String>, label: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1))
            && let Some(rest) = line.trim().strip_prefix(label)
        {
            return rest.trim().to_owned();
        }
    }
    panic!("demo printed no '{label}' line");
}

/// The banner line that starts with `label:`, e.g. `database:`.
fn banner_value(lines: &mpsc::Receiver<String>, label: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(line) = lines.recv_timeout(Duration::from_secs(1)) {
            if let Some(rest) = line.trim().strip_prefix(label) {
                return rest.split_whitespace().next().unwrap_or_default().to_owned();
            }
        }
    }
    panic!("demo printed no '{label}' line");
}

async fn contacts_written_after(database_url: &str, since: chrono::DateTime<chrono::Utc>) -> i64 {
    let target = hubspot_sync::store::connect::DbTarget::parse(database_url, None).unwrap();
    let Ok(client) = target.connect_raw("demo test").await else { return 0 };
    client
        .query_one("SELECT count(*) FROM contacts WHERE synced_at > $1::text::timestamptz", &[&since.to_rfc3339()])
        .await
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or(0)
}

fn interrupt(child: &Child) {
    signal(child, "INT");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status().unwrap();
    assert!(status.success());
}

fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("demo did not stop within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_runs_everything_and_stops_cleanly_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let (mut child, lines) = start_demo(dir.path(), port, metrics_port);
    let page = banner_value(&lines, "status page:");
    let database_url = banner_value(&lines, "database:");
    assert_eq!(page, format!("http://127.0.0.1:{port}/"));

    let started = chrono::Utc::now();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut ready = false;
    while Instant::now() < deadline {
        let status = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.map(|r| r.status().as_u16());
        ready |= matches!(status, Ok(200));
        // Contacts are scheduled once a year here, so rows written now came through webhooks
        // (or the start-up run), either way through the simulator, serve and PostgreSQL.
        if ready && contacts_written_after(&database_url, started).await > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(ready, "serve never became ready");
    assert!(contacts_written_after(&database_url, started).await > 0, "no simulated change reached PostgreSQL");
    let page_html = reqwest::get(&page).await.unwrap().text().await.unwrap();
    assert!(page_html.contains("<html"), "the status page is served");

    interrupt(&child);
    let status = wait_exit(&mut child, Duration::from_secs(40));
    assert!(status.success(), "demo exited with {status}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "serve stopped");
    let pg_port = url::Url::parse(&database_url).unwrap().port().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err(), "the private PostgreSQL stopped");
    assert!(dir.path().join("postgres/PG_VERSION").exists(), "its data is kept for the next run");
}

/// Waits (up to a generous bound) until `/readyz` on `port` answers 200.
async fn await_ready(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        let status = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.map(|r| r.status().as_u16());
        if matches!(status, Ok(200)) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the demo on port {port} never became ready");
}

/// Waits until at least one contact has reached the demo's database.
async fn await_contacts(database_url: &str) {
    let since = chrono::DateTime::parse_from_rfc3339("2000-01-01T00:00:00Z").unwrap().to_utc();
    let deadline = Instant::now() + Duration::from_secs(120);
    while contacts_written_after(database_url, since).await == 0 {
        assert!(Instant::now() < deadline, "no contact reached the demo's database");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Stops a demo with `signal` and waits for a clean exit.
fn stop(child: &mut Child, name: &str) {
    signal(child, name);
    let status = wait_exit(child, Duration::from_secs(90));
    assert!(status.success(), "demo exited with {status} after SIG{name}");
}

/// Processes whose command line mentions `needle` (a demo's directory).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if text.contains(needle) {
            found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_never_touches_the_database_in_database_url() {
    let db = crate::harness::TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "INSERT INTO contacts (hubspot_contact_id, email, first_name, archived, created_at, updated_at, \
             synced_at, properties) VALUES ('real-1', 'real@example.com', 'Real', false, '2020-01-01T00:00:00Z', \
             '2020-01-01T00:00:00Z', '2020-01-01T00:00:00Z', '{}')",
        )
        .await
        .unwrap();
    let before: String = client.query_one("SELECT row_to_json(c)::text FROM contacts c", &[]).await.unwrap().get(0);

    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let (mut child, lines) = start_demo_with(dir.path(), port, metrics_port, 20.0, Some(&db.url()));
    let database_url = banner_value(&lines, "database:");
    assert_ne!(url::Url::parse(&database_url).unwrap().port(), url::Url::parse(&db.url()).unwrap().port());
    await_ready(port).await;
    await_contacts(&database_url).await;
    stop(&mut child, "INT");

    let rows: Vec<String> = client
        .query("SELECT row_to_json(c)::text FROM contacts c", &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, vec![before], "the database in DATABASE_URL was changed");
    let runs: i64 = client.query_one("SELECT count(*) FROM sync_logs", &[]).await.unwrap().get(0);
    assert_eq!(runs, 0, "the demo recorded runs in DATABASE_URL's database");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_demo_in_the_same_directory_leaves_the_first_working() {
    let dir = tempfile::tempdir().unwrap();
    let (port, metrics_port) = (free_port(), free_port());
    let (mut first, lines) = start_demo(dir.path(), port, metrics_port);
    let database_url = banner_value(&lines, "database:");
    await_ready(port).await;

    let second = Command::new(bin())
        .args(["demo", "--bind", "127.0.0.1", "--contacts", "300"])
        .args(["--port", &free_port().to_string(), "--metrics-port", &free_port().to_string()])
        .arg("--dir")
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .env("LOG_FORMAT", "json")
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1), "the second demo was not refused");
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("another hubspot-sync demo") && err.contains(&first.id().to_string()), "{err}");

    // The first one still has its database: new simulated changes keep arriving, /readyz is 200.
    let after = chrono::Utc::now();
    let deadline = Instant::now() + Duration::from_secs(120);
    while contacts_written_after(&database_url, after).await == 0 {
        assert!(Instant::now() < deadline, "the first demo stopped writing after the second one was refused");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await.unwrap().status().as_u16();
    assert_eq!(ready, 200);
    stop(&mut first, "INT");
}

/// The demo's two simulated accounts' portal ids (`cli::demo`).
const DEMO_PORTALS: [i64; 2] = [62515, 62516];

/// Differences between the rows of `portal` in the demo's database and its simulator's export,
/// compare.rs style.
async fn demo_differences(database_url: &str, sim_url: &str, portal: i64) -> Vec<String> {
    use crate::harness::compare::{RECORD_KINDS, columns, expected};
    let target = hubspot_sync::store::connect::DbTarget::parse(database_url, None).unwrap();
    let client = target.connect_raw("demo test").await.unwrap();
    let mut diffs = Vec::new();
    for kind in RECORD_KINDS {
        let key = match kind.as_str() {
            "contacts" => "hubspot_contact_id",
            "deals" => "hubspot_deal_id",
            _ => "hubspot_call_id",
        };
        let sql = format!("SELECT {key}, {} FROM {} WHERE portal_id = {portal}", columns(kind), kind.table());
        let mut stored: std::collections::HashMap<String, Vec<Option<String>>> = client
            .query(&sql, &[])
            .await
            .unwrap()
            .into_iter()
            .map(|row| (row.get(0), (1..row.len()).map(|i| row.get::<_, Option<String>>(i)).collect()))
            .collect();
        let export = reqwest::get(format!("{sim_url}/_sim/export/{kind}")).await.unwrap().text().await.unwrap();
        for line in export.lines().filter(|l| !l.trim().is_empty()) {
            let line: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = line["id"].as_str().unwrap().to_owned();
            let archived = line["archived"].as_bool().unwrap();
            let live_row = |values: &Vec<Option<String>>| values.last().unwrap().as_deref() != Some("true");
            match stored.remove(&id) {
                None if !archived => diffs.push(format!("{kind} {id}: missing")),
                Some(values) if archived && live_row(&values) => {
                    diffs.push(format!("{kind} {id}: archived in HubSpot, live in PostgreSQL"));
                }
                Some(values) if !archived && values != expected(kind, &line) => {
                    diffs.push(format!("{kind} {id}: stale"));
                }
                _ => {}
            }
        }
        for (id, values) in stored {
            if values.last().unwrap().as_deref() != Some("true") {
                diffs.push(format!("{kind} {id}: extra (live in PostgreSQL, not in HubSpot)"));
            }
        }
    }
    diffs
}

#[tokio::test(flavor = "multi_thread")]
async fn a_demo_restarted_twice_converges_with_its_simulator() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let (port, metrics_port) = (free_port(), free_port());
        let (mut child, lines) = start_demo(dir.path(), port, metrics_port);
        let database_url = banner_value(&lines, "database:");
        await_ready(port).await;
        await_contacts(&database_url).await;
        // Let the churn change things the next start's simulator will not have.
        let after = chrono::Utc::now();
        let deadline = Instant::now() + Duration::from_secs(120);
        while contacts_written_after(&database_url, after).await == 0 {
            assert!(Instant::now() < deadline, "no simulated change arrived");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        stop(&mut child, "INT");
    }
    // The third start, without churn so the comparison has a still target: each of the two
    // simulated accounts (its own simulator) converges in its own portal.
    let (port, metrics_port) = (free_port(), free_port());
    let (mut child, lines) = start_demo_with(dir.path(), port, metrics_port, 0.0, None);
    let accounts = banner_line(&lines, "accounts:");
    assert!(accounts.contains("62515") && accounts.contains("62516") && accounts.contains("demo-second"), "{accounts}");
    let sims = [banner_value(&lines, "simulator:"), banner_value(&lines, "simulator 2:")];
    assert_ne!(sims[0], sims[1], "each account has its own simulator");
    let database_url = banner_value(&lines, "database:");
    await_ready(port).await;
    for (sim_url, portal) in sims.iter().zip(DEMO_PORTALS) {
        let deadline = Instant::now() + Duration::from_secs(180);
        let mut diffs = demo_differences(&database_url, sim_url, portal).await;
        while !diffs.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_secs(1)).await;
            diffs = demo_differences(&database_url, sim_url, portal).await;
        }
        assert!(
            diffs.is_empty(),
            "portal {portal}: {} differences, first ones:\n{}",
            diffs.len(),
            diffs[..diffs.len().min(10)].join("\n")
        );
    }
    let target = hubspot_sync::store::connect::DbTarget::parse(&database_url, None).unwrap();
    let client = target.connect_raw("demo test").await.unwrap();
    let second: i64 =
        client.query_one("SELECT count(*) FROM contacts WHERE portal_id = 62516", &[]).await.unwrap().get(0);
    assert!(second > 0, "the second account has rows of its own");
    stop(&mut child, "INT");
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_stops_the_demo_and_its_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let dir_text = dir.path().to_string_lossy().into_owned();
    let (port, metrics_port) = (free_port(), free_port());
    let (mut child, lines) = start_demo(dir.path(), port, metrics_port);
    let database_url = banner_value(&lines, "database:");
    await_ready(port).await;
    assert!(!processes_mentioning(&dir_text).is_empty(), "the private PostgreSQL runs from the demo's directory");

    stop(&mut child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !processes_mentioning(&dir_text).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(processes_mentioning(&dir_text), Vec::<String>::new(), "processes left after SIGHUP");
    let pg_port = url::Url::parse(&database_url).unwrap().port().unwrap();
    assert!(std::net::TcpStream::connect(("127.0.0.1", pg_port)).is_err(), "the private PostgreSQL stopped");
    assert!(!dir.path().join("postgres/postmaster.pid").exists(), "PostgreSQL shut down cleanly");
    assert!(!dir.path().join("demo.pid").exists(), "the lock is released");

    // The next start works (no "postmaster.pid already exists") and keeps the admin token.
    let token = std::fs::read_to_string(dir.path().join("admin-token")).unwrap();
    let (mut again, lines) = start_demo(dir.path(), port, metrics_port);
    assert_eq!(banner_value(&lines, "admin token:"), token.trim(), "the admin token changed across restarts");
    await_ready(port).await;
    stop(&mut again, "TERM");
}

#[test]
fn a_busy_port_is_named_with_exit_code_3() {
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let busy = taken.local_addr().unwrap().port().to_string();
    let free = free_port().to_string();
    let dir = tempfile::tempdir().unwrap();
    for (var, port, metrics) in [("PORT", &busy, &free), ("METRICS_PORT", &free, &busy)] {
        let out = Command::new(bin())
            .args(["demo", "--port", port, "--metrics-port", metrics])
            .arg("--dir")
            .arg(dir.path())
            .env_remove("DATABASE_URL")
            .env("LOG_FORMAT", "json")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{var}: {err}");
        assert!(err.contains(&format!("({var}) is already in use")) && err.contains(&busy), "{err}");
        assert!(String::from_utf8_lossy(&out.stdout).is_empty(), "a banner was printed before binding");
    }
}

#[test]
fn demo_help_lists_what_the_demo_reads_and_nothing_it_ignores() {
    let out = Command::new(bin()).args(["demo", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for var in ["PORT", "METRICS_PORT", "ADMIN_TOKEN", "HUBSPOT_CLIENT_SECRET", "DEMO_DIR"] {
        assert!(text.contains(&format!("env: {var}")), "demo --help does not list {var}");
    }
    for var in ["DATABASE_URL", "HUBSPOT_ACCESS_TOKEN", "HUBSPOT_API_BASE", "PUBLIC_URL"] {
        assert!(!text.contains(&format!("env: {var}")), "demo --help lists {var}, which the demo ignores");
    }
}

#[tokio::test]
async fn an_unmigrated_database_gets_the_migrate_hint_from_every_command() {
    let db = crate::harness::TestDb::empty().await;
    let url = db.url();
    let port = free_port().to_string();
    let metrics = free_port().to_string();
    let commands: [&[&str]; 4] = [
        &["serve", "--port", &port, "--metrics-port", &metrics],
        &["status"],
        &["status", "--json"],
        &["sync", "contacts"],
    ];
    for args in commands {
        let out = Command::new(bin())
            .args(args)
            .env("DATABASE_URL", &url)
            .env("HUBSPOT_ACCESS_TOKEN", "pat-test")
            .env("HUBSPOT_API_BASE", "http://127.0.0.1:1")
            .env("LOG_FORMAT", "json")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains("run `hubspot-sync migrate`"), "{args:?}: {err}");
    }
    let tables: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "checking the schema created a table");
}

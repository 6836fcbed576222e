//! Issue 5 (a): webhook ingest. Signed batches of 100 events POSTed to `/webhooks/hubspot` of an
//! in-process server (`runtime::start` with settings parsed by the real command line) by a load
//! generator in this process: many clients, each sending its next request as soon as the answer to
//! the previous one arrived (closed loop), over a keep-alive HTTP/1.1 connection while the server
//! keeps it open (it answers `Connection: close` when keep-alive is off, and the client reconnects;
//! a request's latency then includes its TCP connect).
//!
//! `cargo bench -p hubspot-sync --bench ingest [-- SECONDS CLIENTS,...]` (defaults: 10 s
//! measured after 1 s of warm-up; 50 clients; `BENCH_LOG=json 2>/dev/null` logs every
//! request as production does). PostgreSQL as for the other benches.
//!
//! Issue 15 compares the endpoint with a Node.js receiver built on HubSpot's official SDK
//! (`benches/node-receiver`: Express, `@hubspot/api-client`'s `Signature.isValid` v3, 204), run
//! in the same run by the same load generator with the same signed requests, one after the other
//! on the same cores. It runs when `node` is installed and `npm ci` was run in
//! `benches/node-receiver`; otherwise the table says it was skipped.
//!
//! The bodies are HubSpot's own shape (`contact.propertyChange`, `deal.propertyChange`,
//! `object.propertyChange` for calls), 100 events each, over every id of a seed-sized simulator,
//! signed v1 + v3 as HubSpot signs them (the simulator's signing code) once at start: a run is far
//! shorter than the 5 minutes a v3 timestamp stays valid. The generator is a minimal client (a
//! prepared request written, the status line and headers read) so that it takes as little of the
//! 2 cores it shares with the server as it can.
//!
//! Three settings: fetchers draining the queue against the simulator under HubSpot's default
//! budget (100 requests per 10 s: at most 10 batch reads a second, as in production); the same
//! with no budget (the fetchers re-read every queued id as fast as the cores allow, and the
//! simulator serving them runs on the same cores: a pessimistic bound); and the endpoint alone
//! (HubSpot unreachable, so the fetchers only back off). `QUEUE_CAPACITY` is 10,000,000:
//! the queue never refuses (a 503 would count as an error here).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly by design

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Postgres, machine, quantile, seed_sized, serve_args, thousands};
use hubspot_sim::webhooks::sign;
use hubspot_sim::{Sim, SimOptions};
use hubspot_sync::runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "bench-client-secret";
const EVENTS_PER_BATCH: usize = 100;
const WARM_UP: Duration = Duration::from_secs(1);

/// 100-event bodies over `ids` (subscription prefix, object type id, object id), in turn.
fn bodies(ids: &[(&'static str, Option<&'static str>, u64)], count: usize) -> Vec<Vec<u8>> {
    let now = chrono::Utc::now().timestamp_millis();
    (0..count)
        .map(|b| {
            let events: Vec<_> = (0..EVENTS_PER_BATCH)
                .map(|e| {
                    let n = b * EVENTS_PER_BATCH + e;
                    let (prefix, type_id, id) = ids[n % ids.len()];
                    let mut event = serde_json::json!({
                        "eventId": 1_000_000 + n, "subscriptionId": 2_000_001, "portalId": 62515,
                        "appId": 54321, "occurredAt": now, "subscriptionType": format!("{prefix}.propertyChange"),
                        "attemptNumber": 0, "objectId": id, "propertyName": "firstname",
                        "propertyValue": "Zoë Ångström", "changeSource": "CRM_UI", "sourceId": "userId:2000001",
                    });
                    if let Some(type_id) = type_id {
                        event["objectTypeId"] = type_id.into();
                    }
                    event
                })
                .collect();
            serde_json::to_vec(&events).unwrap()
        })
        .collect()
}

/// Whole HTTP/1.1 requests, signed v1 + v3 now.
fn requests(port: u16, bodies: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let url = format!("http://127.0.0.1:{port}/webhooks/hubspot");
    let uri = sign::signed_uri(&url);
    let ts = chrono::Utc::now().timestamp_millis().to_string();
    bodies
        .iter()
        .map(|body| {
            let mut req = format!(
                "POST /webhooks/hubspot HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\
                 User-Agent: HubSpot Connect 2.0 (http://dev.hubspot.com/) - bench\r\nContent-Length: {}\r\n\
                 X-HubSpot-Signature: {}\r\nX-HubSpot-Signature-Version: v1\r\nX-HubSpot-Signature-v3: {}\r\n\
                 X-HubSpot-Request-Timestamp: {ts}\r\n\r\n",
                body.len(),
                sign::v1(SECRET, body),
                sign::v3(SECRET, "POST", &uri, body, &ts),
            )
            .into_bytes();
            req.extend_from_slice(body);
            req
        })
        .collect()
}

/// Reads one response; returns its status and whether the server closes the connection.
async fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, bool) {
    buf.clear();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection before answering");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).unwrap();
    let status: u16 = head[9..12].parse().unwrap();
    let header = |wanted: &str| {
        head.lines().find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case(wanted).then(|| value.trim().to_owned())
        })
    };
    let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap());
    let close = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the server closed the connection within a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (status, close)
}

/// What one client saw within the measured interval.
#[derive(Default)]
struct Seen {
    latencies_us: Vec<u32>,
    errors: u64,
    /// TCP connections opened (the server may answer `Connection: close`).
    connects: u64,
}

/// One client: keeps its connection open while the server does, else reconnects; a request's
/// latency includes the connect it needed.
async fn client(port: u16, requests: Arc<Vec<Vec<u8>>>, first: usize, measure: Instant, end: Instant) -> Seen {
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(4096);
    let mut seen = Seen::default();
    let mut next = first;
    loop {
        let sent = Instant::now();
        if sent >= end {
            return seen;
        }
        let conn = match &mut stream {
            Some(conn) => conn,
            None => {
                let conn = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
                conn.set_nodelay(true).unwrap();
                seen.connects += 1;
                stream.insert(conn)
            }
        };
        conn.write_all(&requests[next % requests.len()]).await.unwrap();
        let (status, close) = read_response(conn, &mut buf).await;
        if close {
            stream = None;
        }
        let done = Instant::now();
        next += 1;
        if sent >= measure && done <= end {
            seen.latencies_us.push(u32::try_from(done.duration_since(sent).as_micros()).unwrap_or(u32::MAX));
            if status != 204 {
                seen.errors += 1;
            }
        }
    }
}

/// Runs the closed-loop load on its own runtime (2 threads) and merges what it saw.
fn load(port: u16, requests: Arc<Vec<Vec<u8>>>, clients: usize, seconds: u64) -> Seen {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let measure = Instant::now() + WARM_UP;
            let end = measure + Duration::from_secs(seconds);
            let step = requests.len() / clients.max(1);
            let tasks: Vec<_> =
                (0..clients).map(|c| tokio::spawn(client(port, requests.clone(), c * step, measure, end))).collect();
            let mut all = Seen::default();
            for task in tasks {
                let seen = task.await.unwrap();
                all.latencies_us.extend(seen.latencies_us);
                all.errors += seen.errors;
                all.connects += seen.connects;
            }
            all
        })
    })
    .join()
    .unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let seconds: u64 = args.first().map_or(10, |s| s.parse().unwrap());
    let fan: Vec<usize> = args.get(1).map_or_else(|| vec![50], |s| s.split(',').map(|c| c.parse().unwrap()).collect());
    // Production logs one JSON line per request (`ops::request_log`); BENCH_LOG=json does too
    // (to stderr: redirect it), otherwise no subscriber is installed and logging costs ~nothing.
    let logging = std::env::var("BENCH_LOG").is_ok_and(|v| v == "json");
    if logging {
        hubspot_sync::telemetry::init(Some(hubspot_sync::config::LogFormat::Json));
    }
    let pg = Postgres::find().await;
    let sim = Sim::start(seed_sized(SimOptions { search_per_second: 0, requests_per_day: 0, ..SimOptions::default() }))
        .await
        .unwrap();
    let mut ids = Vec::new();
    for (object, prefix, type_id) in
        [("contacts", "contact", None), ("deals", "deal", None), ("calls", "object", Some("0-48"))]
    {
        let live = sim.export_json(object).into_iter().filter(|r| r["archived"] == false);
        ids.extend(live.map(|r| (prefix, type_id, r["id"].as_str().unwrap().parse::<u64>().unwrap())));
    }
    let bodies = bodies(&ids, ids.len().div_ceil(EVENTS_PER_BATCH));
    let body_bytes = bodies.iter().map(Vec::len).sum::<usize>() / bodies.len();
    println!("machine: {}", machine());
    println!(
        "request logging: {}",
        if logging { "JSON lines to stderr, as in production" } else { "off (no subscriber)" }
    );
    println!(
        "{} distinct bodies of {EVENTS_PER_BATCH} events (~{} KB each) over {} ids; {seconds} s measured after {} s warm-up",
        bodies.len(),
        body_bytes / 1024,
        thousands(ids.len() as u64),
        WARM_UP.as_secs()
    );
    println!();
    let mut rows = Vec::new();
    for (setting, api_base, budget) in [
        ("fetchers on (sim), budget 100 / 10 s", sim.url().to_owned(), "100"),
        ("fetchers on (sim), no budget", sim.url().to_owned(), "100000"),
        ("endpoint only (HubSpot unreachable)", "http://127.0.0.1:1".into(), "100000"),
    ] {
        for &clients in &fan {
            let db = pg.scratch().await;
            db.quiet_poller().await;
            let args = serve_args(
                &db.url,
                &api_base,
                SECRET,
                &["--queue-capacity", "10000000", "--hubspot-requests-per-10s", budget, "--shutdown-grace", "1s"],
            );
            let server = runtime::start(args.options().unwrap()).unwrap();
            let requests = Arc::new(requests(server.addr.port(), &bodies));
            let reads_before = sim.stats()["requests_total"].as_u64().unwrap_or(0);
            let seen = tokio::task::spawn_blocking(move || load(server.addr.port(), requests, clients, seconds));
            let mut seen = seen.await.unwrap();
            let reads = sim.stats()["requests_total"].as_u64().unwrap_or(0) - reads_before;
            let load_after = common::load();
            server.stop().await.unwrap();
            let written: i64 = db
                .client()
                .await
                .query_one(
                    "SELECT (SELECT count(*) FROM contacts) + (SELECT count(*) FROM deals) + (SELECT count(*) FROM calls)",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            pg.drop_db(db).await;
            seen.latencies_us.sort_unstable();
            let n = seen.latencies_us.len() as f64;
            let per_s = n / seconds as f64;
            let q = |p| format!("{:.2}", f64::from(quantile(&seen.latencies_us, p)) / 1000.0);
            rows.push(vec![
                setting.to_owned(),
                clients.to_string(),
                thousands(per_s as u64),
                thousands((per_s * EVENTS_PER_BATCH as f64) as u64),
                q(0.5),
                q(0.99),
                q(1.0),
                seen.errors.to_string(),
                thousands(seen.connects),
                format!("{} reads, {} rows", thousands(reads), thousands(written as u64)),
                load_after,
            ]);
        }
    }
    // The Node.js receiver, same generator, same requests (signed for its port).
    let mut ours: Vec<(usize, f64)> = Vec::new();
    for row in rows.iter().filter(|r| r[0].starts_with("fetchers on (sim), budget")) {
        ours.push((row[1].parse().unwrap(), row[2].replace(',', "").parse().unwrap()));
    }
    let mut ratios = Vec::new();
    match node::Receiver::start(SECRET).await {
        Ok(receiver) => {
            for &clients in &fan {
                let port = receiver.port;
                let requests = Arc::new(requests(port, &bodies));
                let seen = tokio::task::spawn_blocking(move || load(port, requests, clients, seconds));
                let mut seen = seen.await.unwrap();
                let load_after = common::load();
                seen.latencies_us.sort_unstable();
                let per_s = seen.latencies_us.len() as f64 / seconds as f64;
                let q = |p| format!("{:.2}", f64::from(quantile(&seen.latencies_us, p)) / 1000.0);
                rows.push(vec![
                    format!("Node.js receiver ({})", receiver.versions),
                    clients.to_string(),
                    thousands(per_s as u64),
                    thousands((per_s * EVENTS_PER_BATCH as f64) as u64),
                    q(0.5),
                    q(0.99),
                    q(1.0),
                    seen.errors.to_string(),
                    thousands(seen.connects),
                    "none (answers 204 after the check)".into(),
                    load_after,
                ]);
                if let Some((_, rust)) = ours.iter().find(|(c, _)| *c == clients) {
                    ratios.push(format!(
                        "{clients} clients: hubspot-sync (fetchers on, budget 100 / 10 s) {} requests/s, Node.js {} requests/s: {:.2}×",
                        thousands(*rust as u64),
                        thousands(per_s as u64),
                        rust / per_s.max(1.0)
                    ));
                }
            }
            receiver.stop().await;
        }
        Err(why) => ratios.push(format!("Node.js receiver skipped: {why}")),
    }
    common::table(
        &[
            "setting",
            "clients",
            "requests/s",
            "events/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "non-204",
            "TCP connects",
            "fetch work during the run",
            "after the run",
        ],
        1,
        &rows,
    );
    println!();
    for line in ratios {
        println!("{line}");
    }
    sim.shutdown().await;
}

/// The Node.js receiver of `benches/node-receiver`, as a child process.
mod node {
    use std::path::PathBuf;
    use std::process::Stdio;

    use tokio::io::AsyncBufReadExt as _;
    use tokio::process::{Child, Command};

    pub struct Receiver {
        pub port: u16,
        /// `node v20.x, @hubspot/api-client 13.x, express 4.x`.
        pub versions: String,
        child: Child,
    }

    impl Receiver {
        pub async fn start(secret: &str) -> Result<Receiver, String> {
            let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/node-receiver");
            let modules = dir.join("node_modules");
            if !modules.is_dir() {
                return Err(format!("run `npm ci` in {} first", dir.display()));
            }
            let node = Command::new("node").arg("--version").output().await.map_err(|e| format!("no node: {e}"))?;
            let version = |package: &str| {
                let raw = std::fs::read_to_string(modules.join(package).join("package.json")).unwrap_or_default();
                let json: serde_json::Value = serde_json::from_str(&raw).unwrap_or_default();
                json["version"].as_str().unwrap_or("?").to_owned()
            };
            let versions = format!(
                "node {}, @hubspot/api-client {}, express {}",
                String::from_utf8_lossy(&node.stdout).trim(),
                version("@hubspot/api-client"),
                version("express")
            );
            let port = super::common::free_port();
            let mut child = Command::new("node")
                .arg("server.js")
                .arg(port.to_string())
                .arg(secret)
                .current_dir(&dir)
                .stdout(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot start node: {e}"))?;
            let stdout = child.stdout.take().ok_or("no stdout")?;
            let mut lines = tokio::io::BufReader::new(stdout).lines();
            let ready = tokio::time::timeout(std::time::Duration::from_secs(30), lines.next_line()).await;
            match ready {
                Ok(Ok(Some(line))) if line.starts_with("listening") => Ok(Receiver { port, versions, child }),
                other => Err(format!("the Node.js receiver did not start: {other:?}")),
            }
        }

        pub async fn stop(mut self) {
            let _ = self.child.kill().await;
        }
    }
}

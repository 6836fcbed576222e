//! Keep-alive on the public port (HubSpot reuses its connections) without slow-loris: one TCP
//! connection carries many signed deliveries, while clients that trickle a head or a body, on
//! a fresh connection or on a kept-alive one after a quick request, or that sit idle, are cut off;
//! and a connection beyond `HTTP_MAX_CONNECTIONS` is closed at once. Raw TCP throughout, so
//! what the server does with the connection is seen, not hidden by a client's pool.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::hooks::{SECRET, signed};
use crate::harness::{PATIENCE, TestApp, eventually, within};
use hubspot_sim::SimOptions;

async fn server(extra: &[(&str, &str)]) -> TestApp {
    // HubSpot unreachable and a long fetch window: ids stay queued, nothing needs HubSpot here.
    let mut builder = TestApp::builder().unreachable_hubspot().arg("--fetch-window", "1h");
    if !extra.iter().any(|(flag, _)| *flag == "--shutdown-grace") {
        builder = builder.arg("--shutdown-grace", "1s");
    }
    for (flag, value) in extra {
        builder = builder.arg(flag, value);
    }
    builder.start().await
}

/// A signed batch of property changes for `ids`, as HubSpot sends it.
fn batch(ids: std::ops::Range<u64>) -> Vec<u8> {
    let events: Vec<_> = ids
        .map(|id| {
            serde_json::json!({"eventId": id, "subscriptionType": "contact.propertyChange", "objectId": id,
            "occurredAt": Utc::now().timestamp_millis(), "propertyName": "firstname", "propertyValue": "x",
            "portalId": 62515, "appId": 54321, "attemptNumber": 0})
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

/// The request head of a signed delivery of `body` (HTTP/1.1: kept alive unless said otherwise),
/// with `pad` bytes of an extra header.
fn delivery_head(addr: SocketAddr, body: &[u8], pad: usize) -> String {
    let url = format!("http://{addr}/webhooks/hubspot");
    let mut head = format!("POST /webhooks/hubspot HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n");
    for (name, value) in signed(SECRET, &url, body, Utc::now().timestamp_millis()) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if pad > 0 {
        head.push_str(&format!("X-Pad: {}\r\n", "p".repeat(pad)));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    head
}

/// An answer read off a connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// The server said it closes the connection after this answer.
    closes: bool,
}

/// One client connection, speaking HTTP/1.1 by hand.
struct Conn {
    stream: TcpStream,
    read: Vec<u8>,
}

impl Conn {
    async fn open(addr: SocketAddr) -> Conn {
        Conn { stream: TcpStream::connect(addr).await.unwrap(), read: Vec::new() }
    }

    /// Sends a signed delivery of `body` and reads its answer (`None`: the connection was closed).
    async fn deliver(&mut self, addr: SocketAddr, body: &[u8]) -> Option<Answer> {
        let mut request = delivery_head(addr, body, 0).into_bytes();
        request.extend_from_slice(body);
        self.stream.write_all(&request).await.ok()?;
        self.answer().await
    }

    /// Sends `GET path` and reads its answer.
    async fn get(&mut self, addr: SocketAddr, path: &str) -> Option<Answer> {
        self.stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).await.ok()?;
        self.answer().await
    }

    /// Whether the server closed the connection (the end of the stream, or a reset) within
    /// [`PATIENCE`], with nothing more to read before.
    async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(PATIENCE, self.stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => self.read.is_empty(),
            Ok(Ok(_)) | Err(_) => false,
        }
    }

    /// The next answer (head and `Content-Length` body); `None` when the server closed first.
    /// Interim answers (`100 Continue`) are skipped.
    async fn answer(&mut self) -> Option<Answer> {
        within(PATIENCE, "an answer or a close", async {
            let mut buf = [0u8; 4096];
            loop {
                if self.read.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n") {
                    self.read.drain(..25);
                }
                if let Some(end) = self.read.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.read[..end]).to_ascii_lowercase();
                    let status = head.split_whitespace().nth(1)?.parse().ok()?;
                    let header = |name: &str| {
                        head.lines().find_map(|l| l.strip_prefix(&format!("{name}:")).map(|v| v.trim().to_owned()))
                    };
                    let length: usize = header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    while self.read.len() < end + 4 + length {
                        match self.stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return None,
                            Ok(n) => self.read.extend_from_slice(&buf[..n]),
                        }
                    }
                    self.read.drain(..end + 4 + length);
                    let closes = header("connection").is_some_and(|v| v == "close");
                    return Some(Answer { status, closes });
                }
                match self.stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.read.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await
    }

    /// Sends `bytes` one a second until the server stops taking them or closes; then reads until
    /// it closes. Panics if the server still takes the trickle after [`PATIENCE`]. What the server
    /// answered, if anything.
    async fn trickle(mut self, bytes: Vec<u8>) -> String {
        let opened = Instant::now();
        let (mut from, mut to) = self.stream.into_split();
        let reader = tokio::spawn(async move {
            let mut answer = std::mem::take(&mut self.read);
            let _ = within(PATIENCE, "the server closes a trickling connection", from.read_to_end(&mut answer)).await;
            String::from_utf8_lossy(&answer).into_owned()
        });
        for byte in bytes {
            if reader.is_finished() || to.write_all(&[byte]).await.is_err() {
                break;
            }
            assert!(opened.elapsed() < PATIENCE, "the server still reads a trickle after {PATIENCE:?}");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        reader.await.unwrap()
    }
}

/// Far more bytes than can be trickled, one a second, within [`PATIENCE`].
fn endless() -> usize {
    2 * PATIENCE.as_secs() as usize
}

/// Before: every connection served one request (`Connection: close`), so the second delivery on
/// a connection found it closed.
#[tokio::test]
async fn one_connection_carries_many_signed_deliveries() {
    let mut app = server(&[]).await;
    let addr = app.addr;
    let mut conn = Conn::open(addr).await;
    for round in 0..20u64 {
        let answer = conn.deliver(addr, &batch(round * 100..round * 100 + 100)).await;
        let answer = answer.unwrap_or_else(|| panic!("delivery {round}: the server closed the connection"));
        assert_eq!(answer.status, 204, "delivery {round}");
        assert!(!answer.closes, "delivery {round}: the server announced it closes the connection");
    }
    let answer = conn.get(addr, "/healthz").await.expect("the connection still serves other requests");
    assert_eq!(answer.status, 200);
    app.stop().await;
}

/// Slow clients of every kind are cut off within a generous bound (each would take over
/// `2 × PATIENCE` if the server kept reading), while a kept-alive client and fresh connections
/// deliver signed batches throughout and get 204 every time. Before: with keep-alive on, actix
/// waited for a kept-alive connection's second head for ever (its head timeout covers the first
/// request only), so the trickled second heads outlasted `PATIENCE`.
#[tokio::test]
async fn slow_clients_are_cut_off_while_signed_deliveries_keep_flowing() {
    let mut app = server(&[]).await;
    let addr = app.addr;
    let body = batch(1..2);
    let mut slow = Vec::new();
    for client in 0..20 {
        slow.push(tokio::spawn(async move {
            let started = Instant::now();
            let mut conn = Conn::open(addr).await;
            let quick = batch(1_000 + client..1_001 + client);
            // Half the clients trickle on a fresh connection, half after a quick delivery on
            // a kept-alive one.
            if client % 2 == 1 {
                assert_eq!(conn.deliver(addr, &quick).await.expect("a quick delivery").status, 204);
            }
            let (what, answer) = match client % 6 {
                // The head, one byte a second.
                0 | 1 => ("a trickled head", conn.trickle(delivery_head(addr, &quick, endless()).into_bytes()).await),
                // A complete head, then the body one byte a second (within its declared length).
                2 | 3 => {
                    let padded = [quick.clone(), vec![b' '; endless()]].concat();
                    conn.stream.write_all(delivery_head(addr, &padded, 0).as_bytes()).await.unwrap();
                    ("a trickled body", conn.trickle(padded).await)
                }
                // Nothing at all.
                _ => ("an idle connection", conn.trickle(Vec::new()).await),
            };
            (client, what, answer, started.elapsed())
        }));
    }
    // Meanwhile: a kept-alive client and fresh connections deliver, all answered 204.
    let mut kept = Conn::open(addr).await;
    let (mut deliveries, mut round) = (0, 0u64);
    while !slow.iter().all(|s| s.is_finished()) {
        round += 1;
        let answer = kept.deliver(addr, &batch(10_000 + round..10_001 + round)).await;
        assert_eq!(answer.expect("the kept-alive delivery connection stays open").status, 204);
        let mut fresh = Conn::open(addr).await;
        assert_eq!(fresh.deliver(addr, &body).await.expect("a fresh connection is served").status, 204);
        deliveries += 2;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for client in slow {
        let (client, what, answer, took) = client.await.unwrap();
        let status = answer.lines().next().unwrap_or_default();
        println!("slow client {client} ({what}): cut off after {took:?}, answered {status:?}");
        if what == "a trickled body" {
            assert!(answer.starts_with("HTTP/1.1 408"), "client {client}, {what}: {answer:?}");
        }
    }
    assert!(deliveries > 0);
    println!("{deliveries} signed deliveries answered 204 meanwhile");
    app.stop().await;
}

/// With `HTTP_MAX_CONNECTIONS=2` and two connections held open (kept alive), a third is closed
/// unanswered as soon as it is accepted; once one of the two closes, new connections are served
/// again. Before: no cap (actix's default is 25,000 per worker), so the third was served.
#[tokio::test]
async fn a_connection_beyond_the_cap_is_closed_until_one_ends() {
    let mut app = server(&[("--http-max-connections", "2"), ("--http-keep-alive", "10m")]).await;
    let addr = app.addr;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = Conn::open(addr).await;
        assert_eq!(conn.get(addr, "/healthz").await.expect("served").status, 200);
        held.push(conn);
    }
    let mut third = Conn::open(addr).await; // the kernel completes the handshake
    let answer = third.get(addr, "/healthz").await;
    assert!(answer.is_none(), "a third connection was served beyond the cap of 2: {answer:?}");
    for conn in &mut held {
        assert_eq!(conn.get(addr, "/healthz").await.expect("the held ones are still served").status, 200);
    }
    drop(held.pop());
    eventually(PATIENCE, "a new connection is served once one of the two closed", || async {
        Conn::open(addr).await.get(addr, "/healthz").await.is_some_and(|a| a.status == 200)
    })
    .await;
    app.stop().await;
}

/// Shutdown with kept-alive connections, keep-alive and grace both an hour: the idle ones are
/// closed at once, a delivery in flight on a kept-alive connection is answered with
/// `Connection: close` and its connection closed, and the server stops, all within
/// [`PATIENCE`] (far below the hour). Before: actix's graceful stop waited for every open
/// connection, and nothing closed an idle kept-alive one before its keep-alive time, so the stop
/// took the hour (on a deploy, the old instance held the port while HubSpot's retries ran out).
#[tokio::test]
async fn shutdown_closes_idle_kept_alive_connections_at_once_and_finishes_the_request_in_flight() {
    // A reachable HubSpot: the delivery may be accepted before the stop closes the queue (the
    // stop runs on its own task), and its ids must then be read within the grace, not wait it
    // out against an unreachable HubSpot.
    let mut app = TestApp::builder()
        .sim(SimOptions::default())
        .arg("--fetch-window", "1h")
        .arg("--http-keep-alive", "1h")
        .arg("--shutdown-grace", "1h")
        .start()
        .await;
    let addr = app.addr;
    let mut idle = Vec::new();
    for _ in 0..5 {
        let mut conn = Conn::open(addr).await;
        assert_eq!(conn.get(addr, "/healthz").await.expect("served").status, 200);
        idle.push(conn);
    }
    // A delivery in flight on a kept-alive connection: its head is complete (the server asked
    // for the body: `100 Continue`, sent once the request reached the app), its body not sent.
    let mut busy = Conn::open(addr).await;
    assert_eq!(busy.get(addr, "/healthz").await.expect("served").status, 200);
    let body = batch(1..101);
    let head = delivery_head(addr, &body, 0).replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    busy.stream.write_all(head.as_bytes()).await.unwrap();
    within(PATIENCE, "100 Continue", async {
        let mut buf = [0u8; 64];
        while !busy.read.starts_with(b"HTTP/1.1 100 Continue\r\n\r\n") {
            let n = busy.stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the server closed the connection before asking for the body");
            busy.read.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let clients = async {
        // `app.stop()` has cancelled the shutdown token when this first runs.
        busy.stream.write_all(&body).await.unwrap();
        let answer = busy.answer().await.expect("the delivery in flight is answered");
        assert!(answer.closes, "the answer given while shutting down says the connection closes: {answer:?}");
        assert!(busy.closed().await, "the connection of the delivery in flight is closed after its answer");
        for (n, conn) in idle.iter_mut().enumerate() {
            assert!(conn.closed().await, "idle kept-alive connection {n} is closed on shutdown");
        }
        answer
    };
    let ((), answer) = tokio::join!(app.stop(), clients);
    println!("the delivery in flight was answered {} (Connection: close)", answer.status);
}

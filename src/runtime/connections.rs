//! What one connection of the public port may hold: keep-alive (HubSpot reuses its connections)
//! without letting a slow client keep a connection, or a place, for long.
//!
//! actix bounds a connection's *first* request head (`client_request_timeout`, 408) and closes a
//! connection idle after a response for the keep-alive time, but once any byte of a later
//! request has arrived it waits for the rest of that head without a bound (its head timer is
//! set once per connection, its keep-alive timer is cleared by the first byte read). A client
//! could send one quick request and then trickle the next head for ever. So each connection
//! gets a watchdog ([`on_connect`]): between a response and the next complete head the
//! connection may spend at most `keep_alive + head` ([`Limits::between_requests`]); past it the
//! watchdog shuts the socket down, and the server drops the connection. A client that starts its
//! next head at any moment the keep-alive allows still has at least `head` to send it; a client
//! that sends nothing is closed by actix at `keep_alive`. [`middleware`] tells the watchdog when a
//! head is complete (the request reaches the app) and when the answer is handed back.
//!
//! The watchdog cannot reach actix's socket, so it keeps a duplicate of its file descriptor
//! (`dup`): shutting that one down ends the TCP connection for both, and the server reads the end
//! of the stream at once. The duplicate is closed when the connection ends.
//!
//! Graceful shutdown ([`on_connect`]'s `closing` token, cancelled on SIGTERM): actix-server's
//! graceful stop waits for every open connection, and actix-http does not tell a kept-alive one
//! that the server stops, so an idle connection would hold the stop until its client's next
//! request or the keep-alive time (and a client that keeps sending, as HubSpot retrying 503s
//! does, holds it for ever). So from the moment `closing` is cancelled:
//! - every answer carries `Connection: close` ([`middleware`]): a request in flight finishes,
//!   then actix closes its connection;
//! - a connection idle after an answer is closed at once: the watchdog shuts down the *reading*
//!   half of its socket, so actix reads the end of the stream, still sends whatever answer it is
//!   writing, then closes (a client whose next request crossed the close sees the connection
//!   end unanswered, the race every keep-alive client retries, as HubSpot does);
//! - a fresh connection that has not sent its first head yet is served once (with
//!   `Connection: close`) or closed by actix's 5 s head timeout.
//!
//! So the stop waits for requests in flight only, never for a client's idle time.
//!
//! Bodies are bounded by the one handler that reads them (`webhook`, 5 s); a body left unread by
//! a handler closes the connection after the answer (actix does not keep such a connection).
//!
//! At most [`Limits::max_connections`] connections are held at once, over all workers: one
//! beyond is closed as soon as it is accepted (HubSpot counts that as a failed delivery and
//! retries it), so a flood of connections holds no more than that many sockets. actix's own
//! per-worker limit (`HttpServer::max_connections`) is not used: in the actix-server this build
//! resolves (2.6, the last for Rust 1.85), a worker that reached its limit accepts again only
//! once two of its connections closed, and never with a limit of one (actix/actix-web#2703,
//! fixed in actix-server 2.9.3, which needs Rust 1.88).

use std::any::Any;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::metric;

/// How long a request head may take, the first on a connection (actix's 408) or a later one
/// (this watchdog).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// The bounds each connection is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for the first byte of the next request on a kept-alive connection.
    pub keep_alive: Duration,
    /// Longest a request head may take once it has started ([`HEAD_TIMEOUT`]).
    pub head: Duration,
    /// Most connections held at once, over all workers.
    pub max_connections: usize,
}

impl Limits {
    /// Longest a connection may spend between handing back an answer and holding the next
    /// complete request head (or between being accepted and its first complete head).
    pub fn between_requests(&self) -> Duration {
        self.keep_alive + self.head
    }
}

/// Where a connection is: waiting for a complete head since an instant (after an answer on it,
/// or since it was accepted), handling a request, or gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Waiting { since: Instant, answered: bool },
    Handling,
    Gone,
}

impl Phase {
    fn accepted() -> Phase {
        Phase::Waiting { since: Instant::now(), answered: false }
    }
}

/// A connection's phase, shared by its watchdog and its requests (one worker thread).
#[derive(Debug)]
struct Clock {
    phase: Cell<Phase>,
    changed: Notify,
}

impl Clock {
    fn set(&self, phase: Phase) {
        self.phase.set(phase);
        self.changed.notify_one();
    }
}

/// Kept in the connection's data for its lifetime: its requests reach the clock through it, and
/// dropping it (the connection ended) lets the watchdog go.
#[derive(Debug)]
pub struct Watched {
    clock: Rc<Clock>,
}

/// Kept in every admitted connection's data: cancelled when the server shuts down, from then on
/// its answers carry `Connection: close`.
#[derive(Clone, Debug)]
struct Closing(CancellationToken);

impl Drop for Watched {
    fn drop(&mut self) {
        self.clock.set(Phase::Gone);
    }
}

/// Handling a request until dropped; then waiting for the next head from that moment.
struct Handling(Rc<Clock>);

impl Drop for Handling {
    fn drop(&mut self) {
        if self.0.phase.get() != Phase::Gone {
            self.0.set(Phase::Waiting { since: Instant::now(), answered: true });
        }
    }
}

/// The connections held at once, over all workers; each [`Held`] counts one.
#[derive(Clone, Debug, Default)]
pub struct OpenConnections(Arc<AtomicUsize>);

impl OpenConnections {
    /// How many are held now.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// One more, unless `max` are held already.
    fn admit(&self, max: usize) -> Option<Held> {
        self.0.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1)).ok()?;
        Some(Held(self.0.clone()))
    }
}

/// Kept in an admitted connection's data: counts it until the connection ends.
#[derive(Debug)]
pub struct Held(Arc<AtomicUsize>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The server's `on_connect` hook (`HttpServer::on_connect`): admits the connection within
/// `limits.max_connections` (closing it at once beyond) and starts its watchdog; once `closing`
/// is cancelled (shutdown), its answers carry `Connection: close` and it is closed as soon as it
/// is idle after one. A connection whose socket cannot be duplicated (out of file descriptors)
/// is served without a watchdog, and counted: on shutdown it closes after its next answer or at
/// the keep-alive time.
pub fn on_connect(
    limits: Limits,
    open: OpenConnections,
    closing: CancellationToken,
) -> impl Fn(&dyn Any, &mut Extensions) + Send + Sync + 'static {
    move |connection, data| {
        let Some(stream) = connection.downcast_ref::<tokio::net::TcpStream>() else { return };
        let Some(held) = open.admit(limits.max_connections) else {
            metrics::counter!(metric::HTTP_CONNECTIONS_REFUSED).increment(1);
            tracing::debug!(max = limits.max_connections, "connection refused: too many open");
            close(stream);
            return;
        };
        data.insert(held);
        data.insert(Closing(closing.clone()));
        match duplicate(stream) {
            Ok(socket) => {
                let clock = Rc::new(Clock { phase: Cell::new(Phase::accepted()), changed: Notify::new() });
                actix_web::rt::spawn(watch(clock.clone(), socket, limits, closing.clone()));
                data.insert(Watched { clock });
            }
            Err(error) => {
                metrics::counter!(metric::HTTP_CONNECTIONS_UNWATCHED).increment(1);
                tracing::warn!(error = %error, "cannot watch a connection (no file descriptor left?)");
            }
        }
    }
}

/// Ends a connection the server has not started to serve: the server reads the end of the
/// stream at once. (Without a spare descriptor it is served after all, within the other bounds.)
fn close(stream: &tokio::net::TcpStream) {
    if let Ok(socket) = duplicate(stream) {
        let _ = socket.shutdown(std::net::Shutdown::Both);
    }
}

fn duplicate(stream: &tokio::net::TcpStream) -> std::io::Result<std::net::TcpStream> {
    use std::os::fd::AsFd as _;
    Ok(std::net::TcpStream::from(stream.as_fd().try_clone_to_owned()?))
}

/// Cuts the connection off when it waits longer than `limits.between_requests()` for a complete
/// head, and closes it once `closing` is cancelled while it is idle after an answer; returns when
/// the connection is gone (closing the duplicate descriptor).
async fn watch(clock: Rc<Clock>, socket: std::net::TcpStream, limits: Limits, closing: CancellationToken) {
    let mut closed = false;
    loop {
        let phase = clock.phase.get();
        match phase {
            Phase::Gone => return,
            Phase::Handling => clock.changed.notified().await,
            Phase::Waiting { answered: true, .. } if closing.is_cancelled() && !closed => {
                // Only the reading half: actix reads the end of the stream, finishes writing
                // an answer it may still hold, and closes the connection.
                tracing::debug!(peer = ?socket.peer_addr().ok(), "shutting down: closing an idle kept-alive connection");
                let _ = socket.shutdown(std::net::Shutdown::Read);
                closed = true;
            }
            Phase::Waiting { since, answered } => {
                tokio::select! {
                    () = clock.changed.notified() => {}
                    () = closing.cancelled(), if answered && !closed => {}
                    () = tokio::time::sleep_until(since + limits.between_requests()) => {
                        if clock.phase.get() == phase {
                            metrics::counter!(metric::HTTP_CONNECTIONS_CUT).increment(1);
                            tracing::debug!(
                                peer = ?socket.peer_addr().ok(),
                                "no complete request head in time on a kept-alive connection; closing it"
                            );
                            let _ = socket.shutdown(std::net::Shutdown::Both);
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Tells the connection's watchdog that a head is complete and, when the answer is handed back
/// (or the request dropped), that the next one is awaited; once the server shuts down, the
/// answer carries `Connection: close`:
/// `App::new().wrap(actix_web::middleware::from_fn(connections::middleware))`.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let handling = req.conn_data::<Watched>().map(|watched| {
        watched.clock.set(Phase::Handling);
        Handling(watched.clock.clone())
    });
    let closing = req.conn_data::<Closing>().cloned();
    let mut response = next.call(req).await;
    if let (Some(Closing(closing)), Ok(response)) = (closing, response.as_mut()) {
        if closing.is_cancelled() {
            response.response_mut().head_mut().set_connection_type(actix_web::http::ConnectionType::Close);
        }
    }
    drop(handling);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn between_requests_leaves_a_whole_head_time_after_the_keep_alive() {
        let limits = Limits { keep_alive: Duration::from_secs(15), head: HEAD_TIMEOUT, max_connections: 1 };
        assert_eq!(limits.between_requests(), Duration::from_secs(20));
    }

    #[test]
    fn connections_are_admitted_up_to_the_cap_and_again_once_one_ends() {
        let open = OpenConnections::default();
        let first = open.admit(2).expect("a first");
        let second = open.admit(2).expect("a second");
        assert!(open.admit(2).is_none(), "none beyond the cap");
        assert_eq!(open.count(), 2);
        drop(first);
        let third = open.admit(2).expect("room again once one ended");
        drop((second, third));
        assert_eq!(open.count(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_cuts_a_connection_that_waits_too_long_and_spares_one_that_is_handled() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits { keep_alive: Duration::from_secs(1), head: Duration::from_secs(1), max_connections: 1 };
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let mut client = std::net::TcpStream::connect(addr).unwrap();
                let (server, _) = listener.accept().unwrap();
                let clock = Rc::new(Clock { phase: Cell::new(Phase::accepted()), changed: Notify::new() });
                let watchdog = tokio::task::spawn_local(watch(clock.clone(), server, limits, CancellationToken::new()));
                // Handling for longer than the bound: not cut.
                clock.set(Phase::Handling);
                tokio::time::sleep(Duration::from_secs(10)).await;
                assert!(!watchdog.is_finished(), "a request being handled is not the watchdog's to bound");
                // Waiting from now: cut once the bound passes.
                drop(Handling(clock.clone()));
                watchdog.await.unwrap();
                use std::io::Read as _;
                let mut rest = Vec::new();
                assert_eq!(client.read_to_end(&mut rest).unwrap(), 0, "the peer sees the connection end");
            })
            .await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_watchdog_leaves_when_the_connection_is_gone() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let local = tokio::task::LocalSet::new();
        local
            .run_until(async move {
                let clock = Rc::new(Clock { phase: Cell::new(Phase::accepted()), changed: Notify::new() });
                let limits = Limits { keep_alive: Duration::from_secs(3600), head: HEAD_TIMEOUT, max_connections: 1 };
                let watchdog = tokio::task::spawn_local(watch(clock.clone(), server, limits, CancellationToken::new()));
                drop(Watched { clock });
                watchdog.await.unwrap();
            })
            .await;
    }
}

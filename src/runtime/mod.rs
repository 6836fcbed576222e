//! Starts the `serve` process's parts under one cancellation token and stops them in order:
//! stop taking requests, let in-flight requests finish within the grace, then return.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::{App, HttpServer};
use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub mod accounts;
pub mod background;
pub mod connections;

use crate::app::{self, AppState};
use crate::fetcher::Fetchers;
use crate::ops::{headers, request_log};
pub use background::Background;

/// How long a client has to send a connection's first request head before it is answered 408
/// and disconnected (later heads: [`connections`]).
pub const CLIENT_REQUEST_TIMEOUT: Duration = connections::HEAD_TIMEOUT;

/// What the public port's connections may hold (`HTTP_KEEP_ALIVE`, `HTTP_MAX_CONNECTIONS`).
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Idle time allowed before the next request on a connection; zero: one request each.
    pub keep_alive: Duration,
    /// Most connections held at once, over all workers.
    pub max_connections: usize,
}

/// What the running server needs.
pub struct ServeOptions {
    pub bind: SocketAddr,
    pub shutdown_grace: Duration,
    pub http: HttpLimits,
    pub state: AppState,
    /// Metrics listener, `LISTEN` task and alert monitor ([`background`]).
    pub background: Background,
    /// The webhook batch fetchers, when a HubSpot token is set (`fetcher`).
    pub realtime: Option<Realtime>,
    /// The reconciliation poller's cron schedules, when a HubSpot token is set (`poller`).
    pub scheduler: Option<Scheduling>,
    /// Which instance leads (schedules, sends alerts), when several share the database; the
    /// scheduler and the alert monitor were given its `leadership()`.
    pub election: Option<crate::poller::Election>,
    /// The fast polling lanes (no webhooks), feeding the fetchers' queue while this process leads.
    pub fast_polling: Option<crate::poller::fast::FastPolling>,
    /// The accounts other than the default one ([`accounts`]).
    pub accounts: Option<Accounts>,
}

/// The other accounts' runtime and what decides which of them run here: this machine's
/// account leases (`cluster::Leases`), whose held set is the [`accounts::AccountSet`]'s source.
pub struct Accounts {
    pub set: accounts::AccountSet,
    /// Started on a token of its own, stopped only once the accounts' parts have stopped (so a
    /// lease is freed only when nothing of its account runs here any more).
    pub leases: crate::cluster::Leases,
    /// Started with the held set and the shutdown token: the webhook hand-over drain
    /// (`cluster::Drain`), feeding the accounts held here their batches received elsewhere.
    pub drain: Box<dyn FnOnce(crate::cluster::HeldPortals, CancellationToken) -> JoinHandle<()> + Send>,
}

/// The other accounts once started.
struct RunningAccounts {
    set: JoinHandle<()>,
    drain: JoinHandle<()>,
    leases: crate::cluster::LeasesHandle,
}

impl RunningAccounts {
    fn start(accounts: Accounts, shutdown: &CancellationToken) -> RunningAccounts {
        // Not the shutdown token: the leases outlive the accounts' stop (see `stop`).
        let leases = accounts.leases.spawn(CancellationToken::new());
        let drain = (accounts.drain)(leases.held(), shutdown.clone());
        let set = accounts.set.spawn(leases.held(), shutdown.clone());
        RunningAccounts { set, drain, leases }
    }

    /// Stops the accounts' parts (within the grace), the drain, then frees the leases: another
    /// machine starts an account only once nothing of it runs here. Batches arriving meanwhile
    /// for an account that stopped here are handed over (`webhook`), not queued.
    async fn stop(self, grace: Duration) {
        tokio::join!(
            stop_within(grace + ACCOUNTS_MARGIN, "the other accounts", self.set),
            stop_within(DRAIN_STOP, "the webhook hand-over drain", self.drain),
        );
        if tokio::time::timeout(LEASES_STOP, self.leases.stop()).await.is_err() {
            tracing::warn!("the account leases were not freed in time; they expire on their own");
        }
    }
}

/// What the poller's scheduler needs; it runs until the shutdown token is cancelled.
pub struct Scheduling {
    pub poller: crate::poller::Poller,
    pub schedules: crate::poller::Schedules,
    /// The scheduler fires only while this process leads.
    pub leadership: crate::poller::Leadership,
}

/// What the batch fetchers need; they drain `state.webhooks`'s queue.
pub struct Realtime {
    pub hubspot: crate::hubspot::HubSpot,
    pub options: crate::fetcher::FetcherOptions,
}

/// A running server: its address, and a way to stop it and wait for it.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// Where `/metrics` is served, when it is.
    pub metrics_addr: Option<SocketAddr>,
    shutdown: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningServer {
    /// The token that stops the server when cancelled (SIGTERM handling cancels it).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server has stopped (after the token was cancelled).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the server task panicked")?
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.wait().await
    }
}

/// Binds and starts the HTTP server; it runs until the returned server's token is cancelled.
pub fn start(options: ServeOptions) -> anyhow::Result<RunningServer> {
    let listener = TcpListener::bind(options.bind).with_context(|| format!("cannot listen on {}", options.bind))?;
    let addr = listener.local_addr()?;
    let ops = options.state.ops.clone();
    let fetchers = match (options.realtime, options.state.webhooks.queue()) {
        (Some(rt), Some(queue)) => {
            Some(Fetchers::start(queue.clone(), rt.hubspot, options.state.pool.clone(), rt.options))
        }
        _ => None,
    };
    let grace = options.shutdown_grace;
    let replay = (options.state.webhooks.replay().clone(), options.state.pool.clone());
    let state = options.state;
    let keep_alive = match options.http.keep_alive {
        Duration::ZERO => actix_web::http::KeepAlive::Disabled,
        idle => actix_web::http::KeepAlive::Timeout(idle),
    };
    let limits = connections::Limits {
        keep_alive: options.http.keep_alive,
        head: connections::HEAD_TIMEOUT,
        max_connections: options.http.max_connections,
    };
    // Cancelled on SIGTERM; from then on the public port's connections close after their answer
    // and at once when idle (`connections`), so the graceful stop waits for requests in flight
    // only, never for a kept-alive client's idle time.
    let shutdown = CancellationToken::new();
    let server = HttpServer::new(move || {
        App::new()
            .wrap(actix_web::middleware::from_fn(request_log::middleware))
            .wrap(headers::security())
            .wrap(actix_web::middleware::from_fn(connections::middleware))
            .configure(|cfg| state.register(cfg))
            .configure(app::configure)
    })
    .disable_signals()
    .shutdown_timeout(options.shutdown_grace.as_secs().max(1))
    // Slow clients: a connection's first head must arrive within 5 s (actix, 408), a later
    // head within keep-alive + 5 s of the previous answer (`connections`' watchdog: actix
    // bounds only the first), a webhook body within 5 s (`webhook::BODY_TIMEOUT`), and at
    // most `max_connections` are held at once, over all workers (one beyond is closed at once).
    .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
    .client_disconnect_timeout(Duration::from_secs(1))
    .keep_alive(keep_alive)
    .on_connect(connections::on_connect(limits, connections::OpenConnections::default(), shutdown.clone()))
    .listen(listener)?
    .run();
    let handle = server.handle();
    let background = options.background.start(&ops, &shutdown);
    let election = options.election.map(|election| election.spawn(shutdown.clone()));
    // The webhook replay rule's writer stops after the last request was answered, so the
    // digests of the last accepted bodies are written too.
    let replay_stop = CancellationToken::new();
    let replay_writer = tokio::spawn(replay.0.run(replay.1, replay_stop.clone()));
    let lanes = options.fast_polling.map(|lanes| lanes.spawn(shutdown.clone()));
    let accounts = options.accounts.map(|accounts| RunningAccounts::start(accounts, &shutdown));
    let (poller, scheduler) = match options.scheduler {
        Some(s) => {
            let task = tokio::spawn(crate::poller::run_scheduler(
                s.poller.clone(),
                s.schedules,
                s.leadership,
                shutdown.clone(),
            ));
            (Some(s.poller), Some(task))
        }
        None => (None, None),
    };
    let metrics_addr = background.metrics_addr;
    let token = shutdown.clone();
    let background_token = shutdown.clone();
    let deadline_handle = server.handle();
    let deadline_token = shutdown.clone();
    let task = tokio::spawn(async move {
        // However a part of the stop below behaves, the server stops within
        // `stop_deadline(grace)` of SIGTERM: past it, open connections are closed and the
        // parts still stopping are left (what they held goes to the next reconciliation run).
        let deadline = tokio::spawn(async move {
            deadline_token.cancelled().await;
            tokio::time::sleep(stop_deadline(grace)).await;
            tracing::error!(
                deadline_ms = stop_deadline(grace).as_millis() as u64,
                "shutdown outlasted its deadline: closing the HTTP server now"
            );
            deadline_handle.stop(false).await;
        });
        let stopper = tokio::spawn(async move {
            token.cancelled().await;
            // Webhooks get 503 from here on while the queue drains and runs in flight finish
            // (or are closed as failed when they outlast the grace); then the HTTP server stops.
            let drain = async {
                // The lanes stop queueing first; then the fetchers read what they queued.
                if let Some(lanes) = lanes {
                    stop_within(grace, "the fast polling lanes", lanes).await;
                }
                if let Some(fetchers) = fetchers {
                    fetchers.drain(grace).await;
                }
            };
            let runs = async {
                if let Some(scheduler) = scheduler {
                    stop_within(grace, "the scheduler", scheduler).await;
                }
                if let Some(poller) = poller {
                    poller.shutdown(grace).await;
                }
            };
            // The other accounts stop beside the default one's parts, each within the grace; then
            // their leases are freed.
            let others = async {
                if let Some(accounts) = accounts {
                    accounts.stop(grace).await;
                }
            };
            tokio::join!(drain, runs, others);
            tracing::info!("shutting down: no new requests, finishing in-flight ones");
            handle.stop(true).await;
        });
        let result = server.await.context("the HTTP server failed");
        stopper.abort();
        replay_stop.cancel();
        background_token.cancel();
        let rest = async {
            let _ = replay_writer.await;
            background.stop().await;
            if let Some(election) = election {
                if let Err(error) = election.await {
                    tracing::error!(error = %error, "the leader election panicked");
                }
            }
        };
        if tokio::time::timeout(AFTER_SERVER, rest).await.is_err() {
            tracing::error!("the background tasks did not stop in time; leaving them");
        }
        deadline.abort();
        result
    });
    tracing::info!(address = %addr, "listening");
    Ok(RunningServer { addr, metrics_addr, shutdown, task })
}

/// How long the background tasks (replay digests, metrics, LISTEN, alerts, maintenance,
/// owner hooks, election) may take to stop once the HTTP server has.
const AFTER_SERVER: Duration = Duration::from_secs(10);

/// Beyond the grace, what the accounts' stop may take: their fetchers' cut-off (1 s) and the
/// last replay digests (1 s); within [`stop_deadline`]'s margin.
const ACCOUNTS_MARGIN: Duration = Duration::from_secs(3);

/// What the hand-over drain may take to stop (its look in flight ends first).
const DRAIN_STOP: Duration = Duration::from_secs(1);

/// What freeing the leases may take once the accounts stopped; with [`ACCOUNTS_MARGIN`] within
/// [`stop_deadline`]'s 5 s margin.
const LEASES_STOP: Duration = Duration::from_millis(1500);

/// The longest a stop may take from SIGTERM to the HTTP server closed: the drain and the runs
/// (each bounded by the grace), then the server's own graceful stop (the grace again), plus a
/// margin.
fn stop_deadline(grace: Duration) -> Duration {
    grace * 2 + Duration::from_secs(5)
}

/// Waits at most `grace` for `task` to end; past it, aborts it.
async fn stop_within(grace: Duration, what: &str, mut task: JoinHandle<()>) {
    if tokio::time::timeout(grace, &mut task).await.is_err() {
        tracing::warn!(task = what, "did not stop within the shutdown grace; aborted");
        task.abort();
    }
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn termination_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod stop_tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_part_that_never_stops_is_aborted_after_the_grace() {
        let task = tokio::spawn(std::future::pending::<()>());
        let abort = task.abort_handle();
        stop_within(Duration::from_secs(3), "a stuck part", task).await;
        tokio::task::yield_now().await;
        assert!(abort.is_finished(), "the stuck part was aborted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_that_stops_in_time_is_awaited() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let _ = tx.send(());
        });
        stop_within(Duration::from_secs(3), "a quick part", task).await;
        assert!(rx.await.is_ok(), "the part ran to its end");
    }

    #[test]
    fn the_stop_deadline_leaves_the_drain_and_the_server_their_grace_each() {
        assert_eq!(stop_deadline(Duration::from_secs(25)), Duration::from_secs(55));
    }
}

//! Starts the `serve` process's parts under one cancellation token and stops them in order:
//! stop taking requests, let in-flight requests finish within the grace, then return.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::app::{self, AppState};

/// What the running server needs.
pub struct ServeOptions {
    pub bind: SocketAddr,
    pub shutdown_grace: Duration,
    pub state: AppState,
}

/// A running server: its address, and a way to stop it and wait for it.
pub struct RunningServer {
    pub addr: SocketAddr,
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
    let state = web::Data::new(options.state);
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(app::configure))
        .disable_signals()
        .shutdown_timeout(options.shutdown_grace.as_secs().max(1))
        .listen(listener)?
        .run();
    let handle = server.handle();
    let shutdown = CancellationToken::new();
    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        let stopper = tokio::spawn(async move {
            token.cancelled().await;
            tracing::info!("shutting down: no new requests, finishing in-flight ones");
            handle.stop(true).await;
        });
        let result = server.await.context("the HTTP server failed");
        stopper.abort();
        result
    });
    tracing::info!(address = %addr, "listening");
    Ok(RunningServer { addr, shutdown, task })
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

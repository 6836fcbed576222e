//! The operations work that runs next to the HTTP server in `serve`: the metrics listener on
//! `METRICS_PORT`, the `LISTEN` task for `trigger_hubspot_sync()`, the alert monitor, the daily
//! maintenance job (retention) and the owner-change webhook's outbox drain. Started
//! by `runtime::start` and stopped with the server's cancellation token.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::alerts::monitor::Monitor;
use crate::maintenance::Maintenance;
use crate::ops::OpsState;
use crate::owner_hooks::Deliverer;
use crate::poller::listen;
use crate::store::connect::DbTarget;
use crate::telemetry::prometheus::{self, MetricsSource};

/// What to run; each part is optional (tests leave out what they do not exercise).
#[derive(Default)]
pub struct Background {
    /// Address of the Prometheus listener.
    pub metrics_bind: Option<SocketAddr>,
    /// The database to `LISTEN` on.
    pub listen: Option<DbTarget>,
    /// The portal id of the account this process runs (`HUBSPOT_PORTAL_ID`): `LISTEN` acts on
    /// triggers for it or for every account (`None`: the default account's, not yet known).
    pub listen_portal: Option<i64>,
    /// The alert and run-metrics monitor, with its check interval.
    pub monitor: Option<(Monitor, Duration)>,
    /// The daily maintenance job (retention), run while this process leads.
    pub maintenance: Option<Maintenance>,
    /// The owner-change outbox drain (`OWNER_CHANGE_WEBHOOK_URL`), run by every instance.
    pub owner_hooks: Option<Deliverer>,
}

/// The running parts.
pub struct RunningBackground {
    /// Where `/metrics` is served, when it could be bound.
    pub metrics_addr: Option<SocketAddr>,
    metrics_server: Option<actix_web::dev::ServerHandle>,
    tasks: Vec<JoinHandle<()>>,
}

impl Background {
    /// Starts every configured part. A metrics port that cannot be bound is logged and skipped:
    /// metrics are not worth stopping the sync for.
    pub fn start(self, ops: &OpsState, shutdown: &CancellationToken) -> RunningBackground {
        let mut running = RunningBackground { metrics_addr: None, metrics_server: None, tasks: Vec::new() };
        if let Some(bind) = self.metrics_bind {
            match prometheus::install()
                .map(|handle| prometheus::server(bind, MetricsSource { handle, queue_depth: ops.queue_depth.clone() }))
            {
                Some(Ok((addr, server))) => {
                    tracing::info!(address = %addr, "metrics listening");
                    running.metrics_addr = Some(addr);
                    running.metrics_server = Some(server.handle());
                    running.tasks.push(tokio::spawn(async move {
                        if let Err(error) = server.await {
                            tracing::error!(error = %error, "the metrics server failed");
                        }
                    }));
                }
                Some(Err(error)) => tracing::error!(address = %bind, error = %error, "cannot serve metrics"),
                None => {}
            }
        }
        if let Some(target) = self.listen {
            let controls = listen::Controls { own: ops.control.clone(), others: ops.accounts.clone() };
            let handle = listen::spawn_with(target, controls, shutdown.clone(), self.listen_portal);
            running.tasks.push(handle.task);
        }
        if let Some((monitor, every)) = self.monitor {
            running.tasks.push(monitor.spawn(every, shutdown.clone()));
        }
        if let Some(maintenance) = self.maintenance {
            running.tasks.push(maintenance.spawn(shutdown.clone()));
        }
        if let Some(deliverer) = self.owner_hooks {
            running.tasks.push(deliverer.spawn(shutdown.clone()));
        }
        running
    }
}

impl RunningBackground {
    /// Stops the metrics listener and waits for every task (the token must be cancelled).
    pub async fn stop(self) {
        if let Some(server) = self.metrics_server {
            server.stop(true).await;
        }
        for task in self.tasks {
            if let Err(error) = task.await {
                tracing::error!(error = %error, "a background task panicked");
            }
        }
    }
}

//! The SQL trigger: `SELECT trigger_hubspot_sync('contacts')` sends `NOTIFY hubspot_sync` with
//! `{"sync_type": "contacts"}` (or `"all"`); this task `LISTEN`s on a dedicated connection (not a
//! pooled one: a pool would recycle it) and starts the requested runs, recorded with trigger
//! `sql`. A notification naming the portal of another account this process runs starts that
//! account's runs.
//!
//! The connection is checked every [`PING_EVERY`] and re-established after any failure (a
//! database restart, a failover) with exponential backoff. Notifications sent while no connection
//! listens are lost, as PostgreSQL does not keep them; the schedule catches up.

use std::time::Duration;

use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::control::{AccountControls, SharedControl};
use crate::kind::ObjectKind;
use crate::store::connect::DbTarget;
use crate::store::notify::{ListenError, Listener};
use crate::store::sync_logs::{RunMode, RunTrigger};
use crate::telemetry::ErrorChain;

/// The channel `trigger_hubspot_sync()` notifies.
pub const CHANNEL: &str = "hubspot_sync";
/// `application_name` of the listening connection.
pub const APPLICATION_NAME: &str = "hubspot-sync listen";
const PING_EVERY: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(10);
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// The running listener.
pub struct ListenHandle {
    /// How many times `LISTEN` has succeeded: 1 after the first connection, +1 per reconnection.
    pub listening: watch::Receiver<u64>,
    pub task: JoinHandle<()>,
}

/// Starts listening for the default account; the task ends when `shutdown` is cancelled.
pub fn spawn(target: DbTarget, control: SharedControl, shutdown: CancellationToken) -> ListenHandle {
    spawn_for(target, control, shutdown, None)
}

/// Starts listening for the account of `portal` (`None`: the default account, whose portal id
/// is not known): notifications for another portal are left to the process that runs it.
pub fn spawn_for(
    target: DbTarget,
    control: SharedControl,
    shutdown: CancellationToken,
    portal: Option<i64>,
) -> ListenHandle {
    spawn_with(target, Controls { own: control, others: AccountControls::default() }, shutdown, portal)
}

/// Who a notification goes to: the default account's poller, or another account's running here.
pub struct Controls {
    pub own: SharedControl,
    /// The other accounts this process runs: a notification naming one of their portals starts
    /// its runs; one naming no portal starts every account's.
    pub others: AccountControls,
}

/// [`spawn_for`], also starting the runs of the other accounts this process runs.
pub fn spawn_with(
    target: DbTarget,
    controls: Controls,
    shutdown: CancellationToken,
    portal: Option<i64>,
) -> ListenHandle {
    let (tx, listening) = watch::channel(0);
    let portal = portal.unwrap_or(crate::store::accounts::UNKNOWN_PORTAL);
    let task = tokio::spawn(run(target, controls, shutdown, tx, portal));
    ListenHandle { listening, task }
}

async fn run(
    target: DbTarget,
    control: Controls,
    shutdown: CancellationToken,
    listening: watch::Sender<u64>,
    portal: i64,
) {
    let mut retry = FIRST_RETRY;
    loop {
        let session = tokio::select! {
            _ = shutdown.cancelled() => return,
            session = session(&target, &control, &listening, portal) => session,
        };
        match session {
            // The connection worked for a while: start backing off from the beginning.
            Ok(()) => retry = FIRST_RETRY,
            Err(error) => {
                tracing::warn!(error = %ErrorChain(&error), retry_in_ms = retry.as_millis() as u64, "the LISTEN connection is unavailable");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(retry) => {}
        }
        retry = (retry * 2).min(MAX_RETRY);
    }
}

/// One connection's life: connect, `LISTEN`, dispatch until the connection fails. `Ok` when it
/// listened and later ended, `Err` when it could not start.
async fn session(
    target: &DbTarget,
    control: &Controls,
    listening: &watch::Sender<u64>,
    portal: i64,
) -> Result<(), ListenError> {
    let mut listener = Listener::start(target, APPLICATION_NAME, CHANNEL).await?;
    listening.send_modify(|n| *n += 1);
    tracing::info!(db.channel = CHANNEL, "listening for trigger_hubspot_sync() notifications");
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            payload = listener.next_payload() => match payload {
                Some(payload) if named_portal(&payload).is_none() => {
                    // Every account: the default one's and those of the others running here.
                    dispatch(&control.own, &payload).await;
                    for theirs in control.others.all() {
                        dispatch(&theirs, &payload).await;
                    }
                }
                Some(payload) if for_portal(&payload, portal) => dispatch(&control.own, &payload).await,
                Some(payload) => match named_portal(&payload).and_then(|p| control.others.get(p)) {
                    Some(theirs) => dispatch(&theirs, &payload).await,
                    None => tracing::debug!(db.channel = CHANNEL, "a trigger for an account this process does not run"),
                },
                None => break,
            },
            _ = ping.tick() => {
                if !listener.alive(PING_TIMEOUT).await {
                    break;
                }
            }
        }
    }
    tracing::warn!(db.channel = CHANNEL, "the LISTEN connection was lost; reconnecting");
    Ok(())
}

#[derive(Deserialize)]
struct Payload {
    sync_type: String,
    /// `trigger_hubspot_sync(sync_type, portal_id)`: `None` for every account.
    #[serde(default)]
    portal_id: Option<i64>,
}

/// Whether a notification payload is for the account of `portal` (or for every account).
pub fn for_portal(payload: &str, portal: i64) -> bool {
    serde_json::from_str::<Payload>(payload).is_ok_and(|p| p.portal_id.is_none_or(|p| p == portal))
}

/// The portal a notification payload names, if any.
fn named_portal(payload: &str) -> Option<i64> {
    serde_json::from_str::<Payload>(payload).ok()?.portal_id
}

/// The objects a notification payload asks for; `None` when it is not understood.
pub fn requested(payload: &str) -> Option<Vec<ObjectKind>> {
    let payload: Payload = serde_json::from_str(payload).ok()?;
    match payload.sync_type.as_str() {
        "all" => Some(ObjectKind::ALL.to_vec()),
        one => one.parse().ok().map(|kind| vec![kind]),
    }
}

/// Whether a notification payload asks for the association sweep.
pub fn asks_for_associations(payload: &str) -> bool {
    serde_json::from_str::<Payload>(payload).is_ok_and(|p| p.sync_type == super::associations::SYNC_TYPE)
}

async fn dispatch(control: &SharedControl, payload: &str) {
    if asks_for_associations(payload) {
        match control.trigger_associations(RunTrigger::Sql).await {
            Ok(run_id) => tracing::info!(run.id = %run_id, "association sweep started by trigger_hubspot_sync()"),
            Err(error) => {
                tracing::warn!(error = %error, "trigger_hubspot_sync() could not start the association sweep")
            }
        }
        return;
    }
    let Some(kinds) = requested(payload) else {
        tracing::warn!(db.channel = CHANNEL, "ignored a notification that names no known sync type");
        return;
    };
    for kind in kinds {
        match control.trigger(kind, RunMode::Incremental, RunTrigger::Sql).await {
            Ok(run_id) => {
                tracing::info!(object.kind = %kind, run.id = %run_id, "sync started by trigger_hubspot_sync()")
            }
            Err(error) => {
                tracing::warn!(object.kind = %kind, error = %error, "trigger_hubspot_sync() could not start a sync")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads() {
        assert_eq!(requested(r#"{"sync_type":"deals"}"#), Some(vec![ObjectKind::Deals]));
        assert_eq!(requested(r#"{"sync_type":"all"}"#), Some(ObjectKind::ALL.to_vec()));
        assert_eq!(requested(r#"{"sync_type":"companies"}"#), None);
        assert_eq!(requested("contacts"), None);
        assert!(asks_for_associations(r#"{"sync_type":"associations"}"#));
        assert!(!asks_for_associations(r#"{"sync_type":"all"}"#));
        assert!(for_portal(r#"{"sync_type":"all","portal_id":null}"#, 1001), "every account");
        assert!(for_portal(r#"{"sync_type":"all"}"#, 1001), "a payload of before accounts");
        assert!(for_portal(r#"{"sync_type":"all","portal_id":1001}"#, 1001));
        assert!(!for_portal(r#"{"sync_type":"all","portal_id":2002}"#, 1001), "another account's");
    }
}

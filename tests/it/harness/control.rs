//! A stand-in for the poller behind the ops surface, and finished runs recorded as the poller
//! records them.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use futures_util::future::BoxFuture;
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::control::{SyncControl, TriggerError};
use hubspot_sync::store::accounts::{self, NewAccount};
use hubspot_sync::store::connect::DbTarget;
use hubspot_sync::store::sync_logs::{self, RunMode, RunOutcome, RunTrigger};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::TestDb;

/// The admin token of apps built with `.admin_token(ADMIN_TOKEN)`.
pub const ADMIN_TOKEN: &str = "test-admin-token-5f0c1e";

/// A run start request that reached the control.
pub type Started = (ObjectKind, RunMode, RunTrigger, Uuid);

/// Stands in for the poller: records a `running` row in `sync_logs` and reports the call.
pub struct RecordingControl {
    target: DbTarget,
    started: mpsc::UnboundedSender<Started>,
    pub calls: Mutex<Vec<Started>>,
}

impl RecordingControl {
    pub fn new(target: DbTarget) -> (Arc<Self>, mpsc::UnboundedReceiver<Started>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Self { target, started: tx, calls: Mutex::new(Vec::new()) }), rx)
    }
}

/// The next run [`RecordingControl`] reports for every object but owners.
pub fn next_run_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 1, 0, 5, 0).unwrap()
}

impl SyncControl for RecordingControl {
    fn trigger(
        &self,
        kind: ObjectKind,
        mode: RunMode,
        trigger: RunTrigger,
    ) -> BoxFuture<'_, Result<Uuid, TriggerError>> {
        Box::pin(async move {
            let mut conn =
                self.target.connect("test control").await.map_err(|e| TriggerError::Failed(e.to_string()))?;
            let id = sync_logs::start_run(&mut conn, kind.as_str(), trigger, mode)
                .await
                .map_err(|e| TriggerError::Failed(e.to_string()))?;
            self.calls.lock().unwrap().push((kind, mode, trigger, id));
            let _ = self.started.send((kind, mode, trigger, id));
            Ok(id)
        })
    }

    fn next_runs(&self) -> Vec<(ObjectKind, Option<DateTime<Utc>>)> {
        ObjectKind::ALL.into_iter().map(|k| (k, (k != ObjectKind::Owners).then(next_run_at))).collect()
    }
}

/// Records a finished scheduled incremental run of `kind` in `sync_logs`; its id.
pub async fn finished(db: &TestDb, kind: &str, processed: i32, failed: i32, fatal: Option<&str>) -> Uuid {
    record_finished(db.conn().await, kind, processed, failed, fatal).await
}

/// [`finished`] for the account of `portal_id`: a row of its own, as its pool's connections write
/// them.
pub async fn finished_for(
    db: &TestDb,
    portal_id: i64,
    kind: &str,
    processed: i32,
    failed: i32,
    fatal: Option<&str>,
) -> Uuid {
    let mut conn = db.conn().await;
    accounts::enter(&mut conn, portal_id).await.unwrap();
    record_finished(conn, kind, processed, failed, fatal).await
}

/// The default account becomes portal [`DEFAULT_PORTAL`] and account [`OTHER_PORTAL`] ("emea",
/// its token in `HUBSPOT_TOKEN_2002`) is added.
pub async fn two_accounts(db: &TestDb) {
    let mut conn = db.conn().await;
    accounts::adopt_default_portal(&mut conn, DEFAULT_PORTAL).await.unwrap();
    let emea = NewAccount {
        portal_id: OTHER_PORTAL,
        name: "emea".into(),
        token_env: format!("HUBSPOT_TOKEN_{OTHER_PORTAL}"),
        client_secret_env: Some(format!("HUBSPOT_SECRET_{OTHER_PORTAL}")),
        api_base: None,
        requests_per_10s: None,
        schedule_incremental: None,
        schedule_full: None,
    };
    accounts::add(&mut conn, emea).await.unwrap();
}

/// The default account's portal id after [`two_accounts`].
pub const DEFAULT_PORTAL: i64 = 1001;
/// The other account's.
pub const OTHER_PORTAL: i64 = 2002;

async fn record_finished(
    mut conn: diesel_async::AsyncPgConnection,
    kind: &str,
    processed: i32,
    failed: i32,
    fatal: Option<&str>,
) -> Uuid {
    let id = sync_logs::start_run(&mut conn, kind, RunTrigger::Schedule, RunMode::Incremental).await.unwrap();
    let outcome = RunOutcome {
        records_processed: processed,
        records_failed: failed,
        fatal_error: fatal.map(str::to_owned),
        details: None,
    };
    sync_logs::finish_run(&mut conn, id, &outcome).await.unwrap();
    id
}

/// Records a successful run of every object, so `serve` starts no catch-up run of its own.
pub async fn quiet_poller(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "INSERT INTO sync_logs (sync_type, status, trigger, mode, completed_at, duration_ms) \
             SELECT k, 'success', 'manual', 'full', now(), 0 FROM unnest(ARRAY['contacts','deals','calls','owners']) k",
        )
        .await
        .unwrap();
}

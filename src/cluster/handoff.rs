//! [`Drain`]: the lease holder's side of the webhook hand-over.
//!
//! A machine that receives a verified batch for an account another machine runs stores it in
//! `webhook_handoff` (`store::cluster::push`, durably, before its 204). The holder's drain looks
//! every `HANDOFF_POLL` for batches of the accounts it runs and, per account, takes up to
//! `HANDOFF_BATCH` of them (`DELETE .. FOR UPDATE SKIP LOCKED .. RETURNING`) in a transaction
//! that stays open while the sink (the account's intake) handles them: it commits when the sink
//! succeeded, and rolls back (the batches are there again for the next look) when the sink
//! failed or the process died. Concurrent drainers skip each other's rows, so each batch is
//! handed on once.

use std::collections::BTreeSet;
use std::time::Duration;

use diesel_async::AsyncConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::HeldPortals;
use crate::config::ClusterSettings;
use crate::store::cluster::{self, HandedOver};
use crate::store::{Pool, StoreError};
use crate::telemetry::ErrorChain;

/// Why a look at the hand-over table failed (the batches it took are back in the table).
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the intake refused handed-over webhooks of portal {portal_id}: {source}")]
    Sink {
        portal_id: i64,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl From<diesel::result::Error> for DrainError {
    fn from(e: diesel::result::Error) -> Self {
        DrainError::Store(StoreError::Query(e))
    }
}

/// The hand-over drain of one machine; `sink(portal_id, batches)` is the account's intake.
pub struct Drain<F> {
    pool: Pool,
    held: HeldPortals,
    poll: Duration,
    batch: i64,
    sink: F,
}

impl<F, Fut, E> Drain<F>
where
    F: Fn(i64, Vec<HandedOver>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    /// A drain of the portals `held` names, over `pool`'s database (any account's pool: the
    /// table is not portal-scoped).
    pub fn new(pool: Pool, held: HeldPortals, settings: &ClusterSettings, sink: F) -> Drain<F> {
        Drain { pool, held, poll: settings.handoff_poll, batch: i64::from(settings.handoff_batch), sink }
    }

    /// Looks every `HANDOFF_POLL` until `shutdown`.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(error) = self.drain_once().await {
                    tracing::warn!(error = %ErrorChain(&error), "cannot hand over webhooks; retrying");
                }
                tokio::select! {
                    () = tokio::time::sleep(self.poll) => {}
                    () = shutdown.cancelled() => return,
                }
            }
        })
    }

    /// Hands every batch waiting for the portals held now to the sink; how many it handed.
    pub async fn drain_once(&self) -> Result<usize, DrainError> {
        let held: Vec<i64> = self.held.borrow().iter().copied().collect();
        if held.is_empty() {
            return Ok(0);
        }
        let waiting = {
            let mut conn = self.pool.get().await.map_err(StoreError::from)?;
            cluster::waiting_portals(&mut conn, &held).await?
        };
        let mut handed = 0;
        for portal_id in waiting {
            loop {
                let n = self.hand_over(portal_id).await?;
                handed += n;
                if n < self.batch as usize {
                    break;
                }
            }
        }
        Ok(handed)
    }

    /// Takes up to a batch of `portal_id`'s rows and gives them to the sink in one transaction,
    /// while this machine still runs the account.
    async fn hand_over(&self, portal_id: i64) -> Result<usize, DrainError> {
        if !self.runs(portal_id) {
            return Ok(0);
        }
        let mut conn = self.pool.get().await.map_err(StoreError::from)?;
        conn.transaction(async |conn| {
            let rows = cluster::take_handed_over(conn, portal_id, self.batch).await?;
            let n = rows.len();
            if n > 0 {
                (self.sink)(portal_id, rows).await.map_err(|e| DrainError::Sink { portal_id, source: Box::new(e) })?;
            }
            Ok(n)
        })
        .await
    }

    fn runs(&self, portal_id: i64) -> bool {
        let held: &BTreeSet<i64> = &self.held.borrow();
        held.contains(&portal_id)
    }
}

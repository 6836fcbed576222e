//! Where [`super::Wanted`] comes from in a process that runs every account it can: the accounts
//! table (every account but the default one), read every [`EVERY`], while this process leads
//! (`poller::leader`), and the empty set while it does not, so with several instances on one
//! database each account's parts, and its budget, live in one process. Swappable: whatever
//! sends a `BTreeSet<i64>` of portal ids on a `watch` decides which accounts run here.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::Wanted;
use crate::poller::Leadership;
use crate::store::{Pool, accounts};

/// How often the accounts table is read.
pub const EVERY: Duration = Duration::from_secs(10);

/// The non-default accounts of the table while `leadership` holds, re-read every [`EVERY`] (and
/// at once when leadership changes) until `shutdown`. While the table cannot be read the last
/// set is kept.
pub fn table(pool: Pool, mut leadership: Leadership, shutdown: CancellationToken) -> Wanted {
    let (tx, rx) = watch::channel(BTreeSet::new());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            let wanted = if leadership.is_leader() { read(&pool).await } else { Some(BTreeSet::new()) };
            if let Some(wanted) = wanted {
                tx.send_if_modified(|current| {
                    let changed = *current != wanted;
                    *current = wanted;
                    changed
                });
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = tick.tick() => {}
                () = leadership.changed() => {}
            }
        }
    });
    rx
}

/// The portal ids of every account but the default one; `None` when the table cannot be read.
async fn read(pool: &Pool) -> Option<BTreeSet<i64>> {
    let listed = async { accounts::list(&mut *pool.get().await?).await.map_err(crate::store::StoreError::from) }.await;
    match listed {
        Ok(list) => Some(list.into_iter().filter(|a| !a.is_default).map(|a| a.portal_id).collect()),
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::ErrorChain(&e), "cannot read the accounts; keeping the ones running");
            None
        }
    }
}

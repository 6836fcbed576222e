//! Which instance leads: the one holding the leader advisory lock (`store::locks`) on a
//! connection of its own. Several instances may share a database; only the leader fires the cron
//! schedules (`scheduler`) and sends alerts (the alert monitor above reads [`Leadership`]), the
//! others stand by and take over once the lock is free.
//!
//! **Bounded, never two at once.** The leader pings its connection every [`CHECK`] and gives the
//! ping [`PING_TIMEOUT`] to answer (PostgreSQL also cancels any of its statements after that
//! long). A ping that fails or does not answer in time (a half-open connection: the network gone
//! without a reset, a PostgreSQL that no longer answers) ends the leadership at once and closes
//! the connection. So a leader cut off from PostgreSQL stops within [`STEP_DOWN_WITHIN`], before
//! PostgreSQL, whose keepalives end a silent client's session within
//! `store::connect::DEAD_PEER_AFTER`, frees the lock for another instance. Followers try for the
//! lock every [`CHECK`] on a connection they keep, so one takes over within [`CHECK`] of the
//! lock's release (at once when the leader shuts down or its process dies: its connection closes).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel_async::AsyncPgConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::metric;
use crate::store::{self, Pool, StoreError, locks};
use crate::telemetry::ErrorChain;

/// How often the leader pings its connection, and a follower tries for the lock.
pub const CHECK: Duration = Duration::from_secs(10);
/// How long a ping (or a try for the lock) may take before the connection is given up.
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a leader's schedule loop sleeps before it looks at the clock again
/// ([`Leadership::sleep_leading`]).
pub const LONGEST_SLEEP: Duration = Duration::from_secs(60);
/// The longest a leader cut off from PostgreSQL goes on leading.
pub const STEP_DOWN_WITHIN: Duration = CHECK.saturating_add(PING_TIMEOUT);

/// Whether this process leads, as the election last found; cheap to clone and to ask.
#[derive(Clone, Debug)]
pub struct Leadership {
    leading: watch::Receiver<bool>,
}

impl Leadership {
    /// A process alone on its database, that always leads (tests, one-off tools).
    pub fn always() -> Leadership {
        let (_, leading) = watch::channel(true);
        Leadership { leading }
    }

    pub fn is_leader(&self) -> bool {
        *self.leading.borrow()
    }

    /// Resolves once this process leads (at once if it does); never once the election stopped.
    pub async fn acquired(&mut self) {
        self.until(true).await;
    }

    /// Resolves once this process no longer leads; never once the election stopped.
    pub async fn lost(&mut self) {
        self.until(false).await;
    }

    /// Sleeps until `next` (at most [`LONGEST_SLEEP`], so a clock change is noticed) unless the
    /// leadership is lost or `shutdown` fires first. True when this process still leads after
    /// the sleep: the caller's schedule loop goes on; false: it returns.
    pub async fn sleep_leading(&mut self, next: Option<DateTime<Utc>>, shutdown: &CancellationToken) -> bool {
        let wait = next.map_or(LONGEST_SLEEP, |at| (at - Utc::now()).to_std().unwrap_or_default().min(LONGEST_SLEEP));
        tokio::select! {
            () = tokio::time::sleep(wait) => self.is_leader(),
            () = self.lost() => false,
            () = shutdown.cancelled() => false,
        }
    }

    /// Resolves at the election's next finding (whatever it is); never once it stopped.
    pub async fn changed(&mut self) {
        if self.leading.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    async fn until(&mut self, leading: bool) {
        if self.leading.wait_for(|now| *now == leading).await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

/// The election loop of one process: stands by, takes the lock when it is free, holds it while
/// its connection answers.
pub struct Election {
    pool: Pool,
    leading: watch::Sender<bool>,
}

impl Election {
    /// An election over `pool`'s database; nothing happens until [`Election::spawn`].
    pub fn new(pool: Pool) -> Election {
        Election { pool, leading: watch::Sender::new(false) }
    }

    /// What the election finds, for those that act only while this process leads.
    pub fn leadership(&self) -> Leadership {
        Leadership { leading: self.leading.subscribe() }
    }

    /// Runs the election until `shutdown`; the lock is released then.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(self.run(shutdown))
    }

    async fn run(self, shutdown: CancellationToken) {
        let mut standby: Option<AsyncPgConnection> = None;
        let mut announced = false;
        self.publish(false);
        loop {
            match self.try_lead(&mut standby).await {
                Ok(Some(leader)) => {
                    announced = false;
                    self.lead(leader, &shutdown).await;
                    if shutdown.is_cancelled() {
                        return;
                    }
                }
                Ok(None) if !announced => {
                    tracing::info!("another instance leads (schedules runs, sends alerts); standing by");
                    announced = true;
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::warn!(error = %ErrorChain(&error), "cannot try for the leader lock; retrying");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(CHECK) => {}
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// Tries for the lock on the kept connection (opened and bounded first if there is none);
    /// the connection when it now holds the lock. A failed or timed-out try drops the connection.
    async fn try_lead(&self, standby: &mut Option<AsyncPgConnection>) -> Result<Option<AsyncPgConnection>, StoreError> {
        let mut conn = match standby.take() {
            Some(conn) => conn,
            None => {
                let mut conn = locks::dedicated(&self.pool).await?;
                bounded(PING_TIMEOUT, locks::bound_statements(&mut conn, PING_TIMEOUT)).await?;
                conn
            }
        };
        if bounded(PING_TIMEOUT, locks::try_lock_leader(&mut conn)).await? {
            return Ok(Some(conn));
        }
        *standby = Some(conn);
        Ok(None)
    }

    /// Leads while `conn` answers its pings in time; returns (dropping `conn`, so releasing the
    /// lock) when it does not, or at shutdown.
    async fn lead(&self, mut conn: AsyncPgConnection, shutdown: &CancellationToken) {
        self.publish(true);
        tracing::info!("this instance now leads (schedules runs, sends alerts)");
        loop {
            tokio::select! {
                () = tokio::time::sleep(CHECK) => {}
                () = shutdown.cancelled() => break,
            }
            if let Err(error) = bounded(PING_TIMEOUT, store::ping_conn(&mut conn)).await {
                tracing::warn!(
                    error = %ErrorChain(&error),
                    "the leader lock's connection does not answer; no longer leading, standing by"
                );
                break;
            }
        }
        drop(conn);
        self.publish(false);
    }

    /// Sets the gauge, then tells those who act on it (so the gauge never lags what they do).
    fn publish(&self, leading: bool) {
        metrics::gauge!(metric::LEADER).set(if leading { 1.0 } else { 0.0 });
        self.leading.send_replace(leading);
    }
}

/// A database step that did not answer in time (the connection is then given up).
#[derive(Debug, thiserror::Error)]
#[error("the database did not answer within {0:?}")]
pub struct NoAnswer(pub Duration);

/// `step`, failed with [`NoAnswer`] if it takes longer than `limit`.
async fn bounded<T>(
    limit: Duration,
    step: impl std::future::Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(limit, step).await {
        Ok(result) => result,
        Err(_) => Err(StoreError::Unavailable(Box::new(NoAnswer(limit)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::connect::DEAD_PEER_AFTER;

    #[test]
    fn a_cut_off_leader_steps_down_before_postgresql_frees_its_lock() {
        // The last answered ping was at most CHECK ago when the network goes; PostgreSQL counts
        // its keepalive silence from then too. So the leader stops first: no two leaders at once.
        assert!(STEP_DOWN_WITHIN < DEAD_PEER_AFTER, "{STEP_DOWN_WITHIN:?} vs {DEAD_PEER_AFTER:?}");
    }

    #[tokio::test]
    async fn always_leads_and_never_changes() {
        let mut always = Leadership::always();
        assert!(always.is_leader());
        always.acquired().await;
        let lost = tokio::time::timeout(Duration::from_millis(10), always.lost()).await;
        assert!(lost.is_err(), "a process alone never loses the lead");
    }

    #[tokio::test]
    async fn leadership_follows_what_the_election_publishes() {
        let election = watch::Sender::new(false);
        let mut leadership = Leadership { leading: election.subscribe() };
        assert!(!leadership.is_leader());
        election.send_replace(true);
        leadership.acquired().await;
        assert!(leadership.is_leader());
        election.send_replace(false);
        leadership.lost().await;
        assert!(!leadership.is_leader());
        drop(election);
        let acquired = tokio::time::timeout(Duration::from_millis(10), leadership.acquired()).await;
        assert!(acquired.is_err(), "an election that stopped never makes this process lead");
    }
}

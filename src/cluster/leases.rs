//! [`Leases`]: the task through which a machine holds its share of the accounts.
//!
//! **Each tick** (every `CLUSTER_HEARTBEAT`, on a connection of its own whose steps are bounded
//! by one tick): beat (`machines.heartbeat_at = now()`), renew the leases it runs, count the live
//! machines and the non-default accounts, take free or expired leases up to its fair share
//! ([`fair_share`]), and publish what it holds. A machine takes nothing on its first tick, so
//! machines started together see each other before any of them takes everything.
//!
//! **Rebalancing.** Above its share (a machine joined), a machine stops running its highest
//! portal ids beyond the share at once and stops renewing them; they expire a lease length
//! later, and the machines below their share take them. Letting them lapse, rather than freeing
//! them at once, gives the account's parts here a lease length to stop before another machine
//! starts them. On a graceful stop ([`LeasesHandle::stop`]) every lease is freed at once.
//!
//! **Fencing.** A lease is published only until its *fence*: the instant its last successful
//! renewal (or take) was sent, plus the lease length, minus `CLUSTER_FENCE_MARGIN`, by this
//! machine's monotonic clock. PostgreSQL set the expiry with its own `now()` at or after that
//! instant, so the fence passes before the expiry does; the fence is watched while a database
//! step is in flight too (a step that hangs does not keep a lease published). So a machine cut
//! off from PostgreSQL stops running its accounts before any other machine may take them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use diesel_async::AsyncPgConnection;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterSettings, ConfigError};
use crate::store::{Pool, StoreError, cluster, locks};
use crate::telemetry::ErrorChain;

/// How often a machine ticks, how long a lease lasts, how early an unrenewed one is dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseTimings {
    pub heartbeat: Duration,
    pub lease: Duration,
    pub margin: Duration,
}

impl LeaseTimings {
    /// The timings of `settings`, refused when a healthy machine could lose its own leases.
    pub fn of(settings: &ClusterSettings) -> Result<LeaseTimings, ConfigError> {
        settings.validate()?;
        Ok(LeaseTimings {
            heartbeat: settings.cluster_heartbeat,
            lease: settings.cluster_lease,
            margin: settings.cluster_fence_margin,
        })
    }
}

/// `ceil(accounts / machines)`: the most accounts one machine runs (a machine always counts
/// itself, so never divides by zero).
pub fn fair_share(accounts: i64, machines: i64) -> usize {
    let machines = machines.max(1).unsigned_abs();
    usize::try_from(accounts.max(0).unsigned_abs().div_ceil(machines)).unwrap_or(usize::MAX)
}

/// One machine's lease task, before it runs.
pub struct Leases {
    pool: Pool,
    machine: String,
    timings: LeaseTimings,
    held: watch::Sender<BTreeSet<i64>>,
}

/// A running [`Leases`] task.
pub struct LeasesHandle {
    held: watch::Receiver<BTreeSet<i64>>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl LeasesHandle {
    /// The portal ids this process runs, as last published.
    pub fn held(&self) -> watch::Receiver<BTreeSet<i64>> {
        self.held.clone()
    }

    /// Stops running every account, frees every lease and leaves the machines (graceful stop);
    /// call it once the accounts' parts have stopped.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Ends the task without freeing anything, as a crash would (tests): the leases expire.
    pub fn abort(self) {
        self.task.abort();
    }
}

/// The leases this machine runs, each with its fence.
#[derive(Default)]
struct Held(BTreeMap<i64, Instant>);

impl Held {
    fn portals(&self) -> Vec<i64> {
        self.0.keys().copied().collect()
    }

    fn next_fence(&self) -> Option<Instant> {
        self.0.values().min().copied()
    }

    /// Drops the leases whose fence has passed; how many.
    fn fence(&mut self, now: Instant) -> usize {
        let before = self.0.len();
        self.0.retain(|_, fence| *fence > now);
        before - self.0.len()
    }
}

/// What one tick's database step found.
struct Step {
    renew_sent: Instant,
    renewed: Vec<i64>,
    take_sent: Instant,
    taken: Vec<i64>,
    share: usize,
}

impl Leases {
    /// The lease task of machine `machine` over `pool`'s database; nothing happens until
    /// [`Leases::spawn`].
    pub fn new(pool: Pool, machine: String, timings: LeaseTimings) -> Leases {
        Leases { pool, machine, timings, held: watch::Sender::new(BTreeSet::new()) }
    }

    /// This machine's id in the tables.
    pub fn machine_id(&self) -> &str {
        &self.machine
    }

    /// Runs the task until `shutdown` or [`LeasesHandle::stop`] (then frees every lease at once,
    /// so another machine may start the accounts at its next tick). In `serve`, give it a token
    /// of its own (or one that fires after the accounts' parts stopped) and call
    /// [`LeasesHandle::stop`] once they have: freeing a lease while its account still drains here
    /// would let two machines run it for that long.
    pub fn spawn(self, shutdown: CancellationToken) -> LeasesHandle {
        let held = self.held.subscribe();
        let stop = shutdown.child_token();
        let task = tokio::spawn(self.run(stop.clone()));
        LeasesHandle { held, stop, task }
    }

    async fn run(self, stop: CancellationToken) {
        let mut conn: Option<AsyncPgConnection> = None;
        let mut held = Held::default();
        let mut first = true;
        while !stop.is_cancelled() {
            let next_tick = Instant::now() + self.timings.heartbeat;
            let keep = held.portals();
            let step = {
                let work = tokio::time::timeout(self.timings.heartbeat, self.step(&mut conn, &keep, first));
                self.fenced(work, &mut held, &stop).await
            };
            match step {
                Some(Ok(Ok(step))) => {
                    first = false;
                    self.apply(&mut held, step);
                }
                Some(Ok(Err(error))) => {
                    conn = None;
                    tracing::warn!(error = %ErrorChain(&error), "cannot renew or take account leases; retrying");
                }
                Some(Err(_)) => {
                    conn = None;
                    tracing::warn!(bound = ?self.timings.heartbeat, "the lease step did not answer in time; retrying");
                }
                None => break,
            }
            held.fence(Instant::now());
            self.publish(&held);
            if self.fenced(tokio::time::sleep_until(next_tick), &mut held, &stop).await.is_none() {
                break;
            }
        }
        self.leave(conn, &held).await;
    }

    /// Awaits `work`, dropping (and unpublishing) leases as their fences pass meanwhile; `None`
    /// once `stop` fires.
    async fn fenced<T>(&self, work: impl Future<Output = T>, held: &mut Held, stop: &CancellationToken) -> Option<T> {
        tokio::pin!(work);
        loop {
            let fence = held.next_fence();
            tokio::select! {
                out = &mut work => return Some(out),
                () = stop.cancelled() => return None,
                () = sleep_until_some(fence) => {
                    let dropped = held.fence(Instant::now());
                    tracing::warn!(dropped, "account leases not renewed in time: no longer running those accounts");
                    self.publish(held);
                }
            }
        }
    }

    /// One tick's database work: beat, renew `keep`, count, take up to the share.
    async fn step(&self, conn: &mut Option<AsyncPgConnection>, keep: &[i64], first: bool) -> Result<Step, StoreError> {
        let conn = match conn.take() {
            Some(open) => conn.insert(open),
            None => {
                let mut fresh = locks::dedicated(&self.pool).await?;
                locks::bound_statements(&mut fresh, self.timings.heartbeat).await?;
                conn.insert(fresh)
            }
        };
        cluster::heartbeat(conn, &self.machine).await?;
        let renew_sent = Instant::now();
        let renewed = cluster::renew(conn, &self.machine, keep, self.timings.lease).await?;
        let census = cluster::census(conn, self.timings.lease).await?;
        let share = fair_share(census.accounts, census.machines);
        let take_sent = Instant::now();
        let wanted = if first { 0 } else { share.saturating_sub(renewed.len()) };
        let taken = cluster::take(conn, &self.machine, wanted as i64, self.timings.lease).await?;
        Ok(Step { renew_sent, renewed, take_sent, taken, share })
    }

    /// Makes the held set what the step found: renewed and taken leases with new fences, the
    /// rest dropped, the surplus over the share let go (highest portal ids first).
    fn apply(&self, held: &mut Held, step: Step) {
        let fence_after = self.timings.lease.saturating_sub(self.timings.margin);
        let before: BTreeSet<i64> = held.0.keys().copied().collect();
        held.0.clear();
        for portal in step.renewed {
            held.0.insert(portal, step.renew_sent + fence_after);
        }
        for portal in step.taken {
            held.0.insert(portal, step.take_sent + fence_after);
        }
        while held.0.len() > step.share {
            held.0.pop_last();
        }
        let now: BTreeSet<i64> = held.0.keys().copied().collect();
        if now != before {
            tracing::info!(
                machine = %self.machine,
                share = step.share,
                held = now.len(),
                taken = now.difference(&before).count(),
                dropped = before.difference(&now).count(),
                "account leases changed"
            );
        }
    }

    fn publish(&self, held: &Held) {
        let now: BTreeSet<i64> = held.0.keys().copied().collect();
        self.held.send_if_modified(|published| {
            if *published == now {
                return false;
            }
            *published = now;
            true
        });
    }

    /// The graceful stop: publishes nothing, frees what it held and leaves (bounded by a tick).
    async fn leave(&self, conn: Option<AsyncPgConnection>, held: &Held) {
        self.publish(&Held::default());
        let portals = held.portals();
        let work = async {
            let mut conn = match conn {
                Some(conn) => conn,
                None => locks::dedicated(&self.pool).await?,
            };
            cluster::release(&mut conn, &self.machine, &portals).await?;
            cluster::leave(&mut conn, &self.machine).await
        };
        match tokio::time::timeout(self.timings.heartbeat, work).await {
            Ok(Ok(())) => tracing::info!(machine = %self.machine, freed = portals.len(), "account leases freed"),
            Ok(Err(error)) => {
                tracing::warn!(error = %ErrorChain(&error), "cannot free the account leases: they expire on their own")
            }
            Err(_) => tracing::warn!("freeing the account leases did not answer in time: they expire on their own"),
        }
    }
}

async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fair_share_rounds_up_and_never_divides_by_zero() {
        assert_eq!(fair_share(30, 3), 10);
        assert_eq!(fair_share(31, 3), 11);
        assert_eq!(fair_share(30, 0), 30);
        assert_eq!(fair_share(0, 4), 0);
        assert_eq!(fair_share(2, 5), 1);
    }

    #[test]
    fn a_lease_is_dropped_once_its_fence_passes() {
        let now = Instant::now();
        let mut held = Held::default();
        held.0.insert(1, now + Duration::from_secs(1));
        held.0.insert(2, now + Duration::from_secs(5));
        assert_eq!(held.next_fence(), Some(now + Duration::from_secs(1)));
        assert_eq!(held.fence(now + Duration::from_secs(2)), 1);
        assert_eq!(held.portals(), vec![2]);
    }

    #[test]
    fn the_fence_comes_before_the_expiry() {
        let timings = LeaseTimings::of(&ClusterSettings::default()).unwrap();
        assert!(timings.lease - timings.margin > timings.heartbeat * 2, "a healthy machine renews well before");
    }
}

//! Several machines on one database (issue 20, item 3), as several `Leases` tasks in one test
//! process: accounts spread fairly, never run by two machines at once (a sampler reads every
//! machine's published set all along), move when a machine dies, joins or stops, and a machine
//! cut off from PostgreSQL stops running its accounts before their leases expire. The webhook
//! hand-over: batches pushed concurrently are each taken exactly once by concurrent drainers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hubspot_sync::cluster::{Drain, LeaseTimings, Leases, LeasesHandle};
use hubspot_sync::config::ClusterSettings;
use hubspot_sync::store::Pool;
use hubspot_sync::store::accounts::{self, NewAccount};
use hubspot_sync::store::cluster;
use hubspot_sync::store::connect::DbTarget;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::harness::{PATIENCE, Proxy, TestDb, eventually};

/// Short timings so the moves take seconds; the assertions wait, they never time anything.
const QUICK: LeaseTimings =
    LeaseTimings { heartbeat: Duration::from_secs(1), lease: Duration::from_secs(4), margin: Duration::from_secs(1) };

/// Adds `n` non-default accounts (portal ids 1000..); their ids.
async fn accounts(db: &TestDb, n: i64) -> BTreeSet<i64> {
    let mut conn = db.conn().await;
    accounts::adopt_default_portal(&mut conn, 1).await.unwrap();
    for portal_id in 1000..1000 + n {
        add_account(&mut conn, portal_id).await;
    }
    (1000..1000 + n).collect()
}

/// Adds the non-default account `portal_id` (its token variable `ACCOUNT_TOKEN`).
pub(crate) async fn add_account(conn: &mut diesel_async::AsyncPgConnection, portal_id: i64) {
    let account = NewAccount {
        portal_id,
        name: format!("account {portal_id}"),
        token_env: "ACCOUNT_TOKEN".into(),
        client_secret_env: None,
        api_base: None,
        requests_per_10s: None,
        schedule_incremental: None,
        schedule_full: None,
    };
    accounts::add(conn, account).await.unwrap();
}

/// Every live machine's published set, read continuously: any portal published by two
/// machines at the same moment is recorded.
#[derive(Clone, Default)]
struct Sampler {
    machines: Arc<Mutex<BTreeMap<String, watch::Receiver<BTreeSet<i64>>>>>,
    overlaps: Arc<Mutex<Vec<String>>>,
    samples: Arc<AtomicUsize>,
}

impl Sampler {
    fn start(shutdown: &CancellationToken) -> Sampler {
        let sampler = Sampler::default();
        let (me, stop) = (sampler.clone(), shutdown.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                me.sample();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        sampler
    }

    fn sample(&self) {
        let machines = self.machines.lock().unwrap();
        let mut owner: BTreeMap<i64, &str> = BTreeMap::new();
        for (name, held) in machines.iter() {
            for portal in held.borrow().iter() {
                if let Some(other) = owner.insert(*portal, name) {
                    self.overlaps.lock().unwrap().push(format!("portal {portal} run by {other} and {name}"));
                }
            }
        }
        self.samples.fetch_add(1, Ordering::Relaxed);
    }

    fn watch(&self, name: &str, held: watch::Receiver<BTreeSet<i64>>) {
        self.machines.lock().unwrap().insert(name.to_owned(), held);
    }

    /// The machine is gone (killed or stopped): it runs nothing any more.
    fn forget(&self, name: &str) {
        self.machines.lock().unwrap().remove(name);
    }

    fn sets(&self) -> BTreeMap<String, BTreeSet<i64>> {
        self.machines.lock().unwrap().iter().map(|(n, h)| (n.clone(), h.borrow().clone())).collect()
    }

    fn assert_never_overlapped(&self) {
        let overlaps = self.overlaps.lock().unwrap();
        assert!(
            overlaps.is_empty(),
            "an account ran on two machines at once: {:?}",
            &overlaps[..overlaps.len().min(5)]
        );
        assert!(self.samples.load(Ordering::Relaxed) > 100, "the sampler ran");
    }
}

fn start(
    pool: Pool,
    name: &str,
    timings: LeaseTimings,
    sampler: &Sampler,
    shutdown: &CancellationToken,
) -> LeasesHandle {
    let handle = Leases::new(pool, name.to_owned(), timings).spawn(shutdown.clone());
    sampler.watch(name, handle.held());
    handle
}

/// Every account runs somewhere, on the machines named, each holding `share` ± 1.
fn spread(sets: &BTreeMap<String, BTreeSet<i64>>, all: &BTreeSet<i64>, share: usize) -> bool {
    let union: BTreeSet<i64> = sets.values().flatten().copied().collect();
    union == *all && sets.values().all(|s| s.len().abs_diff(share) <= 1)
}

#[tokio::test]
async fn accounts_spread_fairly_and_move_when_a_machine_dies_joins_or_stops() {
    let db = TestDb::new().await;
    let all = accounts(&db, 30).await;
    let shutdown = CancellationToken::new();
    let sampler = Sampler::start(&shutdown);
    let a = start(db.pool(), "a", QUICK, &sampler, &shutdown);
    let b = start(db.pool(), "b", QUICK, &sampler, &shutdown);
    let c = start(db.pool(), "c", QUICK, &sampler, &shutdown);
    let began = Instant::now();
    eventually(PATIENCE, "30 accounts spread over 3 machines, 10 each", || {
        std::future::ready(spread(&sampler.sets(), &all, 10))
    })
    .await;
    let spread_after = began.elapsed();

    // c dies without freeing anything: its leases expire, a and b take them.
    let held_by_c = c.held().borrow().clone();
    c.abort();
    sampler.forget("c");
    let killed = Instant::now();
    eventually(PATIENCE, "the dead machine's accounts run on the others", || {
        std::future::ready(spread(&sampler.sets(), &all, 15))
    })
    .await;
    let moved_after = killed.elapsed();
    assert!(!held_by_c.is_empty());

    // d joins: a and b let their surplus go, d takes its share.
    let d = start(db.pool(), "d", QUICK, &sampler, &shutdown);
    let joined = Instant::now();
    eventually(PATIENCE, "the joining machine gets its share", || {
        std::future::ready(spread(&sampler.sets(), &all, 10))
    })
    .await;
    let rebalanced_after = joined.elapsed();

    // a stops gracefully: its leases are freed at once, b and d take them at their next tick.
    let stopping = Instant::now();
    a.stop().await;
    sampler.forget("a");
    eventually(PATIENCE, "the stopped machine's accounts run on the others", || {
        std::future::ready(spread(&sampler.sets(), &all, 15))
    })
    .await;
    let stop_moved_after = stopping.elapsed();
    sampler.assert_never_overlapped();
    eprintln!(
        "leases ({QUICK:?}): spread 30 over 3 in {spread_after:?}; a killed machine's {} accounts moved in \
         {moved_after:?}; a joining machine had its share in {rebalanced_after:?}; a stopped machine's accounts \
         moved in {stop_moved_after:?}; {} samples, no overlap",
        held_by_c.len(),
        sampler.samples.load(Ordering::Relaxed),
    );
    b.stop().await;
    d.stop().await;
    shutdown.cancel();
    assert_eq!(db.count("SELECT count(*) FROM account_leases WHERE holder IS NOT NULL").await, 0, "all freed");
    let left = db.count("SELECT count(*) FROM machines WHERE machine_id <> 'c'").await;
    assert_eq!(left, 0, "the stopped machines left; the killed one stays until it is a day old");
}

#[tokio::test]
async fn a_machine_cut_off_from_the_database_stops_running_its_accounts_before_they_expire() {
    // A wide margin: the check below reads the leases after the machine dropped them, and must
    // do so before they expire even on a loaded machine.
    let timings = LeaseTimings {
        heartbeat: Duration::from_secs(1),
        lease: Duration::from_secs(12),
        margin: Duration::from_secs(6),
    };
    let db = TestDb::new().await;
    let all = accounts(&db, 6).await;
    let proxy = Proxy::start(db.server_addr()).await;
    let through_proxy = DbTarget::parse(&db.url_through(proxy.addr), None).unwrap();
    let shutdown = CancellationToken::new();
    let sampler = Sampler::start(&shutdown);
    let a = start(db.pool_at(&through_proxy), "a", timings, &sampler, &shutdown);
    let b = start(db.pool(), "b", timings, &sampler, &shutdown);
    eventually(PATIENCE, "6 accounts spread over 2 machines", || std::future::ready(spread(&sampler.sets(), &all, 3)))
        .await;

    // The network between a and PostgreSQL silently drops everything.
    proxy.freeze();
    let frozen = Instant::now();
    let mut held_by_a = a.held();
    tokio::time::timeout(PATIENCE, held_by_a.wait_for(BTreeSet::is_empty)).await.unwrap().unwrap();
    let dropped_after = frozen.elapsed();
    let still_leased = db.count("SELECT count(*) FROM account_leases WHERE holder = 'a' AND expires_at > now()").await;
    assert_eq!(still_leased, 3, "a stopped running its accounts while its leases were still valid");
    eventually(PATIENCE, "b runs every account", || std::future::ready(b.held().borrow().clone() == all)).await;
    let moved_after = frozen.elapsed();
    sampler.assert_never_overlapped();
    eprintln!(
        "cut off ({timings:?}): a stopped running its accounts {dropped_after:?} after the freeze, before expiry; \
         b ran them {moved_after:?} after it"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn handed_over_batches_are_each_taken_exactly_once_by_concurrent_drainers() {
    let db = TestDb::new().await;
    let portals: Vec<i64> = accounts(&db, 3).await.into_iter().collect();
    let shutdown = CancellationToken::new();
    // Every drainer believes it runs every portal: harder than a real cluster, where one does.
    let (_held, runs_all) = watch::channel(portals.iter().copied().collect::<BTreeSet<i64>>());
    let (_none, runs_none) = watch::channel(BTreeSet::new());
    let settings = ClusterSettings { handoff_poll: Duration::from_millis(20), handoff_batch: 7, ..Default::default() };
    let taken: Arc<Mutex<BTreeMap<Vec<u8>, usize>>> = Arc::default();
    let wrong_portal = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let failures = Arc::new(AtomicUsize::new(0));
    for _ in 0..3 {
        let (taken, wrong_portal, calls, failures) =
            (taken.clone(), wrong_portal.clone(), calls.clone(), failures.clone());
        let sink = move |portal_id: i64, batch: Vec<cluster::HandedOver>| {
            let (taken, wrong_portal, calls, failures) =
                (taken.clone(), wrong_portal.clone(), calls.clone(), failures.clone());
            async move {
                // Every fifth hand-over fails: its rows must come back and be taken again.
                if calls.fetch_add(1, Ordering::SeqCst) % 5 == 4 {
                    failures.fetch_add(1, Ordering::SeqCst);
                    return Err(std::io::Error::other("intake refused"));
                }
                tokio::task::yield_now().await;
                let mut taken = taken.lock().unwrap();
                for row in batch {
                    if row.portal_id != portal_id || !row.body.starts_with(format!("{portal_id}/").as_bytes()) {
                        wrong_portal.fetch_add(1, Ordering::SeqCst);
                    }
                    *taken.entry(row.body).or_default() += 1;
                }
                Ok(())
            }
        };
        Drain::new(db.pool(), runs_all.clone(), &settings, sink).spawn(shutdown.clone());
    }
    let strays = Arc::new(AtomicUsize::new(0));
    let stray = strays.clone();
    let idle = move |_: i64, batch: Vec<cluster::HandedOver>| {
        stray.fetch_add(batch.len(), Ordering::SeqCst);
        async { Ok::<(), std::io::Error>(()) }
    };
    Drain::new(db.pool(), runs_none, &settings, idle).spawn(shutdown.clone());

    // Four pushers, 60 pushes each of 1 to 3 batches, spread over the portals.
    let pool = db.pool();
    let mut pushers = Vec::new();
    for pusher in 0..4 {
        let (pool, portals) = (pool.clone(), portals.clone());
        pushers.push(tokio::spawn(async move {
            let mut pushed = Vec::new();
            for push in 0..60usize {
                let portal = portals[(pusher + push) % portals.len()];
                let bodies: Vec<Vec<u8>> =
                    (0..1 + push % 3).map(|n| format!("{portal}/{pusher}/{push}/{n}").into_bytes()).collect();
                let mut conn = pool.get().await.unwrap();
                let ids = cluster::push(&mut conn, portal, &bodies).await.unwrap();
                assert_eq!(ids.len(), bodies.len());
                pushed.extend(bodies);
            }
            pushed
        }));
    }
    let mut pushed = BTreeSet::new();
    for pusher in pushers {
        pushed.extend(pusher.await.unwrap());
    }
    assert_eq!(pushed.len(), 4 * (20 + 40 + 60), "every body distinct");
    eventually(PATIENCE, "every handed-over batch reaches an intake", || {
        std::future::ready(taken.lock().unwrap().len() == pushed.len())
    })
    .await;
    shutdown.cancel();
    let taken = taken.lock().unwrap().clone();
    let twice: Vec<_> = taken.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "taken more than once: {twice:?}");
    assert_eq!(taken.keys().cloned().collect::<BTreeSet<_>>(), pushed);
    assert_eq!(wrong_portal.load(Ordering::SeqCst), 0, "each batch went to its own portal's intake");
    assert!(failures.load(Ordering::SeqCst) > 0, "some hand-overs failed and were taken again");
    assert_eq!(strays.load(Ordering::SeqCst), 0, "a machine not running a portal takes none of its batches");
    assert_eq!(db.count("SELECT count(*) FROM webhook_handoff").await, 0);
}

#[tokio::test]
async fn an_account_added_is_taken_and_an_account_removed_stops_running() {
    let db = TestDb::new().await;
    let all = accounts(&db, 2).await;
    let shutdown = CancellationToken::new();
    let sampler = Sampler::start(&shutdown);
    let a = start(db.pool(), "a", QUICK, &sampler, &shutdown);
    eventually(PATIENCE, "the machine runs both accounts", || std::future::ready(*a.held().borrow() == all)).await;

    let mut conn = db.conn().await;
    accounts::remove(&mut conn, 1000, true).await.unwrap();
    let added = NewAccount {
        portal_id: 5000,
        name: "added".into(),
        token_env: "ACCOUNT_TOKEN".into(),
        client_secret_env: None,
        api_base: None,
        requests_per_10s: None,
        schedule_incremental: None,
        schedule_full: None,
    };
    accounts::add(&mut conn, added).await.unwrap();
    let now: BTreeSet<i64> = [1001, 5000].into();
    eventually(PATIENCE, "the removed account stops, the added one runs", || {
        std::future::ready(*a.held().borrow() == now)
    })
    .await;
    a.stop().await;
    shutdown.cancel();
}

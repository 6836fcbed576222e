//! Several machines on one database (issue 20, item 3): the webhook hand-over's throughput and
//! latency, and how fast account leases spread, move off a dead machine and rebalance onto a
//! joining one.
//!
//! `cargo bench -p hubspot-sync --bench cluster` (uses `BENCH_DATABASE_URL`, `TEST_DATABASE_URL`
//! or `DATABASE_URL`, else starts a private PostgreSQL). `BENCH_HANDOFF_BATCHES` (default
//! 10,000) sets the batches handed over, `BENCH_ACCOUNTS` (default 300) the accounts leased.
//!
//! 1. Push: 4 tasks each store their share of the batches (2 KiB bodies, a webhook batch of
//!    about 10 events), one durable transaction per batch, as the webhook handler does.
//! 2. Drain: 2 drainers (`cluster::Drain`, batches of 100) take them all with a sink that does
//!    nothing: the hand-over's own cost.
//! 3. Both at once at the default `HANDOFF_POLL` (500 ms): the latency from a batch's commit to
//!    the sink, p50/p99/max.
//! 4. Leases at the default timings (3 s beat, 10 s lease, 2 s margin): 3 machines spread the
//!    accounts; one is killed (its leases expire); a fourth joins.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly by design

mod common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Postgres, Scratch, ms, quantile};
use hubspot_sync::cluster::{Drain, LeaseTimings, Leases, LeasesHandle};
use hubspot_sync::config::ClusterSettings;
use hubspot_sync::store::accounts::{self, NewAccount};
use hubspot_sync::store::cluster::{self, HandedOver};
use hubspot_sync::store::pool::PoolOptions;
use hubspot_sync::store::{Pool, build_pool};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const PUSHERS: usize = 4;
const DRAINERS: usize = 2;

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn pool(db: &Scratch, size: usize) -> Pool {
    let options = PoolOptions {
        application_name: "hubspot-sync bench cluster".into(),
        max_size: size,
        wait_timeout: Duration::from_secs(30),
        statement_timeout: Duration::from_secs(60),
        synchronous_commit: false,
    };
    build_pool(&db.target, &options).unwrap()
}

async fn add_accounts(db: &Scratch, n: i64) -> BTreeSet<i64> {
    let mut conn = db.target.connect("hubspot-sync bench cluster").await.unwrap();
    accounts::adopt_default_portal(&mut conn, 1).await.unwrap();
    for portal_id in 1000..1000 + n {
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
        accounts::add(&mut conn, account).await.unwrap();
    }
    (1000..1000 + n).collect()
}

/// Pushes `total` batches over `portals` from [`PUSHERS`] tasks; the time it took.
async fn push_all(pool: &Pool, portals: &[i64], total: usize) -> Duration {
    let body = vec![b'x'; 2048];
    let started = Instant::now();
    let mut tasks = Vec::new();
    for pusher in 0..PUSHERS {
        let (pool, portals, body) = (pool.clone(), portals.to_vec(), body.clone());
        tasks.push(tokio::spawn(async move {
            for n in (pusher..total).step_by(PUSHERS) {
                let mut conn = pool.get().await.unwrap();
                cluster::push(&mut conn, portals[n % portals.len()], std::slice::from_ref(&body)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    started.elapsed()
}

/// Starts [`DRAINERS`] drains of `portals` recording each batch's commit-to-sink latency.
fn drains(
    db: &Scratch,
    portals: &BTreeSet<i64>,
    poll: Duration,
    shutdown: &CancellationToken,
) -> Arc<Mutex<Vec<Duration>>> {
    let latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let (held, runs) = watch::channel(portals.clone());
    std::mem::forget(held); // the set never changes
    let settings = ClusterSettings { handoff_poll: poll, handoff_batch: 100, ..Default::default() };
    for _ in 0..DRAINERS {
        let latencies = latencies.clone();
        let sink = move |_: i64, batch: Vec<HandedOver>| {
            let now = chrono::Utc::now();
            latencies.lock().unwrap().extend(batch.iter().map(|b| (now - b.received_at).to_std().unwrap_or_default()));
            async { Ok::<(), std::io::Error>(()) }
        };
        Drain::new(pool(db, 2), runs.clone(), &settings, sink).spawn(shutdown.clone());
    }
    latencies
}

async fn until_taken(latencies: &Mutex<Vec<Duration>>, total: usize) {
    while latencies.lock().unwrap().len() < total {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn handoff(pg: &Postgres, total: usize) {
    let db = pg.scratch().await;
    let portals = add_accounts(&db, 10).await;
    let list: Vec<i64> = portals.iter().copied().collect();
    let pushers = pool(&db, PUSHERS);

    let pushed = push_all(&pushers, &list, total).await;
    let shutdown = CancellationToken::new();
    let started = Instant::now();
    let latencies = drains(&db, &portals, Duration::from_millis(10), &shutdown);
    until_taken(&latencies, total).await;
    let drained = started.elapsed();
    shutdown.cancel();

    let shutdown = CancellationToken::new();
    let latencies = drains(&db, &portals, ClusterSettings::default().handoff_poll, &shutdown);
    let both = push_all(&pushers, &list, total).await;
    until_taken(&latencies, total).await;
    shutdown.cancel();
    let mut sorted = latencies.lock().unwrap().clone();
    sorted.sort_unstable();
    println!("\n{}", common::machine());
    common::table(
        &["step", "batches", "time", "batches/s", "commit to sink p50 / p99 / max"],
        1,
        &[
            vec![
                "push (4 tasks, durable commit each)".into(),
                total.to_string(),
                format!("{:.0} ms", ms(pushed)),
                format!("{:.0}", total as f64 / pushed.as_secs_f64()),
                String::new(),
            ],
            vec![
                "drain (2 drainers, 100 per take)".into(),
                total.to_string(),
                format!("{:.0} ms", ms(drained)),
                format!("{:.0}", total as f64 / drained.as_secs_f64()),
                String::new(),
            ],
            vec![
                "push and drain together (poll 500 ms)".into(),
                total.to_string(),
                format!("{:.0} ms", ms(both)),
                format!("{:.0}", total as f64 / both.as_secs_f64()),
                format!(
                    "{:.0} / {:.0} / {:.0} ms",
                    ms(quantile(&sorted, 0.5)),
                    ms(quantile(&sorted, 0.99)),
                    ms(*sorted.last().unwrap())
                ),
            ],
        ],
    );
    pg.drop_db(db).await;
}

fn spread(machines: &[&LeasesHandle], all: &BTreeSet<i64>, share: usize) -> bool {
    let sets: Vec<BTreeSet<i64>> = machines.iter().map(|m| m.held().borrow().clone()).collect();
    let union: BTreeSet<i64> = sets.iter().flatten().copied().collect();
    union == *all && sets.iter().all(|s| s.len().abs_diff(share) <= 1)
}

async fn until_spread(machines: &[&LeasesHandle], all: &BTreeSet<i64>, share: usize) -> Duration {
    let started = Instant::now();
    while !spread(machines, all, share) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

async fn leases(pg: &Postgres, accounts: i64) {
    let db = pg.scratch().await;
    let all = add_accounts(&db, accounts).await;
    let timings = LeaseTimings::of(&ClusterSettings::default()).unwrap();
    let shutdown = CancellationToken::new();
    let machine = |name: &str| Leases::new(pool(&db, 1), name.to_owned(), timings).spawn(shutdown.clone());
    let (a, b, c) = (machine("a"), machine("b"), machine("c"));
    let share = |machines: usize| all.len().div_ceil(machines);
    let spread_in = until_spread(&[&a, &b, &c], &all, share(3)).await;
    c.abort();
    let moved_in = until_spread(&[&a, &b], &all, share(2)).await;
    let d = machine("d");
    let joined_in = until_spread(&[&a, &b, &d], &all, share(3)).await;
    shutdown.cancel();
    println!("\n{}", common::machine());
    common::table(
        &["leases (3 s beat, 10 s lease)", "accounts", "until every account runs, fair shares"],
        1,
        &[
            vec!["3 machines start together".into(), accounts.to_string(), format!("{:.1} s", spread_in.as_secs_f64())],
            vec!["one is killed (no release)".into(), accounts.to_string(), format!("{:.1} s", moved_in.as_secs_f64())],
            vec![
                "a fourth joins the two left".into(),
                accounts.to_string(),
                format!("{:.1} s", joined_in.as_secs_f64()),
            ],
        ],
    );
    pg.drop_db(db).await;
}

#[tokio::main]
async fn main() {
    let pg = Postgres::find().await;
    handoff(&pg, env_number("BENCH_HANDOFF_BATCHES", 10_000)).await;
    leases(&pg, env_number("BENCH_ACCOUNTS", 300) as i64).await;
}

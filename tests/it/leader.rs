//! Two instances on one database: one leads (`poller::leader`). A leader whose connection to
//! PostgreSQL goes half-open (no reset, no answer) steps down within a bounded time, and the
//! other instance takes over; never both at once.

use std::time::Instant;

use hubspot_sync::poller::leader::STEP_DOWN_WITHIN;
use hubspot_sync::poller::{Election, Leadership};
use hubspot_sync::store::connect::DbTarget;
use tokio_util::sync::CancellationToken;

use crate::harness::{PATIENCE, Proxy, TestDb, eventually};

/// Waits until `what` holds, checking at every look that the two never lead at once.
async fn until(what: &str, a: &Leadership, b: &Leadership, holds: impl Fn(bool, bool) -> bool) {
    eventually(PATIENCE, what, || {
        let (a, b) = (a.is_leader(), b.is_leader());
        assert!(!(a && b), "two leaders at once");
        std::future::ready(holds(a, b))
    })
    .await;
}

#[tokio::test]
async fn a_leader_cut_off_without_a_reset_steps_down_and_another_takes_over() {
    let db = TestDb::new().await;
    let proxy = Proxy::start(db.server_addr()).await;
    let through_proxy = DbTarget::parse(&db.url_through(proxy.addr), None).unwrap();
    let shutdown = CancellationToken::new();

    // A reaches PostgreSQL through the proxy and leads; B, direct, stands by.
    let a = Election::new(db.pool_at(&through_proxy));
    let leads_a = a.leadership();
    a.spawn(shutdown.clone());
    eventually(PATIENCE, "the first instance leads", || std::future::ready(leads_a.is_leader())).await;
    let b = Election::new(db.pool());
    let leads_b = b.leadership();
    b.spawn(shutdown.clone());

    // The network between A and PostgreSQL starts dropping everything, silently.
    proxy.freeze();
    let frozen = Instant::now();
    until("the cut-off leader steps down", &leads_a, &leads_b, |a, _| !a).await;
    let stepped_down = frozen.elapsed();
    until("the other instance takes over", &leads_a, &leads_b, |_, b| b).await;
    eprintln!(
        "half-open leader connection: stepped down after {stepped_down:?} (bound {STEP_DOWN_WITHIN:?}), \
         taken over after {:?}",
        frozen.elapsed()
    );
    shutdown.cancel();
}

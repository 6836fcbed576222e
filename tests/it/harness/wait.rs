//! Waiting for a condition instead of for a time: no test may depend on the machine's speed.
//! A test polls what it needs to be true and gives up only after a generous bound, so a loaded
//! machine makes it slower, never red.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a condition that should hold "soon" may take before the test calls it a hang. Far
/// above what any healthy run needs, even on a busy 2-core machine.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// Polls `check` until it holds; panics with `what` once `patience` has passed.
pub async fn eventually<F, Fut>(patience: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + patience;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} (not within {patience:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Polls `probe` until it returns `Some`; panics with `what` once `patience` has passed.
pub async fn until_some<T, F, Fut>(patience: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + patience;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what} (not within {patience:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `future`, or a panic naming `what` if it is not done within `patience` (a hang guard).
pub async fn within<T>(patience: Duration, what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(patience, future).await {
        Ok(value) => value,
        Err(_) => panic!("{what} (not within {patience:?})"),
    }
}

/// The status of a GET to `url`, or `None` if nothing answered (within [`PATIENCE`]).
pub async fn status_of(url: &str) -> Option<u16> {
    let client = reqwest::Client::builder().timeout(PATIENCE).build().expect("an HTTP client");
    client.get(url).send().await.ok().map(|r| r.status().as_u16())
}

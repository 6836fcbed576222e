//! The HubSpot side of a test: a client pointed at the simulator, and a poller over a test
//! database.

use std::time::Duration;

use hubspot_sim::{Sim, SimHandle, SimOptions};
use hubspot_sync::config::{ApiVersion, HubSpotSettings, Secret};
use hubspot_sync::hubspot::{ClientOptions, HubSpot, RetryOptions};
use hubspot_sync::poller::{Poller, PollerOptions};

use super::TestDb;

/// Settings pointing at the simulator with a budget per window.
pub fn settings(sim: &SimHandle, budget: u32, version: ApiVersion) -> HubSpotSettings {
    HubSpotSettings {
        hubspot_access_token: Some(Secret::new("pat-na1-test-token")),
        hubspot_api_base: url::Url::parse(sim.url()).unwrap(),
        hubspot_api_version: version,
        hubspot_requests_per_10s: budget,
        hubspot_searches_in_budget: true,
    }
}

/// Client options for tests: quick retries; the window as given.
pub fn fast_options(window: Duration) -> ClientOptions {
    ClientOptions {
        window,
        window_margin: window / 50,
        retry: RetryOptions {
            min_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
            max_retries: 4,
        },
        ..ClientOptions::default()
    }
}

/// A client with no practical budget.
pub fn client(sim: &SimHandle) -> HubSpot {
    HubSpot::with_options(&settings(sim, 100_000, ApiVersion::V3), fast_options(Duration::from_secs(10))).unwrap()
}

/// A simulator with these many records of each kind (7 owners, 2 workers, no webhooks).
pub async fn sim(contacts: usize, deals: usize, calls: usize) -> SimHandle {
    Sim::start(SimOptions { contacts, deals, calls, owners: 7, workers: 2, ..SimOptions::default() }).await.unwrap()
}

/// A poller over `db` with no skew (the tests churn and sync within the same second).
pub fn poller(db: &TestDb, hubspot: HubSpot) -> Poller {
    Poller::new(db.pool(), hubspot, PollerOptions { skew: Duration::ZERO, ..PollerOptions::default() })
}

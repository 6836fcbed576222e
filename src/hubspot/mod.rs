//! The outbound HubSpot API client, shared by the webhook fetchers and the poller.
//!
//! One [`HubSpot`] per process (clone it: everything inside is behind an `Arc`), so that every
//! caller draws on the same request budget ([`limiter`]) and honours the same 429 pause.
//! Paths for `v3` and dated API versions are built in [`paths`]; wire shapes in [`wire`] are read
//! leniently and decoded record by record ([`record`]); [`transport`] retries with backoff.

mod api;
pub mod associations;
pub mod error;
pub mod limiter;
pub mod paths;
pub mod record;
pub mod transport;
pub mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use api::{BATCH_READ_MAX, BatchRead, LIST_LIMIT, RecordPage, SEARCH_LIMIT, SearchWindow};
pub use associations::{Associated, AssociationRead, AssociationType};
pub use error::HubSpotError;
pub use limiter::Lane;
pub use record::{InvalidRecord, Record, parse_time};
pub use transport::{RequestMinute, RetryOptions};

use crate::config::CopyConfig;
use crate::config::HubSpotSettings;
use crate::kind::ObjectKind;
use crate::minutes::Minutes;
use limiter::{Budget, BudgetOptions};
use paths::Paths;
use transport::{Call, Transport};

/// Client settings beyond `HubSpotSettings` (defaults match HubSpot; tests shrink the window).
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The budget's window (HubSpot: 10 s); `HUBSPOT_REQUESTS_PER_10S` requests fit in one.
    pub window: Duration,
    /// Extra spacing so network jitter cannot push a window over the budget.
    pub window_margin: Duration,
    /// Search requests per second (HubSpot: 5).
    pub searches_per_second: u32,
    /// Extra length of the search limit's one-second window. A search counts from its admission
    /// until its answer arrives (HubSpot counted it in between), so network jitter is covered;
    /// the margin covers only rounding and the clocks' difference.
    pub search_margin: Duration,
    pub retry: RetryOptions,
    /// Timeout of one HTTP request.
    pub request_timeout: Duration,
    /// Property lists per object, instead of discovering every property.
    pub properties: HashMap<ObjectKind, Vec<String>>,
    /// How long a discovered property list is used before it is read again (custom properties
    /// created in HubSpot meanwhile are then fetched too); a full pass re-reads it at its start.
    pub properties_refresh: Duration,
    /// Longest `properties=` query value on a list call; longer lists go through batch read.
    pub max_query_bytes: usize,
    /// Largest search body (HubSpot: 3000 characters).
    pub max_search_body: usize,
    /// The most the fast polling lanes (`Lane::Polling`) may spend, as a share of the budget.
    pub polling_share: f64,
    /// `HUBSPOT_SYNC_CONFIG`: discovered properties it does not ask for are left out.
    pub copy: CopyConfig,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(10),
            window_margin: Duration::from_millis(200),
            searches_per_second: 5,
            search_margin: Duration::from_millis(10),
            retry: RetryOptions::default(),
            request_timeout: Duration::from_secs(30),
            properties: HashMap::new(),
            properties_refresh: Duration::from_secs(15 * 60),
            max_query_bytes: 2000,
            max_search_body: 3000,
            polling_share: limiter::DEFAULT_POLLING_SHARE,
            copy: CopyConfig::default(),
        }
    }
}

/// Property names per object: discovered (and re-read once older than the refresh interval), or
/// fixed by the options (never re-read).
#[derive(Default)]
struct PropertyCache {
    lists: Mutex<HashMap<ObjectKind, CachedList>>,
}

/// A property list and when it was discovered (`None`: fixed by the options).
type CachedList = (Arc<Vec<String>>, Option<std::time::Instant>);

impl PropertyCache {
    /// The list, unless it was discovered more than `fresh` ago.
    fn get(&self, kind: ObjectKind, fresh: Duration) -> Option<Arc<Vec<String>>> {
        let lists = self.lists.lock().unwrap_or_else(PoisonError::into_inner);
        let (names, discovered) = lists.get(&kind)?;
        discovered.is_none_or(|at| at.elapsed() < fresh).then(|| names.clone())
    }

    /// The list whatever its age, if any.
    fn last(&self, kind: ObjectKind) -> Option<Arc<Vec<String>>> {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner).get(&kind).map(|(names, _)| names.clone())
    }

    /// Whether the options fix the list (it is never re-read).
    fn fixed(&self, kind: ObjectKind) -> bool {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner).get(&kind).is_some_and(|(_, at)| at.is_none())
    }

    /// Drops the discovered lists (not those the options fix), so they are read again.
    fn forget_discovered(&self) {
        self.lists.lock().unwrap_or_else(PoisonError::into_inner).retain(|_, (_, at)| at.is_none());
    }

    fn put(&self, kind: ObjectKind, names: Vec<String>, discovered: bool) -> Arc<Vec<String>> {
        let names = Arc::new(names);
        let at = discovered.then(std::time::Instant::now);
        self.lists.lock().unwrap_or_else(PoisonError::into_inner).insert(kind, (names.clone(), at));
        names
    }
}

struct Inner {
    transport: Transport,
    paths: Paths,
    properties: PropertyCache,
    options: ClientOptions,
    /// `HUBSPOT_SYNC_CONFIG` in force (from the options, then each reload).
    copy: std::sync::RwLock<Arc<CopyConfig>>,
}

/// A full pass's records part running ([`HubSpot::records_part`]).
pub struct RecordsPart(HubSpot);

impl Drop for RecordsPart {
    fn drop(&mut self) {
        self.0.inner.transport.budget.end_records();
    }
}

/// The HubSpot client. Cheap to clone; clones share the budget.
#[derive(Clone)]
pub struct HubSpot {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for HubSpot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubSpot").field("paths", &self.inner.paths).finish_non_exhaustive()
    }
}

impl HubSpot {
    /// A client with HubSpot's limits.
    pub fn new(settings: &HubSpotSettings) -> Result<Self, HubSpotError> {
        Self::with_options(settings, ClientOptions::default())
    }

    pub fn with_options(settings: &HubSpotSettings, options: ClientOptions) -> Result<Self, HubSpotError> {
        let token = settings.access_token().map_err(|e| HubSpotError::Config(e.to_string()))?;
        let http = transport::http_client(token.expose(), options.request_timeout)?;
        let budget = Budget::new(&BudgetOptions {
            requests: settings.hubspot_requests_per_10s,
            window: options.window,
            margin: options.window_margin,
            searches_per_second: options.searches_per_second,
            search_margin: options.search_margin,
            searches_in_budget: settings.hubspot_searches_in_budget,
            polling_share: options.polling_share,
        });
        let properties = PropertyCache::default();
        for (kind, names) in &options.properties {
            properties.put(*kind, names.clone(), false);
        }
        let transport = Transport {
            http,
            budget,
            retry: options.retry.clone(),
            window: options.window,
            minutes: Minutes::default(),
        };
        let paths = Paths::new(&settings.hubspot_api_base, settings.hubspot_api_version.clone());
        let copy = std::sync::RwLock::new(Arc::new(options.copy.clone()));
        Ok(Self { inner: Arc::new(Inner { transport, paths, properties, options, copy }) })
    }

    /// `HUBSPOT_SYNC_CONFIG` in force: which properties are asked for, which records searched.
    pub fn copy_config(&self) -> Arc<CopyConfig> {
        self.inner.copy.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Puts a reloaded `HUBSPOT_SYNC_CONFIG` in force; the property lists are discovered again
    /// (an include or exclude list may have changed).
    pub fn set_copy_config(&self, config: CopyConfig) {
        *self.inner.copy.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(config);
        self.inner.properties.forget_discovered();
    }

    /// Marks a full pass's records part as running until the guard is dropped: `Bulk` reads
    /// (association reads of passes whose records are done) wait until none runs.
    pub fn records_part(&self) -> RecordsPart {
        self.inner.transport.budget.begin_records();
        RecordsPart(self.clone())
    }

    /// Takes one slot of the shared budget for a request sent right after with
    /// [`HubSpot::batch_read_reserved`] (see [`limiter::Budget::reserve`]).
    pub async fn reserve(&self, lane: Lane) {
        self.inner.transport.budget.reserve(lane).await;
    }

    /// The share of the request budget the `Polling` lane spent over the last minute (0.0-1.0).
    pub fn polling_share_used(&self) -> f64 {
        self.inner.transport.budget.polling_share_used()
    }

    /// Requests sent and 429s received in each of the last `minutes` minutes (at most an hour),
    /// oldest first, the current minute last.
    pub fn requests_per_minute(&self, now: DateTime<Utc>, minutes: usize) -> Vec<(DateTime<Utc>, RequestMinute)> {
        self.inner.transport.minutes.series(now, minutes)
    }

    /// The request budget per minute (`HUBSPOT_REQUESTS_PER_10S` over a minute of windows).
    pub fn budget_per_minute(&self) -> u64 {
        let window = self.inner.options.window.as_secs_f64().max(0.001);
        (f64::from(self.inner.transport.budget.requests()) * 60.0 / window).round() as u64
    }

    async fn send(&self, call: Call<'_>) -> Result<Vec<u8>, HubSpotError> {
        self.inner.transport.send(&call).await
    }
}

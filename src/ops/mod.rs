//! The operations HTTP surface on the public port: health probes, the status API and its OpenAPI
//! document, the status page, force sync, the admin guard, request ids, the HTTP request
//! counter and the security headers of every response. Background work (metrics listener,
//! `LISTEN`, alerts) is started by `runtime`; alerts live in `crate::alerts`, live webhook
//! figures in `crate::webhook::stats`.
//!
//! Without the admin token the status API shows summaries only (status, counts, times,
//! figures); ids, error texts and `error_details` need it ([`admin::Access`]). Its reads take
//! `?account=<portal id>` and then read that account's rows only ([`scope`]).
//!
//! `ops` reads the store and live figures and asks the poller for runs through
//! [`crate::poller::control::SyncControl`]; nothing here writes synced data. Handlers extract only what they use:
//! `Data<OpsState>` and `Data<Pool>`.

pub mod accounts;
pub mod admin;
pub mod error;
pub mod headers;
pub mod health;
pub mod history;
pub mod openapi;
pub mod page;
pub mod reload;
pub mod reloader;
pub mod request_log;
pub mod scope;
pub mod status;

use std::sync::Arc;

use crate::config::Secret;
use crate::hubspot::HubSpot;
use crate::poller::control::SharedControl;
use crate::poller::fast::PollingStatus;
use crate::queue::Queue;
use crate::telemetry::prometheus::DepthSource;
use crate::webhook::stats::WebhookStats;

/// What the operations handlers need, part of `AppState` (cheap to clone).
#[derive(Clone)]
pub struct OpsState {
    /// `ADMIN_TOKEN`; admin requests are refused when unset.
    pub admin_token: Option<Secret>,
    /// Starts runs and knows the schedule (the poller).
    pub control: SharedControl,
    /// Webhook figures, written by the webhook handler.
    pub webhooks: Arc<WebhookStats>,
    /// The webhook queue's depth.
    pub queue_depth: DepthSource,
    /// The webhook queue, for its freshness figures; none while real-time fetching is off.
    pub queue: Option<Arc<Queue>>,
    /// Each object's mode, and the fast polling lanes' figures when they run.
    pub polling: Arc<PollingStatus>,
    /// The HubSpot client, for its requests per minute; none without a token.
    pub hubspot: Option<HubSpot>,
    /// Reloads `HUBSPOT_SYNC_CONFIG` (`POST /api/config/reload`); none outside `serve`.
    pub reloader: Option<Arc<reloader::Reloader>>,
    /// The pollers of the other accounts this process runs (force sync with `?account=N`).
    pub accounts: crate::poller::control::AccountControls,
    /// The default account's portal id (`HUBSPOT_PORTAL_ID`), when known: `?account=` naming it
    /// reaches [`OpsState::control`].
    pub default_portal: Option<i64>,
}

impl OpsState {
    /// Fresh webhook figures and a queue depth of 0 until a queue is attached with
    /// [`OpsState::with_queue_depth`].
    pub fn new(admin_token: Option<Secret>, control: SharedControl) -> Self {
        Self {
            admin_token,
            control,
            webhooks: Arc::new(WebhookStats::new()),
            queue_depth: Arc::new(|| 0),
            queue: None,
            polling: Arc::default(),
            hubspot: None,
            reloader: None,
            accounts: Default::default(),
            default_portal: None,
        }
    }

    /// Force sync reaches the other accounts' pollers through `accounts`; `default_portal` is
    /// the default account's portal id, when known.
    pub fn with_accounts(
        mut self,
        accounts: crate::poller::control::AccountControls,
        default_portal: Option<i64>,
    ) -> Self {
        self.accounts = accounts;
        self.default_portal = default_portal;
        self
    }

    /// Reloads `HUBSPOT_SYNC_CONFIG` on `POST /api/config/reload`.
    pub fn with_reloader(mut self, reloader: Arc<reloader::Reloader>) -> Self {
        self.reloader = Some(reloader);
        self
    }

    /// The HubSpot client whose requests the live charts show.
    pub fn with_hubspot(mut self, hubspot: HubSpot) -> Self {
        self.hubspot = Some(hubspot);
        self
    }

    /// Each object's mode and the fast polling lanes' figures.
    pub fn with_polling(mut self, polling: PollingStatus) -> Self {
        self.polling = Arc::new(polling);
        self
    }

    /// Reads the queue depth and the real-time freshness figures from `queue`.
    pub fn with_queue(self, queue: Arc<Queue>) -> Self {
        let depth = queue.clone();
        Self { queue: Some(queue), ..self.with_queue_depth(move || depth.depth() as u64) }
    }

    /// Reads the queue depth from `depth`.
    pub fn with_queue_depth(mut self, depth: impl Fn() -> u64 + Send + Sync + 'static) -> Self {
        self.queue_depth = Arc::new(depth);
        self
    }
}

//! Webhook delivery as HubSpot does it: events built from data changes, batches of at most 100,
//! at most 10 requests in flight, v1 + v3 signatures (or v1 alone, as some private-app setups are
//! reported to receive) with a fresh timestamp and `attemptNumber` per attempt, retries with backoff on any non-2xx, connection error or slow (> 5 s) answer,
//! and occasional duplicate and out-of-order deliveries (seeded).

pub mod sign;

use crate::data::ObjectKind;
use crate::data::churn::Change;
use crate::limits::Clock;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};

/// Delivery settings.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    pub url: String,
    pub client_secret: String,
    pub portal_id: u64,
    pub app_id: u64,
    pub max_batch: usize,
    pub max_concurrency: usize,
    /// First attempt plus retries (HubSpot: up to 10 retries).
    pub max_attempts: u32,
    /// Backoff before retry n is `retry_base_ms * 2^(n-1)`, capped at `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// A response slower than this counts as failed.
    pub timeout_ms: u64,
    /// Probability that a delivered batch is delivered again.
    pub duplicate_rate: f64,
    /// Probability that a batch is shuffled and held back so later batches overtake it.
    pub reorder_rate: f64,
    /// Sign with v1 only (no v3 headers), as some private-app setups are reported to receive.
    pub v1_only: bool,
}

impl WebhookConfig {
    pub fn new(url: impl Into<String>, client_secret: impl Into<String>) -> Self {
        WebhookConfig {
            url: url.into(),
            client_secret: client_secret.into(),
            portal_id: 62515,
            app_id: 54321,
            max_batch: 100,
            max_concurrency: 10,
            max_attempts: 11,
            retry_base_ms: 1000,
            retry_max_ms: 60_000,
            timeout_ms: 5000,
            duplicate_rate: 0.01,
            reorder_rate: 0.02,
            v1_only: false,
        }
    }
}

/// One HubSpot webhook event (docs/hubspot.md §2.2).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub event_id: u64,
    pub subscription_id: u64,
    pub portal_id: u64,
    pub app_id: u64,
    pub occurred_at: i64,
    pub subscription_type: String,
    pub attempt_number: u32,
    pub object_id: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object_type_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub property_value: Option<String>,
    pub change_source: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change_flag: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_object_ids: Option<Vec<u64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_of_properties_moved: Option<u32>,
    /// `associationChange`, legacy form: `CONTACT_TO_DEAL` and the like.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association_type: Option<String>,
    /// `associationChange`, generic form (`object.associationChange`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_object_type_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_object_type_id: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association_type_id: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association_category: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_object_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub association_removed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_primary_association: Option<bool>,
}

fn type_id(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Contacts => "0-1",
        ObjectKind::Deals => "0-3",
        ObjectKind::Calls => "0-48",
    }
}

/// HubSpot-defined association type ids between the standard objects (one per direction).
fn association_type_id(from: ObjectKind, to: ObjectKind) -> u32 {
    match (from, to) {
        (ObjectKind::Contacts, ObjectKind::Deals) => 4,
        (ObjectKind::Deals, ObjectKind::Contacts) => 3,
        (ObjectKind::Calls, ObjectKind::Contacts) => 194,
        (ObjectKind::Contacts, ObjectKind::Calls) => 193,
        (ObjectKind::Calls, ObjectKind::Deals) => 206,
        (ObjectKind::Deals, ObjectKind::Calls) => 205,
        _ => 0,
    }
}

/// The name of a kind in a legacy `associationType` (`CONTACT_TO_DEAL`); calls have none.
fn legacy_name(kind: ObjectKind) -> Option<&'static str> {
    match kind {
        ObjectKind::Contacts => Some("CONTACT"),
        ObjectKind::Deals => Some("DEAL"),
        ObjectKind::Calls => None,
    }
}

/// Delivery counters, shared with `/_sim/stats`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub events_queued: AtomicU64,
    pub batches_delivered: AtomicU64,
    pub events_delivered: AtomicU64,
    pub attempts: AtomicU64,
    pub retries: AtomicU64,
    pub failed_attempts: AtomicU64,
    pub batches_failed: AtomicU64,
    pub duplicates: AtomicU64,
    pub reordered: AtomicU64,
    pub max_batch_size: AtomicU64,
    pub in_flight: AtomicU64,
    pub max_in_flight: AtomicU64,
    /// Batches accepted but not yet finished (delivered or given up).
    pub pending: AtomicU64,
}

/// Turns data changes into events. `subscription_type` prefix: `contact.`/`deal.` (classic) or
/// `object.` with `objectTypeId` for calls.
pub fn events_for(
    kind: ObjectKind,
    changes: &[Change],
    occurred_at: i64,
    next_event_id: &AtomicU64,
    cfg: &WebhookConfig,
) -> Vec<Event> {
    let (prefix, type_id, base_sub) = match kind {
        ObjectKind::Contacts => ("contact", None, 1_000_000),
        ObjectKind::Deals => ("deal", None, 2_000_000),
        ObjectKind::Calls => ("object", Some("0-48"), 3_000_000),
    };
    let mut out = Vec::new();
    let mut push = |action: &str, sub_off: u64, object_id: u64, f: &mut dyn FnMut(&mut Event)| {
        let mut e = Event {
            event_id: next_event_id.fetch_add(1, Ordering::Relaxed),
            subscription_id: base_sub + sub_off,
            portal_id: cfg.portal_id,
            app_id: cfg.app_id,
            occurred_at,
            subscription_type: format!("{prefix}.{action}"),
            attempt_number: 0,
            object_id,
            object_type_id: type_id,
            property_name: None,
            property_value: None,
            change_source: "CRM_UI",
            source_id: Some("userId:2000001".to_string()),
            change_flag: None,
            primary_object_id: None,
            merged_object_ids: None,
            new_object_id: None,
            number_of_properties_moved: None,
            association_type: None,
            from_object_type_id: None,
            to_object_type_id: None,
            association_type_id: None,
            association_category: None,
            from_object_id: None,
            to_object_id: None,
            association_removed: None,
            is_primary_association: None,
        };
        f(&mut e);
        out.push(e);
    };
    let mut associations = Vec::new();
    for c in changes {
        match c {
            Change::Created { id } => push("creation", 1, *id, &mut |e| {
                e.change_flag = Some("NEW");
                e.change_source = "API";
                e.source_id = Some(cfg.app_id.to_string());
            }),
            Change::PropertyChanged { id, name, value, bulk } => push("propertyChange", 2, *id, &mut |e| {
                e.property_name = Some(name.to_string());
                e.property_value = Some(value.clone());
                if *bulk {
                    e.change_source = "CRM_UI_BULK_ACTION";
                }
            }),
            Change::Deleted { id } => push("deletion", 3, *id, &mut |e| e.change_flag = Some("DELETED")),
            Change::Merged { primary, merged, new, moved } => push("merge", 4, *primary, &mut |e| {
                e.primary_object_id = Some(*primary);
                e.merged_object_ids = Some(merged.clone());
                e.new_object_id = Some(*new);
                e.number_of_properties_moved = Some(*moved);
            }),
            Change::Restored { id } => push("restore", 5, *id, &mut |_| {}),
            Change::Associated { from, to_kind, to, removed } => {
                associations.extend(association_events(
                    kind,
                    *from,
                    *to_kind,
                    *to,
                    *removed,
                    occurred_at,
                    next_event_id,
                    cfg,
                ));
            }
            Change::PrivacyDeleted { id } => {
                push("privacyDeletion", 6, *id, &mut |e| e.change_source = "GDPR");
                push("deletion", 3, *id, &mut |e| {
                    e.change_flag = Some("DELETED");
                    e.change_source = "GDPR";
                });
            }
        }
    }
    out.extend(associations);
    out
}

/// The events of one association change: HubSpot fires one per direction, on the subscription
/// of each end. Contacts and deals use the legacy form (`contact.associationChange` with
/// `associationType`, `fromObjectId`, `toObjectId`, `associationRemoved`,
/// `isPrimaryAssociation`); calls only have the generic one (`object.associationChange` with
/// `fromObjectTypeId`/`toObjectTypeId`, `associationTypeId`, `associationCategory`). `objectId`
/// is the `from` end, so half of the events on a subscription name another kind's id there.
#[allow(clippy::too_many_arguments)]
fn association_events(
    kind: ObjectKind,
    from: u64,
    to_kind: ObjectKind,
    to: u64,
    removed: bool,
    occurred_at: i64,
    next_event_id: &AtomicU64,
    cfg: &WebhookConfig,
) -> Vec<Event> {
    let mut out = Vec::new();
    let directions = [(kind, from, to_kind, to), (to_kind, to, kind, from)];
    for subscribed in [kind, to_kind] {
        for (f_kind, f, t_kind, t) in directions {
            let legacy = match (subscribed, legacy_name(f_kind), legacy_name(t_kind)) {
                (ObjectKind::Calls, _, _) => None,
                (_, Some(f_name), Some(t_name)) => Some(format!("{f_name}_TO_{t_name}")),
                // No legacy association type names calls: a contact subscription hears nothing.
                _ => continue,
            };
            let (subscription_type, object_type_id, base_sub) = match subscribed {
                ObjectKind::Contacts => ("contact.associationChange", None, 1_000_000),
                ObjectKind::Deals => ("deal.associationChange", None, 2_000_000),
                ObjectKind::Calls => ("object.associationChange", Some("0-48"), 3_000_000),
            };
            let generic = legacy.is_none();
            out.push(Event {
                event_id: next_event_id.fetch_add(1, Ordering::Relaxed),
                subscription_id: base_sub + 7,
                portal_id: cfg.portal_id,
                app_id: cfg.app_id,
                occurred_at,
                subscription_type: subscription_type.to_string(),
                attempt_number: 0,
                object_id: f,
                object_type_id,
                property_name: None,
                property_value: None,
                change_source: "CRM_UI",
                source_id: Some("userId:2000001".to_string()),
                change_flag: None,
                primary_object_id: None,
                merged_object_ids: None,
                new_object_id: None,
                number_of_properties_moved: None,
                is_primary_association: (!generic).then_some(false),
                association_type: legacy,
                from_object_type_id: generic.then(|| type_id(f_kind)),
                to_object_type_id: generic.then(|| type_id(t_kind)),
                association_type_id: generic.then(|| association_type_id(f_kind, t_kind)),
                association_category: generic.then_some("HUBSPOT_DEFINED"),
                from_object_id: Some(f),
                to_object_id: Some(t),
                association_removed: Some(removed),
            });
        }
    }
    out
}

/// Accepts event lists and delivers them in the background.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    tx: mpsc::UnboundedSender<Vec<Event>>,
    pub stats: Arc<WebhookStats>,
}

impl Dispatcher {
    /// Starts the delivery task on the current tokio runtime.
    pub fn start(
        cfg: WebhookConfig,
        clock: Clock,
        seed: u64,
        stats: Arc<WebhookStats>,
    ) -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder().timeout(Duration::from_millis(cfg.timeout_ms)).build()?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(rx, Arc::new(cfg), client, clock, StdRng::seed_from_u64(seed ^ 0x5EB), stats.clone()));
        Ok(Dispatcher { tx, stats })
    }

    pub fn send(&self, events: Vec<Event>) {
        if events.is_empty() {
            return;
        }
        self.stats.events_queued.fetch_add(events.len() as u64, Ordering::Relaxed);
        self.stats.pending.fetch_add(1, Ordering::SeqCst);
        if self.tx.send(events).is_err() {
            self.stats.pending.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

async fn run(
    mut rx: mpsc::UnboundedReceiver<Vec<Event>>,
    cfg: Arc<WebhookConfig>,
    client: reqwest::Client,
    clock: Clock,
    mut rng: StdRng,
    stats: Arc<WebhookStats>,
) {
    let sem = Arc::new(Semaphore::new(cfg.max_concurrency.max(1)));
    while let Some(events) = rx.recv().await {
        for chunk in events.chunks(cfg.max_batch.clamp(1, 100)) {
            let mut batch = chunk.to_vec();
            let mut delay_ms = 0;
            if rng.random::<f64>() < cfg.reorder_rate {
                batch.shuffle(&mut rng);
                delay_ms = rng.random_range(20..200);
                stats.reordered.fetch_add(1, Ordering::Relaxed);
            }
            let copies = if rng.random::<f64>() < cfg.duplicate_rate { 2 } else { 1 };
            for copy in 0..copies {
                if copy > 0 {
                    stats.duplicates.fetch_add(1, Ordering::Relaxed);
                }
                stats.pending.fetch_add(1, Ordering::SeqCst);
                let d = Delivery {
                    cfg: cfg.clone(),
                    client: client.clone(),
                    clock: clock.clone(),
                    stats: stats.clone(),
                    sem: sem.clone(),
                };
                let b = batch.clone();
                let wait = delay_ms + copy * 50;
                tokio::spawn(async move {
                    if wait > 0 {
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    d.deliver(b).await;
                    d.stats.pending.fetch_sub(1, Ordering::SeqCst);
                });
            }
        }
        stats.pending.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Delivery {
    cfg: Arc<WebhookConfig>,
    client: reqwest::Client,
    clock: Clock,
    stats: Arc<WebhookStats>,
    sem: Arc<Semaphore>,
}

impl Delivery {
    async fn deliver(&self, mut batch: Vec<Event>) {
        let uri = sign::signed_uri(&self.cfg.url);
        for attempt in 0..self.cfg.max_attempts.max(1) {
            if attempt > 0 {
                self.stats.retries.fetch_add(1, Ordering::Relaxed);
                let backoff =
                    self.cfg.retry_base_ms.saturating_mul(1 << (attempt - 1).min(20)).min(self.cfg.retry_max_ms);
                tokio::time::sleep(Duration::from_millis(backoff)).await;
            }
            for e in &mut batch {
                e.attempt_number = attempt;
            }
            let Ok(body) = serde_json::to_vec(&batch) else { return };
            let ts = self.clock.now_ms().to_string();
            let Ok(_permit) = self.sem.acquire().await else { return };
            let now = self.stats.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.stats.max_in_flight.fetch_max(now, Ordering::SeqCst);
            self.stats.attempts.fetch_add(1, Ordering::Relaxed);
            let mut req = self
                .client
                .post(&self.cfg.url)
                .header("Content-Type", "application/json")
                .header("User-Agent", "HubSpot Connect 2.0 (http://dev.hubspot.com/) - hubspot-sim")
                .header("X-HubSpot-Signature", sign::v1(&self.cfg.client_secret, &body))
                .header("X-HubSpot-Signature-Version", "v1");
            if !self.cfg.v1_only {
                req = req
                    .header("X-HubSpot-Signature-v3", sign::v3(&self.cfg.client_secret, "POST", &uri, &body, &ts))
                    .header("X-HubSpot-Request-Timestamp", ts);
            }
            let res = req.body(body).send().await;
            self.stats.in_flight.fetch_sub(1, Ordering::SeqCst);
            match res {
                Ok(r) if r.status().is_success() => {
                    self.stats.batches_delivered.fetch_add(1, Ordering::Relaxed);
                    self.stats.events_delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.stats.max_batch_size.fetch_max(batch.len() as u64, Ordering::Relaxed);
                    return;
                }
                Ok(r) => tracing::debug!(status = %r.status(), attempt, "webhook attempt refused"),
                Err(e) => tracing::debug!(error = %e, attempt, "webhook attempt failed"),
            }
            self.stats.failed_attempts.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.batches_failed.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(events = batch.len(), "webhook batch given up after every retry");
    }
}

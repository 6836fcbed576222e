//! The signed owner-change webhook (`OWNER_CHANGE_WEBHOOK_URL`): a task of `serve` drains the
//! outbox `owner_change_deliveries` (`store::owner_changes`), which the owner-change triggers
//! fill in the same transaction as the upsert that changed the owner, whatever wrote it (webhook
//! fetch, poller, full pass, `hubspot-sync sync`).
//!
//! Each delivery is a `POST` of [`payload::body`] with its HMAC-SHA256 in
//! [`payload::SIGNATURE_HEADER`]; a 2xx answer deletes the row, anything else (or no answer within
//! 10 s) puts it back after [`payload::backoff`]: at least once, retried until accepted, each
//! attempt carrying the same `delivery_id` for the receiver to deduplicate. Every instance drains
//! (claims never overlap); deliveries of different changes may arrive out of order after a retry
//! (`changed_at` orders them).
//!
//! Without the URL, due rows are dropped: there is nowhere to deliver them.

pub mod payload;

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::Secret;
use crate::metric;
use crate::store::owner_changes::{self, OwnerChange};
use crate::store::{Pool, StoreError};
use crate::telemetry::ErrorChain;

/// How often the outbox is looked at when it was empty.
pub const POLL_EVERY: Duration = Duration::from_secs(1);
/// Most deliveries claimed at once.
const CLAIM: i64 = 20;
/// How long a claimed delivery is reserved for this sender (longer than one attempt can take).
const LEASE: Duration = Duration::from_secs(60);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where deliveries go.
#[derive(Clone)]
pub struct Target {
    http: reqwest::Client,
    url: Url,
    secret: Secret,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Target { url: [redacted], secret: [redacted] }")
    }
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("the owner-change webhook could not be reached: {0}")]
    Transport(String),
    #[error("the owner-change webhook answered {0}")]
    Status(u16),
}

impl Target {
    pub fn new(url: Url, secret: Secret) -> Self {
        let http = reqwest::Client::builder().timeout(SEND_TIMEOUT).build().unwrap_or_default();
        Self { http, url, secret }
    }

    /// One attempt to deliver `change`.
    pub async fn deliver(&self, change: &OwnerChange) -> Result<(), DeliveryError> {
        let body = payload::body(change);
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(payload::SIGNATURE_HEADER, payload::signature(self.secret.expose(), &body))
            .header(payload::DELIVERY_HEADER, change.id.to_string())
            .header(payload::ATTEMPT_HEADER, (change.attempts + 1).to_string())
            .body(body)
            .send()
            .await
            // `without_url`: the URL may hold a token of the receiver's.
            .map_err(|e| DeliveryError::Transport(ErrorChain(&e.without_url()).to_string()))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(DeliveryError::Status(status.as_u16())),
        }
    }
}

/// The task draining the outbox.
pub struct Deliverer {
    pool: Pool,
    target: Option<Target>,
}

impl Deliverer {
    /// `target`: `None` when `OWNER_CHANGE_WEBHOOK_URL` is unset (due rows are dropped).
    pub fn new(pool: Pool, target: Option<Target>) -> Self {
        Self { pool, target }
    }

    /// One pass: claims the due deliveries and attempts each; returns how many rows it handled
    /// (delivered, failed or dropped).
    pub async fn pass(&self) -> Result<usize, StoreError> {
        let mut conn = self.pool.get().await?;
        let Some(target) = &self.target else {
            let dropped = owner_changes::discard_due(&mut conn, 1_000).await?;
            if dropped > 0 {
                tracing::info!(dropped, "owner changes not delivered: OWNER_CHANGE_WEBHOOK_URL is not set");
            }
            return Ok(dropped);
        };
        let due = owner_changes::claim_due(&mut conn, CLAIM, LEASE).await?;
        drop(conn);
        for change in &due {
            let outcome = target.deliver(change).await;
            let mut conn = self.pool.get().await?;
            match outcome {
                Ok(()) => {
                    owner_changes::delivered(&mut conn, change.id).await?;
                    metrics::counter!(metric::OWNER_CHANGE_DELIVERIES, "result" => "delivered").increment(1);
                    tracing::info!(delivery = %change.id, object = %change.object, attempt = change.attempts + 1,
                        "owner change delivered");
                }
                Err(error) => {
                    let failures = u32::try_from(change.attempts + 1).unwrap_or(u32::MAX);
                    let wait = payload::backoff(failures);
                    owner_changes::failed(&mut conn, change.id, &error.to_string(), wait).await?;
                    metrics::counter!(metric::OWNER_CHANGE_DELIVERIES, "result" => "failed").increment(1);
                    tracing::warn!(delivery = %change.id, attempt = failures, retry_in_ms = wait.as_millis() as u64,
                        error = %error, "owner change not delivered; will retry");
                }
            }
        }
        Ok(due.len())
    }

    /// Drains until `shutdown`: at once again after a pass that found work, else every
    /// [`POLL_EVERY`]; a failed pass is logged and retried.
    pub fn spawn(self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let busy = match self.pass().await {
                    Ok(handled) => handled > 0,
                    Err(error) => {
                        tracing::warn!(error = %ErrorChain(&error), "owner-change delivery pass failed; retrying");
                        false
                    }
                };
                if busy && !shutdown.is_cancelled() {
                    continue;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(POLL_EVERY) => {}
                }
            }
        })
    }
}

//! Real-time intake: `POST /webhooks/hubspot`.
//!
//! Refuse a declared length over 256 KiB (413) -> take a place ([`limits::Gate`]; too many
//! requests at once: 503, the body unread) -> read the raw body (at most 256 KiB within 5 s, else
//! 413 or 408: [`limits`]) -> check the signature on those exact bytes
//! ([`crate::signature`], else 401) -> refuse a v1/v2-only request once v3 has been seen, or when
//! it repeats a body accepted before ([`replay`], 401) -> parse the event array ([`event`], else
//! 400) -> write
//! deletions, merges and privacy deletions ([`apply`]; database down: 503) -> queue the ids to
//! fetch ([`crate::queue`]; full or shutting down: 503, and HubSpot retries the batch, whose
//! writes are idempotent) -> 204. Writing before queueing means a full queue never loses a
//! deletion. Events we do not keep are counted and accepted: a 4xx would make HubSpot retry them
//! for a day.
//!
//! Most batches (creations, property changes, signed with v3) touch no database: they are
//! answered as soon as their ids are queued, in well under a millisecond of work; their body's
//! digest is written in the background ([`replay`]).

pub mod apply;
pub mod event;
pub mod limits;
pub mod replay;
pub mod route;
pub mod served;
pub mod stats;

use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::web;
use actix_web::{HttpRequest, HttpResponse};
use url::Url;

use crate::config::{DEFAULT_WEBHOOK_MAX_CONCURRENT, SecretList, WebhookSettings};
use crate::kind::ObjectKind;
use crate::queue::{Change, Gone, Queue, QueueError};
use crate::signature::uri::{UriSource, signed_uri};
use crate::signature::{self, SignatureHeaders, SignedRequest};
use crate::store::Pool;
use crate::store::webhook_replay::Digest;
use crate::telemetry::ErrorChain;
pub use limits::{BODY_TIMEOUT, MAX_BODY_BYTES};
use limits::{BodyError, Gate};
use replay::ReplayGuard;
use stats::{Rejection as Refused, WebhookStats};

use crate::metric;

/// What the handler needs: the signing settings, the queue (none while real-time fetching is
/// off because no HubSpot token is set; webhooks then get 503 and HubSpot keeps them) and the
/// live figures it keeps.
#[derive(Clone)]
pub struct Intake {
    inner: Arc<IntakeInner>,
    stats: Arc<WebhookStats>,
    gate: Gate,
    /// The other accounts this process runs ([`served`]).
    served: served::Served,
    /// Where the other accounts' client secrets are read.
    env: crate::config::Environment,
}

struct IntakeInner {
    secrets: Option<SecretList>,
    /// `HUBSPOT_REQUIRE_V3` and the replay rule.
    replay: Arc<ReplayGuard>,
    public_url: Option<Url>,
    queue: Option<Arc<Queue>>,
    /// Which account each batch is for ([`route`]).
    router: route::Router,
    /// `WEBHOOK_UNKNOWN_PORTAL=refuse`.
    refuse_unknown_portal: bool,
}

impl Intake {
    pub fn new(settings: &WebhookSettings, queue: Option<Arc<Queue>>) -> Self {
        Self {
            inner: Arc::new(IntakeInner {
                secrets: settings.hubspot_client_secret.clone(),
                replay: Arc::new(ReplayGuard::new(settings.hubspot_require_v3)),
                public_url: settings.public_url.clone(),
                queue,
                router: route::Router::default(),
                refuse_unknown_portal: settings.webhook_unknown_portal == "refuse",
            }),
            stats: Arc::new(WebhookStats::new()),
            gate: Gate::new(DEFAULT_WEBHOOK_MAX_CONCURRENT as usize),
            served: served::Served::default(),
            env: crate::config::Environment::default(),
        }
    }

    /// The same intake reading the other accounts' client secrets from `env`.
    pub fn with_environment(self, env: crate::config::Environment) -> Self {
        Self { env, ..self }
    }

    /// The other accounts whose batches this intake takes (filled by the per-account runtime).
    pub fn served(&self) -> &served::Served {
        &self.served
    }

    /// `HUBSPOT_REQUIRE_V3`, for the replay rules of the other accounts.
    pub fn require_v3(&self) -> crate::config::RequireV3 {
        self.inner.replay.mode()
    }

    /// The same intake handling at most `places` requests at once (`WEBHOOK_MAX_CONCURRENT`).
    pub fn with_max_concurrent(self, places: usize) -> Self {
        Self { gate: Gate::new(places), ..self }
    }

    /// The same intake recording its figures into `stats` (shared with the status API).
    pub fn with_stats(self, stats: Arc<WebhookStats>) -> Self {
        Self { stats, ..self }
    }

    pub fn queue(&self) -> Option<&Arc<Queue>> {
        self.inner.queue.as_ref()
    }

    /// The replay rule's state, whose writer [`ReplayGuard::run`] runs beside the server.
    pub fn replay(&self) -> &Arc<ReplayGuard> {
        &self.inner.replay
    }

    /// The live webhook figures this intake records.
    pub fn stats(&self) -> &Arc<WebhookStats> {
        &self.stats
    }
}

/// Why a request was not accepted.
#[derive(Debug)]
enum Refusal {
    /// Every place was taken ([`Gate`]).
    Busy,
    TooLarge,
    /// The body did not arrive within [`BODY_TIMEOUT`].
    SlowBody,
    Signature(signature::Rejection),
    /// A v1/v2-only repeat of a body accepted before.
    Replayed,
    Malformed(String),
    Queue(QueueError),
    NotFetching,
    Store(crate::store::StoreError),
    /// No account of this database has the batch's portal (`WEBHOOK_UNKNOWN_PORTAL=refuse`).
    UnknownPortal,
    /// A verified v1/v2-only batch of an account whose parts this process does not run
    /// ([`served`]; a v3 one is handed over).
    AccountNotServed,
}

impl Refusal {
    fn status(&self) -> StatusCode {
        match self {
            Self::Busy => StatusCode::SERVICE_UNAVAILABLE,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::SlowBody => StatusCode::REQUEST_TIMEOUT,
            Self::Signature(_) | Self::Replayed => StatusCode::UNAUTHORIZED,
            Self::Malformed(_) => StatusCode::BAD_REQUEST,
            Self::Queue(_) | Self::NotFetching | Self::Store(_) | Self::AccountNotServed => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::UnknownPortal => StatusCode::NOT_FOUND,
        }
    }

    fn kind(&self) -> Refused {
        match self {
            Self::Busy => Refused::Busy,
            Self::TooLarge | Self::SlowBody | Self::Malformed(_) => Refused::Malformed,
            Self::Signature(_) | Self::Replayed => Refused::Signature,
            Self::Queue(QueueError::Full) => Refused::QueueFull,
            Self::Queue(QueueError::Closed) => Refused::ShuttingDown,
            Self::NotFetching => Refused::NotConfigured,
            Self::AccountNotServed => Refused::AccountNotServed,
            Self::UnknownPortal => Refused::Malformed,
            Self::Store(_) => Refused::Database,
        }
    }

    /// The body sent back: a short reason, never the cause's details.
    fn message(&self) -> &'static str {
        match self {
            Self::Busy => "too many webhook requests at once, retry later",
            Self::TooLarge => "body over 256 KiB",
            Self::SlowBody => "body not received in time",
            Self::Signature(_) => "missing, forged or stale signature",
            Self::Replayed => "replayed delivery",
            Self::Malformed(_) => "body is not a JSON array of events",
            Self::Queue(QueueError::Full) => "queue full, retry later",
            Self::Queue(QueueError::Closed) => "shutting down, retry later",
            Self::NotFetching => "real-time sync is not configured (HUBSPOT_ACCESS_TOKEN)",
            Self::Store(_) => "database unavailable, retry later",
            Self::UnknownPortal => "unknown HubSpot portal",
            Self::AccountNotServed => "this account is not run by this process, retry later",
        }
    }
}

impl From<BodyError> for Refusal {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge => Self::TooLarge,
            BodyError::Slow => Self::SlowBody,
            BodyError::Unreadable(why) => Self::Malformed(why),
        }
    }
}

/// The `reason` label of a refused replay (beside [`signature::Rejection::as_str`]'s).
const REPLAYED: &str = "replayed";

impl From<replay::Refused> for Refusal {
    fn from(refused: replay::Refused) -> Self {
        match refused {
            replay::Refused::V3Required => Self::Signature(signature::Rejection::V3Required),
            replay::Refused::Replayed => Self::Replayed,
            replay::Refused::Store(e) => Self::Store(e),
        }
    }
}

/// `POST /webhooks/hubspot`.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    intake: web::Data<Intake>,
    pool: web::Data<Pool>,
) -> HttpResponse {
    match accept(&req, payload, &intake, &pool).await {
        Ok(events) => {
            intake.stats.accepted(events);
            HttpResponse::NoContent().finish()
        }
        Err(refusal) => {
            match &refusal {
                Refusal::Signature(why) => {
                    metrics::counter!(metric::WEBHOOK_SIGNATURE_FAILURES, "reason" => why.as_str()).increment(1);
                    tracing::warn!(reason = why.as_str(), "webhook refused: {why}");
                }
                Refusal::Replayed => {
                    metrics::counter!(metric::WEBHOOK_SIGNATURE_FAILURES, "reason" => REPLAYED).increment(1);
                    tracing::warn!(reason = REPLAYED, "webhook refused: {}", replay::Refused::Replayed);
                }
                Refusal::Store(e) => {
                    tracing::error!(error = %ErrorChain(e), "webhook not applied: database unavailable")
                }
                Refusal::Malformed(e) => tracing::warn!(error = %e, "webhook refused: malformed body"),
                other => tracing::info!(status = other.status().as_u16(), "webhook refused: {}", other.message()),
            }
            intake.stats.rejected(refusal.kind());
            HttpResponse::build(refusal.status()).json(serde_json::json!({ "error": refusal.message() }))
        }
    }
}

/// Everything but the answer; returns the number of events accepted.
async fn accept(req: &HttpRequest, payload: web::Payload, intake: &Intake, pool: &Pool) -> Result<usize, Refusal> {
    limits::check_declared(req).map_err(Refusal::from)?;
    // Held until the request is answered: its body, parsed events and writes count against it.
    let _place = intake.gate.enter().ok_or(Refusal::Busy)?;
    let (served, env) = (&intake.served, &intake.env);
    let intake = &intake.inner;
    let body = limits::read_body(req, payload).await.map_err(Refusal::from)?;
    let accounts = intake.router.accounts(pool, env).await;
    let portals = if accounts.routes_by_portal() { route::portals(&body) } else { Default::default() };
    let account_secrets;
    let (secrets, account) = match accounts.target(&portals) {
        route::Target::Default => (intake.secrets.as_ref(), None),
        route::Target::Unknown(portals) => return unknown_portal(intake, &portals),
        route::Target::Mixed => return Err(Refusal::Signature(signature::Rejection::Forged)),
        // Verified with its own secret: a batch signed with another account's is forged.
        route::Target::Account { portal_id, secrets } => {
            account_secrets = secrets;
            (account_secrets.as_ref(), Some(portal_id))
        }
    };
    let (verified, key) = verify(req, &body, intake, secrets).map_err(Refusal::Signature)?;
    let (lanes, elsewhere) = match account {
        None => (
            vec![Lane {
                portal_id: accounts.default_portal(),
                pool: pool.clone(),
                queue: intake.queue.clone(),
                replay: intake.replay.clone(),
            }],
            Vec::new(),
        ),
        Some(first) => served_lanes(served, &accounts, first, &portals),
    };
    // The replay rule of an account lives with its parts: only a v3 batch (which needs none)
    // is handed over; a v1/v2-only one gets 503 until it reaches the holder.
    if !elsewhere.is_empty() && verified.version != signature::Version::V3 {
        metrics::counter!(metric::WEBHOOK_ACCOUNT_NOT_SERVED).increment(1);
        return Err(Refusal::AccountNotServed);
    }
    if let Some(lane) = lanes.first() {
        lane.replay.admit(&lane.pool, verified.version, key.as_ref()).await?;
    }
    let events: Vec<event::RawEvent> = serde_json::from_slice(&body).map_err(|e| Refusal::Malformed(e.to_string()))?;
    let count = events.len();
    let mut delivered = 0;
    for lane in &lanes {
        // Events of other portals in a batch (one app installed in portals that are no account
        // here) are counted, never written into this account.
        let own = own_events(&events, lane.portal_id);
        delivered += own.len();
        match (account, lane.portal_id) {
            (Some(_), Some(portal)) => crate::telemetry::account::scope(portal, lane.deliver(own)).await?,
            _ => lane.deliver(own).await?,
        }
    }
    for portal_id in &elsewhere {
        delivered += own_events(&events, Some(*portal_id)).len();
    }
    hand_over(pool, &elsewhere, &body).await?;
    if delivered < count {
        metrics::counter!(metric::WEBHOOK_UNKNOWN_PORTAL_EVENTS).increment((count - delivered) as u64);
    }
    if let Some(lane) = lanes.first() {
        lane.replay.accepted(&lane.pool, verified.version, key).await.map_err(Refusal::Store)?;
    }
    Ok(count)
}

/// The events of `events` that are `portal_id`'s (all of them for the default account while its
/// portal id is unknown).
fn own_events(events: &[event::RawEvent], portal_id: Option<i64>) -> Vec<event::RawEvent> {
    match portal_id {
        Some(own) => events.iter().filter(|e| e.portal_id.is_none_or(|p| p == own)).cloned().collect(),
        None => events.to_vec(),
    }
}

/// Stores a verified batch for each account of `portals` that does not run here, durably,
/// before the 204: its lease holder's drain (`cluster::Drain`) gives it to the account's intake
/// ([`hand_on`]); while no machine holds the account, it waits there.
async fn hand_over(pool: &Pool, portals: &[i64], body: &[u8]) -> Result<(), Refusal> {
    if portals.is_empty() {
        return Ok(());
    }
    let mut conn = pool.get().await.map_err(|e| Refusal::Store(e.into()))?;
    for portal_id in portals {
        crate::store::cluster::push(&mut conn, *portal_id, &[body.to_vec()]).await.map_err(Refusal::Store)?;
        metrics::counter!(metric::WEBHOOK_HANDED_OVER).increment(1);
        tracing::debug!(account.portal_id = portal_id, "webhook for an account run elsewhere: handed over");
    }
    Ok(())
}

/// Why handed-over batches could not be given to an account's intake (they stay in the table).
#[derive(Debug, thiserror::Error)]
pub enum HandOnError {
    #[error("account {0} does not run here (yet)")]
    NotRunning(i64),
    #[error("the account's intake refused the batch: {0}")]
    Refused(&'static str, #[source] Option<Box<dyn std::error::Error + Send + Sync>>),
}

impl From<Refusal> for HandOnError {
    fn from(refusal: Refusal) -> Self {
        let message = refusal.message();
        let cause: Option<Box<dyn std::error::Error + Send + Sync>> = match refusal {
            Refusal::Store(e) => Some(Box::new(e)),
            Refusal::Queue(e) => Some(Box::new(e)),
            _ => None,
        };
        HandOnError::Refused(message, cause)
    }
}

/// Gives batches other machines received for `portal_id` (verified there, `hand_over`) to its
/// intake here, as if they had come in here: the writes, then its queue. An error leaves every
/// one of them for the next look (its writes are idempotent).
pub async fn hand_on(
    served: served::Served,
    portal_id: i64,
    batches: Vec<crate::store::cluster::HandedOver>,
) -> Result<(), HandOnError> {
    let account = served.get(portal_id).ok_or(HandOnError::NotRunning(portal_id))?;
    let lane =
        Lane { portal_id: Some(portal_id), pool: account.pool, queue: Some(account.queue), replay: account.replay };
    for batch in batches {
        let events: Vec<event::RawEvent> = match serde_json::from_slice(&batch.body) {
            Ok(events) => events,
            Err(e) => {
                // Parsed before it was stored: never expected; kept, it would block the account.
                tracing::error!(account.portal_id = portal_id, error = %e, "handed-over webhook is not an event array: dropped");
                continue;
            }
        };
        crate::telemetry::account::scope(portal_id, lane.deliver(own_events(&events, Some(portal_id)))).await?;
    }
    Ok(())
}

/// The lanes of a verified batch of other accounts (`first` and any other account sharing its
/// app in the batch) that run here, and the accounts of it that do not (their batch is handed
/// over: [`hand_over`]).
fn served_lanes(
    served: &served::Served,
    accounts: &route::Accounts,
    first: i64,
    portals: &std::collections::BTreeSet<i64>,
) -> (Vec<Lane>, Vec<i64>) {
    let mut ids = vec![first];
    ids.extend(portals.iter().copied().filter(|p| *p != first && accounts.is_account(*p)));
    let mut lanes = Vec::new();
    let mut elsewhere = Vec::new();
    for portal_id in ids {
        match served.get(portal_id) {
            Some(account) => lanes.push(Lane {
                portal_id: Some(portal_id),
                pool: account.pool,
                queue: Some(account.queue),
                replay: account.replay,
            }),
            None => elsewhere.push(portal_id),
        }
    }
    (lanes, elsewhere)
}

/// Where one account's events of a batch go.
struct Lane {
    /// `None`: the default account while its portal id is unknown (every event is its own).
    portal_id: Option<i64>,
    pool: Pool,
    queue: Option<Arc<Queue>>,
    replay: Arc<ReplayGuard>,
}

impl Lane {
    /// Writes the events' deletions, merges and privacy deletions, then queues the ids to fetch.
    async fn deliver(&self, events: Vec<event::RawEvent>) -> Result<(), Refusal> {
        let plan = event::plan(events);
        if plan.ignored > 0 {
            metrics::counter!(metric::WEBHOOK_EVENTS_IGNORED).increment(plan.ignored as u64);
        }
        // Deletions, merges and privacy deletions are written first, whatever the queue says: a
        // batch the queue then refuses (full, closed, real-time fetching off) is answered 503 and
        // retried by HubSpot, and writing them again is harmless. Queued first, a queue that stayed
        // full through HubSpot's day of retries would lose them.
        // A merge or deletion can overtake a fetch of the same record already in flight: read just
        // before the change, written just after it, when no row existed yet for the change to
        // archive; or a restore delivered before its deletion was read first. The queue is told
        // before the writes (a read finishing in between is then still in flight) and names the
        // ids that may be in either case: only those are read again. Every other deletion or merge
        // is applied from its event alone, and a read that does not find such an id live is
        // resolved from the event, without a second read (the fetcher's batch).
        let racing = self.queue.as_ref().map(|queue| queue.gone(&gone_items(&plan))).unwrap_or_default();
        if plan.writes() {
            apply::apply(&self.pool, &plan).await.map_err(Refusal::Store)?;
        }
        let queue = self.queue.as_ref().ok_or(Refusal::NotFetching)?;
        if queue.is_closed() {
            return Err(Refusal::Queue(QueueError::Closed));
        }
        let privacy: std::collections::HashSet<&str> = plan.privacy.iter().map(String::as_str).collect();
        let reread = racing
            .into_iter()
            .filter(|(kind, id)| !(*kind == ObjectKind::Contacts && privacy.contains(id.as_str())))
            .map(|(kind, id)| Change::untimed(kind, id));
        let fetch: Vec<Change> = plan.fetch.iter().cloned().chain(reread).collect();
        if !(fetch.is_empty() && plan.fetch_associated.is_empty()) {
            queue.push_changes(&fetch, &plan.fetch_associated).map_err(Refusal::Queue)?;
        }
        Ok(())
    }
}

/// The deletions, merges and privacy deletions of a plan, as the queue remembers them.
fn gone_items(plan: &event::Plan) -> Vec<(ObjectKind, String, Gone)> {
    let deleted =
        plan.deletions.iter().map(|d| (d.kind, d.id.clone(), Gone::Deleted(d.occurred_at.timestamp_millis())));
    let merged = plan
        .merges
        .iter()
        .flat_map(|m| m.merged.iter().map(|id| (m.kind, id.clone(), Gone::Merged(m.survivor.clone()))));
    let now = chrono::Utc::now().timestamp_millis();
    let erased = plan.privacy.iter().map(|id| (ObjectKind::Contacts, id.clone(), Gone::Deleted(now)));
    deleted.chain(merged).chain(erased).collect()
}

/// A batch for portals that are no account here: counted, and accepted (204, nothing written)
/// unless `WEBHOOK_UNKNOWN_PORTAL=refuse`.
fn unknown_portal(intake: &IntakeInner, portals: &[i64]) -> Result<usize, Refusal> {
    metrics::counter!(metric::WEBHOOK_UNKNOWN_PORTAL_EVENTS).increment(1);
    tracing::info!(portals = ?portals, "webhook for a HubSpot portal that is no account of this database");
    if intake.refuse_unknown_portal { Err(Refusal::UnknownPortal) } else { Ok(0) }
}

/// The signature check with `secrets`, and the request's [`replay::replay_key`].
fn verify(
    req: &HttpRequest,
    body: &[u8],
    intake: &IntakeInner,
    secrets: Option<&SecretList>,
) -> Result<(signature::Verified, Option<Digest>), signature::Rejection> {
    let headers = req.headers();
    let header = |name: &'static str| headers.get(name).and_then(|v| v.to_str().ok());
    let source = UriSource {
        public_url: intake.public_url.as_ref(),
        host: header("host").or_else(|| req.uri().authority().map(|a| a.as_str())),
        forwarded_proto: header("x-forwarded-proto"),
        connection_scheme: req.uri().scheme_str().unwrap_or("http"),
    };
    let path_and_query = req.uri().path_and_query().map_or_else(|| req.path(), |p| p.as_str());
    let uri = signed_uri(&source, path_and_query).ok_or(signature::Rejection::NoUri)?;
    let signed = SignedRequest {
        method: req.method().as_str(),
        uri: &uri,
        body,
        headers: SignatureHeaders::from_lookup(header),
    };
    let now_ms = chrono::Utc::now().timestamp_millis();
    let verified = signature::verify(&signed, secrets, intake.replay.requires_v3(), now_ms)?;
    Ok((verified, replay::replay_key(&signed.headers)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_is_counted_under_its_own_reason() {
        let database = Refusal::Store(crate::store::StoreError::from(diesel::result::Error::NotFound));
        assert_eq!(database.kind(), Refused::Database);
        assert_eq!(database.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(Refusal::Queue(QueueError::Full).kind(), Refused::QueueFull);
        assert_eq!(Refusal::Queue(QueueError::Closed).kind(), Refused::ShuttingDown);
        assert_eq!(Refusal::NotFetching.kind(), Refused::NotConfigured);
        assert_eq!(Refusal::TooLarge.kind(), Refused::Malformed);
        assert_eq!(Refusal::Busy.kind(), Refused::Busy);
        assert_eq!(Refusal::Busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        let reasons: std::collections::HashSet<_> =
            [database.kind(), Refused::QueueFull, Refused::ShuttingDown, Refused::NotConfigured]
                .iter()
                .map(|r| r.as_str())
                .collect();
        assert_eq!(reasons.len(), 4, "distinct metric labels");
    }

    #[test]
    fn replays_and_v3_required_are_signature_refusals() {
        let replayed = Refusal::from(replay::Refused::Replayed);
        assert_eq!((replayed.status(), replayed.kind()), (StatusCode::UNAUTHORIZED, Refused::Signature));
        let required = Refusal::from(replay::Refused::V3Required);
        assert!(matches!(required, Refusal::Signature(signature::Rejection::V3Required)));
        assert_eq!(required.kind(), Refused::Signature);
        assert_ne!(REPLAYED, signature::Rejection::V3Required.as_str(), "a reason of its own");
    }
}

//! What a webhook request may cost before its signature is checked: anyone can send one, so the
//! memory and time it takes are bounded before it is known to come from HubSpot.
//!
//! - **Body size**: at most [`MAX_BODY_BYTES`] (256 KiB), else 413. HubSpot sends at most 100
//!   events per request (`docs/hubspot.md §2.1`); an event is about 300 bytes of ids and times
//!   (a full batch about 30 KB), and a property change carries one new value. 256 KiB is eight
//!   full batches, or a full batch with a few long text values (HubSpot's longest) besides. A
//!   batch refused for its size is retried by HubSpot and then dropped; the next reconciliation
//!   run reads the records it named anyway (their last-modified time moved).
//! - **Body time**: the body must arrive within [`BODY_TIMEOUT`], else 408. HubSpot counts a
//!   delivery unanswered after 5 s as failed (and retries it, §2.4), so a body still arriving then is
//!   of no use; it cannot hold its place longer.
//! - **Concurrency**: at most `WEBHOOK_MAX_CONCURRENT` requests are handled at once ([`Gate`]);
//!   beyond it a request gets 503 at once, its body unread, and HubSpot retries (it sends at most
//!   10 at once per account, §2.4). So bodies not
//!   yet authenticated hold at most that many times 256 KiB (16 MiB by default), however many
//!   clients send at once.

use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header::CONTENT_LENGTH;
use actix_web::web::{self, Bytes, BytesMut};
use futures_util::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest accepted body.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Longest a client may take to send the body once its request head arrived (actix times out
/// the head itself, but not the body): a slow-loris client trickling a body is cut off with 408
/// and gives its place back.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a body was not read.
#[derive(Debug)]
pub enum BodyError {
    /// Declared or sent over [`MAX_BODY_BYTES`].
    TooLarge,
    /// Not received within [`BODY_TIMEOUT`].
    Slow,
    /// The connection failed mid-body.
    Unreadable(String),
}

/// The places for webhook requests being handled; shared by every worker of the server.
#[derive(Clone, Debug)]
pub struct Gate {
    places: Arc<Semaphore>,
}

impl Gate {
    /// Room for `places` requests at once.
    pub fn new(places: usize) -> Self {
        Self { places: Arc::new(Semaphore::new(places.max(1))) }
    }

    /// A place for one request, held until the returned permit is dropped; `None` when all are
    /// taken (never waits).
    pub fn enter(&self) -> Option<OwnedSemaphorePermit> {
        self.places.clone().try_acquire_owned().ok()
    }
}

/// 413 before anything is read: the declared length is over the limit.
pub fn check_declared(req: &HttpRequest) -> Result<(), BodyError> {
    match declared_length(req) {
        Some(len) if len > MAX_BODY_BYTES => Err(BodyError::TooLarge),
        _ => Ok(()),
    }
}

/// The whole body, within [`BODY_TIMEOUT`] and [`MAX_BODY_BYTES`].
pub async fn read_body(req: &HttpRequest, payload: web::Payload) -> Result<Bytes, BodyError> {
    tokio::time::timeout(BODY_TIMEOUT, read(req, payload)).await.map_err(|_| BodyError::Slow)?
}

async fn read(req: &HttpRequest, mut payload: web::Payload) -> Result<Bytes, BodyError> {
    check_declared(req)?;
    let mut body = BytesMut::with_capacity(declared_length(req).unwrap_or(8 * 1024).min(MAX_BODY_BYTES));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| BodyError::Unreadable(format!("cannot read the body: {e}")))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn declared_length(req: &HttpRequest) -> Option<usize> {
    req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<usize>().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gate_refuses_beyond_its_places_and_reopens_when_one_leaves() {
        let gate = Gate::new(2);
        let first = gate.enter().expect("a first place");
        let second = gate.clone().enter().expect("a second place, shared by clones");
        assert!(gate.enter().is_none(), "no third place");
        drop(first);
        assert!(gate.enter().is_some(), "a place again once one left");
        drop(second);
    }

    #[test]
    fn a_declared_length_over_the_limit_is_refused_before_reading() {
        let at = |len: usize| {
            actix_web::test::TestRequest::post().insert_header((CONTENT_LENGTH, len.to_string())).to_http_request()
        };
        assert!(check_declared(&at(MAX_BODY_BYTES)).is_ok());
        assert!(matches!(check_declared(&at(MAX_BODY_BYTES + 1)), Err(BodyError::TooLarge)));
        assert!(check_declared(&actix_web::test::TestRequest::post().to_http_request()).is_ok());
    }
}

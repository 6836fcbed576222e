//! Request ids and access logs: every request gets an id (the caller's `X-Request-Id` when it is
//! a short token, else a new one), echoed in the response's `X-Request-Id`. Everything logged
//! while the request is handled carries it (span `request`, field `request_id`), and one line
//! per request records method, path (never the query string), status and duration (at debug
//! level for probes and accepted webhooks, see [`routine`]).

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument as _;

use crate::metric;

/// The request id header, read and written.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-supplied id that is kept.
const MAX_ID_LEN: usize = 64;

/// The middleware: `App::new().wrap(actix_web::middleware::from_fn(request_log::middleware))`.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let id = req
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map_or_else(|| uuid::Uuid::new_v4().simple().to_string(), str::to_owned);
    let span = tracing::info_span!("request", request_id = %id);
    let method = req.method().as_str().to_owned();
    let path = req.path().to_owned();
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_millis() as u64;
    metrics::counter!(metric::HTTP_REQUESTS, "method" => method.clone(), "status" => status.to_string()).increment(1);
    span.in_scope(|| {
        if routine(&path, status) {
            tracing::debug!(request_id = %id, http.method = %method, http.path = %path, http.status = status, duration_ms, "request");
        } else {
            tracing::info!(request_id = %id, http.method = %method, http.path = %path, http.status = status, duration_ms, "request");
        }
    });
    Ok(response)
}

/// Probes and accepted webhooks are logged at debug level: HubSpot can deliver thousands of
/// batches a second, each already counted in the metrics, and a line per batch would cost a fifth
/// of the endpoint's throughput (BENCHMARKS.md). Refused webhooks stay at info.
fn routine(path: &str, status: u16) -> bool {
    matches!(path, "/healthz" | "/readyz") || (path == "/webhooks/hubspot" && status == 204)
}

/// A caller's id is kept only when it is short and made of safe characters (it is logged).
fn acceptable(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refused_webhooks_and_other_requests_are_logged_at_info() {
        assert!(routine("/webhooks/hubspot", 204));
        assert!(routine("/healthz", 200));
        assert!(!routine("/webhooks/hubspot", 401));
        assert!(!routine("/api/sync/status", 200));
    }

    #[test]
    fn only_short_safe_ids_are_kept() {
        assert!(acceptable("3f2b-11aa_x.y"));
        assert!(!acceptable(""));
        assert!(!acceptable("a b"));
        assert!(!acceptable("line\nbreak"));
        assert!(!acceptable(&"x".repeat(65)));
    }
}

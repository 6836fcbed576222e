//! Request ids and access logs: every request gets an id (the caller's `X-Request-Id` when it is
//! a short token, else a new one), echoed in the response's `X-Request-Id`. Everything logged
//! while the request is handled carries it (span `request`, field `request_id`), and one line
//! per request records method, path (never the query string), status and duration (at debug
//! level for probes and accepted webhooks, see [`routine`]).
//!
//! The request counter's labels come from closed sets, whatever a client sends: the method is
//! one of seven or `other` ([`method_label`]), the status is the one this server answered,
//! and there is no path label. A label taken verbatim from the request (any token is a valid
//! HTTP method, any path can be asked for) would let anyone create metric series without bound
//! before routing or authentication.

use std::time::Instant;

use actix_web::Error;
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use tracing::Instrument as _;

use crate::metric;

/// The request id header, read and written.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Longest caller-supplied id that is kept.
const MAX_ID_LEN: usize = 64;

/// The `method` label (and logged method) of a request: its name when it is GET, POST, HEAD,
/// PUT, DELETE, PATCH or OPTIONS, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

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
    let method = method_label(req.method());
    let path = req.path().to_owned();
    let started = Instant::now();
    let mut response = next.call(req).instrument(span.clone()).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    let duration_ms = started.elapsed().as_millis() as u64;
    metrics::counter!(metric::HTTP_REQUESTS, "method" => method, "status" => response.status().as_str().to_owned())
        .increment(1);
    span.in_scope(|| {
        if routine(&path, status) {
            tracing::debug!(request_id = %id, http.method = method, http.path = %path, http.status = status, duration_ms, "request");
        } else {
            tracing::info!(request_id = %id, http.method = method, http.path = %path, http.status = status, duration_ms, "request");
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
    fn methods_outside_the_closed_set_are_other() {
        for known in ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            assert_eq!(method_label(&Method::from_bytes(known.as_bytes()).unwrap()), known);
        }
        for sent in ["PROPFIND", "get", "X".repeat(7000).as_str(), "CONNECT", "TRACE"] {
            assert_eq!(method_label(&Method::from_bytes(sent.as_bytes()).unwrap()), "other", "{sent}");
        }
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

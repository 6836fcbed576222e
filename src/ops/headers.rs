//! Security headers on every response of the public port (the page, the API, probes, webhooks,
//! errors and 404s): nothing here may be framed, sniffed into another type, leak its URL in a
//! `Referer`, or run script. A handler that sets a header itself keeps its own value: the page
//! sets a policy that lets its own hashed style and script run ([`super::page`]).

use actix_web::http::header::{CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS};
use actix_web::middleware::DefaultHeaders;

/// The policy of every response but the page: JSON needs nothing loaded, run or framed.
pub const API_CSP: &str = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The middleware: `App::new().wrap(headers::security())`. Headers a handler already set are
/// left alone.
pub fn security() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((CONTENT_SECURITY_POLICY, API_CSP))
        .add((X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // `frame-ancestors` for browsers that read it, `X-Frame-Options` for those that do not.
        .add((X_FRAME_OPTIONS, "DENY"))
        .add((REFERRER_POLICY, "no-referrer"))
}

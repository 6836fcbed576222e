//! The status page at `/`: one HTML file with its style and script inline, embedded in the
//! binary (no front-end build step). It reads `/api/sync/status` and `/api/sync/logs` every 30 s
//! and posts to `/api/sync/{object}` with the admin token it asks for once and keeps in
//! `localStorage`.

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderValue, X_CONTENT_TYPE_OPTIONS};

const INDEX_HTML: &str = include_str!("page/index.html");

/// Only this origin's API; inline style and script are the page's own.
const CSP: &str = "default-src 'none'; connect-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`.
pub async fn index() -> HttpResponse {
    let mut response = HttpResponse::Ok().content_type("text/html; charset=utf-8").body(INDEX_HTML);
    let headers = response.headers_mut();
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

//! The status page at `/`: one HTML file with its style and script inline, embedded in the
//! binary (no front-end build step). It reads `/api/sync/status`, `/api/sync/logs` and
//! `/api/sync/history` (drawn as inline SVG charts by its script, with the numbers as a table) every 30 s
//! and posts to `/api/sync/{object}` with the admin token it asks for once. The token also
//! unlocks the details (ids, error texts) of those reads. It is kept in a variable of the page's
//! script for the page's lifetime, never in `localStorage` or `sessionStorage` (both readable by
//! any script on the origin, the first for good): a reload asks again.
//!
//! With several accounts it shows a selector of them (`/api/sync/accounts`: names and portal ids,
//! nothing about their secrets) and reads every figure for the one picked (`?account=<portal id>`
//! on each request), kept in the page's address (`/?account=2002`) so a link shows the same one.
//!
//! Its content security policy lets only that one inline script and that one inline style run,
//! named by their SHA-256 hashes (computed once from the embedded file), so an injected
//! `<script>` or `on...=` attribute would not run even if one ever got through the page's
//! text-only rendering.

use std::sync::LazyLock;

use actix_web::HttpResponse;
use actix_web::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, HeaderValue};
use base64::Engine as _;
use sha2::{Digest as _, Sha256};

const INDEX_HTML: &str = include_str!("page/index.html");

/// Only this origin's API; the page's own inline style and script, by hash.
static CSP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "default-src 'none'; connect-src 'self'; script-src {}; style-src {}; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        source_hash(inline(INDEX_HTML, "script")),
        source_hash(inline(INDEX_HTML, "style")),
    )
});

/// The text of the first `<tag>...</tag>` element of `html` (empty when there is none: the
/// policy then allows nothing).
fn inline<'a>(html: &'a str, tag: &str) -> &'a str {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    html.split_once(&open).and_then(|(_, rest)| rest.split_once(&close)).map_or("", |(text, _)| text)
}

/// A CSP source expression for inline text: `'sha256-<base64>'`.
fn source_hash(text: &str) -> String {
    format!("'sha256-{}'", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(text.as_bytes())))
}

/// `GET /`. The other security headers come from [`super::headers`].
pub async fn index() -> HttpResponse {
    let mut response = HttpResponse::Ok().content_type("text/html; charset=utf-8").body(INDEX_HTML);
    let headers = response.headers_mut();
    if let Ok(csp) = HeaderValue::from_str(&CSP) {
        headers.insert(CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_the_pages_own_script_and_style_and_nothing_inline_else() {
        let script = inline(INDEX_HTML, "script");
        let style = inline(INDEX_HTML, "style");
        assert!(script.contains("async function load()"), "the page's script is found");
        assert!(style.contains(":root"), "the page's style is found");
        assert_eq!(INDEX_HTML.matches("<script").count(), 1, "one inline script, the hashed one");
        assert_eq!(INDEX_HTML.matches("<style").count(), 1, "one inline style, the hashed one");
        assert!(!INDEX_HTML.contains(" style=") && !INDEX_HTML.contains(" onclick="), "no inline attributes");
        assert!(CSP.contains(&source_hash(script)) && CSP.contains(&source_hash(style)), "{}", *CSP);
        assert!(!CSP.contains("unsafe-inline"), "{}", *CSP);
        assert!(HeaderValue::from_str(&CSP).is_ok());
    }

    #[test]
    fn hashes_are_csp_source_expressions() {
        // echo -n 'alert(1)' | openssl dgst -sha256 -binary | base64
        assert_eq!(source_hash("alert(1)"), "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='");
        assert_eq!(inline("<p><b>x</b></p>", "b"), "x");
        assert_eq!(inline("<p></p>", "b"), "");
    }
}

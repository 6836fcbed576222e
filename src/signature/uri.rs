//! The URI HubSpot signs (docs/hubspot.md §1.4 step 2): the full URL it called, scheme + host +
//! path + query, with exactly twelve percent-encodings decoded (`%3A` `%2F` `%3F` `%40` `%21` `%24`
//! `%27` `%28` `%29` `%2A` `%2C` `%3B`, uppercase hex only, as the docs' table lists them). Every
//! other sequence (`%20`, `%26`, lowercase `%3a`) stays as received.
//!
//! The scheme and host come from `PUBLIC_URL` when it is set (the reliable choice behind a proxy);
//! otherwise from the `X-Forwarded-Proto` header (first value; else the connection's scheme) and
//! the `Host` header. A path in `PUBLIC_URL` is a prefix that a reverse proxy strips before the
//! request reaches us: it is put back in front of the request's path, unless the path already
//! starts with it.

use url::Url;

/// The twelve encodings HubSpot decodes before signing, and what they decode to.
const DECODED: [(&[u8; 2], u8); 12] = [
    (b"3A", b':'),
    (b"2F", b'/'),
    (b"3F", b'?'),
    (b"40", b'@'),
    (b"21", b'!'),
    (b"24", b'$'),
    (b"27", b'\''),
    (b"28", b'('),
    (b"29", b')'),
    (b"2A", b'*'),
    (b"2C", b','),
    (b"3B", b';'),
];

/// Where the scheme and host of the signed URI come from.
#[derive(Clone, Copy, Debug)]
pub struct UriSource<'a> {
    /// `PUBLIC_URL`.
    pub public_url: Option<&'a Url>,
    /// The `Host` header (or the HTTP/2 authority).
    pub host: Option<&'a str>,
    /// The `X-Forwarded-Proto` header.
    pub forwarded_proto: Option<&'a str>,
    /// The scheme of the connection itself (`http` unless TLS ends here).
    pub connection_scheme: &'a str,
}

/// The URI as HubSpot signed it, for a request with `path_and_query` as received (still
/// percent-encoded); `None` when neither `PUBLIC_URL` nor a `Host` header says where it was sent.
pub fn signed_uri(source: &UriSource<'_>, path_and_query: &str) -> Option<String> {
    let full = match source.public_url {
        Some(base) => {
            let origin = base.origin().ascii_serialization();
            let prefix = base.path().trim_end_matches('/');
            if prefix.is_empty() || path_and_query.starts_with(prefix) {
                format!("{origin}{path_and_query}")
            } else {
                format!("{origin}{prefix}{path_and_query}")
            }
        }
        None => {
            let host = source.host.map(str::trim).filter(|h| !h.is_empty())?;
            let scheme = source
                .forwarded_proto
                .and_then(|p| p.split(',').next())
                .map(|p| p.trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| source.connection_scheme.to_owned());
            format!("{scheme}://{host}{path_and_query}")
        }
    };
    Some(signed_form(&full))
}

/// Applies HubSpot's twelve decodings to a URI, in one left-to-right pass.
pub fn signed_form(uri: &str) -> String {
    let bytes = uri.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let pair = [bytes[i + 1], bytes[i + 2]];
            if let Some((_, decoded)) = DECODED.iter().find(|(enc, _)| **enc == pair) {
                out.push(*decoded);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    // Only ASCII sequences were replaced by ASCII bytes, so the result is still valid UTF-8.
    String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src<'a>(public_url: Option<&'a Url>, host: Option<&'a str>, proto: Option<&'a str>) -> UriSource<'a> {
        UriSource { public_url, host, forwarded_proto: proto, connection_scheme: "http" }
    }

    #[test]
    fn decodes_exactly_the_twelve() {
        assert_eq!(signed_form("https://h/p%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B"), "https://h/p:/?@!$'()*,;");
        // Not in the table, or lowercase hex: kept as received.
        assert_eq!(signed_form("https://h/a%20b%26c%3ad%25"), "https://h/a%20b%26c%3ad%25");
        // One pass: a decoded `%` never starts a new sequence; a trailing `%` is kept.
        assert_eq!(signed_form("/x%253A%"), "/x%253A%");
        assert_eq!(signed_form("/é%3A"), "/é:");
    }

    #[test]
    fn public_url_wins_over_headers() {
        let base = Url::parse("https://sync.example.com").unwrap();
        let uri = signed_uri(&src(Some(&base), Some("10.0.0.1:8080"), Some("http")), "/webhooks/hubspot?a=b%2Cc");
        assert_eq!(uri.as_deref(), Some("https://sync.example.com/webhooks/hubspot?a=b,c"));
    }

    #[test]
    fn public_url_path_is_a_stripped_prefix() {
        let base = Url::parse("https://example.com/sync/").unwrap();
        let stripped = signed_uri(&src(Some(&base), None, None), "/webhooks/hubspot");
        assert_eq!(stripped.as_deref(), Some("https://example.com/sync/webhooks/hubspot"));
        let kept = signed_uri(&src(Some(&base), None, None), "/sync/webhooks/hubspot");
        assert_eq!(kept.as_deref(), Some("https://example.com/sync/webhooks/hubspot"));
        let port = Url::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(signed_uri(&src(Some(&port), None, None), "/w").as_deref(), Some("http://127.0.0.1:9000/w"));
    }

    #[test]
    fn host_and_forwarded_proto_without_public_url() {
        let uri = signed_uri(&src(None, Some("sync.example.com"), Some("HTTPS, http")), "/webhooks/hubspot");
        assert_eq!(uri.as_deref(), Some("https://sync.example.com/webhooks/hubspot"));
        let plain = signed_uri(&src(None, Some("127.0.0.1:8080"), None), "/webhooks/hubspot");
        assert_eq!(plain.as_deref(), Some("http://127.0.0.1:8080/webhooks/hubspot"));
        assert_eq!(signed_uri(&src(None, None, Some("https")), "/w"), None);
    }
}

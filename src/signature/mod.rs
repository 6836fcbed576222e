//! HubSpot webhook signatures (docs/hubspot.md §1), as one pure function: method, URI, raw body,
//! headers, the current time and the client secrets in; a typed verdict out. No actix here: the
//! webhook handler extracts the headers and rebuilds the URI (see [`uri`]) and calls [`verify`]
//! before it parses anything.
//!
//! - **v3** (`X-HubSpot-Signature-v3` + `X-HubSpot-Request-Timestamp`): base64 HMAC-SHA256, keyed
//!   by the client secret, over `method + uri + body + timestamp`; the timestamp (Unix ms) must be
//!   within 5 minutes of now in either direction. Compared in constant time (`Mac::verify_slice`).
//! - **v1 / v2** (`X-HubSpot-Signature` + `X-HubSpot-Signature-Version`): lowercase hex SHA-256 of
//!   `secret + body` (v1) or `secret + method + uri + body` (v2). Accepted only when the request
//!   carries no v3 headers at all and the caller does not require v3 (`require_v3`, decided from
//!   `HUBSPOT_REQUIRE_V3` and whether v3 has been seen): they have no replay protection, so the
//!   caller must also refuse a repeat of a body it accepted before; [`Verified::version`] tells
//!   it which requests need that check, and [`legacy_signature`] identifies the body. A request with v3 headers is judged by v3 alone, so a
//!   stale or forged v3 never falls back to v1.
//! - Several secrets (a rotation): any one of them may have signed the request.

pub mod uri;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::config::SecretList;

/// Largest accepted distance between the v3 timestamp and now, both ways (5 minutes).
pub const MAX_SKEW_MS: i64 = 300_000;

/// Header names (HTTP header names are case-insensitive; these are the lowercase forms).
pub mod headers {
    pub const V3: &str = "x-hubspot-signature-v3";
    pub const TIMESTAMP: &str = "x-hubspot-request-timestamp";
    pub const LEGACY: &str = "x-hubspot-signature";
    pub const LEGACY_VERSION: &str = "x-hubspot-signature-version";
}

/// The signature headers of one request, as received.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SignatureHeaders<'a> {
    /// `X-HubSpot-Signature-v3`.
    pub v3: Option<&'a str>,
    /// `X-HubSpot-Request-Timestamp`.
    pub timestamp: Option<&'a str>,
    /// `X-HubSpot-Signature` (v1 or v2).
    pub legacy: Option<&'a str>,
    /// `X-HubSpot-Signature-Version`.
    pub legacy_version: Option<&'a str>,
}

impl<'a> SignatureHeaders<'a> {
    /// Reads the four headers through `get`, which looks a header up by its lowercase name.
    pub fn from_lookup(get: impl Fn(&'static str) -> Option<&'a str>) -> Self {
        Self {
            v3: get(headers::V3),
            timestamp: get(headers::TIMESTAMP),
            legacy: get(headers::LEGACY),
            legacy_version: get(headers::LEGACY_VERSION),
        }
    }
}

/// What was signed: the request as HubSpot sent it.
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// The full URI HubSpot called, already decoded the way HubSpot signs it ([`uri::signed_form`]).
    pub uri: &'a str,
    /// The body bytes exactly as received.
    pub body: &'a [u8],
    pub headers: SignatureHeaders<'a>,
}

/// Which signature scheme a request passed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
    V3,
}

/// A request that passed: the scheme and the position of the secret that signed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    pub version: Version,
    pub secret_index: usize,
}

/// Why a request was refused (every one answers 401).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("no client secret is configured (HUBSPOT_CLIENT_SECRET)")]
    NoSecret,
    #[error("signature headers missing")]
    MissingHeaders,
    #[error("the URI could not be rebuilt (no PUBLIC_URL and no Host header)")]
    NoUri,
    #[error("malformed X-HubSpot-Request-Timestamp")]
    MalformedTimestamp,
    #[error("timestamp more than 5 minutes old")]
    Stale,
    #[error("timestamp more than 5 minutes in the future")]
    Future,
    #[error("signature does not match")]
    Forged,
    #[error("only a v1/v2 signature, and v3 is required (HUBSPOT_REQUIRE_V3, or v3 was seen before)")]
    V3Required,
    #[error("unknown X-HubSpot-Signature-Version")]
    UnknownVersion,
}

impl Rejection {
    /// A short stable name for logs and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NoSecret => "no_secret",
            Self::MissingHeaders => "missing_headers",
            Self::NoUri => "no_uri",
            Self::MalformedTimestamp => "malformed_timestamp",
            Self::Stale => "stale",
            Self::Future => "future",
            Self::Forged => "forged",
            Self::V3Required => "v3_required",
            Self::UnknownVersion => "unknown_version",
        }
    }
}

/// Checks a request's signature against every configured secret at time `now_ms` (Unix ms).
/// With `require_v3`, a request signed only with v1/v2 is refused ([`Rejection::V3Required`]).
pub fn verify(
    req: &SignedRequest<'_>,
    secrets: Option<&SecretList>,
    require_v3: bool,
    now_ms: i64,
) -> Result<Verified, Rejection> {
    let secrets = secrets.filter(|s| !s.is_empty()).ok_or(Rejection::NoSecret)?;
    let h = &req.headers;
    if h.v3.is_some() || h.timestamp.is_some() {
        return verify_v3(req, secrets, now_ms);
    }
    let Some(legacy) = h.legacy else { return Err(Rejection::MissingHeaders) };
    if require_v3 {
        return Err(Rejection::V3Required);
    }
    let version = match h.legacy_version.map(str::trim) {
        None => Version::V1,
        Some(v) if v.eq_ignore_ascii_case("v1") => Version::V1,
        Some(v) if v.eq_ignore_ascii_case("v2") => Version::V2,
        Some(_) => return Err(Rejection::UnknownVersion),
    };
    let expected = decode_legacy(legacy).ok_or(Rejection::Forged)?;
    for (index, secret) in secrets.iter().enumerate() {
        let mut hash = Sha256::new();
        hash.update(secret.expose().as_bytes());
        if version == Version::V2 {
            hash.update(req.method.as_bytes());
            hash.update(req.uri.as_bytes());
        }
        hash.update(req.body);
        if constant_time_eq(&hash.finalize(), &expected) {
            return Ok(Verified { version, secret_index: index });
        }
    }
    Err(Rejection::Forged)
}

/// The 32 bytes of a request's `X-HubSpot-Signature` (v1 or v2), decoded as [`verify`] decodes
/// them; `None` when the header is absent or not 64 hex digits. A body signed the same way always
/// carries the same bytes, whatever else the request says, so they identify a v1/v2-signed body
/// (and a copy of it stripped of its v3 headers) without hashing it again.
pub fn legacy_signature(headers: &SignatureHeaders<'_>) -> Option<[u8; 32]> {
    headers.legacy.and_then(decode_legacy)
}

fn decode_legacy(raw: &str) -> Option<[u8; 32]> {
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(raw.trim(), &mut bytes).ok().map(|()| bytes)
}

fn verify_v3(req: &SignedRequest<'_>, secrets: &SecretList, now_ms: i64) -> Result<Verified, Rejection> {
    let h = &req.headers;
    let (Some(signature), Some(timestamp)) = (h.v3, h.timestamp) else { return Err(Rejection::MissingHeaders) };
    let ts = parse_timestamp(timestamp)?;
    if now_ms.saturating_sub(ts) > MAX_SKEW_MS {
        return Err(Rejection::Stale);
    }
    if ts.saturating_sub(now_ms) > MAX_SKEW_MS {
        return Err(Rejection::Future);
    }
    let expected = base64::engine::general_purpose::STANDARD.decode(signature.trim()).map_err(|_| Rejection::Forged)?;
    for (index, secret) in secrets.iter().enumerate() {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else { continue };
        mac.update(req.method.as_bytes());
        mac.update(req.uri.as_bytes());
        mac.update(req.body);
        mac.update(timestamp.as_bytes());
        if mac.verify_slice(&expected).is_ok() {
            return Ok(Verified { version: Version::V3, secret_index: index });
        }
    }
    Err(Rejection::Forged)
}

/// Unix milliseconds as ASCII digits only (no sign, no spaces, no exponent).
fn parse_timestamp(raw: &str) -> Result<i64, Rejection> {
    if raw.is_empty() || raw.len() > 18 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Rejection::MalformedTimestamp);
    }
    raw.parse().map_err(|_| Rejection::MalformedTimestamp)
}

/// Compares two byte strings without an early exit on the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests;

//! What can go wrong talking to HubSpot, and HubSpot's own error bodies.
//!
//! Every variant that carries a HubSpot answer keeps its JSON body (for `sync_logs.error_details`);
//! none carries the access token, which only ever lives in a sensitive request header.

use serde::Deserialize;
use serde_json::Value;

use crate::telemetry::ErrorChain;

/// A HubSpot call that did not succeed (after retries, where retrying made sense).
#[derive(Debug, thiserror::Error)]
pub enum HubSpotError {
    /// 401: the token is missing, wrong, expired or deactivated. Never retried.
    #[error("HubSpot refused the access token (401): {message}")]
    Unauthorized { message: String },
    /// 403: authenticated, but the private app lacks a scope. Never retried.
    #[error("HubSpot denied access (403; is a scope missing?): {message}")]
    Forbidden { message: String },
    /// 404 on a single-resource read. Never retried.
    #[error("HubSpot has no such resource (404): {message}")]
    NotFound { message: String },
    /// 400 and other 4xx answers: the request itself is wrong. Never retried.
    #[error("HubSpot rejected the request ({status}): {message}")]
    BadRequest { status: u16, message: String, body: Option<Value> },
    /// 429 that retrying did not cure (or the daily quota, which only a new day cures).
    #[error("HubSpot rate limit {policy} still reached after retries")]
    RateLimited { policy: String, body: Option<Value> },
    /// 5xx or 423 that persisted through every retry.
    #[error("HubSpot answered {status} through every retry: {message}")]
    Server { status: u16, message: String, body: Option<Value> },
    /// Connection refused, reset, timed out, through every retry. The reqwest error is kept as the
    /// source: its own text names the request, its causes say why (e.g. `Connection refused`);
    /// print it with [`ErrorChain`] (as [`HubSpotError::details`] does) to see both.
    #[error("cannot reach HubSpot: {source}")]
    Transport {
        #[source]
        source: reqwest::Error,
    },
    /// A 2xx answer whose JSON could not be read.
    #[error("HubSpot sent an unreadable {what}: {source}")]
    Decode {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// The client could not be built (bad base URL, TLS setup).
    #[error("invalid HubSpot client configuration: {0}")]
    Config(String),
}

impl HubSpotError {
    /// HubSpot's error body, when it sent one.
    pub fn body(&self) -> Option<&Value> {
        match self {
            Self::BadRequest { body, .. } | Self::RateLimited { body, .. } | Self::Server { body, .. } => body.as_ref(),
            _ => None,
        }
    }

    /// A JSON summary for `sync_logs.error_details`: the message with its chain of causes, plus
    /// HubSpot's body.
    pub fn details(&self) -> Value {
        serde_json::json!({ "error": ErrorChain(self).to_string(), "hubspot": self.body() })
    }
}

/// HubSpot's error body; every field optional (docs/hubspot.md §5.1, §4.3).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct ErrorBody {
    pub message: Option<String>,
    pub category: Option<String>,
    pub sub_category: Option<String>,
    pub correlation_id: Option<String>,
    pub policy_name: Option<String>,
    pub error_type: Option<String>,
}

impl ErrorBody {
    /// Parses a body leniently: anything unreadable gives an empty body.
    pub fn parse(raw: &[u8]) -> (Self, Option<Value>) {
        let value: Option<Value> = serde_json::from_slice(raw).ok();
        let body = value.as_ref().and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
        (body, value)
    }

    /// The message, or a short excerpt of the raw body when there is none.
    pub fn message_or(&self, raw: &[u8]) -> String {
        match &self.message {
            Some(m) => m.clone(),
            None => String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned(),
        }
    }
}

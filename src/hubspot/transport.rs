//! Sending one HubSpot request: budget, retries with jittered exponential backoff (backon), 429
//! handling that pauses every caller, and metrics. Nothing here logs a header, so the token
//! (a sensitive default header of the reqwest client) never reaches a log line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use reqwest::{Method, Response, StatusCode};

use super::error::{ErrorBody, HubSpotError};
use super::limiter::{Budget, Lane};
use crate::metric;
use crate::minutes::Minutes;
use crate::telemetry::ErrorChain;

/// Retry settings (production defaults; tests shorten them).
#[derive(Clone, Debug)]
pub struct RetryOptions {
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// Retries after the first attempt.
    pub max_retries: usize,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self { min_delay: Duration::from_millis(500), max_delay: Duration::from_secs(30), max_retries: 6 }
    }
}

/// One request to send.
pub struct Call<'a> {
    pub method: Method,
    pub url: &'a str,
    pub query: &'a [(&'a str, String)],
    /// A JSON body, already encoded.
    pub body: Option<Vec<u8>>,
    pub lane: Lane,
    pub is_search: bool,
    /// Metric label, e.g. `contacts.list`.
    pub endpoint: &'a str,
    /// The caller already took this request's budget slot ([`Budget::reserve`]): the first
    /// attempt does not take another (retries do).
    pub prepaid: bool,
}

impl<'a> Call<'a> {
    /// A `GET` with a query string.
    pub fn get(url: &'a str, query: &'a [(&'a str, String)], lane: Lane, endpoint: &'a str) -> Self {
        Self { method: Method::GET, url, query, body: None, lane, is_search: false, endpoint, prepaid: false }
    }

    /// A `POST` of an encoded JSON body; `is_search` puts it under the search limit too.
    pub fn post(
        url: &'a str,
        query: &'a [(&'a str, String)],
        body: Vec<u8>,
        is_search: bool,
        lane: Lane,
        endpoint: &'a str,
    ) -> Self {
        Self { method: Method::POST, url, query, body: Some(body), lane, is_search, endpoint, prepaid: false }
    }

    /// Marks the first attempt as already paid for (see [`Call::prepaid`]).
    pub fn paid(mut self, prepaid: bool) -> Self {
        self.prepaid = prepaid;
        self
    }
}

/// A failed attempt: the error, and whether (and how soon) to try again.
struct Failure {
    error: HubSpotError,
    retry: bool,
    /// Set for 429/477: the wait HubSpot asked for.
    wait: Option<Duration>,
}

impl Failure {
    fn fatal(error: HubSpotError) -> Self {
        Self { error, retry: false, wait: None }
    }
}

/// The reqwest client plus the shared budget.
pub struct Transport {
    pub http: reqwest::Client,
    pub budget: Budget,
    pub retry: RetryOptions,
    /// The 10-second window, used when a 429 names no wait.
    pub window: Duration,
    /// Requests sent and 429s received, minute by minute (the status page's budget chart).
    pub minutes: Minutes<RequestMinute>,
}

/// HubSpot requests in one minute.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestMinute {
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Of those, answered 429.
    pub rate_limited: u64,
}

impl Transport {
    /// Sends `call`, retrying what is worth retrying; returns the 2xx body.
    pub async fn send(&self, call: &Call<'_>) -> Result<Vec<u8>, HubSpotError> {
        let backoff = ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.retry.min_delay)
            .with_max_delay(self.retry.max_delay)
            .with_max_times(self.retry.max_retries);
        let unpaid_slot = AtomicBool::new(call.prepaid);
        (|| self.attempt(call, unpaid_slot.swap(false, Ordering::SeqCst)))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|f: &Failure| f.retry)
            .adjust(|f: &Failure, backoff| backoff.map(|d| f.wait.unwrap_or(d)))
            .notify(|f: &Failure, after: Duration| {
                tracing::warn!(
                    hubspot.endpoint = call.endpoint,
                    retry_in_ms = after.as_millis() as u64,
                    error = %ErrorChain(&f.error),
                    "HubSpot request failed; retrying"
                );
            })
            .await
            .map_err(|f| f.error)
    }

    async fn attempt(&self, call: &Call<'_>, paid: bool) -> Result<Vec<u8>, Failure> {
        // Kept until the answer's status line arrived: a search's slot counts until then.
        let admission = match paid {
            true => None,
            false => Some(self.budget.acquire(call.lane, call.is_search).await),
        };
        let mut request = self.http.request(call.method.clone(), call.url).query(call.query);
        if let Some(body) = &call.body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(body.clone());
        }
        let started = Instant::now();
        let sent = request.send().await;
        drop(admission);
        metrics::histogram!(metric::HUBSPOT_REQUEST_DURATION, "endpoint" => call.endpoint.to_owned())
            .record(started.elapsed().as_secs_f64());
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                self.minutes.update(Utc::now(), |m| m.requests += 1);
                metrics::counter!(metric::HUBSPOT_REQUESTS, "endpoint" => call.endpoint.to_owned(), "status" => "error")
                    .increment(1);
                return Err(transport_failure(e));
            }
        };
        let status = response.status();
        self.minutes.update(Utc::now(), |m| {
            m.requests += 1;
            m.rate_limited += u64::from(status.as_u16() == 429);
        });
        metrics::counter!(metric::HUBSPOT_REQUESTS, "endpoint" => call.endpoint.to_owned(), "status" => status.as_str().to_owned())
            .increment(1);
        record_rate_headers(&response);
        let retry_after = retry_after(&response);
        let interval = header_u64(&response, "x-hubspot-ratelimit-interval-milliseconds").map(Duration::from_millis);
        let body = response.bytes().await.map_err(transport_failure)?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        Err(self.classify(status, &body, retry_after, interval, call.is_search))
    }

    /// Turns a non-2xx answer into a failure, pausing callers on 429.
    fn classify(
        &self,
        status: StatusCode,
        raw: &[u8],
        retry_after: Option<Duration>,
        interval: Option<Duration>,
        is_search: bool,
    ) -> Failure {
        let (body, value) = ErrorBody::parse(raw);
        let message = body.message_or(raw);
        match status.as_u16() {
            401 => Failure::fatal(HubSpotError::Unauthorized { message }),
            403 => Failure::fatal(HubSpotError::Forbidden { message }),
            404 => Failure::fatal(HubSpotError::NotFound { message }),
            429 => self.rate_limited(&body, value, retry_after, interval, is_search),
            423 | 477 | 500..=599 => Failure {
                error: HubSpotError::Server { status: status.as_u16(), message, body: value },
                retry: true,
                // 423 asks for at least 2 s; 477 and 5xx may name their own wait.
                wait: retry_after
                    .or((status.as_u16() == 423).then_some(Duration::from_secs(2)))
                    .map(|w| self.capped(w)),
            },
            other => Failure::fatal(HubSpotError::BadRequest { status: other, message, body: value }),
        }
    }

    /// The longest single wait a `Retry-After` (or rate-limit interval) can impose: the larger of
    /// the retry backoff's ceiling and the budget window (30 s by default). HubSpot's rolling
    /// limits ask for seconds; a longer ask is honoured only up to this per attempt, so a run
    /// ends (retried, or `failed` with HubSpot's answer) instead of hanging on it for hours.
    fn capped(&self, wait: Duration) -> Duration {
        let cap = self.retry.max_delay.max(self.window);
        if wait > cap {
            tracing::warn!(
                asked_ms = wait.as_millis() as u64,
                cap_ms = cap.as_millis() as u64,
                "HubSpot asked for a long wait; capped"
            );
        }
        wait.min(cap)
    }

    fn rate_limited(
        &self,
        body: &ErrorBody,
        value: Option<serde_json::Value>,
        retry_after: Option<Duration>,
        interval: Option<Duration>,
        is_search: bool,
    ) -> Failure {
        let policy = body.policy_name.clone().unwrap_or_else(|| "UNKNOWN".to_owned());
        metrics::counter!(metric::HUBSPOT_RATE_LIMITED, "policy" => policy_label(&policy)).increment(1);
        let error = HubSpotError::RateLimited { policy: policy.clone(), body: value };
        if policy == "DAILY" && retry_after.is_none() {
            tracing::error!("HubSpot daily request quota reached; giving up until it resets");
            self.budget.general_pause.pause(Duration::from_secs(60));
            return Failure::fatal(error);
        }
        let secondly = policy == "SECONDLY";
        let wait =
            retry_after.unwrap_or(if secondly { Duration::from_secs(1) } else { interval.unwrap_or(self.window) });
        let wait = self.capped(wait);
        tracing::warn!(hubspot.policy = %policy, wait_ms = wait.as_millis() as u64, "HubSpot answered 429; pausing");
        if secondly && is_search {
            self.budget.search_pause.pause(wait);
        } else {
            self.budget.general_pause.pause(wait);
        }
        Failure { error, retry: true, wait: Some(wait) }
    }
}

fn transport_failure(e: reqwest::Error) -> Failure {
    // Connection errors, timeouts and broken bodies are all worth another try.
    Failure { error: HubSpotError::Transport { source: e }, retry: true, wait: None }
}

fn header_u64(response: &Response, name: &str) -> Option<u64> {
    response.headers().get(name)?.to_str().ok()?.trim().parse().ok()
}

/// `Retry-After` in seconds (the HTTP-date form is not used by HubSpot's API).
fn retry_after(response: &Response) -> Option<Duration> {
    header_u64(response, "retry-after").map(Duration::from_secs)
}

/// HubSpot's `X-HubSpot-RateLimit-*` values as gauges (absent on search answers).
fn record_rate_headers(response: &Response) {
    for (header, gauge) in [
        ("x-hubspot-ratelimit-max", metric::HUBSPOT_RATELIMIT_MAX),
        ("x-hubspot-ratelimit-remaining", metric::HUBSPOT_BUDGET_REMAINING),
        ("x-hubspot-ratelimit-interval-milliseconds", metric::HUBSPOT_RATELIMIT_INTERVAL_MS),
        ("x-hubspot-ratelimit-daily", metric::HUBSPOT_RATELIMIT_DAILY),
        ("x-hubspot-ratelimit-daily-remaining", metric::HUBSPOT_RATELIMIT_DAILY_REMAINING),
    ] {
        if let Some(v) = header_u64(response, header) {
            metrics::gauge!(gauge).set(v as f64);
        }
    }
}

/// Builds the reqwest client: rustls, the bearer token as a sensitive default header, timeouts.
pub fn http_client(token: &str, timeout: Duration) -> Result<reqwest::Client, HubSpotError> {
    let mut auth = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
        .map_err(|_| HubSpotError::Config("HUBSPOT_ACCESS_TOKEN contains characters not allowed in a header".into()))?;
    auth.set_sensitive(true);
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, auth);
    reqwest::Client::builder()
        .use_rustls_tls()
        .default_headers(headers)
        .user_agent(concat!("hubspot-sync/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .pool_max_idle_per_host(16)
        .build()
        .map_err(|e| HubSpotError::Config(format!("cannot build the HTTP client: {e}")))
}

/// The `policy` label of a 429: HubSpot's documented policy names, else `other`, so a label is
/// never taken verbatim from an answer (`docs/hubspot.md §4.3`; the error keeps the name as sent).
fn policy_label(policy: &str) -> &'static str {
    match policy {
        "TEN_SECONDLY_ROLLING" => "TEN_SECONDLY_ROLLING",
        "SECONDLY" => "SECONDLY",
        "DAILY" => "DAILY",
        "UNKNOWN" => "UNKNOWN",
        _ => "other",
    }
}

//! The gate every `/crm/...` request passes: URI length (414), bearer token (401), rate limits
//! (429 + `X-HubSpot-RateLimit-*` headers, none on search), then injected latency and errors.

use crate::errors::{ApiError, Policy};
use crate::limits::Admitted;
use crate::routes::MAX_URI_BYTES;
use crate::state::AppState;
use crate::stats::Stats;
use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};
use std::time::Duration;

fn refuse(req: ServiceRequest, e: &ApiError, admitted: Option<(Admitted, u32, i64)>) -> ServiceResponse<BoxBody> {
    let mut res = e.error_response();
    if let Some((a, max, window)) = admitted {
        add_headers(&mut res, a, max, window);
    }
    req.into_response(res)
}

fn add_headers(res: &mut actix_web::HttpResponse, a: Admitted, max: u32, window_ms: i64) {
    let h = res.headers_mut();
    let mut put = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(HeaderName::from_static(k), v);
        }
    };
    if let Some(rem) = a.remaining {
        put("x-hubspot-ratelimit-max", max.to_string());
        put("x-hubspot-ratelimit-remaining", rem.to_string());
        put("x-hubspot-ratelimit-interval-milliseconds", window_ms.to_string());
    }
    if let Some(d) = a.daily_max {
        put("x-hubspot-ratelimit-daily", d.to_string());
    }
    if let Some(d) = a.daily_remaining {
        put("x-hubspot-ratelimit-daily-remaining", d.to_string());
    }
    put("x-hubspot-correlation-id", crate::errors::correlation_id());
}

pub async fn gate(req: ServiceRequest, next: Next<BoxBody>) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(st) = req.app_data::<web::Data<AppState>>().cloned() else {
        return next.call(req).await;
    };
    let pattern = req.match_pattern().unwrap_or_else(|| req.path().to_string());
    st.stats.endpoint(&format!("{} {}", req.method(), pattern));
    let uri_len = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if uri_len > MAX_URI_BYTES {
        Stats::incr(&st.stats.responses_414);
        return Ok(refuse(req, &ApiError::UriTooLong, None));
    }
    if crate::portals::bearer(&req).is_empty() {
        Stats::incr(&st.stats.responses_401);
        return Ok(refuse(req, &ApiError::Unauthorized, None));
    }
    let is_search = req.method() == Method::POST && req.path().ends_with("/search");
    let max = st.limits.cfg.requests_per_window;
    let window = st.limits.cfg.window_ms;
    let admitted = match st.limits.admit(st.clock.now_ms(), is_search) {
        Ok(a) => a,
        Err(policy) => {
            Stats::incr(&st.stats.responses_429);
            Stats::incr(match policy {
                Policy::TenSecondlyRolling => &st.stats.responses_429_ten_secondly,
                Policy::Secondly => &st.stats.responses_429_secondly,
                Policy::Daily => &st.stats.responses_429_daily,
            });
            let headers = (!is_search).then_some((
                Admitted { remaining: (max > 0).then_some(0), daily_remaining: None, daily_max: None },
                max,
                window,
            ));
            return Ok(refuse(req, &ApiError::RateLimited(policy), headers));
        }
    };
    let headers = (!is_search).then_some((admitted, max, window));
    let decision = st.faults.decide();
    if decision.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(decision.latency_ms)).await;
    }
    if let Some((status, retry_after)) = decision.fail {
        Stats::incr(&st.stats.faults_injected);
        if status == 429 {
            Stats::incr(&st.stats.responses_429);
        }
        return Ok(refuse(req, &ApiError::Injected { status, retry_after }, headers));
    }
    let mut res = next.call(req).await?;
    if let Some((a, max, window)) = headers {
        let h = res.headers_mut();
        let mut tmp = actix_web::HttpResponse::Ok().finish();
        add_headers(&mut tmp, a, max, window);
        for (k, v) in tmp.headers() {
            h.insert(k.clone(), v.clone());
        }
    }
    Ok(res)
}

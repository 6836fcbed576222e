//! HubSpot-shaped error responses.
//!
//! Every body carries `status: "error"`, `message`, `correlationId` (a UUID) and `category`, as
//! the OpenAPI `Error` schema requires. 429 bodies also carry HubSpot's `errorType`,
//! `policyName` and `groupName`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

/// Which rate limit a 429 reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    TenSecondlyRolling,
    Secondly,
    Daily,
}

impl Policy {
    pub fn name(self) -> &'static str {
        match self {
            Policy::TenSecondlyRolling => "TEN_SECONDLY_ROLLING",
            Policy::Secondly => "SECONDLY",
            Policy::Daily => "DAILY",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Policy::TenSecondlyRolling => "You have reached your ten_secondly_rolling limit.",
            Policy::Secondly => "You have reached your secondly limit.",
            Policy::Daily => "You have reached your daily limit.",
        }
    }
}

/// An API error, rendered as HubSpot renders it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("authentication credentials not found")]
    Unauthorized,
    #[error("object not found: {id}")]
    NotFound { id: String },
    #[error("{0}")]
    Validation(String),
    #[error("unknown object type {0}")]
    UnknownObjectType(String),
    #[error("request URI too long")]
    UriTooLong,
    #[error("rate limited: {0:?}")]
    RateLimited(Policy),
    #[error("injected fault {status}")]
    Injected { status: u16, retry_after: Option<u64> },
}

pub fn correlation_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The 429 body for a policy.
pub fn rate_limit_body(policy: Policy) -> serde_json::Value {
    json!({
        "status": "error",
        "message": policy.message(),
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy.name(),
        "groupName": format!("hubspot-sim:{}", policy.name().to_lowercase()),
        "category": "RATE_LIMITS",
    })
}

impl ApiError {
    pub fn body(&self) -> serde_json::Value {
        let cid = correlation_id();
        match self {
            ApiError::Unauthorized => json!({
                "status": "error",
                "message": "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
                "correlationId": cid,
                "category": "INVALID_AUTHENTICATION",
            }),
            ApiError::NotFound { id } => json!({
                "status": "error",
                "message": format!("Object not found.  objectId are usually numeric. (id: {id})"),
                "correlationId": cid,
                "context": {"id": [id]},
                "category": "OBJECT_NOT_FOUND",
            }),
            ApiError::Validation(msg) => json!({
                "status": "error",
                "message": msg,
                "correlationId": cid,
                "category": "VALIDATION_ERROR",
            }),
            ApiError::UnknownObjectType(t) => json!({
                "status": "error",
                "message": format!("Unable to infer object type from: {t}"),
                "correlationId": cid,
                "context": {"objectType": [t]},
                "category": "VALIDATION_ERROR",
            }),
            ApiError::UriTooLong => json!({
                "status": "error",
                "message": format!("Request-URI Too Long: the request URI exceeds {} bytes", crate::routes::MAX_URI_BYTES),
                "correlationId": cid,
                "category": "VALIDATION_ERROR",
            }),
            ApiError::RateLimited(p) => rate_limit_body(*p),
            ApiError::Injected { status, .. } if *status == 429 => rate_limit_body(Policy::TenSecondlyRolling),
            ApiError::Injected { status, .. } => json!({
                "status": "error",
                "message": "internal error",
                "correlationId": cid,
                "category": if *status >= 500 { "INTERNAL_ERROR" } else { "VALIDATION_ERROR" },
                "subCategory": "hubspot-sim.INJECTED_FAULT",
            }),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Validation(_) | ApiError::UnknownObjectType(_) => StatusCode::BAD_REQUEST,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Injected { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut b = HttpResponse::build(self.status_code());
        if let ApiError::Unauthorized = self {
            b.insert_header(("X-HubSpot-Auth-Failure", "401 Unauthorized"));
        }
        if let ApiError::Injected { retry_after: Some(s), .. } = self {
            b.insert_header(("Retry-After", s.to_string()));
        }
        b.insert_header(("Content-Type", "application/json;charset=utf-8"));
        b.body(self.body().to_string())
    }
}

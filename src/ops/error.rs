//! The one error type of the operations API: each variant is a status code with a JSON body
//! `{"error": "..."}`; internal causes are logged once here and answered with an opaque body.

use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// What went wrong, for a person.
    pub error: String,
}

/// A failed operations request.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or wrong admin token (send Authorization: Bearer $ADMIN_TOKEN)")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
    /// The request conflicts with the state (a reload that needs `migrate` first).
    #[error("{0}")]
    Conflict(String),
    /// The request is understood but its content is refused (an invalid config file).
    #[error("{0}")]
    Unprocessable(String),
    /// Logged with its cause; the client sees a generic message.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    /// A database failure: unavailable when no connection could be had, internal otherwise.
    pub fn store(e: impl Into<crate::store::StoreError>) -> Self {
        match e.into() {
            crate::store::StoreError::Unavailable(cause) => {
                tracing::warn!(error = %cause, "database unavailable for an operations request");
                Self::Unavailable("the database is unavailable".into())
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(cause) = self {
            tracing::error!(error = %cause, "operations request failed");
        }
        let mut response = HttpResponse::build(self.status_code()).json(ErrorBody { error: self.to_string() });
        if matches!(self, Self::Unauthorized) {
            response.headers_mut().insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Answers a query string that does not parse (`?limit=abc`) with a JSON 400.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &actix_web::HttpRequest) -> actix_web::Error {
    // serde's wording ("Query deserialize error: ...") is not ours: keep only its detail.
    let detail = match &err {
        actix_web::error::QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    ApiError::BadRequest(format!("invalid query string ({detail}); see /api/openapi.json for the parameters")).into()
}

//! The admin guard: [`AdminAuth`] is an actix extractor that lets a request through only with
//! `Authorization: Bearer $ADMIN_TOKEN` (compared in constant time). When `ADMIN_TOKEN` is unset
//! every admin request is refused.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};

use super::OpsState;
use super::error::ApiError;

/// Proof that the request carried the admin token.
#[derive(Debug)]
pub struct AdminAuth(());

impl FromRequest for AdminAuth {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let expected = req.app_data::<web::Data<OpsState>>().and_then(|ops| ops.admin_token.as_ref());
        let presented = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
            .map(str::trim);
        ready(match (expected, presented) {
            (Some(token), Some(candidate)) if token.matches(candidate) => Ok(AdminAuth(())),
            _ => Err(ApiError::Unauthorized),
        })
    }
}

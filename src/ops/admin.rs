//! The admin guard. [`AdminAuth`] is an actix extractor that lets a request through only with
//! `Authorization: Bearer $ADMIN_TOKEN` (compared in constant time); [`Access`] tells a public
//! read whether to show details (ids, error texts) or summaries only. When `ADMIN_TOKEN` is unset
//! every admin request is refused and every read gets summaries.

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
        ready(match presented(req) {
            Presented::Right => Ok(AdminAuth(())),
            Presented::None | Presented::Wrong => Err(ApiError::Unauthorized),
        })
    }
}

/// What a read of the status API may show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// No bearer token: status, counts, times and figures only.
    Summary,
    /// The admin token: ids, error texts and `error_details` too.
    Details,
}

impl Access {
    pub fn details(self) -> bool {
        self == Self::Details
    }
}

/// No bearer token: [`Access::Summary`]. The admin token: [`Access::Details`]. A bearer token
/// that is not the admin token: 401, so a page holding a stale token learns it (another scheme,
/// such as a proxy's basic auth, is not ours and reads as none).
impl FromRequest for Access {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(match presented(req) {
            Presented::None => Ok(Access::Summary),
            Presented::Right => Ok(Access::Details),
            Presented::Wrong => Err(ApiError::Unauthorized),
        })
    }
}

/// What the request's `Authorization` header holds.
enum Presented {
    /// No bearer token.
    None,
    /// The admin token.
    Right,
    /// A bearer token that is not the admin token (or any, while `ADMIN_TOKEN` is unset).
    Wrong,
}

fn presented(req: &HttpRequest) -> Presented {
    let expected = req.app_data::<web::Data<OpsState>>().and_then(|ops| ops.admin_token.as_ref());
    let presented = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim);
    match (expected, presented) {
        (_, None) => Presented::None,
        (Some(token), Some(candidate)) if token.matches(candidate) => Presented::Right,
        (_, Some(_)) => Presented::Wrong,
    }
}

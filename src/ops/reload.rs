//! `POST /api/config/reload` (admin token): [`Reloader::reload`](super::reloader::Reloader::reload), its refusal as 409 (run
//! `migrate` first), 422 (an invalid file) or 503 (HubSpot or the database unreadable now).

use actix_web::{HttpResponse, web};

use super::OpsState;
use super::admin::AdminAuth;
use super::error::{ApiError, ErrorBody};
use super::reloader::{ReloadError, Reloaded};

/// `POST /api/config/reload`: the file re-read by [`Reloader`](super::reloader::Reloader).
#[utoipa::path(post, path = "/api/config/reload", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The file took effect", body = Reloaded),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "Refused: run `hubspot-sync migrate` first (typed columns differ)", body = ErrorBody),
        (status = 422, description = "Refused: the file is invalid (its lines named)", body = ErrorBody),
        (status = 503, description = "Not available here, or HubSpot or the database cannot be read now", body = ErrorBody),
    ))]
pub async fn reload(_admin: AdminAuth, ops: web::Data<OpsState>) -> Result<HttpResponse, ApiError> {
    let Some(reloader) = &ops.reloader else {
        return Err(ApiError::Unavailable("this server cannot reload HUBSPOT_SYNC_CONFIG".into()));
    };
    match reloader.reload().await {
        Ok(reloaded) => Ok(HttpResponse::Ok().json(reloaded)),
        Err(e) => {
            tracing::error!(error = %e, "HUBSPOT_SYNC_CONFIG not reloaded; the configuration in force is kept");
            Err(match e {
                ReloadError::Invalid(_) => ApiError::Unprocessable(e.to_string()),
                ReloadError::NeedsMigrate(_) => ApiError::Conflict(e.to_string()),
                ReloadError::Store(_) | ReloadError::HubSpot(_) => ApiError::Unavailable(e.to_string()),
            })
        }
    }
}

//! The OpenAPI document of the status API, generated from the handlers' annotations in
//! `ops::status` and served at `/api/openapi.json`.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::error::ErrorBody;
use super::history::{History, LiveHistory, LiveMinuteView, ObjectHistory};
use super::status::{
    AuditStatus, FailureView, FastPollingStatus, ForceSyncAccepted, LaneStatus, LiveFigures, ObjectName, ObjectStatus,
    RealtimeFreshness, RunView, SyncName,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "hubspot-sync status API", description = "Sync status, run history and force sync."),
    paths(
        super::status::status,
        super::status::logs,
        super::history::history,
        super::status::failures,
        super::accounts::summaries,
        super::status::force_sync,
        super::reload::reload,
        super::accounts::list,
        super::accounts::add,
        super::accounts::remove
    ),
    components(schemas(
        History,
        ObjectHistory,
        LiveHistory,
        LiveMinuteView,
        ObjectStatus,
        AuditStatus,
        LiveFigures,
        RealtimeFreshness,
        FastPollingStatus,
        LaneStatus,
        RunView,
        FailureView,
        ForceSyncAccepted,
        super::reloader::Reloaded,
        super::accounts::AccountView,
        super::accounts::AccountSummary,
        super::accounts::AddAccount,
        super::accounts::RemovedView,
        ErrorBody,
        ObjectName,
        SyncName
    )),
    modifiers(&AdminToken),
    tags((name = "sync", description = "Reconciliation runs"), (name = "admin", description = "Configuration"))
)]
pub struct ApiDoc;

/// Declares the `admin_token` bearer scheme the force-sync endpoint requires.
struct AdminToken;

impl Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("admin_token", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// `GET /api/openapi.json`.
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

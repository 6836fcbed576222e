//! The HTTP surface's parts and the one route table, shared by `serve`, `demo` and tests.

use actix_web::{HttpResponse, web};

use crate::ops::{self, OpsState, accounts, health, history, openapi, page, reload, status};
use crate::store::Pool;
use crate::webhook::{self, Intake};

/// What the handlers can reach, registered as separate `web::Data` so each handler extracts only
/// what it uses (`Data<Pool>`, `Data<OpsState>`, `Data<Intake>`). Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    /// Status API, force sync, live webhook figures (`ops`).
    pub ops: OpsState,
    /// Webhook signing settings and the fetch queue (`webhook`).
    pub webhooks: Intake,
}

impl AppState {
    pub fn new(pool: Pool, ops: OpsState, webhooks: Intake) -> Self {
        Self { pool, ops, webhooks }
    }

    /// Registers each part for the handlers (call inside `App::new()`), with the webhook intake
    /// recording its figures where the status API reads them.
    pub fn register(&self, cfg: &mut web::ServiceConfig) {
        let intake = self.webhooks.clone().with_stats(self.ops.webhooks.clone());
        cfg.app_data(web::Data::new(self.pool.clone()))
            .app_data(web::Data::new(self.ops.clone()))
            .app_data(web::Data::new(intake));
    }
}

/// The whole public HTTP contract in one place.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz)).route("/readyz", web::get().to(health::readyz));
    // A resource, so other methods (a browser's GET) get 405 with the allowed method named.
    cfg.service(web::resource("/webhooks/hubspot").post(webhook::receive));
    // Resources (not bare routes) so other methods get 405; bad query strings get a JSON 400.
    cfg.app_data(web::QueryConfig::default().error_handler(ops::error::query_error))
        .route("/", web::get().to(page::index))
        .service(web::resource("/api/openapi.json").get(openapi::document))
        .service(web::resource("/api/sync/status").get(status::status))
        .service(web::resource("/api/sync/logs").get(status::logs))
        .service(web::resource("/api/sync/history").get(history::history))
        .service(web::resource("/api/sync/failures").get(status::failures))
        .service(web::resource("/api/sync/accounts").get(accounts::summaries))
        .service(web::resource("/api/config/reload").post(reload::reload))
        .service(web::resource("/api/accounts").get(accounts::list).post(accounts::add))
        .service(web::resource("/api/accounts/{portal_id}").delete(accounts::remove))
        .service(web::resource("/api/sync/{object}").post(status::force_sync));
    cfg.default_service(web::to(not_found));
}

/// Unknown paths: a JSON body that says what exists, not an empty 404.
async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(serde_json::json!({
        "error": "no such endpoint; see /api/openapi.json for the API, / for the status page"
    }))
}

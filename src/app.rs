//! Shared state of the HTTP surface and the one route table, shared by `serve`, `demo` and tests.

use actix_web::web;

use crate::ops::{self, health, openapi, page, status};
use crate::store::Pool;
use crate::webhook;

/// What every handler can reach (cheap to clone: everything inside is reference-counted).
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    /// Status API, force sync, live webhook figures (`ops`).
    pub ops: ops::OpsState,
    /// Webhook signing settings and the fetch queue (`webhook`).
    pub webhooks: webhook::Intake,
}

/// The whole public HTTP contract in one place.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz)).route("/readyz", web::get().to(health::readyz));
    cfg.route("/webhooks/hubspot", web::post().to(webhook::receive));
    // Resources (not bare routes) so other methods get 405; bad query strings get a JSON 400.
    cfg.app_data(web::QueryConfig::default().error_handler(ops::error::query_error))
        .route("/", web::get().to(page::index))
        .service(web::resource("/api/openapi.json").get(openapi::document))
        .service(web::resource("/api/sync/status").get(status::status))
        .service(web::resource("/api/sync/logs").get(status::logs))
        .service(web::resource("/api/sync/{object}").post(status::force_sync));
}

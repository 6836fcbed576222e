//! Shared state of the HTTP surface and the one route table, shared by `serve`, `demo` and tests.

use actix_web::web;

use crate::ops::health;
use crate::store::Pool;

/// What every handler can reach (cheap to clone: everything inside is reference-counted).
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
}

/// The whole public HTTP contract in one place.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz)).route("/readyz", web::get().to(health::readyz));
}

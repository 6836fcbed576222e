//! `/healthz` (the process runs) and `/readyz` (the database answers).

use std::time::Duration;

use actix_web::{HttpResponse, web};
use serde_json::json;

use crate::store::{self, Pool};
use crate::telemetry::ErrorChain;

/// How long readiness waits for the database before answering 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

pub async fn readyz(pool: web::Data<Pool>) -> HttpResponse {
    match tokio::time::timeout(READY_TIMEOUT, store::ping(&pool)).await {
        Ok(Ok(())) => HttpResponse::Ok().json(json!({ "status": "ready", "database": "ok" })),
        Ok(Err(e)) => {
            tracing::warn!(error = %ErrorChain(&e), "readiness check: database unavailable");
            unavailable("unavailable")
        }
        Err(_) => {
            tracing::warn!(timeout_ms = READY_TIMEOUT.as_millis() as u64, "readiness check: database timed out");
            unavailable("timeout")
        }
    }
}

fn unavailable(database: &str) -> HttpResponse {
    HttpResponse::ServiceUnavailable().json(json!({ "status": "not ready", "database": database }))
}

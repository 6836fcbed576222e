//! Control endpoints outside HubSpot's namespace: `/_sim/churn`, `/_sim/owners`, `/_sim/properties`,
//! `/_sim/export/{object}`, `/_sim/stats`, `/_sim/faults`, `/_sim/plant`, `/_sim/batch_errors`
//! (see `poison`). No auth, no limits, no faults.

use crate::data::churn::{ChurnRequest, PropertyRequest};
use crate::faults::FaultConfig;
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/churn", web::post().to(churn))
        .route("/owners", web::post().to(change_owners))
        .route("/properties", web::post().to(create_property))
        .route("/export/{object}", web::get().to(export))
        .route("/stats", web::get().to(stats))
        .route("/faults", web::post().to(set_faults))
        .route("/faults", web::get().to(get_faults))
        .route("/faults", web::delete().to(reset_faults))
        .route("/plant", web::post().to(plant))
        .route("/batch_errors", web::post().to(set_batch_errors))
        .route("/batch_errors", web::delete().to(clear_batch_errors));
}

async fn plant(st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let req: crate::poison::PlantRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid plant body: {e}")),
    };
    match st.plant(&req) {
        Ok(()) => HttpResponse::Ok().json(json!({"object": req.object, "id": req.id, "planted": req.properties.len()})),
        Err(e) => bad(e),
    }
}

async fn set_batch_errors(st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let req: crate::poison::BatchErrorRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid batch_errors body: {e}")),
    };
    match st.batch_errors.set(&req) {
        Ok(n) => HttpResponse::Ok().json(json!({"erroring_ids": n})),
        Err(e) => bad(e),
    }
}

async fn clear_batch_errors(st: web::Data<AppState>) -> HttpResponse {
    st.batch_errors.clear_all();
    HttpResponse::Ok().json(json!({"erroring_ids": 0}))
}

fn bad(msg: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"status": "error", "message": msg.to_string(), "category": "VALIDATION_ERROR", "correlationId": crate::errors::correlation_id()}))
}

async fn churn(st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let req: ChurnRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid churn body: {e}")),
    };
    let st2 = st.clone();
    // Large churns (bulk updates of thousands) run off the async workers.
    match web::block(move || st2.churn(&req)).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(e)) => bad(e),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

async fn change_owners(st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let req: crate::data::owners::OwnerChangeRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid owners body: {e}")),
    };
    match st.change_owners(&req) {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => bad(e),
    }
}

async fn create_property(st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let req: PropertyRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return bad(format!("invalid property body: {e}")),
    };
    match st.create_property(&req) {
        Ok(report) => HttpResponse::Ok().json(report),
        Err(e) => bad(e),
    }
}

async fn export(st: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    let object = path.into_inner();
    let st2 = st.clone();
    let obj = object.clone();
    match web::block(move || st2.export(&obj)).await {
        Ok(Some(body)) => HttpResponse::Ok().content_type("application/x-ndjson").body(body),
        Ok(None) => HttpResponse::NotFound().json(json!({"status": "error", "message": format!("unknown object {object}: use contacts, deals, calls, owners or associations"), "category": "OBJECT_NOT_FOUND", "correlationId": crate::errors::correlation_id()})),
        Err(e) => HttpResponse::InternalServerError().body(e.to_string()),
    }
}

fn n(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

/// The `/_sim/stats` document.
pub fn stats_json(st: &AppState) -> serde_json::Value {
    let s = &st.stats;
    let w = &st.webhook_stats;
    let (max_window, max_search) = st.limits.max_seen();
    let records = {
        let crm = st.read();
        let mut m = serde_json::Map::new();
        for k in crate::data::ObjectKind::ALL {
            let store = crm.store(k);
            m.insert(
                k.name().to_string(),
                json!({"live": store.live.len(), "archived": store.archived.len(), "merged": store.aliases.len()}),
            );
        }
        m.insert("owners".to_string(), json!({"live": crm.owners.iter().filter(|o| !o.archived).count(), "archived": crm.owners.iter().filter(|o| o.archived).count()}));
        m
    };
    json!({
        "requests_total": n(&s.requests_total),
        "requests": s.endpoints(),
        "operations": s.operations(),
        "responses_429": n(&s.responses_429),
        "responses_429_ten_secondly": n(&s.responses_429_ten_secondly),
        "responses_429_secondly": n(&s.responses_429_secondly),
        "responses_429_daily": n(&s.responses_429_daily),
        "responses_401": n(&s.responses_401),
        "responses_414": n(&s.responses_414),
        "faults_injected": n(&s.faults_injected),
        "requests_per_10s": st.limits.cfg.requests_per_window,
        "window_ms": st.limits.cfg.window_ms,
        "max_requests_in_window": max_window,
        "max_searches_in_1s": max_search,
        "webhooks": {
            "events_queued": n(&w.events_queued),
            "delivered": n(&w.batches_delivered),
            "events_delivered": n(&w.events_delivered),
            "attempts": n(&w.attempts),
            "retried": n(&w.retries),
            "failed_attempts": n(&w.failed_attempts),
            "batches_failed": n(&w.batches_failed),
            "duplicates": n(&w.duplicates),
            "reordered": n(&w.reordered),
            "max_batch_size": n(&w.max_batch_size),
            "max_in_flight": n(&w.max_in_flight),
            "pending": n(&w.pending),
        },
        "records": records,
    })
}

async fn stats(st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(stats_json(&st))
}

async fn set_faults(st: web::Data<AppState>, body: web::Bytes) -> HttpResponse {
    let cfg: FaultConfig = if body.iter().all(u8::is_ascii_whitespace) {
        FaultConfig::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(c) => c,
            Err(e) => return bad(format!("invalid faults body: {e}")),
        }
    };
    match st.faults.set(cfg) {
        Ok(()) => HttpResponse::Ok().json(st.faults.get()),
        Err(e) => bad(e),
    }
}

async fn get_faults(st: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(st.faults.get())
}

async fn reset_faults(st: web::Data<AppState>) -> HttpResponse {
    let _ = st.faults.set(FaultConfig::default());
    HttpResponse::Ok().json(st.faults.get())
}

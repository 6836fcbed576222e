//! Owners (`/crm/v3/owners`, `/crm/owners/2026-03`) and properties (`/crm/v3/properties/{type}`,
//! `/crm/properties/2026-03/{type}`).

use super::{Params, Query, json, kind_of};
use crate::data::schema;
use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

/// Owners' page size: default 100; larger values are clamped to 500.
pub const MAX_OWNER_LIMIT: usize = 500;

pub fn owners(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("").route(web::get().to(list_owners)))
        .service(web::resource("/").route(web::get().to(list_owners)))
        .service(web::resource("/{owner_id}").route(web::get().to(read_owner)));
}

pub fn properties(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/{type}").route(web::get().to(list_properties)))
        .service(web::resource("/{type}/{name}").route(web::get().to(read_property)));
}

async fn list_owners(st: web::Data<AppState>, q: Query, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let p = Params(q.into_inner());
    st.stats.operation("owners.list");
    let limit = match p.get("limit") {
        None => 100,
        Some(s) => s.trim().parse::<usize>().map_err(|_| ApiError::Validation(format!("Invalid limit: {s}")))?,
    }
    .clamp(1, MAX_OWNER_LIMIT);
    let after = match p.get("after") {
        None | Some("") => 0,
        Some(s) => s.trim().parse::<u64>().map_err(|_| ApiError::Validation(format!("Invalid after cursor: {s}")))?,
    };
    let archived = p.flag("archived");
    let email = p.get("email").map(str::to_lowercase);
    let crm = st.read();
    let mut matching = crm
        .owners
        .iter()
        .filter(|o| o.archived == archived && o.id >= after)
        .filter(|o| email.as_ref().is_none_or(|e| o.email.to_lowercase() == *e));
    let page: Vec<serde_json::Value> = matching.by_ref().take(limit).map(|o| o.to_json()).collect();
    let mut body = serde_json::json!({ "results": page });
    if let Some(next) = matching.next() {
        let ci = req.connection_info();
        body["paging"] = serde_json::json!({"next": {
            "after": next.id.to_string(),
            "link": format!("{}://{}{}?limit={limit}&after={}", ci.scheme(), ci.host(), req.path(), next.id),
        }});
    }
    Ok(json(StatusCode::OK, body.to_string()))
}

async fn read_owner(st: web::Data<AppState>, path: web::Path<String>, q: Query) -> Result<HttpResponse, ApiError> {
    let p = Params(q.into_inner());
    st.stats.operation("owners.read");
    let key = path.into_inner();
    let by_user = p.get("idProperty") == Some("userId");
    let archived = p.flag("archived");
    let crm = st.read();
    let owner = key.trim().parse::<u64>().ok().and_then(|k| {
        crm.owners.iter().find(|o| o.archived == archived && if by_user { o.user_id == k } else { o.id == k })
    });
    match owner {
        Some(o) => Ok(json(StatusCode::OK, o.to_json().to_string())),
        None => Err(ApiError::NotFound { id: key }),
    }
}

async fn list_properties(st: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let kind = kind_of(&path)?;
    st.stats.operation(&format!("{}.properties", kind.name()));
    let crm = st.read();
    let results: Vec<serde_json::Value> =
        crm.store(kind).props().enumerate().map(|(i, d)| schema::to_json(d, i)).collect();
    Ok(json(StatusCode::OK, serde_json::json!({ "results": results }).to_string()))
}

async fn read_property(st: web::Data<AppState>, path: web::Path<(String, String)>) -> Result<HttpResponse, ApiError> {
    let (t, name) = path.into_inner();
    let kind = kind_of(&t)?;
    st.stats.operation(&format!("{}.property", kind.name()));
    let crm = st.read();
    let store = crm.store(kind);
    match store.prop_index(&name).and_then(|i| Some((i, store.prop_def(i)?))) {
        Some((i, def)) => Ok(json(StatusCode::OK, schema::to_json(def, i).to_string())),
        None => Err(ApiError::NotFound { id: name }),
    }
}

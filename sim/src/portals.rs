//! Several HubSpot portals in one simulator (`--portals 101,102,...`): each portal is a whole
//! [`AppState`] (its own data, request budget, faults, statistics and webhook dispatcher, whose
//! events carry its `portalId`), as each HubSpot account is.
//!
//! **Which portal a request is for.** HubSpot knows the account from the token. With portals
//! listed, an API request must carry `Authorization: Bearer pat-<portalId>` (optionally followed
//! by `-anything`, as in `pat-101-3f2a...`); any other token gets HubSpot's 401. Control requests
//! (`/_sim/...`) name the portal with the `X-Sim-Portal: <portalId>` header or a `portal=<id>`
//! query parameter, else they go to the first portal. Without `--portals` there is one portal
//! and any non-empty token reaches it, as before.
//!
//! The middleware puts the chosen portal's `web::Data<AppState>` in the request's data, in front
//! of the application's (the first portal's), so every handler and the gate read that portal's
//! state without knowing portals exist.

use crate::errors::ApiError;
use crate::state::AppState;
use actix_web::body::BoxBody;
use actix_web::dev::{Extensions, ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, ResponseError, web};
use std::collections::BTreeMap;
use std::rc::Rc;

/// The portals of a multi-portal simulator, by portal id.
pub struct Portals {
    by_id: BTreeMap<u64, web::Data<AppState>>,
}

impl Portals {
    pub fn new(portals: impl IntoIterator<Item = (u64, web::Data<AppState>)>) -> Portals {
        Portals { by_id: portals.into_iter().collect() }
    }

    pub fn get(&self, portal_id: u64) -> Option<&web::Data<AppState>> {
        self.by_id.get(&portal_id)
    }
}

/// The portal id an API token names: `pat-<portalId>` or `pat-<portalId>-<anything>`.
pub fn portal_of_token(token: &str) -> Option<u64> {
    let rest = token.strip_prefix("pat-")?;
    rest.split('-').next()?.parse().ok()
}

/// The bearer token of `req` (empty when there is none).
pub fn bearer(req: &ServiceRequest) -> &str {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map_or("", str::trim)
}

fn control_portal(req: &ServiceRequest) -> Option<u64> {
    if let Some(header) = req.headers().get("x-sim-portal").and_then(|v| v.to_str().ok()) {
        return header.trim().parse().ok();
    }
    web::Query::<BTreeMap<String, String>>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.get("portal").and_then(|p| p.parse().ok()))
}

fn enter(req: &mut ServiceRequest, state: web::Data<AppState>) {
    let mut data = Extensions::new();
    data.insert(state);
    req.add_data_container(Rc::new(data));
}

/// `/crm/...`: the portal the token names, else 401 (an unknown token).
pub async fn api(mut req: ServiceRequest, next: Next<BoxBody>) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(portals) = req.app_data::<web::Data<Portals>>().cloned() else {
        return next.call(req).await;
    };
    match portal_of_token(bearer(&req)).and_then(|id| portals.get(id)).cloned() {
        Some(state) => {
            enter(&mut req, state);
            next.call(req).await
        }
        None => {
            if let Some(first) = req.app_data::<web::Data<AppState>>() {
                crate::stats::Stats::incr(&first.stats.responses_401);
            }
            let res = ApiError::Unauthorized.error_response();
            Ok(req.into_response(res))
        }
    }
}

/// `/_sim/...`: the portal `X-Sim-Portal` or `?portal=` names (404 when it does not exist),
/// else the first.
pub async fn control(mut req: ServiceRequest, next: Next<BoxBody>) -> Result<ServiceResponse<BoxBody>, Error> {
    let Some(portals) = req.app_data::<web::Data<Portals>>().cloned() else {
        return next.call(req).await;
    };
    if let Some(id) = control_portal(&req) {
        let Some(state) = portals.get(id).cloned() else {
            let res = actix_web::HttpResponse::NotFound().json(serde_json::json!({"error": format!("no portal {id}")}));
            return Ok(req.into_response(res));
        };
        enter(&mut req, state);
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_name_their_portal() {
        assert_eq!(portal_of_token("pat-101"), Some(101));
        assert_eq!(portal_of_token("pat-62515-3f2a-99"), Some(62515));
        assert_eq!(portal_of_token("pat-na1-123"), None);
        assert_eq!(portal_of_token("secret"), None);
        assert_eq!(portal_of_token(""), None);
    }
}

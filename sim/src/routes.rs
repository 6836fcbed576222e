//! CRM object endpoints (list, read, batch read, search), mounted under both `/crm/v3/objects`
//! and `/crm/objects/2026-03`. Owners and properties are in [`meta`]; auth, URI length, limits
//! and faults in [`gate`].

pub mod assoc;
pub mod gate;
pub mod meta;

use crate::data::json::{PropSel, push_record};
use crate::data::{ObjectKind, iso};
use crate::errors::ApiError;
use crate::search::{self, SearchRequest};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use std::fmt::Write as _;

/// Longest accepted request URI (path + query), in bytes; longer ones get 414. HubSpot's edge
/// refuses long URLs too; its exact limit is not published, 8 KiB is what common proxies use.
pub const MAX_URI_BYTES: usize = 8192;
/// Largest accepted search body (docs/hubspot.md §3.4: 3000 characters).
pub const MAX_SEARCH_BODY: usize = 3000;
pub const MAX_BATCH_INPUTS: usize = 100;
pub const MAX_LIST_LIMIT: usize = 100;

pub type Query = web::Query<Vec<(String, String)>>;

/// Query parameters, accepting repeated keys (`properties=a&properties=b`) and comma lists.
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    pub fn list(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn flag(&self, key: &str) -> bool {
        self.get(key).is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }
}

pub fn kind_of(s: &str) -> Result<ObjectKind, ApiError> {
    ObjectKind::parse(s).ok_or_else(|| ApiError::UnknownObjectType(s.to_string()))
}

pub fn json(status: actix_web::http::StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status).content_type("application/json;charset=utf-8").body(body)
}

/// Registers the object routes (specific paths before `{id}`).
pub fn objects(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/{type}/batch/read").route(web::post().to(batch_read)))
        .service(web::resource("/{type}/search").route(web::post().to(search)))
        .service(web::resource("/{type}/{id}").route(web::get().to(read_one)))
        .service(web::resource("/{type}").route(web::get().to(list)));
}

async fn list(
    st: web::Data<AppState>,
    path: web::Path<String>,
    q: Query,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let kind = kind_of(&path)?;
    let p = Params(q.into_inner());
    st.stats.operation(&format!("{}.list", kind.name()));
    let limit = match p.get("limit") {
        None => 10,
        Some(s) => s.trim().parse::<usize>().map_err(|_| ApiError::Validation(format!("Invalid limit: {s}")))?,
    }
    .clamp(1, MAX_LIST_LIMIT);
    let after = match p.get("after") {
        None | Some("") => 0,
        Some(s) => s.trim().parse::<u64>().map_err(|_| ApiError::Validation(format!("Invalid after cursor: {s}")))?,
    };
    if let Some(status) = st.faults.list_page_fails(p.get("after").map(|_| after)) {
        crate::stats::Stats::incr(&st.stats.faults_injected);
        return Err(ApiError::Injected { status, retry_after: None });
    }
    let crm = st.read();
    let store = crm.store(kind);
    let sel = PropSel::new(store, &p.list("properties"), &p.list("propertiesWithHistory"));
    let set = if p.flag("archived") { &store.archived } else { &store.live };
    let mut out = String::with_capacity(limit * 400 + 64);
    out.push_str("{\"results\":[");
    let mut next = None;
    for (n, id) in set.range(after..).enumerate() {
        if n == limit {
            next = Some(*id);
            break;
        }
        if let Some(rec) = store.records.get(id) {
            if n > 0 {
                out.push(',');
            }
            push_record(&mut out, rec, &sel);
        }
    }
    out.push(']');
    if let Some(next) = next {
        let ci = req.connection_info();
        let _ = write!(
            out,
            ",\"paging\":{{\"next\":{{\"after\":\"{next}\",\"link\":\"{}://{}{}?limit={limit}&after={next}\"}}}}",
            ci.scheme(),
            ci.host(),
            req.path()
        );
    }
    out.push('}');
    Ok(json(actix_web::http::StatusCode::OK, out))
}

async fn read_one(
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    q: Query,
) -> Result<HttpResponse, ApiError> {
    let (t, id) = path.into_inner();
    let kind = kind_of(&t)?;
    let p = Params(q.into_inner());
    st.stats.operation(&format!("{}.read", kind.name()));
    let crm = st.read();
    let sel = PropSel::new(crm.store(kind), &p.list("properties"), &p.list("propertiesWithHistory"));
    let rec = crm
        .store(kind)
        .lookup(&id, p.get("idProperty"), p.flag("archived"))
        .ok_or(ApiError::NotFound { id: id.clone() })?;
    let mut out = String::with_capacity(1024);
    push_record(&mut out, rec, &sel);
    Ok(json(actix_web::http::StatusCode::OK, out))
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct BatchRead {
    properties: Vec<String>,
    properties_with_history: Vec<String>,
    id_property: Option<String>,
    inputs: Vec<BatchInput>,
}

#[derive(Debug, Deserialize)]
struct BatchInput {
    id: serde_json::Value,
}

async fn batch_read(
    st: web::Data<AppState>,
    path: web::Path<String>,
    q: Query,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let started = st.clock.now_ms();
    let kind = kind_of(&path)?;
    let p = Params(q.into_inner());
    st.stats.operation(&format!("{}.batch_read", kind.name()));
    let req: BatchRead =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("Invalid input JSON: {e}")))?;
    if req.inputs.len() > MAX_BATCH_INPUTS {
        return Err(ApiError::Validation(format!(
            "Batch input limit exceeded: {} inputs given, at most {MAX_BATCH_INPUTS} are allowed",
            req.inputs.len()
        )));
    }
    st.stats.operation_add(&format!("{}.batch_read_ids", kind.name()), req.inputs.len() as u64);
    let archived = p.flag("archived");
    if archived {
        st.stats.operation(&format!("{}.batch_read_archived", kind.name()));
    }
    let mut out = String::with_capacity(req.inputs.len() * 500 + 256);
    out.push_str("{\"status\":\"COMPLETE\",\"results\":[");
    let mut missing: Vec<String> = Vec::new();
    let mut errored: Vec<(String, (String, String))> = Vec::new();
    let mut seen: Vec<u64> = Vec::with_capacity(req.inputs.len());
    {
        let crm = st.read();
        let store = crm.store(kind);
        let sel = PropSel::new(store, &req.properties, &req.properties_with_history);
        for input in &req.inputs {
            let key = match &input.id {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let Some(error) = st.batch_errors.get(kind, &key) {
                errored.push((key, error));
                continue;
            }
            match store.lookup(&key, req.id_property.as_deref(), archived) {
                Some(rec) if seen.contains(&rec.id) => {}
                Some(rec) => {
                    if !seen.is_empty() {
                        out.push(',');
                    }
                    seen.push(rec.id);
                    push_record(&mut out, rec, &sel);
                }
                None => missing.push(key),
            }
        }
    }
    out.push(']');
    let now = iso(st.clock.now_ms());
    let mut errors = crate::poison::error_entries(&errored);
    if !missing.is_empty() {
        errors.push(serde_json::json!({
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", kind.upper()),
            "context": {"ids": missing},
            "errors": [],
            "links": {},
        }));
    }
    let status = if errors.is_empty() {
        actix_web::http::StatusCode::OK
    } else {
        let list = serde_json::Value::Array(errors);
        let _ = write!(out, ",\"numErrors\":{},\"errors\":{list}", list.as_array().map_or(0, Vec::len));
        actix_web::http::StatusCode::MULTI_STATUS
    };
    let _ = write!(out, ",\"startedAt\":\"{}\",\"completedAt\":\"{now}\"}}", iso(started));
    Ok(json(status, out))
}

async fn search(st: web::Data<AppState>, path: web::Path<String>, body: web::Bytes) -> Result<HttpResponse, ApiError> {
    let kind = kind_of(&path)?;
    st.stats.operation(&format!("{}.search", kind.name()));
    if body.len() > MAX_SEARCH_BODY {
        return Err(ApiError::Validation(format!(
            "Request body too large: {} characters, at most {MAX_SEARCH_BODY} are allowed",
            body.len()
        )));
    }
    let req: SearchRequest =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("Invalid input JSON: {e}")))?;
    if let Some(status) = st.faults.search_page_fails(search::ids_above(&req)) {
        crate::stats::Stats::incr(&st.stats.faults_injected);
        return Err(ApiError::Injected { status, retry_after: None });
    }
    let crm = st.read();
    let store = crm.store(kind);
    let sel = PropSel::new(store, &req.properties, &[]);
    let lag = st.faults.search_lag_ms();
    let visible_until = if lag == 0 { i64::MAX } else { st.clock.now_ms().saturating_sub(lag as i64) };
    let page = search::run(store, &req, visible_until)?;
    let mut out = String::with_capacity(page.ids.len() * 400 + 64);
    let _ = write!(out, "{{\"total\":{},\"results\":[", page.total);
    let mut first = true;
    for id in &page.ids {
        if let Some(rec) = store.records.get(id) {
            if !first {
                out.push(',');
            }
            first = false;
            push_record(&mut out, rec, &sel);
        }
    }
    out.push(']');
    if let Some(next) = page.next_after {
        let _ = write!(out, ",\"paging\":{{\"next\":{{\"after\":\"{next}\"}}}}");
    }
    out.push('}');
    Ok(json(actix_web::http::StatusCode::OK, out))
}

//! `POST /crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read` (and the dated
//! `/crm/associations/2026-03/...`): the associations of up to 100 records, each input paged on
//! its own (`after`, the last `toObjectId` of the previous page). Records that are not live are
//! reported in a 207 `errors` entry (`OBJECT_NOT_FOUND`, `context.ids`); associated records that
//! are not live are left out.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{MAX_BATCH_INPUTS, json as respond};
use crate::data::assoc::{self, live};
use crate::data::{ObjectKind, iso};
use crate::errors::ApiError;
use crate::state::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/{from}/{to}/batch/read").route(web::post().to(batch_read)));
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Request {
    inputs: Vec<Input>,
}

#[derive(Debug, Deserialize)]
struct Input {
    id: Value,
    #[serde(default)]
    after: Option<Value>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.trim().to_owned(),
        other => other.to_string(),
    }
}

/// The singular upper-case name in HubSpot's messages.
fn upper(type_id: &str) -> &'static str {
    match ObjectKind::parse(type_id) {
        Some(kind) => kind.upper(),
        None => "COMPANY",
    }
}

async fn batch_read(
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let started = st.clock.now_ms();
    let (from, to) = path.into_inner();
    let from_type = assoc::type_id_of(&from).ok_or_else(|| ApiError::UnknownObjectType(from.clone()))?;
    let to_type = assoc::type_id_of(&to).ok_or_else(|| ApiError::UnknownObjectType(to.clone()))?;
    st.stats.operation("associations.batch_read");
    let req: Request =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("Invalid input JSON: {e}")))?;
    if req.inputs.len() > MAX_BATCH_INPUTS {
        return Err(ApiError::Validation(format!(
            "Batch input limit exceeded: {} inputs given, at most {MAX_BATCH_INPUTS} are allowed",
            req.inputs.len()
        )));
    }
    let page = st.association_page_size.max(1);
    let mut results = Vec::with_capacity(req.inputs.len());
    let mut missing = Vec::new();
    {
        let crm = st.read();
        for input in &req.inputs {
            let key = text(&input.id);
            let Ok(id) = key.parse::<u64>() else {
                missing.push(key);
                continue;
            };
            let known = match ObjectKind::parse(from_type) {
                Some(_) => live(&crm, (from_type, id)),
                None => crm.associations.has_any((from_type, id)),
            };
            if !known {
                missing.push(key);
                continue;
            }
            let after = input.after.as_ref().map(text).and_then(|a| a.parse::<u64>().ok()).unwrap_or(0);
            let mut to_list = Vec::new();
            let mut next = None;
            for (to_id, types) in crm.associations.of((from_type, id), to_type) {
                if to_id <= after || !live(&crm, (to_type, to_id)) {
                    continue;
                }
                if to_list.len() == page {
                    next = to_list.last().and_then(|t: &Value| t["toObjectId"].as_str().map(str::to_owned));
                    break;
                }
                let types: Vec<Value> = types
                    .iter()
                    .map(|t| {
                        let mut spec = json!({"category": t.category, "typeId": t.type_id});
                        if let Some(label) = t.label {
                            spec["label"] = json!(label);
                        }
                        spec
                    })
                    .collect();
                to_list.push(json!({"toObjectId": to_id.to_string(), "associationTypes": types}));
            }
            let mut result = json!({"from": {"id": id.to_string()}, "to": to_list});
            if let Some(after) = next {
                result["paging"] = json!({"next": {"after": after}});
            }
            results.push(result);
        }
    }
    let mut out = json!({
        "status": "COMPLETE",
        "results": results,
        "startedAt": iso(started),
        "completedAt": iso(st.clock.now_ms()),
    });
    let status = if missing.is_empty() {
        StatusCode::OK
    } else {
        out["numErrors"] = json!(1);
        out["errors"] = json!([{
            "status": "error",
            "category": "OBJECT_NOT_FOUND",
            "message": format!("Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.", upper(from_type)),
            "context": {"ids": missing},
            "errors": [],
            "links": {},
        }]);
        StatusCode::MULTI_STATUS
    };
    Ok(respond(status, out.to_string()))
}

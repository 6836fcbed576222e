//! Association batch reads, mounted under `/crm/v4/associations` and
//! `/crm/associations/2026-03`: `POST /{fromObjectType}/{toObjectType}/batch/read` with
//! `{"inputs":[{"id":"…","after":"…"}]}` (at most 100 inputs, else 400). Each input's
//! associations are one result `{from:{id}, to:[{toObjectId, associationTypes:[{category,
//! typeId, label?}]}], paging?}`, paged on their own (`paging.next.after`, given back as the
//! input's `after`); an input with none (or not a live record) is a 207 error
//! `crm.associations.NO_ASSOCIATIONS_FOUND`, as HubSpot answers.

use crate::data::assoc::{self, End};
use crate::data::iso;
use crate::errors::ApiError;
use crate::routes::{MAX_BATCH_INPUTS, json};
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

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
    after: Option<String>,
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

async fn batch_read(
    st: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let started = st.clock.now_ms();
    let (from_raw, to_raw) = path.into_inner();
    let from = assoc::object_type(&from_raw).ok_or_else(|| ApiError::UnknownObjectType(from_raw.clone()))?;
    let to = assoc::object_type(&to_raw).ok_or_else(|| ApiError::UnknownObjectType(to_raw.clone()))?;
    st.stats.operation(&format!("{from_raw}.{to_raw}.associations"));
    let req: Request =
        serde_json::from_slice(&body).map_err(|e| ApiError::Validation(format!("Invalid input JSON: {e}")))?;
    if req.inputs.len() > MAX_BATCH_INPUTS {
        return Err(ApiError::Validation(format!(
            "Batch input limit exceeded: {} inputs given, at most {MAX_BATCH_INPUTS} are allowed",
            req.inputs.len()
        )));
    }
    let page = st.association_page_size.max(1);
    let (mut results, mut errors) = (Vec::new(), Vec::new());
    {
        let crm = st.read();
        for input in &req.inputs {
            let key = text(&input.id);
            let after: u64 = input.after.as_deref().and_then(|a| a.trim().parse().ok()).unwrap_or(0);
            let id = key.trim().parse::<u64>().ok().filter(|id| crm.is_live((from, *id)));
            let found: Vec<(u64, Vec<u32>)> = id
                .map(|id| {
                    crm.associations
                        .of((from, id), to)
                        .filter(|(other, _)| *other > after && crm.is_live((to, *other)))
                        .take(page + 1)
                        .map(|(other, types)| (other, types.iter().copied().collect()))
                        .collect()
                })
                .unwrap_or_default();
            match id {
                Some(id) if !found.is_empty() => results.push(result((from, id), to, &found, page)),
                _ => errors.push(none_found(from, to, &key)),
            }
        }
    }
    let mut out = json!({"status": "COMPLETE", "results": results, "startedAt": iso(started), "completedAt": iso(st.clock.now_ms())});
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        out["numErrors"] = json!(errors.len());
        out["errors"] = Value::Array(errors);
        StatusCode::MULTI_STATUS
    };
    Ok(json(status, out.to_string()))
}

/// One input's page of associations (`found` holds one more than a page when there are more).
fn result(from: End, to: &str, found: &[(u64, Vec<u32>)], page: usize) -> Value {
    let shown = &found[..found.len().min(page)];
    let to_list: Vec<Value> = shown
        .iter()
        .map(|(id, types)| {
            let types: Vec<Value> = types
                .iter()
                .filter_map(|t| assoc::type_of(*t))
                .map(|t| {
                    let mut v = json!({"category": t.category, "typeId": t.type_id});
                    if let Some(label) = t.label {
                        v["label"] = json!(label);
                    }
                    v
                })
                .collect();
            json!({"toObjectId": id.to_string(), "associationTypes": types})
        })
        .collect();
    let mut v = json!({"from": {"id": from.1.to_string()}, "to": to_list});
    if found.len() > page {
        if let Some((last, _)) = shown.last() {
            v["paging"] = json!({"next": {"after": last.to_string(), "link": format!("?after={last}")}});
        }
    }
    let _ = to;
    v
}

/// HubSpot's per-input error for a record with no associations of the type asked.
fn none_found(from: &str, to: &str, id: &str) -> Value {
    json!({
        "status": "error",
        "category": "OBJECT_NOT_FOUND",
        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
        "message": format!("No {} is associated with {} {id}.", assoc::singular(to), assoc::singular(from)),
        "context": {"fromObjectId": [id], "fromObjectType": [assoc::singular(from)], "toObjectType": [assoc::singular(to)]},
        "errors": [],
        "links": {},
    })
}

//! The v4 association batch read (`POST /crm/v4/associations/{from}/{to}/batch/read`, or
//! `/crm/associations/{version}/...` under a dated version): up to 100 ids per call, each
//! input's results paged on its own (`paging.next.after`, sent back with that input's id).

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::HubSpot;
use super::api::BATCH_READ_MAX;
use super::error::HubSpotError;
use super::limiter::Lane;
use super::transport::Call;

/// One association type of an edge as HubSpot reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssociationType {
    pub type_id: i32,
    pub category: String,
    pub label: Option<String>,
}

/// One associated record and the association types to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Associated {
    pub to_id: String,
    pub types: Vec<AssociationType>,
}

/// What a read of the associations of some ids to one object type answered.
#[derive(Clone, Debug, Default)]
pub struct AssociationRead {
    /// Per requested id that HubSpot answered for: everything associated (empty: none).
    pub edges: BTreeMap<String, Vec<Associated>>,
    /// Requested ids HubSpot could not read (not found, or another per-id error), with why.
    pub failed: Vec<(String, String)>,
}

#[derive(Serialize)]
struct Input<'a> {
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<&'a str>,
}

#[derive(Serialize)]
struct Request<'a> {
    inputs: Vec<Input<'a>>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Response {
    results: Vec<Result_>,
    errors: Vec<ErrorEntry>,
}

/// One entry of a 207's `errors`.
#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct ErrorEntry {
    category: Option<String>,
    sub_category: Option<Value>,
    message: Option<String>,
    context: Option<Value>,
}

impl ErrorEntry {
    /// HubSpot's way of saying an input has no associations at all (not an error for us).
    fn means_none(&self) -> bool {
        self.sub_category.as_ref().and_then(Value::as_str).is_some_and(|s| s.contains("NO_ASSOCIATIONS"))
    }

    /// The ids it names (`context.ids`, `context.id`, `context.fromObjectId`).
    fn ids(&self) -> Vec<String> {
        let Some(context) = &self.context else { return Vec::new() };
        ["ids", "id", "fromObjectId"]
            .iter()
            .filter_map(|key| context.get(key).and_then(Value::as_array))
            .flatten()
            .filter_map(text)
            .collect()
    }
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Result_ {
    from: Option<FromId>,
    to: Vec<To>,
    paging: Option<Paging>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct FromId {
    id: Value,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct To {
    to_object_id: Value,
    association_types: Vec<TypeSpec>,
}

#[derive(Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct TypeSpec {
    category: Option<String>,
    type_id: Option<i32>,
    label: Option<String>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Paging {
    next: Option<Next>,
}

#[derive(Default, Deserialize)]
#[serde(default)]
struct Next {
    after: Option<String>,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

impl HubSpot {
    /// Reads the associations of `ids` (records of object type `from`) to object type `to`
    /// (names or type ids), 100 ids per call, following each input's own paging until it has no
    /// next page. The caller chooses the lane (full passes and sweeps: `Background`).
    pub async fn read_associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
        lane: Lane,
    ) -> Result<AssociationRead, HubSpotError> {
        let mut out = AssociationRead::default();
        let mut seen = HashSet::with_capacity(ids.len());
        let unique: Vec<&String> = ids.iter().filter(|id| seen.insert(id.as_str())).collect();
        // Inputs still to read: (id, after).
        let mut pending: Vec<(String, Option<String>)> = unique.into_iter().map(|id| (id.clone(), None)).collect();
        while !pending.is_empty() {
            let take = pending.len().min(BATCH_READ_MAX);
            let chunk: Vec<(String, Option<String>)> = pending.drain(..take).collect();
            let more = self.read_associations_chunk(from, to, &chunk, lane, &mut out).await?;
            pending.extend(more);
        }
        Ok(out)
    }

    /// One call; returns the inputs that have a next page.
    async fn read_associations_chunk(
        &self,
        from: &str,
        to: &str,
        inputs: &[(String, Option<String>)],
        lane: Lane,
        out: &mut AssociationRead,
    ) -> Result<Vec<(String, Option<String>)>, HubSpotError> {
        let body = serde_json::to_vec(&Request {
            inputs: inputs.iter().map(|(id, after)| Input { id, after: after.as_deref() }).collect(),
        })
        .map_err(|e| HubSpotError::Config(format!("cannot encode a request: {e}")))?;
        let url = self.inner.paths.associations_batch_read(from, to);
        let raw = self.send(Call::post(&url, &[], body, false, lane, "associations.batch_read")).await?;
        let response: Response =
            serde_json::from_slice(&raw).map_err(|source| HubSpotError::Decode { what: "association read", source })?;
        let mut more = Vec::new();
        let mut answered = HashSet::new();
        for result in response.results {
            let Some(id) = result.from.as_ref().and_then(|f| text(&f.id)) else { continue };
            answered.insert(id.clone());
            let edges = out.edges.entry(id.clone()).or_default();
            for to in result.to {
                let Some(to_id) = text(&to.to_object_id) else { continue };
                let types = to
                    .association_types
                    .into_iter()
                    .filter_map(|t| {
                        Some(AssociationType {
                            type_id: t.type_id?,
                            category: t.category.unwrap_or_else(|| "HUBSPOT_DEFINED".to_owned()),
                            label: t.label.filter(|l| !l.is_empty()),
                        })
                    })
                    .collect();
                edges.push(Associated { to_id, types });
            }
            if let Some(after) = result.paging.and_then(|p| p.next).and_then(|n| n.after) {
                more.push((id, Some(after)));
            }
        }
        for error in response.errors {
            if error.means_none() {
                continue;
            }
            let reason =
                format!("{}: {}", error.category.as_deref().unwrap_or(""), error.message.as_deref().unwrap_or(""));
            for id in error.ids() {
                if answered.insert(id.clone()) {
                    out.failed.push((id, reason.clone()));
                }
            }
        }
        // An input neither answered nor named by an error has no associations.
        for (id, after) in inputs {
            if after.is_none() && !answered.contains(id) {
                out.edges.entry(id.clone()).or_default();
            }
        }
        Ok(more)
    }
}

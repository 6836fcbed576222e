//! Reading associations (docs/hubspot.md §7): the v4 batch read (or the dated one), up to 100
//! records per call, each record's associations paged on their own: a record whose answer
//! carries `paging.next.after` is asked again with that cursor (with the other records that have
//! more) until none has.

use super::HubSpot;
use super::api::{BATCH_READ_MAX, decode, encode};
use super::error::HubSpotError;
use super::limiter::Lane;
use super::record::InvalidRecord;
use super::transport::Call;
use super::wire::{AssociationBatchResponse, AssociationInput, AssociationReadRequest, StandardError, id_text};

/// One association HubSpot reported: from a record of the type read from, to one of the type
/// read toward, with one of its association types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssociationEdge {
    pub from_id: String,
    pub to_id: String,
    pub type_id: i32,
    /// `HUBSPOT_DEFINED`, `USER_DEFINED` or `INTEGRATOR_DEFINED`.
    pub category: String,
    /// `Primary`, a user-defined label, or none for the unlabelled type.
    pub label: Option<String>,
}

/// What an association read returned.
#[derive(Clone, Debug, Default)]
pub struct AssociationRead {
    pub edges: Vec<AssociationEdge>,
    /// The asked ids whose associations were read to the end (those with none included).
    pub complete: Vec<String>,
    /// Asked ids HubSpot answered with another error (their associations are unknown).
    pub failed: Vec<InvalidRecord>,
    /// Calls made.
    pub requests: usize,
}

/// One id still to read, with its cursor.
type Pending = (String, Option<String>);

impl HubSpot {
    /// Every association of records `ids` of object type `from` toward object type `to` (names
    /// or type ids, as in HubSpot's paths).
    pub async fn read_associations(
        &self,
        from: &str,
        to: &str,
        ids: &[String],
        lane: Lane,
    ) -> Result<AssociationRead, HubSpotError> {
        let mut out = AssociationRead::default();
        let mut unique: Vec<String> = ids.to_vec();
        unique.sort();
        unique.dedup();
        let mut pending: Vec<Pending> = unique.iter().map(|id| (id.clone(), None)).collect();
        let mut answered: std::collections::HashSet<String> = std::collections::HashSet::new();
        while !pending.is_empty() {
            let mut more = Vec::new();
            for chunk in pending.chunks(BATCH_READ_MAX) {
                let response = self.association_page(from, to, chunk, lane).await?;
                out.requests += 1;
                let before = more.len();
                collect(response, &mut out, &mut more, &mut answered);
                // A cursor HubSpot hands back unchanged would loop forever: that record is done.
                let (kept, repeated): (Vec<Pending>, Vec<Pending>) =
                    more.drain(before..).partition(|p| !chunk.contains(p));
                answered.extend(repeated.into_iter().map(|(id, _)| id));
                more.extend(kept);
            }
            pending = more;
        }
        let failed: std::collections::HashSet<&str> = out.failed.iter().filter_map(|f| f.id.as_deref()).collect();
        out.complete = unique.into_iter().filter(|id| answered.contains(id) && !failed.contains(id.as_str())).collect();
        Ok(out)
    }

    async fn association_page(
        &self,
        from: &str,
        to: &str,
        inputs: &[Pending],
        lane: Lane,
    ) -> Result<AssociationBatchResponse, HubSpotError> {
        let body = encode(&AssociationReadRequest {
            inputs: inputs.iter().map(|(id, after)| AssociationInput { id, after: after.as_deref() }).collect(),
        })?;
        let url = self.inner.paths.associations_batch_read(from, to);
        let endpoint = format!("{from}.{to}.associations");
        let raw = self.send(Call::post(&url, &[], body, false, lane, &endpoint)).await?;
        decode(&raw, "association read answer")
    }
}

/// Adds one answer to `out`; inputs with more pages go to `more`.
fn collect(
    response: AssociationBatchResponse,
    out: &mut AssociationRead,
    more: &mut Vec<Pending>,
    answered: &mut std::collections::HashSet<String>,
) {
    for result in response.results {
        let Some(from_id) = result.from.as_ref().and_then(|f| id_text(&f.id)) else { continue };
        for to in result.to {
            let Some(to_id) = id_text(&to.to_object_id) else { continue };
            for t in to.association_types {
                let Some(type_id) = t.type_id.and_then(|id| i32::try_from(id).ok()) else { continue };
                out.edges.push(AssociationEdge {
                    from_id: from_id.clone(),
                    to_id: to_id.clone(),
                    type_id,
                    category: t.category.unwrap_or_else(|| "HUBSPOT_DEFINED".to_owned()),
                    label: t.label.filter(|l| !l.is_empty()),
                });
            }
        }
        match result.paging.as_ref().and_then(|p| p.next_after()) {
            Some(after) => more.push((from_id.clone(), Some(after))),
            None => {
                answered.insert(from_id);
            }
        }
    }
    for error in response.errors {
        let ids = error.ids();
        if error.is_no_associations() {
            answered.extend(ids);
        } else {
            let reason = reason(&error);
            out.failed.extend(ids.into_iter().map(|id| InvalidRecord { id: Some(id), reason: reason.clone() }));
        }
    }
}

fn reason(error: &StandardError) -> String {
    format!("{}: {}", error.category.as_deref().unwrap_or_default(), error.message.as_deref().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_edges_and_errors_are_read_from_one_answer() {
        let raw = r#"{"status":"COMPLETE","results":[
            {"from":{"id":"1"},"to":[{"toObjectId":"7","associationTypes":[
                {"category":"HUBSPOT_DEFINED","typeId":4},{"category":"USER_DEFINED","typeId":101,"label":"Decision maker"}]}],
             "paging":{"next":{"after":"7"}}},
            {"from":{"id":2},"to":[{"toObjectId":8,"associationTypes":[{"category":"HUBSPOT_DEFINED","typeId":4,"label":null}]}]}],
            "errors":[{"status":"error","category":"OBJECT_NOT_FOUND","subCategory":"crm.associations.NO_ASSOCIATIONS_FOUND",
                "message":"No deal is associated with contact 3.","context":{"fromObjectId":["3"]}},
              {"status":"error","category":"VALIDATION_ERROR","message":"bad","context":{"ids":["4"]}}],
            "startedAt":"2026-01-01T00:00:00Z","completedAt":"2026-01-01T00:00:00Z"}"#;
        let response: AssociationBatchResponse = serde_json::from_str(raw).unwrap();
        let (mut out, mut more, mut answered) = (AssociationRead::default(), Vec::new(), Default::default());
        collect(response, &mut out, &mut more, &mut answered);
        assert_eq!(out.edges.len(), 3);
        assert_eq!(out.edges[1].label.as_deref(), Some("Decision maker"));
        assert_eq!(
            (out.edges[2].from_id.as_str(), out.edges[2].to_id.as_str(), out.edges[2].label.as_deref()),
            ("2", "8", None)
        );
        assert_eq!(more, vec![("1".to_owned(), Some("7".to_owned()))], "the first record has another page");
        let mut answered: Vec<String> = answered.into_iter().collect();
        answered.sort();
        assert_eq!(answered, ["2", "3"], "read to the end, one of them with no associations");
        assert_eq!(out.failed, vec![InvalidRecord { id: Some("4".into()), reason: "VALIDATION_ERROR: bad".into() }]);
    }
}

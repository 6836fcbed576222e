//! HubSpot webhook events (docs/hubspot.md §2) -> what to do about them.
//!
//! Classic `contact.*` and `deal.*` events name their object by prefix; generic `object.*`
//! events by `objectTypeId` (`0-1` contacts, `0-3` deals, `0-48` calls). Creation, property
//! change and restore ask for a fetch; an association change asks for a fetch of each end as the
//! kind its own type id names, one that archives nothing when not found; deletion archives
//! without a fetch;
//! merge archives the merged-away ids (and a superseded primary) with a pointer to the survivor
//! and fetches the survivor; privacy deletion (or a deletion whose `changeSource` is `GDPR`,
//! whichever of the pair arrives first) removes the contact's personal data. Everything else is
//! counted as ignored, never refused.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::kind::{self, ObjectKind};
use crate::queue::Change;
use crate::store::associations::{Edge, EdgeChange};

/// One event, read leniently: every field optional, ids as numbers or strings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RawEvent {
    /// The HubSpot account (portal) the event is from.
    pub portal_id: Option<i64>,
    pub subscription_type: Option<String>,
    /// What the docs' table calls the same field.
    pub event_type: Option<String>,
    pub object_type_id: Option<String>,
    #[serde(deserialize_with = "id::opt")]
    pub object_id: Option<String>,
    #[serde(deserialize_with = "id::millis")]
    pub occurred_at: Option<i64>,
    pub change_source: Option<String>,
    #[serde(deserialize_with = "id::opt")]
    pub primary_object_id: Option<String>,
    #[serde(deserialize_with = "id::list")]
    pub merged_object_ids: Vec<String>,
    #[serde(deserialize_with = "id::opt")]
    pub new_object_id: Option<String>,
    /// `associationChange`: the two ends, each with its object type id (generic events) or
    /// named by `associationType` (`CONTACT_TO_DEAL`, legacy events).
    #[serde(deserialize_with = "id::opt")]
    pub from_object_id: Option<String>,
    #[serde(deserialize_with = "id::opt")]
    pub to_object_id: Option<String>,
    #[serde(deserialize_with = "id::opt")]
    pub from_object_type_id: Option<String>,
    #[serde(deserialize_with = "id::opt")]
    pub to_object_type_id: Option<String>,
    pub association_type: Option<String>,
    /// Generic events: the association type id and category of this direction.
    #[serde(deserialize_with = "id::int")]
    pub association_type_id: Option<i32>,
    pub association_category: Option<String>,
    #[serde(deserialize_with = "id::flag")]
    pub association_removed: Option<bool>,
    #[serde(deserialize_with = "id::flag")]
    pub is_primary_association: Option<bool>,
}

/// A merge: `merged` (and a superseded primary) now point at `survivor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merge {
    pub kind: ObjectKind,
    pub merged: Vec<String>,
    pub survivor: String,
    /// The event's `occurredAt` (Unix ms), if given: when the edges moved to the survivor.
    pub occurred_at: Option<i64>,
}

/// A deletion at a point in time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub kind: ObjectKind,
    pub id: String,
    pub occurred_at: DateTime<Utc>,
}

/// Everything one webhook batch asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Ids to fetch (queued), with when their change happened for creations and property
    /// changes (a read that already returned a newer `updatedAt` covers them).
    pub fetch: Vec<Change>,
    /// Ids named by association changes, to fetch but never to archive when HubSpot does not
    /// find them: an association event says nothing about whether its ends still exist, and an
    /// id read as the wrong kind would archive an unrelated record with the same number.
    pub fetch_associated: Vec<(ObjectKind, String)>,
    /// Association-change events planned (each named one or two ends in `fetch_associated`).
    pub association_events: usize,
    /// The edges association-change events add or remove (one per event: its direction), at
    /// the event's `occurredAt`.
    pub edges: Vec<EdgeChange>,
    pub deletions: Vec<Deletion>,
    pub merges: Vec<Merge>,
    /// Contact ids whose personal data goes now.
    pub privacy: Vec<String>,
    /// Events of types or objects we do not keep, or without the fields they need.
    pub ignored: usize,
}

impl Plan {
    /// Whether anything must be written before answering (not just queued).
    pub fn writes(&self) -> bool {
        !(self.deletions.is_empty() && self.merges.is_empty() && self.privacy.is_empty() && self.edges.is_empty())
    }
}

/// The kind an event is about, from its subscription prefix or `objectTypeId`.
fn kind_of(prefix: &str, object_type_id: Option<&str>) -> Option<ObjectKind> {
    match (prefix, object_type_id.map(str::trim)) {
        ("contact", _) | ("object", Some("0-1")) => Some(ObjectKind::Contacts),
        ("deal", _) | ("object", Some("0-3")) => Some(ObjectKind::Deals),
        ("object", Some("0-48")) => Some(ObjectKind::Calls),
        _ => None,
    }
}

/// Turns a batch of events into a plan.
pub fn plan(events: Vec<RawEvent>) -> Plan {
    let mut plan = Plan::default();
    for event in events {
        if !add(&mut plan, event) {
            plan.ignored += 1;
        }
    }
    plan
}

fn add(plan: &mut Plan, event: RawEvent) -> bool {
    let Some(subscription) = event.subscription_type.clone().or(event.event_type.clone()) else {
        return false;
    };
    let Some((prefix, action)) = subscription.split_once('.') else { return false };
    let kind = kind_of(prefix, event.object_type_id.as_deref());
    if action == "associationChange" {
        if let Some(edge) = edge_change(prefix, &event) {
            plan.edges.push(edge);
        }
        let planned = push_associated(plan, prefix, kind, event);
        plan.association_events += usize::from(planned);
        return planned;
    }
    let Some(kind) = kind else { return false };
    let object_id = event.object_id.clone();
    match action {
        "creation" | "propertyChange" => push_fetch(plan, kind, object_id, event.occurred_at),
        // A restore need not move `updatedAt`: never taken as covered by an earlier read.
        "restore" => push_fetch(plan, kind, object_id, None),
        "deletion" if kind == ObjectKind::Contacts && event.change_source.as_deref() == Some("GDPR") => {
            push_privacy(plan, object_id)
        }
        "deletion" => {
            let Some(id) = object_id else { return false };
            let occurred_at = event.occurred_at.and_then(DateTime::from_timestamp_millis).unwrap_or_else(Utc::now);
            plan.deletions.push(Deletion { kind, id, occurred_at });
            true
        }
        "privacyDeletion" if kind == ObjectKind::Contacts => push_privacy(plan, object_id),
        "merge" => {
            let Some(survivor) = event.new_object_id.or(event.primary_object_id.clone()) else { return false };
            let mut merged = event.merged_object_ids;
            merged.extend(event.primary_object_id.into_iter().chain(object_id));
            merged.retain(|id| *id != survivor);
            merged.sort();
            merged.dedup();
            plan.fetch.push(Change::untimed(kind, survivor.clone()));
            plan.merges.push(Merge { kind, merged, survivor, occurred_at: event.occurred_at });
            true
        }
        _ => false,
    }
}

fn push_fetch(plan: &mut Plan, kind: ObjectKind, id: Option<String>, changed_at: Option<i64>) -> bool {
    id.map(|id| plan.fetch.push(Change { kind, id, changed_at })).is_some()
}

/// An association change: each end is fetched as the kind its own type id names
/// (`fromObjectTypeId`, `toObjectTypeId`; legacy events: the two halves of `associationType`),
/// never as the subscription's kind, and marked so that a not-found read archives nothing. An
/// end of a kind we do not keep, or of no known kind, is left alone. `kind` (the subscription's)
/// is used only for a legacy event without `associationType` (its `from` end is the subscribed
/// object) and for an event naming no ends but an `objectId`.
fn push_associated(plan: &mut Plan, prefix: &str, kind: Option<ObjectKind>, event: RawEvent) -> bool {
    let legacy = event.association_type.as_deref().and_then(|t| t.split_once("_TO_"));
    let typed = event.from_object_type_id.is_some() || event.to_object_type_id.is_some();
    let end = |type_id: Option<&str>, legacy_end: Option<&str>| match (type_id, legacy_end) {
        (Some(id), _) => ObjectKind::from_type_id(id),
        (None, Some(name)) => legacy_kind(name),
        (None, None) => None,
    };
    let mut from = end(event.from_object_type_id.as_deref(), legacy.map(|(f, _)| f));
    if from.is_none() && !typed && legacy.is_none() && prefix != "object" {
        from = kind;
    }
    let to = end(event.to_object_type_id.as_deref(), legacy.map(|(_, t)| t));
    let before = plan.fetch_associated.len();
    for (end, id) in [(from, event.from_object_id), (to, event.to_object_id)] {
        if let (Some(end), Some(id)) = (end, id) {
            plan.fetch_associated.push((end, id));
        }
    }
    if plan.fetch_associated.len() == before && !typed && legacy.is_none() {
        if let (Some(kind), Some(id)) = (kind, event.object_id) {
            plan.fetch_associated.push((kind, id));
        }
    }
    plan.fetch_associated.len() > before
}

/// The edge an association-change event adds or removes, from the event alone: the ends' type
/// ids (`fromObjectTypeId`/`toObjectTypeId`; legacy events: the halves of `associationType`,
/// else the subscribed object for `from`), `associationTypeId` (legacy events name none: the
/// HubSpot-defined type of the pair, primary when `isPrimaryAssociation`), `associationCategory`
/// (default `HUBSPOT_DEFINED`), `associationRemoved`, at `occurredAt`. `None` when an end or the
/// type cannot be known.
fn edge_change(prefix: &str, event: &RawEvent) -> Option<EdgeChange> {
    let legacy = event.association_type.as_deref().and_then(|t| t.split_once("_TO_"));
    let subscribed = match prefix {
        "contact" => Some("0-1"),
        "deal" => Some("0-3"),
        "company" => Some("0-2"),
        _ => None,
    };
    let from_type = match (&event.from_object_type_id, legacy) {
        (Some(t), _) => t.clone(),
        (None, Some((from, _))) => kind::legacy_type_id(from)?.to_owned(),
        (None, None) => subscribed?.to_owned(),
    };
    let to_type = match (&event.to_object_type_id, legacy) {
        (Some(t), _) => t.clone(),
        (None, Some((_, to))) => kind::legacy_type_id(to)?.to_owned(),
        (None, None) => return None,
    };
    let primary = event.is_primary_association.unwrap_or(false);
    let type_id = match event.association_type_id {
        Some(id) => id,
        None => kind::default_association_type(&from_type, &to_type, primary)?,
    };
    let at = event.occurred_at.and_then(DateTime::from_timestamp_millis).unwrap_or_else(Utc::now);
    Some(EdgeChange {
        edge: Edge {
            from_type,
            from_id: event.from_object_id.clone()?,
            to_type,
            to_id: event.to_object_id.clone()?,
            type_id,
            category: event.association_category.clone().unwrap_or_else(|| "HUBSPOT_DEFINED".to_owned()),
            label: None,
            is_primary: primary || matches!(type_id, 1 | 2 | 5 | 6),
        },
        removed: event.association_removed.unwrap_or(false),
        at,
    })
}

/// The kind a legacy `associationType` end names (`CONTACT` in `CONTACT_TO_DEAL`).
fn legacy_kind(name: &str) -> Option<ObjectKind> {
    match name {
        "CONTACT" => Some(ObjectKind::Contacts),
        "DEAL" => Some(ObjectKind::Deals),
        _ => None,
    }
}

fn push_privacy(plan: &mut Plan, id: Option<String>) -> bool {
    id.map(|id| plan.privacy.push(id)).is_some()
}

/// Ids sent as JSON numbers or strings.
mod id {
    use serde::{Deserialize, Deserializer};
    use serde_json::Value;

    fn text(value: Value) -> Option<String> {
        match value {
            Value::Number(n) => Some(n.to_string()),
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
            _ => None,
        }
    }

    pub fn opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        Ok(text(Value::deserialize(d)?))
    }

    /// Unix milliseconds, as a number or a numeric string.
    pub fn millis<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        Ok(text(Value::deserialize(d)?).and_then(|t| t.parse().ok()))
    }

    /// An integer, as a number or a numeric string.
    pub fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i32>, D::Error> {
        Ok(text(Value::deserialize(d)?).and_then(|t| t.parse().ok()))
    }

    /// A boolean, as `true`/`false` or their strings.
    pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Bool(b) => Some(b),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        })
    }

    pub fn list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::Array(items) => items.into_iter().filter_map(text).collect(),
            other => text(other).into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Plan {
        plan(serde_json::from_str(json).unwrap())
    }

    /// The fetched ids of a plan, without their times.
    fn fetched(p: &Plan) -> Vec<(ObjectKind, String)> {
        p.fetch.iter().map(|c| (c.kind, c.id.clone())).collect()
    }

    #[test]
    fn fetches_for_creation_change_restore_and_association() {
        let p = parse(
            r#"[{"subscriptionType":"contact.creation","objectId":1},
                {"subscriptionType":"deal.propertyChange","objectId":"2","propertyName":"amount"},
                {"subscriptionType":"object.restore","objectTypeId":"0-48","objectId":3},
                {"subscriptionType":"contact.associationChange","fromObjectId":4,"toObjectId":9}]"#,
        );
        let want = vec![
            (ObjectKind::Contacts, "1".to_owned()),
            (ObjectKind::Deals, "2".to_owned()),
            (ObjectKind::Calls, "3".to_owned()),
        ];
        assert_eq!(fetched(&p), want);
        // Without `associationType`, only the subscribed end's kind is known.
        assert_eq!(p.fetch_associated, [(ObjectKind::Contacts, "4".to_owned())]);
        assert_eq!(p.ignored, 0);
        assert!(!p.writes());
    }

    #[test]
    fn association_ends_are_fetched_as_the_kind_their_type_ids_name() {
        let p = parse(
            r#"[{"subscriptionType":"object.associationChange","objectTypeId":"0-1","objectId":5,
                 "fromObjectTypeId":"0-3","fromObjectId":70,"toObjectTypeId":"0-1","toObjectId":5,
                 "associationTypeId":3,"associationCategory":"HUBSPOT_DEFINED","associationRemoved":false},
                {"subscriptionType":"contact.associationChange","associationType":"CONTACT_TO_DEAL",
                 "fromObjectId":6,"toObjectId":71,"associationRemoved":true,"isPrimaryAssociation":false},
                {"subscriptionType":"deal.associationChange","associationType":"DEAL_TO_COMPANY",
                 "fromObjectId":72,"toObjectId":900},
                {"subscriptionType":"object.associationChange","fromObjectTypeId":"0-2","fromObjectId":901,
                 "toObjectTypeId":"0-48","toObjectId":80},
                {"subscriptionType":"contact.associationChange","associationType":"COMPANY_TO_TICKET",
                 "fromObjectId":902,"toObjectId":903}]"#,
        );
        assert!(p.fetch.is_empty(), "association ends are never plain fetches");
        let want = [
            (ObjectKind::Deals, "70"),
            (ObjectKind::Contacts, "5"),
            (ObjectKind::Contacts, "6"),
            (ObjectKind::Deals, "71"),
            (ObjectKind::Deals, "72"),
            (ObjectKind::Calls, "80"),
        ];
        let want: Vec<_> = want.iter().map(|(k, id)| (*k, (*id).to_owned())).collect();
        assert_eq!(p.fetch_associated, want);
        assert_eq!(p.ignored, 1, "companies and tickets are not kept");
        // Every event with both ends and a known type is an edge of its own direction.
        let edges: Vec<_> = p
            .edges
            .iter()
            .map(|c| {
                (c.edge.from_type.as_str(), c.edge.from_id.as_str(), c.edge.to_type.as_str(), c.edge.type_id, c.removed)
            })
            .collect();
        assert_eq!(
            edges,
            [
                ("0-3", "70", "0-1", 3, false),
                ("0-1", "6", "0-3", 4, true),
                ("0-3", "72", "0-2", 341, false),
                ("0-2", "901", "0-48", 181, false),
            ]
        );
        assert!(p.writes(), "edges are written before the answer");
    }

    #[test]
    fn generic_events_by_object_type_id() {
        let p = parse(
            r#"[{"subscriptionType":"object.creation","objectTypeId":"0-1","objectId":1},
                {"subscriptionType":"object.creation","objectTypeId":"0-3","objectId":2},
                {"subscriptionType":"object.creation","objectTypeId":"0-2","objectId":3},
                {"subscriptionType":"object.creation","objectId":4}]"#,
        );
        assert_eq!(fetched(&p), vec![(ObjectKind::Contacts, "1".into()), (ObjectKind::Deals, "2".into())]);
        assert_eq!(p.ignored, 2, "companies and events without a type are counted, not refused");
    }

    #[test]
    fn deletion_archives_without_a_fetch() {
        let p = parse(r#"[{"subscriptionType":"deal.deletion","objectId":5,"occurredAt":1700000000000}]"#);
        assert!(p.fetch.is_empty());
        let at = DateTime::from_timestamp_millis(1_700_000_000_000).unwrap();
        assert_eq!(p.deletions, vec![Deletion { kind: ObjectKind::Deals, id: "5".into(), occurred_at: at }]);
    }

    #[test]
    fn merge_points_old_ids_at_the_survivor_and_fetches_it() {
        let p = parse(
            r#"[{"subscriptionType":"contact.merge","objectId":10,"primaryObjectId":10,
                 "mergedObjectIds":[11,"12"],"newObjectId":20,"numberOfPropertiesMoved":3}]"#,
        );
        assert_eq!(fetched(&p), vec![(ObjectKind::Contacts, "20".into())]);
        let merged = vec!["10".to_owned(), "11".into(), "12".into()];
        let survivor = "20".to_owned();
        assert_eq!(p.merges, vec![Merge { kind: ObjectKind::Contacts, merged, survivor, occurred_at: None }]);
        // Without a new record, the primary survives and is not archived.
        let p =
            parse(r#"[{"subscriptionType":"deal.merge","objectId":10,"primaryObjectId":10,"mergedObjectIds":[11]}]"#);
        let (merged, survivor) = (vec!["11".to_owned()], "10".to_owned());
        assert_eq!(p.merges, vec![Merge { kind: ObjectKind::Deals, merged, survivor, occurred_at: None }]);
    }

    #[test]
    fn privacy_deletion_whichever_event_comes_first() {
        let p = parse(
            r#"[{"subscriptionType":"contact.privacyDeletion","objectId":7,"changeSource":"GDPR"},
                {"subscriptionType":"contact.deletion","objectId":8,"changeSource":"GDPR"},
                {"subscriptionType":"contact.deletion","objectId":9,"changeSource":"CRM_UI"}]"#,
        );
        assert_eq!(p.privacy, ["7", "8"]);
        assert_eq!(p.deletions.len(), 1);
        assert!(p.writes());
    }

    #[test]
    fn unknown_and_incomplete_events_are_counted() {
        let p = parse(
            r#"[{"subscriptionType":"conversation.newMessage","objectId":1},
                {"subscriptionType":"company.creation","objectId":2},
                {"subscriptionType":"contact.creation"},
                {"eventType":"deal.creation","objectId":3},
                {"subscriptionType":"nodot"}, {}]"#,
        );
        assert_eq!(fetched(&p), vec![(ObjectKind::Deals, "3".into())]);
        assert_eq!(p.ignored, 5);
    }

    #[test]
    fn generic_events_carry_their_type_category_and_time() {
        let p = parse(
            r#"[{"subscriptionType":"object.associationChange","objectTypeId":"0-48","objectId":80,
                 "fromObjectTypeId":"0-48","fromObjectId":80,"toObjectTypeId":"0-1","toObjectId":"5",
                 "associationTypeId":"194","associationCategory":"USER_DEFINED","associationRemoved":"true",
                 "occurredAt":1700000000000}]"#,
        );
        let change = &p.edges[0];
        assert_eq!(change.edge.type_id, 194);
        assert_eq!(change.edge.category, "USER_DEFINED");
        assert!(change.removed);
        assert_eq!(change.at.timestamp_millis(), 1_700_000_000_000);
    }
}

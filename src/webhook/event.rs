//! HubSpot webhook events (docs/hubspot.md §2) -> what to do about them.
//!
//! Classic `contact.*` and `deal.*` events name their object by prefix; generic `object.*`
//! events by `objectTypeId` (`0-1` contacts, `0-3` deals, `0-48` calls). Creation, property
//! change, restore and association change ask for a fetch; deletion archives without a fetch;
//! merge archives the merged-away ids (and a superseded primary) with a pointer to the survivor
//! and fetches the survivor; privacy deletion (or a deletion whose `changeSource` is `GDPR`,
//! whichever of the pair arrives first) removes the contact's personal data. Everything else is
//! counted as ignored, never refused.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::kind::ObjectKind;

/// One event, read leniently: every field optional, ids as numbers or strings.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct RawEvent {
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
    #[serde(deserialize_with = "id::opt")]
    pub from_object_id: Option<String>,
}

/// A merge: `merged` (and a superseded primary) now point at `survivor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merge {
    pub kind: ObjectKind,
    pub merged: Vec<String>,
    pub survivor: String,
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
    /// Ids to fetch (queued).
    pub fetch: Vec<(ObjectKind, String)>,
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
        !(self.deletions.is_empty() && self.merges.is_empty() && self.privacy.is_empty())
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
    let Some(subscription) = event.subscription_type.as_deref().or(event.event_type.as_deref()) else {
        return false;
    };
    let Some((prefix, action)) = subscription.split_once('.') else { return false };
    let Some(kind) = kind_of(prefix, event.object_type_id.as_deref()) else { return false };
    let object_id = event.object_id.clone();
    match action {
        "creation" | "propertyChange" | "restore" => push_fetch(plan, kind, object_id),
        "associationChange" => push_fetch(plan, kind, object_id.or(event.from_object_id)),
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
            plan.fetch.push((kind, survivor.clone()));
            plan.merges.push(Merge { kind, merged, survivor });
            true
        }
        _ => false,
    }
}

fn push_fetch(plan: &mut Plan, kind: ObjectKind, id: Option<String>) -> bool {
    id.map(|id| plan.fetch.push((kind, id))).is_some()
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
            (ObjectKind::Contacts, "4".to_owned()),
        ];
        assert_eq!(p.fetch, want);
        assert_eq!(p.ignored, 0);
        assert!(!p.writes());
    }

    #[test]
    fn generic_events_by_object_type_id() {
        let p = parse(
            r#"[{"subscriptionType":"object.creation","objectTypeId":"0-1","objectId":1},
                {"subscriptionType":"object.creation","objectTypeId":"0-3","objectId":2},
                {"subscriptionType":"object.creation","objectTypeId":"0-2","objectId":3},
                {"subscriptionType":"object.creation","objectId":4}]"#,
        );
        assert_eq!(p.fetch, vec![(ObjectKind::Contacts, "1".into()), (ObjectKind::Deals, "2".into())]);
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
        assert_eq!(p.fetch, vec![(ObjectKind::Contacts, "20".into())]);
        let merged = vec!["10".to_owned(), "11".into(), "12".into()];
        assert_eq!(p.merges, vec![Merge { kind: ObjectKind::Contacts, merged, survivor: "20".into() }]);
        // Without a new record, the primary survives and is not archived.
        let p =
            parse(r#"[{"subscriptionType":"deal.merge","objectId":10,"primaryObjectId":10,"mergedObjectIds":[11]}]"#);
        assert_eq!(p.merges, vec![Merge { kind: ObjectKind::Deals, merged: vec!["11".into()], survivor: "10".into() }]);
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
        assert_eq!(p.fetch, vec![(ObjectKind::Deals, "3".into())]);
        assert_eq!(p.ignored, 5);
    }
}

//! CRM search: filter groups (ORed) of filters (ANDed), one sort, offset paging capped at 10,000.
//!
//! Each filter group is driven by an index: the range its filters put on `hs_object_id`, the
//! create date or the last-modified date selects candidates from an ordered index, and only
//! those candidates are checked against the group's other filters. A group with no such filter
//! (only NEQ / NOT_IN / HAS_PROPERTY or filters on ordinary properties) scans live records.
//! Archived and merged-away records are never in the indexes, so never returned.
//!
//! Index lag: a search sees only records whose last change is at or before its `visible_until`
//! (now minus the configured lag); a record changed since is neither matched nor returned until
//! the index catches up, as HubSpot's search trails writes by a few seconds.

use crate::data::{Derived, ObjectKind, ObjectStore, Record};
use crate::errors::ApiError;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeSet;

pub const MAX_LIMIT: i64 = 200;
pub const MAX_RESULTS: usize = 10_000;

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SearchRequest {
    pub filter_groups: Vec<FilterGroup>,
    pub sorts: Vec<Sort>,
    pub properties: Vec<String>,
    pub limit: Option<i64>,
    pub after: Option<Value>,
    pub query: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct FilterGroup {
    pub filters: Vec<Filter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Filter {
    pub property_name: String,
    pub operator: String,
    pub value: Option<Value>,
    pub high_value: Option<Value>,
    pub values: Option<Vec<Value>>,
}

/// A sort as the docs write it (`{propertyName, direction}`) or as the OpenAPI spec types it (a
/// string, `-name` for descending).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Sort {
    Object {
        #[serde(rename = "propertyName")]
        property_name: String,
        #[serde(default)]
        direction: Option<String>,
    },
    Name(String),
}

/// One page of matching ids.
#[derive(Debug)]
pub struct SearchPage {
    pub total: usize,
    pub ids: Vec<u64>,
    pub next_after: Option<usize>,
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::Validation(msg.into())
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses a datetime filter value: epoch ms, RFC 3339, or a `YYYY-MM-DD` date.
fn parse_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(n);
    }
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_millis())
}

#[derive(Debug, Clone)]
enum Target {
    Derived(Derived),
    Stored(usize),
}

#[derive(Debug)]
struct Compiled {
    target: Target,
    op: String,
    nums: Vec<i64>,
    strs: Vec<String>,
}

fn compile(kind: ObjectKind, f: &Filter) -> Result<Compiled, ApiError> {
    let op = f.operator.to_ascii_uppercase();
    let mut raw: Vec<String> = Vec::new();
    match op.as_str() {
        "EQ" | "NEQ" | "GT" | "GTE" | "LT" | "LTE" | "CONTAINS_TOKEN" | "NOT_CONTAINS_TOKEN" => {
            raw.push(
                f.value
                    .as_ref()
                    .map(text)
                    .ok_or_else(|| bad(format!("Filter on {} with operator {op} requires a value", f.property_name)))?,
            );
        }
        "BETWEEN" => {
            raw.push(f.value.as_ref().map(text).ok_or_else(|| bad("BETWEEN requires value"))?);
            raw.push(f.high_value.as_ref().map(text).ok_or_else(|| bad("BETWEEN requires highValue"))?);
        }
        "IN" | "NOT_IN" => {
            raw = f.values.as_ref().ok_or_else(|| bad(format!("{op} requires values")))?.iter().map(text).collect();
        }
        "HAS_PROPERTY" | "NOT_HAS_PROPERTY" => {}
        other => return Err(bad(format!("Unsupported operator: {other}"))),
    }
    let target = match (kind.derived(&f.property_name), kind.prop_index(&f.property_name)) {
        (Some(d), _) => Target::Derived(d),
        (None, Some(i)) => Target::Stored(i),
        (None, None) => {
            return Err(bad(format!(
                "There was a problem with the request. Property \"{}\" does not exist",
                f.property_name
            )));
        }
    };
    let nums = match target {
        Target::Derived(d) => raw
            .iter()
            .map(|s| match d {
                Derived::Id => s.trim().parse::<i64>().ok(),
                _ => parse_ms(s),
            })
            .collect::<Option<Vec<i64>>>()
            .ok_or_else(|| bad(format!("Invalid value for {}: use epoch milliseconds", f.property_name)))?,
        Target::Stored(_) => Vec::new(),
    };
    let strs = raw.iter().map(|s| s.to_lowercase()).collect();
    Ok(Compiled { target, op, nums, strs })
}

fn derived_value(rec: &Record, d: Derived) -> i64 {
    match d {
        Derived::Id => rec.id as i64,
        Derived::Created => rec.created_ms,
        Derived::Updated => rec.updated_ms,
    }
}

fn matches(rec: &Record, c: &Compiled) -> bool {
    match c.target {
        Target::Derived(d) => {
            let v = derived_value(rec, d);
            let n = &c.nums;
            match c.op.as_str() {
                "EQ" => v == n[0],
                "NEQ" => v != n[0],
                "GT" => v > n[0],
                "GTE" => v >= n[0],
                "LT" => v < n[0],
                "LTE" => v <= n[0],
                "BETWEEN" => v >= n[0] && v <= n[1],
                "IN" => n.contains(&v),
                "NOT_IN" => !n.contains(&v),
                "HAS_PROPERTY" | "CONTAINS_TOKEN" => true,
                _ => false,
            }
        }
        Target::Stored(i) => {
            let v = rec.raw(i).map(|s| s.to_lowercase());
            let s = &c.strs;
            match (c.op.as_str(), v) {
                ("HAS_PROPERTY", v) => v.is_some(),
                ("NOT_HAS_PROPERTY", v) => v.is_none(),
                ("EQ", Some(v)) => v == s[0],
                ("NEQ", v) => v.as_deref() != Some(s[0].as_str()),
                ("IN", Some(v)) => s.contains(&v),
                ("NOT_IN", v) => v.is_none_or(|v| !s.contains(&v)),
                ("CONTAINS_TOKEN", Some(v)) => v.contains(s[0].trim_matches('*')),
                ("NOT_CONTAINS_TOKEN", v) => v.is_none_or(|v| !v.contains(s[0].trim_matches('*'))),
                ("GT", Some(v)) => v > s[0],
                ("GTE", Some(v)) => v >= s[0],
                ("LT", Some(v)) => v < s[0],
                ("LTE", Some(v)) => v <= s[0],
                ("BETWEEN", Some(v)) => v >= s[0] && v <= s[1],
                _ => false,
            }
        }
    }
}

/// The (lo, hi) range a group's filters put on one derived property, if any.
fn range_for(filters: &[Compiled], d: Derived) -> Option<(i64, i64)> {
    let mut lo = i64::MIN;
    let mut hi = i64::MAX;
    let mut any = false;
    for c in filters {
        if !matches!(c.target, Target::Derived(x) if x == d) {
            continue;
        }
        let n = &c.nums;
        match c.op.as_str() {
            "EQ" => (lo, hi) = (lo.max(n[0]), hi.min(n[0])),
            "GT" => lo = lo.max(n[0].saturating_add(1)),
            "GTE" => lo = lo.max(n[0]),
            "LT" => hi = hi.min(n[0].saturating_sub(1)),
            "LTE" => hi = hi.min(n[0]),
            "BETWEEN" => (lo, hi) = (lo.max(n[0]), hi.min(n[1])),
            "IN" => {
                (lo, hi) = (
                    lo.max(n.iter().copied().min().unwrap_or(i64::MAX)),
                    hi.min(n.iter().copied().max().unwrap_or(i64::MIN)),
                )
            }
            _ => continue,
        }
        any = true;
    }
    any.then_some((lo, hi))
}

/// Candidate ids for one group, from the narrowest usable index.
fn candidates(store: &ObjectStore, filters: &[Compiled]) -> Vec<u64> {
    let ranges = [Derived::Id, Derived::Updated, Derived::Created].map(|d| (d, range_for(filters, d)));
    let chosen = ranges.iter().find_map(|(d, r)| r.map(|r| (*d, r)));
    match chosen {
        Some((_, (lo, hi))) if lo > hi => Vec::new(),
        Some((Derived::Id, (lo, hi))) => store.live.range(lo.max(0) as u64..=hi.max(0) as u64).copied().collect(),
        Some((Derived::Updated, (lo, hi))) => store.by_updated.range((lo, 0)..=(hi, u64::MAX)).map(|x| x.1).collect(),
        Some((Derived::Created, (lo, hi))) => store.by_created.range((lo, 0)..=(hi, u64::MAX)).map(|x| x.1).collect(),
        None => store.live.iter().copied().collect(),
    }
}

/// The lowest id above which a search asks for records (its `hs_object_id` `GT` or `GTE`
/// filters), if it names one.
pub fn ids_above(req: &SearchRequest) -> Option<u64> {
    req.filter_groups
        .iter()
        .flat_map(|g| &g.filters)
        .filter(|f| {
            f.property_name == "hs_object_id" && matches!(f.operator.to_ascii_uppercase().as_str(), "GT" | "GTE")
        })
        .filter_map(|f| f.value.as_ref().map(text).and_then(|v| v.trim().parse::<u64>().ok()))
        .min()
}

/// Runs a search against live records last changed at or before `visible_until` (epoch ms;
/// `i64::MAX` when the index does not lag).
pub fn run(store: &ObjectStore, req: &SearchRequest, visible_until: i64) -> Result<SearchPage, ApiError> {
    let kind = store.kind;
    if req.query.as_deref().is_some_and(|q| !q.trim().is_empty()) {
        return Err(bad("hubspot-sim does not support full-text \"query\" searches"));
    }
    if req.filter_groups.len() > 5 {
        return Err(bad("Request is invalid: a maximum of 5 filterGroups is allowed"));
    }
    let total_filters: usize = req.filter_groups.iter().map(|g| g.filters.len()).sum();
    if req.filter_groups.iter().any(|g| g.filters.len() > 6) || total_filters > 18 {
        return Err(bad("Request is invalid: at most 6 filters per group and 18 filters in total are allowed"));
    }
    if req.sorts.len() > 1 {
        return Err(bad("Request is invalid: only one sort is allowed"));
    }
    let limit = req.limit.unwrap_or(10);
    if !(0..=MAX_LIMIT).contains(&limit) {
        return Err(bad(format!("Request is invalid: limit must be between 0 and {MAX_LIMIT}, got {limit}")));
    }
    let limit = limit as usize;
    let after = match &req.after {
        None | Some(Value::Null) => 0,
        Some(v) => {
            let t = text(v);
            if t.trim().is_empty() {
                0
            } else {
                t.trim().parse::<usize>().map_err(|_| bad(format!("Invalid after: {t}")))?
            }
        }
    };
    if after + limit > MAX_RESULTS {
        return Err(bad(format!(
            "There was a problem with the request. Search results are limited to {MAX_RESULTS}: after ({after}) + limit ({limit}) exceeds it"
        )));
    }
    let groups = req
        .filter_groups
        .iter()
        .map(|g| g.filters.iter().map(|f| compile(kind, f)).collect::<Result<Vec<_>, _>>())
        .collect::<Result<Vec<_>, _>>()?;
    let indexed = |id: &u64| store.records.get(id).is_some_and(|r| r.updated_ms <= visible_until);
    let mut hits: Vec<u64> = if groups.is_empty() {
        store.live.iter().copied().filter(indexed).collect()
    } else {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for g in &groups {
            for id in candidates(store, g) {
                let Some(rec) = store.records.get(&id) else { continue };
                if rec.updated_ms <= visible_until
                    && g.iter().all(|c| matches(rec, c))
                    && (groups.len() == 1 || seen.insert(id))
                {
                    out.push(id);
                }
            }
        }
        out
    };
    let (prop, desc) = match req.sorts.first() {
        Some(Sort::Object { property_name, direction }) => {
            (property_name.clone(), direction.as_deref().is_some_and(|d| d.eq_ignore_ascii_case("DESCENDING")))
        }
        Some(Sort::Name(n)) => match n.strip_prefix('-') {
            Some(n) => (n.to_string(), true),
            None => (n.clone(), false),
        },
        None => ("createdate".to_string(), false),
    };
    if let Some(d) = kind.derived(&prop) {
        let mut keyed: Vec<(i64, u64)> =
            hits.iter().filter_map(|id| store.records.get(id).map(|r| (derived_value(r, d), *id))).collect();
        keyed.sort_unstable();
        if desc {
            keyed.reverse();
        }
        hits = keyed.into_iter().map(|x| x.1).collect();
    } else if let Some(i) = kind.prop_index(&prop) {
        let mut keyed: Vec<(Option<String>, u64)> =
            hits.iter().filter_map(|id| store.records.get(id).map(|r| (r.raw(i), *id))).collect();
        keyed.sort();
        if desc {
            keyed.reverse();
        }
        hits = keyed.into_iter().map(|x| x.1).collect();
    } else {
        return Err(bad(format!("Cannot sort by unknown property \"{prop}\"")));
    }
    let total = hits.len();
    let ids: Vec<u64> = hits.into_iter().skip(after).take(limit).collect();
    let next = after + limit;
    Ok(SearchPage { total, ids, next_after: (next < total).then_some(next) })
}

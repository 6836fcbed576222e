//! The comparison itself, a pure function: HubSpot's live ids with their `updatedAt` against the
//! stored rows.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::store::audit::StoredRow;

/// HubSpot's live ids with their `updatedAt`, as the audit listed them.
pub type Listing = HashMap<String, DateTime<Utc>>;

/// The ids that differ, each list sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Live in HubSpot; absent or archived here.
    pub missing: Vec<String>,
    /// Live here; not live in HubSpot.
    pub extra: Vec<String>,
    /// Live in both; older here.
    pub stale: Vec<String>,
}

impl Drift {
    pub fn total(&self) -> usize {
        self.missing.len() + self.extra.len() + self.stale.len()
    }

    /// Every id that differs, once, sorted.
    pub fn ids(&self) -> Vec<String> {
        let all: BTreeSet<&String> = self.missing.iter().chain(&self.extra).chain(&self.stale).collect();
        all.into_iter().cloned().collect()
    }
}

/// Which rows the comparison looks at.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Every id, except rows written at or after this moment (the audit's start): they were
    /// written from a HubSpot answer newer than the listing, which they may rightly disagree
    /// with (a record created or deleted while the audit listed).
    Everything { since: DateTime<Utc> },
    /// Only these ids (sorted), however recently written: the check after a repair.
    Only(&'a [String]),
}

/// Compares the listing with the stored rows.
pub fn compare(listed: &Listing, stored: &[StoredRow], scope: Scope<'_>) -> Drift {
    let in_scope = |id: &str, synced_at: Option<DateTime<Utc>>, updated_at: Option<DateTime<Utc>>| match scope {
        Scope::Everything { since } => synced_at.is_none_or(|t| t < since) && updated_at.is_none_or(|t| t < since),
        Scope::Only(ids) => ids.binary_search_by(|probe| probe.as_str().cmp(id)).is_ok(),
    };
    let by_id: HashMap<&str, &StoredRow> = stored.iter().map(|r| (r.id.as_str(), r)).collect();
    let mut drift = Drift::default();
    for (id, hubspot_updated) in listed {
        match by_id.get(id.as_str()) {
            None if in_scope(id, None, None) => drift.missing.push(id.clone()),
            None => {}
            Some(row) if !in_scope(id, Some(row.synced_at), None) => {}
            Some(row) if row.archived && !row.filtered => drift.missing.push(id.clone()),
            Some(row) if row.updated_at.is_some_and(|here| here < *hubspot_updated) => drift.stale.push(id.clone()),
            Some(_) => {}
        }
    }
    for row in stored {
        if !row.archived && !listed.contains_key(&row.id) && in_scope(&row.id, Some(row.synced_at), row.updated_at) {
            drift.extra.push(row.id.clone());
        }
    }
    drift.missing.sort();
    drift.extra.sort();
    drift.stale.sort();
    drift
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + s, 0).single().unwrap()
    }

    fn row(id: &str, updated: i64, archived: bool, synced: i64) -> StoredRow {
        StoredRow { id: id.into(), updated_at: Some(t(updated)), archived, synced_at: t(synced), filtered: false }
    }

    fn listing(pairs: &[(&str, i64)]) -> Listing {
        pairs.iter().map(|(id, s)| ((*id).to_owned(), t(*s))).collect()
    }

    #[test]
    fn each_kind_of_drift() {
        let listed = listing(&[("1", 10), ("2", 10), ("3", 10), ("4", 10), ("6", 10)]);
        let stored = vec![
            row("1", 10, false, 50), // equal: fine
            row("2", 5, false, 50),  // older here: stale
            row("3", 10, true, 50),  // archived here: missing
            row("5", 10, false, 50), // not in HubSpot: extra
            row("7", 10, true, 50),  // archived in both: fine
            row("6", 20, false, 50), // newer here (a change after the listing): fine
        ];
        let drift = compare(&listed, &stored, Scope::Everything { since: t(100) });
        assert_eq!(drift.missing, ["3", "4"]);
        assert_eq!(drift.extra, ["5"]);
        assert_eq!(drift.stale, ["2"]);
        assert_eq!(drift.total(), 4);
        assert_eq!(drift.ids(), ["2", "3", "4", "5"]);
    }

    #[test]
    fn rows_outside_the_filter_are_not_missing() {
        let listed = listing(&[("1", 10), ("2", 10)]);
        let filtered = |id: &str, updated: i64| StoredRow { filtered: true, ..row(id, updated, true, 50) };
        let stored = vec![filtered("1", 10), filtered("2", 5)];
        let drift = compare(&listed, &stored, Scope::Everything { since: t(100) });
        assert!(drift.missing.is_empty(), "{drift:?}");
        assert_eq!(drift.stale, ["2"], "an older version is read again (it may have moved in)");
    }

    #[test]
    fn rows_written_during_the_audit_are_not_drift() {
        let listed = listing(&[("1", 10), ("2", 10)]);
        // 1 was archived by a deletion webhook, 3 created, while the audit listed.
        let stored = vec![row("1", 10, true, 150), row("2", 10, false, 50), row("3", 120, false, 150)];
        assert_eq!(compare(&listed, &stored, Scope::Everything { since: t(100) }), Drift::default());
        // The check after a repair looks at the ids it repaired, however fresh.
        let only = ["1".to_owned(), "3".to_owned()];
        let drift = compare(&listed, &stored, Scope::Only(&only));
        assert_eq!(drift.missing, ["1"]);
        assert_eq!(drift.extra, ["3"]);
    }

    #[test]
    fn an_owner_without_updated_at_is_not_stale() {
        let listed = listing(&[("9", 10)]);
        let stored =
            vec![StoredRow { id: "9".into(), updated_at: None, archived: false, synced_at: t(0), filtered: false }];
        assert_eq!(compare(&listed, &stored, Scope::Everything { since: t(100) }), Drift::default());
    }
}

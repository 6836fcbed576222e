//! The webhook event parser on hostile bodies: any bytes (non-UTF-8, truncated, deeply nested,
//! huge numbers, wrong types) either fail to parse (400) or become a plan, without a panic; every
//! parsed event is accounted for exactly once, and no planned id is empty.
#![no_main]

use hubspot_sync::webhook::event::{RawEvent, plan};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(events) = serde_json::from_slice::<Vec<RawEvent>>(data) else { return };
    let count = events.len();
    let plan = plan(events);
    let fetched_for_merges = plan.merges.len();
    assert_eq!(
        plan.fetch.len() - fetched_for_merges
            + plan.deletions.len()
            + plan.merges.len()
            + plan.privacy.len()
            + plan.association_events
            + plan.ignored,
        count,
        "every event is planned or ignored exactly once: {plan:?}"
    );
    let ids = plan
        .fetch
        .iter()
        .map(|c| &c.id)
        .chain(plan.fetch_associated.iter().map(|(_, id)| id))
        .chain(plan.deletions.iter().map(|d| &d.id))
        .chain(plan.privacy.iter())
        .chain(plan.merges.iter().flat_map(|m| m.merged.iter().chain([&m.survivor])));
    for id in ids {
        assert!(!id.trim().is_empty() && id.trim() == id, "planned id {id:?}");
    }
    for merge in &plan.merges {
        assert!(!merge.merged.contains(&merge.survivor), "{merge:?}");
    }
});

//! The poller against two of HubSpot's harsher habits the simulator now has (issue 13): a search
//! index that trails writes by a few seconds, and portals with several hundred properties per
//! object. Each ends with zero differences against the simulator's export.

use std::collections::BTreeMap;

use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Mode, Poller, RunStatus, Trigger};

use crate::harness::compare::{self, Merges};
use crate::harness::hubspot::{client, poller};
use crate::harness::{PATIENCE, TestDb, eventually};

async fn start(contacts: usize, deals: usize, calls: usize, search_lag_ms: u64, extra_properties: usize) -> SimHandle {
    Sim::start(SimOptions {
        contacts,
        deals,
        calls,
        owners: 7,
        workers: 2,
        search_lag_ms,
        extra_properties,
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

async fn run(poller: &Poller, kind: ObjectKind, mode: Mode) -> RunStatus {
    poller.run(kind, mode, Trigger::Manual).await.unwrap().status
}

/// Changes made less than the index lag before an incremental run are invisible to its search;
/// the next run's overlap must still find them: nothing the lagging index hid is lost.
#[tokio::test]
async fn changes_hidden_by_search_index_lag_are_caught_by_a_later_incremental_run() {
    let (db, sim) = (TestDb::new().await, start(250, 0, 0, 3_000, 0).await);
    let poller = poller(&db, client(&sim));
    assert_eq!(run(&poller, ObjectKind::Contacts, Mode::Full).await, RunStatus::Success);
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;

    let churn =
        sim.churn(&ChurnRequest { object: "contacts".into(), creates: 12, updates: 25, ..Default::default() }).unwrap();
    assert_eq!((churn.created.len(), churn.updated.len()), (12, 25));
    // At once: the search index does not have these changes yet (unless this machine took longer
    // than the lag to get here, which the test does not depend on). The run must not fail.
    assert_eq!(run(&poller, ObjectKind::Contacts, Mode::Incremental).await, RunStatus::Success);

    // Once the index has caught up, incremental runs alone bring the copy to zero differences.
    eventually(PATIENCE, "incremental runs converge once the search index caught up", || async {
        assert_eq!(run(&poller, ObjectKind::Contacts, Mode::Incremental).await, RunStatus::Success);
        compare::all_differences(&db, &sim, Merges::Archived, false).await.is_empty()
    })
    .await;
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;
    assert_eq!(db.count("SELECT count(*) FROM sync_logs WHERE status <> 'success'").await, 0);
}

/// A portal with 400 custom properties per object: the full sync discovers and stores every one
/// of them in `properties`, with no 414 from over-long URLs and no failed run.
#[tokio::test]
async fn a_full_sync_stores_every_one_of_several_hundred_properties() {
    let (db, sim) = (TestDb::new().await, start(150, 60, 90, 0, 400).await);
    let poller = poller(&db, client(&sim));
    for kind in [ObjectKind::Owners, ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls] {
        assert_eq!(run(&poller, kind, Mode::Full).await, RunStatus::Success, "{kind}");
    }
    assert_eq!(sim.stats()["responses_414"], 0, "{}", sim.stats());
    assert_eq!(db.count("SELECT count(*) FROM sync_logs WHERE status <> 'success'").await, 0);
    // `compare` checks every string property of every live record, the 400 extra ones included.
    compare::assert_converged(&db, &sim, Merges::Archived, true).await;

    // And directly: the jsonb of a few records holds exactly the export's extra properties.
    for kind in compare::RECORD_KINDS {
        let stored = compare::rows(&db, kind).await;
        let export = sim.export_json(kind.as_str());
        let live: Vec<_> = export.iter().filter(|l| l["archived"] == false).take(5).collect();
        assert!(!live.is_empty(), "{kind}");
        for line in live {
            let id = line["id"].as_str().unwrap();
            let want: BTreeMap<&str, &str> = line["properties"]
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, _)| k.starts_with("portal_custom_field_"))
                .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
                .collect();
            assert!(want.len() > 100, "{kind} {id}: about half of 400 set, got {}", want.len());
            let got: BTreeMap<&str, &str> = stored[id]
                .properties
                .iter()
                .filter(|(k, _)| k.starts_with("portal_custom_field_"))
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            assert_eq!(got, want, "{kind} {id}");
        }
    }
}

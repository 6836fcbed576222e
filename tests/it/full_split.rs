//! Issue 21: a full pass that reads list pages from the bottom of the id space and search pages
//! (200 records, `hs_object_id` ranges) from the top converges with zero differences on an account
//! where more than 10,000 records share one last-modified time, through a page that fails
//! mid-pass and the resumed pass after it: no range skipped, none read twice.

use std::time::Duration;

use hubspot_sim::{ChurnRequest, FaultConfig, Sim, SimOptions};
use hubspot_sync::config::ApiVersion;
use hubspot_sync::hubspot::{ClientOptions, HubSpot};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::poller::{Mode, RunStatus, Trigger};
use hubspot_sync::store::sync_state;

use crate::harness::TestDb;
use crate::harness::compare::{self, Merges};
use crate::harness::hubspot::{fast_options, poller, settings};

#[tokio::test]
async fn a_split_full_pass_with_a_failing_page_resumes_and_converges_past_the_search_cap() {
    let db = TestDb::new().await;
    let sim = Sim::start(SimOptions {
        contacts: 10_800,
        deals: 0,
        calls: 0,
        owners: 2,
        search_per_second: 25,
        workers: 2,
        ..SimOptions::default()
    })
    .await
    .unwrap();
    let report =
        sim.churn(&ChurnRequest { object: "contacts".into(), bulk_updates: 10_300, ..Default::default() }).unwrap();
    assert_eq!(report.bulk_updated.len(), 10_300, "more than 10,000 records share one timestamp");
    // 100 requests per second and 25 searches: searches should carry 40% of the records.
    let options = ClientOptions { searches_per_second: 25, ..fast_options(Duration::from_secs(1)) };
    let hubspot = HubSpot::with_options(&settings(&sim, 100, ApiVersion::V3), options).unwrap();
    assert!((0.3..0.5).contains(&hubspot.search_share()), "{}", hubspot.search_share());
    let poller = poller(&db, hubspot);
    let live: Vec<u64> = sim
        .export_json("contacts")
        .iter()
        .filter(|l| l["archived"] == false && !l["mergedInto"].is_string())
        .map(|l| l["id"].as_str().unwrap().parse().unwrap())
        .collect();

    // A list page and the search pages high in the id space never load: the pass fails midway.
    let faults = FaultConfig {
        status: 502,
        fail_list_after: Some(live[3_000]),
        fail_search_after: Some(live[live.len() * 3 / 4]),
        ..FaultConfig::default()
    };
    sim.set_faults(faults).unwrap();
    let cut = poller.run(ObjectKind::Contacts, Mode::Full, Trigger::Manual).await.unwrap();
    assert_eq!(cut.status, RunStatus::Failed, "{cut:?}");
    let mut conn = db.conn().await;
    let state = sync_state::get(&mut conn, "contacts").await.unwrap().unwrap();
    let cursor = state.full_cursor.clone().expect("the interrupted pass keeps its checkpoint");
    assert!(cursor.starts_with("split:") && cursor.contains("\"boundary\":"), "{cursor}");
    let stats = sim.stats();
    assert!(stats["operations"]["contacts.search"].as_u64().unwrap() > 1, "{stats}");
    assert!(stats["operations"]["contacts.list"].as_u64().unwrap() > 1, "{stats}");
    let stored = |client: tokio_postgres::Client| async move {
        client.query_one("SELECT count(*) FROM contacts", &[]).await.unwrap().get::<_, i64>(0) as u64
    };
    assert_eq!(stored(db.client().await).await, cut.records_processed, "every record of the cut pass once");

    // The resumed pass (an incremental run resumes it) reads only what is left.
    sim.set_faults(FaultConfig::default()).unwrap();
    let searches_before = sim.stats()["operations"]["contacts.search"].as_u64().unwrap();
    let resumed = poller.run(ObjectKind::Contacts, Mode::Incremental, Trigger::Manual).await.unwrap();
    assert_eq!((resumed.mode, resumed.status), (Mode::Full, RunStatus::Success), "{resumed:?}");
    assert!(sim.stats()["operations"]["contacts.search"].as_u64().unwrap() > searches_before, "searches resumed");
    let rows = stored(db.client().await).await;
    assert_eq!(rows, cut.records_processed + resumed.records_processed, "no record read twice, none skipped");
    let state = sync_state::get(&mut conn, "contacts").await.unwrap().unwrap();
    assert_eq!(state.full_cursor, None, "the pass is closed");
    compare::assert_converged(&db, &sim, Merges::Archived, false).await;
    let shared: i64 = db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM contacts WHERE updated_at = $1::text::timestamptz",
            &[&report.bulk_timestamp.clone().unwrap()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(shared, 10_300, "the records sharing one timestamp are all stored");
}

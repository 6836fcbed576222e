//! The store against a real PostgreSQL: last-modified-wins upserts, archiving, privacy deletion,
//! owner history, watermarks, sync_logs and the SQL functions.

use chrono::{DateTime, Duration, TimeZone, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use hubspot_sync::store::calls::{self, CallRow};
use hubspot_sync::store::contacts::{self, ContactRow};
use hubspot_sync::store::deals::{self, DealRow, DealStatus};
use hubspot_sync::store::records::{self, RecordTable};
use hubspot_sync::store::schema;
use hubspot_sync::store::staff::{self, StaffRow};
use hubspot_sync::store::sync_logs::{self, RunMode, RunOutcome, RunStatus, RunTrigger};
use hubspot_sync::store::sync_state;
use hubspot_sync::store::webhook_replay::{self, DELIVERY_RETENTION, LegacyCheck};
use serde_json::json;

use crate::harness::TestDb;

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + secs, 0).single().unwrap()
}

fn contact(id: &str, updated: i64, owner: Option<&str>, first: &str) -> ContactRow {
    ContactRow {
        hubspot_contact_id: id.to_owned(),
        email: Some(format!("{id}@example.com")),
        first_name: Some(first.to_owned()),
        last_name: Some("Müller".to_owned()),
        phone: None,
        owner_id: owner.map(str::to_owned),
        lifecycle_stage: Some("lead".to_owned()),
        status: Some("NEW".to_owned()),
        created_at: Some(at(0)),
        updated_at: at(updated),
        archived: false,
        properties: json!({ "firstname": first, "custom_score": "7" }),
    }
}

type Stored = (String, Option<String>, Option<String>, DateTime<Utc>, bool, Option<String>);

async fn stored(conn: &mut AsyncPgConnection, id: &str) -> Option<Stored> {
    use schema::contacts::dsl as c;
    c::contacts
        .select((c::hubspot_contact_id, c::first_name, c::owner_id, c::updated_at, c::archived, c::merged_into))
        .filter(c::hubspot_contact_id.eq(id))
        .first(conn)
        .await
        .optional()
        .unwrap()
}

#[tokio::test]
async fn newer_updated_at_wins_and_a_stale_batch_never_regresses_a_row() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    assert_eq!(contacts::upsert_batch(&mut conn, vec![contact("1", 10, None, "Zoë")]).await.unwrap(), 1);
    assert_eq!(contacts::upsert_batch(&mut conn, vec![contact("1", 20, None, "Zoé")]).await.unwrap(), 1);
    // A slow fetch that read version 10 arrives last: nothing changes.
    assert_eq!(contacts::upsert_batch(&mut conn, vec![contact("1", 10, None, "Zoë")]).await.unwrap(), 0);
    let row = stored(&mut conn, "1").await.unwrap();
    assert_eq!((row.1.as_deref(), row.3), (Some("Zoé"), at(20)));
    // Within one batch the newest version of an id wins, whatever the order.
    let batch = vec![contact("2", 30, None, "new"), contact("2", 5, None, "old")];
    contacts::upsert_batch(&mut conn, batch).await.unwrap();
    assert_eq!(stored(&mut conn, "2").await.unwrap().1.as_deref(), Some("new"));
}

#[tokio::test]
async fn a_thousand_rows_go_in_one_call_and_properties_keep_every_field() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let rows: Vec<_> = (0..2_500).map(|i| contact(&i.to_string(), 1, Some("77"), "Ann")).collect();
    assert_eq!(contacts::upsert_batch(&mut conn, rows).await.unwrap(), 2_500);
    let custom: Vec<Option<String>> = diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>(
        "SELECT properties->>'custom_score' FROM contacts LIMIT 3",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(custom, vec![Some("7".to_owned()); 3]);

    // The three statements of a call are pipelined: newest-wins holds in every one of them.
    let rows: Vec<_> =
        (0..2_500)
            .map(|i| {
                if i % 2 == 0 { contact(&i.to_string(), 2, None, "Bo") } else { contact(&i.to_string(), 0, None, "Cy") }
            })
            .collect();
    assert_eq!(contacts::upsert_batch(&mut conn, rows).await.unwrap(), 1_250, "only the newer half is written");
    for (id, first) in [("0", "Bo"), ("1", "Ann"), ("1500", "Bo"), ("1501", "Ann"), ("2498", "Bo"), ("2499", "Ann")] {
        assert_eq!(stored(&mut conn, id).await.unwrap().1.as_deref(), Some(first), "contact {id}");
    }
}

#[tokio::test]
async fn archived_rows_stay_archived_until_a_newer_version_arrives() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    contacts::upsert_batch(&mut conn, vec![contact("1", 10, None, "a"), contact("2", 10, None, "b")]).await.unwrap();
    let merged = records::mark_archived(&mut conn, RecordTable::Contacts, &["1".to_owned()], Some("9")).await.unwrap();
    assert_eq!(merged, 1);
    records::mark_archived(&mut conn, RecordTable::Contacts, &["2".to_owned(), "404".to_owned()], None).await.unwrap();
    // A fetch that read the records just before the deletion (same updated_at) does not revive them.
    contacts::upsert_batch(&mut conn, vec![contact("1", 10, None, "a"), contact("2", 10, None, "b")]).await.unwrap();
    assert!(stored(&mut conn, "1").await.unwrap().4);
    assert_eq!(stored(&mut conn, "1").await.unwrap().5.as_deref(), Some("9"));
    assert!(stored(&mut conn, "2").await.unwrap().4);
    assert!(stored(&mut conn, "404").await.is_none(), "unknown ids are not invented");
    // A restore in HubSpot gives a deleted record a newer version: it comes back.
    contacts::upsert_batch(&mut conn, vec![contact("2", 11, None, "b")]).await.unwrap();
    assert!(!stored(&mut conn, "2").await.unwrap().4);
    // A merge cannot be undone in HubSpot, and reading a merged-away id answers with the
    // survivor: a newer version under the old id can only be a read from before the merge that
    // arrived late, so the row stays merged (found by the fault suite: `faults_hubspot`).
    contacts::upsert_batch(&mut conn, vec![contact("1", 11, None, "a")]).await.unwrap();
    let row = stored(&mut conn, "1").await.unwrap();
    assert_eq!((row.4, row.5.as_deref()), (true, Some("9")));
}

#[tokio::test]
async fn privacy_deletion_removes_the_contact_and_no_later_write_brings_it_back() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    contacts::upsert_batch(&mut conn, vec![contact("1", 10, Some("a"), "x"), contact("2", 10, None, "y")])
        .await
        .unwrap();
    contacts::upsert_batch(&mut conn, vec![contact("1", 11, Some("b"), "x")]).await.unwrap();
    assert_eq!(contacts::privacy_delete(&mut conn, &["1".to_owned()]).await.unwrap(), 1);
    // HubSpot sends contact.privacyDeletion and contact.deletion: the second changes nothing.
    assert_eq!(contacts::privacy_delete(&mut conn, &["1".to_owned()]).await.unwrap(), 0);
    assert!(stored(&mut conn, "1").await.is_none());
    assert!(stored(&mut conn, "2").await.is_some(), "other contacts are untouched");
    let history: i64 = schema::contact_owner_history::table.count().get_result(&mut conn).await.unwrap();
    assert_eq!(history, 0, "the owner history of a deleted contact goes too");
    // A fetch that read the contact before the deletion arrives late: still gone.
    assert_eq!(contacts::upsert_batch(&mut conn, vec![contact("1", 99, None, "x")]).await.unwrap(), 0);
    assert!(stored(&mut conn, "1").await.is_none());
}

#[tokio::test]
async fn every_owner_change_is_recorded_once() {
    use schema::contact_owner_history::dsl as h;
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    contacts::upsert_batch(&mut conn, vec![contact("1", 1, Some("10"), "x")]).await.unwrap();
    contacts::upsert_batch(&mut conn, vec![contact("1", 2, Some("10"), "renamed")]).await.unwrap();
    contacts::upsert_batch(&mut conn, vec![contact("1", 3, Some("20"), "x")]).await.unwrap();
    contacts::upsert_batch(&mut conn, vec![contact("1", 4, None, "x")]).await.unwrap();
    contacts::upsert_batch(&mut conn, vec![contact("1", 2, Some("99"), "stale")]).await.unwrap();
    let changes: Vec<(Option<String>, Option<String>, DateTime<Utc>)> = h::contact_owner_history
        .filter(h::hubspot_contact_id.eq("1"))
        .order(h::id)
        .select((h::previous_owner_id, h::new_owner_id, h::changed_at))
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(changes, vec![(Some("10".into()), Some("20".into()), at(3)), (Some("20".into()), None, at(4))]);
}

#[tokio::test]
async fn deals_get_typed_columns_and_tolerate_type_lies() {
    use schema::deals::dsl as d;
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let deal = |id: &str, value: &str, status| DealRow {
        hubspot_deal_id: id.to_owned(),
        deal_name: Some("Renewal".into()),
        deal_value: Some(value.to_owned()),
        stage: Some("closedwon".into()),
        status: Some(status),
        close_date: Some(at(5)),
        closer_id: Some("77".into()),
        pipeline: Some("default".into()),
        created_at: Some(at(0)),
        updated_at: at(1),
        archived: false,
        properties: json!({ "amount": value }),
    };
    let rows = vec![
        deal("1", "1500.50", DealStatus::Won),
        deal("2", "", DealStatus::Open),
        deal("3", "1;2", DealStatus::Lost),
    ];
    assert_eq!(deals::upsert_batch(&mut conn, rows).await.unwrap(), 3);
    let values: Vec<(String, Option<String>, Option<String>)> = d::deals
        .select((
            d::hubspot_deal_id,
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>("deal_value::text"),
            diesel::dsl::sql::<diesel::sql_types::Nullable<diesel::sql_types::Text>>("status::text"),
        ))
        .order(d::hubspot_deal_id)
        .load(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        values,
        vec![
            ("1".into(), Some("1500.50".into()), Some("won".into())),
            ("2".into(), None, Some("open".into())),
            ("3".into(), None, Some("lost".into())),
        ]
    );
}

#[tokio::test]
async fn calls_and_staff_upsert() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let call = CallRow {
        hubspot_call_id: "5".into(),
        title: Some("Intro".into()),
        direction: Some("OUTBOUND".into()),
        disposition: Some("f240bbac-87c9-4f6e-bf70-924b57d47db7".into()),
        status: Some("COMPLETED".into()),
        duration_ms: Some(65_000),
        called_at: Some(at(3)),
        owner_id: Some("77".into()),
        created_at: Some(at(3)),
        updated_at: at(4),
        archived: false,
        properties: json!({}),
    };
    assert_eq!(calls::upsert_batch(&mut conn, vec![call.clone(), call]).await.unwrap(), 1);
    let owner = StaffRow {
        id: "77".into(),
        name: Some("José Núñez".into()),
        email: Some("jose@example.com".into()),
        first_name: Some("José".into()),
        last_name: Some("Núñez".into()),
        user_id: Some(9),
        archived: false,
        created_at: Some(at(0)),
        updated_at: Some(at(1)),
    };
    staff::upsert_batch(&mut conn, std::slice::from_ref(&owner), "coach").await.unwrap();
    diesel::sql_query("UPDATE staff SET role = 'manager'").execute(&mut conn).await.unwrap();
    staff::upsert_batch(&mut conn, &[owner], "coach").await.unwrap();
    let role: String = schema::staff::table.select(schema::staff::role).first(&mut conn).await.unwrap();
    assert_eq!(role, "manager", "a role edited in the database survives the next sync");
}

#[tokio::test]
async fn watermarks_only_move_forward_and_full_sync_checkpoints_resume() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    assert!(sync_state::get(&mut conn, "contacts").await.unwrap().is_none(), "no history");
    assert_eq!(sync_state::advance_watermark(&mut conn, "contacts", at(100)).await.unwrap(), at(100));
    assert_eq!(sync_state::advance_watermark(&mut conn, "contacts", at(50)).await.unwrap(), at(100));
    sync_state::save_full_checkpoint(&mut conn, "deals", Some("cursor-200"), at(7)).await.unwrap();
    let state = sync_state::get(&mut conn, "deals").await.unwrap().unwrap();
    assert_eq!((state.full_cursor.as_deref(), state.full_started_at), (Some("cursor-200"), Some(at(7))));
    sync_state::complete_full_sync(&mut conn, "deals", at(7)).await.unwrap();
    let state = sync_state::get(&mut conn, "deals").await.unwrap().unwrap();
    assert_eq!((state.full_cursor, state.watermark), (None, Some(at(7))));
    assert!(state.full_completed_at.is_some());
}

#[tokio::test]
async fn sync_logs_follow_the_status_rules_and_feed_the_latest_status() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let finish = |processed, failed, fatal: Option<&str>| RunOutcome {
        records_processed: processed,
        records_failed: failed,
        fatal_error: fatal.map(str::to_owned),
        details: failed.gt(&0).then(|| json!({ "failed_ids": ["13"] })),
    };
    let first = sync_logs::start_run(&mut conn, "contacts", RunTrigger::Startup, RunMode::Full).await.unwrap();
    let status = sync_logs::finish_run(&mut conn, first, &finish(120, 0, None)).await.unwrap();
    assert_eq!(status, Some(RunStatus::Success));
    assert_eq!(sync_logs::finish_run(&mut conn, first, &finish(1, 1, None)).await.unwrap(), None, "finished once");
    let second = sync_logs::start_run(&mut conn, "contacts", RunTrigger::Schedule, RunMode::Incremental).await.unwrap();
    assert_eq!(sync_logs::finish_run(&mut conn, second, &finish(10, 2, None)).await.unwrap(), Some(RunStatus::Partial));
    let deals = sync_logs::start_run(&mut conn, "deals", RunTrigger::Manual, RunMode::Incremental).await.unwrap();
    let status = sync_logs::finish_run(&mut conn, deals, &finish(0, 0, Some("HubSpot answered 503 five times"))).await;
    assert_eq!(status.unwrap(), Some(RunStatus::Failed));
    sync_logs::start_run(&mut conn, "calls", RunTrigger::Sql, RunMode::Incremental).await.unwrap();

    let latest = sync_logs::latest_status(&mut conn).await.unwrap();
    let summary: Vec<_> = latest.iter().map(|r| (r.sync_type.as_str(), r.status.as_str(), r.records_failed)).collect();
    assert_eq!(summary, vec![("calls", "running", 0), ("contacts", "partial", 2), ("deals", "failed", 0)]);
    let good = sync_logs::last_good_run(&mut conn, "deals").await.unwrap();
    assert!(good.is_none(), "a failed run is no history to build on");
    let runs = sync_logs::recent(&mut conn, Some("contacts"), 10).await.unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].status, runs[0].trigger, runs[0].mode),
        (RunStatus::Partial, RunTrigger::Schedule, RunMode::Incremental)
    );
    assert_eq!(runs[0].error_details, Some(json!({ "error": null, "details": { "failed_ids": ["13"] } })));
    assert!(runs[1].duration_ms.is_some_and(|ms| ms >= 0));
}

#[tokio::test]
async fn trigger_hubspot_sync_validates_the_type_and_notifies() {
    use futures_util::StreamExt;
    let db = TestDb::new().await;
    let (listener, mut connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls).await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
            }
        }
    });
    listener.batch_execute("LISTEN hubspot_sync").await.unwrap();
    let caller = db.client().await;
    caller.batch_execute("SELECT trigger_hubspot_sync('deals')").await.unwrap();
    let err = caller.batch_execute("SELECT trigger_hubspot_sync('companies')").await.unwrap_err();
    assert!(err.as_db_error().unwrap().message().contains("unknown sync type 'companies'"));
    let (channel, payload) =
        crate::harness::within(crate::harness::PATIENCE, "the NOTIFY arrives", rx.recv()).await.unwrap();
    assert_eq!(channel, "hubspot_sync");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&payload).unwrap(),
        json!({ "sync_type": "deals", "portal_id": null })
    );
}

#[tokio::test]
#[allow(clippy::type_complexity)] // the tuples spell out each table's columns on purpose
async fn schema_module_matches_the_migrated_database() {
    // Reading every column through the diesel schema fails if a name or type drifted.
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    contacts::upsert_batch(&mut conn, vec![contact("1", 1, Some("5"), "x")]).await.unwrap();
    contacts::upsert_batch(&mut conn, vec![contact("1", 2, Some("6"), "x")]).await.unwrap();
    let _: Vec<(
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        bool,
        Option<DateTime<Utc>>,
        Option<String>,
        serde_json::Value,
        DateTime<Utc>,
        i64,
    )> = schema::contacts::table.load(&mut conn).await.unwrap();
    let _: Vec<(i64, String, Option<String>, Option<String>, DateTime<Utc>, DateTime<Utc>, i64)> =
        schema::contact_owner_history::table.load(&mut conn).await.unwrap();
    let _: Vec<(i64, String, Option<String>, Option<String>, DateTime<Utc>, DateTime<Utc>, i64)> =
        schema::deal_owner_history::table.load(&mut conn).await.unwrap();
    let _: Vec<(
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<String>,
        Option<i64>,
        Option<DateTime<Utc>>,
        Option<String>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        bool,
        Option<DateTime<Utc>>,
        Option<String>,
        serde_json::Value,
        DateTime<Utc>,
        i64,
    )> = schema::calls::table.load(&mut conn).await.unwrap();
    let _: Vec<(
        String,
        Option<String>,
        Option<String>,
        String,
        Option<String>,
        Option<String>,
        Option<i64>,
        bool,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        i64,
    )> = schema::staff::table.load(&mut conn).await.unwrap();
    let _: Vec<(String, DateTime<Utc>, i64)> = schema::privacy_deletions::table.load(&mut conn).await.unwrap();
    let _ = sync_logs::recent(&mut conn, None, 1).await.unwrap();
    let _ = sync_state::get(&mut conn, "x").await.unwrap();
    assert_eq!(hubspot_sync::store::accounts::list(&mut conn).await.unwrap().len(), 1, "the default account");
    let columns: Vec<String> = diesel::dsl::sql::<diesel::sql_types::Text>(
        "SELECT table_name || '.' || column_name FROM information_schema.columns \
         WHERE table_schema = 'public' AND table_name = 'deals' ORDER BY ordinal_position",
    )
    .load(&mut conn)
    .await
    .unwrap();
    assert_eq!(columns.len(), 16, "deals has the columns schema.rs declares: {columns:?}");
    let _ = Duration::zero();
}

#[tokio::test]
async fn a_full_pass_archives_only_rows_it_neither_wrote_nor_could_have_missed() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let since = at(100);
    let rows = vec![contact("gone", 10, None, "a"), contact("newer", 150, None, "b"), contact("kept", 10, None, "c")];
    contacts::upsert_batch(&mut conn, rows).await.unwrap();
    contacts::upsert_batch(&mut conn, vec![contact("seen", 10, None, "d")]).await.unwrap();
    // Everything was written "before the pass" except `seen`, which the pass rewrote after `since`.
    diesel::sql_query("UPDATE contacts SET synced_at = $1 WHERE hubspot_contact_id <> 'seen'")
        .bind::<diesel::sql_types::Timestamptz, _>(at(50))
        .execute(&mut conn)
        .await
        .unwrap();
    diesel::sql_query("UPDATE contacts SET synced_at = $1 WHERE hubspot_contact_id = 'seen'")
        .bind::<diesel::sql_types::Timestamptz, _>(at(120))
        .execute(&mut conn)
        .await
        .unwrap();
    let archived =
        records::archive_unseen(&mut conn, RecordTable::Contacts, since, &["kept".to_owned()]).await.unwrap();
    assert_eq!(archived, 1, "only the row the pass did not see");
    assert!(stored(&mut conn, "gone").await.unwrap().4);
    for id in ["newer", "kept", "seen"] {
        assert!(!stored(&mut conn, id).await.unwrap().4, "{id} stays live");
    }
}

#[tokio::test]
async fn webhook_digests_are_kept_once_checked_and_pruned_after_their_retention() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let (a, b) = ([1u8; 32], [2u8; 32]);
    let check = |replayed, v3_seen| LegacyCheck { replayed, v3_seen };
    assert_eq!(webhook_replay::legacy_check(&mut conn, &a).await.unwrap(), check(false, false));
    webhook_replay::record_delivery(&mut conn, &a).await.unwrap();
    webhook_replay::record_delivery(&mut conn, &a).await.unwrap();
    webhook_replay::record_deliveries(&mut conn, &[a, b, b]).await.unwrap();
    webhook_replay::record_deliveries(&mut conn, &[]).await.unwrap();
    assert_eq!(db.count("SELECT count(*) FROM webhook_deliveries").await, 2, "each digest once");
    assert_eq!(webhook_replay::legacy_check(&mut conn, &a).await.unwrap(), check(true, false));

    assert!(!webhook_replay::v3_seen(&mut conn).await.unwrap());
    webhook_replay::mark_v3_seen(&mut conn).await.unwrap();
    webhook_replay::mark_v3_seen(&mut conn).await.unwrap();
    assert!(webhook_replay::v3_seen(&mut conn).await.unwrap());
    assert_eq!(db.count("SELECT count(*) FROM webhook_v3_seen").await, 1, "written once");
    assert_eq!(webhook_replay::legacy_check(&mut conn, &a).await.unwrap(), check(true, true));

    use schema::webhook_deliveries::dsl as w;
    diesel::update(w::webhook_deliveries.filter(w::digest.eq(&a[..])))
        .set(w::accepted_at.eq(Utc::now() - Duration::days(4)))
        .execute(&mut conn)
        .await
        .unwrap();
    let before = Utc::now() - DELIVERY_RETENTION;
    assert_eq!(webhook_replay::prune_deliveries(&mut conn, before).await.unwrap(), 1, "only the old one");
    assert_eq!(webhook_replay::legacy_check(&mut conn, &a).await.unwrap(), check(false, true));
    assert_eq!(webhook_replay::legacy_check(&mut conn, &b).await.unwrap(), check(true, true));
}

/// A HubSpot contact as decoded from the wire.
fn read_contact(id: &str, updated: i64, props: &[(&str, &str)]) -> hubspot_sync::hubspot::Record {
    hubspot_sync::hubspot::Record {
        id: id.to_owned(),
        properties: props.iter().map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned()))).collect(),
        created_at: Some(at(0)),
        updated_at: at(updated),
        archived: false,
    }
}

/// The full pass maps pages to rows while the writer waits and merges the pages that waited
/// (`objects::prepare`, `Prepared::append`, `write_prepared`): the merged write keeps every rule
/// of the upsert (a stale version never regresses a newer row, NUL bytes and absurd dates made
/// storable, the filter, typed columns), and a batch the database refuses still falls back to
/// one record at a time.
#[tokio::test]
async fn prepared_pages_merged_into_one_write_keep_every_rule() {
    use hubspot_sync::config::CopyConfig;
    use hubspot_sync::config::file::LiveFilters;
    use hubspot_sync::objects::{ObjectKind, WriteContext, prepare, write_prepared};

    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    let config = CopyConfig::parse(
        "[contacts.columns]\nm_score = { property = \"custom_score\", type = \"integer\" }\n\
         [contacts.filter]\nowners = [\"7\"]\n",
        None,
    )
    .unwrap();
    hubspot_sync::store::mapped_columns::apply(&mut conn, &config).await.unwrap();
    let ctx = WriteContext { filters: LiveFilters::new(config.filters()), ..WriteContext::default() };
    // A newer version already stored: the pass's older one must not replace it.
    contacts::upsert_batch(&mut conn, vec![contact("s1", 50, Some("7"), "Newer")]).await.unwrap();

    let owner = ("hubspot_owner_id", "7");
    let mut nul = read_contact("n1", 10, &[owner, ("firstname", "An\0n"), ("custom_score", "12")]);
    nul.created_at = Some(Utc.with_ymd_and_hms(-10_000, 1, 1, 0, 0, 0).unwrap());
    let mut first =
        prepare(ObjectKind::Contacts, vec![nul, read_contact("s1", 10, &[owner, ("firstname", "Older")])], &ctx);
    let outside = read_contact("f1", 10, &[("hubspot_owner_id", "8"), ("firstname", "Out"), ("email", "o@x.io")]);
    first.append(prepare(ObjectKind::Contacts, vec![outside, read_contact("ok", 10, &[owner])], &ctx));
    let report = write_prepared(&mut conn, first, &ctx).await;
    assert_eq!((report.written, report.filtered, report.failed.len()), (3, 1, 0), "n1, f1 and ok; s1 is older");

    let row: (Option<String>, Option<DateTime<Utc>>, String, Option<i64>) = diesel::sql_query(
        "SELECT first_name, created_at, properties->>'firstname' AS raw, m_score FROM contacts WHERE hubspot_contact_id = 'n1'",
    )
    .get_result::<NulRow>(&mut conn)
    .await
    .map(|r| (r.first_name, r.created_at, r.raw, r.m_score))
    .unwrap();
    assert_eq!(row, (Some("Ann".to_owned()), None, "An\\u0000n".to_owned(), Some(12)));
    let s1 = stored(&mut conn, "s1").await.unwrap();
    assert_eq!((s1.1.as_deref(), s1.3), (Some("Newer"), at(50)), "a stale version never regresses a row");
    let f1 = stored(&mut conn, "f1").await.unwrap();
    assert!(f1.4 && f1.1.is_none(), "outside the filter: archived, stripped");

    // One record PostgreSQL refuses (a trigger standing in for any per-row error) fails alone.
    for sql in [
        "CREATE FUNCTION refuse_bad() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
         IF NEW.hubspot_contact_id = 'bad' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$",
        "CREATE TRIGGER refuse_bad BEFORE INSERT ON contacts FOR EACH ROW EXECUTE FUNCTION refuse_bad()",
    ] {
        diesel::sql_query(sql).execute(&mut conn).await.unwrap();
    }
    let mut batch = prepare(ObjectKind::Contacts, vec![read_contact("g1", 10, &[owner])], &ctx);
    batch.append(prepare(
        ObjectKind::Contacts,
        vec![read_contact("bad", 10, &[owner]), read_contact("g2", 10, &[owner])],
        &ctx,
    ));
    let report = write_prepared(&mut conn, batch, &ctx).await;
    assert_eq!(report.written, 2);
    assert_eq!(report.failed.iter().map(|f| f.id.as_str()).collect::<Vec<_>>(), ["bad"]);
    assert!(stored(&mut conn, "g1").await.is_some() && stored(&mut conn, "g2").await.is_some());
}

#[derive(diesel::QueryableByName)]
struct NulRow {
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    first_name: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    created_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Text)]
    raw: String,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::BigInt>)]
    m_score: Option<i64>,
}

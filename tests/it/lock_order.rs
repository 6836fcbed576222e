//! Lock order: two writers over the same rows, one binding them in ascending and the other in
//! descending id order, again and again, never deadlock (PostgreSQL's 40P01 "deadlock detected"),
//! because every multi-row write takes its rows in id order whatever order it is given them in.

use chrono::{DateTime, TimeZone, Utc};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;
use hubspot_sync::store::contacts::{self, ContactRow};
use hubspot_sync::store::records::{self, RecordTable};
use hubspot_sync::store::staff::{self, StaffRow};
use hubspot_sync::store::sync_failures::{self, Backoff, NewFailure};
use serde_json::json;

use crate::harness::TestDb;

/// Rows each write touches (the size of a fetcher batch times ten, a poller page of a big pass).
const ROWS: usize = 1_000;
/// Rounds of the two writers at once; without lock order nearly every round deadlocks.
const ROUNDS: i64 = 12;

/// One write of `ids`, in that order, as round `round`; the rows it changed.
type Write = for<'c> fn(&'c mut AsyncPgConnection, Vec<String>, i64) -> BoxFuture<'c, diesel::QueryResult<usize>>;

fn at(round: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + round, 0).single().unwrap()
}

/// Runs `write` on two connections at once, ascending on one and descending on the other, for
/// [`ROUNDS`] rounds; any error (a deadlock above all) fails the test, naming it.
async fn opposite_orders_never_deadlock(what: &str, write: Write) {
    let db = TestDb::new().await;
    let (mut up, mut down) = (db.conn().await, db.conn().await);
    let ids: Vec<String> = (0..ROWS).map(|i| format!("{}", 100_000 + i)).collect();
    for round in 1..=ROUNDS {
        let descending: Vec<String> = ids.iter().rev().cloned().collect();
        let (a, b) = tokio::join!(write(&mut up, ids.clone(), round), write(&mut down, descending, round));
        for result in [a, b] {
            if let Err(error) = result {
                panic!("{what}, round {round}: {error} (two writers over the same rows in opposite orders)");
            }
        }
    }
}

fn contact(id: String, round: i64) -> ContactRow {
    ContactRow {
        hubspot_contact_id: id,
        email: None,
        first_name: Some(format!("round {round}")),
        last_name: None,
        phone: None,
        owner_id: None,
        lifecycle_stage: None,
        status: None,
        created_at: Some(at(0)),
        updated_at: at(round),
        archived: false,
        properties: json!({}),
    }
}

#[tokio::test]
async fn record_upserts_in_opposite_orders_never_deadlock() {
    opposite_orders_never_deadlock("contacts upsert", |conn, ids, round| {
        Box::pin(contacts::upsert_batch(conn, ids.into_iter().map(|id| contact(id, round)).collect()))
    })
    .await;
}

#[tokio::test]
async fn parking_failures_in_opposite_orders_never_deadlocks() {
    opposite_orders_never_deadlock("sync_failures park", |conn, ids, round| {
        Box::pin(async move {
            let failures: Vec<NewFailure> = ids
                .into_iter()
                .map(|hubspot_id| NewFailure {
                    hubspot_id,
                    error: format!("round {round}"),
                    updated_at: Some(at(round)),
                })
                .collect();
            Ok(sync_failures::park(conn, "contacts", &failures, Backoff::default()).await?.len())
        })
    })
    .await;
}

#[tokio::test]
async fn owner_upserts_in_opposite_orders_never_deadlock() {
    opposite_orders_never_deadlock("staff upsert", |conn, ids, round| {
        Box::pin(async move {
            let rows: Vec<StaffRow> = ids
                .into_iter()
                .map(|id| StaffRow {
                    id,
                    name: Some(format!("round {round}")),
                    email: None,
                    first_name: None,
                    last_name: None,
                    user_id: None,
                    archived: false,
                    created_at: None,
                    updated_at: Some(at(round)),
                })
                .collect();
            staff::upsert_batch(conn, &rows, "coach").await
        })
    })
    .await;
}

/// Archiving (merges here) against upserts of the same rows: the updates lock in id order too, so
/// an upsert and an archive over shared rows wait for each other. (A regression guard: an index
/// scan over `= ANY` already visits ids in order, so this one also held before.)
#[tokio::test]
async fn archiving_and_upserting_the_same_rows_never_deadlock() {
    opposite_orders_never_deadlock("archive vs upsert", |conn, ids, round| {
        Box::pin(async move {
            // Ascending writer upserts; descending writer archives (with a merge target).
            if ids.first() < ids.last() {
                contacts::upsert_batch(conn, ids.into_iter().map(|id| contact(id, round)).collect()).await
            } else {
                let survivor = format!("survivor-{round}");
                records::mark_archived(conn, RecordTable::Contacts, &ids, Some(&survivor)).await
            }
        })
    })
    .await;
}

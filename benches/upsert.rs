//! Batch upsert of contacts into PostgreSQL, against `COPY` of the same rows as the baseline.
//!
//! `cargo bench --bench upsert` (uses `BENCH_DATABASE_URL`, `TEST_DATABASE_URL` or
//! `DATABASE_URL`, else starts a private PostgreSQL). Prints rows/s for batches of 100 and 1,000
//! contacts, fresh inserts and updates, the best of three passes, and the ratio to `COPY`.
//! Sessions use the service's settings (`synchronous_commit = off`); `BENCH_SYNCHRONOUS_COMMIT=true`
//! measures durable commits instead. `BENCH_MAPPED_COLUMNS=N` (1 to 10) first adds N typed columns
//! of `HUBSPOT_SYNC_CONFIG` (generated from `properties`, every type) to `contacts`: the cost of
//! generated columns is the ratio of the two runs' rows/s.
//!
//! Then edges (issue 16): `store::associations::replace_for_sources` as an association read
//! writes them, 100 contacts (two deals each) per call, to live contacts and deals (so the rule
//! that locks each end's row to check it is not archived does its work): edges/s for a first
//! read (inserts) and for a later read that finds the same edges (updates), best of three.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a benchmark fails loudly by design

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeZone, Utc};
use futures_util::SinkExt;
use hubspot_sync::localpg::{LocalPgOptions, LocalPostgres};
use hubspot_sync::store::associations::{self, Edge};
use hubspot_sync::store::connect::DbTarget;
use hubspot_sync::store::contacts::{self, ContactRow};
use hubspot_sync::store::migrations;
use hubspot_sync::store::pool::{PoolOptions, session_settings};
use serde_json::json;

const ROWS: usize = 20_000;
/// Deals the bench's contacts are associated with (each contact with two).
const DEALS: usize = 2_000;
const PASSES: usize = 3;

fn contact(i: usize, updated: DateTime<Utc>, version: u32) -> ContactRow {
    let first = ["Zoë", "José", "Ann", "李", "Øystein", "Mary-Jane"][i % 6];
    let last = ["Müller", "Núñez", "O'Brien", "王", "Smith"][i % 5];
    let email = format!("contact{i}@example{}.com", i % 97);
    let phone = format!("+1 555 {:07}", i);
    let owner = format!("{}", 100 + i % 20);
    ContactRow {
        hubspot_contact_id: (1_000_000 + i).to_string(),
        email: Some(email.clone()),
        first_name: Some(first.to_owned()),
        last_name: Some(last.to_owned()),
        phone: Some(phone.clone()),
        owner_id: Some(owner.clone()),
        lifecycle_stage: Some(["lead", "customer", "opportunity"][i % 3].to_owned()),
        status: Some(["NEW", "OPEN", "IN_PROGRESS"][i % 3].to_owned()),
        created_at: Some(Utc.timestamp_opt(1_700_000_000 + i as i64, 0).single().unwrap()),
        updated_at: updated,
        archived: false,
        properties: json!({
            "email": email, "firstname": first, "lastname": last, "phone": phone,
            "hubspot_owner_id": owner, "lifecyclestage": "lead", "hs_lead_status": "NEW",
            "createdate": "2023-11-14T22:13:20.000Z", "lastmodifieddate": updated.to_rfc3339(),
            "hs_object_id": (1_000_000 + i).to_string(), "company": "Acme GmbH", "city": "Zürich",
            "jobtitle": "Head of Sales", "custom_score": version.to_string(), "notes": null,
        }),
    }
}

fn copy_escape(value: Option<&str>) -> String {
    match value {
        None => "\\N".to_owned(),
        Some(v) => v.replace('\\', "\\\\").replace('\t', "\\t").replace('\n', "\\n").replace('\r', "\\r"),
    }
}

fn copy_line(r: &ContactRow) -> String {
    let fields = [
        Some(r.hubspot_contact_id.clone()),
        r.email.clone(),
        r.first_name.clone(),
        r.last_name.clone(),
        r.phone.clone(),
        r.owner_id.clone(),
        r.lifecycle_stage.clone(),
        r.status.clone(),
        r.created_at.map(|t| t.to_rfc3339()),
        Some(r.updated_at.to_rfc3339()),
        Some(r.archived.to_string()),
        Some(r.properties.to_string()),
    ];
    let mut line = fields.iter().map(|f| copy_escape(f.as_deref())).collect::<Vec<_>>().join("\t");
    line.push('\n');
    line
}

async fn copy_rows(client: &tokio_postgres::Client, rows: &[ContactRow]) -> Duration {
    let started = Instant::now();
    let sink = client
        .copy_in(
            "COPY contacts (hubspot_contact_id, email, first_name, last_name, phone, owner_id, lifecycle_stage, \
             status, created_at, updated_at, archived, properties) FROM STDIN",
        )
        .await
        .unwrap();
    futures_util::pin_mut!(sink);
    let mut buf = String::with_capacity(rows.len() * 600);
    for r in rows {
        buf.push_str(&copy_line(r));
    }
    sink.send(bytes::Bytes::from(buf)).await.unwrap();
    sink.finish().await.unwrap();
    started.elapsed()
}

async fn upsert_rows(conn: &mut diesel_async::AsyncPgConnection, rows: &[ContactRow], batch: usize) -> Duration {
    let started = Instant::now();
    for chunk in rows.chunks(batch) {
        contacts::upsert_batch(conn, chunk.to_vec()).await.unwrap();
    }
    started.elapsed()
}

fn rate(d: Duration) -> f64 {
    ROWS as f64 / d.as_secs_f64()
}

/// Ten mappings over the bench's properties, every column type among them.
const MAPPINGS: [&str; 10] = [
    r#"m_jobtitle = { property = "jobtitle", type = "text" }"#,
    r#"m_score = { property = "custom_score", type = "integer" }"#,
    r#"m_created = { property = "createdate", type = "timestamptz" }"#,
    r#"m_modified = { property = "lastmodifieddate", type = "timestamptz" }"#,
    r#"m_city = { property = "city", type = "text" }"#,
    r#"m_score_num = { property = "custom_score", type = "numeric" }"#,
    r#"m_created_on = { property = "createdate", type = "date" }"#,
    r#"m_status = { property = "hs_lead_status", type = "text[]" }"#,
    r#"m_object_id = { property = "hs_object_id", type = "integer" }"#,
    r#"m_notes = { property = "notes", type = "boolean" }"#,
];

/// Adds the first `BENCH_MAPPED_COLUMNS` of [`MAPPINGS`] to `contacts`; how many.
async fn mapped_columns(target: &DbTarget) -> usize {
    let n = std::env::var("BENCH_MAPPED_COLUMNS").ok().and_then(|v| v.parse::<usize>().ok()).unwrap_or(0).min(10);
    if n == 0 {
        return 0;
    }
    let text = format!("[contacts.columns]\n{}\n", MAPPINGS[..n].join("\n"));
    let config = hubspot_sync::config::CopyConfig::parse(&text, None).unwrap();
    let mut conn = target.connect("hubspot-sync bench").await.unwrap();
    hubspot_sync::store::mapped_columns::apply(&mut conn, &config).await.unwrap();
    n
}

#[tokio::main]
async fn main() {
    let _local;
    let url = match ["BENCH_DATABASE_URL", "TEST_DATABASE_URL", "DATABASE_URL"]
        .iter()
        .find_map(|v| std::env::var(v).ok())
    {
        Some(url) => url,
        None => {
            let pg =
                tokio::task::spawn_blocking(|| LocalPostgres::start(LocalPgOptions::default())).await.unwrap().unwrap();
            let url = pg.url();
            _local = pg;
            url
        }
    };
    let admin_target = DbTarget::parse(&url, None).unwrap();
    let admin = admin_target.connect_raw("hubspot-sync bench").await.unwrap();
    let name = format!("hsbench_{}", uuid::Uuid::new_v4().simple());
    admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
    let target = admin_target.with_database(&name);
    migrations::run_pending(&target).await.unwrap();
    let mapped = mapped_columns(&target).await;
    let client = target.connect_raw("hubspot-sync bench copy").await.unwrap();
    let mut conn = target.connect("hubspot-sync bench upsert").await.unwrap();
    // The service's own session settings; BENCH_SYNCHRONOUS_COMMIT=true measures durable commits.
    let synchronous_commit = std::env::var("BENCH_SYNCHRONOUS_COMMIT").is_ok_and(|v| v == "true");
    let session = session_settings(&PoolOptions {
        application_name: String::new(),
        max_size: 1,
        wait_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(300),
        synchronous_commit,
    });
    diesel_async::SimpleAsyncConnection::batch_execute(&mut conn, &session).await.unwrap();
    client.batch_execute(&session).await.unwrap();

    let t0 = Utc.timestamp_opt(1_750_000_000, 0).single().unwrap();
    let fresh: Vec<_> = (0..ROWS).map(|i| contact(i, t0, 1)).collect();
    let newer: Vec<_> = (0..ROWS).map(|i| contact(i, t0 + chrono::Duration::seconds(60), 2)).collect();

    let mut best_copy = Duration::MAX;
    for _ in 0..PASSES {
        client.batch_execute("TRUNCATE contacts").await.unwrap();
        best_copy = best_copy.min(copy_rows(&client, &fresh).await);
    }
    println!(
        "machine: {} cores; {ROWS} contacts per pass, best of {PASSES} passes; synchronous_commit={}; {mapped} typed \
         column(s)",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        if synchronous_commit { "on" } else { "off" }
    );
    println!("| operation | batch | rows/s | COPY rows/s ÷ this |");
    println!("|---|---:|---:|---:|");
    println!("| COPY (baseline, one stream) | {ROWS} | {:.0} | 1.00 |", rate(best_copy));
    for batch in [100, 1_000] {
        let (mut insert, mut update) = (Duration::MAX, Duration::MAX);
        for _ in 0..PASSES {
            client.batch_execute("TRUNCATE contacts, contact_owner_history").await.unwrap();
            insert = insert.min(upsert_rows(&mut conn, &fresh, batch).await);
            update = update.min(upsert_rows(&mut conn, &newer, batch).await);
        }
        println!(
            "| upsert, fresh inserts | {batch} | {:.0} | {:.2} |",
            rate(insert),
            insert.as_secs_f64() / best_copy.as_secs_f64()
        );
        println!(
            "| upsert, updates (newer rows) | {batch} | {:.0} | {:.2} |",
            rate(update),
            update.as_secs_f64() / best_copy.as_secs_f64()
        );
    }
    edges(&client, &mut conn).await;
    drop(conn);
    drop(client);
    admin.batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)")).await.unwrap();
}

/// The edges contacts `ids` have (contact `i` to deals `i % DEALS` and `(i * 7 + 1) % DEALS`).
fn contact_edges(ids: std::ops::Range<usize>) -> Vec<Edge> {
    ids.flat_map(|i| {
        let mut deals = [i % DEALS, (i * 7 + 1) % DEALS];
        deals.sort_unstable();
        let from = (1_000_000 + i).to_string();
        deals.into_iter().map(move |d| Edge {
            from_type: "0-1".into(),
            from_id: from.clone(),
            to_type: "0-3".into(),
            to_id: (5_000_000 + d).to_string(),
            type_id: 4,
            category: "HUBSPOT_DEFINED".into(),
            label: None,
            is_primary: false,
        })
    })
    .collect()
}

/// Stores every contact's edges as reads of 100 contacts each; the time taken and edges stored.
async fn read_all_edges(conn: &mut diesel_async::AsyncPgConnection, at: DateTime<Utc>) -> (Duration, usize) {
    let started = Instant::now();
    let mut edges = 0;
    for start in (0..ROWS).step_by(100) {
        let range = start..(start + 100).min(ROWS);
        let ids: Vec<String> = range.clone().map(|i| (1_000_000 + i).to_string()).collect();
        let batch = contact_edges(range);
        edges += batch.len();
        associations::replace_for_sources(conn, "0-1", &ids, "0-3", batch, at).await.unwrap();
    }
    (started.elapsed(), edges)
}

/// Edges stored per second (no HubSpot budget: the database alone).
async fn edges(client: &tokio_postgres::Client, conn: &mut diesel_async::AsyncPgConnection) {
    client
        .batch_execute(&format!(
            "INSERT INTO deals (hubspot_deal_id, updated_at) SELECT (5000000 + g)::text, now() \
             FROM generate_series(0, {last}) g",
            last = DEALS - 1
        ))
        .await
        .unwrap();
    let t0 = Utc.timestamp_opt(1_750_000_000, 0).single().unwrap();
    let (mut fresh, mut again, mut count) = (Duration::MAX, Duration::MAX, 0);
    for pass in 0..PASSES {
        client.batch_execute("TRUNCATE associations").await.unwrap();
        let t = t0 + chrono::Duration::seconds(pass as i64 * 10);
        let (took, n) = read_all_edges(conn, t).await;
        fresh = fresh.min(took);
        again = again.min(read_all_edges(conn, t + chrono::Duration::seconds(1)).await.0);
        count = n;
    }
    let live = client.query_one("SELECT count(*) FROM associations WHERE NOT removed", &[]).await.unwrap();
    assert_eq!(live.get::<_, i64>(0) as usize, count, "every edge stored live");
    println!();
    println!("| edges (`associations::replace_for_sources`, 100 contacts x 2 deals per call) | edges | edges/s |");
    println!("|---|---:|---:|");
    println!("| first read (inserts) | {count} | {:.0} |", count as f64 / fresh.as_secs_f64());
    println!("| later read, same edges (updates) | {count} | {:.0} |", count as f64 / again.as_secs_f64());
}

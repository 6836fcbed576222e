//! Issue 15's proof: the mixed burst (about 700 events in 23 signed batches over about 1.35 s:
//! property changes, creations, deletions, merges, restores and privacy deletions over contacts,
//! deals and calls, about 440 distinct ids) and one event delivered 1,000 times, against the
//! simulator with HubSpot's budget (100 requests per 10 s) and 50 ms latency on every call.
//!
//! The burst is made by the simulator itself (`churn`, one call per batch, spaced evenly), which
//! delivers the signed batches as HubSpot does (its usual 1% duplicates, 2% reordered). The
//! accounts are small (100 records of each kind) so that property changes hit the same records
//! again, as a real burst does.
//!
//! Change to row: from the change (the churn call; the simulator stamps the change with that
//! moment) to the first write in PostgreSQL that shows it or something newer, seen by a row
//! trigger (`clock_timestamp()`, same machine clock):
//! - a creation, property change or restore: the row live with `updated_at` at or after the change;
//! - a deletion: the row archived (or deleted) by a write after the change;
//! - a privacy deletion: the row deleted (or archived) after the change;
//! - a merge: the new record live, and each merged-away id archived, after the change (one
//!   change per id);
//! - or the row shows a later change of the same record (a property change overtaken by the
//!   record's deletion is shown when the deletion is). A record never written at all (created and
//!   deleted before any read: no row is the right end state) has nothing to show; its changes
//!   are counted apart, and the end state of every touched record is compared with HubSpot's.
//!
//! Reads: the simulator's batch reads (every `…/batch/read`, archived re-reads included) and the
//! ids they asked for (`…batch_read_ids`), from the first batch until every change is in
//! PostgreSQL.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use hubspot_sim::{ChurnRequest, Sim, SimHandle, SimOptions, WebhookConfig};
use hubspot_sync::objects::ObjectKind;
use hubspot_sync::runtime;
use hubspot_sync::store::records::RecordTable;

use super::SECRET;
use super::common::{self, Postgres, Scratch, free_port, quantile, serve_args};
use super::common::{KINDS, copy_data};

/// Batches in the burst, and the time they are spread over.
const BATCHES: usize = 23;
const SPREAD: Duration = Duration::from_millis(1350);
/// Records of each kind in the account.
const RECORDS: usize = 160;

/// What one churn call changed, and when.
struct Made {
    kind: ObjectKind,
    at_ms: i64,
    report: hubspot_sim::ChurnReport,
}

pub struct Burst {
    pub events: u64,
    pub batches: u64,
    pub distinct_ids: usize,
    pub changes: usize,
    pub reads: u64,
    pub ids_read: u64,
    pub requests: u64,
    pub latencies_ms: Vec<f64>,
    pub never: usize,
    /// Changes of records never written (created and deleted before any read).
    pub unwritten: usize,
    pub differences: Vec<String>,
    pub settled_after: Duration,
    pub webhooks: serde_json::Value,
    pub load: String,
}

pub struct Repeated {
    pub deliveries: usize,
    pub answered_204: usize,
    pub over: Duration,
    pub reads: u64,
    pub load: String,
}

fn sim_options(port: u16) -> SimOptions {
    let hooks = WebhookConfig::new(format!("http://127.0.0.1:{port}/webhooks/hubspot"), SECRET);
    SimOptions {
        contacts: RECORDS,
        deals: RECORDS,
        calls: RECORDS,
        owners: 5,
        requests_per_10s: 100,
        latency_ms: 50,
        webhook: Some(hooks),
        ..SimOptions::default()
    }
}

/// Every write to a record table: when, which row, its `updated_at`, archived or deleted.
async fn track_writes(db: &Scratch) {
    let mut sql = String::from(
        "CREATE UNLOGGED TABLE bench_writes (tbl text, id text, updated_at timestamptz, archived bool, \
             seen_at timestamptz NOT NULL DEFAULT clock_timestamp()); \
         CREATE FUNCTION bench_writes() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
             IF TG_OP = 'DELETE' THEN \
                 INSERT INTO bench_writes (tbl, id, updated_at, archived) \
                 VALUES (TG_TABLE_NAME, to_jsonb(OLD) ->> TG_ARGV[0], NULL, true); \
             ELSE \
                 INSERT INTO bench_writes (tbl, id, updated_at, archived) \
                 VALUES (TG_TABLE_NAME, to_jsonb(NEW) ->> TG_ARGV[0], NEW.updated_at, NEW.archived); \
             END IF; RETURN NULL; END $$;",
    );
    for kind in KINDS {
        let table = RecordTable::for_kind(kind).unwrap();
        sql.push_str(&format!(
            "CREATE TRIGGER bench_writes AFTER INSERT OR UPDATE OR DELETE ON {t} FOR EACH ROW \
             EXECUTE FUNCTION bench_writes('{k}');",
            t = table.name(),
            k = table.key()
        ));
    }
    db.client().await.batch_execute(&sql).await.unwrap();
}

/// One write seen by the trigger.
struct Write {
    seen_ms: i64,
    updated_ms: Option<i64>,
    /// Archived, or deleted (`updated_ms` is then `None`).
    archived: bool,
}

async fn writes(db: &Scratch) -> HashMap<(String, String), Vec<Write>> {
    let rows = db
        .client()
        .await
        .query(
            "SELECT tbl, id, (extract(epoch FROM seen_at) * 1000)::bigint, \
             (extract(epoch FROM updated_at) * 1000)::bigint, archived FROM bench_writes ORDER BY seen_at",
            &[],
        )
        .await
        .unwrap();
    let mut out: HashMap<(String, String), Vec<Write>> = HashMap::new();
    for r in rows {
        out.entry((r.get(0), r.get(1))).or_default().push(Write {
            seen_ms: r.get(2),
            updated_ms: r.get(3),
            archived: r.get(4),
        });
    }
    out
}

/// What a change needs of a row before it shows.
#[derive(Clone, Copy)]
enum Shows {
    /// Live with `updated_at` at or after the change.
    Live,
    /// Archived or deleted by a write after the change.
    Gone,
}

/// The moment the row of `(kind, id)` first showed a change made at `at_ms`.
fn shown_at(
    all: &HashMap<(String, String), Vec<Write>>,
    kind: ObjectKind,
    id: &str,
    at_ms: i64,
    shows: Shows,
) -> Option<i64> {
    let table = RecordTable::for_kind(kind).unwrap().name().to_owned();
    let writes = all.get(&(table, id.to_owned()))?;
    writes
        .iter()
        .find(|w| match shows {
            Shows::Live => !w.archived && w.updated_ms.is_some_and(|u| u >= at_ms),
            Shows::Gone => w.archived && w.seen_ms >= at_ms,
        })
        .map(|w| w.seen_ms)
}

/// One change to one record: when, and what the row must show.
struct Change {
    kind: ObjectKind,
    id: String,
    at_ms: i64,
    shows: Shows,
}

/// Each change of the burst that needed a write: its change-to-row latency in ms (`None`: not
/// shown yet). A change is shown once the row shows it or a later change of the same record (a
/// property change overtaken by the record's deletion is shown by the deletion). A record that
/// was never written at all (created and deleted or erased before any read, so never a row: the
/// right end state) has nothing to show; its changes are counted apart ([`unwritten`]).
fn latencies(made: &[Made], all: &HashMap<(String, String), Vec<Write>>) -> Vec<Option<f64>> {
    let changes = changes(made);
    let mut out = Vec::new();
    for group in grouped(&changes) {
        let first = group[0];
        if !written(all, first.kind, &first.id) {
            continue;
        }
        for (i, c) in group.iter().enumerate() {
            let shown = std::iter::once(c)
                .chain(&group[i + 1..])
                .filter_map(|later| shown_at(all, later.kind, &later.id, c.at_ms.max(later.at_ms), later.shows))
                .min();
            out.push(shown.map(|t| (t - c.at_ms) as f64));
        }
    }
    out
}

/// Changes of records never written (nothing to show; the end state is checked apart).
fn unwritten(made: &[Made], all: &HashMap<(String, String), Vec<Write>>) -> usize {
    let changes = changes(made);
    grouped(&changes).iter().filter(|g| !written(all, g[0].kind, &g[0].id)).map(|g| g.len()).sum()
}

fn written(all: &HashMap<(String, String), Vec<Write>>, kind: ObjectKind, id: &str) -> bool {
    let table = RecordTable::for_kind(kind).unwrap().name().to_owned();
    all.contains_key(&(table, id.to_owned()))
}

/// Every change to every record, in the order made.
fn changes(made: &[Made]) -> Vec<Change> {
    let mut out = Vec::new();
    for m in made {
        let r = &m.report;
        let mut push = |id: &String, shows| out.push(Change { kind: m.kind, id: id.clone(), at_ms: m.at_ms, shows });
        for id in r.created.iter().chain(&r.updated).chain(&r.restored) {
            push(id, Shows::Live);
        }
        for id in r.deleted.iter().chain(&r.privacy_deleted) {
            push(id, Shows::Gone);
        }
        for merge in &r.merged {
            push(&merge.new, Shows::Live);
            for id in std::iter::once(&merge.primary).chain(&merge.merged).filter(|id| **id != merge.new) {
                push(id, Shows::Gone);
            }
        }
    }
    out
}

/// The changes grouped by record, each group in the order made.
fn grouped(changes: &[Change]) -> Vec<Vec<&Change>> {
    let mut by: HashMap<(ObjectKind, &str), Vec<&Change>> = HashMap::new();
    for c in changes {
        by.entry((c.kind, &c.id)).or_default().push(c);
    }
    by.into_values().collect()
}

/// The touched records that differ from HubSpot at the end: a live record missing, archived or
/// older here; an archived or erased one live here.
async fn differences(db: &Scratch, sim: &SimHandle, touched: &HashSet<(ObjectKind, String)>) -> Vec<String> {
    let client = db.client().await;
    let mut diffs = Vec::new();
    for kind in KINDS {
        let table = RecordTable::for_kind(kind).unwrap();
        let sql = format!(
            "SELECT {key}, (extract(epoch FROM updated_at) * 1000)::bigint, archived FROM {t}",
            key = table.key(),
            t = table.name()
        );
        let stored: HashMap<String, (i64, bool)> =
            client.query(&sql, &[]).await.unwrap().into_iter().map(|r| (r.get(0), (r.get(1), r.get(2)))).collect();
        let export: HashMap<String, serde_json::Value> =
            sim.export_json(kind.as_str()).into_iter().map(|l| (l["id"].as_str().unwrap().to_owned(), l)).collect();
        for (k, id) in touched.iter().filter(|(k, _)| *k == kind) {
            let row = stored.get(id);
            match export.get(id) {
                None => {
                    if row.is_some_and(|(_, archived)| !archived) {
                        diffs.push(format!("{k} {id}: erased in HubSpot, live here"));
                    }
                }
                Some(line) if line["archived"].as_bool() == Some(true) => {
                    if row.is_some_and(|(_, archived)| !archived) {
                        diffs.push(format!("{k} {id}: archived in HubSpot, live here"));
                    }
                }
                Some(line) => {
                    let want = chrono::DateTime::parse_from_rfc3339(line["updatedAt"].as_str().unwrap())
                        .unwrap()
                        .timestamp_millis();
                    match row {
                        None => diffs.push(format!("{k} {id}: live in HubSpot, missing here")),
                        Some((_, true)) => diffs.push(format!("{k} {id}: live in HubSpot, archived here")),
                        Some((at, false)) if *at != want => {
                            diffs.push(format!("{k} {id}: updated_at {at} here, {want} in HubSpot"))
                        }
                        Some(_) => {}
                    }
                }
            }
        }
    }
    diffs
}

fn reads(stats: &serde_json::Value, suffix: &str) -> u64 {
    stats["operations"]
        .as_object()
        .map_or(0, |m| m.iter().filter(|(k, _)| k.ends_with(suffix)).map(|(_, n)| n.as_u64().unwrap_or(0)).sum::<u64>())
}

/// The mixed burst.
pub async fn mixed(pg: &Postgres) -> Burst {
    let port = free_port();
    let sim = Sim::start(sim_options(port)).await.unwrap();
    let db = pg.scratch().await;
    copy_data(&db, &sim).await;
    track_writes(&db).await;
    let mut args = serve_args(&db.url, sim.url(), SECRET, &[]);
    args.server.port = port;
    let server = runtime::start(args.options().unwrap()).unwrap();
    let before = sim.stats();

    // 23 churn calls, kinds in turn, spaced evenly over 1.35 s; each is one signed batch.
    let started = Instant::now();
    let mut made = Vec::new();
    for batch in 0..BATCHES {
        let due = SPREAD.mul_f64(batch as f64 / (BATCHES - 1) as f64);
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        let kind = KINDS[batch % KINDS.len()];
        let req = ChurnRequest {
            object: kind.as_str().into(),
            creates: 3,
            updates: 22,
            deletes: 1,
            merges: 1,
            restores: 1,
            privacy_deletions: usize::from(kind == ObjectKind::Contacts),
            ..ChurnRequest::default()
        };
        let at_ms = chrono::Utc::now().timestamp_millis();
        let report = sim.churn(&req).unwrap();
        made.push(Made { kind, at_ms, report });
    }
    let events: u64 = made.iter().map(|m| m.report.events as u64).sum();
    let mut touched: HashSet<(ObjectKind, String)> = HashSet::new();
    for m in &made {
        let r = &m.report;
        let mut ids: Vec<&String> =
            r.created.iter().chain(&r.updated).chain(&r.deleted).chain(&r.restored).chain(&r.privacy_deleted).collect();
        for merge in &r.merged {
            ids.push(&merge.primary);
            ids.push(&merge.new);
            ids.extend(&merge.merged);
        }
        touched.extend(ids.into_iter().map(|id| (m.kind, id.clone())));
    }

    // Until every change shows (or a minute passes), then the webhooks are all delivered.
    let settled = loop {
        let all = writes(&db).await;
        let pending = latencies(&made, &all).iter().filter(|l| l.is_none()).count();
        if pending == 0 || started.elapsed() > Duration::from_secs(60) {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(sim.wait_webhooks_idle(Duration::from_secs(60)).await, "webhooks still pending");
    let after = sim.stats();
    let load = common::load();
    let all = writes(&db).await;
    let measured = latencies(&made, &all);
    let mut latencies_ms: Vec<f64> = measured.iter().flatten().copied().collect();
    latencies_ms.sort_by(f64::total_cmp);
    let differences = differences(&db, &sim, &touched).await;
    server.stop().await.unwrap();
    pg.drop_db(db).await;
    sim.shutdown().await;
    let count = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or(0);
    Burst {
        events,
        batches: count(&after["webhooks"], "delivered") - count(&before["webhooks"], "delivered"),
        distinct_ids: touched.len(),
        changes: measured.len(),
        reads: reads(&after, ".batch_read") - reads(&before, ".batch_read"),
        ids_read: reads(&after, ".batch_read_ids") - reads(&before, ".batch_read_ids"),
        requests: count(&after, "requests_total") - count(&before, "requests_total"),
        never: measured.iter().filter(|l| l.is_none()).count(),
        unwritten: unwritten(&made, &all),
        latencies_ms,
        differences,
        settled_after: settled,
        webhooks: after["webhooks"].clone(),
        load,
    }
}

/// One property change delivered 1,000 times over about 1.4 s (in waves of 10 at once, HubSpot's
/// concurrency, every 14 ms), the same `eventId` and `occurredAt` each time, over kept-alive
/// connections.
pub async fn repeated(pg: &Postgres) -> Repeated {
    const DELIVERIES: usize = 1000;
    let port = free_port();
    let mut options = sim_options(port);
    options.webhook = None;
    let sim = Sim::start(options).await.unwrap();
    let db = pg.scratch().await;
    copy_data(&db, &sim).await;
    let mut args = serve_args(&db.url, sim.url(), SECRET, &[]);
    args.server.port = port;
    let server = runtime::start(args.options().unwrap()).unwrap();
    let url = format!("http://127.0.0.1:{port}/webhooks/hubspot");
    // A real change in the simulator, delivered as its one event.
    let report = sim.churn(&ChurnRequest { object: "contacts".into(), updates: 1, ..ChurnRequest::default() }).unwrap();
    let id: u64 = report.updated[0].parse().unwrap();
    let line = sim.export_json("contacts").into_iter().find(|l| l["id"] == report.updated[0].as_str()).unwrap();
    let occurred =
        chrono::DateTime::parse_from_rfc3339(line["updatedAt"].as_str().unwrap()).unwrap().timestamp_millis();
    let body = serde_json::to_vec(&serde_json::json!([{"eventId": 777_000_001u64, "subscriptionId": 1_000_002,
        "portalId": 62515, "appId": 54321, "occurredAt": occurred, "subscriptionType": "contact.propertyChange",
        "attemptNumber": 0, "objectId": id, "propertyName": "firstname", "propertyValue": "x",
        "changeSource": "CRM_UI"}]))
    .unwrap();
    let before = sim.stats();
    let client = reqwest::Client::builder().pool_max_idle_per_host(10).build().unwrap();
    let started = Instant::now();
    let mut answered_204 = 0;
    let mut sent = 0;
    while sent < DELIVERIES {
        let due = Duration::from_millis(14 * (sent / 10) as u64);
        tokio::time::sleep(due.saturating_sub(started.elapsed())).await;
        let wave: Vec<_> = (0..10.min(DELIVERIES - sent))
            .map(|_| {
                let (client, url, body) = (client.clone(), url.clone(), body.clone());
                tokio::spawn(async move {
                    let ts = chrono::Utc::now().timestamp_millis().to_string();
                    let v3 = hubspot_sim::webhooks::sign::v3(
                        SECRET,
                        "POST",
                        &hubspot_sim::webhooks::sign::signed_uri(&url),
                        &body,
                        &ts,
                    );
                    let answer = client
                        .post(&url)
                        .header("Content-Type", "application/json")
                        .header("X-HubSpot-Signature-v3", v3)
                        .header("X-HubSpot-Request-Timestamp", ts)
                        .body(body)
                        .send()
                        .await;
                    answer.is_ok_and(|a| a.status() == 204)
                })
            })
            .collect();
        sent += wave.len();
        for w in wave {
            answered_204 += usize::from(w.await.unwrap());
        }
    }
    let over = started.elapsed();
    // The fetch window passes and the queue drains, then what was read is counted.
    let client_db = db.client().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let at: Option<i64> = client_db
            .query_opt(
                "SELECT (extract(epoch FROM updated_at) * 1000)::bigint FROM contacts WHERE hubspot_contact_id = $1",
                &[&id.to_string()],
            )
            .await
            .unwrap()
            .map(|r| r.get(0));
        if at == Some(occurred) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.stop().await.unwrap(); // drains the queue
    let after = sim.stats();
    drop(client_db);
    pg.drop_db(db).await;
    sim.shutdown().await;
    Repeated {
        deliveries: DELIVERIES,
        answered_204,
        over,
        reads: reads(&after, ".batch_read") - reads(&before, ".batch_read"),
        load: common::load(),
    }
}

/// The burst's summary rows (markdown) and whether each target of issue 15 is met.
pub fn report(b: &Burst, r: &Repeated) {
    let q =
        |p| if b.latencies_ms.is_empty() { "n/a".to_owned() } else { format!("{:.0}", quantile(&b.latencies_ms, p)) };
    println!("mixed burst: {BATCHES} churn calls over {} ms; {} records of each kind", SPREAD.as_millis(), RECORDS);
    println!();
    common::table(
        &[
            "events",
            "batches delivered",
            "distinct ids",
            "batch reads",
            "ids read",
            "events per read",
            "reads per event",
            "ids per read",
            "HubSpot requests",
            "change to row p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "never shown",
            "all shown after",
            "differences at end",
            "after the run",
        ],
        0,
        &[vec![
            b.events.to_string(),
            b.batches.to_string(),
            b.distinct_ids.to_string(),
            b.reads.to_string(),
            b.ids_read.to_string(),
            format!("{:.1}", b.events as f64 / b.reads.max(1) as f64),
            format!("{:.4}", b.reads as f64 / b.events.max(1) as f64),
            format!("{:.1}", b.ids_read as f64 / b.reads.max(1) as f64),
            b.requests.to_string(),
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0),
            format!("{} of {} ({} of records never written)", b.never, b.changes, b.unwritten),
            format!("{:.2} s", b.settled_after.as_secs_f64()),
            b.differences.len().to_string(),
            b.load.clone(),
        ]],
    );
    println!();
    println!(
        "webhooks: {} batches, {} duplicates, {} reordered, {} retried",
        b.webhooks["delivered"], b.webhooks["duplicates"], b.webhooks["reordered"], b.webhooks["retried"]
    );
    for d in b.differences.iter().take(10) {
        println!("  difference: {d}");
    }
    println!();
    println!(
        "one event delivered {} times over {:.2} s ({} answered 204): {} batch read(s); {}",
        r.deliveries,
        r.over.as_secs_f64(),
        r.answered_204,
        r.reads,
        r.load
    );
    println!();
    let p50 = quantile(&b.latencies_ms, 0.5);
    let p99 = quantile(&b.latencies_ms, 0.99);
    let per_event = b.reads as f64 / b.events.max(1) as f64;
    let per_read = b.ids_read as f64 / b.reads.max(1) as f64;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!("targets (issue 15):");
    println!("- change to row p50 under 300 ms: {p50:.0} ms, {}", verdict(p50 < 300.0 && b.never == 0));
    println!("- change to row p99 under 800 ms: {p99:.0} ms, {}", verdict(p99 < 800.0 && b.never == 0));
    println!("- at most 0.02 reads per event: {per_event:.4}, {}", verdict(per_event <= 0.02));
    println!("- at least 60 ids per read: {per_read:.1}, {}", verdict(per_read >= 60.0));
    println!("- 1,000 deliveries of one event, at most 1 read: {}, {}", r.reads, verdict(r.reads <= 1));
}

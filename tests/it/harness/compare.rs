//! PostgreSQL against the simulator's export: every difference, on every named column, the
//! HubSpot times, `archived`, `merged_into` and the `properties` jsonb; and the live edges of
//! `associations` against the simulator's edges ([`edge_differences`]). The fault scenarios, the
//! poller and the real-time tests all end with [`assert_converged`]: zero differences is the only
//! passing figure.

use std::collections::{BTreeMap, HashMap};

use hubspot_sim::SimHandle;
use hubspot_sync::hubspot::record::decode_object;
use hubspot_sync::objects::{self, ObjectKind, WriteContext};
use hubspot_sync::store::associations::{self, Edge, EdgeChange};
use hubspot_sync::store::records::{self, RecordTable};
use serde_json::Value;

use super::TestDb;

/// The record kinds kept in their own tables (owners go to `staff`, see [`owner_differences`]).
pub const RECORD_KINDS: [ObjectKind; 3] = [ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls];

/// Copies the simulator's starting data into PostgreSQL, as a first full sync would (without
/// spending the simulator's request budget), and records a successful run of every object so
/// `serve` starts no catch-up run of its own: the point the comparisons start from.
pub async fn seed(db: &TestDb, sim: &SimHandle) {
    super::control::quiet_poller(db).await;
    let mut conn = db.conn().await;
    for kind in RECORD_KINDS {
        let lines = sim.export_json(kind.as_str());
        let records: Vec<_> = lines.iter().map(|l| decode_object(l.clone()).expect("export decodes")).collect();
        objects::write_records(&mut conn, kind, records, &WriteContext::default()).await.expect("seed rows");
        let table = RecordTable::for_kind(kind).expect("a record table");
        for line in lines.iter().filter(|l| l["mergedInto"].is_string()) {
            let id = line["id"].as_str().expect("export id").to_owned();
            records::mark_archived(&mut conn, table, &[id], line["mergedInto"].as_str()).await.expect("archive");
        }
    }
    drop(conn);
    seed_edges(db, sim).await;
}

/// Copies the simulator's edges into `associations` (as a first full sync would), dated at the
/// end of the seeded history so every later change is newer.
pub async fn seed_edges(db: &TestDb, sim: &SimHandle) {
    let at = chrono::DateTime::from_timestamp_millis(hubspot_sim::data::seed::SEED_END_MS).expect("a time");
    let changes: Vec<EdgeChange> = expected_edges(sim)
        .into_iter()
        .map(|(from_type, from_id, to_type, to_id, type_id, category, label)| EdgeChange {
            edge: Edge {
                is_primary: matches!(type_id, 1 | 2 | 5 | 6),
                from_type,
                from_id,
                to_type,
                to_id,
                type_id,
                category,
                label,
            },
            removed: false,
            at,
        })
        .collect();
    let mut conn = db.conn().await;
    associations::upsert(&mut conn, changes).await.expect("seed edges");
}

/// An edge as compared: from type and id, to type and id, type id, category, label.
pub type EdgeKey = (String, String, String, String, i32, String, Option<String>);

/// Whether edges from this object type are compared (those from the kinds we keep).
fn compared(from_type: &str) -> bool {
    RECORD_KINDS.iter().any(|k| k.type_id() == Some(from_type))
}

/// The simulator's edges from contacts, deals and calls (both ends live).
pub fn expected_edges(sim: &SimHandle) -> std::collections::BTreeSet<EdgeKey> {
    sim.export_json("associations")
        .into_iter()
        .filter(|e| compared(e["fromObjectTypeId"].as_str().unwrap_or_default()))
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            let type_id = i32::try_from(e["typeId"].as_i64().unwrap_or_default()).unwrap_or_default();
            let label = e["label"].as_str().map(str::to_owned);
            (
                s("fromObjectTypeId"),
                s("fromObjectId"),
                s("toObjectTypeId"),
                s("toObjectId"),
                type_id,
                s("category"),
                label,
            )
        })
        .collect()
}

/// The live edges stored from contacts, deals and calls.
pub async fn stored_edges(db: &TestDb) -> std::collections::BTreeSet<EdgeKey> {
    let mut conn = db.conn().await;
    associations::all(&mut conn)
        .await
        .expect("edges")
        .into_iter()
        .filter(|e| !e.removed && compared(&e.from_type))
        .map(|e| (e.from_type, e.from_id, e.to_type, e.to_id, e.type_id, e.category, e.label))
        .collect()
}

/// Live edges from or to an archived record (the rule: an archived record has none).
pub async fn live_edges_of_archived(db: &TestDb) -> i64 {
    let mut sql = String::from("SELECT count(*) FROM associations a WHERE NOT a.removed AND (false");
    for kind in RECORD_KINDS {
        let table = RecordTable::for_kind(kind).expect("a record table");
        let (name, key, type_id) = (table.name(), table.key(), kind.type_id().unwrap_or_default());
        sql.push_str(&format!(
            " OR EXISTS (SELECT 1 FROM {name} r WHERE r.archived AND ((a.from_type = '{type_id}' AND a.from_id = r.{key}) \
             OR (a.to_type = '{type_id}' AND a.to_id = r.{key})))"
        ));
    }
    sql.push(')');
    db.count(&sql).await
}

/// Every difference between the stored live edges and the simulator's (the first 20 of each
/// side named), and live edges of archived records.
pub async fn edge_differences(db: &TestDb, sim: &SimHandle) -> Vec<String> {
    let expected = expected_edges(sim);
    let stored = stored_edges(db).await;
    let mut out: Vec<String> = expected.difference(&stored).take(20).map(|e| format!("edge missing: {e:?}")).collect();
    out.extend(stored.difference(&expected).take(20).map(|e| format!("edge extra: {e:?}")));
    let archived = live_edges_of_archived(db).await;
    if archived > 0 {
        out.push(format!("{archived} live edges of archived records"));
    }
    out
}

/// Waits (up to [`super::PATIENCE`]) for the stored edges to equal the simulator's: edges read in
/// the background after a record's first fetch may land a little after the rest.
pub async fn assert_edges_converged(db: &TestDb, sim: &SimHandle) {
    let deadline = std::time::Instant::now() + super::PATIENCE;
    loop {
        let diff = edge_differences(db, sim).await;
        if diff.is_empty() {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "edges differ:\n{}", diff.join("\n"));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// How merged-away records must look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merges {
    /// What the real-time path writes: archived with `merged_into` naming the survivor (what a
    /// merge webhook writes), and privacy-deleted contacts gone (not merely archived).
    Pointer,
    /// Archived (a full pass archives what HubSpot no longer lists, without knowing why); a
    /// `merged_into` that is set must still name the survivor.
    Archived,
}

/// A text column as stored: NUL characters dropped (PostgreSQL text cannot hold them).
fn text(v: &Value) -> Option<String> {
    v.as_str().map(|s| s.replace('\0', "")).filter(|s| !s.trim().is_empty())
}

fn ms(v: &Value) -> Option<String> {
    let s = v.as_str()?;
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis().to_string());
    }
    s.parse::<i64>().ok().map(|n| n.to_string())
}

fn deal_status(p: &Value) -> Option<String> {
    match (p["hs_is_closed"].as_str(), p["hs_is_closed_won"].as_str()) {
        (_, Some("true")) => Some("won".into()),
        (Some("true"), Some("false")) => Some("lost".into()),
        (Some("false"), _) => Some("open".into()),
        _ => None,
    }
}

fn amount(v: &Value) -> Option<String> {
    let s = v.as_str()?.trim();
    let mut parts = s.trim_start_matches('-').splitn(2, '.');
    let digits = |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let int_ok = digits(parts.next());
    let frac = parts.next();
    (int_ok && (frac.is_none() || digits(frac))).then(|| s.to_owned())
}

/// Expected named columns of one export line, in the order of [`columns`]: the named fields,
/// then `created_at`, `updated_at` (epoch ms) and `archived`.
pub fn expected(kind: ObjectKind, line: &Value) -> Vec<Option<String>> {
    let p = &line["properties"];
    let common = [ms(&line["createdAt"]), ms(&line["updatedAt"]), Some(line["archived"].to_string())];
    let named = match kind {
        ObjectKind::Contacts => {
            ["email", "firstname", "lastname", "phone", "hubspot_owner_id", "lifecyclestage", "hs_lead_status"]
                .iter()
                .map(|n| text(&p[*n]))
                .collect::<Vec<_>>()
        }
        ObjectKind::Deals => vec![
            text(&p["dealname"]),
            amount(&p["amount"]),
            text(&p["dealstage"]),
            deal_status(p),
            ms(&p["closedate"]),
            text(&p["hubspot_owner_id"]),
            text(&p["pipeline"]),
        ],
        ObjectKind::Calls => vec![
            text(&p["hs_call_title"]),
            text(&p["hs_call_direction"]),
            text(&p["hs_call_disposition"]),
            text(&p["hs_call_status"]),
            p["hs_call_duration"].as_str().and_then(|s| s.parse::<i64>().ok()).map(|n| n.to_string()),
            ms(&p["hs_timestamp"]),
            text(&p["hubspot_owner_id"]),
        ],
        ObjectKind::Owners => unreachable!("owners are compared by owner_differences"),
    };
    named.into_iter().chain(common).collect()
}

/// The named columns of a record table as text, in the order of [`expected`].
pub fn columns(kind: ObjectKind) -> String {
    let ms = |c: &str| format!("(extract(epoch FROM {c}) * 1000)::bigint::text");
    let common = format!("{}, {}, archived::text", ms("created_at"), ms("updated_at"));
    let named = match kind {
        ObjectKind::Contacts => "email, first_name, last_name, phone, owner_id, lifecycle_stage, status".to_owned(),
        ObjectKind::Deals => {
            format!("deal_name, deal_value::text, stage, status::text, {}, closer_id, pipeline", ms("close_date"))
        }
        ObjectKind::Calls => {
            format!("title, direction, disposition, status, duration_ms::text, {}, owner_id", ms("called_at"))
        }
        ObjectKind::Owners => unreachable!("owners are compared by owner_differences"),
    };
    format!("{named}, {common}")
}

fn key(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Contacts => "hubspot_contact_id",
        ObjectKind::Deals => "hubspot_deal_id",
        _ => "hubspot_call_id",
    }
}

/// One stored row: named columns (as [`expected`]), `merged_into`, the string properties.
pub struct Stored {
    pub values: Vec<Option<String>>,
    pub merged_into: Option<String>,
    pub properties: BTreeMap<String, String>,
}

impl Stored {
    fn archived(&self) -> bool {
        self.values.last().is_some_and(|v| v.as_deref() == Some("true"))
    }
}

/// String properties as `properties` keeps them: NUL written as the text `\u0000`
/// (`objects::values::NUL_ESCAPE`; jsonb cannot hold NUL).
fn string_props(value: &Value) -> BTreeMap<String, String> {
    let map = value.as_object().cloned().unwrap_or_default();
    let escape = |s: &str| s.replace('\0', hubspot_sync::objects::values::NUL_ESCAPE);
    map.into_iter().filter_map(|(k, v)| v.as_str().map(|s| (escape(&k), escape(s)))).collect()
}

/// Rows of a record table by HubSpot id.
pub async fn rows(db: &TestDb, kind: ObjectKind) -> HashMap<String, Stored> {
    let sql = format!(
        "SELECT {}, merged_into, properties::text, {} FROM {} WHERE portal_id = hubspot_sync_portal()",
        key(kind),
        columns(kind),
        kind.table()
    );
    let client = db.client().await;
    let mut out = HashMap::new();
    for row in client.query(&sql, &[]).await.expect("read the record table") {
        let values = (3..row.len()).map(|i| row.get::<_, Option<String>>(i)).collect();
        let properties = row
            .get::<_, Option<&str>>(2)
            .map(|p| string_props(&serde_json::from_str(p).expect("properties is JSON")))
            .unwrap_or_default();
        out.insert(row.get(0), Stored { values, merged_into: row.get(1), properties });
    }
    out
}

/// Every difference between PostgreSQL and the simulator's export for one record kind.
///
/// - A live record must be stored with equal named columns, times and string properties.
/// - An archived (deleted or merged-away) record is stored archived, or not at all (created and
///   deleted before anyone fetched it); a merged-away one points at its survivor, or at a record
///   that survivor was merged into since (HubSpot resolves reads along the chain). Its other columns are what was last fetched, which need
///   not be HubSpot's final values, so they are not compared.
/// - A stored row HubSpot no longer has (privacy deletion) must be archived ([`Merges::Archived`],
///   what a full pass leaves) or gone ([`Merges::Pointer`], what the privacy webhook does).
pub async fn differences(db: &TestDb, sim: &SimHandle, kind: ObjectKind, merges: Merges) -> Vec<String> {
    let mut stored = rows(db, kind).await;
    let export = sim.export_json(kind.as_str());
    // A merge survivor can be merged again: the chain of records an id now resolves through.
    let merged_into: HashMap<String, String> = export
        .iter()
        .filter_map(|l| Some((l["id"].as_str()?.to_owned(), l["mergedInto"].as_str()?.to_owned())))
        .collect();
    let chain = |id: &str| {
        let mut ids: Vec<String> = Vec::new();
        let mut at = id.to_owned();
        while let Some(next) = merged_into.get(&at).filter(|n| !ids.contains(n)) {
            ids.push(next.clone());
            at = next.clone();
        }
        ids
    };
    let mut diffs = Vec::new();
    for line in &export {
        let id = line["id"].as_str().expect("export id").to_owned();
        let archived = line["archived"].as_bool().expect("export archived");
        let want_merged = line["mergedInto"].as_str();
        let Some(row) = stored.remove(&id) else {
            if !archived {
                diffs.push(format!("{kind} {id}: live in HubSpot, missing in PostgreSQL"));
            }
            continue;
        };
        if archived {
            if !row.archived() {
                diffs.push(format!("{kind} {id}: archived in HubSpot, live in PostgreSQL"));
            }
            // The direct survivor, or one it was merged into since (what reading the id resolves to).
            let on_chain = |p: &str| chain(&id).iter().any(|c| c == p);
            let pointer_ok = match (merges, row.merged_into.as_deref()) {
                (_, Some(p)) => on_chain(p),
                (Merges::Pointer, None) => want_merged.is_none(),
                (Merges::Archived, None) => true,
            };
            if !pointer_ok {
                diffs.push(format!("{kind} {id}: merged_into {:?}, HubSpot says {want_merged:?}", row.merged_into));
            }
            continue;
        }
        let want = expected(kind, line);
        if row.values != want {
            diffs.push(format!("{kind} {id}: columns {:?}, HubSpot {want:?}", row.values));
        } else if row.merged_into.is_some() {
            diffs.push(format!("{kind} {id}: live but merged_into {:?}", row.merged_into));
        } else if row.properties != string_props(&line["properties"]) {
            diffs.push(format!("{kind} {id}: properties {:?}, HubSpot {}", row.properties, line["properties"]));
        }
    }
    for (id, row) in stored {
        if !row.archived() {
            diffs.push(format!("{kind} {id}: live in PostgreSQL, gone from HubSpot"));
        } else if merges == Merges::Pointer {
            diffs.push(format!("{kind} {id}: in PostgreSQL, erased from HubSpot (privacy deletion)"));
        }
    }
    diffs
}

/// Every difference between `staff` and the simulator's owners (one HubSpot removed must be
/// archived in `staff`).
pub async fn owner_differences(db: &TestDb, sim: &SimHandle) -> Vec<String> {
    let client = db.client().await;
    let sql = "SELECT id, email, first_name, last_name, archived FROM staff WHERE portal_id = hubspot_sync_portal()";
    let mut stored: HashMap<String, tokio_postgres::Row> =
        client.query(sql, &[]).await.expect("read staff").into_iter().map(|r| (r.get::<_, String>(0), r)).collect();
    let mut diffs = Vec::new();
    for owner in sim.export_json("owners") {
        let id = owner["id"].as_str().expect("owner id");
        let Some(row) = stored.remove(id) else {
            diffs.push(format!("owner {id}: missing in staff"));
            continue;
        };
        let got = (
            row.get::<_, Option<String>>(1),
            row.get::<_, Option<String>>(2),
            row.get::<_, Option<String>>(3),
            row.get::<_, bool>(4),
        );
        let want = (
            owner["email"].as_str().map(str::to_owned),
            owner["firstName"].as_str().map(str::to_owned),
            owner["lastName"].as_str().map(str::to_owned),
            owner["archived"].as_bool().unwrap_or(false),
        );
        if got != want {
            diffs.push(format!("owner {id}: {got:?}, HubSpot {want:?}"));
        }
    }
    // An owner HubSpot lists no more stays in `staff`, marked archived.
    diffs.extend(
        stored
            .iter()
            .filter(|(_, row)| !row.get::<_, bool>(4))
            .map(|(id, _)| format!("owner {id}: live in staff, not in HubSpot")),
    );
    diffs
}

/// Every difference of every record kind (and of owners, with `owners`).
pub async fn all_differences(db: &TestDb, sim: &SimHandle, merges: Merges, owners: bool) -> Vec<String> {
    let mut all = Vec::new();
    for kind in RECORD_KINDS {
        all.extend(differences(db, sim, kind, merges).await);
    }
    if owners {
        all.extend(owner_differences(db, sim).await);
    }
    all
}

/// Panics with the first differences unless there are none.
pub async fn assert_converged(db: &TestDb, sim: &SimHandle, merges: Merges, owners: bool) {
    let all = all_differences(db, sim, merges, owners).await;
    assert!(all.is_empty(), "{} differences, first ones:\n{}", all.len(), all[..all.len().min(10)].join("\n"));
}

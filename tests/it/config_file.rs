//! `HUBSPOT_SYNC_CONFIG` as a user runs it, with the real binary against `hubspot-sim`: typed
//! columns of every type over the simulator's custom properties equal HubSpot's values after a
//! full sync and after churn (a value of the wrong shape is NULL, never a failed record);
//! changing and removing mappings migrates safely and `serve` refuses a file `migrate` has not
//! applied; an invalid file is refused with its line named; `config suggest` writes a file
//! `config check` accepts; an exclude list keeps properties out of `properties`.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Output;

use hubspot_sim::{ChurnRequest, PlantRequest, Sim, SimHandle, SimOptions};
use hubspot_sync::config::file::builtin_columns;
use hubspot_sync::kind::ObjectKind;

use crate::harness::binary::command_for;
use crate::harness::{PATIENCE, TestDb, eventually, free_port, within};

async fn sim() -> SimHandle {
    Sim::start(SimOptions {
        contacts: 120,
        deals: 40,
        calls: 40,
        owners: 4,
        workers: 2,
        extra_properties: 8,
        ..SimOptions::default()
    })
    .await
    .unwrap()
}

/// The binary on `db` and `sim` with `HUBSPOT_SYNC_CONFIG` = `config` (when given).
async fn run(args: &[&str], db: &TestDb, sim: &SimHandle, config: Option<&std::path::Path>) -> Output {
    let mut cmd = command_for(db, sim);
    if let Some(path) = config {
        cmd.env("HUBSPOT_SYNC_CONFIG", path);
    }
    within(PATIENCE, "the command to finish", cmd.args(args).output()).await.unwrap()
}

fn out(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

/// Columns of every type over the simulator's custom properties (`--extra-properties 8` gives one
/// of each HubSpot type: `_000_text` string, `_001_count` number, `_002_at` datetime, `_003_on`
/// date, `_004_choice` enumeration, `_005_flag` bool, `_006_notes` textarea, `_007_tags`
/// multi-select), and the schema's own custom ones; `amount` carries the seed's type lies.
const MAPPING: &str = r#"
[contacts.columns]
c_text   = { property = "portal_custom_field_000_text", type = "text" }
c_count  = { property = "portal_custom_field_001_count", type = "integer", index = true }
c_at     = { property = "portal_custom_field_002_at", type = "timestamptz" }
c_on     = { property = "portal_custom_field_003_on", type = "date" }
c_choice = { property = "portal_custom_field_004_choice", type = "text" }
c_flag   = { property = "portal_custom_field_005_flag", type = "boolean" }
c_tags   = { property = "portal_custom_field_007_tags", type = "text[]", index = true }
nps      = { property = "nps_score", type = "numeric" }
c_at_day = { property = "portal_custom_field_002_at", type = "date" }

[deals.columns]
amount_num = { property = "amount", type = "numeric" }
months     = { property = "contract_length_months", type = "integer" }
d_at       = { property = "portal_custom_field_002_at", type = "timestamptz" }

[calls.columns]
follow_up = { property = "follow_up_required", type = "boolean" }
quality   = { property = "call_quality_score", type = "integer" }
c_tags    = { property = "portal_custom_field_007_tags", type = "text[]" }
"#;

/// How a column's value is read back as text, and what HubSpot's raw value must give.
#[derive(Clone, Copy)]
enum Kind {
    Text,
    Integer,
    Numeric,
    Boolean,
    Date,
    Timestamptz,
    TextArray,
}

fn mapping(kind: ObjectKind) -> Vec<(&'static str, &'static str, Kind)> {
    match kind {
        ObjectKind::Contacts => vec![
            ("c_text", "portal_custom_field_000_text", Kind::Text),
            ("c_count", "portal_custom_field_001_count", Kind::Integer),
            ("c_at", "portal_custom_field_002_at", Kind::Timestamptz),
            ("c_on", "portal_custom_field_003_on", Kind::Date),
            ("c_choice", "portal_custom_field_004_choice", Kind::Text),
            ("c_flag", "portal_custom_field_005_flag", Kind::Boolean),
            ("c_tags", "portal_custom_field_007_tags", Kind::TextArray),
            ("nps", "nps_score", Kind::Numeric),
            ("c_at_day", "portal_custom_field_002_at", Kind::Date),
        ],
        ObjectKind::Deals => vec![
            ("amount_num", "amount", Kind::Numeric),
            ("months", "contract_length_months", Kind::Integer),
            ("d_at", "portal_custom_field_002_at", Kind::Timestamptz),
        ],
        _ => vec![
            ("follow_up", "follow_up_required", Kind::Boolean),
            ("quality", "call_quality_score", Kind::Integer),
            ("c_tags", "portal_custom_field_007_tags", Kind::TextArray),
        ],
    }
}

/// The SQL that reads column `c` back as canonical text.
fn read_back(c: &str, kind: Kind) -> String {
    match kind {
        Kind::Text => c.to_owned(),
        Kind::Integer | Kind::Numeric | Kind::Boolean => format!("{c}::text"),
        Kind::Date => format!("to_char({c}, 'YYYY-MM-DD')"),
        Kind::Timestamptz => format!("(extract(epoch FROM {c}) * 1000)::bigint::text"),
        Kind::TextArray => format!("array_to_string({c}, ';')"),
    }
}

/// What HubSpot's raw value must give, in the same canonical text (None: NULL).
fn expected(raw: Option<&str>, kind: Kind) -> Option<String> {
    let raw = raw?;
    let v = raw.trim();
    // ISO 8601, or epoch milliseconds (years 1 to 9999).
    let datetime = |v: &str| {
        if !v.is_empty() && v.len() <= 15 && v.trim_start_matches('-').bytes().all(|b| b.is_ascii_digit()) {
            return v.parse::<i64>().ok().and_then(chrono::DateTime::from_timestamp_millis);
        }
        chrono::DateTime::parse_from_rfc3339(v).ok().map(|t| t.with_timezone(&chrono::Utc))
    };
    match kind {
        Kind::Text => Some(raw.to_owned()),
        Kind::Integer => v.parse::<i64>().ok().map(|n| n.to_string()),
        Kind::Numeric => {
            let decimal = !v.is_empty()
                && v.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
                && v.parse::<f64>().is_ok();
            decimal.then(|| v.to_owned())
        }
        Kind::Boolean => matches!(v, "true" | "false").then(|| v.to_owned()),
        Kind::Date => match chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            Ok(d) if v.len() == 10 => (chrono::Datelike::year(&d) >= 1).then(|| d.to_string()),
            _ => datetime(v).map(|t| t.date_naive().to_string()),
        },
        Kind::Timestamptz => datetime(v).map(|t| t.timestamp_millis().to_string()),
        Kind::TextArray => {
            let parts: Vec<&str> = v.split(';').map(str::trim).filter(|p| !p.is_empty()).collect();
            (!parts.is_empty()).then(|| parts.join(";"))
        }
    }
}

/// Every difference between the typed columns and the simulator's export (records merged away
/// left out), as readable lines.
async fn differences(db: &TestDb, sim: &SimHandle, kind: ObjectKind) -> Vec<String> {
    let columns = mapping(kind);
    let id = format!("hubspot_{}_id", &kind.as_str()[..kind.as_str().len() - 1]);
    let select: Vec<String> = columns.iter().map(|(c, _, k)| read_back(c, *k)).collect();
    let sql = format!("SELECT {id}, {} FROM {}", select.join(", "), kind.table());
    let client = db.client().await;
    let rows: BTreeMap<String, Vec<Option<String>>> = client
        .query(&sql, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get::<_, String>(0), (1..=columns.len()).map(|i| r.get::<_, Option<String>>(i)).collect()))
        .collect();
    let mut diffs = Vec::new();
    let export = sim.export_json(kind.as_str());
    assert!(!export.is_empty());
    for line in export.iter().filter(|l| !l["mergedInto"].is_string()) {
        let record = line["id"].as_str().unwrap();
        let Some(row) = rows.get(record) else {
            diffs.push(format!("{kind} {record}: no row"));
            continue;
        };
        for ((column, property, k), got) in columns.iter().zip(row) {
            let want = expected(line["properties"][*property].as_str(), *k);
            if &want != got {
                diffs.push(format!(
                    "{kind} {record}.{column}: {got:?}, HubSpot {:?} gives {want:?}",
                    line["properties"][*property]
                ));
            }
        }
    }
    diffs
}

async fn all_differences(db: &TestDb, sim: &SimHandle) -> Vec<String> {
    let mut diffs = Vec::new();
    for kind in ObjectKind::SYNCED_RECORDS {
        diffs.extend(differences(db, sim, kind).await);
    }
    diffs
}

async fn count(db: &TestDb, sql: &str) -> i64 {
    db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

/// A column's SQL type, if it exists.
async fn column_type(db: &TestDb, table: &str, column: &str) -> Option<String> {
    db.client()
        .await
        .query_opt(
            "SELECT format_type(atttypid, atttypmod) FROM pg_attribute \
             WHERE attrelid = $1::text::regclass AND attname = $2 AND NOT attisdropped",
            &[&table, &column],
        )
        .await
        .unwrap()
        .map(|r| r.get(0))
}

async fn has_index(db: &TestDb, name: &str) -> bool {
    count(db, &format!("SELECT count(*) FROM pg_indexes WHERE indexname = '{name}'")).await == 1
}

#[tokio::test]
async fn typed_columns_equal_hubspot_values_after_a_full_sync_and_after_churn() {
    let db = TestDb::new().await;
    let sim = sim().await;
    let config = file(MAPPING);
    let check = run(&["config", "check"], &db, &sim, Some(config.path())).await;
    assert_eq!(check.status.code(), Some(0), "{}", out(&check));
    let migrate = run(&["migrate"], &db, &sim, Some(config.path())).await;
    assert_eq!(migrate.status.code(), Some(0), "{}", out(&migrate));
    assert!(
        out(&migrate)
            .contains("add column contacts.c_count (integer from property portal_custom_field_001_count, indexed)"),
        "{}",
        out(&migrate)
    );
    assert_eq!(column_type(&db, "contacts", "c_count").await.as_deref(), Some("bigint"));
    assert_eq!(column_type(&db, "contacts", "c_tags").await.as_deref(), Some("text[]"));
    assert!(has_index(&db, "contacts_c_count_mapped_idx").await);
    let again = run(&["migrate"], &db, &sim, Some(config.path())).await;
    assert!(out(&again).contains("typed columns are up to date"), "{}", out(&again));

    let full = run(&["sync", "all", "--full"], &db, &sim, Some(config.path())).await;
    assert_eq!(full.status.code(), Some(0), "{}", out(&full));
    let diffs = all_differences(&db, &sim).await;
    assert!(diffs.is_empty(), "{} differences, first: {:#?}", diffs.len(), &diffs[..diffs.len().min(10)]);
    // The seed's type lies ("", "1;2" for amount) are NULL, not failures.
    let lies = sim
        .export_json("deals")
        .iter()
        .filter(|l| matches!(l["properties"]["amount"].as_str(), Some("" | "1;2")))
        .count();
    assert!(lies > 0, "the seed has type lies in amount");
    assert!(count(&db, "SELECT count(*) FROM deals WHERE amount_num IS NOT NULL").await > 0);

    // Churn, then values of the wrong shape planted in records of every type.
    for object in ["contacts", "deals", "calls"] {
        let churn = ChurnRequest { object: object.into(), creates: 5, updates: 10, deletes: 2, ..Default::default() };
        sim.churn(&churn).unwrap();
    }
    let live = |object: &str| -> Vec<String> {
        sim.export_json(object)
            .into_iter()
            .filter(|l| l["archived"] != true && !l["mergedInto"].is_string())
            .map(|l| l["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let contacts = live("contacts");
    let wrong: [&[(&str, &str)]; 3] = [
        &[
            ("portal_custom_field_001_count", "12abc"),
            ("portal_custom_field_002_at", "2025-13-45T99:00:00Z"),
            ("portal_custom_field_003_on", "2025-02-30"),
            ("portal_custom_field_005_flag", "maybe"),
            ("portal_custom_field_007_tags", " ; ;"),
            ("nps_score", "NaN"),
        ],
        &[
            ("portal_custom_field_001_count", "99999999999999999999999"),
            ("portal_custom_field_002_at", "99999999999999999"),
            ("portal_custom_field_003_on", "0000-01-01"),
            ("portal_custom_field_005_flag", ""),
            ("nps_score", "4\u{0}2"),
        ],
        &[
            ("portal_custom_field_001_count", " 42 "),
            ("portal_custom_field_002_at", "1748736000123"),
            ("portal_custom_field_003_on", "1748736000000"),
            ("portal_custom_field_005_flag", "false"),
            ("portal_custom_field_007_tags", "alpha;;beta"),
        ],
    ];
    for (id, values) in contacts.iter().zip(wrong) {
        let properties = values.iter().map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned()))).collect();
        sim.plant(&PlantRequest { object: "contacts".into(), id: id.clone(), properties }).unwrap();
    }
    let deal = live("deals")[0].clone();
    let properties = [
        ("amount".to_owned(), Some("twelve".to_owned())),
        ("contract_length_months".to_owned(), Some("3.5".to_owned())),
    ];
    sim.plant(&PlantRequest { object: "deals".into(), id: deal.clone(), properties: properties.into_iter().collect() })
        .unwrap();

    // An incremental run searches up to a few seconds ago (HubSpot's clock skew): run until the
    // changes are inside its window.
    eventually(PATIENCE, "incremental runs copy the churned and planted values", || async {
        let incremental = run(&["sync", "contacts", "deals", "calls"], &db, &sim, Some(config.path())).await;
        assert_eq!(incremental.status.code(), Some(0), "{}", out(&incremental));
        assert!(out(&incremental).contains("incremental"), "{}", out(&incremental));
        all_differences(&db, &sim).await.is_empty()
    })
    .await;
    let client = db.client().await;
    let row = client
        .query_one(
            "SELECT c_count, (extract(epoch FROM c_at) * 1000)::bigint, to_char(c_on, 'YYYY-MM-DD'), c_flag, c_tags, nps::text, \
             properties->>'portal_custom_field_001_count' \
             FROM contacts WHERE hubspot_contact_id = $1",
            &[&contacts[0]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), None);
    assert_eq!(row.get::<_, Option<i64>>(1), None);
    assert_eq!(row.get::<_, Option<String>>(2), None);
    assert_eq!(row.get::<_, Option<bool>>(3), None);
    assert_eq!(row.get::<_, Option<Vec<String>>>(4), None);
    assert_eq!(row.get::<_, Option<String>>(5), None, "NaN is not a number HubSpot sends");
    assert_eq!(row.get::<_, Option<String>>(6).as_deref(), Some("12abc"), "properties keeps HubSpot's value");
    let row = client
        .query_one(
            "SELECT c_count, (extract(epoch FROM c_at) * 1000)::bigint, to_char(c_on, 'YYYY-MM-DD'), c_flag, c_tags \
             FROM contacts WHERE hubspot_contact_id = $1",
            &[&contacts[2]],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, Option<i64>>(0), Some(42));
    assert_eq!(row.get::<_, Option<i64>>(1), Some(1_748_736_000_123));
    assert_eq!(row.get::<_, Option<String>>(2).as_deref(), Some("2025-06-01"));
    assert_eq!(row.get::<_, Option<bool>>(3), Some(false));
    assert_eq!(row.get::<_, Option<Vec<String>>>(4), Some(vec!["alpha".to_owned(), "beta".to_owned()]));
    let nulls = count(
        &db,
        &format!(
            "SELECT count(*) FROM deals WHERE hubspot_deal_id = '{deal}' AND amount_num IS NULL AND months IS NULL"
        ),
    )
    .await;
    assert_eq!(nulls, 1);
    assert_eq!(count(&db, "SELECT count(*) FROM sync_failures").await, 0, "no record failed");
    assert_eq!(count(&db, "SELECT coalesce(sum(records_failed), 0)::bigint FROM sync_logs").await, 0);
}

/// `serve` on `db` with `config`: its exit code and output when it refuses to start.
async fn serve_refused(db: &TestDb, sim: &SimHandle, config: &std::path::Path) -> Output {
    let mut cmd = command_for(db, sim);
    cmd.arg("serve")
        .env("HUBSPOT_SYNC_CONFIG", config)
        .env("BIND", "127.0.0.1")
        .env("PORT", free_port().to_string())
        .env("METRICS_PORT", "0")
        .kill_on_drop(true);
    within(PATIENCE, "serve to refuse to start", cmd.output()).await.unwrap()
}

#[tokio::test]
async fn changed_and_removed_mappings_migrate_and_serve_waits_for_migrate() {
    let db = TestDb::new().await;
    let sim = sim().await;
    let before = file(
        "[contacts.columns]\nc_count = { property = \"portal_custom_field_001_count\", type = \"integer\", index = true }\n\
         c_text = { property = \"portal_custom_field_000_text\", type = \"text\" }\n\
         c_flag = { property = \"portal_custom_field_005_flag\", type = \"boolean\" }\n",
    );
    let migrate = run(&["migrate"], &db, &sim, Some(before.path())).await;
    assert_eq!(migrate.status.code(), Some(0), "{}", out(&migrate));
    let full = run(&["sync", "contacts", "--full"], &db, &sim, Some(before.path())).await;
    assert_eq!(full.status.code(), Some(0), "{}", out(&full));
    assert!(count(&db, "SELECT count(*) FROM contacts WHERE c_count IS NOT NULL").await > 0);

    // c_count becomes numeric without its index, c_text goes, c_flag stays, c_on comes.
    let after = file(
        "[contacts.columns]\nc_count = { property = \"portal_custom_field_001_count\", type = \"numeric\" }\n\
         c_flag = { property = \"portal_custom_field_005_flag\", type = \"boolean\", index = true }\n\
         c_on = { property = \"portal_custom_field_003_on\", type = \"date\" }\n",
    );
    let refused = serve_refused(&db, &sim, after.path()).await;
    assert_eq!(refused.status.code(), Some(1), "{}", out(&refused));
    assert!(out(&refused).contains("run `hubspot-sync migrate`"), "{}", out(&refused));
    assert!(out(&refused).contains("drop column contacts.c_text"), "{}", out(&refused));
    let migrate = run(&["migrate"], &db, &sim, Some(after.path())).await;
    assert_eq!(migrate.status.code(), Some(0), "{}", out(&migrate));
    let said = out(&migrate);
    for change in [
        "drop column contacts.c_count",
        "drop column contacts.c_text",
        "add column contacts.c_count (numeric",
        "add column contacts.c_on (date",
        "create index on contacts.c_flag",
    ] {
        assert!(said.contains(change), "{change}: {said}");
    }
    assert_eq!(column_type(&db, "contacts", "c_text").await, None, "a removed mapping drops its column");
    assert_eq!(column_type(&db, "contacts", "c_count").await.as_deref(), Some("numeric"));
    assert!(!has_index(&db, "contacts_c_count_mapped_idx").await);
    assert!(has_index(&db, "contacts_c_flag_mapped_idx").await);
    // The new columns are computed from the rows already there, no sync needed.
    let filled = count(&db, "SELECT count(*) FROM contacts WHERE c_on IS NOT NULL AND c_count IS NOT NULL").await;
    assert!(filled > 0);
    let kept = count(&db, "SELECT count(*) FROM contacts WHERE properties ? 'portal_custom_field_000_text'").await;
    assert!(kept > 0, "properties is untouched");

    let server = crate::harness::binary::ServeBinary::new(&db.url())
        .hubspot(&sim)
        .quiet_schedules()
        .env("HUBSPOT_SYNC_CONFIG", after.path())
        .spawn()
        .await;
    server.kill().await;

    // No file at all: every typed column goes.
    let migrate = run(&["migrate"], &db, &sim, None).await;
    assert_eq!(migrate.status.code(), Some(0), "{}", out(&migrate));
    assert_eq!(count(&db, "SELECT count(*) FROM mapped_columns").await, 0);
    for column in ["c_count", "c_flag", "c_on"] {
        assert_eq!(column_type(&db, "contacts", column).await, None, "{column}");
    }
}

#[tokio::test]
async fn an_invalid_config_is_refused_with_its_line_named() {
    let db = TestDb::new().await;
    let sim = sim().await;
    // Bad in itself: an unknown type on line 3.
    let broken = file(
        "[contacts.columns]\nok = { property = \"nps_score\", type = \"numeric\" }\nbad = { property = \"nps_score\", type = \"int\" }\n",
    );
    let check = run(&["config", "check"], &db, &sim, Some(broken.path())).await;
    assert_eq!(check.status.code(), Some(1), "{}", out(&check));
    assert!(out(&check).contains("line 3"), "{}", out(&check));
    let migrate = run(&["migrate"], &db, &sim, Some(broken.path())).await;
    assert_eq!(migrate.status.code(), Some(2), "{}", out(&migrate));
    assert!(out(&migrate).contains("line 3"), "{}", out(&migrate));
    assert_eq!(count(&db, "SELECT count(*) FROM mapped_columns").await, 0);

    // Bad against HubSpot: a property it does not have (line 2), an enumeration as integer (line 4).
    let wrong = file(
        "[contacts.columns]\nghost = { property = \"no_such_property\", type = \"text\" }\n\
         nps = { property = \"nps_score\", type = \"integer\" }\n\
         tier = { property = \"membership_tier\", type = \"integer\" }\n",
    );
    let check = run(&["config", "check"], &db, &sim, Some(wrong.path())).await;
    assert_eq!(check.status.code(), Some(1), "{}", out(&check));
    let said = out(&check);
    assert!(said.contains("line 2") && said.contains("no_such_property"), "{said}");
    assert!(said.contains("line 4") && said.contains("cannot hold \"membership_tier\""), "{said}");
    assert!(!said.contains("line 3"), "{said}");
    // migrate applies what the file says (it needs no HubSpot); serve checks against HubSpot.
    let migrate = run(&["migrate"], &db, &sim, Some(wrong.path())).await;
    assert_eq!(migrate.status.code(), Some(0), "{}", out(&migrate));
    let refused = serve_refused(&db, &sim, wrong.path()).await;
    assert_eq!(refused.status.code(), Some(2), "{}", out(&refused));
    assert!(out(&refused).contains("line 4"), "{}", out(&refused));

    // A pipeline filter is for deals only.
    let filtered = file(
        "[contacts.columns]\nnps = { property = \"nps_score\", type = \"numeric\" }\n\n[contacts.filter]\npipelines = [\"default\"]\n",
    );
    let check = run(&["config", "check"], &db, &sim, Some(filtered.path())).await;
    assert_eq!(check.status.code(), Some(1), "{}", out(&check));
    assert!(out(&check).contains("line 4") && out(&check).contains("deals only"), "{}", out(&check));
    let sync = run(&["sync", "contacts"], &db, &sim, Some(filtered.path())).await;
    assert_eq!(sync.status.code(), Some(2), "{}", out(&sync));
    assert!(out(&sync).contains("line 4"), "{}", out(&sync));

    // Bad usage: no file named.
    let usage = run(&["config", "check"], &db, &sim, None).await;
    assert_eq!(usage.status.code(), Some(2), "{}", out(&usage));
    assert!(out(&usage).contains("HUBSPOT_SYNC_CONFIG"), "{}", out(&usage));
}

#[tokio::test]
async fn config_suggest_writes_a_file_config_check_and_migrate_accept() {
    let db = TestDb::new().await;
    let sim = sim().await;
    let mut text = String::new();
    for object in ["contacts", "deals", "calls"] {
        let suggest = run(&["config", "suggest", object], &db, &sim, None).await;
        assert_eq!(suggest.status.code(), Some(0), "{}", out(&suggest));
        text.push_str(&String::from_utf8_lossy(&suggest.stdout));
    }
    assert!(
        text.contains(
            "portal_custom_field_007_tags = { property = \"portal_custom_field_007_tags\", type = \"text[]\" }"
        ),
        "{text}"
    );
    assert!(text.contains("nps_score = { property = \"nps_score\", type = \"numeric\" }"), "{text}");
    let config = file(&text);
    let check = run(&["config", "check"], &db, &sim, Some(config.path())).await;
    assert_eq!(check.status.code(), Some(0), "{text}\n{}", out(&check));
    let migrate = run(&["migrate"], &db, &sim, Some(config.path())).await;
    assert_eq!(migrate.status.code(), Some(0), "{}", out(&migrate));
    let full = run(&["sync", "all", "--full"], &db, &sim, Some(config.path())).await;
    assert_eq!(full.status.code(), Some(0), "{}", out(&full));
    assert_eq!(count(&db, "SELECT count(*) FROM sync_failures").await, 0);
    let mapped = count(&db, "SELECT count(*) FROM mapped_columns").await;
    assert!(mapped >= 3 * 8, "{mapped}");
    let bad = run(&["config", "suggest", "owners"], &db, &sim, None).await;
    assert_eq!(bad.status.code(), Some(2), "{}", out(&bad));
}

#[tokio::test]
async fn an_exclude_list_keeps_properties_out_of_the_copy_and_the_requests() {
    let db = TestDb::new().await;
    let sim = sim().await;
    let config = file(
        "[contacts.columns]\nc_count = { property = \"portal_custom_field_001_count\", type = \"integer\" }\n\n\
         [contacts.properties]\nexclude = [\"portal_*\", \"signup_*\"]\n\n\
         [calls.properties]\ninclude = [\"call_quality_*\"]\n",
    );
    let migrate = run(&["migrate"], &db, &sim, Some(config.path())).await;
    assert_eq!(migrate.status.code(), Some(0), "{}", out(&migrate));
    let full = run(&["sync", "all", "--full"], &db, &sim, Some(config.path())).await;
    assert_eq!(full.status.code(), Some(0), "{}", out(&full));
    let client = db.client().await;
    let keys = |sql: &'static str| {
        let client = &client;
        async move {
            client
                .query(sql, &[])
                .await
                .unwrap()
                .into_iter()
                .map(|r| r.get::<_, String>(0))
                .collect::<BTreeSet<String>>()
        }
    };
    let contact_keys = keys("SELECT DISTINCT jsonb_object_keys(properties) FROM contacts").await;
    assert!(contact_keys.contains("email") && contact_keys.contains("nps_score"), "{contact_keys:?}");
    assert!(contact_keys.contains("portal_custom_field_001_count"), "a mapped property is always asked for");
    let left_out: Vec<&String> = contact_keys
        .iter()
        .filter(|k| k.starts_with("signup_") || (k.starts_with("portal_") && !k.ends_with("001_count")))
        .collect();
    assert!(left_out.is_empty(), "{left_out:?}");
    assert!(count(&db, "SELECT count(*) FROM contacts WHERE c_count IS NOT NULL").await > 0);
    let call_keys = keys("SELECT DISTINCT jsonb_object_keys(properties) FROM calls").await;
    let core: BTreeSet<String> = ObjectKind::Calls.core_properties().iter().map(|p| (*p).to_owned()).collect();
    let extra: Vec<&String> =
        call_keys.iter().filter(|k| !core.contains(*k) && k.as_str() != "call_quality_score").collect();
    assert!(extra.is_empty(), "calls keep their own properties and call_quality_score only: {extra:?}");
    assert!(call_keys.contains("call_quality_score"), "{call_keys:?}");
    // Deals say nothing: every property.
    let deal_keys = keys("SELECT DISTINCT jsonb_object_keys(properties) FROM deals").await;
    assert!(deal_keys.contains("portal_custom_field_006_notes"), "{deal_keys:?}");
}

/// The columns a mapping may not take are exactly the record tables' own.
#[tokio::test]
async fn builtin_columns_are_the_tables_columns() {
    let db = TestDb::new().await;
    let client = db.client().await;
    for kind in ObjectKind::SYNCED_RECORDS {
        let rows = client
            .query(
                "SELECT column_name::text FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1",
                &[&kind.table()],
            )
            .await
            .unwrap();
        let actual: BTreeSet<String> = rows.into_iter().map(|r| r.get(0)).collect();
        let listed: BTreeSet<String> = builtin_columns(kind).iter().map(|c| (*c).to_owned()).collect();
        assert_eq!(actual, listed, "{kind}");
    }
}

//! `HUBSPOT_SYNC_CONFIG`'s filters on a running server fed by `hubspot-sim`'s webhooks: a
//! pipeline filter keeps exactly the matching deals live through a full pass, webhooks and an
//! incremental run, with deals moving out (archived, the reason in
//! `properties->>'_hubspot_sync_filtered'`) and in (live again); an owner filter likewise for
//! contacts; `sync_logs` counts the records filtered out.

use std::collections::BTreeSet;

use hubspot_sim::{PlantRequest, SimHandle, SimOptions};

use crate::harness::{PATIENCE, TestApp, TestDb, eventually};

const TOKEN: &str = "filter-admin-token";
const RENEWALS: &str = "75e28846";

fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
    f
}

async fn app(config: &std::path::Path) -> TestApp {
    let options = SimOptions { contacts: 80, deals: 120, calls: 10, owners: 6, workers: 2, ..SimOptions::default() };
    TestApp::builder()
        .sim(options)
        .sim_webhooks(|_| {})
        .admin_token(TOKEN)
        .arg("--hubspot-sync-config", config.to_str().unwrap())
        .start()
        .await
}

/// Live (not archived, not merged away) records of `object` whose `property` satisfies `keep`.
fn live_ids(sim: &SimHandle, object: &str, keep: impl Fn(Option<&str>) -> bool, property: &str) -> BTreeSet<String> {
    sim.export_json(object)
        .into_iter()
        .filter(|l| l["archived"] != true && !l["mergedInto"].is_string())
        .filter(|l| keep(l["properties"][property].as_str()))
        .map(|l| l["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn live_rows(db: &TestDb, table: &str, key: &str) -> BTreeSet<String> {
    let sql = format!("SELECT {key} FROM {table} WHERE NOT archived");
    db.client().await.query(&sql, &[]).await.unwrap().into_iter().map(|r| r.get(0)).collect()
}

async fn reason(db: &TestDb, table: &str, key: &str, id: &str) -> Option<String> {
    let sql = format!("SELECT properties->>'_hubspot_sync_filtered' FROM {table} WHERE {key} = $1 AND archived");
    db.client().await.query_opt(&sql, &[&id]).await.unwrap().and_then(|r| r.get(0))
}

/// Forces a run of `object` and waits until it (and any other run of it, such as the startup
/// run) has finished, each a success (a trigger coalesced into a running run may start one more
/// after it: that one is left running).
async fn run(app: &TestApp, object: &str, full: bool) {
    let finished = format!("SELECT count(*) FROM sync_logs WHERE sync_type = '{object}' AND status <> 'running'");
    let running = format!("SELECT count(*) FROM sync_logs WHERE sync_type = '{object}' AND status = 'running'");
    let before = app.db.count(&finished).await;
    let response = reqwest::Client::new()
        .post(app.url(&format!("/api/sync/{object}?full={full}")))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    eventually(PATIENCE, "the run finishes", || async {
        app.db.count(&finished).await > before && app.db.count(&running).await == 0
    })
    .await;
    let bad = format!(
        "SELECT mode || ' ' || status || ' ' || coalesce(error_details::text, '') FROM sync_logs \
         WHERE sync_type = '{object}' AND status NOT IN ('success', 'running')"
    );
    let bad: Vec<String> =
        app.db.client().await.query(&bad, &[]).await.unwrap().into_iter().map(|r| r.get(0)).collect();
    assert!(bad.is_empty(), "{bad:?}");
}

fn plant(sim: &SimHandle, object: &str, id: &str, property: &str, value: &str) {
    let properties = [(property.to_owned(), Some(value.to_owned()))].into_iter().collect();
    sim.plant(&PlantRequest { object: object.into(), id: id.into(), properties }).unwrap();
}

#[tokio::test]
async fn a_pipeline_filter_keeps_exactly_the_matching_deals() {
    let config = file("[deals.filter]\npipelines = [\"default\"]\n");
    let mut app = app(config.path()).await;
    let sim = app.sim.take().unwrap();
    let matching = |sim: &SimHandle| live_ids(sim, "deals", |p| p == Some("default"), "pipeline");
    run(&app, "deals", true).await;
    let expected = matching(&sim);
    assert!(expected.len() > 10, "{expected:?}");
    assert_eq!(live_rows(&app.db, "deals", "hubspot_deal_id").await, expected, "after a full pass");
    let renewals = live_ids(&sim, "deals", |p| p == Some(RENEWALS), "pipeline");
    assert!(!renewals.is_empty());
    let outside = renewals.iter().next().unwrap().clone();
    assert_eq!(
        reason(&app.db, "deals", "hubspot_deal_id", &outside).await.as_deref(),
        Some("pipeline 75e28846 is not in the filter")
    );
    // The copy keeps nothing of a deal outside the filter but what it was judged by (and its
    // owner, so leaving the filter is not an owner change).
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT deal_name IS NULL AND deal_value IS NULL AND stage IS NULL, pipeline, \
             (SELECT string_agg(k, ',' ORDER BY k) FROM jsonb_object_keys(properties) k \
              WHERE k <> 'hubspot_owner_id') FROM deals WHERE hubspot_deal_id = $1",
            &[&outside],
        )
        .await
        .unwrap();
    let (blank, pipeline, keys): (bool, Option<String>, String) = (row.get(0), row.get(1), row.get(2));
    assert!(blank, "no name, amount or stage of a deal outside the filter");
    assert_eq!(pipeline.as_deref(), Some("75e28846"));
    assert_eq!(keys, "_hubspot_sync_filtered,hs_object_id,pipeline");
    let filtered: i64 = app
        .db
        .count("SELECT coalesce(sum((error_details->'details'->>'filtered')::bigint), 0)::bigint FROM sync_logs WHERE sync_type = 'deals'")
        .await;
    assert!(filtered >= renewals.len() as i64, "sync_logs counts the filtered records: {filtered}");

    // A deal moves out of the pipeline, another moves in: the webhooks carry both.
    let leaving = expected.iter().next().unwrap().clone();
    plant(&sim, "deals", &leaving, "pipeline", RENEWALS);
    plant(&sim, "deals", &outside, "pipeline", "default");
    eventually(PATIENCE, "the moves are copied", || async {
        live_rows(&app.db, "deals", "hubspot_deal_id").await == matching(&sim)
    })
    .await;
    assert!(reason(&app.db, "deals", "hubspot_deal_id", &leaving).await.is_some(), "archived with the reason");
    let revived: Option<String> = app
        .db
        .client()
        .await
        .query_one("SELECT properties->>'_hubspot_sync_filtered' FROM deals WHERE hubspot_deal_id = $1", &[&outside])
        .await
        .unwrap()
        .get(0);
    assert_eq!(revived, None, "a deal that moves in is live with HubSpot's properties only");

    // An incremental run (its search carries the filter) keeps the copy exact.
    let renamed = matching(&sim).into_iter().nth(1).unwrap();
    plant(&sim, "deals", &renamed, "dealname", "Renamed by the test");
    assert!(sim.wait_webhooks_idle(PATIENCE).await);
    run(&app, "deals", false).await;
    assert_eq!(live_rows(&app.db, "deals", "hubspot_deal_id").await, matching(&sim));
    let sql =
        format!("SELECT count(*) FROM deals WHERE hubspot_deal_id = '{renamed}' AND deal_name = 'Renamed by the test'");
    eventually(PATIENCE, "the renamed deal is stored", || async { app.db.count(&sql).await == 1 }).await;

    // The drift audit counts the filtered rows as in step, not as missing.
    let audit = crate::harness::binary::command_for(&app.db, &sim)
        .args(["audit", "deals"])
        .env("HUBSPOT_SYNC_CONFIG", config.path())
        .output()
        .await
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&audit.stdout), String::from_utf8_lossy(&audit.stderr));
    assert_eq!(audit.status.code(), Some(0), "{said}");
    app.stop().await;
}

#[tokio::test]
async fn an_owner_filter_keeps_exactly_the_contacts_of_those_owners() {
    // Owners of the seeded portal: 10_000_001 + i * 37; the first two.
    let owners = ["10000001", "10000038"];
    let config = file(&format!("[contacts.filter]\nowners = [\"{}\", \"{}\"]\n", owners[0], owners[1]));
    let mut app = app(config.path()).await;
    let sim = app.sim.take().unwrap();
    let matching =
        |sim: &SimHandle| live_ids(sim, "contacts", |o| o.is_some_and(|o| owners.contains(&o)), "hubspot_owner_id");
    run(&app, "contacts", true).await;
    let expected = matching(&sim);
    assert!(!expected.is_empty());
    assert_eq!(live_rows(&app.db, "contacts", "hubspot_contact_id").await, expected, "after a full pass");

    // A contact reassigned to another owner leaves; one assigned to a listed owner comes in.
    let leaving = expected.iter().next().unwrap().clone();
    let arriving = live_ids(&sim, "contacts", |o| o.is_some_and(|o| !owners.contains(&o)), "hubspot_owner_id")
        .into_iter()
        .next()
        .unwrap();
    plant(&sim, "contacts", &leaving, "hubspot_owner_id", "10000075");
    plant(&sim, "contacts", &arriving, "hubspot_owner_id", owners[1]);
    eventually(PATIENCE, "the reassignments are copied", || async {
        live_rows(&app.db, "contacts", "hubspot_contact_id").await == matching(&sim)
    })
    .await;
    assert_eq!(
        reason(&app.db, "contacts", "hubspot_contact_id", &leaving).await.as_deref(),
        Some("hubspot_owner_id 10000075 is not in the filter")
    );
    app.stop().await;
}

/// Forces a run of `object` on the server at `base` and waits until no run of it is running and
/// one more has finished.
async fn run_at(base: &str, db: &TestDb, object: &str, full: bool) {
    let finished = format!("SELECT count(*) FROM sync_logs WHERE sync_type = '{object}' AND status <> 'running'");
    let running = format!("SELECT count(*) FROM sync_logs WHERE sync_type = '{object}' AND status = 'running'");
    let before = db.count(&finished).await;
    let response = reqwest::Client::new()
        .post(format!("{base}/api/sync/{object}?full={full}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    eventually(PATIENCE, "the run finishes", || async {
        db.count(&finished).await > before && db.count(&running).await == 0
    })
    .await;
}

async fn reload(base: &str) -> (u16, serde_json::Value) {
    let response =
        reqwest::Client::new().post(format!("{base}/api/config/reload")).bearer_auth(TOKEN).send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn the_file_reloads_on_sighup_and_through_the_api() {
    let db = TestDb::new().await;
    let options = SimOptions { contacts: 20, deals: 80, calls: 10, owners: 4, workers: 2, ..SimOptions::default() };
    let sim = hubspot_sim::Sim::start(options).await.unwrap();
    let config = file("# nothing yet\n");
    let server = crate::harness::binary::ServeBinary::new(&db.url())
        .hubspot(&sim)
        .quiet_schedules()
        .env("ADMIN_TOKEN", TOKEN)
        .env("HUBSPOT_SYNC_CONFIG", config.path())
        .spawn()
        .await;
    let all = live_ids(&sim, "deals", |_| true, "pipeline");
    let default = live_ids(&sim, "deals", |p| p == Some("default"), "pipeline");
    assert!(default.len() < all.len());
    run_at(&server.base, &db, "deals", true).await;
    assert_eq!(live_rows(&db, "deals", "hubspot_deal_id").await, all, "no filter yet");

    // SIGHUP: the pipeline filter takes effect for the next writes.
    std::fs::write(config.path(), "[deals.filter]\npipelines = [\"default\"]\n").unwrap();
    server.signal("-HUP");
    eventually(PATIENCE, "the reloaded filter applies", || async {
        run_at(&server.base, &db, "deals", true).await;
        live_rows(&db, "deals", "hubspot_deal_id").await == default
    })
    .await;

    // Refused through the API, each naming why; the filter in force stays.
    std::fs::write(config.path(), "[deals.filter]\npipelines = [\"default\"]\n\n[deals.columns]\nx = { property = \"amount\", type = \"money\" }\n").unwrap();
    let (status, body) = reload(&server.base).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"].as_str().unwrap().contains("line 5"), "{body}");
    std::fs::write(config.path(), "[deals.columns]\namount_num = { property = \"amount\", type = \"numeric\" }\n")
        .unwrap();
    let (status, body) = reload(&server.base).await;
    assert_eq!(status, 409, "{body}");
    assert!(body["error"].as_str().unwrap().contains("hubspot-sync migrate"), "{body}");
    let unauthorized = reqwest::Client::new().post(server.url("/api/config/reload")).send().await.unwrap();
    assert_eq!(unauthorized.status().as_u16(), 401);
    run_at(&server.base, &db, "deals", true).await;
    assert_eq!(live_rows(&db, "deals", "hubspot_deal_id").await, default, "the filter in force is kept");

    // A valid file without the filter: every deal is live again after the next full pass.
    std::fs::write(config.path(), "# no filter\n").unwrap();
    let (status, body) = reload(&server.base).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "reloaded", "{body}");
    run_at(&server.base, &db, "deals", true).await;
    // A live record read after its row was archived revives it (`store::records::revived`),
    // whatever its `updatedAt`: the deals the filter archived come back, without the reason.
    assert_eq!(live_rows(&db, "deals", "hubspot_deal_id").await, all);
    let reasons =
        db.count("SELECT count(*) FROM deals WHERE properties ? '_hubspot_sync_filtered' AND NOT archived").await;
    assert_eq!(reasons, 0);
    server.kill().await;
}

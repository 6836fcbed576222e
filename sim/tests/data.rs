//! Seeded determinism, export shape, churn round trips and the large-data start-up.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use hubspot_sim::{ChurnRequest, Sim, SimOptions};
use serde_json::Value;
use std::collections::HashMap;

fn opts(seed: u64) -> SimOptions {
    SimOptions { contacts: 400, deals: 150, calls: 300, owners: 12, seed, workers: 1, ..Default::default() }
}

#[tokio::test]
async fn same_seed_same_data() {
    let a = Sim::start(opts(7)).await.unwrap();
    let b = Sim::start(opts(7)).await.unwrap();
    let c = Sim::start(opts(8)).await.unwrap();
    for o in ["contacts", "deals", "calls", "owners"] {
        assert_eq!(a.export(o), b.export(o), "{o}");
        assert_ne!(a.export(o), c.export(o), "{o}");
    }
    let ra = a.churn(&ChurnRequest { object: "deals".into(), updates: 5, merges: 1, ..Default::default() }).unwrap();
    let rb = b.churn(&ChurnRequest { object: "deals".into(), updates: 5, merges: 1, ..Default::default() }).unwrap();
    assert_eq!(ra.updated, rb.updated);
    a.shutdown().await;
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test]
async fn export_shape_and_realistic_values() {
    let h = Sim::start(opts(3)).await.unwrap();
    let contacts = h.export_json("contacts");
    let owners: Vec<String> = h.export_json("owners").iter().map(|o| o["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(owners.len(), 12);
    for r in &contacts {
        for f in ["id", "properties", "createdAt", "updatedAt", "archived"] {
            assert!(r.get(f).is_some(), "{f} missing in {r}");
        }
        let p = r["properties"].as_object().unwrap();
        assert!(p.values().all(|v| v.is_string() || v.is_null()));
        assert_eq!(p["hs_object_id"], r["id"]);
        assert_eq!(p["lastmodifieddate"], r["updatedAt"]);
        assert_eq!(p["hs_lastmodifieddate"], r["updatedAt"]);
        assert_eq!(p["createdate"], r["createdAt"]);
        if let Some(o) = p["hubspot_owner_id"].as_str() {
            assert!(owners.contains(&o.to_string()));
        }
        assert!(r["updatedAt"].as_str().unwrap().ends_with('Z') && r["updatedAt"].as_str().unwrap().len() == 24);
    }
    let text: String = contacts.iter().map(|r| r.to_string()).collect();
    assert!(["Zoë", "Müller", "José", "李"].iter().all(|n| text.contains(n)));
    assert!(contacts.iter().any(|r| r["archived"] == true && r["archivedAt"].is_string()));
    let merged: Vec<&Value> = contacts.iter().filter(|r| r.get("mergedInto").is_some()).collect();
    assert!(!merged.is_empty());
    let by_id: HashMap<&str, &Value> = contacts.iter().map(|r| (r["id"].as_str().unwrap(), r)).collect();
    for m in merged {
        let survivor = by_id[m["mergedInto"].as_str().unwrap()];
        let ids = survivor["properties"]["hs_merged_object_ids"].as_str().unwrap();
        assert!(ids.split(';').any(|x| x == m["id"]));
    }
    let deals = h.export_json("deals");
    let amounts: Vec<&str> = deals.iter().filter_map(|d| d["properties"]["amount"].as_str()).collect();
    assert!(amounts.contains(&"") && amounts.contains(&"1;2"));
    for d in &deals {
        let p = &d["properties"];
        let stage = p["dealstage"].as_str().unwrap();
        assert_eq!(p["hs_is_closed_won"] == "true", stage == "closedwon" || stage == "1034568");
    }
    let calls = h.export_json("calls");
    assert!(
        calls.iter().all(|c| ["INBOUND", "OUTBOUND"].contains(&c["properties"]["hs_call_direction"].as_str().unwrap()))
    );
    assert!(calls.iter().all(|c| c["properties"]["hs_call_duration"].as_str().unwrap().parse::<u64>().is_ok()));
    h.shutdown().await;
}

#[tokio::test]
async fn churn_round_trip_over_http() {
    let h = Sim::start(opts(5)).await.unwrap();
    let before = h.export_json("contacts");
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/_sim/churn", h.url()))
        .json(&serde_json::json!({"object": "contacts", "creates": 3, "updates": 4, "deletes": 2, "merges": 1, "restores": 1, "privacy_deletions": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let rep: Value = r.json().await.unwrap();
    let text = http.get(format!("{}/_sim/export/contacts", h.url())).send().await.unwrap().text().await.unwrap();
    let after: HashMap<String, Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["id"].as_str().unwrap().to_string(), v))
        .collect();
    let ids = |k: &str| -> Vec<String> {
        rep[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
    };
    for id in ids("created") {
        assert_eq!(after[&id]["archived"], false);
    }
    let max_before = before.iter().map(|r| r["updatedAt"].as_str().unwrap().to_string()).max().unwrap();
    for id in ids("updated") {
        assert!(after[&id]["updatedAt"].as_str().unwrap() > max_before.as_str(), "updatedAt bumped to now");
    }
    for id in ids("deleted") {
        assert_eq!(after[&id]["archived"], true);
        assert!(after[&id]["archivedAt"].is_string());
    }
    for id in ids("restored") {
        assert_eq!(after[&id]["archived"], false);
    }
    for id in ids("privacy_deleted") {
        assert!(!after.contains_key(&id));
    }
    let m = &rep["merged"][0];
    assert_eq!(after[m["primary"].as_str().unwrap()]["mergedInto"], m["new"]);
    assert_eq!(after[m["merged"][0].as_str().unwrap()]["mergedInto"], m["new"]);
    assert_eq!(after.len(), before.len() + 3 + 1 - 1);
    let bad = http
        .post(format!("{}/_sim/churn", h.url()))
        .json(&serde_json::json!({"object": "deals", "privacy_deletions": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 400);
    h.shutdown().await;
}

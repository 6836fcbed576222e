//! `GET /api/sync/history`: the charts' aggregates against a seeded `sync_logs`. Every bucket's
//! numbers equal what a plain query over that bucket's time range counts; running runs, audits,
//! maintenance rows and runs outside the window are left out; no id or error text appears.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::harness::hooks::post_changes;
use crate::harness::{PATIENCE, TestApp, TestDb, get_json, until_some};

/// The error text of a seeded failed run (it must never appear in the history).
pub const SECRET_ERROR: &str = "HubSpot answered 502 for batch 7f3e";

/// A history: contacts every 5 minutes for 20 hours, deals every 15 minutes, calls for 10 hours,
/// none for owners; some partial and failed runs; one run 3 days ago (in 7 d, not in 24 h); a
/// running run, an audit and a maintenance row (never counted).
pub async fn seed_history(db: &TestDb) {
    let run = |object: &str, every: i32, n: i32| {
        format!(
            "INSERT INTO sync_logs (sync_type, status, trigger, mode, started_at, completed_at, duration_ms, \
             records_processed, records_failed, error_details) \
             SELECT '{object}', s, 'schedule', 'incremental', at, at + make_interval(secs => d / 1000.0), d, \
                    p, CASE WHEN s = 'success' THEN 0 ELSE 1 + i % 3 END, \
                    CASE WHEN s = 'failed' THEN jsonb_build_object('error', '{SECRET_ERROR}') END \
             FROM generate_series(1, {n}) i, \
                  LATERAL (SELECT now() - make_interval(mins => {every} * i + 2) AS at, \
                                  (800 + (i % 9) * 250)::bigint AS d, (i * 7) % 60 AS p, \
                                  CASE WHEN i % 17 = 0 THEN 'failed' WHEN i % 11 = 0 THEN 'partial' ELSE 'success' END AS s) x;"
        )
    };
    let mut sql = run("contacts", 5, 240) + &run("deals", 15, 80) + &run("calls", 15, 40);
    sql += "INSERT INTO sync_logs (sync_type, status, trigger, mode, started_at, completed_at, duration_ms, records_processed) VALUES \
            ('contacts', 'success', 'manual', 'full', now() - interval '3 days', now() - interval '3 days' + interval '40 seconds', 40000, 5000), \
            ('contacts', 'success', 'schedule', 'audit', now() - interval '1 hour', now() - interval '1 hour', 10, 999), \
            ('maintenance', 'success', 'schedule', 'maintenance', now() - interval '2 hours', now() - interval '2 hours', 10, 999);\
            INSERT INTO sync_logs (sync_type, trigger, mode, started_at) VALUES ('deals', 'manual', 'full', now() - interval '5 minutes');";
    db.client().await.batch_execute(&sql).await.unwrap();
}

/// What a plain query counts for `object`'s runs that started in [from, from + seconds):
/// runs, success, partial, failed, processed, records failed, average and longest duration.
pub async fn bucket_in_sql(db: &TestDb, object: &str, from: DateTime<Utc>, seconds: i64) -> Vec<Option<i64>> {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE status = 'success'), count(*) FILTER (WHERE status = 'partial'), \
                    count(*) FILTER (WHERE status = 'failed'), coalesce(sum(records_processed), 0)::bigint, \
                    coalesce(sum(records_failed), 0)::bigint, round(avg(duration_ms))::bigint, max(duration_ms) \
             FROM sync_logs WHERE sync_type = $1 AND mode IN ('incremental', 'full') AND status <> 'running' \
             AND started_at >= $2::text::timestamptz AND started_at < $2::text::timestamptz + make_interval(secs => $3)",
            &[&object, &from.to_rfc3339(), &(seconds as f64)],
        )
        .await
        .unwrap();
    (0..8).map(|i| row.get::<_, Option<i64>>(i)).collect()
}

fn column(o: &Value, name: &str, i: usize) -> Option<i64> {
    o[name][i].as_i64()
}

#[tokio::test]
async fn history_aggregates_match_sync_logs_bucket_by_bucket() {
    let mut app = TestApp::builder().start().await;
    seed_history(&app.db).await;

    let (status, h) = get_json(&app.url("/api/sync/history"), None).await;
    assert_eq!(status, 200, "{h}");
    assert_eq!(h["window"], "24h");
    assert_eq!(h["bucket_seconds"], 1800);
    let buckets: Vec<DateTime<Utc>> = serde_json::from_value(h["buckets"].clone()).unwrap();
    assert_eq!(buckets.len(), 48);
    let objects = h["objects"].as_array().unwrap();
    assert_eq!(
        objects.iter().map(|o| o["object"].as_str().unwrap()).collect::<Vec<_>>(),
        ["contacts", "deals", "calls", "owners"]
    );
    let mut totals = Vec::new();
    for o in objects {
        let object = o["object"].as_str().unwrap();
        for (i, from) in buckets.iter().enumerate() {
            let expected = bucket_in_sql(&app.db, object, *from, 1800).await;
            let got: Vec<Option<i64>> = [
                "runs",
                "success",
                "partial",
                "failed",
                "records_processed",
                "records_failed",
                "duration_avg_ms",
                "duration_max_ms",
            ]
            .iter()
            .map(|name| column(o, name, i))
            .collect();
            // An empty bucket counts 0 in SQL and in the history; its durations are null in both.
            assert_eq!(got, expected, "{object} bucket {i} from {from}");
        }
        totals.push(o["runs"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).sum::<i64>());
    }
    // 20 h of contacts every 5 min; deals every 15 min (the running one left out); 10 h of calls.
    assert_eq!(totals, [240, 80, 40, 0]);
    assert!(objects[0]["failed"].as_array().unwrap().iter().any(|v| v.as_i64() > Some(0)));
    assert!(objects[0]["partial"].as_array().unwrap().iter().any(|v| v.as_i64() > Some(0)));

    // 7 days: 84 buckets of 2 h, the full run of 3 days ago included.
    let (_, week) = get_json(&app.url("/api/sync/history?window=7d"), None).await;
    assert_eq!(week["bucket_seconds"], 7200);
    assert_eq!(week["buckets"].as_array().unwrap().len(), 84);
    let contacts: i64 = week["objects"][0]["runs"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).sum();
    assert_eq!(contacts, 241);
    let processed: i64 =
        week["objects"][0]["records_processed"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).sum();
    let expected = app
        .db
        .count(
            "SELECT sum(records_processed) FROM sync_logs WHERE sync_type = 'contacts' \
             AND mode IN ('incremental', 'full') AND started_at > now() - interval '6 days'",
        )
        .await;
    assert_eq!(processed, expected);

    // Live figures, and nothing an anonymous reader may not see.
    assert_eq!(h["live"]["minutes"].as_array().unwrap().len(), 60);
    let text = h.to_string() + &week.to_string();
    assert!(!text.contains(SECRET_ERROR) && !text.contains("error"), "no error text: {text}");
    let ids = app.db.client().await.query("SELECT id::text FROM sync_logs", &[]).await.unwrap();
    assert!(ids.iter().all(|r| !text.contains(r.get::<_, &str>(0))), "no run id");

    let (status, body) = get_json(&app.url("/api/sync/history?window=1y"), None).await;
    assert_eq!(status, 400, "{body}");
    app.stop().await;
}

/// Sums `field` over the live minutes of a history's `live`.
pub fn sum(live: &Value, field: &str) -> u64 {
    live["minutes"].as_array().unwrap().iter().filter_map(|m| m[field].as_u64()).sum()
}

/// Posts two webhook requests naming five of the simulator's contacts, the first read answered
/// 429 once; the history's `live` once the five were read, counted and a latency measured.
pub async fn live_minutes_with_a_429(app: &TestApp) -> Value {
    let ids: Vec<u64> =
        app.sim().export_json("contacts").iter().take(5).map(|c| c["id"].as_str().unwrap().parse().unwrap()).collect();
    let fault = hubspot_sim::FaultConfig { status: 429, retry_after: Some(1), fail_next: 1, ..Default::default() };
    app.sim().set_faults(fault).unwrap();
    assert_eq!(post_changes(&app.webhook_url, "contact", &ids[..3]).await, 204);
    assert_eq!(post_changes(&app.webhook_url, "contact", &ids[3..]).await, 204);
    until_some(PATIENCE, "the five ids read, stored and counted", || async {
        let (_, h) = get_json(&app.url("/api/sync/history"), None).await;
        let live = h["live"].clone();
        let read = app.sim().stats()["operations"]["contacts.batch_read_ids"].as_u64() >= Some(5);
        let measured = live["minutes"].as_array().unwrap().iter().any(|m| m["latency_max_ms"].is_u64());
        (sum(&live, "hubspot_rate_limited") >= 1 && read && measured).then_some(live)
    })
    .await
}

/// The live minutes: webhook requests, HubSpot requests with a 429 marked, the webhook-to-row
/// latency and the queue's depth, all counted from what really happened in this process.
#[tokio::test]
async fn live_minutes_count_webhooks_hubspot_requests_429s_latency_and_depth() {
    let opts = hubspot_sim::SimOptions { contacts: 20, deals: 0, calls: 0, owners: 2, ..Default::default() };
    let mut app = TestApp::builder().sim(opts).seeded().budget(50).arg("--fetch-window", "50ms").start().await;
    let live = live_minutes_with_a_429(&app).await;
    let minutes = live["minutes"].as_array().unwrap();
    assert_eq!(minutes.len(), 60, "{live}");
    assert_eq!(sum(&live, "received"), 2, "two webhook requests: {live}");
    assert_eq!(sum(&live, "rejected"), 0);
    // The 429, its retry and at least one more read: every request the client sent.
    assert!(sum(&live, "hubspot_requests") >= 2, "{live}");
    assert_eq!(live["hubspot_budget_per_minute"], 300, "50 requests per 10 s");
    assert!(sum(&live, "queue_depth_max") >= 1, "the queue held the ids: {live}");
    let stored: Vec<&Value> = minutes.iter().filter(|m| m["latency_avg_ms"].is_u64()).collect();
    assert!(stored.iter().all(|m| m["latency_avg_ms"].as_u64() <= m["latency_max_ms"].as_u64()), "{live}");
    app.stop().await;
}

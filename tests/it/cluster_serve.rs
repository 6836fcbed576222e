//! Several machines as `serve` wires them (issue 20, item 3): a GDPR erasure scrubs the person
//! from the webhook batches waiting in `webhook_handoff` for the account's lease holder; two
//! `serve` binaries on one database: webhooks posted to the machine that does not run the
//! account land through the hand-over, and a SIGKILL of the holder moves the account (the time
//! is printed, never asserted) to the other, where it converges.

use diesel_async::AsyncConnection as _;
use hubspot_sync::store::accounts;
use hubspot_sync::store::{cluster, contacts};

use crate::cluster::add_account;
use crate::harness::TestDb;

const P: i64 = 2002;
const OTHER: i64 = 3003;

/// The object ids of each waiting batch of `portal_id`, oldest first (taken out of the table).
async fn waiting(conn: &mut diesel_async::AsyncPgConnection, portal_id: i64) -> Vec<Vec<String>> {
    let rows = cluster::take_handed_over(conn, portal_id, 100).await.unwrap();
    rows.iter()
        .map(|row| {
            let events: Vec<serde_json::Value> = serde_json::from_slice(&row.body).unwrap();
            events
                .iter()
                .map(|e| {
                    let id = e.get("objectId").or_else(|| e.get("fromObjectId")).unwrap();
                    format!("{}:{id}", e["subscriptionType"].as_str().unwrap())
                })
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn a_privacy_erasure_removes_the_persons_events_from_handed_over_batches() {
    let db = TestDb::new().await;
    let mut conn = db.conn().await;
    accounts::adopt_default_portal(&mut conn, 1).await.unwrap();
    add_account(&mut conn, P).await;
    add_account(&mut conn, OTHER).await;
    let bodies: [(i64, &str); 7] = [
        (P, r#"[{"portalId":2002,"subscriptionType":"contact.propertyChange","objectId":501,"propertyName":"email"}]"#),
        (
            P,
            r#"[{"portalId":2002,"subscriptionType":"contact.creation","objectId":501},
                {"portalId":2002,"subscriptionType":"contact.creation","objectId":502}]"#,
        ),
        (P, r#"[{"portalId":2002,"subscriptionType":"deal.creation","objectId":501}]"#),
        (
            P,
            r#"[{"portalId":2002,"subscriptionType":"object.associationChange","fromObjectTypeId":"0-3",
                 "fromObjectId":77,"toObjectTypeId":"0-1","toObjectId":501},
                {"portalId":2002,"subscriptionType":"deal.creation","objectId":78}]"#,
        ),
        (
            P,
            r#"[{"portalId":2002,"subscriptionType":"contact.merge","objectId":600,"primaryObjectId":600,
                 "mergedObjectIds":[501]}]"#,
        ),
        (P, r#"[{"portalId":2002,"subscriptionType":"object.propertyChange","objectTypeId":"0-1","objectId":"501"}]"#),
        (OTHER, r#"[{"portalId":3003,"subscriptionType":"contact.creation","objectId":501}]"#),
    ];
    for (portal_id, body) in bodies {
        cluster::push(&mut conn, portal_id, &[body.as_bytes().to_vec()]).await.unwrap();
    }
    conn.transaction(async |conn| {
        accounts::scope(conn, P).await?;
        contacts::privacy_delete(conn, &["501".to_owned()]).await
    })
    .await
    .unwrap();
    assert_eq!(
        waiting(&mut conn, P).await,
        vec![
            vec!["contact.creation:502".to_owned()],
            vec!["deal.creation:501".into()],
            vec!["deal.creation:78".into()]
        ],
        "every event naming contact 501 is gone, the others stay for the holder"
    );
    assert_eq!(waiting(&mut conn, OTHER).await, vec![vec!["contact.creation:501".to_owned()]], "another portal's 501");
}

/// `serve` as machine `name` of a cluster with short lease timings, the default account's
/// webhooks and the EMEA account's variables set; webhooks on `port`.
async fn machine(
    db: &TestDb,
    home: &hubspot_sim::SimHandle,
    name: &str,
    port: u16,
    metrics_port: u16,
) -> crate::harness::binary::ServeProcess {
    use crate::accounts_serve::{DEFAULT_PORTAL, EMEA_SECRET};
    crate::harness::binary::ServeBinary::new(&db.url())
        .hubspot(home)
        .port(port)
        .quiet_schedules()
        .env("MACHINE_ID", name)
        .env("CLUSTER_HEARTBEAT", "1s")
        .env("CLUSTER_LEASE", "4s")
        .env("CLUSTER_FENCE_MARGIN", "1s")
        .env("ACCOUNT_POOL_SIZE", "2")
        .env("DATABASE_POOL_SIZE", "4")
        .env("HUBSPOT_PORTAL_ID", DEFAULT_PORTAL.to_string())
        .env("HUBSPOT_CLIENT_SECRET", crate::harness::hooks::SECRET)
        .env("EMEA_TOKEN", "pat-emea-token")
        .env("EMEA_CLIENT_SECRET", EMEA_SECRET)
        .env("FETCH_WINDOW", "100ms")
        .env("METRICS_PORT", metrics_port.to_string())
        .spawn()
        .await
}

/// Whether machine `name` holds the EMEA account's lease now.
async fn holds(db: &TestDb, name: &str) -> bool {
    let sql = format!(
        "SELECT count(*) FROM account_leases WHERE portal_id = 2002 AND holder = '{name}' AND expires_at > now()"
    );
    db.count(&sql).await == 1
}

#[tokio::test]
async fn webhooks_posted_to_a_machine_that_does_not_run_the_account_land_and_its_accounts_move_when_it_is_killed() {
    use crate::accounts_serve::{EMEA_PORTAL, account_sim, add_emea, churn, converged, database, scrape};
    use crate::harness::{PATIENCE, eventually, free_port};
    let (port_a, port_b) = (free_port(), free_port());
    // Both simulators deliver to machine A; the EMEA account is held by machine B.
    let home = account_sim(port_a, crate::accounts_serve::DEFAULT_PORTAL, crate::harness::hooks::SECRET, 42, 20).await;
    let emea = account_sim(port_a, EMEA_PORTAL, crate::accounts_serve::EMEA_SECRET, 9, 40).await;
    let db = database().await;
    let b = machine(&db, &home, "b", port_b, free_port()).await;
    add_emea(&db, &emea, 100, crate::harness::hooks::NEVER).await;
    eventually(PATIENCE, "machine b did not take the account", || holds(&db, "b")).await;
    let metrics_a = free_port();
    let a = machine(&db, &home, "a", port_a, metrics_a).await;
    converged(&db, &emea, Some(EMEA_PORTAL), "the account's first copy, by machine b").await;
    churn(&emea, 3);
    converged(&db, &emea, Some(EMEA_PORTAL), "webhooks received by machine a, run by machine b").await;
    assert!(holds(&db, "b").await, "machine b still holds the account");
    let handed = scrape(metrics_a).await;
    assert!(
        handed.lines().any(|l| l.starts_with("hubspot_sync_webhook_handed_over_total") && !l.ends_with(" 0")),
        "machine a handed the account's webhooks over:\n{handed}"
    );

    // Killed: machine a takes the account once b's lease expires; the time is reported.
    let killed = std::time::Instant::now();
    assert_eq!(b.kill().await, None, "ended by SIGKILL, no exit code");
    eventually(PATIENCE, "machine a did not take the dead machine's account", || holds(&db, "a")).await;
    eprintln!("account moved from the killed machine in {:?}", killed.elapsed());
    churn(&emea, 2);
    converged(&db, &emea, Some(EMEA_PORTAL), "the account on machine a").await;
    drop(a);
}

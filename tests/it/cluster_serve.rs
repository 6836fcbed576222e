//! Several machines as `serve` wires them (issue 20, item 3): a GDPR erasure scrubs the person
//! from the webhook batches waiting in `webhook_handoff` for the account's lease holder.

use diesel_async::AsyncConnection as _;
use hubspot_sync::store::accounts::{self, NewAccount};
use hubspot_sync::store::{cluster, contacts};

use crate::harness::TestDb;

const P: i64 = 2002;
const OTHER: i64 = 3003;

async fn add_account(conn: &mut diesel_async::AsyncPgConnection, portal_id: i64) {
    let account = NewAccount {
        portal_id,
        name: format!("account {portal_id}"),
        token_env: "ACCOUNT_TOKEN".into(),
        client_secret_env: None,
        api_base: None,
        requests_per_10s: None,
        schedule_incremental: None,
        schedule_full: None,
    };
    accounts::add(conn, account).await.unwrap();
}

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

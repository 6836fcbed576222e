//! The connection pool's post-create hook and limits against a real PostgreSQL.

use std::time::Duration;

use diesel::sql_types::Text;
use diesel_async::RunQueryDsl;
use hubspot_sync::store::pool::{PoolOptions, build_pool};
use hubspot_sync::store::{self, StoreError};

use crate::harness::TestDb;

#[derive(diesel::QueryableByName)]
struct Setting {
    #[diesel(sql_type = Text)]
    value: String,
}

fn options(max_size: usize) -> PoolOptions {
    PoolOptions {
        application_name: "hubspot-sync pool test".to_owned(),
        max_size,
        wait_timeout: Duration::from_millis(300),
        statement_timeout: Duration::from_millis(1_500),
        synchronous_commit: false,
    }
}

async fn show(conn: &mut store::PooledConn, name: &str) -> String {
    let row: Setting = diesel::sql_query(format!("SELECT current_setting('{name}') AS value"))
        .get_result(&mut **conn)
        .await
        .expect("read the setting");
    row.value
}

#[tokio::test]
async fn every_pooled_connection_is_named_and_bounded() {
    let db = TestDb::new().await;
    let pool = build_pool(&db.target, &options(2)).unwrap();
    let mut conn = pool.get().await.unwrap();
    assert_eq!(show(&mut conn, "application_name").await, "hubspot-sync pool test");
    assert_eq!(show(&mut conn, "statement_timeout").await, "1500ms");
    assert_eq!(show(&mut conn, "synchronous_commit").await, "off");
    let slow = diesel::sql_query("SELECT pg_sleep(5)").execute(&mut *conn).await;
    let message = slow.expect_err("the statement timeout cancels a slow query").to_string();
    assert!(message.contains("statement timeout"), "{message}");
}

/// PostgreSQL's end of every connection probes a silent client (a dead machine's session, and
/// its advisory locks, end within a minute), as the client's end probes the server.
#[tokio::test]
async fn every_pooled_connection_keeps_alive_at_the_server_end() {
    let db = TestDb::new().await;
    let pool = build_pool(&db.target, &options(1)).unwrap();
    let mut conn = pool.get().await.unwrap();
    let tcp: Setting = diesel::sql_query("SELECT (inet_client_addr() IS NOT NULL)::text AS value")
        .get_result(&mut *conn)
        .await
        .unwrap();
    assert_eq!(tcp.value, "true", "the test database is reached over TCP (the settings read 0 on a Unix socket)");
    assert_eq!(show(&mut conn, "tcp_keepalives_idle").await, "30");
    assert_eq!(show(&mut conn, "tcp_keepalives_interval").await, "10");
    assert_eq!(show(&mut conn, "tcp_keepalives_count").await, "3");
    assert_eq!(show(&mut conn, "tcp_user_timeout").await, "60000");
}

#[tokio::test]
async fn synchronous_commit_can_be_turned_back_on() {
    let db = TestDb::new().await;
    let pool = build_pool(&db.target, &PoolOptions { synchronous_commit: true, ..options(1) }).unwrap();
    let mut conn = pool.get().await.unwrap();
    assert_eq!(show(&mut conn, "synchronous_commit").await, "on");
}

#[tokio::test]
async fn a_caller_waits_at_most_the_pool_timeout_for_a_connection() {
    let db = TestDb::new().await;
    let pool = build_pool(&db.target, &options(1)).unwrap();
    let held = pool.get().await.unwrap();
    let Err(err) = pool.get().await else { panic!("the only connection is taken, yet a second one was handed out") };
    let err = StoreError::from(err);
    assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    drop(held);
    assert!(pool.get().await.is_ok(), "a returned connection is handed out again");
}

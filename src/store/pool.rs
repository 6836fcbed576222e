//! The deadpool pool of diesel-async connections, configured for failure: bounded waits for a
//! connection, connection and recycle timeouts, and a post-create hook that names the
//! connection and sets its `statement_timeout`.

use std::time::Duration;

use diesel_async::pooled_connection::deadpool::{self as dp, Hook, HookError};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::{AsyncPgConnection, RunQueryDsl, SimpleAsyncConnection};
use futures_util::FutureExt;

use super::connect::{self, DbTarget};
use super::error::StoreError;

pub type Pool = dp::Pool<AsyncPgConnection>;
pub type PooledConn = dp::Object<AsyncPgConnection>;
pub type PoolError = dp::PoolError;

/// How the pool is shaped.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    pub application_name: String,
    pub max_size: usize,
    /// How long a caller waits for a free connection (then the request answers 503).
    pub wait_timeout: Duration,
    /// `statement_timeout` on every connection.
    pub statement_timeout: Duration,
    /// `synchronous_commit` on every connection (see [`session_settings`]).
    pub synchronous_commit: bool,
}

/// The `SET` statements every pooled connection runs once, right after it is opened.
///
/// `synchronous_commit = off` (the default of `DATABASE_SYNCHRONOUS_COMMIT`) lets a commit
/// return before its WAL reaches disk. A crash of PostgreSQL can then lose the last few hundred
/// milliseconds of commits, never corrupt anything; HubSpot stays the source of truth and WAL is
/// replayed in order, so a lost row is always newer than any durable watermark and the next
/// reconciliation run fetches it again. It roughly doubles upsert throughput (see BENCHMARKS.md).
///
/// The TCP settings make PostgreSQL's end of the connection probe a silent client as this
/// client's end probes the server (`connect::KEEPALIVE_IDLE` and the rest): a session whose
/// machine died or was cut off ends within `connect::DEAD_PEER_AFTER`, and with it every
/// advisory lock it held. PostgreSQL ignores them on Unix-socket connections.
pub fn session_settings(options: &PoolOptions) -> String {
    format!(
        "SET statement_timeout = {}; SET synchronous_commit = {}; SET tcp_keepalives_idle = {}; \
         SET tcp_keepalives_interval = {}; SET tcp_keepalives_count = {}; SET tcp_user_timeout = {}",
        options.statement_timeout.as_millis(),
        if options.synchronous_commit { "on" } else { "off" },
        connect::KEEPALIVE_IDLE.as_secs(),
        connect::KEEPALIVE_INTERVAL.as_secs(),
        connect::KEEPALIVE_PROBES,
        connect::DEAD_PEER_AFTER.as_millis(),
    )
}

/// Makes the transaction it runs in commit with `synchronous_commit = on`, whatever the
/// session's setting ([`session_settings`]) or the database's default: the commit returns only
/// once its WAL is on disk. For writes acknowledged to a sender that will not send them again.
/// Outside a transaction it does nothing (PostgreSQL only warns), so call it first inside one.
pub async fn commit_durably(conn: &mut AsyncPgConnection) -> diesel::QueryResult<()> {
    diesel::sql_query("SET LOCAL synchronous_commit = on").execute(conn).await.map(drop)
}

/// Builds the pool. No connection is opened until the first checkout, so a database that is
/// down at start-up does not stop the process; `/readyz` reports it instead.
pub fn build_pool(target: &DbTarget, options: &PoolOptions) -> Result<Pool, StoreError> {
    build_pool_for(target, options, None)
}

/// [`build_pool`] for one HubSpot account: every connection works for `portal_id`
/// (`store::accounts::session_setting`); `None` is the default account.
pub fn build_pool_for(target: &DbTarget, options: &PoolOptions, portal_id: Option<i64>) -> Result<Pool, StoreError> {
    let mut config = ManagerConfig::default();
    let setup_target = target.clone();
    let app_name = options.application_name.clone();
    config.custom_setup = Box::new(move |_url| {
        let target = setup_target.clone();
        let app_name = app_name.clone();
        async move { target.connect(&app_name).await }.boxed()
    });
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(target.redacted(), config);
    let mut settings = session_settings(options);
    if let Some(portal_id) = portal_id {
        settings = format!("{settings}; {}", super::accounts::session_setting(portal_id));
    }
    dp::Pool::builder(manager)
        .max_size(options.max_size)
        .wait_timeout(Some(options.wait_timeout))
        .create_timeout(Some(Duration::from_secs(10)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .post_create(Hook::async_fn(move |conn: &mut AsyncPgConnection, _| {
            let settings = settings.clone();
            Box::pin(async move {
                conn.batch_execute(&settings)
                    .await
                    .map_err(|e| HookError::Backend(diesel_async::pooled_connection::PoolError::QueryError(e)))
            })
        }))
        .build()
        .map_err(|e| StoreError::Unavailable(Box::new(e)))
}

/// Checks that the database answers (`SELECT 1` on a pooled connection).
pub async fn ping(pool: &Pool) -> Result<(), StoreError> {
    let mut conn = pool.get().await?;
    ping_conn(&mut conn).await
}

/// Whether `conn` still answers (`SELECT 1`).
pub async fn ping_conn(conn: &mut AsyncPgConnection) -> Result<(), StoreError> {
    diesel::sql_query("SELECT 1").execute(conn).await?;
    Ok(())
}

/// The current time according to PostgreSQL (the clock `synced_at` is written with).
pub async fn db_now(conn: &mut AsyncPgConnection) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    #[derive(diesel::QueryableByName)]
    struct Now {
        #[diesel(sql_type = diesel::sql_types::Timestamptz)]
        now: chrono::DateTime<chrono::Utc>,
    }
    let row: Now = diesel::sql_query("SELECT now() AS now").get_result(conn).await?;
    Ok(row.now)
}

impl From<PoolError> for StoreError {
    fn from(e: PoolError) -> Self {
        StoreError::Unavailable(Box::new(e))
    }
}

//! The migrations in `migrations/`, embedded in the binary and applied by `hubspot-sync migrate`
//! (Fly's release command). Concurrent `migrate` runs are serialised with an advisory lock.

use diesel::RunQueryDsl as _;
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use super::StoreError;
use super::connect::DbTarget;

/// Every migration of this build, in order.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Advisory lock key held while migrating ("hsmigrat" as bytes).
pub(crate) const MIGRATION_LOCK: i64 = 0x6873_6d69_6772_6174;

type SyncConn = AsyncConnectionWrapper<AsyncPgConnection>;

/// Applies every pending migration and returns the versions applied, oldest first.
pub async fn run_pending(target: &DbTarget) -> Result<Vec<String>, StoreError> {
    with_sync_connection(target, |conn| {
        let applied = conn.run_pending_migrations(MIGRATIONS).map_err(StoreError::Migration)?;
        Ok(applied.iter().map(ToString::to_string).collect())
    })
    .await
}

/// Runs `work` on a blocking thread with a synchronous view of one connection, holding the
/// migration lock. Used by `migrate` and by the migration round-trip test.
pub async fn with_sync_connection<T, F>(target: &DbTarget, work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&mut SyncConn) -> Result<T, StoreError> + Send + 'static,
{
    let conn = target.connect("hubspot-sync migrate").await.map_err(|e| StoreError::Unavailable(Box::new(e)))?;
    tokio::task::spawn_blocking(move || {
        let mut conn = SyncConn::from(conn);
        lock(&mut conn, "pg_advisory_lock")?;
        let result = work(&mut conn);
        lock(&mut conn, "pg_advisory_unlock")?;
        result
    })
    .await
    .map_err(|e| StoreError::Migration(Box::new(e)))?
}

fn lock(conn: &mut SyncConn, function: &str) -> Result<(), StoreError> {
    diesel::sql_query(format!("SELECT {function}({MIGRATION_LOCK})")).execute(conn)?;
    Ok(())
}

/// The versions of this build's migrations not yet applied to the database behind `conn`,
/// oldest first; every one of them when the migrations table does not exist. Reads only (unlike
/// diesel's `pending_migrations`, which creates the migrations table).
pub async fn pending(conn: &mut AsyncPgConnection) -> Result<Vec<String>, StoreError> {
    use diesel::sql_types::{Bool, Text};

    #[derive(diesel::QueryableByName)]
    struct Present {
        #[diesel(sql_type = Bool)]
        present: bool,
    }
    #[derive(diesel::QueryableByName)]
    struct Applied {
        #[diesel(sql_type = Text)]
        version: String,
    }
    let ours = versions()?;
    let query = diesel::sql_query("SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS present");
    let table: Present = diesel_async::RunQueryDsl::get_result(query, conn).await?;
    if !table.present {
        return Ok(ours);
    }
    let query = diesel::sql_query("SELECT version FROM __diesel_schema_migrations");
    let applied: Vec<Applied> = diesel_async::RunQueryDsl::load(query, conn).await?;
    Ok(ours.into_iter().filter(|v| !applied.iter().any(|a| &a.version == v)).collect())
}

/// The versions of this build's migrations, oldest first.
pub fn versions() -> Result<Vec<String>, StoreError> {
    let all =
        diesel::migration::MigrationSource::<diesel::pg::Pg>::migrations(&MIGRATIONS).map_err(StoreError::Migration)?;
    Ok(all.iter().map(|m| m.name().version().to_string()).collect())
}

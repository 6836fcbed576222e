//! PostgreSQL: the connection pool, embedded migrations, and one module per table.
//!
//! Every query function takes `&mut AsyncPgConnection`; callers own transactions. The store never
//! sees HubSpot wire types: `objects` maps them to the row structs defined here.

pub mod calls;
pub mod connect;
pub mod contacts;
pub mod deals;
pub mod locks;
pub mod migrations;
pub mod notify;
pub mod pool;
pub mod privacy;
pub mod records;
pub mod run_history;
pub mod schema;
pub mod settings;
pub mod staff;
pub mod sync_logs;
pub mod sync_state;

pub use pool::{Pool, PooledConn, build_pool, db_now, ping, ping_conn};

/// A failure at the store's boundary.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had (database down, pool exhausted, TLS refused).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<pool::PoolError> for StoreError {
    fn from(e: pool::PoolError) -> Self {
        Self::Unavailable(e.to_string())
    }
}

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
pub mod records;
pub mod run_history;
pub mod schema;
pub mod settings;
pub mod staff;
pub mod sync_logs;
pub mod sync_state;

pub use pool::{Pool, PooledConn, build_pool, db_now, ping, ping_conn};

/// The cause of a [`StoreError`] that is not a query error: a pool, connection or migration
/// error, kept whole so that code and error reports can walk to its own causes.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A failure at the store's boundary. Its text names what failed and why (so a log line of
/// `%error` says both); the error it wraps stays available as its `source()`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No connection could be had (database down, pool exhausted, TLS refused).
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] diesel::result::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migration(#[source] Cause),
}

impl From<pool::PoolError> for StoreError {
    fn from(e: pool::PoolError) -> Self {
        Self::Unavailable(Box::new(e))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn errors_keep_their_cause() {
        let err = StoreError::from(pool::PoolError::Closed);
        assert_eq!(err.to_string(), format!("database unavailable: {}", pool::PoolError::Closed));
        assert!(err.source().is_some_and(|cause| cause.downcast_ref::<pool::PoolError>().is_some()));
        let err = StoreError::from(diesel::result::Error::NotFound);
        assert_eq!(err.to_string(), "database query failed: Record not found");
        assert!(err.source().is_some_and(|cause| cause.downcast_ref::<diesel::result::Error>().is_some()));
        let err = StoreError::Migration("no such table: nope".into());
        assert_eq!(err.to_string(), "migration failed: no such table: nope");
        assert!(err.source().is_some());
    }
}

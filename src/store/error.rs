//! [`StoreError`]: a failure at the store's boundary, with its cause kept.

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

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;
    use crate::store::pool;

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

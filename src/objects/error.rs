//! [`SyncError`]: why reading records from HubSpot and storing them failed, shared by the batch
//! fetchers (a failed batch goes back to the queue) and the reconciliation runs (a failed run).

use crate::hubspot::HubSpotError;
use crate::store::StoreError;
use crate::store::pool::PoolError;

/// Why a batch or a run could not complete; each variant keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error(transparent)]
    HubSpot(#[from] HubSpotError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A full pass whose page walkers stopped with ids left to read (its checkpoint).
    #[error("the full pass stopped with ids left to read (checkpoint {0})")]
    Incomplete(String),
}

impl From<diesel::result::Error> for SyncError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(e.into())
    }
}

impl From<PoolError> for SyncError {
    fn from(e: PoolError) -> Self {
        Self::Store(e.into())
    }
}

impl SyncError {
    /// For `sync_logs.error_details`: HubSpot's error body when there is one.
    pub fn details(&self) -> serde_json::Value {
        match self {
            Self::HubSpot(e) => e.details(),
            Self::Store(e) => serde_json::json!({ "error": crate::telemetry::ErrorChain(e).to_string() }),
            Self::Incomplete(checkpoint) => serde_json::json!({ "error": self.to_string(), "checkpoint": checkpoint }),
        }
    }
}

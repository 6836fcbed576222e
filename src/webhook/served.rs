//! The accounts other than the default one whose webhooks this process takes: for each, what
//! its batches are written through (its portal-scoped pool, its queue, its replay rule). The
//! per-account runtime (`runtime::accounts`) adds an account once its fetchers run and removes
//! it before they drain, so a batch is acknowledged only while someone will read its ids; a
//! verified batch of an account not here (held by another machine, by none, or stopping here)
//! is stored for its lease holder (`webhook_handoff`, `cluster::Drain`).

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};

use super::replay::ReplayGuard;
use crate::queue::Queue;
use crate::store::Pool;

/// What one account's webhook batches go through.
#[derive(Clone)]
pub struct AccountIntake {
    pub portal_id: i64,
    /// Its connections work for `portal_id` only (`store::build_pool_for`).
    pub pool: Pool,
    pub queue: Arc<Queue>,
    /// `HUBSPOT_REQUIRE_V3` and the replay rule, for this account (its writer runs with the
    /// account's parts).
    pub replay: Arc<ReplayGuard>,
}

/// The accounts served here, shared by the webhook handler and the runtime. Cheap to clone.
#[derive(Clone, Default)]
pub struct Served {
    accounts: Arc<RwLock<HashMap<i64, AccountIntake>>>,
}

impl Served {
    /// From now on, `intake.portal_id`'s batches go to `intake`.
    pub fn insert(&self, intake: AccountIntake) {
        self.write().insert(intake.portal_id, intake);
    }

    /// From now on, `portal_id`'s batches are handed over.
    pub fn remove(&self, portal_id: i64) -> Option<AccountIntake> {
        self.write().remove(&portal_id)
    }

    pub fn get(&self, portal_id: i64) -> Option<AccountIntake> {
        self.accounts.read().unwrap_or_else(PoisonError::into_inner).get(&portal_id).cloned()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<i64, AccountIntake>> {
        self.accounts.write().unwrap_or_else(PoisonError::into_inner)
    }
}

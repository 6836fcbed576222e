//! Reloading `HUBSPOT_SYNC_CONFIG` without a restart (`POST /api/config/reload` in
//! `ops::reload`, and SIGHUP in `serve`): a valid file takes effect at once (filters for every writer, the include/exclude
//! lists for the next property discovery); a file whose typed columns differ from the database
//! is refused until `hubspot-sync migrate` ran; an invalid one is refused (its lines named). A
//! refused file leaves the one in force untouched. Each outcome is logged.

use std::sync::Mutex;

use serde::Serialize;

use crate::config::file::LiveFilters;
use crate::config::{CopyConfig, CopyConfigError, CopySettings};
use crate::hubspot::{HubSpot, HubSpotError};
use crate::store::{Pool, StoreError, mapped_columns};

/// What a reload needs: where the file is, the database (typed columns applied), HubSpot (its
/// property lists, and the client whose requests follow the file) and the writers' filters.
pub struct Reloader {
    settings: CopySettings,
    pool: Pool,
    hubspot: Option<HubSpot>,
    filters: LiveFilters,
    /// Serialises reloads.
    lock: Mutex<()>,
}

/// Why a reload was refused (the configuration in force is kept).
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Invalid(#[from] CopyConfigError),
    #[error(
        "the typed columns in the database differ from HUBSPOT_SYNC_CONFIG ({0}): run `hubspot-sync migrate`, then reload"
    )]
    NeedsMigrate(String),
    #[error("cannot read the typed columns applied: {0}")]
    Store(#[from] StoreError),
    #[error("cannot read HubSpot's property lists to check the file: {0}")]
    HubSpot(#[from] HubSpotError),
}

/// The answer to a reload that took effect.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Always `reloaded`.
    pub status: &'static str,
    /// Typed columns the file maps.
    pub columns: usize,
    /// Objects with a filter.
    pub filtered_objects: Vec<String>,
}

impl Reloader {
    pub fn new(settings: CopySettings, pool: Pool, hubspot: Option<HubSpot>, filters: LiveFilters) -> Self {
        Self { settings, pool, hubspot, filters, lock: Mutex::new(()) }
    }

    /// Reads the file again and puts it in force, or says why not.
    pub async fn reload(&self) -> Result<Reloaded, ReloadError> {
        let config = self.settings.load()?.supported()?;
        self.check(&config).await?;
        let _serial = self.lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.filters.set(config.filters());
        if let Some(hubspot) = &self.hubspot {
            hubspot.set_copy_config(config.clone());
        }
        let filtered_objects: Vec<String> = config.filters().keys().map(ToString::to_string).collect();
        let columns = config.mappings().count();
        tracing::info!(columns, filtered = ?filtered_objects, "HUBSPOT_SYNC_CONFIG reloaded");
        Ok(Reloaded { status: "reloaded", columns, filtered_objects })
    }

    /// [`Reloader::reload`], its refusal logged (for SIGHUP, which has no one to answer).
    pub async fn reload_logged(&self) {
        if let Err(e) = self.reload().await {
            tracing::error!(error = %e, "HUBSPOT_SYNC_CONFIG not reloaded; the configuration in force is kept");
        }
    }

    async fn check(&self, config: &CopyConfig) -> Result<(), ReloadError> {
        let mut conn = self.pool.get().await.map_err(StoreError::from)?;
        let changes = mapped_columns::differences(&mut conn, config).await?;
        drop(conn);
        if !changes.is_empty() {
            let list: Vec<String> = changes.iter().map(ToString::to_string).collect();
            return Err(ReloadError::NeedsMigrate(list.join("; ")));
        }
        if let Some(hubspot) = &self.hubspot {
            let problems = hubspot.check_config(config).await?;
            if !problems.is_empty() {
                return Err(config.invalid(problems).into());
            }
        }
        Ok(())
    }
}

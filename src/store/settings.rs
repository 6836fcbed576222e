//! How `store` reads the database settings (`config::DatabaseSettings`): the connection target
//! and the pool's shape. Here, not in `config`, so settings stay below the store.

use super::connect::DbTarget;
use super::pool::PoolOptions;
use crate::config::{ConfigError, DatabaseSettings};

impl DatabaseSettings {
    /// The pool's shape for a process named `application_name`.
    pub fn pool_options(&self, application_name: &str) -> PoolOptions {
        PoolOptions {
            application_name: application_name.to_owned(),
            max_size: self.database_pool_size as usize,
            wait_timeout: self.database_pool_timeout,
            statement_timeout: self.database_statement_timeout,
            synchronous_commit: self.database_synchronous_commit,
        }
    }

    /// The database to use: an error naming `DATABASE_URL` when it is unset or unusable.
    pub fn target(&self) -> Result<DbTarget, ConfigError> {
        let url = self.database_url.as_ref().ok_or(ConfigError::Missing {
            var: "DATABASE_URL",
            hint: "set it to the PostgreSQL URL, e.g. postgres://user:password@host:5432/postgres",
        })?;
        DbTarget::parse(url.expose(), self.database_ca_cert.as_deref()).map_err(|e| {
            let reason = e.to_string();
            // Most of these already name the variable; say it once.
            if reason.starts_with("DATABASE_") {
                ConfigError::Stated(reason)
            } else {
                ConfigError::Invalid { var: "DATABASE_URL", reason }
            }
        })
    }
}

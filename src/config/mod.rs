//! Settings: every environment variable of the public contract, parsed once at start-up into
//! typed values (URLs, durations, cron schedules, redacted secrets).
//!
//! Each concern has its own `clap::Args` struct, flattened into the subcommands that need it, so
//! `--help` on a subcommand lists exactly the variables it reads. Every field is both an
//! environment variable and a `--kebab-case` flag. An invalid value is reported by clap with the
//! variable's name (each `value_name` is the variable's name); a missing required value is
//! reported by [`ConfigError`], which also names it.

mod alerts;
mod cluster;
mod database;
mod environment;
pub mod file;
mod hubspot;
mod polling;
mod retention;
mod schedule;
mod secret;
mod server;

pub use alerts::{AlertSettings, EmailAlerts, EmailSettings, OwnerHookSettings, Recipients, SmtpTls, SmtpUrl};
pub use cluster::ClusterSettings;
pub use database::DatabaseSettings;
pub use environment::Environment;
pub use file::{CopyConfig, CopyConfigError, CopySettings};
pub use hubspot::{ApiVersion, HubSpotSettings, PortalSettings, RequireV3, WebhookSettings};
pub use polling::{FastPoll, FastPollWrite, PollingSettings, parse_share};
pub use retention::{MIN_RETENTION, Retention, RetentionSettings, parse_retention};
pub use schedule::{Schedule, ScheduleSettings};
pub use secret::{Secret, SecretList};
pub use server::{DEFAULT_WEBHOOK_MAX_CONCURRENT, LogFormat, ServerSettings};

use std::time::Duration;

/// A setting that is missing or unusable, named by its environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is not set: {hint}")]
    Missing { var: &'static str, hint: &'static str },
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    /// A complete message that already names the variable.
    #[error("{0}")]
    Stated(String),
}

/// Parses a human duration such as `200ms`, `25s` or `5m` (humantime syntax).
pub fn parse_duration(raw: &str) -> Result<Duration, String> {
    humantime::parse_duration(raw.trim()).map_err(|e| format!("{e} (examples: 200ms, 25s, 5m)"))
}

/// `OWNER_ROLE`: the `role` written to `staff` for every HubSpot owner.
#[derive(clap::Args, Debug, Clone)]
pub struct OwnerSettings {
    /// Role given to owners written to `staff`.
    #[arg(long, env = "OWNER_ROLE", value_name = "OWNER_ROLE", default_value = "coach")]
    pub owner_role: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("200ms"), Ok(Duration::from_millis(200)));
        assert_eq!(parse_duration(" 25s "), Ok(Duration::from_secs(25)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("25").is_err(), "a bare number has no unit");
    }

    #[test]
    fn config_errors_name_the_variable() {
        let missing = ConfigError::Missing { var: "DATABASE_URL", hint: "the PostgreSQL URL" };
        assert!(missing.to_string().starts_with("DATABASE_URL is not set"));
        let invalid = ConfigError::Invalid { var: "PUBLIC_URL", reason: "no host".into() };
        assert_eq!(invalid.to_string(), "PUBLIC_URL is invalid: no host");
    }
}

//! HubSpot API access: token, webhook secrets, base URL, API version and request budget.

use std::fmt;
use std::str::FromStr;

use url::Url;

use super::{ConfigError, Secret, SecretList};

/// Which HubSpot path family to call: `v3` (`/crm/v3/objects/...`) or a dated version such as
/// `2026-03` (`/crm/objects/2026-03/...`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApiVersion {
    V3,
    Dated(String),
}

impl FromStr for ApiVersion {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw == "v3" {
            return Ok(Self::V3);
        }
        let bytes = raw.as_bytes();
        let dated = bytes.len() == 7
            && bytes[4] == b'-'
            && raw[..4].bytes().all(|b| b.is_ascii_digit())
            && matches!(raw[5..].parse::<u8>(), Ok(1..=12));
        if dated {
            Ok(Self::Dated(raw.to_owned()))
        } else {
            Err(format!("'{raw}' is neither v3 nor a dated version such as 2026-03"))
        }
    }
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V3 => f.write_str("v3"),
            Self::Dated(v) => f.write_str(v),
        }
    }
}

/// `HUBSPOT_REQUIRE_V3`: when webhooks signed only with v1/v2 (no timestamp, no replay
/// protection of their own) are refused.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RequireV3 {
    /// Accepted until a valid v3 signature has been seen from the account, refused from then on.
    #[default]
    Auto,
    /// Always refused (`true`).
    Always,
    /// Always accepted (`false`), with their replay risk.
    Never,
}

impl FromStr for RequireV3 {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "true" | "yes" | "on" | "1" => Ok(Self::Always),
            "false" | "no" | "off" | "0" => Ok(Self::Never),
            _ => Err(format!("'{raw}' is not auto, true or false")),
        }
    }
}

impl fmt::Display for RequireV3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Always => "true",
            Self::Never => "false",
        })
    }
}

/// How hubspot-sync talks to HubSpot.
#[derive(clap::Args, Debug, Clone)]
pub struct HubSpotSettings {
    /// Private app token, sent as `Authorization: Bearer`.
    #[arg(long, env = "HUBSPOT_ACCESS_TOKEN", value_name = "HUBSPOT_ACCESS_TOKEN", hide_env_values = true)]
    pub hubspot_access_token: Option<Secret>,
    /// HubSpot API base URL (the simulator's URL in tests).
    #[arg(long, env = "HUBSPOT_API_BASE", value_name = "HUBSPOT_API_BASE", default_value = "https://api.hubapi.com")]
    pub hubspot_api_base: Url,
    /// `v3` for `/crm/v3/...` paths, or a dated version such as `2026-03`.
    #[arg(long, env = "HUBSPOT_API_VERSION", value_name = "HUBSPOT_API_VERSION", default_value = "v3")]
    pub hubspot_api_version: ApiVersion,
    /// Request budget per rolling 10 s window, shared by every caller in the process.
    #[arg(long, env = "HUBSPOT_REQUESTS_PER_10S", value_name = "HUBSPOT_REQUESTS_PER_10S", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub hubspot_requests_per_10s: u32,
    /// Whether each search (5 per second at most) also takes a slot of
    /// `HUBSPOT_REQUESTS_PER_10S`. HubSpot's usage page leaves search out of the per-app figures
    /// for OAuth apps; counting them is the conservative model. `false` lets a full pass read
    /// search pages beside a full budget of list pages.
    #[arg(long, env = "HUBSPOT_SEARCHES_IN_BUDGET", value_name = "HUBSPOT_SEARCHES_IN_BUDGET",
          default_value = "true", num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub hubspot_searches_in_budget: bool,
}

impl HubSpotSettings {
    /// The access token, or an error naming `HUBSPOT_ACCESS_TOKEN`.
    pub fn access_token(&self) -> Result<&Secret, ConfigError> {
        self.hubspot_access_token.as_ref().ok_or(ConfigError::Missing {
            var: "HUBSPOT_ACCESS_TOKEN",
            hint: "set it to the private app token (pat-...) that reads contacts, deals, calls and owners",
        })
    }
}

/// Which HubSpot account the process settings are (the default account of a multi-account
/// database).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct PortalSettings {
    /// The HubSpot portal (hub) id of the account `HUBSPOT_ACCESS_TOKEN` reads. Optional with one
    /// account (its rows are kept under portal id 0 until it is set); required before `accounts
    /// add` adds another one. Once set, `migrate` and `serve` move the default account's rows to
    /// it (once), and refuse a value that differs from the database's.
    #[arg(long, env = "HUBSPOT_PORTAL_ID", value_name = "HUBSPOT_PORTAL_ID",
          value_parser = clap::value_parser!(i64).range(1..))]
    pub hubspot_portal_id: Option<i64>,
}

impl HubSpotSettings {
    /// The settings of another account: its token read from the environment variable
    /// `token_env` (never stored), its API base and budget when it has its own.
    pub fn for_account(
        &self,
        token_env: &str,
        api_base: Option<&str>,
        requests_per_10s: Option<i32>,
    ) -> Result<HubSpotSettings, ConfigError> {
        self.for_account_in(&super::Environment::default(), token_env, api_base, requests_per_10s)
    }

    /// [`HubSpotSettings::for_account`] with the token read from `env`.
    pub fn for_account_in(
        &self,
        env: &super::Environment,
        token_env: &str,
        api_base: Option<&str>,
        requests_per_10s: Option<i32>,
    ) -> Result<HubSpotSettings, ConfigError> {
        let token = env.var(token_env).filter(|t| !t.trim().is_empty()).ok_or_else(|| {
            ConfigError::Stated(format!("{token_env} (the account's token variable) is not set in this environment"))
        })?;
        let hubspot_api_base = match api_base {
            None => self.hubspot_api_base.clone(),
            Some(raw) => {
                Url::parse(raw).map_err(|e| ConfigError::Stated(format!("the account's API base {raw}: {e}")))?
            }
        };
        Ok(HubSpotSettings {
            hubspot_access_token: Some(Secret::new(token)),
            hubspot_api_base,
            hubspot_api_version: self.hubspot_api_version.clone(),
            hubspot_requests_per_10s: requests_per_10s.map_or(self.hubspot_requests_per_10s, |n| n.max(1) as u32),
            hubspot_searches_in_budget: self.hubspot_searches_in_budget,
        })
    }
}

/// How webhooks from HubSpot are authenticated.
#[derive(clap::Args, Debug, Clone)]
pub struct WebhookSettings {
    /// App client secret that signs webhooks; several, comma-separated, during a rotation.
    /// Without it every webhook gets 401.
    #[arg(long, env = "HUBSPOT_CLIENT_SECRET", value_name = "HUBSPOT_CLIENT_SECRET", hide_env_values = true)]
    pub hubspot_client_secret: Option<SecretList>,
    /// `auto`: v1/v2 webhook signatures are accepted only until a valid v3 signature has been seen
    /// from the account (kept in PostgreSQL), then v3 is required; `true`: v3 always required;
    /// `false`: v1/v2 always accepted too. A v1/v2-only repeat of an accepted body is refused
    /// in every mode.
    #[arg(long, env = "HUBSPOT_REQUIRE_V3", value_name = "HUBSPOT_REQUIRE_V3", default_value = "auto",
          num_args = 0..=1, default_missing_value = "true")]
    pub hubspot_require_v3: RequireV3,
    /// External base URL HubSpot calls, used to rebuild the signed URI; when unset, taken from
    /// the request's `Host` and `X-Forwarded-Proto`.
    #[arg(long, env = "PUBLIC_URL", value_name = "PUBLIC_URL")]
    pub public_url: Option<Url>,
    /// Events for a HubSpot portal that is no account of this database: `accept` (counted and
    /// answered 204, so HubSpot does not retry them for a day) or `refuse` (answered 404).
    #[arg(long, env = "WEBHOOK_UNKNOWN_PORTAL", value_name = "WEBHOOK_UNKNOWN_PORTAL", default_value = "accept",
          value_parser = ["accept", "refuse"])]
    pub webhook_unknown_portal: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        assert_eq!("v3".parse::<ApiVersion>(), Ok(ApiVersion::V3));
        assert_eq!("2026-03".parse::<ApiVersion>(), Ok(ApiVersion::Dated("2026-03".into())));
        assert!("2026-13".parse::<ApiVersion>().is_err());
        assert!("v4".parse::<ApiVersion>().is_err());
        assert!("2026-3".parse::<ApiVersion>().is_err());
    }

    #[test]
    fn require_v3_values() {
        assert_eq!("auto".parse::<RequireV3>(), Ok(RequireV3::Auto));
        assert_eq!(" TRUE ".parse::<RequireV3>(), Ok(RequireV3::Always));
        assert_eq!("1".parse::<RequireV3>(), Ok(RequireV3::Always));
        assert_eq!("false".parse::<RequireV3>(), Ok(RequireV3::Never));
        assert_eq!("off".parse::<RequireV3>(), Ok(RequireV3::Never));
        assert!("maybe".parse::<RequireV3>().is_err());
        for mode in [RequireV3::Auto, RequireV3::Always, RequireV3::Never] {
            assert_eq!(mode.to_string().parse::<RequireV3>(), Ok(mode));
        }
    }
}

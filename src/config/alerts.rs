//! Where alerts and owner-change deliveries go: e-mail over SMTP (`ALERT_EMAIL_TO`,
//! `ALERT_EMAIL_FROM`, `SMTP_URL`) besides the Slack-compatible `ALERT_WEBHOOK_URL`, and the
//! signed owner-change webhook (`OWNER_CHANGE_WEBHOOK_URL`, `OWNER_CHANGE_WEBHOOK_SECRET`).

use std::fmt;
use std::str::FromStr;

use url::Url;

use super::{ConfigError, Secret};

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://`: plain connection upgraded with STARTTLS, which is required (default port 587).
    StartTls,
    /// `smtps://`: TLS from the first byte (default port 465).
    Tls,
    /// `smtp://...?tls=none`: no encryption at all (a relay on localhost, tests; default port 25).
    None,
}

/// `SMTP_URL`: `smtp://user:password@host:port` (STARTTLS), `smtps://...` (TLS), or
/// `smtp://...?tls=none` (plain). User and password are percent-decoded. Prints without the
/// password.
#[derive(Clone)]
pub struct SmtpUrl {
    pub tls: SmtpTls,
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<Secret>,
}

impl FromStr for SmtpUrl {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        // The url crate's own errors never quote the input, so no password reaches a message.
        let url = Url::parse(raw.trim()).map_err(|e| format!("not a URL ({e}); example: smtp://user:pass@host:587"))?;
        let tls_param = url.query_pairs().find(|(k, _)| k == "tls").map(|(_, v)| v.into_owned());
        let tls = match (url.scheme(), tls_param.as_deref()) {
            ("smtps", None | Some("wrapper" | "tls")) => SmtpTls::Tls,
            ("smtp", None | Some("required" | "starttls")) => SmtpTls::StartTls,
            ("smtp", Some("none")) => SmtpTls::None,
            ("smtp" | "smtps", Some(other)) => {
                return Err(format!(
                    "tls={other} is not understood (use smtps:// for TLS, smtp:// for STARTTLS, \
                                    or smtp://...?tls=none for a plain local relay)"
                ));
            }
            (scheme, _) => return Err(format!("scheme {scheme}:// is not smtp:// (STARTTLS) or smtps:// (TLS)")),
        };
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or("no host")?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
        let port = url.port().unwrap_or(match tls {
            SmtpTls::StartTls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        });
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let username = Some(decode(url.username())).filter(|u| !u.is_empty());
        let password = url.password().map(decode).filter(|p| !p.is_empty()).map(Secret::new);
        if password.is_some() && username.is_none() {
            return Err("a password without a user name".into());
        }
        Ok(Self { tls, host, port, username, password })
    }
}

impl fmt::Display for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls == SmtpTls::Tls { "smtps" } else { "smtp" };
        let user = match (&self.username, &self.password) {
            (Some(u), Some(_)) => format!("{u}:[redacted]@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        };
        let plain = if self.tls == SmtpTls::None { "?tls=none" } else { "" };
        write!(f, "{scheme}://{user}{}:{}{plain}", self.host, self.port)
    }
}

impl fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SmtpUrl({self})")
    }
}

/// A comma-separated list of e-mail addresses (`ALERT_EMAIL_TO`).
#[derive(Clone, Debug, PartialEq)]
pub struct Recipients(pub Vec<lettre::Address>);

impl FromStr for Recipients {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let list = raw
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(|a| a.parse::<lettre::Address>().map_err(|e| format!("{a}: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if list.is_empty() {
            return Err("no address (example: ops@example.com,oncall@example.com)".into());
        }
        Ok(Self(list))
    }
}

/// E-mail alerts: all three set, or none.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct EmailSettings {
    /// Addresses (comma-separated) that get alert e-mails, besides ALERT_WEBHOOK_URL.
    #[arg(long, env = "ALERT_EMAIL_TO", value_name = "ALERT_EMAIL_TO")]
    pub alert_email_to: Option<Recipients>,
    /// Sender address of alert e-mails.
    #[arg(long, env = "ALERT_EMAIL_FROM", value_name = "ALERT_EMAIL_FROM")]
    pub alert_email_from: Option<lettre::Address>,
    /// SMTP server: smtp://user:pass@host:587 (STARTTLS required), smtps://user:pass@host:465
    /// (TLS), or smtp://host:25?tls=none (plain, for a local relay).
    #[arg(long, env = "SMTP_URL", value_name = "SMTP_URL", hide_env_values = true)]
    pub smtp_url: Option<SmtpUrl>,
}

/// E-mail alert settings, checked complete.
#[derive(Clone, Debug)]
pub struct EmailAlerts {
    pub to: Vec<lettre::Address>,
    pub from: lettre::Address,
    pub smtp: SmtpUrl,
}

impl EmailSettings {
    /// `None` when e-mail alerts are off (none of the three set); an error naming the missing
    /// setting when only some are.
    pub fn alerts(&self) -> Result<Option<EmailAlerts>, ConfigError> {
        match (&self.alert_email_to, &self.alert_email_from, &self.smtp_url) {
            (None, None, None) => Ok(None),
            (Some(to), Some(from), Some(smtp)) => {
                Ok(Some(EmailAlerts { to: to.0.clone(), from: from.clone(), smtp: smtp.clone() }))
            }
            (to, from, _) => {
                let var = if to.is_none() {
                    "ALERT_EMAIL_TO"
                } else if from.is_none() {
                    "ALERT_EMAIL_FROM"
                } else {
                    "SMTP_URL"
                };
                Err(ConfigError::Missing {
                    var,
                    hint: "e-mail alerts need ALERT_EMAIL_TO, ALERT_EMAIL_FROM and SMTP_URL together",
                })
            }
        }
    }
}

/// Every alert channel: what `serve` and `alert-test` read.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AlertSettings {
    /// Slack-compatible incoming-webhook URL that gets a message when a run fails or a sync is
    /// overdue.
    #[arg(long, env = "ALERT_WEBHOOK_URL", value_name = "ALERT_WEBHOOK_URL", hide_env_values = true)]
    pub alert_webhook_url: Option<Url>,
    #[command(flatten)]
    pub email: EmailSettings,
}

/// The signed outbound webhook on owner changes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OwnerHookSettings {
    /// URL that gets a signed POST for every change of a contact's or deal's owner.
    #[arg(long, env = "OWNER_CHANGE_WEBHOOK_URL", value_name = "OWNER_CHANGE_WEBHOOK_URL", hide_env_values = true)]
    pub owner_change_webhook_url: Option<Url>,
    /// Key of the HMAC-SHA256 signature of each delivery's body (required with the URL).
    #[arg(
        long,
        env = "OWNER_CHANGE_WEBHOOK_SECRET",
        value_name = "OWNER_CHANGE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub owner_change_webhook_secret: Option<Secret>,
}

impl OwnerHookSettings {
    /// The URL and secret when deliveries are on; an error naming the secret when the URL comes
    /// without it.
    pub fn hook(&self) -> Result<Option<(Url, Secret)>, ConfigError> {
        match (&self.owner_change_webhook_url, &self.owner_change_webhook_secret) {
            (None, _) => Ok(None),
            (Some(url), Some(secret)) => Ok(Some((url.clone(), secret.clone()))),
            (Some(_), None) => Err(ConfigError::Missing {
                var: "OWNER_CHANGE_WEBHOOK_SECRET",
                hint: "OWNER_CHANGE_WEBHOOK_URL deliveries are signed with it",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_choose_the_protection() {
        let u: SmtpUrl = "smtp://alerts%40x.com:p%40ss@mail.example.com".parse().unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (SmtpTls::StartTls, "mail.example.com", 587));
        assert_eq!(u.username.as_deref(), Some("alerts@x.com"));
        assert_eq!(u.password.as_ref().map(Secret::expose), Some("p@ss"));
        let u: SmtpUrl = "smtps://u:p@mail.example.com".parse().unwrap();
        assert_eq!((u.tls, u.port), (SmtpTls::Tls, 465));
        let u: SmtpUrl = "smtp://127.0.0.1:2525?tls=none".parse().unwrap();
        assert_eq!((u.tls, u.port, u.username.clone()), (SmtpTls::None, 2525, None));
        assert!("http://x".parse::<SmtpUrl>().is_err());
        assert!("smtp://x?tls=maybe".parse::<SmtpUrl>().is_err());
    }

    #[test]
    fn smtp_urls_never_print_the_password() {
        let u: SmtpUrl = "smtp://user:hunter2@mail.example.com:587".parse().unwrap();
        assert_eq!(u.to_string(), "smtp://user:[redacted]@mail.example.com:587");
        assert!(!format!("{u:?}").contains("hunter2"));
        let err = "smtp://user:hunter2@/".parse::<SmtpUrl>().err().unwrap_or_default();
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn email_settings_come_together() {
        let none = EmailSettings::default();
        assert!(none.alerts().unwrap().is_none());
        let partial = EmailSettings { alert_email_to: "a@x.com".parse().ok(), ..EmailSettings::default() };
        assert!(partial.alerts().unwrap_err().to_string().starts_with("ALERT_EMAIL_FROM is not set"));
        let recipients: Recipients = " a@x.com , b@y.org ,".parse().unwrap();
        assert_eq!(recipients.0.len(), 2);
        assert!("not an address".parse::<Recipients>().is_err());
    }
}

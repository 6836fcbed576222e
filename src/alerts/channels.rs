//! Every place alerts go: the Slack-compatible webhook (`slack`) and e-mail (`email`), each
//! sent the same [`Message`].

use super::email::{MailError, Mailer};
use super::message::Message;
use super::slack::{Notifier, SendError};
use crate::config::{AlertSettings, ConfigError};

/// One alert channel.
#[derive(Clone, Debug)]
pub enum Channel {
    Slack(Notifier),
    Email(Mailer),
}

/// Why a channel did not deliver.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Slack(#[from] SendError),
    #[error(transparent)]
    Email(#[from] MailError),
}

impl Channel {
    /// Its name in logs and in `alert-test`'s report.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Slack(_) => "webhook (ALERT_WEBHOOK_URL)",
            Self::Email(_) => "e-mail (SMTP_URL)",
        }
    }

    /// Sends one message.
    pub async fn send(&self, message: &Message) -> Result<(), ChannelError> {
        match self {
            Self::Slack(notifier) => Ok(notifier.send_message(message).await?),
            Self::Email(mailer) => Ok(mailer.send(message).await?),
        }
    }
}

/// The configured channels, in order (none: alerts are only logged).
#[derive(Clone, Debug, Default)]
pub struct Channels(pub Vec<Channel>);

impl Channels {
    /// The channels the settings configure.
    pub fn from_settings(settings: &AlertSettings) -> Result<Self, ConfigError> {
        let mut channels = Vec::new();
        if let Some(url) = &settings.alert_webhook_url {
            channels.push(Channel::Slack(Notifier::new(url.clone())));
        }
        if let Some(email) = settings.email.alerts()? {
            let mailer =
                Mailer::new(&email).map_err(|e| ConfigError::Invalid { var: "SMTP_URL", reason: e.to_string() })?;
            channels.push(Channel::Email(mailer));
        }
        Ok(Self(channels))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Channel> {
        self.0.iter()
    }
}

impl From<Option<Notifier>> for Channels {
    fn from(notifier: Option<Notifier>) -> Self {
        Self(notifier.map(Channel::Slack).into_iter().collect())
    }
}

impl From<Vec<Channel>> for Channels {
    fn from(channels: Vec<Channel>) -> Self {
        Self(channels)
    }
}

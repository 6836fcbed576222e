//! Delivers alert messages to a Slack-compatible incoming webhook: `POST` of `{"text": "..."}`.
//! The URL holds a secret, so it is never logged.

use std::time::Duration;

use url::Url;

use super::Transition;
use super::message::{Message, Tone};

const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Where alerts go.
#[derive(Clone)]
pub struct Notifier {
    http: reqwest::Client,
    url: Url,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Notifier { url: [redacted] }")
    }
}

/// Why a message was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("the alert webhook could not be reached: {0}")]
    Transport(String),
    #[error("the alert webhook answered {0}")]
    Status(u16),
}

impl Notifier {
    pub fn new(url: Url) -> Self {
        let http = reqwest::Client::builder().timeout(SEND_TIMEOUT).build().unwrap_or_default();
        Self { http, url }
    }

    /// The message body for a transition.
    pub fn body(transition: &Transition) -> serde_json::Value {
        Self::body_of(&Message::of(transition))
    }

    /// The body of a message: its line behind an emoji.
    pub fn body_of(message: &Message) -> serde_json::Value {
        let emoji = match message.tone {
            Tone::Firing => ":rotating_light:",
            Tone::Resolved => ":white_check_mark:",
            Tone::Test => ":information_source:",
        };
        serde_json::json!({ "text": format!("{emoji} {}", message.line()) })
    }

    /// Sends the message of a transition.
    pub async fn send(&self, transition: &Transition) -> Result<(), SendError> {
        self.send_message(&Message::of(transition)).await
    }

    /// Sends one message.
    pub async fn send_message(&self, message: &Message) -> Result<(), SendError> {
        let response = self
            .http
            .post(self.url.clone())
            .json(&Self::body_of(message))
            .send()
            .await
            // `without_url`: the error would otherwise print the webhook URL.
            .map_err(|e| SendError::Transport(e.without_url().to_string()))?;
        match response.status() {
            status if status.is_success() => Ok(()),
            status => Err(SendError::Status(status.as_u16())),
        }
    }
}

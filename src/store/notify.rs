//! `LISTEN` on a connection of its own (not a pooled one: a pool would recycle it), for the SQL
//! trigger `trigger_hubspot_sync()` (`poller::listen` decides what a notification starts).

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;
use tokio_postgres::{AsyncMessage, Client};

use super::connect::{ConnectError, DbTarget};

/// Why listening could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("LISTEN {channel} failed")]
    Listen {
        channel: String,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// A connection listening on one channel.
pub struct Listener {
    client: Client,
    messages: UnboundedReceiver<AsyncMessage>,
}

impl Listener {
    /// Connects as `application_name` and runs `LISTEN channel` (`channel` is one of our own
    /// constant identifiers, never user input).
    pub async fn start(target: &DbTarget, application_name: &str, channel: &str) -> Result<Self, ListenError> {
        let (client, messages) = target.connect_with_messages(application_name).await?;
        client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .map_err(|source| ListenError::Listen { channel: channel.to_owned(), source })?;
        Ok(Self { client, messages })
    }

    /// The next notification's payload; `None` once the connection is gone.
    pub async fn next_payload(&mut self) -> Option<String> {
        loop {
            match self.messages.recv().await? {
                AsyncMessage::Notification(note) => return Some(note.payload().to_owned()),
                _ => continue,
            }
        }
    }

    /// Whether the connection still answers within `timeout`.
    pub async fn alive(&self, timeout: Duration) -> bool {
        matches!(tokio::time::timeout(timeout, self.client.simple_query("SELECT 1")).await, Ok(Ok(_)))
    }
}

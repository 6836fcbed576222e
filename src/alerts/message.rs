//! What an alert says, the same through every channel (`slack`, `email`): the condition's text
//! prefixed with the service's name, and `resolved:` when it cleared. The texts come from
//! `sync_logs` and the live figures, never from a setting, so no secret can reach a message.

use chrono::{DateTime, Utc};

use super::Transition;

/// Which kind of message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    /// A condition started to hold.
    Firing,
    /// It cleared.
    Resolved,
    /// `hubspot-sync alert-test`.
    Test,
}

/// One message as every channel sends it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub tone: Tone,
    pub text: String,
}

/// Longest e-mail subject taken from a message's text (characters).
const SUBJECT_MAX: usize = 120;

impl Message {
    /// The message announcing a transition.
    pub fn of(transition: &Transition) -> Self {
        let tone = if transition.firing { Tone::Firing } else { Tone::Resolved };
        Self { tone, text: transition.text.clone() }
    }

    /// The test message of `alert-test`.
    pub fn test(at: DateTime<Utc>) -> Self {
        Self {
            tone: Tone::Test,
            text: format!(
                "test alert sent by `hubspot-sync alert-test` at {}: this channel works, no action needed",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        }
    }

    /// The message on one line: `hubspot-sync: <text>`, `hubspot-sync: resolved: <text>`.
    pub fn line(&self) -> String {
        match self.tone {
            Tone::Firing | Tone::Test => format!("hubspot-sync: {}", self.text),
            Tone::Resolved => format!("hubspot-sync: resolved: {}", self.text),
        }
    }

    /// An e-mail subject: `[hubspot-sync] ALERT: ...`, `[hubspot-sync] resolved: ...`,
    /// `[hubspot-sync] test alert`; the text cut to [`SUBJECT_MAX`] characters, on one line.
    pub fn subject(&self) -> String {
        let short: String = self.text.split_whitespace().collect::<Vec<_>>().join(" ");
        let short = match short.char_indices().nth(SUBJECT_MAX) {
            Some((cut, _)) => format!("{}...", &short[..cut]),
            None => short,
        };
        match self.tone {
            Tone::Firing => format!("[hubspot-sync] ALERT: {short}"),
            Tone::Resolved => format!("[hubspot-sync] resolved: {short}"),
            Tone::Test => "[hubspot-sync] test alert".to_owned(),
        }
    }
}

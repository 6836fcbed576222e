//! Alerts to a Slack-compatible incoming webhook (`ALERT_WEBHOOK_URL`) and by e-mail
//! (`ALERT_EMAIL_TO` through `SMTP_URL`).
//!
//! Four conditions, each judged afresh at every check from `sync_logs` and the live webhook
//! figures ([`evaluate`]), so a restart re-alerts on what still holds:
//! - **run failed**: the latest finished run of an object is `failed`;
//! - **failed records**: the latest finished run failed more than 10% of the records it handled;
//! - **overdue**: no `success` or `partial` run of an object for twice its schedule interval
//!   (counted from start-up when it never ran, so a fresh install does not alert at once);
//! - **parked records**: a record of the object has been parked in `sync_failures` (unreadable
//!   or refused by the database, retried with backoff) for over [`PARKED_MAX_AGE_MINUTES`] minutes;
//! - **audit drift**: the latest drift audit of an object repaired and still left drift
//!   ([`audit_conditions`]: missing, extra or stale ids its repair could not fix);
//! - **signature failures**: at least [`SPIKE_MIN`] webhook requests in [`SPIKE_WINDOW_MINUTES`]
//!   minutes were refused for their signature, and they are at least half of all requests (a
//!   wrong `HUBSPOT_CLIENT_SECRET` after a rotation).
//!
//! [`AlertState`] turns the set of conditions that hold into messages: one when a condition
//! starts to hold, one when it clears, nothing in between. A message that cannot be delivered is
//! retried at the next check, on that channel only (each channel keeps what it announced).
//! `monitor` runs the checks; `channels` lists where messages go: `slack` and `email` deliver
//! the same `message`.
//!
//! **Every account.** The conditions of the objects are judged for each account of the database
//! on that account's rows alone (its runs, parked records and audits, against its own schedules):
//! an [`Alert`] is a condition of one account, and while the database has several accounts its
//! messages name the account (`account emea (portal 2002): contacts sync failed`). Signature
//! failures are the process's (its webhook endpoint serves every account).
//!
//! When several instances share a database, only the leader (`crate::poller::leader`) judges and
//! sends, so each message goes out once. An instance that becomes leader starts from nothing
//! announced and so announces what holds then, as a restart does.

pub mod channels;
pub mod email;
pub mod message;
pub mod monitor;
pub mod slack;

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};

use crate::config::{Schedule, ScheduleSettings};
use crate::kind::ObjectKind;
use crate::store::sync_logs::RunStatus;
use crate::webhook::stats::WindowCounts;

/// Failed records above this share of processed ones raise an alert.
pub const FAILED_SHARE: f64 = 0.10;
/// Signature failures within the window that make a spike (with at least half of all requests).
pub const SPIKE_MIN: u64 = 5;
/// The signature-spike window.
pub const SPIKE_WINDOW_MINUTES: usize = 5;
/// A record parked longer than this raises an alert.
pub const PARKED_MAX_AGE_MINUTES: i64 = 60;

/// Something worth telling a person about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    RunFailed(ObjectKind),
    FailedRecords(ObjectKind),
    Overdue(ObjectKind),
    ParkedRecords(ObjectKind),
    AuditDrift(ObjectKind),
    SignatureFailures,
}

impl Condition {
    /// A stable name (metrics label, logs).
    pub fn name(self) -> String {
        match self {
            Self::RunFailed(kind) => format!("run_failed:{kind}"),
            Self::FailedRecords(kind) => format!("failed_records:{kind}"),
            Self::Overdue(kind) => format!("overdue:{kind}"),
            Self::ParkedRecords(kind) => format!("parked_records:{kind}"),
            Self::AuditDrift(kind) => format!("audit_drift:{kind}"),
            Self::SignatureFailures => "signature_failures".to_owned(),
        }
    }

    fn cleared_text(self) -> String {
        match self {
            Self::RunFailed(kind) => format!("{kind} sync recovered: the latest run did not fail"),
            Self::FailedRecords(kind) => format!("{kind} sync: failed records are back under 10%"),
            Self::Overdue(kind) => format!("{kind} sync is on schedule again"),
            Self::ParkedRecords(kind) => {
                format!("{kind}: no record has been parked for over {PARKED_MAX_AGE_MINUTES} minutes any more")
            }
            Self::AuditDrift(kind) => format!("{kind}: the latest drift audit left no drift"),
            Self::SignatureFailures => "webhook signature failures are back to normal".to_owned(),
        }
    }
}

/// A condition of one account's rows (`account`: its portal id), or of the whole process
/// (`None`: the webhook signature check).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Alert {
    pub account: Option<i64>,
    pub condition: Condition,
}

/// What holds at one check: per alert, how its messages name the account (empty for none, or
/// while the database has one account) and the condition's text.
pub type Holding = BTreeMap<Alert, (String, String)>;

/// How messages name an account: empty while the database has one account (messages read as
/// before accounts existed), else `account <name> (portal <id>): `.
pub fn account_label(name: &str, portal_id: i64, accounts: usize) -> String {
    if accounts > 1 { format!("account {name} (portal {portal_id}): ") } else { String::new() }
}

/// The latest finished run of an object, as the checks need it.
#[derive(Clone, Debug, PartialEq)]
pub struct FinishedRun {
    pub status: RunStatus,
    pub records_processed: i32,
    pub records_failed: i32,
    pub completed_at: DateTime<Utc>,
    /// The run's fatal error, when it had one.
    pub error: Option<String>,
}

/// What `sync_logs` says about one object.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectHistory {
    pub kind: ObjectKind,
    pub latest: Option<FinishedRun>,
    /// When the last `success` or `partial` run finished.
    pub last_good: Option<DateTime<Utc>>,
    /// Records parked in `sync_failures`, and when the oldest of them first failed.
    pub parked: i64,
    pub oldest_parked: Option<DateTime<Utc>>,
}

/// Everything one check looks at.
pub struct Observation<'a> {
    pub now: DateTime<Utc>,
    /// When monitoring started (the overdue clock of objects that never ran).
    pub since: DateTime<Utc>,
    pub objects: &'a [ObjectHistory],
    pub schedules: &'a ScheduleSettings,
    /// Webhook counts over the last [`SPIKE_WINDOW_MINUTES`] minutes.
    pub webhooks: WindowCounts,
}

/// The conditions that hold, each with the message announcing it: [`object_conditions`] and
/// [`signature_spike`].
pub fn evaluate(obs: &Observation<'_>) -> BTreeMap<Condition, String> {
    let mut holding = object_conditions(obs);
    holding.extend(signature_spike(obs.webhooks));
    holding
}

/// The conditions of the objects (their runs, parked records and schedules) that hold.
pub fn object_conditions(obs: &Observation<'_>) -> BTreeMap<Condition, String> {
    let mut holding = BTreeMap::new();
    for object in obs.objects {
        let kind = object.kind;
        if let Some(run) = &object.latest {
            if run.status == RunStatus::Failed {
                let reason = run.error.as_deref().map(|e| format!(": {}", truncate(e, 300))).unwrap_or_default();
                holding.insert(Condition::RunFailed(kind), format!("{kind} sync failed{reason}"));
            }
            if run.records_processed > 0
                && f64::from(run.records_failed) > FAILED_SHARE * f64::from(run.records_processed)
            {
                holding.insert(
                    Condition::FailedRecords(kind),
                    format!(
                        "{kind} sync: {} of {} records failed (over 10%)",
                        run.records_failed, run.records_processed
                    ),
                );
            }
        }
        if let Some(oldest) = object.oldest_parked.filter(|t| obs.now - *t > Duration::minutes(PARKED_MAX_AGE_MINUTES))
        {
            holding.insert(
                Condition::ParkedRecords(kind),
                format!(
                    "{kind}: {} record(s) could not be stored, the oldest since {} (over {PARKED_MAX_AGE_MINUTES} \
                     minutes); see GET /api/sync/failures for the ids and errors",
                    object.parked,
                    oldest.to_rfc3339()
                ),
            );
        }
        let interval = interval_of(obs.schedules.of(kind), obs.now);
        let clock = object.last_good.map_or(obs.since, |good| good.max(obs.since));
        if let Some(interval) = interval.filter(|i| obs.now - clock > *i * 2) {
            let last = object.last_good.map_or_else(|| "never since start-up".to_owned(), |t| t.to_rfc3339());
            holding.insert(
                Condition::Overdue(kind),
                format!(
                    "{kind} sync is overdue: no successful run for over {} minutes (last: {last})",
                    (interval * 2).num_minutes()
                ),
            );
        }
    }
    holding
}

/// The signature-failure spike, when the webhook counts `w` make one.
pub fn signature_spike(w: WindowCounts) -> Option<(Condition, String)> {
    (w.signature_failures >= SPIKE_MIN && w.signature_failures * 2 >= w.received).then(|| {
        let text = format!(
            "{} of {} webhook requests in the last {SPIKE_WINDOW_MINUTES} minutes failed signature checks \
             (is HUBSPOT_CLIENT_SECRET current after a rotation?)",
            w.signature_failures, w.received
        );
        (Condition::SignatureFailures, text)
    })
}

/// The latest finished drift audit of an object, as the audit alert needs it.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditResult {
    pub kind: ObjectKind,
    /// Whether it repaired what it found.
    pub repaired: bool,
    /// Missing, extra and stale ids left at its end.
    pub drift_left: i64,
    pub completed_at: DateTime<Utc>,
}

/// The audit conditions that hold: drift left after a repair.
pub fn audit_conditions(audits: &[AuditResult]) -> BTreeMap<Condition, String> {
    audits
        .iter()
        .filter(|a| a.repaired && a.drift_left > 0)
        .map(|a| {
            let text = format!(
                "{} drift audit at {}: {} ids still differ from HubSpot after its repair (see the audit's \
                 sync_logs row for their ids, and GET /api/sync/failures for parked records)",
                a.kind,
                a.completed_at.to_rfc3339(),
                a.drift_left
            );
            (Condition::AuditDrift(a.kind), text)
        })
        .collect()
}

/// The longest gap between the next few firings of a schedule (cron gaps can be uneven).
pub fn interval_of(schedule: &Schedule, now: DateTime<Utc>) -> Option<Duration> {
    let mut at = schedule.next_after(now)?;
    let mut longest = Duration::zero();
    for _ in 0..3 {
        let next = schedule.next_after(at)?;
        longest = longest.max(next - at);
        at = next;
    }
    Some(longest)
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((cut, _)) => &text[..cut],
        None => text,
    }
}

/// A message to send: a condition of an account (or of the process) started or stopped holding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    /// The portal id of the account whose rows it was judged on; `None` for the process's.
    pub account: Option<i64>,
    pub condition: Condition,
    pub firing: bool,
    /// The message, naming the account (see [`account_label`]).
    pub text: String,
    /// How the message named the account (kept to name it again when it clears).
    pub label: String,
}

impl Transition {
    pub fn alert(&self) -> Alert {
        Alert { account: self.account, condition: self.condition }
    }
}

/// Which alerts have been announced as holding, each with how it named its account.
#[derive(Debug, Default)]
pub struct AlertState {
    firing: BTreeMap<Alert, String>,
}

impl AlertState {
    /// The messages owed given the alerts that hold now.
    pub fn transitions(&self, holding: &Holding) -> Vec<Transition> {
        let started =
            holding.iter().filter(|(a, _)| !self.firing.contains_key(*a)).map(|(a, (label, text))| Transition {
                account: a.account,
                condition: a.condition,
                firing: true,
                text: format!("{label}{text}"),
                label: label.clone(),
            });
        let cleared = self.firing.iter().filter(|(a, _)| !holding.contains_key(*a)).map(|(a, label)| Transition {
            account: a.account,
            condition: a.condition,
            firing: false,
            text: format!("{label}{}", a.condition.cleared_text()),
            label: label.clone(),
        });
        started.chain(cleared).collect()
    }

    /// Records that a transition's message was delivered.
    pub fn delivered(&mut self, transition: &Transition) {
        if transition.firing {
            self.firing.insert(transition.alert(), transition.label.clone());
        } else {
            self.firing.remove(&transition.alert());
        }
    }

    /// Whether `condition` has been announced for any account.
    pub fn is_firing(&self, condition: Condition) -> bool {
        self.firing.keys().any(|a| a.condition == condition)
    }

    /// Whether `alert` has been announced.
    pub fn is_firing_alert(&self, alert: Alert) -> bool {
        self.firing.contains_key(&alert)
    }

    /// For how many accounts (or the process) `condition` has been announced.
    pub fn firing_count(&self, condition: Condition) -> usize {
        self.firing.keys().filter(|a| a.condition == condition).count()
    }

    /// Forgets every alert announced; returns them.
    pub fn clear(&mut self) -> Vec<Alert> {
        std::mem::take(&mut self.firing).into_keys().collect()
    }
}

#[cfg(test)]
mod tests;

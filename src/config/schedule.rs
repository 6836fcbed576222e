//! Cron schedules (UTC) for the reconciliation poller, validated at start-up with `croner`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use croner::Cron;

use crate::kind::ObjectKind;

/// A validated five-field cron expression, evaluated in UTC.
#[derive(Clone)]
pub struct Schedule {
    cron: Cron,
    pattern: String,
}

impl Schedule {
    /// The first run strictly after `after`, if the expression ever fires again.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.find_next_occurrence(&after, false).ok()
    }

    pub fn pattern(&self) -> &str {
        &self.pattern
    }
}

impl FromStr for Schedule {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        let pattern = raw.trim().to_owned();
        if pattern.split_whitespace().count() != 5 {
            return Err(format!("'{pattern}' is not a five-field cron expression (minute hour day month weekday)"));
        }
        // croner's own wording ("Component error: Number out of bounds") names no field.
        let cron = Cron::from_str(&pattern).map_err(|_| {
            format!(
                "'{pattern}' is not a valid cron expression: the fields are minute 0-59, hour 0-23, day of month \
                 1-31, month 1-12 and day of week 0-6, each a number, a range (1-5), a list (1,3), a step (*/5) or *"
            )
        })?;
        Ok(Self { cron, pattern })
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({})", self.pattern)
    }
}

/// When the reconciliation poller runs each object (cron, UTC).
#[derive(clap::Args, Debug, Clone)]
pub struct ScheduleSettings {
    /// Cron (UTC) for the contacts reconciliation.
    #[arg(long, env = "SCHEDULE_CONTACTS", value_name = "SCHEDULE_CONTACTS", default_value = "*/5 * * * *")]
    pub schedule_contacts: Schedule,
    /// Cron (UTC) for the deals reconciliation.
    #[arg(long, env = "SCHEDULE_DEALS", value_name = "SCHEDULE_DEALS", default_value = "*/15 * * * *")]
    pub schedule_deals: Schedule,
    /// Cron (UTC) for the calls reconciliation.
    #[arg(long, env = "SCHEDULE_CALLS", value_name = "SCHEDULE_CALLS", default_value = "*/15 * * * *")]
    pub schedule_calls: Schedule,
    /// Cron (UTC) for the owners reconciliation.
    #[arg(long, env = "SCHEDULE_OWNERS", value_name = "SCHEDULE_OWNERS", default_value = "0 6 * * *")]
    pub schedule_owners: Schedule,
    /// Cron (UTC) for the weekly full pass over every object (catches missed deletions).
    #[arg(long, env = "SCHEDULE_FULL", value_name = "SCHEDULE_FULL", default_value = "0 3 * * 0")]
    pub schedule_full: Schedule,
    /// Cron (UTC) for the drift audit of every object (with repair; see `hubspot-sync audit`).
    #[arg(long, env = "SCHEDULE_AUDIT", value_name = "SCHEDULE_AUDIT", default_value = "0 4 * * *")]
    pub schedule_audit: Schedule,
    /// Cron (UTC) for the association sweep (associations re-read; see `hubspot-sync sync
    /// associations`).
    #[arg(long, env = "SCHEDULE_ASSOCIATIONS", value_name = "SCHEDULE_ASSOCIATIONS", default_value = "0 * * * *")]
    pub schedule_associations: Schedule,
}

impl ScheduleSettings {
    /// The cron schedule of one object's incremental runs.
    pub fn of(&self, kind: ObjectKind) -> &Schedule {
        match kind {
            ObjectKind::Contacts => &self.schedule_contacts,
            ObjectKind::Deals => &self.schedule_deals,
            ObjectKind::Calls => &self.schedule_calls,
            ObjectKind::Owners => &self.schedule_owners,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn five_minute_schedule_fires_on_the_next_multiple() {
        let s: Schedule = "*/5 * * * *".parse().unwrap();
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 10, 2, 30).unwrap();
        assert_eq!(s.next_after(at), Some(Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap()));
    }

    #[test]
    fn weekly_full_pass_is_sunday_at_three() {
        let s: Schedule = "0 3 * * 0".parse().unwrap();
        let thursday = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(s.next_after(thursday), Some(Utc.with_ymd_and_hms(2026, 1, 4, 3, 0, 0).unwrap()));
    }

    #[test]
    fn invalid_expressions_are_refused() {
        assert!("*/5 * * *".parse::<Schedule>().is_err(), "four fields");
        assert!("61 * * * *".parse::<Schedule>().is_err(), "minute out of range");
        assert!("every five minutes".parse::<Schedule>().is_err());
    }
}

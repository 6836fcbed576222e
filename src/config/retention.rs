//! Retention of the bookkeeping tables (`SYNC_LOGS_RETENTION`, `OWNER_HISTORY_RETENTION`) and
//! when the daily maintenance job that applies it runs (`SCHEDULE_MAINTENANCE`).

use std::time::Duration;

use super::{Schedule, parse_duration};

/// The shortest retention accepted: a typo such as `90s` for `90d` must not empty a table.
pub const MIN_RETENTION: Duration = Duration::from_secs(24 * 60 * 60);

/// How long rows are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Never deleted.
    Keep,
    /// Deleted once older than this.
    Older(Duration),
}

impl Retention {
    /// The moment before which rows are deleted, if any are.
    pub fn cutoff(self, now: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
        match self {
            Retention::Keep => None,
            // An age too large to subtract keeps everything.
            Retention::Older(age) => chrono::Duration::from_std(age).ok().and_then(|age| now.checked_sub_signed(age)),
        }
    }
}

impl std::fmt::Display for Retention {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Retention::Keep => f.write_str("keep"),
            Retention::Older(age) => write!(f, "{}", humantime::format_duration(*age)),
        }
    }
}

/// `keep` (also `forever`), or an age of at least a day such as `90d`, `12w` or `1y`.
pub fn parse_retention(raw: &str) -> Result<Retention, String> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("keep") || raw.eq_ignore_ascii_case("forever") {
        return Ok(Retention::Keep);
    }
    let age = parse_duration(raw).map_err(|e| format!("{e}; or `keep` to never delete"))?;
    if age < MIN_RETENTION {
        return Err(format!("{raw} is shorter than a day (examples: 90d, 12w, keep)"));
    }
    Ok(Retention::Older(age))
}

/// What the daily maintenance job deletes, and when it runs.
#[derive(clap::Args, Debug, Clone)]
pub struct RetentionSettings {
    /// `sync_logs` rows that started longer ago than this are deleted daily (`keep`: never).
    /// The newest finished run of each sync type and mode, and the newest good run of each
    /// sync type, are kept whatever their age.
    #[arg(long, env = "SYNC_LOGS_RETENTION", value_name = "SYNC_LOGS_RETENTION", default_value = "90d",
          value_parser = parse_retention)]
    pub sync_logs_retention: Retention,
    /// Owner history rows (`contact_owner_history`) of changes older than this are deleted
    /// daily; `keep` (the default) never deletes them.
    #[arg(long, env = "OWNER_HISTORY_RETENTION", value_name = "OWNER_HISTORY_RETENTION", default_value = "keep",
          value_parser = parse_retention)]
    pub owner_history_retention: Retention,
    /// Cron (UTC) for the maintenance job that applies the retention (while this instance leads).
    #[arg(long, env = "SCHEDULE_MAINTENANCE", value_name = "SCHEDULE_MAINTENANCE", default_value = "30 4 * * *")]
    pub schedule_maintenance: Schedule,
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retention_is_an_age_of_a_day_or_more_or_keep() {
        assert_eq!(parse_retention("90d"), Ok(Retention::Older(Duration::from_secs(90 * 86_400))));
        assert_eq!(parse_retention(" 2w "), Ok(Retention::Older(Duration::from_secs(14 * 86_400))));
        assert_eq!(parse_retention("keep"), Ok(Retention::Keep));
        assert_eq!(parse_retention("Forever"), Ok(Retention::Keep));
        assert!(parse_retention("90s").is_err(), "shorter than a day");
        assert!(parse_retention("90").is_err(), "no unit");
        assert!(parse_retention("soon").is_err());
    }

    #[test]
    fn the_cutoff_is_the_age_before_now() {
        let now = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 12, 0, 0).unwrap();
        assert_eq!(Retention::Keep.cutoff(now), None);
        let ninety = parse_retention("90d").unwrap();
        assert_eq!(ninety.cutoff(now), Some(chrono::Utc.with_ymd_and_hms(2026, 9, 3, 12, 0, 0).unwrap()));
        assert_eq!(Retention::Older(Duration::MAX).cutoff(now), None, "too old to reach keeps everything");
    }
}

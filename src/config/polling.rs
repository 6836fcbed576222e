//! The fast polling lanes (`FAST_POLL_*`): fresh data without webhooks. Each object is searched
//! for recent changes every `FAST_POLL_INTERVAL` (the fast lane) and, over a window that trails
//! HubSpot's search index by `FAST_POLL_DELAY`, every `FAST_POLL_DELAYED_INTERVAL` (the delayed
//! lane); both together spend at most `FAST_POLL_BUDGET_SHARE` of the request budget.

use std::time::Duration;

use crate::kind::ObjectKind;

use super::parse_duration;

/// `FAST_POLL`: whether the lanes run.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastPoll {
    /// When `HUBSPOT_CLIENT_SECRET` is unset (no webhooks can be verified).
    Auto,
    /// Always (also next to webhooks).
    On,
    /// Never: without webhooks, only the schedules keep the copy.
    Off,
}

/// `FAST_POLL_WRITE`: how the lanes turn what they find into rows.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FastPollWrite {
    /// Straight from the search results when every property kept fits in a search (HubSpot's
    /// 3000-character body), else as `queue`.
    Auto,
    /// Searches ask for ids only; the batch fetchers read them (up to 100 per read).
    Queue,
}

/// Settings of the fast polling lanes.
#[derive(clap::Args, Debug, Clone)]
pub struct PollingSettings {
    /// Fast polling lanes: `auto` (when HUBSPOT_CLIENT_SECRET is unset), `on` or `off`.
    #[arg(long, env = "FAST_POLL", value_name = "FAST_POLL", default_value = "auto")]
    pub fast_poll: FastPoll,
    /// How often the fast lane searches each object for changes.
    #[arg(long, env = "FAST_POLL_INTERVAL", value_name = "FAST_POLL_INTERVAL", default_value = "10s",
          value_parser = positive_duration)]
    pub fast_poll_interval: Duration,
    /// How far back each window reaches before the end of the previous one (search index lag up
    /// to this long costs the fast lane nothing).
    #[arg(long, env = "FAST_POLL_OVERLAP", value_name = "FAST_POLL_OVERLAP", default_value = "10s",
          value_parser = parse_duration)]
    pub fast_poll_overlap: Duration,
    /// How far behind now the delayed lane's windows end (HubSpot's search index lag it covers).
    #[arg(long, env = "FAST_POLL_DELAY", value_name = "FAST_POLL_DELAY", default_value = "2m",
          value_parser = parse_duration)]
    pub fast_poll_delay: Duration,
    /// How often the delayed lane searches each object.
    #[arg(long, env = "FAST_POLL_DELAYED_INTERVAL", value_name = "FAST_POLL_DELAYED_INTERVAL", default_value = "1m",
          value_parser = positive_duration)]
    pub fast_poll_delayed_interval: Duration,
    /// The most both lanes (and the reads of what they find) spend of the request budget:
    /// `20%` or `0.2`.
    #[arg(long, env = "FAST_POLL_BUDGET_SHARE", value_name = "FAST_POLL_BUDGET_SHARE", default_value = "20%",
          value_parser = parse_share)]
    pub fast_poll_budget_share: f64,
    /// The objects polled (comma-separated among contacts, deals, calls).
    #[arg(long, env = "FAST_POLL_OBJECTS", value_name = "FAST_POLL_OBJECTS", default_value = "contacts,deals,calls",
          value_delimiter = ',', value_parser = polled_object)]
    pub fast_poll_objects: Vec<ObjectKind>,
    /// `auto`: rows written straight from the search results when they carry every property
    /// kept; `queue`: ids only, read by the batch fetchers.
    #[arg(long, env = "FAST_POLL_WRITE", value_name = "FAST_POLL_WRITE", default_value = "auto")]
    pub fast_poll_write: FastPollWrite,
}

impl Default for PollingSettings {
    fn default() -> Self {
        Self {
            fast_poll: FastPoll::Auto,
            fast_poll_interval: Duration::from_secs(10),
            fast_poll_overlap: Duration::from_secs(10),
            fast_poll_delay: Duration::from_secs(120),
            fast_poll_delayed_interval: Duration::from_secs(60),
            fast_poll_budget_share: 0.2,
            fast_poll_objects: vec![ObjectKind::Contacts, ObjectKind::Deals, ObjectKind::Calls],
            fast_poll_write: FastPollWrite::Auto,
        }
    }
}

impl PollingSettings {
    /// Whether the lanes run, given whether webhooks can be verified (`HUBSPOT_CLIENT_SECRET`).
    pub fn enabled(&self, webhooks: bool) -> bool {
        match self.fast_poll {
            FastPoll::Auto => !webhooks,
            FastPoll::On => true,
            FastPoll::Off => false,
        }
    }
}

pub(super) fn positive_duration(raw: &str) -> Result<Duration, String> {
    let d = parse_duration(raw)?;
    if d < Duration::from_millis(10) {
        return Err("must be at least 10ms".into());
    }
    Ok(d)
}

/// `20%` or `0.2`: a share within (0, 1].
pub fn parse_share(raw: &str) -> Result<f64, String> {
    let raw = raw.trim();
    let share = match raw.strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => raw.parse::<f64>(),
    }
    .map_err(|_| format!("{raw:?} is not a share (examples: 20%, 0.2)"))?;
    if !(share > 0.0 && share <= 1.0) {
        return Err(format!("{raw} is outside (0%, 100%]"));
    }
    Ok(share)
}

fn polled_object(raw: &str) -> Result<ObjectKind, String> {
    match raw.trim().parse::<ObjectKind>() {
        Ok(ObjectKind::Owners) => Err("owners are not polled (they have no last-modified search)".into()),
        Ok(kind) => Ok(kind),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_parse_as_percent_or_fraction() {
        assert_eq!(parse_share("20%"), Ok(0.2));
        assert_eq!(parse_share(" 0.35 "), Ok(0.35));
        assert_eq!(parse_share("100%"), Ok(1.0));
        assert!(parse_share("0").is_err());
        assert!(parse_share("150%").is_err());
        assert!(parse_share("a fifth").is_err());
        assert!(parse_share("NaN").is_err());
    }

    #[test]
    fn auto_polls_only_without_webhooks() {
        let mut s = PollingSettings::default();
        assert!(s.enabled(false) && !s.enabled(true));
        s.fast_poll = FastPoll::On;
        assert!(s.enabled(true));
        s.fast_poll = FastPoll::Off;
        assert!(!s.enabled(false));
        assert_eq!(polled_object("deals"), Ok(ObjectKind::Deals));
        assert!(polled_object("owners").is_err());
    }
}

//! What the operations surface shows of the lanes: each object's mode, each lane's progress and
//! lag, and the share of the request budget the lanes use.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};

use super::super::core::lock;
use crate::hubspot::HubSpot;
use crate::kind::ObjectKind;

/// How an object is kept fresh between its scheduled runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectMode {
    /// Webhooks name its changes (HubSpot's own push).
    Webhooks,
    /// The fast polling lanes search for its changes (webhooks too, when also configured).
    FastPolling,
    /// Only the cron schedules.
    SchedulesOnly,
}

impl ObjectMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhooks => "webhooks",
            Self::FastPolling => "fast_polling",
            Self::SchedulesOnly => "schedules_only",
        }
    }
}

/// The two lanes of an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LaneName {
    /// Every `FAST_POLL_INTERVAL`, windows ending now.
    Fast,
    /// Every `FAST_POLL_DELAYED_INTERVAL`, windows ending `FAST_POLL_DELAY` ago.
    Delayed,
}

impl LaneName {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Delayed => "delayed",
        }
    }
}

/// One lane's progress since start-up.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LaneFigures {
    /// The end of the last window searched completely: changes up to here were found.
    pub covered_to: Option<DateTime<Utc>>,
    /// When the last pass ended (searched its window, or failed).
    pub last_pass: Option<DateTime<Utc>>,
    /// Why the last pass failed, when it did (the next one starts from the same place).
    pub last_error: Option<String>,
    pub passes: u64,
    pub failed_passes: u64,
    /// Search pages read.
    pub searches: u64,
    /// Changed ids the searches found.
    pub found: u64,
    /// Of those, ids queued for a read (not read at that version yet, not already waiting).
    pub queued: u64,
    /// Of those, records written straight from the search results (not read at that version).
    pub stored: u64,
}

impl LaneFigures {
    /// How far behind `now` the lane's coverage is; `None` before its first complete pass.
    pub fn lag(&self, now: DateTime<Utc>) -> Option<chrono::Duration> {
        self.covered_to.map(|t| (now - t).max(chrono::Duration::zero()))
    }
}

/// What one pass did, for [`Figures::record`].
#[derive(Clone, Debug, Default)]
pub struct Pass {
    pub searches: u64,
    pub found: u64,
    pub queued: u64,
    pub stored: u64,
    /// The window's end, when every page was read.
    pub covered_to: Option<DateTime<Utc>>,
    pub error: Option<String>,
}

/// Every lane's figures, written by the lanes.
#[derive(Default)]
pub struct Figures {
    lanes: Mutex<HashMap<(ObjectKind, LaneName), LaneFigures>>,
}

impl Figures {
    pub fn record(&self, kind: ObjectKind, lane: LaneName, pass: Pass) {
        let mut lanes = lock(&self.lanes);
        let f = lanes.entry((kind, lane)).or_default();
        f.passes += 1;
        f.searches += pass.searches;
        f.found += pass.found;
        f.queued += pass.queued;
        f.stored += pass.stored;
        f.last_pass = Some(Utc::now());
        match pass.error {
            Some(error) => {
                f.failed_passes += 1;
                f.last_error = Some(error);
            }
            None => f.last_error = None,
        }
        if pass.covered_to.is_some() {
            f.covered_to = pass.covered_to.max(f.covered_to);
        }
    }

    pub fn lane(&self, kind: ObjectKind, lane: LaneName) -> LaneFigures {
        lock(&self.lanes).get(&(kind, lane)).cloned().unwrap_or_default()
    }
}

/// The lanes as the status API shows them: modes, figures, budget share.
#[derive(Clone, Default)]
pub struct PollingStatus {
    modes: HashMap<ObjectKind, ObjectMode>,
    /// Whether webhooks are configured (their figures are shown).
    pub webhooks: bool,
    figures: Option<Arc<Figures>>,
    /// The client the lanes use, and their share of its budget.
    budget: Option<(HubSpot, f64)>,
}

impl PollingStatus {
    /// Modes per object; every other object is [`ObjectMode::SchedulesOnly`].
    pub fn new(modes: HashMap<ObjectKind, ObjectMode>, webhooks: bool) -> Self {
        Self { modes, webhooks, figures: None, budget: None }
    }

    /// The lanes run: their figures, client and share.
    pub fn with_lanes(mut self, figures: Arc<Figures>, hubspot: HubSpot, share: f64) -> Self {
        (self.figures, self.budget) = (Some(figures), Some((hubspot, share)));
        self
    }

    pub fn mode(&self, kind: ObjectKind) -> ObjectMode {
        self.modes.get(&kind).copied().unwrap_or(ObjectMode::SchedulesOnly)
    }

    /// The fast and delayed lanes of `kind`, when it is polled.
    pub fn lanes(&self, kind: ObjectKind) -> Option<(LaneFigures, LaneFigures)> {
        let figures = self.figures.as_ref().filter(|_| self.mode(kind) == ObjectMode::FastPolling)?;
        Some((figures.lane(kind, LaneName::Fast), figures.lane(kind, LaneName::Delayed)))
    }

    /// The lanes' share of the budget and the share they used over the last minute.
    pub fn budget_share(&self) -> Option<(f64, f64)> {
        self.budget.as_ref().map(|(hubspot, share)| (*share, hubspot.polling_share_used()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_pass_keeps_the_coverage_and_says_why() {
        let figures = Figures::default();
        let t = Utc::now() - chrono::Duration::seconds(30);
        let pass = Pass { searches: 2, found: 250, queued: 240, stored: 0, covered_to: Some(t), error: None };
        figures.record(ObjectKind::Deals, LaneName::Fast, pass);
        let failed =
            Pass { searches: 1, found: 200, queued: 0, stored: 5, covered_to: None, error: Some("HubSpot 500".into()) };
        figures.record(ObjectKind::Deals, LaneName::Fast, failed);
        let f = figures.lane(ObjectKind::Deals, LaneName::Fast);
        assert_eq!((f.passes, f.failed_passes, f.searches, f.found, f.queued), (2, 1, 3, 450, 240));
        assert_eq!((f.covered_to, f.last_error.as_deref()), (Some(t), Some("HubSpot 500")));
        assert!(f.lag(Utc::now()).is_some_and(|lag| lag >= chrono::Duration::seconds(30)));
        assert_eq!(figures.lane(ObjectKind::Deals, LaneName::Delayed), LaneFigures::default(), "lanes are apart");
    }

    #[test]
    fn modes_default_to_schedules_only() {
        let status = PollingStatus::new(HashMap::from([(ObjectKind::Calls, ObjectMode::FastPolling)]), false);
        assert_eq!(status.mode(ObjectKind::Calls), ObjectMode::FastPolling);
        assert_eq!(status.mode(ObjectKind::Owners), ObjectMode::SchedulesOnly);
        assert!(status.lanes(ObjectKind::Calls).is_none(), "no figures until the lanes run");
        assert!(status.budget_share().is_none());
    }
}

//! The windows a lane searches: each starts where the last good one ended, minus a small overlap,
//! and ends now minus the lane's delay. Pure arithmetic on Unix milliseconds.

use std::time::Duration;

use crate::hubspot::SearchWindow;

/// Where a lane stands: the end of its last window searched completely (Unix ms).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermark {
    pub covered_to_ms: i64,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Watermark {
    /// A lane taking the lead at `now_ms` starts `reach` back (what came before is the
    /// schedules' to catch up).
    pub fn starting(now_ms: i64, reach: Duration) -> Self {
        Self { covered_to_ms: now_ms.saturating_sub(ms(reach)) }
    }

    /// Never behind `now_ms - reach` (a lane that leads again after a pause starts there).
    pub fn at_least(self, now_ms: i64, reach: Duration) -> Self {
        Self { covered_to_ms: self.covered_to_ms.max(Self::starting(now_ms, reach).covered_to_ms) }
    }

    /// The next window at `now_ms`: `[covered - overlap, now - delay]` (never inverted).
    pub fn next_window(self, now_ms: i64, overlap: Duration, delay: Duration) -> SearchWindow {
        let to_ms = now_ms.saturating_sub(ms(delay));
        let from_ms = self.covered_to_ms.saturating_sub(ms(overlap)).min(to_ms);
        SearchWindow { from_ms, to_ms, after_id: None }
    }

    /// After every page of `window` was read: it is covered (never moves back).
    pub fn advanced(self, window: &SearchWindow) -> Self {
        Self { covered_to_ms: self.covered_to_ms.max(window.to_ms) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1000;

    #[test]
    fn windows_follow_each_other_with_the_overlap() {
        let now = 1_800_000_000_000;
        let mark = Watermark::starting(now, Duration::from_secs(120));
        let first = mark.next_window(now, Duration::from_secs(10), Duration::ZERO);
        assert_eq!((first.from_ms, first.to_ms), (now - 130 * S, now));
        let mark = mark.advanced(&first);
        let second = mark.next_window(now + 10 * S, Duration::from_secs(10), Duration::ZERO);
        assert_eq!((second.from_ms, second.to_ms), (now - 10 * S, now + 10 * S), "10 s back from where the last ended");
    }

    #[test]
    fn the_delayed_lane_trails_now() {
        let now = 1_800_000_000_000;
        let mark = Watermark::starting(now, Duration::from_secs(120));
        let w = mark.next_window(now + 60 * S, Duration::from_secs(10), Duration::from_secs(120));
        assert_eq!((w.from_ms, w.to_ms), (now - 130 * S, now - 60 * S));
        // Before the delay has passed the window is empty, never inverted.
        let early = Watermark { covered_to_ms: now }.next_window(now + S, Duration::ZERO, Duration::from_secs(120));
        assert!(early.from_ms <= early.to_ms);
    }

    #[test]
    fn a_watermark_never_moves_back() {
        let mark = Watermark { covered_to_ms: 5000 };
        let old = SearchWindow { from_ms: 0, to_ms: 4000, after_id: None };
        assert_eq!(mark.advanced(&old), mark);
        assert_eq!(mark.at_least(6000, Duration::from_secs(60)), mark, "a recent mark is kept");
        assert_eq!(mark.at_least(100_000, Duration::from_secs(60)).covered_to_ms, 40_000, "an old one catches up");
    }
}

//! What the next budget slot reads: one pure policy over every kind's lane.
//!
//! - A **full** batch (`max_batch` ids waiting) is always due: it cannot grow, so it goes with
//!   the next slot.
//! - A **partial** batch is due when the dispatcher's pace allows: at once when no partial read
//!   went out within the last `window` (an idle process reads a lone change without waiting),
//!   else `window` after the last one. So partial reads of all kinds together go out at most one
//!   per `window`, and while ids keep arriving each kind's batch grows for as long as the other
//!   kinds take their turns, instead of every kind spending a slot per window on its own.
//! - Among the due kinds, the one whose oldest id is oldest (then the fullest).
//! - A kind backing off after a failed read is not due before its backoff ends.
//! - Shutting down (queue closed), every waiting kind is due at once: the lanes are emptied.
//!
//! The budget, not this policy, paces the reads: the dispatcher reserves a slot before it
//! chooses and takes the ids, so while the budget is tight (slots scarce) the batches keep
//! growing until a slot is granted; and it starts each read without waiting for the one before
//! (a few in flight at once), so reads are never serialized behind one another's latency.

use tokio::time::{Duration, Instant};

use crate::kind::ObjectKind;

/// One kind's lane at the moment of the decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lane {
    pub kind: ObjectKind,
    pub waiting: usize,
    /// When its oldest waiting id was queued.
    pub oldest: Option<Instant>,
    /// A failed read's backoff: not read before this.
    pub backoff_until: Option<Instant>,
}

/// The policy's settings and memory.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Ids per read (HubSpot: at most 100).
    pub max_batch: usize,
    /// At most one partial read per `window` (`FETCH_WINDOW`).
    pub window: Duration,
    /// When the last partial read went out.
    pub last_partial: Option<Instant>,
    /// Shutting down: read everything at once.
    pub closed: bool,
}

/// What to do now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Read this kind's batch (up to `max_batch` of its oldest ids) with the next slot.
    Read(ObjectKind),
    /// Nothing is due before this moment (or before new ids arrive).
    WaitUntil(Instant),
    /// Nothing waits: wait for ids.
    Idle,
}

impl Pace {
    /// When partial batches may go next.
    fn partial_due(&self) -> Option<Instant> {
        if self.closed {
            return None;
        }
        self.last_partial.map(|at| at + self.window)
    }

    /// Whether reading `lane` now spends a partial read.
    pub fn is_partial(&self, lane: &Lane) -> bool {
        lane.waiting < self.max_batch
    }
}

/// The decision for `lanes` at `now`.
pub fn decide(lanes: &[Lane], pace: &Pace, now: Instant) -> Decision {
    let partial_due = pace.partial_due().filter(|at| *at > now);
    let mut wake: Option<Instant> = None;
    let mut best: Option<&Lane> = None;
    for lane in lanes.iter().filter(|l| l.waiting > 0) {
        let mut due_at = lane.backoff_until.filter(|at| *at > now);
        if pace.is_partial(lane) {
            due_at = due_at.max(partial_due);
        }
        if let Some(at) = due_at {
            wake = Some(wake.map_or(at, |w| w.min(at)));
            continue;
        }
        let better = best
            .is_none_or(|b| (lane.oldest, std::cmp::Reverse(lane.waiting)) < (b.oldest, std::cmp::Reverse(b.waiting)));
        if better {
            best = Some(lane);
        }
    }
    match (best, wake) {
        (Some(lane), _) => Decision::Read(lane.kind),
        (None, Some(at)) => Decision::WaitUntil(at),
        (None, None) => Decision::Idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C: ObjectKind = ObjectKind::Contacts;
    const D: ObjectKind = ObjectKind::Deals;
    const K: ObjectKind = ObjectKind::Calls;

    fn lane(kind: ObjectKind, waiting: usize, oldest: Option<Instant>) -> Lane {
        Lane { kind, waiting, oldest, backoff_until: None }
    }

    fn pace(last_partial: Option<Instant>) -> Pace {
        Pace { max_batch: 100, window: Duration::from_millis(200), last_partial, closed: false }
    }

    fn ms(t0: Instant, n: u64) -> Instant {
        t0 + Duration::from_millis(n)
    }

    #[test]
    fn nothing_waiting_is_idle() {
        let now = Instant::now();
        assert_eq!(decide(&[lane(C, 0, None), lane(D, 0, None)], &pace(None), now), Decision::Idle);
    }

    #[test]
    fn an_idle_process_reads_a_lone_change_at_once() {
        let t0 = Instant::now();
        let now = ms(t0, 1000);
        assert_eq!(decide(&[lane(C, 1, Some(now))], &pace(None), now), Decision::Read(C));
        // The last partial read a full window ago: idle again.
        assert_eq!(decide(&[lane(C, 1, Some(now))], &pace(Some(ms(t0, 800))), now), Decision::Read(C));
    }

    #[test]
    fn partial_batches_of_all_kinds_share_one_read_per_window() {
        let t0 = Instant::now();
        let lanes = [lane(C, 20, Some(ms(t0, 10))), lane(D, 20, Some(ms(t0, 20)))];
        // A partial read went out at 50 ms: the next one not before 250 ms, whichever kind.
        assert_eq!(decide(&lanes, &pace(Some(ms(t0, 50))), ms(t0, 100)), Decision::WaitUntil(ms(t0, 250)));
        assert_eq!(decide(&lanes, &pace(Some(ms(t0, 50))), ms(t0, 250)), Decision::Read(C));
    }

    #[test]
    fn a_full_batch_goes_with_the_next_slot_whatever_the_pace() {
        let t0 = Instant::now();
        let lanes = [lane(C, 20, Some(ms(t0, 10))), lane(D, 100, Some(ms(t0, 90)))];
        assert_eq!(decide(&lanes, &pace(Some(ms(t0, 95))), ms(t0, 100)), Decision::Read(D));
    }

    #[test]
    fn the_oldest_id_goes_first_then_the_fullest_batch() {
        let t0 = Instant::now();
        let now = ms(t0, 500);
        let lanes = [lane(C, 80, Some(ms(t0, 300))), lane(D, 5, Some(ms(t0, 100))), lane(K, 60, Some(ms(t0, 200)))];
        assert_eq!(decide(&lanes, &pace(None), now), Decision::Read(D), "the oldest waiting id");
        let tied = [lane(C, 10, Some(ms(t0, 100))), lane(D, 30, Some(ms(t0, 100)))];
        assert_eq!(decide(&tied, &pace(None), now), Decision::Read(D), "same age: the fullest");
        // Full batches compete with the due partial ones on age too: nothing starves.
        let full = [lane(C, 100, Some(ms(t0, 400))), lane(D, 5, Some(ms(t0, 100)))];
        assert_eq!(decide(&full, &pace(None), now), Decision::Read(D));
        assert_eq!(decide(&full, &pace(Some(ms(t0, 450))), now), Decision::Read(C), "pace spent: only the full one");
    }

    #[test]
    fn a_kind_backing_off_waits_and_the_others_go() {
        let t0 = Instant::now();
        let now = ms(t0, 100);
        let mut failing = lane(C, 100, Some(t0));
        failing.backoff_until = Some(ms(t0, 600));
        assert_eq!(decide(&[failing, lane(D, 3, Some(ms(t0, 50)))], &pace(None), now), Decision::Read(D));
        assert_eq!(decide(&[failing], &pace(None), now), Decision::WaitUntil(ms(t0, 600)));
        assert_eq!(decide(&[failing], &pace(None), ms(t0, 600)), Decision::Read(C));
    }

    #[test]
    fn shutting_down_reads_every_lane_at_once_but_keeps_backoff() {
        let t0 = Instant::now();
        let closed = Pace { closed: true, ..pace(Some(ms(t0, 90))) };
        let now = ms(t0, 100);
        assert_eq!(decide(&[lane(K, 1, Some(now))], &closed, now), Decision::Read(K));
        let mut failing = lane(K, 1, Some(t0));
        failing.backoff_until = Some(ms(t0, 300));
        assert_eq!(decide(&[failing], &closed, now), Decision::WaitUntil(ms(t0, 300)));
    }
}

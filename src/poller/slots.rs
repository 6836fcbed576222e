//! One run per object at a time within this process; requests that arrive during a run are
//! coalesced into one follow-up run (a full request wins over an incremental one).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use tokio::sync::watch;
use uuid::Uuid;

use crate::kind::ObjectKind;
use crate::store::sync_logs::{RunMode, RunTrigger};

/// What a waiting caller can learn about the run in progress.
#[derive(Clone, Debug, PartialEq)]
pub enum Started {
    Pending,
    Running(Uuid),
    Failed(String),
}

struct Slot {
    follow_up: Option<(RunMode, RunTrigger)>,
    started: watch::Sender<Started>,
}

/// The outcome of asking for a run.
pub enum Claim {
    /// The caller owns the object now and must run it (then call [`Slots::release`]).
    Claimed,
    /// A run is in progress; a follow-up is queued. Watch this for the running run's id.
    Busy(watch::Receiver<Started>),
}

#[derive(Default)]
pub struct Slots {
    map: Mutex<HashMap<ObjectKind, Slot>>,
}

impl Slots {
    pub fn claim(&self, kind: ObjectKind, mode: RunMode, trigger: RunTrigger) -> Claim {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get_mut(&kind) {
            Some(slot) => {
                slot.follow_up = Some(match slot.follow_up {
                    Some((RunMode::Full, first)) => (RunMode::Full, first),
                    Some((_, first)) => (mode, first),
                    None => (mode, trigger),
                });
                Claim::Busy(slot.started.subscribe())
            }
            None => {
                map.insert(kind, Slot { follow_up: None, started: watch::channel(Started::Pending).0 });
                Claim::Claimed
            }
        }
    }

    /// Publishes how the owner's current run started.
    pub fn started(&self, kind: ObjectKind, state: Started) {
        if let Some(slot) = self.map.lock().unwrap_or_else(PoisonError::into_inner).get(&kind) {
            slot.started.send_replace(state);
        }
    }

    /// Ends the owner's run: returns the coalesced follow-up to run next (still owning the
    /// object), or frees the object.
    pub fn release(&self, kind: ObjectKind) -> Option<(RunMode, RunTrigger)> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        let follow_up = map.get_mut(&kind).and_then(|slot| slot.follow_up.take());
        match follow_up {
            Some(next) => {
                if let Some(slot) = map.get(&kind) {
                    slot.started.send_replace(Started::Pending);
                }
                Some(next)
            }
            None => {
                map.remove(&kind);
                None
            }
        }
    }

    pub fn is_running(&self, kind: ObjectKind) -> bool {
        self.map.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn triggers_during_a_run_coalesce_into_one_follow_up() {
        let slots = Slots::default();
        let kind = ObjectKind::Deals;
        assert!(matches!(slots.claim(kind, RunMode::Incremental, RunTrigger::Schedule), Claim::Claimed));
        assert!(matches!(slots.claim(kind, RunMode::Incremental, RunTrigger::Manual), Claim::Busy(_)));
        assert!(matches!(slots.claim(kind, RunMode::Full, RunTrigger::Schedule), Claim::Busy(_)));
        assert!(matches!(slots.claim(kind, RunMode::Incremental, RunTrigger::Sql), Claim::Busy(_)));
        assert_eq!(slots.release(kind), Some((RunMode::Full, RunTrigger::Manual)));
        assert_eq!(slots.release(kind), None);
        assert!(!slots.is_running(kind));
        assert!(matches!(slots.claim(kind, RunMode::Incremental, RunTrigger::Schedule), Claim::Claimed));
    }
}

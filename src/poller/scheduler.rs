//! Cron schedules: each object's incremental run, the weekly full pass over every object, and
//! the daily drift audit of every object (with repair, `crate::audit`).
//!
//! When several instances share a database only one schedules: the leader (`super::leader`: the
//! instance holding the leader advisory lock; if its connection stops answering it steps down,
//! and another instance takes over). On becoming leader it first starts a run for every object
//! that never had a successful one, then catches up every schedule that fired since the object's
//! last run (of that mode, for the full pass) while no instance led: a deploy or a leader change
//! never skips a run, the weekly full pass included.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;

use super::leader::Leadership;
use super::{Mode, Poller, Trigger};
use crate::audit::Auditor;
use crate::config::{Schedule, ScheduleSettings};
use crate::kind::ObjectKind;
use crate::store::sync_logs;

/// What a schedule starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// An incremental run of one object.
    Object(ObjectKind),
    /// A full pass over every object.
    FullPass,
    /// A drift audit of every object, with repair (not a run: no slot, no run lock).
    Audit,
    /// The association sweep (`sync_logs` type `associations`).
    Associations,
}

/// The cron schedules, from `SCHEDULE_*`.
#[derive(Clone, Debug)]
pub struct Schedules {
    pub entries: Vec<(Target, Schedule)>,
}

impl From<&ScheduleSettings> for Schedules {
    fn from(s: &ScheduleSettings) -> Self {
        Self {
            entries: vec![
                (Target::Object(ObjectKind::Contacts), s.schedule_contacts.clone()),
                (Target::Object(ObjectKind::Deals), s.schedule_deals.clone()),
                (Target::Object(ObjectKind::Calls), s.schedule_calls.clone()),
                (Target::Object(ObjectKind::Owners), s.schedule_owners.clone()),
                (Target::FullPass, s.schedule_full.clone()),
                (Target::Audit, s.schedule_audit.clone()),
                (Target::Associations, s.schedule_associations.clone()),
            ],
        }
    }
}

impl Schedules {
    /// Every object and the full pass on one schedule.
    pub fn uniform(schedule: Schedule) -> Self {
        let mut entries: Vec<(Target, Schedule)> =
            ObjectKind::ALL.iter().map(|k| (Target::Object(*k), schedule.clone())).collect();
        entries.push((Target::FullPass, schedule));
        Self { entries }
    }

    /// The next firing of every entry strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Vec<(Target, Option<DateTime<Utc>>)> {
        self.entries.iter().map(|(t, s)| (*t, s.next_after(after))).collect()
    }
}

/// The next run per object: its own schedule or the full pass, whichever comes first.
pub fn next_per_object(next: &[(Target, Option<DateTime<Utc>>)]) -> HashMap<ObjectKind, DateTime<Utc>> {
    let full = next.iter().find(|(t, _)| *t == Target::FullPass).and_then(|(_, at)| *at);
    let mut out = HashMap::new();
    for kind in ObjectKind::ALL {
        let own = next.iter().find(|(t, _)| *t == Target::Object(kind)).and_then(|(_, at)| *at);
        if let Some(at) = [own, full].into_iter().flatten().min() {
            out.insert(kind, at);
        }
    }
    out
}

/// The runs a firing target starts.
pub fn runs_of(target: Target) -> Vec<(ObjectKind, Mode)> {
    match target {
        Target::Object(kind) => vec![(kind, Mode::Incremental)],
        Target::FullPass => ObjectKind::ALL.iter().map(|k| (*k, Mode::Full)).collect(),
        Target::Audit | Target::Associations => Vec::new(),
    }
}

/// Runs the cron schedules while this process leads (`leadership`), until the token is
/// cancelled.
pub async fn run_scheduler(
    poller: Poller,
    schedules: Schedules,
    mut leadership: Leadership,
    shutdown: CancellationToken,
) {
    poller.set_next_runs(next_per_object(&schedules.next_after(Utc::now())));
    loop {
        tokio::select! {
            () = leadership.acquired() => {}
            () = shutdown.cancelled() => return,
        }
        tracing::info!("this instance now schedules the reconciliation runs");
        let started = start_never_synced(&poller).await;
        start_missed(&poller, &schedules, &started, Utc::now()).await;
        lead(&poller, &schedules, &mut leadership, &shutdown).await;
        if shutdown.is_cancelled() {
            return;
        }
        tracing::warn!("no longer the leader; the reconciliation runs are scheduled by the next one");
    }
}

/// A startup run for every object without a successful run yet; returns those objects.
async fn start_never_synced(poller: &Poller) -> Vec<ObjectKind> {
    let mut started = Vec::new();
    let mut conn = match poller.pool().get().await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot check for objects never synced");
            return started;
        }
    };
    for kind in ObjectKind::ALL {
        match sync_logs::last_good_run(&mut conn, kind.as_str()).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                start(poller, kind, Mode::Incremental, Trigger::Startup);
                started.push(kind);
            }
            Err(e) => tracing::warn!(object.kind = %kind, error = %e, "cannot read the last good run"),
        }
    }
    started
}

/// The run a missed firing owes per object: a schedule is missed when it fired after the
/// object's last run started (any run for its own schedule, a full one for the full pass) and
/// before `now`. A missed full pass is owed rather than its incremental run. An object with no
/// such run yet is left to [`start_never_synced`].
pub fn missed(
    schedules: &Schedules,
    last_started: impl Fn(ObjectKind, Mode) -> Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<(ObjectKind, Mode, DateTime<Utc>)> {
    let mut owed: Vec<(ObjectKind, Mode, DateTime<Utc>)> = Vec::new();
    for (target, schedule) in &schedules.entries {
        for (kind, mode) in runs_of(*target) {
            let Some(last) = last_started(kind, mode) else { continue };
            let Some(due) = schedule.next_after(last).filter(|due| *due <= now) else { continue };
            match owed.iter_mut().find(|(k, _, _)| *k == kind) {
                Some(entry) if mode == Mode::Full => *entry = (kind, mode, due),
                Some(_) => {}
                None => owed.push((kind, mode, due)),
            }
        }
    }
    owed
}

/// Starts now the runs whose schedule fired while no instance led (see [`missed`]), except for
/// the objects `already` started.
async fn start_missed(poller: &Poller, schedules: &Schedules, already: &[ObjectKind], now: DateTime<Utc>) {
    let mut conn = match poller.pool().get().await {
        Ok(c) => c,
        Err(e) => return tracing::warn!(error = %e, "cannot check for missed scheduled runs"),
    };
    let mut last = HashMap::new();
    for kind in ObjectKind::ALL {
        for mode in [None, Some(Mode::Full)] {
            match sync_logs::last_started(&mut conn, kind.as_str(), mode).await {
                Ok(at) => {
                    last.insert((kind, mode.is_some()), at);
                }
                Err(e) => {
                    return tracing::warn!(object.kind = %kind, error = %e, "cannot check for missed scheduled runs");
                }
            }
        }
    }
    let last_started = |kind: ObjectKind, mode: Mode| last.get(&(kind, mode == Mode::Full)).copied().flatten();
    for (kind, mode, due) in missed(schedules, last_started, now) {
        if already.contains(&kind) {
            continue;
        }
        tracing::info!(
            object.kind = %kind, run.mode = mode.as_str(), due = %due,
            "a scheduled run was missed while no instance was scheduling; running it now"
        );
        start(poller, kind, mode, Trigger::Schedule);
    }
}

/// Starts a run in the background (the scheduler never waits for runs).
fn start(poller: &Poller, kind: ObjectKind, mode: Mode, trigger: Trigger) {
    let this = poller.clone();
    poller.spawn(async move {
        if let Err(e) = this.trigger(kind, mode, trigger).await {
            tracing::warn!(object.kind = %kind, error = %e, "scheduled sync did not start");
        }
    });
}

/// Starts the drift audit of every object, one after the other, in the background.
fn start_audit(poller: &Poller) {
    let auditor = Auditor::new(poller.pool().clone(), poller.hubspot().clone(), poller.inner.options.write.clone());
    poller.spawn(async move {
        for kind in ObjectKind::ALL {
            if let Err(e) = auditor.audit(kind, true, Trigger::Schedule).await {
                tracing::warn!(object.kind = %kind, error = %e, "scheduled drift audit did not run");
            }
        }
    });
}

/// Starts the association sweep in the background.
fn start_sweep(poller: &Poller) {
    let this = poller.clone();
    poller.spawn(async move {
        if let Err(e) = this.trigger_sweep(Trigger::Schedule).await {
            tracing::warn!(error = %e, "scheduled association sweep did not start");
        }
    });
}

/// Fires the schedules while this process leads.
async fn lead(poller: &Poller, schedules: &Schedules, leadership: &mut Leadership, shutdown: &CancellationToken) {
    let mut next = schedules.next_after(Utc::now());
    loop {
        poller.set_next_runs(next_per_object(&next));
        *super::core::lock(&poller.inner.next_sweep) =
            next.iter().find(|(t, _)| *t == Target::Associations).and_then(|(_, at)| *at);
        let earliest = next.iter().filter_map(|(_, at)| *at).min();
        if !leadership.sleep_leading(earliest, shutdown).await {
            return;
        }
        let now = Utc::now();
        for (target, at) in &mut next {
            if at.is_some_and(|t| t <= now) {
                if *target == Target::Audit {
                    start_audit(poller);
                }
                if *target == Target::Associations {
                    start_sweep(poller);
                }
                for (kind, mode) in runs_of(*target) {
                    start(poller, kind, mode, Trigger::Schedule);
                }
                *at = schedules.entries.iter().find(|(t, _)| t == target).and_then(|(_, s)| s.next_after(now));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn schedules() -> Schedules {
        let s = |p: &str| p.parse::<Schedule>().unwrap();
        Schedules {
            entries: vec![
                (Target::Object(ObjectKind::Contacts), s("*/5 * * * *")),
                (Target::Object(ObjectKind::Deals), s("*/15 * * * *")),
                (Target::Object(ObjectKind::Calls), s("*/15 * * * *")),
                (Target::Object(ObjectKind::Owners), s("0 6 * * *")),
                (Target::FullPass, s("0 3 * * 0")),
            ],
        }
    }

    #[test]
    fn next_run_per_object_takes_the_earlier_schedule() {
        // Sunday 2026-01-04 02:59:30: the full pass (03:00) comes before owners (06:00).
        let at = Utc.with_ymd_and_hms(2026, 1, 4, 2, 59, 30).unwrap();
        let next = next_per_object(&schedules().next_after(at));
        let three = Utc.with_ymd_and_hms(2026, 1, 4, 3, 0, 0).unwrap();
        assert_eq!(next[&ObjectKind::Owners], three);
        assert_eq!(next[&ObjectKind::Contacts], three);
        let monday = Utc.with_ymd_and_hms(2026, 1, 5, 5, 59, 0).unwrap();
        let next = next_per_object(&schedules().next_after(monday));
        assert_eq!(next[&ObjectKind::Owners], Utc.with_ymd_and_hms(2026, 1, 5, 6, 0, 0).unwrap());
        assert_eq!(next[&ObjectKind::Deals], Utc.with_ymd_and_hms(2026, 1, 5, 6, 0, 0).unwrap());
    }

    #[test]
    fn schedules_that_fired_since_the_last_run_are_owed() {
        // Monday 2026-01-05 10:07; the weekly full pass fired Sunday 03:00.
        let now = Utc.with_ymd_and_hms(2026, 1, 5, 10, 7, 0).unwrap();
        let recent = now - chrono::Duration::seconds(30);
        let last_week = Utc.with_ymd_and_hms(2025, 12, 29, 3, 0, 5).unwrap();
        let owed = missed(&schedules(), |_, mode| Some(if mode == Mode::Full { last_week } else { recent }), now);
        assert_eq!(owed.len(), ObjectKind::ALL.len(), "{owed:?}");
        assert!(owed.iter().all(|(_, mode, due)| *mode == Mode::Full
            && *due == Utc.with_ymd_and_hms(2026, 1, 4, 3, 0, 0).unwrap()));
        // Full pass done since Sunday; contacts' 5-minute schedule fired at 09:55 after a 09:50 run
        // (the others ran after their last firing).
        let full_done = Utc.with_ymd_and_hms(2026, 1, 4, 3, 0, 1).unwrap();
        let at_0950 = Utc.with_ymd_and_hms(2026, 1, 5, 9, 50, 30).unwrap();
        let owed = missed(
            &schedules(),
            |kind, mode| match (kind, mode) {
                (_, Mode::Full) => Some(full_done),
                (ObjectKind::Contacts, _) => Some(at_0950),
                _ => Some(recent),
            },
            now,
        );
        assert_eq!(
            owed,
            vec![(ObjectKind::Contacts, Mode::Incremental, Utc.with_ymd_and_hms(2026, 1, 5, 9, 55, 0).unwrap())]
        );
        // No history: nothing is owed (a never-synced object gets its startup run instead).
        assert!(missed(&schedules(), |_, _| None, now).is_empty());
    }

    #[test]
    fn the_full_pass_covers_every_object() {
        assert_eq!(runs_of(Target::FullPass).len(), ObjectKind::ALL.len());
        assert!(runs_of(Target::FullPass).iter().all(|(_, m)| *m == Mode::Full));
        assert_eq!(runs_of(Target::Object(ObjectKind::Deals)), vec![(ObjectKind::Deals, Mode::Incremental)]);
    }
}

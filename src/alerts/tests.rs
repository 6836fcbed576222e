use chrono::TimeZone;
use clap::Parser;

use super::*;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    schedules: ScheduleSettings,
}

fn schedules() -> ScheduleSettings {
    Args::parse_from(["x"]).schedules
}

fn t(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap() + Duration::minutes(minute)
}

fn run(status: &str, processed: i32, failed: i32, minute: i64) -> FinishedRun {
    FinishedRun {
        status: RunStatus::parse(status).unwrap(),
        records_processed: processed,
        records_failed: failed,
        completed_at: t(minute),
        error: None,
    }
}

fn history(latest: Option<FinishedRun>, last_good: Option<i64>) -> Vec<ObjectHistory> {
    ObjectKind::ALL
        .into_iter()
        .map(|kind| ObjectHistory {
            kind,
            latest: if kind == ObjectKind::Contacts { latest.clone() } else { None },
            last_good: last_good.map(t),
            parked: 0,
            oldest_parked: None,
        })
        .collect()
}

#[test]
fn a_record_parked_over_an_hour_alerts() {
    let mut objects = history(Some(run("success", 10, 0, 100)), Some(100));
    objects[1].parked = 2;
    objects[1].oldest_parked = Some(t(40));
    assert!(holding(&objects, 100, WindowCounts::default()).is_empty(), "60 minutes is not over");
    assert_eq!(holding(&objects, 101, WindowCounts::default()), [Condition::ParkedRecords(objects[1].kind)]);
}

fn holding(objects: &[ObjectHistory], now: i64, webhooks: WindowCounts) -> Vec<Condition> {
    let s = schedules();
    let obs = Observation { now: t(now), since: t(0), objects, schedules: &s, webhooks };
    evaluate(&obs).into_keys().collect()
}

#[test]
fn failed_run_and_failed_share() {
    let c = ObjectKind::Contacts;
    assert_eq!(
        holding(&history(Some(run("failed", 0, 0, 1)), Some(1)), 2, WindowCounts::default()),
        [Condition::RunFailed(c)]
    );
    assert_eq!(
        holding(&history(Some(run("partial", 100, 11, 1)), Some(1)), 2, WindowCounts::default()),
        [Condition::FailedRecords(c)]
    );
    assert!(
        holding(&history(Some(run("partial", 100, 10, 1)), Some(1)), 2, WindowCounts::default()).is_empty(),
        "10% is not over"
    );
}

#[test]
fn overdue_after_twice_the_interval() {
    // Contacts run every 5 minutes, so 10 minutes without success is overdue; owners run daily.
    let objects = history(Some(run("success", 1, 0, 1)), Some(1));
    assert!(holding(&objects, 11, WindowCounts::default()).is_empty());
    assert_eq!(holding(&objects, 12, WindowCounts::default()), [Condition::Overdue(ObjectKind::Contacts)]);
    let later = holding(&objects, 32, WindowCounts::default());
    assert!(
        later.contains(&Condition::Overdue(ObjectKind::Deals))
            && !later.contains(&Condition::Overdue(ObjectKind::Owners))
    );
}

#[test]
fn never_run_counts_from_start_up() {
    let objects = history(None, None);
    assert!(holding(&objects, 9, WindowCounts::default()).is_empty());
    assert_eq!(holding(&objects, 11, WindowCounts::default()), [Condition::Overdue(ObjectKind::Contacts)]);
}

#[test]
fn signature_spike_needs_numbers_and_share() {
    let objects = history(Some(run("success", 1, 0, 1)), Some(1));
    let spike = WindowCounts { received: 8, rejected: 6, signature_failures: 6 };
    assert_eq!(holding(&objects, 2, spike), [Condition::SignatureFailures]);
    let few = WindowCounts { received: 4, rejected: 4, signature_failures: 4 };
    assert!(holding(&objects, 2, few).is_empty());
    let diluted = WindowCounts { received: 1000, rejected: 6, signature_failures: 6 };
    assert!(holding(&objects, 2, diluted).is_empty());
}

#[test]
fn each_condition_alerts_once_and_once_more_when_it_clears() {
    let mut state = AlertState::default();
    let mut now = Holding::new();
    now.insert(Alert { account: None, condition: Condition::SignatureFailures }, (String::new(), "spike".into()));
    let first = state.transitions(&now);
    assert_eq!(first.len(), 1);
    assert!(first[0].firing);
    first.iter().for_each(|t| state.delivered(t));
    assert!(state.transitions(&now).is_empty(), "no repeat while it holds");
    let cleared = state.transitions(&Holding::new());
    assert_eq!(cleared.len(), 1);
    assert!(!cleared[0].firing);
    cleared.iter().for_each(|t| state.delivered(t));
    assert!(state.transitions(&Holding::new()).is_empty());
}

#[test]
fn each_account_alerts_on_its_own_and_is_named_when_it_clears() {
    let mut state = AlertState::default();
    let failed = Condition::RunFailed(ObjectKind::Contacts);
    let (emea, us) = (account_label("emea", 2002, 2), account_label("us", 1001, 2));
    assert_eq!(emea, "account emea (portal 2002): ");
    assert_eq!(account_label("us", 1001, 1), "", "one account: messages read as before accounts existed");
    let mut now = Holding::new();
    now.insert(Alert { account: Some(2002), condition: failed }, (emea.clone(), "contacts sync failed".into()));
    now.insert(Alert { account: Some(1001), condition: failed }, (us, "contacts sync failed".into()));
    let first = state.transitions(&now);
    assert_eq!(first.len(), 2, "the same condition of two accounts is two alerts: {first:?}");
    assert!(
        first.iter().any(|t| t.account == Some(2002) && t.text == "account emea (portal 2002): contacts sync failed")
    );
    first.iter().for_each(|t| state.delivered(t));
    assert_eq!(state.firing_count(failed), 2);
    now.retain(|a, _| a.account == Some(1001));
    let cleared = state.transitions(&now);
    assert_eq!(cleared.len(), 1, "{cleared:?}");
    assert!(!cleared[0].firing && cleared[0].account == Some(2002));
    assert!(cleared[0].text.starts_with("account emea (portal 2002): contacts sync recovered"), "{}", cleared[0].text);
}

#[test]
fn undelivered_messages_are_owed_again() {
    let state = AlertState::default();
    let mut now = Holding::new();
    now.insert(
        Alert { account: Some(1), condition: Condition::RunFailed(ObjectKind::Deals) },
        (String::new(), "failed".into()),
    );
    assert_eq!(state.transitions(&now).len(), 1);
    assert_eq!(state.transitions(&now).len(), 1, "not delivered, so still owed");
}

#[test]
fn drift_left_after_a_repair_alerts_until_an_audit_leaves_none() {
    use super::{AuditResult, audit_conditions};
    let at = Utc::now();
    let audit = |repaired, drift_left| AuditResult { kind: ObjectKind::Deals, repaired, drift_left, completed_at: at };
    let holding = audit_conditions(&[audit(true, 2)]);
    let text = holding.get(&Condition::AuditDrift(ObjectKind::Deals)).expect("drift left after a repair alerts");
    assert!(text.contains("2 ids still differ"), "{text}");
    assert!(audit_conditions(&[audit(false, 2)]).is_empty(), "an audit without repair only reports");
    assert!(audit_conditions(&[audit(true, 0)]).is_empty());
    assert_eq!(Condition::AuditDrift(ObjectKind::Deals).name(), "audit_drift:deals");
}

use std::sync::Arc;

use super::*;

fn ids(kind: ObjectKind, list: &[&str]) -> Vec<(ObjectKind, String)> {
    list.iter().map(|id| (kind, (*id).to_owned())).collect()
}

#[tokio::test]
async fn an_id_already_waiting_is_not_added_twice() {
    let q = Queue::new(10);
    assert_eq!(q.push_batch(&ids(ObjectKind::Contacts, &["1", "2", "1"])), Ok(Pushed { added: 2, deduplicated: 1 }));
    assert_eq!(q.push_batch(&ids(ObjectKind::Contacts, &["2", "3"])), Ok(Pushed { added: 1, deduplicated: 1 }));
    // The same id of another kind is another key.
    assert_eq!(q.push_batch(&ids(ObjectKind::Deals, &["1"])), Ok(Pushed { added: 1, deduplicated: 0 }));
    assert_eq!(q.depth(), 4);
    let taken = q.take(ObjectKind::Contacts, 100, Duration::ZERO).await.unwrap();
    assert_eq!(taken, ["1", "2", "3"]);
    // Taken ids are in flight, no longer waiting: a new event queues them again.
    assert_eq!(q.push_batch(&ids(ObjectKind::Contacts, &["1"])), Ok(Pushed { added: 1, deduplicated: 0 }));
    let snap = q.snapshot();
    assert_eq!((snap.depth, snap.offered, snap.deduplicated), (2, 7, 2));
}

#[tokio::test]
async fn a_batch_that_does_not_fit_is_refused_whole() {
    let q = Queue::new(3);
    q.push_batch(&ids(ObjectKind::Contacts, &["1", "2"])).unwrap();
    assert_eq!(q.push_batch(&ids(ObjectKind::Deals, &["7", "8"])), Err(QueueError::Full));
    assert_eq!(q.depth(), 2, "nothing of the refused batch was queued");
    // Ids already waiting take no room.
    assert_eq!(q.push_batch(&ids(ObjectKind::Contacts, &["1", "2", "3"])), Ok(Pushed { added: 1, deduplicated: 2 }));
    // Requeued ids ignore the bound: they were accepted once.
    q.requeue(ObjectKind::Deals, vec!["9".into()]);
    assert_eq!(q.depth(), 4);
}

#[tokio::test]
async fn takes_at_most_max_oldest_first_and_requeued_ids_go_first() {
    let q = Queue::new(1000);
    let many: Vec<String> = (0..250).map(|i| i.to_string()).collect();
    let items: Vec<_> = many.iter().map(|id| (ObjectKind::Calls, id.clone())).collect();
    q.push_batch(&items).unwrap();
    let first = q.take(ObjectKind::Calls, 100, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(first, many[..100]);
    q.requeue(ObjectKind::Calls, vec!["5".into(), "6".into()]);
    let second = q.take(ObjectKind::Calls, 100, Duration::from_secs(3600)).await.unwrap();
    assert_eq!(second[..2], ["5", "6"]);
    assert_eq!(second[2..], many[100..198]);
}

#[tokio::test]
async fn a_partial_batch_waits_for_the_window() {
    let q = Arc::new(Queue::new(100));
    q.push_batch(&ids(ObjectKind::Deals, &["1"])).unwrap();
    let waiter = tokio::spawn({
        let q = q.clone();
        async move { q.take(ObjectKind::Deals, 100, Duration::from_millis(500)).await }
    });
    tokio::task::yield_now().await;
    q.push_batch(&ids(ObjectKind::Deals, &["2"])).unwrap();
    let taken = waiter.await.unwrap().unwrap();
    assert_eq!(taken, ["1", "2"], "whatever arrived within the window, in one batch");
    // A full batch does not wait for the window.
    let full: Vec<_> = (0..3).map(|i| (ObjectKind::Deals, i.to_string())).collect();
    q.push_batch(&full).unwrap();
    assert_eq!(q.take(ObjectKind::Deals, 3, Duration::from_secs(3600)).await.unwrap().len(), 3);
}

#[tokio::test]
async fn kinds_are_drained_independently() {
    let q = Queue::new(10_000);
    let flood: Vec<_> = (0..5000).map(|i| (ObjectKind::Contacts, i.to_string())).collect();
    q.push_batch(&flood).unwrap();
    q.push_batch(&ids(ObjectKind::Deals, &["d1"])).unwrap();
    // The deal is served at once, however many contacts wait before it.
    assert_eq!(q.take(ObjectKind::Deals, 100, Duration::ZERO).await.unwrap(), ["d1"]);
    assert_eq!(q.depth_of(ObjectKind::Contacts), 5000);
}

#[tokio::test]
async fn closing_stops_intake_and_lets_fetchers_drain() {
    let q = Arc::new(Queue::new(100));
    q.push_batch(&ids(ObjectKind::Contacts, &["1", "2"])).unwrap();
    let idle = tokio::spawn({
        let q = q.clone();
        async move { q.take(ObjectKind::Deals, 100, Duration::from_secs(3600)).await }
    });
    q.close();
    assert_eq!(q.push_batch(&ids(ObjectKind::Contacts, &["3"])), Err(QueueError::Closed));
    // No window wait while closing; an empty lane ends its fetcher.
    assert_eq!(q.take(ObjectKind::Contacts, 100, Duration::from_secs(3600)).await.unwrap(), ["1", "2"]);
    assert_eq!(q.take(ObjectKind::Contacts, 100, Duration::from_secs(3600)).await, None);
    assert_eq!(idle.await.unwrap(), None);
    // A failed fetch during the drain still puts its ids back.
    q.requeue(ObjectKind::Contacts, vec!["1".into()]);
    assert_eq!(q.take(ObjectKind::Contacts, 100, Duration::ZERO).await.unwrap(), ["1"]);
}

#[tokio::test]
async fn a_due_batch_keeps_growing_until_it_is_taken() {
    // The fetcher waits for the budget between "due" and "take": ids arriving then join the batch.
    let q = Queue::new(1000);
    q.push_batch(&ids(ObjectKind::Calls, &["1", "2"])).unwrap();
    assert!(q.wait_ready(ObjectKind::Calls, 100, Duration::ZERO).await);
    q.push_batch(&ids(ObjectKind::Calls, &["3", "2"])).unwrap();
    assert_eq!(q.take_ready(ObjectKind::Calls, 100), ["1", "2", "3"]);
    assert!(q.take_ready(ObjectKind::Calls, 100).is_empty());
    q.close();
    assert!(!q.wait_ready(ObjectKind::Calls, 100, Duration::ZERO).await, "closed and empty: the fetcher is done");
}

#[test]
fn ids_queued_only_by_association_changes_are_marked_until_another_event_names_them() {
    let q = Queue::new(10);
    let assoc = ids(ObjectKind::Deals, &["1", "2", "3"]);
    q.push_marked(&ids(ObjectKind::Deals, &["3"]), &assoc).unwrap();
    q.push_batch(&ids(ObjectKind::Deals, &["2"])).unwrap();
    let (taken, associated) = q.take_ready_marked(ObjectKind::Deals, 100);
    assert_eq!(taken, ["3", "1", "2"]);
    assert_eq!(associated, ["1".to_owned()].into_iter().collect());
    // A failed batch keeps its marks when put back.
    q.requeue_marked(ObjectKind::Deals, taken, &associated);
    let (_, again) = q.take_ready_marked(ObjectKind::Deals, 100);
    assert_eq!(again, associated);
    // All or nothing against the bound, counting both kinds of ids.
    assert_eq!(
        q.push_marked(
            &ids(ObjectKind::Deals, &["a"; 1]),
            &ids(ObjectKind::Calls, &["b", "c", "d", "e", "f", "g", "h", "i", "j", "k"])
        ),
        Err(QueueError::Full)
    );
    assert_eq!(q.depth(), 0);
}

fn change(id: &str, at: Option<i64>) -> Change {
    Change { kind: ObjectKind::Contacts, id: id.to_owned(), changed_at: at }
}

#[tokio::test]
async fn a_change_a_read_already_covered_is_not_queued() {
    let q = Queue::new(100);
    q.push_changes(&[change("1", Some(1_000)), change("2", Some(1_000))], &[]).unwrap();
    let taken = q.take(ObjectKind::Contacts, 100, Duration::ZERO).await.unwrap();
    assert_eq!(taken, ["1", "2"]);
    // While the read is in flight the same deliveries come again, and a newer change of 2.
    q.push_changes(&[change("1", Some(1_000)), change("2", Some(2_000))], &[]).unwrap();
    assert_eq!(q.depth(), 2, "in flight: nothing is known yet");
    // The read returns 1 at 1000 and 2 at 1500: 1 is covered and stops waiting, 2 is not.
    assert_eq!(q.settle(ObjectKind::Contacts, &[("1".into(), 1_000), ("2".into(), 1_500)]), 1);
    assert_eq!(q.depth(), 1);
    assert_eq!(q.take(ObjectKind::Contacts, 100, Duration::ZERO).await.unwrap(), ["2"]);
    // A thousand more deliveries of the covered change queue nothing.
    for _ in 0..1000 {
        assert_eq!(q.push_changes(&[change("1", Some(900))], &[]), Ok(Pushed { added: 0, deduplicated: 1 }));
    }
    assert_eq!(q.depth(), 0);
    // A change without a time (a restore, say) is always read; a later timed one does not
    // make it skippable.
    q.push_changes(&[change("1", None), change("1", Some(500))], &[]).unwrap();
    assert_eq!(q.settle(ObjectKind::Contacts, &[("1".into(), 1_000)]), 0);
    assert_eq!(q.depth(), 1);
    // Deals are another lane with their own memory.
    let deal = Change { kind: ObjectKind::Deals, ..change("1", Some(900)) };
    assert_eq!(q.push_changes(&[deal], &[]).unwrap().added, 1);
}

#[test]
fn remembered_versions_are_bounded_and_keep_the_newest() {
    let mut read = ReadVersions::default();
    for i in 0..(REMEMBERED as i64 * 2) {
        read.record(&i.to_string(), i);
    }
    assert!(read.current.len() + read.previous.len() <= REMEMBERED);
    let last = (REMEMBERED as i64 * 2 - 1).to_string();
    assert!(read.covers(&last, 10));
    read.record(&last, 5);
    assert_eq!(read.get(&last), Some(REMEMBERED as i64 * 2 - 1), "an older read never lowers it");
}

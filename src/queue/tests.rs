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
async fn ids_held_by_a_read_take_room_until_it_ends() {
    let q = Queue::new(2);
    q.push_batch(&ids(ObjectKind::Contacts, &["1", "2"])).unwrap();
    let taken = q.take_ready_timed(ObjectKind::Contacts, 100);
    assert_eq!(taken.ids, ["1", "2"]);
    assert_eq!(q.depth(), 0, "in flight, not waiting");
    assert_eq!(q.push_batch(&ids(ObjectKind::Deals, &["3"])), Err(QueueError::Full), "the read holds both places");
    // An id pushed again while its read is in flight waits again in the place it holds.
    assert_eq!(q.push_batch(&ids(ObjectKind::Contacts, &["2", "1"])).map(|p| p.added), Ok(2));
    assert_eq!(q.push_batch(&ids(ObjectKind::Deals, &["3"])), Err(QueueError::Full));
    q.finished(ObjectKind::Contacts, &taken.ids);
    assert_eq!(q.push_batch(&ids(ObjectKind::Deals, &["3"])), Err(QueueError::Full), "1 and 2 still wait");
    let again = q.take_ready_timed(ObjectKind::Contacts, 100);
    q.finished(ObjectKind::Contacts, &again.ids);
    assert_eq!(q.push_batch(&ids(ObjectKind::Deals, &["3"])).map(|p| p.added), Ok(1), "room once the reads ended");
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
    q.finished(ObjectKind::Deals, &taken);
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
    q.finished(ObjectKind::Contacts, &taken);
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
    assert!(read.0.current.len() + read.0.previous.len() <= REMEMBERED);
    let last = (REMEMBERED as i64 * 2 - 1).to_string();
    assert!(read.covers(&last, 10));
    read.record(&last, 5);
    assert_eq!(read.get(&last), Some(REMEMBERED as i64 * 2 - 1), "an older read never lowers it");
}

#[test]
fn a_deletion_is_read_again_only_when_a_read_raced_it() {
    let q = Queue::new(100);
    let deleted = |id: &str| (ObjectKind::Contacts, id.to_owned(), Gone::Deleted(5_000));
    q.push_batch(&ids(ObjectKind::Contacts, &["1", "2"])).unwrap();
    let taken = q.take_ready(ObjectKind::Contacts, 1);
    assert_eq!(taken, ["1"]);
    // "1" is being read, "2" waits, "3" was never read here: only "1" may have been read live
    // before its deletion and written after it.
    let racing = q.gone(&[deleted("1"), deleted("2"), deleted("3")]);
    assert_eq!(racing, vec![(ObjectKind::Contacts, "1".to_owned())]);
    q.finished(ObjectKind::Contacts, &taken);
    assert!(q.gone(&[deleted("1")]).is_empty(), "its read is over and returned nothing");
    // An id an earlier read returned (a restore delivered before its deletion) is read again.
    q.settle(ObjectKind::Contacts, &[("4".into(), 1_000)]);
    assert_eq!(q.gone(&[deleted("4")]), vec![(ObjectKind::Contacts, "4".to_owned())]);
    // Deals are another lane.
    assert!(q.gone(&[(ObjectKind::Deals, "4".to_owned(), Gone::Merged("9".into()))]).is_empty());
}

#[test]
fn what_webhooks_said_of_gone_ids_is_remembered_per_kind() {
    let q = Queue::new(100);
    q.gone(&[
        (ObjectKind::Contacts, "1".to_owned(), Gone::Deleted(7)),
        (ObjectKind::Contacts, "2".to_owned(), Gone::Merged("3".into())),
    ]);
    let asked: Vec<String> = ["1", "2", "5"].iter().map(|s| (*s).to_owned()).collect();
    assert_eq!(
        q.known_gone(ObjectKind::Contacts, &asked),
        vec![("1".to_owned(), Gone::Deleted(7)), ("2".to_owned(), Gone::Merged("3".into()))]
    );
    assert!(q.known_gone(ObjectKind::Deals, &asked).is_empty());
}

#[tokio::test]
async fn the_dispatcher_is_woken_by_pushes_requeues_and_close() {
    let q = Arc::new(Queue::new(100));
    let (views, closed) = q.view();
    assert!(views.iter().all(|v| v.waiting == 0 && v.oldest.is_none()) && !closed);
    // A push before the wait is not missed.
    q.push_batch(&ids(ObjectKind::Deals, &["1", "2"])).unwrap();
    tokio::time::timeout(Duration::from_secs(60), q.changed()).await.expect("woken by the push");
    let deals = q.view().0.into_iter().find(|v| v.kind == ObjectKind::Deals).unwrap();
    assert_eq!(deals.waiting, 2);
    assert!(deals.oldest.is_some());
    q.requeue(ObjectKind::Calls, vec!["7".into()]);
    tokio::time::timeout(Duration::from_secs(60), q.changed()).await.expect("woken by the requeue");
    q.close();
    tokio::time::timeout(Duration::from_secs(60), q.changed()).await.expect("woken by the close");
    assert!(q.view().1);
}

#[test]
fn an_id_being_read_is_not_taken_again_until_its_read_ends() {
    let q = Queue::new(100);
    q.push_changes(&[change("1", Some(900)), change("2", Some(900))], &[]).unwrap();
    let first = q.take_ready(ObjectKind::Contacts, 1);
    assert_eq!(first, ["1"]);
    // Delivered again while its read is in flight: it waits, but cannot be taken yet.
    q.push_changes(&[change("1", Some(900)), change("3", Some(900))], &[]).unwrap();
    let contacts = |q: &Queue| q.view().0.into_iter().find(|v| v.kind == ObjectKind::Contacts).unwrap();
    assert_eq!(contacts(&q).waiting, 2, "\"2\" and \"3\"; \"1\" is held");
    assert_eq!(q.take_ready(ObjectKind::Contacts, 100), ["2", "3"]);
    assert_eq!(contacts(&q).waiting, 0);
    assert_eq!(contacts(&q).oldest, None);
    // The read covers it: it stops waiting and costs nothing more.
    assert_eq!(q.settle(ObjectKind::Contacts, &[("1".into(), 1_000)]), 1);
    q.finished(ObjectKind::Contacts, &first);
    assert_eq!(q.depth(), 0);
    // Not covered (a newer change), it can be taken once the read ends; a failed read's ids
    // go back and can be taken at once.
    let again = q.take_ready(ObjectKind::Contacts, 100);
    assert!(again.is_empty());
    q.push_changes(&[change("2", Some(5_000))], &[]).unwrap();
    assert!(q.take_ready(ObjectKind::Contacts, 100).is_empty(), "\"2\" is still being read");
    q.finished(ObjectKind::Contacts, &["2".to_owned(), "3".to_owned()]);
    assert_eq!(q.take_ready(ObjectKind::Contacts, 100), ["2"]);
    q.requeue(ObjectKind::Contacts, vec!["2".into()]);
    assert_eq!(q.take_ready(ObjectKind::Contacts, 100), ["2"]);
}

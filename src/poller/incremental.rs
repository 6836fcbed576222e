//! An incremental run: records modified since the last good watermark (minus an overlap, for
//! HubSpot's search index lag) up to now (minus a small skew), found by search.
//!
//! HubSpot's search stops at 10,000 results per query, and offset paging over a window whose
//! records change while it is read skips records. So the window is walked by id instead: every
//! page is a fresh query "modified within the window AND `hs_object_id` > the last id seen",
//! sorted by `hs_object_id`, 200 at a time. Each query starts at offset 0, so the cap is never
//! reached, even when more than 10,000 records share one timestamp (bulk updates), and no
//! record can be skipped or seen twice. The watermark moves only when the run completes.

use chrono::{DateTime, Utc};

use super::job::{Job, fetch_ahead};
use crate::hubspot::{Lane, SearchWindow};
use crate::objects::SyncError;
use crate::store::sync_state;

/// The window of one run: `[watermark - overlap, now - skew]`.
pub fn window(
    watermark: DateTime<Utc>,
    now: DateTime<Utc>,
    overlap: chrono::Duration,
    skew: chrono::Duration,
) -> SearchWindow {
    let to = now - skew;
    let from = (watermark - overlap).min(to);
    SearchWindow { from_ms: from.timestamp_millis(), to_ms: to.timestamp_millis(), after_id: None }
}

/// Runs an incremental pass from `watermark`.
pub async fn run(job: &mut Job<'_>, watermark: DateTime<Utc>) -> Result<(), SyncError> {
    let overlap = chrono::Duration::from_std(job.options.overlap).unwrap_or(chrono::Duration::minutes(5));
    let skew = chrono::Duration::from_std(job.options.skew).unwrap_or(chrono::Duration::zero());
    let first = window(watermark, Utc::now(), overlap, skew);
    let to = DateTime::from_timestamp_millis(first.to_ms).unwrap_or_else(Utc::now);
    let (kind, hubspot) = (job.kind, job.hubspot.clone());
    let (mut pages, _fetcher) = fetch_ahead(first, 2, move |window: SearchWindow| {
        let hubspot = hubspot.clone();
        async move {
            let page = hubspot.search_modified(kind, &window, Lane::Background).await?;
            let next = page.next.clone().map(|after_id| SearchWindow { after_id: Some(after_id), ..window });
            Ok((page, next))
        }
    });
    while let Some(fetched) = pages.recv().await {
        let (page, _) = fetched?;
        if let Some(total) = page.total.filter(|_| job.tally.pages == 0) {
            job.tally.progress.total.store(total, std::sync::atomic::Ordering::Relaxed);
        }
        job.store(page).await;
    }
    // Records that failed to store hold the watermark back, so the next run retries them.
    let upto = job.tally.earliest_failed.map_or(to, |t| t.min(to));
    sync_state::advance_watermark(job.conn, kind.as_str(), upto).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn window_overlaps_and_skews() {
        let mark = Utc.with_ymd_and_hms(2026, 1, 1, 10, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 1, 10, 5, 0).unwrap();
        let w = window(mark, now, chrono::Duration::minutes(2), chrono::Duration::seconds(5));
        assert_eq!(w.from_ms, (mark - chrono::Duration::minutes(2)).timestamp_millis());
        assert_eq!(w.to_ms, (now - chrono::Duration::seconds(5)).timestamp_millis());
        // A watermark in the future (clock skew) never gives an inverted window.
        let w = window(now + chrono::Duration::hours(1), now, chrono::Duration::zero(), chrono::Duration::zero());
        assert!(w.from_ms <= w.to_ms);
    }
}

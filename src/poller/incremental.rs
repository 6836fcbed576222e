//! An incremental run: records modified since the last good watermark (minus an overlap, for
//! HubSpot's search index lag) up to now (minus a small skew), found by search.
//!
//! HubSpot's search stops at 10,000 results per query, and offset paging over a window whose
//! records change while it is read skips records. So the window is walked by id instead: every
//! page is a fresh query "modified within the window AND `hs_object_id` > the last id seen",
//! sorted by `hs_object_id`, 200 at a time. Each query starts at offset 0, so the cap is never
//! reached, even when more than 10,000 records share one timestamp (bulk updates), and no
//! record can be skipped or seen twice. The watermark moves only when the run completes.
//!
//! Records a run stores for the first time (or live again) have their edges read at once, from
//! both ends ([`read_edges_of_new`]); a full pass reads every record's edges when it ends.

use chrono::{DateTime, Utc};

use super::job::{Job, fetch_ahead};
use crate::hubspot::{Lane, SearchWindow};
use crate::objects::SyncError;
use crate::objects::associations as edges;
use crate::store::sync_state;
use crate::telemetry::ErrorChain;

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
        let new = job.store_noting_new(page).await?;
        read_edges_of_new(job, &new).await;
    }
    // Records that failed to store hold the watermark back, so the next run retries them.
    let upto = job.tally.earliest_failed.map_or(to, |t| t.min(to));
    sync_state::advance_watermark(job.conn, kind.as_str(), upto).await?;
    Ok(())
}

/// Reads the edges of records this run stored for the first time (or live again), from both
/// ends, at once: a record created with its associations gets no association event that would
/// tell us of them (and with webhooks off none at all), and a search finds the record, not its
/// edges. A failure is logged, not fatal: the records are stored, and the association sweep
/// reads their edges later.
async fn read_edges_of_new(job: &mut Job<'_>, ids: &[String]) {
    if ids.is_empty() {
        return;
    }
    match edges::sync_edges_both_ways(job.hubspot, job.conn, job.kind, ids, Lane::Background).await {
        Ok(report) => tracing::debug!(object.kind = %job.kind, records = ids.len(), edges_written = report.written,
            "read the associations of new records"),
        Err(e) => tracing::warn!(object.kind = %job.kind, records = ids.len(), error = %ErrorChain(&e),
            "cannot read the associations of new records; the association sweep will"),
    }
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

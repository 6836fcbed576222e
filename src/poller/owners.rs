//! Owners: every run reads all of them (active and archived: accounts have hundreds at most)
//! and writes them to `staff`.

use chrono::Utc;

use super::job::Job;
use crate::hubspot::Lane;
use crate::objects::SyncError;
use crate::store::sync_state;

pub async fn run(job: &mut Job<'_>) -> Result<(), SyncError> {
    let started = Utc::now();
    for archived in [false, true] {
        let mut after: Option<String> = None;
        loop {
            let page = job.hubspot.owners_page(after.as_deref(), archived, Lane::Background).await?;
            let next = page.next.clone();
            job.store(page).await;
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    if job.tally.failed == 0 {
        sync_state::advance_watermark(job.conn, job.kind.as_str(), started).await?;
    }
    Ok(())
}

//! Owners: every run reads all of them (active and archived: accounts have hundreds at most)
//! and writes them to `staff`. A run that read both lists to the end marks archived the owners
//! HubSpot listed in neither (deleted there); they are live again once HubSpot lists them.

use chrono::Utc;

use super::job::Job;
use crate::hubspot::Lane;
use crate::objects::SyncError;
use crate::store::{staff, sync_state};

pub async fn run(job: &mut Job<'_>) -> Result<(), SyncError> {
    let started = Utc::now();
    let mut listed = Listed::default();
    for archived in [false, true] {
        let mut after: Option<String> = None;
        loop {
            let page = job.hubspot.owners_page(after.as_deref(), archived, Lane::Background).await?;
            listed.note(&page);
            let next = page.next.clone();
            job.store(page).await;
            match next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    archive_unlisted(job, &listed).await?;
    if job.tally.failed == 0 {
        sync_state::advance_watermark(job.conn, job.kind.as_str(), started).await?;
    }
    Ok(())
}

/// The owner ids both lists returned, and whether every listed owner had one.
#[derive(Default)]
struct Listed {
    ids: Vec<String>,
    without_id: bool,
}

impl Listed {
    fn note(&mut self, page: &crate::hubspot::RecordPage) {
        self.ids.extend(page.records.iter().map(|r| r.id.clone()));
        self.ids.extend(page.invalid.iter().filter_map(|r| r.id.clone()));
        self.without_id |= page.invalid.iter().any(|r| r.id.is_none());
    }
}

/// Marks archived the owners neither list returned, once both were read to the end. Not when an
/// entry had no id (it could be any owner), nor when both lists were empty: every account has an
/// owner, so that is a scope or an outage, not every owner deleted.
async fn archive_unlisted(job: &mut Job<'_>, listed: &Listed) -> Result<(), SyncError> {
    if listed.without_id || listed.ids.is_empty() {
        tracing::warn!(
            object.kind = %job.kind, owners = listed.ids.len(),
            "owners HubSpot no longer lists are not marked this run (an entry without an id, or no owner at all)"
        );
        return Ok(());
    }
    let gone = staff::archive_unlisted(job.conn, &listed.ids).await?;
    if gone > 0 {
        tracing::info!(object.kind = %job.kind, owners = gone, "marked owners HubSpot no longer lists as archived");
    }
    job.tally.archived_unseen = gone as u64;
    Ok(())
}

//! Owner changes (`POST /_sim/owners`, [`crate::SimHandle::change_owners`]): users added, renamed,
//! deactivated (moved to HubSpot's archived owners), reactivated, and removed for good (gone from
//! both the active and the archived list, as a deleted user's owner is). HubSpot sends no webhooks
//! for owners, so these change only what the owners API answers.

use super::Crm;
use super::seed::{FIRST, LAST, pick};
use super::store::Owner;
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// Body of `POST /_sim/owners`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct OwnerChangeRequest {
    pub creates: usize,
    /// New names and e-mails (with `updatedAt` moved).
    pub updates: usize,
    /// Active owners deactivated: listed with `archived=true` from now on.
    pub archives: usize,
    /// Archived owners active again.
    pub restores: usize,
    /// Owners removed from both lists (any of them, active or archived).
    pub deletes: usize,
    /// These owner ids removed from both lists too.
    pub delete_ids: Vec<String>,
    /// Owners whose answers leave out `createdAt` from now on (HubSpot omits it for some).
    pub omit_created_at: usize,
}

/// What an owners change did, by owner id.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OwnerChangeReport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub archived: Vec<String>,
    pub restored: Vec<String>,
    pub deleted: Vec<String>,
    pub created_at_omitted: Vec<String>,
}

/// Applies `req` at `ts` (ms). Unknown `delete_ids` are an error, and nothing is changed then.
pub fn apply(crm: &mut Crm, req: &OwnerChangeRequest, rng: &mut StdRng, ts: i64) -> Result<OwnerChangeReport, String> {
    let unknown: Vec<&String> =
        req.delete_ids.iter().filter(|id| !crm.owners.iter().any(|o| o.id.to_string() == **id)).collect();
    if !unknown.is_empty() {
        return Err(format!("unknown owner ids {unknown:?}"));
    }
    let mut rep = OwnerChangeReport::default();
    // Removals first, so the other changes apply to owners that stay.
    let mut gone = req.delete_ids.clone();
    crm.owners.retain(|o| !gone.contains(&o.id.to_string()));
    for i in chosen(crm, rng, req.deletes, |_| true) {
        gone.push(crm.owners[i].id.to_string());
    }
    crm.owners.retain(|o| !gone.contains(&o.id.to_string()));
    rep.deleted = gone;
    for _ in 0..req.creates {
        crm.last_owner_id += 37;
        let owner = new_owner(crm, rng, ts);
        rep.created.push(owner.id.to_string());
        crm.owners.push(owner);
    }
    for i in chosen(crm, rng, req.updates, |o| !o.archived) {
        let (first, last) = (pick(rng, FIRST).0, pick(rng, LAST).0);
        let o = &mut crm.owners[i];
        (o.first_name, o.last_name, o.updated_ms) = (first.to_string(), last.to_string(), ts);
        rep.updated.push(o.id.to_string());
    }
    for (count, archive, out) in [(req.archives, true, &mut rep.archived), (req.restores, false, &mut rep.restored)] {
        for i in chosen(crm, rng, count, |o| o.archived != archive) {
            let o = &mut crm.owners[i];
            (o.archived, o.updated_ms) = (archive, ts);
            out.push(o.id.to_string());
        }
    }
    for i in chosen(crm, rng, req.omit_created_at, |o| !o.created_at_omitted) {
        crm.owners[i].created_at_omitted = true;
        rep.created_at_omitted.push(crm.owners[i].id.to_string());
    }
    Ok(rep)
}

/// Up to `n` distinct owner positions meeting `eligible`, picked at random.
fn chosen(crm: &Crm, rng: &mut StdRng, n: usize, eligible: impl Fn(&Owner) -> bool) -> Vec<usize> {
    let mut pool: Vec<usize> = (0..crm.owners.len()).filter(|i| eligible(&crm.owners[*i])).collect();
    let mut out = Vec::new();
    while out.len() < n && !pool.is_empty() {
        out.push(pool.swap_remove(rng.random_range(0..pool.len())));
    }
    out
}

fn new_owner(crm: &Crm, rng: &mut StdRng, ts: i64) -> Owner {
    let id = crm.last_owner_id;
    let user_id = crm.owners.iter().map(|o| o.user_id).max().unwrap_or(2_000_000) + 7;
    let ((first, fslug), (last, lslug)) = (*pick(rng, FIRST), *pick(rng, LAST));
    Owner {
        id,
        email: format!("{fslug}.{lslug}{id}@coach.example"),
        first_name: first.to_string(),
        last_name: last.to_string(),
        user_id,
        created_ms: ts,
        updated_ms: ts,
        archived: false,
        created_at_omitted: false,
        teams: Vec::new(),
    }
}

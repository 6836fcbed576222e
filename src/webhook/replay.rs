//! No downgrade and no replay: when webhooks signed only with v1/v2 are accepted
//! (`HUBSPOT_REQUIRE_V3`), and the refusal of a v1/v2-only repeat of a body accepted before.
//!
//! v1 signs the body alone and v2 adds no time, so a captured delivery verifies forever; HubSpot
//! sends v1 and v3 together, so a captured delivery stripped of its v3 headers is a valid v1-only
//! request. HubSpot retries only deliveries that failed, each attempt with a new body
//! (`attemptNumber`, docs/hubspot.md §2.2), so a v1/v2-only repeat of an accepted body is a
//! replay. The [`ReplayGuard`]:
//!
//! - remembers whether a valid v3 signature has been seen from the account (`auto` refuses v1/v2
//!   from then on): in memory, and in PostgreSQL (`webhook_v3_seen`), read when the guard starts
//!   (so a restart keeps requiring v3) and by every v1/v2-only check (so another machine learns
//!   it too);
//! - keeps a digest of every accepted body in PostgreSQL (`webhook_deliveries`) for
//!   [`DELIVERY_RETENTION`]: a v1/v2-only request is checked against it, and against the digests
//!   not written yet, before anything is done with it, and its own digest is written before it is
//!   answered 204. The digest ([`replay_key`]) is the SHA-256 of the request's v1/v2 signature,
//!   which is itself SHA-256 over the client secret and the body (v2: and the method and URI):
//!   the same body signed the same way always has it, a v3 delivery carries it next to v3 (the
//!   copy an attacker would strip), and it costs no second pass over the body. A v3 delivery
//!   without a v1/v2 signature has nothing to strip down to, so nothing is kept for it;
//! - writes accepted v3 deliveries' digests and the v3-seen fact in batches, every [`FLUSH_EVERY`]
//!   and on shutdown ([`ReplayGuard::run`]): a v3 delivery then costs no database round trip and
//!   is still accepted while PostgreSQL is down. The price, which matters only with
//!   `HUBSPOT_REQUIRE_V3=false` (otherwise v1 is refused once v3 has been seen): a v1-only copy of
//!   a v3 delivery sent to another machine within [`FLUSH_EVERY`], or after a crash lost the
//!   digests not written yet, passes.
//!
//! Two identical v1/v2-only requests in flight at the same moment can both pass: the same batch
//! at the same time, whose writes are idempotent.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;

use crate::config::RequireV3;
use crate::signature::{self, SignatureHeaders, Version};
use crate::store::webhook_replay::{self, DELIVERY_RETENTION, Digest};
use crate::store::{Pool, StoreError};
use crate::telemetry::ErrorChain;

/// How often accepted v3 bodies' digests are written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(250);
/// How often digests older than [`DELIVERY_RETENTION`] are deleted.
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Most digests waiting to be written (while PostgreSQL is down); later ones are dropped, and
/// a warning says how many.
pub const MAX_WAITING: usize = 100_000;

/// The digest a request's body is known by: SHA-256 of its v1/v2 signature (see the module
/// docs); `None` when it carries none.
pub fn replay_key(headers: &SignatureHeaders<'_>) -> Option<Digest> {
    signature::legacy_signature(headers).map(|bytes| Sha256::digest(bytes).into())
}

/// Why a request whose signature passed is refused all the same.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    #[error("only a v1/v2 signature, and a valid v3 signature has been seen from the account")]
    V3Required,
    #[error("a v1/v2-only repeat of a body accepted before")]
    Replayed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What is waiting to be written.
#[derive(Default)]
struct Unwritten {
    /// Accepted v3 deliveries' digests.
    waiting: HashSet<Digest>,
    /// Those the flush in progress is writing (still checked against until written).
    writing: HashSet<Digest>,
    /// The first v3 signature this process saw, to be recorded.
    v3_seen: bool,
    /// Digests dropped because [`MAX_WAITING`] were waiting.
    dropped: u64,
}

/// The replay rule's state (see the module docs); one per process, shared by every request.
pub struct ReplayGuard {
    mode: RequireV3,
    /// A valid v3 signature has been seen (here, or as PostgreSQL says); only ever becomes true.
    v3_seen: AtomicBool,
    unwritten: Mutex<Unwritten>,
}

impl ReplayGuard {
    pub fn new(mode: RequireV3) -> Self {
        Self { mode, v3_seen: AtomicBool::new(false), unwritten: Mutex::new(Unwritten::default()) }
    }

    /// Whether a v1/v2-only request is refused whatever its body (the signature check's
    /// `require_v3`).
    /// `HUBSPOT_REQUIRE_V3`.
    pub fn mode(&self) -> RequireV3 {
        self.mode
    }

    pub fn requires_v3(&self) -> bool {
        match self.mode {
            RequireV3::Always => true,
            RequireV3::Never => false,
            RequireV3::Auto => self.v3_seen.load(Ordering::Relaxed),
        }
    }

    fn unwritten(&self) -> MutexGuard<'_, Unwritten> {
        self.unwritten.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides on a request whose signature passed as `version`, before anything is done with
    /// it: a v3 one passes (and is remembered as seen); a v1/v2-only one is checked against the
    /// accepted bodies and the v3-seen fact in PostgreSQL. `key` is its [`replay_key`] (a request
    /// that passed as v1/v2 always has one).
    pub async fn admit(&self, pool: &Pool, version: Version, key: Option<&Digest>) -> Result<(), Refused> {
        if version == Version::V3 {
            if !self.v3_seen.swap(true, Ordering::Relaxed) {
                self.unwritten().v3_seen = true;
            }
            return Ok(());
        }
        // A v1/v2 signature that verified always decodes; without one, refuse (fail closed).
        let Some(digest) = key else { return Err(Refused::Replayed) };
        if self.unwritten().contains(digest) {
            return Err(Refused::Replayed);
        }
        let mut conn = pool.get().await.map_err(StoreError::from)?;
        let check = webhook_replay::legacy_check(&mut conn, digest).await.map_err(StoreError::from)?;
        if check.v3_seen {
            self.v3_seen.store(true, Ordering::Relaxed);
        }
        if self.requires_v3() {
            return Err(Refused::V3Required);
        }
        if check.replayed {
            return Err(Refused::Replayed);
        }
        Ok(())
    }

    /// Records the body of a request that is about to be answered 204 by its [`replay_key`]: a
    /// v1/v2-only one at once (its repeat must be refused everywhere from now on), a v3 one with
    /// the next flush (none without a key: no v1/v2-only copy of it can verify).
    pub async fn accepted(&self, pool: &Pool, version: Version, key: Option<Digest>) -> Result<(), StoreError> {
        let Some(digest) = key else { return Ok(()) };
        if version != Version::V3 {
            let mut conn = pool.get().await?;
            return Ok(webhook_replay::record_delivery(&mut conn, &digest).await?);
        }
        let mut unwritten = self.unwritten();
        if unwritten.waiting.len() < MAX_WAITING || unwritten.waiting.contains(&digest) {
            unwritten.waiting.insert(digest);
        } else {
            unwritten.dropped += 1;
        }
        Ok(())
    }

    /// Writes the digests and the v3-seen fact waiting in memory; on failure they wait for the
    /// next flush. Returns how many digests were written.
    pub async fn flush(&self, pool: &Pool) -> Result<usize, StoreError> {
        let (digests, v3_seen) = {
            let mut unwritten = self.unwritten();
            if unwritten.dropped > 0 {
                tracing::warn!(
                    dropped = unwritten.dropped,
                    "webhook body digests dropped: {MAX_WAITING} were waiting to be written"
                );
                unwritten.dropped = 0;
            }
            let batch = std::mem::take(&mut unwritten.waiting);
            let digests: Vec<Digest> = batch.iter().copied().collect();
            unwritten.writing = batch;
            (digests, std::mem::take(&mut unwritten.v3_seen))
        };
        let written = self.write(pool, &digests, v3_seen).await;
        let mut unwritten = self.unwritten();
        let batch = std::mem::take(&mut unwritten.writing);
        if written.is_err() {
            unwritten.v3_seen |= v3_seen;
            let room = MAX_WAITING.saturating_sub(unwritten.waiting.len());
            unwritten.waiting.extend(batch.into_iter().take(room));
        }
        written.map(|()| digests.len())
    }

    async fn write(&self, pool: &Pool, digests: &[Digest], v3_seen: bool) -> Result<(), StoreError> {
        if digests.is_empty() && !v3_seen {
            return Ok(());
        }
        let mut conn = pool.get().await?;
        if v3_seen {
            webhook_replay::mark_v3_seen(&mut conn).await?;
        }
        webhook_replay::record_deliveries(&mut conn, digests).await?;
        Ok(())
    }

    /// Reads the v3-seen fact from PostgreSQL into memory (once, at start; a failure only means
    /// the first v1/v2-only check reads it instead).
    pub async fn load(&self, pool: &Pool) {
        let seen = async { Ok::<_, StoreError>(webhook_replay::v3_seen(&mut *pool.get().await?).await?) }.await;
        match seen {
            Ok(seen) => {
                if seen {
                    self.v3_seen.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::debug!(error = %ErrorChain(&e), "v3-seen fact not read at start"),
        }
    }

    /// Runs until `token` is cancelled: reads the v3-seen fact, writes what waits every
    /// [`FLUSH_EVERY`], deletes digests past [`DELIVERY_RETENTION`] every [`PRUNE_EVERY`],
    /// and writes what still waits once more when cancelled.
    pub async fn run(self: Arc<Self>, pool: Pool, token: CancellationToken) {
        self.load(&pool).await;
        let mut pruned: Option<Instant> = None;
        let mut failing = false;
        loop {
            tokio::select! {
                () = token.cancelled() => break,
                () = tokio::time::sleep(FLUSH_EVERY) => {}
            }
            match self.flush(&pool).await {
                Ok(_) => failing = false,
                Err(e) if !failing => {
                    failing = true;
                    tracing::warn!(error = %ErrorChain(&e), "webhook body digests not written yet; retrying");
                }
                Err(_) => {}
            }
            if !failing && pruned.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
                pruned = Some(Instant::now());
                prune(&pool).await;
            }
        }
        if let Err(e) = self.flush(&pool).await {
            tracing::warn!(error = %ErrorChain(&e), "webhook body digests not written at shutdown");
        }
    }
}

impl Unwritten {
    fn contains(&self, digest: &Digest) -> bool {
        self.waiting.contains(digest) || self.writing.contains(digest)
    }
}

/// Deletes digests older than [`DELIVERY_RETENTION`].
async fn prune(pool: &Pool) {
    let before = chrono::Utc::now() - DELIVERY_RETENTION;
    let pruned =
        async { Ok::<_, StoreError>(webhook_replay::prune_deliveries(&mut *pool.get().await?, before).await?) };
    match pruned.await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(deleted = n, "old webhook body digests deleted"),
        Err(e) => tracing::warn!(error = %ErrorChain(&e), "old webhook body digests not deleted"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_decide_without_the_database_only_what_they_can() {
        assert!(ReplayGuard::new(RequireV3::Always).requires_v3());
        assert!(!ReplayGuard::new(RequireV3::Never).requires_v3());
        let auto = ReplayGuard::new(RequireV3::Auto);
        assert!(!auto.requires_v3(), "auto accepts v1/v2 until v3 has been seen");
        auto.v3_seen.store(true, Ordering::Relaxed);
        assert!(auto.requires_v3());
        let never = ReplayGuard::new(RequireV3::Never);
        never.v3_seen.store(true, Ordering::Relaxed);
        assert!(!never.requires_v3(), "false accepts v1/v2 even after v3");
    }

    #[test]
    fn the_key_is_the_sha256_of_the_legacy_signature_whatever_surrounds_it() {
        let sig = "8c3bea70edf5053b4e6c4333b30bcd2010ceebf0ff038fe98890942a583448c6";
        let legacy = SignatureHeaders { legacy: Some(sig), legacy_version: Some("v1"), ..Default::default() };
        let key = replay_key(&legacy).unwrap();
        let bytes = hex::decode(sig).unwrap();
        assert_eq!(key, <[u8; 32]>::from(Sha256::digest(&bytes)));
        let upper = sig.to_uppercase();
        let stripped_and_retyped = SignatureHeaders { legacy: Some(&upper), ..Default::default() };
        assert_eq!(replay_key(&stripped_and_retyped), Some(key));
        let with_v3 = SignatureHeaders { v3: Some("x"), timestamp: Some("1"), ..legacy };
        assert_eq!(replay_key(&with_v3), Some(key));
        let v3_only = SignatureHeaders { v3: Some("x"), timestamp: Some("1"), ..Default::default() };
        assert_eq!(replay_key(&v3_only), None);
    }
}

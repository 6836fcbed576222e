//! Which account a webhook batch is for: one webhook URL serves every account, and each batch is
//! routed by its events' `portalId` and verified with that account's client secret.
//!
//! The portal ids are read from the raw body before it is verified (they only choose which
//! secret to verify with: a batch claiming an account's portal must carry that account's
//! signature, so one account's secret can never speak for another's portal). The accounts and
//! their secrets (read from the environment variables the accounts table names) are loaded from
//! PostgreSQL and kept for [`REFRESH`], so an account added with `accounts add` is routed within
//! that time without a restart.
//!
//! - Every portal of the batch is the default account's, or the default account's portal id is
//!   not known yet (a single-account deployment never needed it): the default account, as before.
//! - Every portal is another account's: that account, with its secret.
//! - No portal is any account's: [`Target::Unknown`], counted and answered 204 (HubSpot would
//!   retry a refusal for a day), or refused with `WEBHOOK_UNKNOWN_PORTAL=refuse`.
//! - Portals of several accounts in one batch (one app serving them): verified with the first
//!   account's secret; refused unless every account in it names the same secret variable.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::sync::Mutex;

use crate::config::{Environment, SecretList};
use crate::store::Pool;
use crate::store::accounts::{self, UNKNOWN_PORTAL};

/// How long the loaded accounts are used before they are read again.
pub const REFRESH: Duration = Duration::from_secs(10);

/// Where a batch goes.
#[derive(Clone, Debug)]
pub enum Target {
    /// The default account (the process settings).
    Default,
    /// Another account, verified with its own secrets (`None`: its variable is unset here).
    Account { portal_id: i64, secrets: Option<SecretList> },
    /// No account of this database: the portal ids named.
    Unknown(Vec<i64>),
    /// Several accounts whose apps' secrets differ: no one signature can be valid for all.
    Mixed,
}

/// An account as routing needs it.
#[derive(Clone, Debug)]
struct Route {
    secret_env: Option<String>,
    secrets: Option<SecretList>,
}

/// The accounts of the database, as last loaded.
#[derive(Clone, Debug, Default)]
pub struct Accounts {
    default_portal: i64,
    others: HashMap<i64, Route>,
}

impl Accounts {
    /// The default account's portal id, once known.
    pub fn default_portal(&self) -> Option<i64> {
        (self.default_portal != UNKNOWN_PORTAL).then_some(self.default_portal)
    }

    /// Whether `portal` is an account of this database other than the default one.
    pub fn is_account(&self, portal: i64) -> bool {
        self.others.contains_key(&portal)
    }

    /// Whether a batch's portal ids can change where it goes: not with the default account alone
    /// and its portal id unknown (a single-account deployment), whose batches all go to it; the
    /// body is then not parsed for them.
    pub fn routes_by_portal(&self) -> bool {
        self.default_portal != UNKNOWN_PORTAL || !self.others.is_empty()
    }

    /// Where a batch whose events name `portals` goes (pure).
    pub fn target(&self, portals: &BTreeSet<i64>) -> Target {
        let theirs: Vec<i64> = portals.iter().copied().filter(|p| *p != self.default_portal).collect();
        if theirs.is_empty() || self.default_portal == UNKNOWN_PORTAL && self.others.is_empty() {
            return Target::Default;
        }
        let known: Vec<(i64, &Route)> = theirs.iter().filter_map(|p| self.others.get(p).map(|r| (*p, r))).collect();
        if known.is_empty() {
            if portals.contains(&self.default_portal) {
                return Target::Default;
            }
            return Target::Unknown(theirs);
        }
        let (portal_id, first) = known[0];
        let one_app = known.iter().all(|(_, r)| r.secret_env == first.secret_env);
        if !one_app || portals.contains(&self.default_portal) {
            return Target::Mixed;
        }
        Target::Account { portal_id, secrets: first.secrets.clone() }
    }
}

/// The portal ids a body's events name (a body that is not an event array names none: it is
/// then the default account's, whose parse answers 400).
pub fn portals(body: &[u8]) -> BTreeSet<i64> {
    #[derive(Deserialize)]
    struct Event {
        #[serde(rename = "portalId")]
        portal_id: Option<i64>,
    }
    serde_json::from_slice::<Vec<Event>>(body)
        .map(|events| events.into_iter().filter_map(|e| e.portal_id).collect())
        .unwrap_or_default()
}

/// The accounts, loaded from PostgreSQL at most every [`REFRESH`].
#[derive(Default)]
pub struct Router {
    loaded: Mutex<Option<(Instant, Accounts)>>,
}

impl Router {
    /// The accounts, read again when older than [`REFRESH`]; the last ones kept (and the
    /// default-only routing before any) for [`REFRESH`] when the database cannot be read.
    pub async fn accounts(&self, pool: &Pool, env: &Environment) -> Accounts {
        let mut loaded = self.loaded.lock().await;
        if let Some((at, accounts)) = loaded.as_ref()
            && at.elapsed() < REFRESH
        {
            return accounts.clone();
        }
        match load(pool, env).await {
            Ok(accounts) => {
                *loaded = Some((Instant::now(), accounts.clone()));
                accounts
            }
            Err(error) => {
                // Kept for REFRESH too: while the database is down, webhooks do not wait on it.
                tracing::warn!(error = %error, "cannot read the accounts for webhook routing; using the last known");
                let last = loaded.as_ref().map(|(_, a)| a.clone()).unwrap_or_default();
                *loaded = Some((Instant::now(), last.clone()));
                last
            }
        }
    }
}

async fn load(pool: &Pool, env: &Environment) -> Result<Accounts, crate::store::StoreError> {
    let mut conn = pool.get().await?;
    let list = accounts::list(&mut conn).await?;
    let mut out = Accounts::default();
    for account in list {
        if account.is_default {
            out.default_portal = account.portal_id;
            continue;
        }
        let secrets = account
            .client_secret_env
            .as_deref()
            .and_then(|var| env.var(var))
            .and_then(|raw| raw.parse::<SecretList>().ok());
        out.others.insert(account.portal_id, Route { secret_env: account.client_secret_env, secrets });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accounts(default_portal: i64, others: &[(i64, &str)]) -> Accounts {
        Accounts {
            default_portal,
            others: others
                .iter()
                .map(|(p, var)| {
                    let route = Route { secret_env: Some((*var).to_owned()), secrets: Some(var.parse().unwrap()) };
                    (*p, route)
                })
                .collect(),
        }
    }

    fn set(p: &[i64]) -> BTreeSet<i64> {
        p.iter().copied().collect()
    }

    #[test]
    fn batches_go_to_the_account_of_their_portal() {
        let single = accounts(UNKNOWN_PORTAL, &[]);
        assert!(matches!(single.target(&set(&[62515])), Target::Default), "a single account takes every portal");
        let two = accounts(1001, &[(2002, "S2"), (3003, "S3"), (4004, "S2")]);
        assert!(matches!(two.target(&set(&[1001])), Target::Default));
        assert!(matches!(two.target(&set(&[])), Target::Default));
        assert!(matches!(two.target(&set(&[2002])), Target::Account { portal_id: 2002, .. }));
        assert!(matches!(two.target(&set(&[2002, 4004])), Target::Account { portal_id: 2002, .. }), "one app");
        assert!(matches!(two.target(&set(&[2002, 3003])), Target::Mixed), "two apps' secrets");
        assert!(matches!(two.target(&set(&[1001, 2002])), Target::Mixed));
        assert!(matches!(two.target(&set(&[9009])), Target::Unknown(ref p) if p == &[9009]));
        assert!(matches!(two.target(&set(&[1001, 9009])), Target::Default));
    }

    #[test]
    fn a_body_is_parsed_for_portals_only_where_they_can_change_the_target() {
        let single = accounts(UNKNOWN_PORTAL, &[]);
        assert!(!single.routes_by_portal());
        for portals in [set(&[]), set(&[62515]), set(&[1, 2])] {
            assert!(matches!(single.target(&portals), Target::Default), "every batch is the single account's");
        }
        let known = accounts(1001, &[]);
        assert!(known.routes_by_portal(), "another portal's batch is told apart once the default's id is known");
        assert!(matches!(known.target(&set(&[9009])), Target::Unknown(_)));
        assert!(accounts(UNKNOWN_PORTAL, &[(2002, "S2")]).routes_by_portal());
    }

    #[test]
    fn portal_ids_come_from_the_events() {
        let body = br#"[{"portalId":2002,"objectId":1},{"portalId":3003},{"objectId":5}]"#;
        assert_eq!(portals(body), set(&[2002, 3003]));
        assert!(portals(b"not json").is_empty());
    }
}

//! `accounts`: the HubSpot accounts (portals) this database copies, and the portal scope every
//! other query of the store runs in.
//!
//! **Scope.** Every synced and bookkeeping table has a `portal_id`. The store's queries read and
//! write the rows of `hubspot_sync_portal()` only ([`PORTAL_ROWS`], [`in_session_portal`]), and
//! new rows take it as their column default: it is the session's `hubspot_sync.portal_id`
//! (set on every connection of an account's pool by [`session_setting`], or for one transaction
//! by [`scope`]), else the default account's portal id. So the single-account code paths are the
//! multi-account ones, and a connection can never write into another account's rows by
//! forgetting a filter: it has no other portal in scope.
//!
//! **The default account** is the one of the process settings (`HUBSPOT_ACCESS_TOKEN`, ...). An
//! existing database migrates with its rows under portal id 0, "the default account, portal id
//! not yet known"; [`adopt_default_portal`] rewrites 0 to the real portal id
//! (`HUBSPOT_PORTAL_ID`) once, in every table, in one transaction.
//!
//! Secrets are never stored: an account names the environment variables that hold them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bool, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::future::BoxFuture;
use serde::Serialize;

use super::StoreError;
use super::schema::accounts;

/// The condition that keeps a query to the session's portal (column `portal_id` unqualified).
pub const PORTAL_ROWS: &str = "portal_id = hubspot_sync_portal()";

/// The session setting naming the portal a connection works for.
pub const SETTING: &str = "hubspot_sync.portal_id";

/// The portal id the default account has until its real one is known.
pub const UNKNOWN_PORTAL: i64 = 0;

/// Every table that carries `portal_id`, children before the records they name.
///
/// The cluster tables (`machines`, `account_leases`, `webhook_handoff`: `store::cluster`) are
/// deliberately not here: they are not portal-scoped (a machine takes any account's lease and
/// hands over batches for accounts it does not run), their rows go with the account through
/// `ON DELETE CASCADE`, and their queries name the portal they mean.
pub const SCOPED_TABLES: [&str; 13] = [
    "associations",
    "contact_owner_history",
    "deal_owner_history",
    "owner_change_deliveries",
    "sync_failures",
    "sync_state",
    "sync_logs",
    "webhook_v3_seen",
    "privacy_deletions",
    "contacts",
    "deals",
    "calls",
    "staff",
];

/// [`PORTAL_ROWS`] as a diesel filter.
pub fn in_session_portal() -> diesel::expression::SqlLiteral<Bool> {
    diesel::dsl::sql::<Bool>(PORTAL_ROWS)
}

/// The `SET` an account's pooled connections run once, right after they are opened.
pub fn session_setting(portal_id: i64) -> String {
    format!("SET {SETTING} = '{portal_id}'")
}

/// Makes the session of `conn` work for `portal_id` from now on (a one-off command's connection).
pub async fn enter(conn: &mut AsyncPgConnection, portal_id: i64) -> QueryResult<()> {
    diesel_async::SimpleAsyncConnection::batch_execute(conn, &session_setting(portal_id)).await
}

/// Puts the transaction `conn` is in into `portal_id`'s scope (until it ends). Outside a
/// transaction it would last for one statement only: call it first inside one.
pub async fn scope(conn: &mut AsyncPgConnection, portal_id: i64) -> QueryResult<()> {
    diesel::sql_query("SELECT set_config($1, $2, true)")
        .bind::<Text, _>(SETTING)
        .bind::<Text, _>(portal_id.to_string())
        .execute(conn)
        .await
        .map(drop)
}

/// Runs `read` in one transaction in `portal_id`'s scope ([`scope`]) on a connection of any
/// pool: how one process reads the rows of every account (the status API's `?account=N`, the
/// alert monitor, the retention job) without a pool per account. The scope ends with the
/// transaction, so the connection goes back to its pool as it came.
pub async fn in_scope<T: Send>(
    conn: &mut AsyncPgConnection,
    portal_id: i64,
    read: impl for<'r> FnOnce(&'r mut AsyncPgConnection) -> BoxFuture<'r, Result<T, StoreError>> + Send,
) -> Result<T, StoreError> {
    conn.transaction(async move |conn| {
        scope(conn, portal_id).await?;
        read(conn).await
    })
    .await
}

/// One account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Queryable, Selectable)]
#[diesel(table_name = accounts)]
pub struct Account {
    pub portal_id: i64,
    pub name: String,
    pub is_default: bool,
    /// The environment variable holding the private app token (`None`: the default account's
    /// `HUBSPOT_ACCESS_TOKEN`).
    pub token_env: Option<String>,
    /// The environment variable holding the app's client secret, for webhook signatures.
    pub client_secret_env: Option<String>,
    pub api_base: Option<String>,
    pub requests_per_10s: Option<i32>,
    pub schedule_incremental: Option<String>,
    pub schedule_full: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// An account to add (never the default one: that is the process settings').
#[derive(Clone, Debug, Insertable)]
#[diesel(table_name = accounts)]
pub struct NewAccount {
    pub portal_id: i64,
    pub name: String,
    pub token_env: String,
    pub client_secret_env: Option<String>,
    pub api_base: Option<String>,
    pub requests_per_10s: Option<i32>,
    /// Cron (UTC) of the account's incremental runs of every object (default: the process's
    /// `SCHEDULE_*`).
    pub schedule_incremental: Option<String>,
    /// Cron (UTC) of the account's full pass (default: `SCHEDULE_FULL`).
    pub schedule_full: Option<String>,
}

/// Why an account operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error(
        "the default account's portal id is not known yet: set HUBSPOT_PORTAL_ID to it and run `hubspot-sync migrate` \
         once before adding another account (events are routed by portal id)"
    )]
    DefaultUnknown,
    #[error("an account with portal id {0} or name {1:?} already exists")]
    Exists(i64, String),
    #[error("no account has portal id {0}")]
    NotFound(i64),
    #[error("portal id {0} is the default account (the process settings): it cannot be removed")]
    IsDefault(i64),
    #[error(
        "account {portal_id} still has {total} rows ({}): nothing was removed; to delete them with the account, \
         run again with --delete-data",
        .rows.iter().map(|(t, n)| format!("{t}: {n}")).collect::<Vec<_>>().join(", ")
    )]
    HasRows { portal_id: i64, total: i64, rows: Vec<(String, i64)> },
    #[error(
        "HUBSPOT_PORTAL_ID is {setting} but the database's default account is portal {stored}: a database copies \
         one default account; fix the setting"
    )]
    PortalConflict { stored: i64, setting: i64 },
    #[error("portal id {0} is already another account's")]
    PortalTaken(i64),
}

/// Every account, the default first, then by portal id.
pub async fn list(conn: &mut AsyncPgConnection) -> QueryResult<Vec<Account>> {
    accounts::table
        .select(Account::as_select())
        .order((accounts::is_default.desc(), accounts::portal_id.asc()))
        .load(conn)
        .await
}

/// One account, if it exists.
pub async fn get(conn: &mut AsyncPgConnection, portal_id: i64) -> QueryResult<Option<Account>> {
    accounts::table.select(Account::as_select()).find(portal_id).first(conn).await.optional()
}

/// The default account.
pub async fn default_account(conn: &mut AsyncPgConnection) -> QueryResult<Account> {
    accounts::table.select(Account::as_select()).filter(accounts::is_default.eq(true)).first(conn).await
}

/// Adds an account. Refused while the default account's portal id is unknown (an event for the
/// new portal could not be told from one for the default account) and when the portal id or the
/// name is taken.
pub async fn add(conn: &mut AsyncPgConnection, account: NewAccount) -> Result<Account, AccountError> {
    if default_account(conn).await?.portal_id == UNKNOWN_PORTAL {
        return Err(AccountError::DefaultUnknown);
    }
    let (portal_id, name) = (account.portal_id, account.name.clone());
    let inserted = diesel::insert_into(accounts::table)
        .values(&account)
        .on_conflict_do_nothing()
        .returning(Account::as_returning())
        .get_result(conn)
        .await
        .optional()?;
    inserted.ok_or(AccountError::Exists(portal_id, name))
}

/// Rows of each scoped table that belong to `portal_id` (tables with none left out).
pub async fn row_counts(conn: &mut AsyncPgConnection, portal_id: i64) -> QueryResult<Vec<(String, i64)>> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = Text)]
        name: String,
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let sql = SCOPED_TABLES
        .iter()
        .map(|t| format!("SELECT '{t}' AS name, count(*) AS n FROM {t} WHERE portal_id = $1"))
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let rows: Vec<Count> = diesel::sql_query(sql).bind::<BigInt, _>(portal_id).load(conn).await?;
    Ok(rows.into_iter().filter(|c| c.n > 0).map(|c| (c.name, c.n)).collect())
}

/// What [`remove`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Removed {
    pub portal_id: i64,
    /// Rows deleted with the account, per table.
    pub rows_deleted: Vec<(String, i64)>,
}

/// Removes an account. Refused for the default account, and while the account has rows unless
/// `delete_rows` says to delete them with it (all in one transaction: nothing is half removed).
pub async fn remove(conn: &mut AsyncPgConnection, portal_id: i64, delete_rows: bool) -> Result<Removed, AccountError> {
    conn.transaction(async move |conn| {
        let account: Option<Account> =
            accounts::table.select(Account::as_select()).find(portal_id).for_update().first(conn).await.optional()?;
        let account = account.ok_or(AccountError::NotFound(portal_id))?;
        if account.is_default {
            return Err(AccountError::IsDefault(portal_id));
        }
        let rows = row_counts(conn, portal_id).await?;
        if !rows.is_empty() && !delete_rows {
            let total = rows.iter().map(|(_, n)| n).sum();
            return Err(AccountError::HasRows { portal_id, total, rows });
        }
        for table in SCOPED_TABLES {
            diesel::sql_query(format!("DELETE FROM {table} WHERE portal_id = $1"))
                .bind::<BigInt, _>(portal_id)
                .execute(conn)
                .await?;
        }
        diesel::delete(accounts::table.find(portal_id)).execute(conn).await?;
        Ok(Removed { portal_id, rows_deleted: rows })
    })
    .await
}

/// What [`adopt_default_portal`] found or did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Adopted {
    /// The default account already had this portal id.
    Unchanged,
    /// The default account's rows moved from [`UNKNOWN_PORTAL`] to the portal id: rows per table.
    Rewritten(Vec<(String, i64)>),
}

/// Makes `portal_id` the default account's portal id. While it is unknown ([`UNKNOWN_PORTAL`]),
/// every row of the default account is rewritten to it, in one transaction (once in a database's
/// life: about one pass over each table). Refused when the default account already has another
/// portal id, or another account has this one.
pub async fn adopt_default_portal(conn: &mut AsyncPgConnection, portal_id: i64) -> Result<Adopted, AccountError> {
    conn.transaction(async move |conn| {
        let stored: i64 = accounts::table
            .select(accounts::portal_id)
            .filter(accounts::is_default.eq(true))
            .for_update()
            .first(conn)
            .await?;
        if stored == portal_id {
            return Ok(Adopted::Unchanged);
        }
        if stored != UNKNOWN_PORTAL {
            return Err(AccountError::PortalConflict { stored, setting: portal_id });
        }
        if get(conn, portal_id).await?.is_some() {
            return Err(AccountError::PortalTaken(portal_id));
        }
        diesel::update(accounts::table.find(UNKNOWN_PORTAL))
            .set(accounts::portal_id.eq(portal_id))
            .execute(conn)
            .await?;
        let mut rewritten = Vec::new();
        for table in SCOPED_TABLES {
            let n = diesel::sql_query(format!("UPDATE {table} SET portal_id = $1 WHERE portal_id = $2"))
                .bind::<BigInt, _>(portal_id)
                .bind::<BigInt, _>(UNKNOWN_PORTAL)
                .execute(conn)
                .await?;
            if n > 0 {
                rewritten.push((table.to_owned(), n as i64));
            }
        }
        Ok(Adopted::Rewritten(rewritten))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_to_remove_says_what_to_do() {
        let err = AccountError::HasRows {
            portal_id: 7,
            total: 12,
            rows: vec![("contacts".into(), 10), ("sync_logs".into(), 2)],
        };
        let text = err.to_string();
        assert!(text.contains("contacts: 10, sync_logs: 2"), "{text}");
        assert!(text.contains("--delete-data"), "{text}");
        assert!(text.contains("nothing was removed"), "{text}");
    }

    #[test]
    fn the_session_setting_names_the_portal() {
        assert_eq!(session_setting(62515), "SET hubspot_sync.portal_id = '62515'");
    }
}

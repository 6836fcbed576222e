//! `?account=N` of the status reads (`/api/sync/status`, `/logs`, `/history`, `/failures`):
//! which account's rows a request reads. `N` is a HubSpot portal id; without it, the default
//! account, as before accounts existed. The rows are read in one transaction in that account's
//! scope (`store::accounts::in_scope`), so a read can never mix in another portal's rows, and an
//! unknown portal id is a 404 saying where the accounts are listed (`GET /api/sync/accounts`).

use diesel_async::AsyncPgConnection;

use super::error::ApiError;
use crate::store::accounts;

/// Where the accounts a status read may name are listed (public: names and portal ids only).
pub const ACCOUNTS_PATH: &str = "/api/sync/accounts";

/// The account a status read is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadScope {
    pub portal_id: i64,
    /// The default account: this process's own runtime (schedules, queue, fast polling) is its.
    pub is_default: bool,
}

/// The account `requested` names (404 when there is none), or the default account.
pub async fn resolve(conn: &mut AsyncPgConnection, requested: Option<i64>) -> Result<ReadScope, ApiError> {
    let account = match requested {
        None => accounts::default_account(conn).await.map_err(ApiError::store)?,
        Some(portal_id) => accounts::get(conn, portal_id)
            .await
            .map_err(ApiError::store)?
            .ok_or_else(|| ApiError::NotFound(unknown(portal_id)))?,
    };
    Ok(ReadScope { portal_id: account.portal_id, is_default: account.is_default })
}

/// The 404's text.
fn unknown(portal_id: i64) -> String {
    format!(
        "no account has portal id {portal_id}; GET {ACCOUNTS_PATH} lists the accounts' portal ids \
         (account=<portal id>; without it, the default account)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_404_says_where_the_accounts_are_listed() {
        let text = unknown(3003);
        assert!(text.contains("3003") && text.contains("GET /api/sync/accounts"), "{text}");
    }
}

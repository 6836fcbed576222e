//! The accounts of a multi-account database over the admin API (`store::accounts`):
//! `GET /api/accounts`, `POST /api/accounts`, `DELETE /api/accounts/{portal_id}`, all admin only.
//! Secrets are named by environment variable, never sent or stored.
//!
//! And the public `GET /api/sync/accounts` the status page's selector reads: each account's
//! portal id and name only (not even the names of the variables holding its secrets), the ids
//! `?account=N` of the status reads takes (`ops::scope`).

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::admin::AdminAuth;
use super::error::{ApiError, ErrorBody};
use crate::store::Pool;
use crate::store::accounts::{self, Account, AccountError, NewAccount, Removed};

/// One HubSpot account.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountView {
    /// HubSpot portal (hub) id; 0 for the default account until `HUBSPOT_PORTAL_ID` is set.
    #[schema(example = 62515)]
    pub portal_id: i64,
    pub name: String,
    /// The account of the process settings (`HUBSPOT_ACCESS_TOKEN`, ...).
    pub is_default: bool,
    /// The environment variable holding its private app token.
    #[schema(example = "HUBSPOT_TOKEN_EMEA")]
    pub token_env: Option<String>,
    /// The environment variable holding its app's client secret.
    pub client_secret_env: Option<String>,
    pub api_base: Option<String>,
    pub requests_per_10s: Option<i32>,
    pub created_at: DateTime<Utc>,
}

impl From<Account> for AccountView {
    fn from(a: Account) -> Self {
        Self {
            portal_id: a.portal_id,
            name: a.name,
            is_default: a.is_default,
            token_env: a.token_env,
            client_secret_env: a.client_secret_env,
            api_base: a.api_base,
            requests_per_10s: a.requests_per_10s,
            created_at: a.created_at,
        }
    }
}

/// One account as anyone may see it: what the status reads' `?account=` takes, and a name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AccountSummary {
    /// HubSpot portal (hub) id: the value of `?account=`.
    #[schema(example = 62515)]
    pub portal_id: i64,
    #[schema(example = "emea")]
    pub name: String,
    /// The account the status reads show without `?account=`.
    pub is_default: bool,
}

impl From<Account> for AccountSummary {
    fn from(a: Account) -> Self {
        Self { portal_id: a.portal_id, name: a.name, is_default: a.is_default }
    }
}

/// An account to add.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddAccount {
    #[schema(example = 2002)]
    pub portal_id: i64,
    #[schema(example = "emea")]
    pub name: String,
    /// The name of the environment variable holding the token (never the token).
    #[schema(example = "HUBSPOT_TOKEN_EMEA")]
    pub token_env: String,
    pub client_secret_env: Option<String>,
    /// HubSpot API base URL (default: the process's `HUBSPOT_API_BASE`).
    pub api_base: Option<String>,
    pub requests_per_10s: Option<i32>,
    /// Cron (UTC) of the account's incremental runs (default: the process's `SCHEDULE_*`).
    #[schema(example = "*/10 * * * *")]
    pub schedule_incremental: Option<String>,
    /// Cron (UTC) of the account's full pass (default: `SCHEDULE_FULL`).
    pub schedule_full: Option<String>,
}

impl AddAccount {
    fn checked(self) -> Result<NewAccount, ApiError> {
        let bad = |m: String| ApiError::Unprocessable(m);
        if self.portal_id < 1 {
            return Err(bad("portal_id must be a positive HubSpot portal id".into()));
        }
        if self.name.trim().is_empty() {
            return Err(bad("name must not be empty".into()));
        }
        if !self.requests_per_10s.is_none_or(|n| (1..=100_000).contains(&n)) {
            return Err(bad("requests_per_10s must be between 1 and 100000".into()));
        }
        let api_base = match self.api_base.as_deref().map(url::Url::parse) {
            None => None,
            Some(Ok(url)) if matches!(url.scheme(), "http" | "https") => Some(url.to_string()),
            Some(_) => return Err(bad("api_base must be an http or https URL".into())),
        };
        for var in std::iter::once(&self.token_env).chain(self.client_secret_env.iter()) {
            if !is_env_name(var) {
                return Err(bad("token_env and client_secret_env name environment variables (letters, digits, _), \
                     never the secrets themselves"
                    .into()));
            }
        }
        for cron in self.schedule_incremental.iter().chain(self.schedule_full.iter()) {
            cron.parse::<crate::config::Schedule>().map_err(bad)?;
        }
        Ok(NewAccount {
            portal_id: self.portal_id,
            name: self.name.trim().to_owned(),
            token_env: self.token_env,
            client_secret_env: self.client_secret_env,
            api_base,
            requests_per_10s: self.requests_per_10s,
            schedule_incremental: self.schedule_incremental.map(|c| c.trim().to_owned()),
            schedule_full: self.schedule_full.map(|c| c.trim().to_owned()),
        })
    }
}

/// An environment variable name: letters, digits, underscores, not starting with a digit.
pub fn is_env_name(raw: &str) -> bool {
    raw.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && raw.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `DELETE` also deletes the account's rows.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RemoveQuery {
    /// Delete every row of the account with it; without it an account with rows is not removed.
    pub delete_data: Option<bool>,
}

/// What a removal deleted.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RemovedView {
    pub portal_id: i64,
    /// Rows deleted with the account, per table.
    pub rows_deleted: std::collections::BTreeMap<String, i64>,
}

impl From<Removed> for RemovedView {
    fn from(r: Removed) -> Self {
        Self { portal_id: r.portal_id, rows_deleted: r.rows_deleted.into_iter().collect() }
    }
}

fn refused(e: AccountError) -> ApiError {
    match e {
        AccountError::Query(q) => ApiError::store(q),
        AccountError::NotFound(_) => ApiError::NotFound(e.to_string()),
        AccountError::HasRows { .. } => ApiError::Conflict(e.to_string().replace("--delete-data", "?delete_data=true")),
        _ => ApiError::Conflict(e.to_string()),
    }
}

/// The accounts, the default one first (admin only).
#[utoipa::path(get, path = "/api/accounts", tag = "admin",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Accounts, the default one first", body = [AccountView]),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn list(_admin: AdminAuth, pool: web::Data<Pool>) -> Result<web::Json<Vec<AccountView>>, ApiError> {
    let mut conn = pool.get().await.map_err(ApiError::store)?;
    let list = accounts::list(&mut conn).await.map_err(ApiError::store)?;
    Ok(web::Json(list.into_iter().map(AccountView::from).collect()))
}

/// The accounts whose status can be read (`?account=<portal_id>`), the default one first: portal
/// ids and names only, no token needed.
#[utoipa::path(get, path = "/api/sync/accounts", tag = "sync",
    responses(
        (status = 200, description = "Accounts, the default one first", body = [AccountSummary]),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn summaries(pool: web::Data<Pool>) -> Result<web::Json<Vec<AccountSummary>>, ApiError> {
    let mut conn = pool.get().await.map_err(ApiError::store)?;
    let list = accounts::list(&mut conn).await.map_err(ApiError::store)?;
    Ok(web::Json(list.into_iter().map(AccountSummary::from).collect()))
}

/// Adds an account (admin only).
#[utoipa::path(post, path = "/api/accounts", tag = "admin", request_body = AddAccount,
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "Added", body = AccountView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 409, description = "The portal id or name is taken, or the default account's portal id is not known yet", body = ErrorBody),
        (status = 422, description = "Invalid fields (a secret where its variable's name belongs)", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn add(
    _admin: AdminAuth,
    pool: web::Data<Pool>,
    body: web::Json<AddAccount>,
) -> Result<HttpResponse, ApiError> {
    let account = body.into_inner().checked()?;
    let mut conn = pool.get().await.map_err(ApiError::store)?;
    let added = accounts::add(&mut conn, account).await.map_err(refused)?;
    tracing::info!(account.portal_id = added.portal_id, "account added from the API");
    Ok(HttpResponse::Created().json(AccountView::from(added)))
}

/// Removes an account (admin only); refused while it has rows unless `delete_data=true`.
#[utoipa::path(delete, path = "/api/accounts/{portal_id}", tag = "admin",
    params(("portal_id" = i64, Path, description = "HubSpot portal id"), RemoveQuery),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Removed", body = RemovedView),
        (status = 401, description = "Missing or wrong admin token", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "The default account, or an account with rows and no delete_data=true", body = ErrorBody),
        (status = 503, description = "Database unavailable", body = ErrorBody),
    ))]
pub async fn remove(
    _admin: AdminAuth,
    pool: web::Data<Pool>,
    portal_id: web::Path<i64>,
    query: web::Query<RemoveQuery>,
) -> Result<web::Json<RemovedView>, ApiError> {
    let mut conn = pool.get().await.map_err(ApiError::store)?;
    let removed = accounts::remove(&mut conn, portal_id.into_inner(), query.delete_data.unwrap_or(false))
        .await
        .map_err(refused)?;
    tracing::info!(account.portal_id = removed.portal_id, "account removed from the API");
    Ok(web::Json(removed.into()))
}

//! `--account N` of `sync`, `audit` and `status`: the account a one-off command works for. Its
//! pool's connections work for that portal only (`store::accounts`), and its HubSpot settings
//! are the account's (token from its environment variable, its API base and budget). Without
//! `--account`, the default account: today's single-account settings, unchanged.

use anyhow::Context as _;

use crate::config::{DatabaseSettings, HubSpotSettings};
use crate::store::{self, accounts};

use super::error::CliError;

/// `--account N`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AccountArg {
    /// The HubSpot portal id of the account to work on (see `accounts list`); default: the
    /// default account (the process settings').
    #[arg(long, value_name = "PORTAL_ID", value_parser = clap::value_parser!(i64).range(0..))]
    pub account: Option<i64>,
}

/// The pool and HubSpot settings of the account `arg` names, on a migrated database.
pub async fn scoped(
    arg: &AccountArg,
    database: &DatabaseSettings,
    hubspot: &HubSpotSettings,
    application_name: &str,
) -> Result<(store::Pool, HubSpotSettings), CliError> {
    let target = database.target()?;
    let pool = super::migrate::migrated_pool(&target, database, application_name).await?;
    let Some(portal_id) = arg.account else {
        return Ok((pool, hubspot.clone()));
    };
    let mut conn = pool.get().await.context("cannot connect to the database")?;
    let account = accounts::get(&mut conn, portal_id)
        .await
        .context("cannot read the accounts")?
        .ok_or_else(|| anyhow::anyhow!("no account has portal id {portal_id} (see `hubspot-sync accounts list`)"))?;
    drop(conn);
    let settings = match &account.token_env {
        None => hubspot.clone(),
        Some(token_env) => hubspot.for_account(token_env, account.api_base.as_deref(), account.requests_per_10s)?,
    };
    let pool = store::build_pool_for(&target, &database.pool_options(application_name), Some(portal_id))
        .context("cannot set up the database pool")?;
    Ok((pool, settings))
}

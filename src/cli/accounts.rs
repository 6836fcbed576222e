//! `hubspot-sync accounts add|list|remove`: the HubSpot accounts of a multi-account database
//! (`store::accounts`). Secrets are named by environment variable, never stored; the default
//! account is the process settings' and is listed, never added or removed here.

use std::process::ExitCode;

use anyhow::Context as _;
use url::Url;

use crate::config::DatabaseSettings;
use crate::store::accounts::{self, Account, NewAccount};

use super::error::CliError;

#[derive(clap::Args, Debug)]
pub struct AccountsArgs {
    #[command(subcommand)]
    pub action: Action,
    #[command(flatten)]
    pub database: DatabaseSettings,
}

#[derive(clap::Subcommand, Debug)]
pub enum Action {
    /// Adds an account: its portal id, a name, and the environment variables holding its secrets.
    Add(Box<AddArgs>),
    /// Lists the accounts, the default one first.
    List {
        /// Print the accounts as a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Removes an account; refused while it has rows, unless --delete-data deletes them with it.
    Remove {
        #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
        portal_id: i64,
        /// Delete every row of the account (records, runs, history) with it, in one transaction.
        #[arg(long)]
        delete_data: bool,
    },
}

#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The HubSpot portal (hub) id: webhook events are routed by it.
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub portal_id: i64,
    #[arg(long)]
    pub name: String,
    /// The environment variable that holds the account's private app token (on every `serve`).
    #[arg(long, value_parser = env_name)]
    pub token_env: String,
    /// The environment variable that holds the client secret of the app that signs its webhooks.
    #[arg(long, value_parser = env_name)]
    pub client_secret_env: Option<String>,
    /// HubSpot API base URL (default: the process's HUBSPOT_API_BASE).
    #[arg(long)]
    pub api_base: Option<Url>,
    /// The account's request budget per rolling 10 s (default: HUBSPOT_REQUESTS_PER_10S).
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..=100_000))]
    pub requests_per_10s: Option<i32>,
    /// Cron (UTC) of the account's incremental runs of every object (default: the process's
    /// SCHEDULE_CONTACTS, SCHEDULE_DEALS, ...).
    #[arg(long, value_parser = cron)]
    pub schedule_incremental: Option<String>,
    /// Cron (UTC) of the account's full pass (default: SCHEDULE_FULL).
    #[arg(long, value_parser = cron)]
    pub schedule_full: Option<String>,
}

/// A cron schedule (checked as `SCHEDULE_*` are), kept as written.
fn cron(raw: &str) -> Result<String, String> {
    raw.parse::<crate::config::Schedule>().map(|_| raw.trim().to_owned())
}

/// An environment variable name (letters, digits, underscores; not starting with a digit).
pub fn env_name(raw: &str) -> Result<String, String> {
    if crate::ops::accounts::is_env_name(raw) {
        Ok(raw.to_owned())
    } else {
        Err(format!(
            "'{raw}' is not an environment variable name (letters, digits and _): name the variable, not the secret"
        ))
    }
}

pub async fn run(args: AccountsArgs) -> Result<ExitCode, CliError> {
    let target = args.database.target()?;
    let mut conn = target
        .connect("hubspot-sync accounts")
        .await
        .context("cannot connect to the database (check DATABASE_URL and that PostgreSQL is running)")?;
    super::migrate::check_migrated(&mut conn).await?;
    match args.action {
        Action::Add(add) => {
            if add.name.trim().is_empty() {
                return Err(anyhow::anyhow!("--name must not be empty").into());
            }
            let account = accounts::add(&mut conn, new_account(*add)).await.map_err(anyhow::Error::from)?;
            println!("added account {} ({})", account.portal_id, account.name);
            for var in account.token_env.iter().chain(account.client_secret_env.iter()) {
                if std::env::var_os(var).is_none() {
                    eprintln!("note: {var} is not set here; set it on every machine that runs `serve`");
                }
            }
        }
        Action::List { json } => {
            let list = accounts::list(&mut conn).await.context("cannot read the accounts")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list).context("cannot encode the accounts")?);
            } else {
                print!("{}", table(&list));
            }
        }
        Action::Remove { portal_id, delete_data } => {
            let removed = accounts::remove(&mut conn, portal_id, delete_data).await.map_err(anyhow::Error::from)?;
            let total: i64 = removed.rows_deleted.iter().map(|(_, n)| n).sum();
            println!("removed account {portal_id} ({total} rows deleted)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn new_account(add: AddArgs) -> NewAccount {
    NewAccount {
        portal_id: add.portal_id,
        name: add.name.trim().to_owned(),
        token_env: add.token_env,
        client_secret_env: add.client_secret_env,
        api_base: add.api_base.map(|u| u.to_string()),
        requests_per_10s: add.requests_per_10s,
        schedule_incremental: add.schedule_incremental,
        schedule_full: add.schedule_full,
    }
}

/// The accounts as a table (the same rows, in the same order, as `--json`).
pub fn table(list: &[Account]) -> String {
    let mut out = format!(
        "{:<12} {:<20} {:<8} {:<28} {:<28} {:>8}  {}\n",
        "PORTAL", "NAME", "DEFAULT", "TOKEN ENV", "SECRET ENV", "BUDGET", "API BASE"
    );
    for a in list {
        let portal =
            if a.portal_id == accounts::UNKNOWN_PORTAL { "(unset)".to_owned() } else { a.portal_id.to_string() };
        out.push_str(&format!(
            "{:<12} {:<20} {:<8} {:<28} {:<28} {:>8}  {}\n",
            portal,
            a.name,
            if a.is_default { "yes" } else { "" },
            a.token_env.as_deref().unwrap_or(if a.is_default { "HUBSPOT_ACCESS_TOKEN" } else { "" }),
            a.client_secret_env.as_deref().unwrap_or(if a.is_default { "HUBSPOT_CLIENT_SECRET" } else { "" }),
            a.requests_per_10s.map(|n| n.to_string()).unwrap_or_else(|| "default".into()),
            a.api_base.as_deref().unwrap_or("default"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names_not_secrets() {
        assert_eq!(env_name("HUBSPOT_TOKEN_EU"), Ok("HUBSPOT_TOKEN_EU".into()));
        assert!(env_name("_X1").is_ok());
        assert!(env_name("pat-na1-0123").is_err());
        assert!(env_name("1ABC").is_err());
        assert!(env_name("").is_err());
    }
}

//! `hubspot-sync migrate`: applies pending migrations (Fly's release command), then the typed
//! columns of `HUBSPOT_SYNC_CONFIG` (added, changed, dropped as the file says). The other commands
//! that use the database refuse an unmigrated one with [`refuse_unmigrated`], which says to run it.

use std::process::ExitCode;

use anyhow::Context as _;
use diesel_async::AsyncPgConnection;

use crate::config::{CopyConfig, CopySettings, DatabaseSettings, PortalSettings};
use crate::store::connect::DbTarget;
use crate::store::{self, accounts, mapped_columns, migrations};

use super::error::CliError;

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
    #[command(flatten)]
    pub copy: CopySettings,
    #[command(flatten)]
    pub portal: PortalSettings,
}

pub async fn run(args: MigrateArgs) -> Result<ExitCode, CliError> {
    let target = args.database.target()?;
    let config = args.copy.load()?;
    let applied = migrations::run_pending(&target).await.map_err(anyhow::Error::from)?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        for version in &applied {
            println!("applied {version}");
        }
        println!("{} migration(s) applied", applied.len());
    }
    apply_mappings(&target, &config).await?;
    if let Some(portal_id) = args.portal.hubspot_portal_id {
        let mut conn = target.connect("hubspot-sync migrate").await.context("cannot connect to the database")?;
        adopt_portal(&mut conn, portal_id).await?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes `HUBSPOT_PORTAL_ID` the default account's portal id (rows moved from portal id 0 once),
/// saying what it did; refuses a value that differs from the database's.
pub async fn adopt_portal(conn: &mut AsyncPgConnection, portal_id: i64) -> Result<(), CliError> {
    match accounts::adopt_default_portal(conn, portal_id).await.map_err(anyhow::Error::from)? {
        accounts::Adopted::Unchanged => {}
        accounts::Adopted::Rewritten(rows) => {
            let total: i64 = rows.iter().map(|(_, n)| n).sum();
            println!("the default account is now portal {portal_id} ({total} existing rows moved to it)");
            tracing::info!(portal_id, rows = total, "the default account's rows moved to HUBSPOT_PORTAL_ID");
        }
    }
    Ok(())
}

/// Adds, changes and drops the typed columns so that they match `config`, saying what it did.
async fn apply_mappings(target: &DbTarget, config: &CopyConfig) -> Result<(), CliError> {
    let mut conn = target.connect("hubspot-sync migrate").await.context("cannot connect to the database")?;
    let changes = mapped_columns::apply(&mut conn, config).await.map_err(anyhow::Error::from)?;
    if changes.is_empty() {
        println!("typed columns are up to date");
    }
    for change in &changes {
        println!("{change}");
    }
    Ok(())
}

/// An error saying to run `hubspot-sync migrate` when the typed columns differ from `config`'s
/// mappings (so nothing reads a column the file names before it exists).
pub async fn check_mappings(conn: &mut AsyncPgConnection, config: &CopyConfig) -> anyhow::Result<()> {
    let changes = mapped_columns::differences(conn, config).await.context("cannot read the typed columns applied")?;
    if changes.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = changes.iter().map(ToString::to_string).collect();
    anyhow::bail!(
        "the typed columns in the database differ from HUBSPOT_SYNC_CONFIG ({}): run `hubspot-sync migrate` (with \
         the same DATABASE_URL and HUBSPOT_SYNC_CONFIG) first",
        list.join("; ")
    )
}

/// An error saying to run `hubspot-sync migrate` when the schema is missing or behind this build.
pub async fn check_migrated(conn: &mut AsyncPgConnection) -> anyhow::Result<()> {
    let pending = migrations::pending(conn).await.context("cannot read which migrations are applied")?;
    let total = migrations::versions().map(|v| v.len()).unwrap_or(0);
    match pending.len() {
        0 => Ok(()),
        n if n == total => anyhow::bail!(
            "the database has no hubspot-sync tables yet: run `hubspot-sync migrate` (with the same DATABASE_URL) first"
        ),
        n => anyhow::bail!(
            "the database schema is behind this build ({n} of {total} migrations not applied, the first being {}): \
             run `hubspot-sync migrate` (with the same DATABASE_URL) first",
            pending[0]
        ),
    }
}

/// For `serve`: refuses an unmigrated database, or one whose typed columns differ from
/// `config`; an unreachable one is left to the readiness probe (the server starts and answers
/// 503 until the database is back).
pub async fn refuse_unmigrated(target: &DbTarget, application_name: &str, config: &CopyConfig) -> Result<(), CliError> {
    let Ok(mut conn) = target.connect(application_name).await else {
        tracing::warn!("the database cannot be reached now; starting anyway (/readyz answers 503 until it can)");
        return Ok(());
    };
    check_migrated(&mut conn).await?;
    check_mappings(&mut conn, config).await?;
    Ok(())
}

/// A pool on `target` once the schema is known to be current: a connection is tried first, so an
/// unreachable or unmigrated database is reported (with what to do) before any work starts.
pub async fn migrated_pool(
    target: &DbTarget,
    database: &DatabaseSettings,
    application_name: &str,
) -> Result<store::Pool, CliError> {
    let mut conn = target
        .connect(application_name)
        .await
        .context("cannot connect to the database (check DATABASE_URL and that PostgreSQL is running)")?;
    check_migrated(&mut conn).await?;
    drop(conn);
    Ok(store::build_pool(target, &database.pool_options(application_name))
        .context("cannot set up the database pool")?)
}

//! `hubspot-sync migrate`: applies pending migrations (Fly's release command). The other commands
//! that use the database refuse an unmigrated one with [`refuse_unmigrated`], which says to run it.

use std::process::ExitCode;

use anyhow::Context as _;
use diesel_async::AsyncPgConnection;

use crate::config::DatabaseSettings;
use crate::store::connect::DbTarget;
use crate::store::{self, migrations};

use super::error::CliError;

#[derive(clap::Args, Debug)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub database: DatabaseSettings,
}

pub async fn run(args: MigrateArgs) -> Result<ExitCode, CliError> {
    let target = args.database.target()?;
    let applied = migrations::run_pending(&target).await.map_err(anyhow::Error::from)?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        for version in &applied {
            println!("applied {version}");
        }
        println!("{} migration(s) applied", applied.len());
    }
    Ok(ExitCode::SUCCESS)
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

/// For `serve`: refuses an unmigrated database; an unreachable one is left to the readiness
/// probe (the server starts and answers 503 until the database is back).
pub async fn refuse_unmigrated(target: &DbTarget, application_name: &str) -> Result<(), CliError> {
    let Ok(mut conn) = target.connect(application_name).await else {
        tracing::warn!("the database cannot be reached now; starting anyway (/readyz answers 503 until it can)");
        return Ok(());
    };
    check_migrated(&mut conn).await?;
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

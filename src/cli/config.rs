//! `hubspot-sync config check`: validates `HUBSPOT_SYNC_CONFIG` without changing anything (the
//! file itself, then its mappings against HubSpot's property list when `HUBSPOT_ACCESS_TOKEN` is
//! set). `hubspot-sync config suggest <object>`: prints a starting file mapping the portal's
//! custom properties of that object to the best column types.
//!
//! Exit codes: 0 valid (or printed); 1 invalid, each problem with its line (or HubSpot could
//! not be read); 2 bad usage (no `HUBSPOT_SYNC_CONFIG`, no token for `suggest`).

use std::collections::BTreeSet;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::config::file::{ColumnType, KnownProperty, MAX_COLUMN_LEN, Problem, builtin_columns};
use crate::config::{ConfigError, CopyConfig, CopySettings, HubSpotSettings};
use crate::hubspot::{HubSpot, HubSpotError};
use crate::kind::ObjectKind;

use super::error::CliError;

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validates HUBSPOT_SYNC_CONFIG (and its mappings against HubSpot's property list when
    /// HUBSPOT_ACCESS_TOKEN is set) without changing anything: exit 0 valid, 1 invalid.
    Check {
        #[command(flatten)]
        copy: CopySettings,
        #[command(flatten)]
        hubspot: HubSpotSettings,
    },
    /// Prints a starting HUBSPOT_SYNC_CONFIG mapping the portal's custom properties of OBJECT
    /// (contacts, deals or calls) to typed columns.
    Suggest {
        #[arg(value_name = "OBJECT", value_parser = parse_record_kind)]
        object: ObjectKind,
        #[command(flatten)]
        hubspot: HubSpotSettings,
    },
}

fn parse_record_kind(raw: &str) -> Result<ObjectKind, String> {
    match raw.parse::<ObjectKind>() {
        Ok(kind) if kind != ObjectKind::Owners => Ok(kind),
        _ => Err(format!("unknown object '{raw}': expected contacts, deals or calls")),
    }
}

pub async fn run(args: ConfigArgs) -> Result<ExitCode, CliError> {
    match args.command {
        ConfigCommand::Check { copy, hubspot } => check(&copy, &hubspot).await,
        ConfigCommand::Suggest { object, hubspot } => suggest(object, &hubspot).await,
    }
}

async fn check(copy: &CopySettings, hubspot: &HubSpotSettings) -> Result<ExitCode, CliError> {
    if copy.hubspot_sync_config.is_none() {
        return Err(
            ConfigError::Missing { var: "HUBSPOT_SYNC_CONFIG", hint: "set it to the TOML file to check" }.into()
        );
    }
    let config = match copy.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let unsupported = config.unsupported();
    if !unsupported.is_empty() {
        eprintln!("{}", config.invalid(unsupported));
        return Ok(ExitCode::from(1));
    }
    if hubspot.hubspot_access_token.is_none() {
        println!("HUBSPOT_SYNC_CONFIG is valid (not checked against HubSpot: HUBSPOT_ACCESS_TOKEN is not set)");
        return Ok(ExitCode::SUCCESS);
    }
    let client = HubSpot::new(hubspot).context("cannot set up the HubSpot client")?;
    let problems = against_hubspot(&client, &config).await.context("cannot read HubSpot's property lists")?;
    if problems.is_empty() {
        println!(
            "HUBSPOT_SYNC_CONFIG is valid ({} typed column(s), checked against HubSpot)",
            config.mappings().count()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("{}", config.invalid(problems));
        Ok(ExitCode::from(1))
    }
}

/// The mappings' problems against HubSpot's property lists (read now), by line.
pub async fn against_hubspot(client: &HubSpot, config: &CopyConfig) -> Result<Vec<Problem>, HubSpotError> {
    client.check_config(config).await
}

/// For `serve`: refuses a file whose mappings HubSpot contradicts; when HubSpot cannot be read
/// now, says so and starts (the mappings were checked when `migrate` ran them... or will be).
pub async fn refuse_invalid(hubspot: &HubSpotSettings, config: &CopyConfig) -> Result<(), CliError> {
    if config.mappings().next().is_none() || hubspot.hubspot_access_token.is_none() {
        return Ok(());
    }
    let client = HubSpot::new(hubspot).context("cannot set up the HubSpot client")?;
    match against_hubspot(&client, config).await {
        Ok(problems) if problems.is_empty() => Ok(()),
        Ok(problems) => Err(ConfigError::Stated(config.invalid(problems).to_string()).into()),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read HubSpot's property lists: HUBSPOT_SYNC_CONFIG's mappings are not checked against them now");
            Ok(())
        }
    }
}

async fn suggest(kind: ObjectKind, hubspot: &HubSpotSettings) -> Result<ExitCode, CliError> {
    hubspot.access_token()?;
    let client = HubSpot::new(hubspot).context("cannot set up the HubSpot client")?;
    let known = client.property_definitions(kind).await.context("cannot read HubSpot's property list")?;
    print!("{}", suggestion(kind, &known));
    Ok(ExitCode::SUCCESS)
}

/// A starting file for `kind`: each custom property mapped to a column named after it, of the
/// best type for its HubSpot type.
pub fn suggestion(kind: ObjectKind, known: &[KnownProperty]) -> String {
    let mut out = format!(
        "# HUBSPOT_SYNC_CONFIG suggested by `hubspot-sync config suggest {kind}` from the portal's custom {kind} \
         properties.\n# Keep the columns you want, then run `hubspot-sync config check` and `hubspot-sync migrate`.\n\
         # Types: text, integer, numeric, boolean, date, timestamptz, text[] (multi-select); add index = true to \
         index a column.\n\n[{kind}.columns]\n"
    );
    let mut taken: BTreeSet<String> = builtin_columns(kind).iter().map(|c| (*c).to_owned()).collect();
    let custom: Vec<&KnownProperty> = known.iter().filter(|p| p.custom).collect();
    if custom.is_empty() {
        out.push_str(&format!("# the portal has no custom {kind} properties; for example:\n"));
        out.push_str("# my_column = { property = \"a_property\", type = \"text\" }\n");
    }
    for p in custom {
        let column = column_name(&p.name, &taken);
        taken.insert(column.clone());
        let column_type = ColumnType::best_for(&p.hubspot_type, &p.field_type);
        out.push_str(&format!(
            "{column} = {{ property = \"{}\", type = \"{column_type}\" }}  # HubSpot {} ({})\n",
            p.name, p.hubspot_type, p.field_type
        ));
    }
    out.push_str(&format!(
        "\n# Properties kept in `properties` and asked of HubSpot (the copy's own are always kept):\n\
         # [{kind}.properties]\n# exclude = [\"hs_analytics_*\"]\n"
    ));
    out
}

/// A valid column name for property `name`, not in `taken`.
fn column_name(name: &str, taken: &BTreeSet<String>) -> String {
    let mut base: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
    if !base.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        || base.starts_with("_hubspot_sync")
        || base.starts_with("pg_")
    {
        base = format!("p_{base}");
    }
    base.truncate(MAX_COLUMN_LEN - 4);
    let mut candidate = base.clone();
    let mut n = 2;
    while taken.contains(&candidate) {
        candidate = format!("{base}_{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_parse_and_avoid_builtin_columns() {
        let known = |name: &str, t: &str, f: &str| KnownProperty {
            name: name.into(),
            hubspot_type: t.into(),
            field_type: f.into(),
            custom: true,
        };
        let props = [
            known("email", "string", "text"),
            known("nps_score", "number", "number"),
            known("Interests", "enumeration", "checkbox"),
            known("2fa_on", "bool", "booleancheckbox"),
            known("renewal_at", "datetime", "date"),
            KnownProperty { custom: false, ..known("hs_lead_status", "enumeration", "select") },
        ];
        let text = suggestion(ObjectKind::Contacts, &props);
        let config = CopyConfig::parse(&text, None).unwrap();
        let columns: Vec<_> =
            config.object(ObjectKind::Contacts).columns.iter().map(|c| (c.column.clone(), c.column_type)).collect();
        assert_eq!(
            columns,
            [
                ("email_2".to_owned(), ColumnType::Text),
                ("interests".to_owned(), ColumnType::TextArray),
                ("nps_score".to_owned(), ColumnType::Numeric),
                ("p_2fa_on".to_owned(), ColumnType::Boolean),
                ("renewal_at".to_owned(), ColumnType::Timestamptz),
            ]
        );
        let empty = suggestion(ObjectKind::Calls, &[]);
        assert!(CopyConfig::parse(&empty, None).unwrap().mappings().next().is_none());
    }
}

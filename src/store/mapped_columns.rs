//! `HUBSPOT_SYNC_CONFIG`'s typed columns in PostgreSQL: each mapping is a column
//! `GENERATED ALWAYS AS (conversion(properties ->> 'property')) STORED` of its record table, so
//! the upserts write `properties` only and the column can never drift from it. The conversion
//! functions (migration `2026-12-03-000002_mapped_columns`) never fail: a value that does not
//! parse gives NULL.
//!
//! `mapped_columns` keeps what `migrate` applied: [`apply`] compares the file with it and drops,
//! adds and indexes columns (a mapping whose property or type changed is dropped and added
//! again), all in one transaction under the migration lock; [`differences`] says what `migrate`
//! would change (`serve` refuses to start while it is not empty).

use std::fmt;

use diesel::QueryableByName;
use diesel::sql_types::{Bool, Text};
use diesel_async::{AsyncConnection as _, AsyncPgConnection, RunQueryDsl};

use super::StoreError;
use super::migrations::MIGRATION_LOCK;
use crate::config::file::{ColumnMapping, ColumnType, CopyConfig};
use crate::kind::ObjectKind;

/// A mapping as `migrate` applied it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedColumn {
    pub kind: ObjectKind,
    pub column: String,
    pub property: String,
    pub column_type: ColumnType,
    pub indexed: bool,
}

impl AppliedColumn {
    fn of(kind: ObjectKind, m: &ColumnMapping) -> Self {
        Self {
            kind,
            column: m.column.clone(),
            property: m.property.clone(),
            column_type: m.column_type,
            indexed: m.index,
        }
    }

    /// Whether the column itself (not its index) is the same.
    fn same_column(&self, other: &AppliedColumn) -> bool {
        self.property == other.property && self.column_type == other.column_type
    }
}

/// One change [`apply`] makes (or [`differences`] finds).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Add(AppliedColumn),
    Drop(AppliedColumn),
    /// Same property and type, index added (`true`) or dropped.
    Index(AppliedColumn),
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Add(c) => write!(
                f,
                "add column {}.{} ({} from property {}{})",
                c.kind.table(),
                c.column,
                c.column_type,
                c.property,
                if c.indexed { ", indexed" } else { "" }
            ),
            Change::Drop(c) => write!(f, "drop column {}.{}", c.kind.table(), c.column),
            Change::Index(c) if c.indexed => write!(f, "create index on {}.{}", c.kind.table(), c.column),
            Change::Index(c) => write!(f, "drop index on {}.{}", c.kind.table(), c.column),
        }
    }
}

/// Why the mappings could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    #[error(
        "HUBSPOT_SYNC_CONFIG line {line}: {table} already has a column {column:?} that hubspot-sync did not \
         generate; choose another name"
    )]
    Clash { table: &'static str, column: String, line: usize },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<diesel::result::Error> for MappingError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    property: String,
    #[diesel(sql_type = Text)]
    column_type: String,
    #[diesel(sql_type = Bool)]
    indexed: bool,
}

/// The mappings applied, by table then column. A row this build cannot read (an unknown type)
/// is skipped with a warning; [`apply`] then leaves its column alone.
pub async fn applied(conn: &mut AsyncPgConnection) -> Result<Vec<AppliedColumn>, StoreError> {
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT table_name, column_name, property, column_type, indexed FROM mapped_columns \
         ORDER BY table_name, column_name",
    )
    .load(conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let kind = r.table_name.parse::<ObjectKind>().ok();
            let column_type = r.column_type.parse::<ColumnType>().ok();
            match (kind, column_type) {
                (Some(kind), Some(column_type)) => Some(AppliedColumn {
                    kind,
                    column: r.column_name,
                    property: r.property,
                    column_type,
                    indexed: r.indexed,
                }),
                _ => {
                    tracing::warn!(table = %r.table_name, column = %r.column_name, "unreadable mapped_columns row");
                    None
                }
            }
        })
        .collect())
}

/// What turns `applied` into `config`'s mappings: drops first, then adds, then index changes.
pub fn plan(config: &CopyConfig, applied: &[AppliedColumn]) -> Vec<Change> {
    let wanted: Vec<AppliedColumn> = config.mappings().map(|(kind, m)| AppliedColumn::of(kind, m)).collect();
    let find = |set: &[AppliedColumn], c: &AppliedColumn| {
        set.iter().find(|x| x.kind == c.kind && x.column == c.column).cloned()
    };
    let mut drops = Vec::new();
    let mut adds = Vec::new();
    let mut indexes = Vec::new();
    for old in applied {
        match find(&wanted, old) {
            Some(new) if new.same_column(old) => {
                if new.indexed != old.indexed {
                    indexes.push(Change::Index(new));
                }
            }
            Some(new) => {
                drops.push(Change::Drop(old.clone()));
                adds.push(Change::Add(new));
            }
            None => drops.push(Change::Drop(old.clone())),
        }
    }
    for new in &wanted {
        if find(applied, new).is_none() {
            adds.push(Change::Add(new.clone()));
        }
    }
    drops.into_iter().chain(adds).chain(indexes).collect()
}

/// What `migrate` would change for `config` (empty: the database matches the file).
pub async fn differences(conn: &mut AsyncPgConnection, config: &CopyConfig) -> Result<Vec<Change>, StoreError> {
    Ok(plan(config, &applied(conn).await?))
}

/// Applies `config`'s mappings in one transaction under the migration lock; returns the changes
/// made.
pub async fn apply(conn: &mut AsyncPgConnection, config: &CopyConfig) -> Result<Vec<Change>, MappingError> {
    let config = config.clone();
    conn.transaction(async move |conn| {
        diesel::sql_query(format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})")).execute(conn).await?;
        let changes = plan(&config, &applied(conn).await?);
        for change in &changes {
            match change {
                Change::Drop(c) => drop_column(conn, c).await?,
                Change::Add(c) => {
                    let line = config
                        .mappings()
                        .find(|(k, m)| *k == c.kind && m.column == c.column)
                        .map_or(0, |(_, m)| m.line);
                    add_column(conn, c, line).await?;
                }
                Change::Index(c) => set_index(conn, c).await?,
            }
        }
        Ok::<_, MappingError>(changes)
    })
    .await
}

/// The conversion of `properties ->> property` to `column_type` (a generated column's expression).
pub fn expression(property: &str, column_type: ColumnType) -> String {
    let value = format!("(properties ->> {})", literal(property));
    match column_type {
        ColumnType::Text => value,
        ColumnType::Integer => format!("hubspot_sync_to_bigint{value}"),
        ColumnType::Numeric => format!("hubspot_sync_to_numeric{value}"),
        ColumnType::Boolean => format!("hubspot_sync_to_boolean{value}"),
        ColumnType::Date => format!("hubspot_sync_to_date{value}"),
        ColumnType::Timestamptz => format!("hubspot_sync_to_timestamptz{value}"),
        ColumnType::TextArray => format!("hubspot_sync_to_text_array{value}"),
    }
}

fn sql_type(column_type: ColumnType) -> &'static str {
    match column_type {
        ColumnType::Text => "text",
        ColumnType::Integer => "bigint",
        ColumnType::Numeric => "numeric",
        ColumnType::Boolean => "boolean",
        ColumnType::Date => "date",
        ColumnType::Timestamptz => "timestamptz",
        ColumnType::TextArray => "text[]",
    }
}

/// `"name"` (the file's names are checked, so there is nothing to escape but quotes).
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

fn index_name(c: &AppliedColumn) -> String {
    format!("{}_{}_mapped_idx", c.kind.table(), c.column)
}

async fn drop_column(conn: &mut AsyncPgConnection, c: &AppliedColumn) -> Result<(), MappingError> {
    // The index goes with the column.
    diesel::sql_query(format!("ALTER TABLE {} DROP COLUMN IF EXISTS {}", ident(c.kind.table()), ident(&c.column)))
        .execute(conn)
        .await?;
    diesel::sql_query("DELETE FROM mapped_columns WHERE table_name = $1 AND column_name = $2")
        .bind::<Text, _>(c.kind.table())
        .bind::<Text, _>(&c.column)
        .execute(conn)
        .await?;
    Ok(())
}

#[derive(QueryableByName)]
struct Exists {
    #[diesel(sql_type = Bool)]
    exists: bool,
}

async fn add_column(conn: &mut AsyncPgConnection, c: &AppliedColumn, line: usize) -> Result<(), MappingError> {
    let taken: Exists = diesel::sql_query(
        "SELECT EXISTS (SELECT 1 FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2) AS exists",
    )
    .bind::<Text, _>(c.kind.table())
    .bind::<Text, _>(&c.column)
    .get_result(conn)
    .await?;
    if taken.exists {
        return Err(MappingError::Clash { table: c.kind.table(), column: c.column.clone(), line });
    }
    diesel::sql_query(format!(
        "ALTER TABLE {} ADD COLUMN {} {} GENERATED ALWAYS AS ({}) STORED",
        ident(c.kind.table()),
        ident(&c.column),
        sql_type(c.column_type),
        expression(&c.property, c.column_type)
    ))
    .execute(conn)
    .await?;
    diesel::sql_query(
        "INSERT INTO mapped_columns (table_name, column_name, property, column_type, indexed) \
         VALUES ($1, $2, $3, $4, false)",
    )
    .bind::<Text, _>(c.kind.table())
    .bind::<Text, _>(&c.column)
    .bind::<Text, _>(&c.property)
    .bind::<Text, _>(c.column_type.as_str())
    .execute(conn)
    .await?;
    if c.indexed {
        set_index(conn, c).await?;
    }
    Ok(())
}

async fn set_index(conn: &mut AsyncPgConnection, c: &AppliedColumn) -> Result<(), MappingError> {
    let name = ident(&index_name(c));
    let sql = if c.indexed {
        // A multi-select is searched by its elements.
        let using = if c.column_type == ColumnType::TextArray { " USING gin" } else { "" };
        format!("CREATE INDEX IF NOT EXISTS {name} ON {}{using} ({})", ident(c.kind.table()), ident(&c.column))
    } else {
        format!("DROP INDEX IF EXISTS {name}")
    };
    diesel::sql_query(sql).execute(conn).await?;
    diesel::sql_query("UPDATE mapped_columns SET indexed = $3 WHERE table_name = $1 AND column_name = $2")
        .bind::<Text, _>(c.kind.table())
        .bind::<Text, _>(&c.column)
        .bind::<Bool, _>(c.indexed)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> CopyConfig {
        CopyConfig::parse(text, None).unwrap()
    }

    fn applied_of(text: &str) -> Vec<AppliedColumn> {
        config(text).mappings().map(|(k, m)| AppliedColumn::of(k, m)).collect()
    }

    #[test]
    fn the_plan_drops_changed_columns_and_adds_them_again() {
        let before = applied_of(
            "[contacts.columns]\na = { property = \"pa\", type = \"text\" }\nb = { property = \"pb\", type = \"integer\" }\nc = { property = \"pc\", type = \"date\" }\n",
        );
        let after = config(
            "[contacts.columns]\na = { property = \"pa\", type = \"text\", index = true }\nb = { property = \"pb\", type = \"numeric\" }\nd = { property = \"pd\", type = \"boolean\" }\n",
        );
        let changes: Vec<String> = plan(&after, &before).iter().map(ToString::to_string).collect();
        assert_eq!(
            changes,
            [
                "drop column contacts.b",
                "drop column contacts.c",
                "add column contacts.b (numeric from property pb)",
                "add column contacts.d (boolean from property pd)",
                "create index on contacts.a",
            ]
        );
        assert!(plan(&after, &applied_of("[contacts.columns]\na = { property = \"pa\", type = \"text\", index = true }\nb = { property = \"pb\", type = \"numeric\" }\nd = { property = \"pd\", type = \"boolean\" }\n")).is_empty());
        assert_eq!(plan(&CopyConfig::default(), &before).len(), 3, "no file: every applied column dropped");
    }

    #[test]
    fn expressions_quote_the_property() {
        assert_eq!(
            expression("lead_score", ColumnType::Integer),
            "hubspot_sync_to_bigint(properties ->> 'lead_score')"
        );
        assert_eq!(expression("x'y", ColumnType::Text), "(properties ->> 'x''y')");
    }
}

//! `HUBSPOT_SYNC_CONFIG`: the TOML file that shapes the copy per object: HubSpot properties
//! mapped to typed columns (`[contacts.columns]`), which properties are kept
//! (`[contacts.properties]`, an include or an exclude list of globs) and filters (`[deals.filter]`).
//!
//! [`CopyConfig::parse`] checks everything that needs neither HubSpot nor the database (names,
//! types, globs, sections) and names the line of each problem; [`CopyConfig::check_properties`]
//! checks the mappings against HubSpot's property list (unknown property, a column type that
//! cannot hold the property's HubSpot type).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use toml::Spanned;

use crate::kind::ObjectKind;

/// Longest column name accepted (an index name adds the table's name and a suffix, and
/// PostgreSQL cuts identifiers at 63 bytes).
pub const MAX_COLUMN_LEN: usize = 40;

/// `HUBSPOT_SYNC_CONFIG`: the path of the copy's TOML file (optional).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CopySettings {
    /// TOML file: HubSpot properties mapped to typed columns, include/exclude lists, filters.
    #[arg(long, env = "HUBSPOT_SYNC_CONFIG", value_name = "HUBSPOT_SYNC_CONFIG")]
    pub hubspot_sync_config: Option<PathBuf>,
}

impl CopySettings {
    /// The file's configuration, or the empty one (every property, no column, no filter) when
    /// `HUBSPOT_SYNC_CONFIG` is unset.
    pub fn load(&self) -> Result<CopyConfig, CopyConfigError> {
        match &self.hubspot_sync_config {
            None => Ok(CopyConfig::default()),
            Some(path) => CopyConfig::load(path),
        }
    }
}

/// The column types a property can be mapped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ColumnType {
    Text,
    /// `bigint` (HubSpot numbers can exceed 32 bits).
    Integer,
    Numeric,
    Boolean,
    Date,
    Timestamptz,
    /// A multi-select value split on `;`.
    TextArray,
}

impl ColumnType {
    pub const ALL: [ColumnType; 7] =
        [Self::Text, Self::Integer, Self::Numeric, Self::Boolean, Self::Date, Self::Timestamptz, Self::TextArray];

    /// The name in the file (and in the bookkeeping table).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Integer => "integer",
            Self::Numeric => "numeric",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::Timestamptz => "timestamptz",
            Self::TextArray => "text[]",
        }
    }

    /// Whether a column of this type can hold values of a property of HubSpot `type` and
    /// `fieldType` (text holds anything; a number needs integer or numeric, and so on).
    pub fn holds(self, hubspot_type: &str, field_type: &str) -> bool {
        if self == Self::Text {
            return true;
        }
        match hubspot_type {
            "number" => matches!(self, Self::Integer | Self::Numeric),
            "bool" => self == Self::Boolean,
            "date" | "datetime" => matches!(self, Self::Date | Self::Timestamptz),
            "enumeration" if field_type == "booleancheckbox" => matches!(self, Self::Boolean | Self::TextArray),
            "enumeration" => self == Self::TextArray,
            _ => false,
        }
    }

    /// The best type for a property of HubSpot `type` and `fieldType` (for `config suggest`).
    pub fn best_for(hubspot_type: &str, field_type: &str) -> ColumnType {
        match (hubspot_type, field_type) {
            ("number", _) => Self::Numeric,
            ("bool", _) | ("enumeration", "booleancheckbox") => Self::Boolean,
            ("date", _) => Self::Date,
            ("datetime", _) => Self::Timestamptz,
            ("enumeration", "checkbox") => Self::TextArray,
            _ => Self::Text,
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ColumnType {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|t| t.as_str() == raw).ok_or_else(|| {
            format!("unknown type {raw:?}: expected text, integer, numeric, boolean, date, timestamptz or text[]")
        })
    }
}

/// One property mapped to a typed column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMapping {
    pub column: String,
    pub property: String,
    pub column_type: ColumnType,
    pub index: bool,
    /// The line of the file that maps it (1-based).
    pub line: usize,
}

/// Which properties are kept in `properties` and asked of HubSpot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum PropertySelection {
    #[default]
    All,
    Include(Vec<Glob>),
    Exclude(Vec<Glob>),
}

impl PropertySelection {
    /// Whether `name` is kept.
    pub fn keeps(&self, name: &str) -> bool {
        match self {
            Self::All => true,
            Self::Include(globs) => globs.iter().any(|g| g.matches(name)),
            Self::Exclude(globs) => !globs.iter().any(|g| g.matches(name)),
        }
    }
}

/// A property name pattern: `*` any run of characters, `?` one character.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let valid = !pattern.is_empty()
            && pattern.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'*' | b'?'));
        if valid {
            Ok(Glob(pattern.to_owned()))
        } else {
            Err(format!("glob {pattern:?}: use letters, digits, _, - and the wildcards * and ?"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }
}

/// `*`/`?` matching with one backtrack point (linear in practice).
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Which records of an object are kept (`[deals.filter]`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecordFilter {
    /// Deal pipeline ids (deals only); empty: every pipeline.
    pub pipelines: Vec<String>,
    /// Owner ids; empty: every owner.
    pub owners: Vec<String>,
    /// The line of the `[x.filter]` section.
    pub line: usize,
}

/// The key under `properties` that says why a row is archived by a filter.
pub const FILTERED_KEY: &str = "_hubspot_sync_filtered";

impl RecordFilter {
    pub fn is_empty(&self) -> bool {
        self.pipelines.is_empty() && self.owners.is_empty()
    }

    /// Why a record whose property `name` has value `get(name)` is outside the filter (`None`:
    /// it is kept). A record with no pipeline or no owner is outside a filter that names some.
    pub fn excludes<'a>(&self, get: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
        let outside = |list: &[String], property: &str| {
            let value = get(property);
            (!list.is_empty() && !value.is_some_and(|v| list.iter().any(|x| x == v)))
                .then(|| format!("{property} {} is not in the filter", value.unwrap_or("(none)")))
        };
        outside(&self.pipelines, "pipeline").or_else(|| outside(&self.owners, "hubspot_owner_id"))
    }

    /// The properties the filter reads, with the values it keeps (for a search's filters).
    pub fn conditions(&self) -> Vec<(&'static str, &[String])> {
        let mut out = Vec::new();
        if !self.pipelines.is_empty() {
            out.push(("pipeline", self.pipelines.as_slice()));
        }
        if !self.owners.is_empty() {
            out.push(("hubspot_owner_id", self.owners.as_slice()));
        }
        out
    }
}

/// The filters in force, shared by every writer and replaced whole when the file is reloaded.
#[derive(Clone, Debug, Default)]
pub struct LiveFilters(std::sync::Arc<std::sync::RwLock<std::collections::HashMap<ObjectKind, RecordFilter>>>);

impl LiveFilters {
    pub fn new(filters: std::collections::HashMap<ObjectKind, RecordFilter>) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(filters)))
    }

    /// `kind`'s filter, if it has one.
    pub fn get(&self, kind: ObjectKind) -> Option<RecordFilter> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&kind).cloned()
    }

    /// Puts `filters` in force for every holder.
    pub fn set(&self, filters: std::collections::HashMap<ObjectKind, RecordFilter>) {
        *self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner) = filters;
    }
}

/// What the file says about one object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ObjectConfig {
    /// Sorted by column name.
    pub columns: Vec<ColumnMapping>,
    pub properties: PropertySelection,
    pub filter: RecordFilter,
}

impl ObjectConfig {
    /// Whether property `name` of `kind` is asked of HubSpot and kept in `properties`: the
    /// include/exclude list says so, or the copy itself needs it (its own columns, a mapping).
    pub fn asks_for(&self, kind: ObjectKind, name: &str) -> bool {
        self.properties.keeps(name)
            || kind.core_properties().contains(&name)
            || self.columns.iter().any(|c| c.property == name)
            || self.filter.conditions().iter().any(|(p, _)| *p == name)
    }
}

/// The whole file; the default (no file) maps nothing and keeps everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CopyConfig {
    /// Where it was read from (for messages).
    pub path: Option<PathBuf>,
    pub objects: BTreeMap<ObjectKind, ObjectConfig>,
}

/// A property as HubSpot's property list describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownProperty {
    pub name: String,
    /// HubSpot `type`: string, number, bool, date, datetime, enumeration, phone_number.
    pub hubspot_type: String,
    /// HubSpot `fieldType`: text, number, select, checkbox, booleancheckbox, ...
    pub field_type: String,
    /// Created by the portal (`hubspotDefined: false`).
    pub custom: bool,
}

/// One problem of the file, at a line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

/// Why `HUBSPOT_SYNC_CONFIG` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CopyConfigError {
    #[error("HUBSPOT_SYNC_CONFIG: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("HUBSPOT_SYNC_CONFIG {} is invalid:\n{}", path_of(.path), join(.problems))]
    Invalid { path: Option<PathBuf>, problems: Vec<Problem> },
}

fn path_of(path: &Option<PathBuf>) -> String {
    path.as_ref().map_or_else(|| "(text)".to_owned(), |p| p.display().to_string())
}

fn join(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
}

// The file as serde reads it, with the spans that give each problem its line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    contacts: Option<RawObject>,
    deals: Option<RawObject>,
    calls: Option<RawObject>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObject {
    #[serde(default)]
    columns: BTreeMap<Spanned<String>, Spanned<RawColumn>>,
    properties: Option<Spanned<RawProperties>>,
    filter: Option<Spanned<RawFilter>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    property: Spanned<String>,
    #[serde(rename = "type")]
    column_type: Spanned<String>,
    #[serde(default)]
    index: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProperties {
    include: Option<Vec<Spanned<String>>>,
    exclude: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFilter {
    pipelines: Option<Vec<Spanned<String>>>,
    owners: Option<Vec<Spanned<String>>>,
}

/// Columns of each record table that a mapping may not take (the table's own columns).
pub fn builtin_columns(kind: ObjectKind) -> &'static [&'static str] {
    match kind {
        ObjectKind::Contacts => &[
            "hubspot_contact_id",
            "email",
            "first_name",
            "last_name",
            "phone",
            "owner_id",
            "lifecycle_stage",
            "status",
            "created_at",
            "updated_at",
            "archived",
            "archived_at",
            "merged_into",
            "properties",
            "synced_at",
            "portal_id",
        ],
        ObjectKind::Deals => &[
            "hubspot_deal_id",
            "deal_name",
            "deal_value",
            "stage",
            "status",
            "close_date",
            "closer_id",
            "pipeline",
            "created_at",
            "updated_at",
            "archived",
            "archived_at",
            "merged_into",
            "properties",
            "synced_at",
            "portal_id",
        ],
        ObjectKind::Calls => &[
            "hubspot_call_id",
            "title",
            "direction",
            "disposition",
            "status",
            "duration_ms",
            "called_at",
            "owner_id",
            "created_at",
            "updated_at",
            "archived",
            "archived_at",
            "merged_into",
            "properties",
            "synced_at",
            "portal_id",
        ],
        ObjectKind::Owners => &[],
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

fn valid_column(name: &str) -> Result<(), String> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase() || b == b'_');
    if !first_ok || !bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return Err(format!("column {name:?}: use lower-case letters, digits and _, starting with a letter or _"));
    }
    if name.len() > MAX_COLUMN_LEN {
        return Err(format!("column {name:?} is longer than {MAX_COLUMN_LEN} characters"));
    }
    if name.starts_with("_hubspot_sync") || name.starts_with("pg_") {
        return Err(format!("column {name:?}: names starting with _hubspot_sync or pg_ are reserved"));
    }
    Ok(())
}

fn valid_property(name: &str) -> Result<(), String> {
    let ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!("property {name:?}: a HubSpot property's internal name has letters, digits and _ only"))
    }
}

impl CopyConfig {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<CopyConfig, CopyConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| CopyConfigError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, Some(path.to_owned()))
    }

    /// Parses and checks `text`; every problem found is reported, each with its line.
    pub fn parse(text: &str, path: Option<PathBuf>) -> Result<CopyConfig, CopyConfigError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_at(text, s.start));
            let message = e.message().trim().to_owned();
            CopyConfigError::Invalid { path: path.clone(), problems: vec![Problem { line, message }] }
        })?;
        let mut problems = Vec::new();
        let mut objects = BTreeMap::new();
        for (kind, object) in
            [(ObjectKind::Contacts, raw.contacts), (ObjectKind::Deals, raw.deals), (ObjectKind::Calls, raw.calls)]
        {
            if let Some(object) = object {
                objects.insert(kind, object_config(kind, object, text, &mut problems));
            }
        }
        if problems.is_empty() {
            Ok(CopyConfig { path, objects })
        } else {
            problems.sort_by_key(|p| p.line);
            Err(CopyConfigError::Invalid { path, problems })
        }
    }

    /// Whether property `name` of `kind` is asked of HubSpot (see [`ObjectConfig::asks_for`]).
    pub fn asks_for(&self, kind: ObjectKind, name: &str) -> bool {
        self.objects.get(&kind).is_none_or(|o| o.asks_for(kind, name))
    }

    /// What the file says about `kind` (the empty configuration when it says nothing).
    pub fn object(&self, kind: ObjectKind) -> ObjectConfig {
        self.objects.get(&kind).cloned().unwrap_or_default()
    }

    /// Every mapping, with its object, by object then column.
    pub fn mappings(&self) -> impl Iterator<Item = (ObjectKind, &ColumnMapping)> {
        self.objects.iter().flat_map(|(kind, o)| o.columns.iter().map(move |c| (*kind, c)))
    }

    /// Whether any object has a filter.
    pub fn has_filters(&self) -> bool {
        self.objects.values().any(|o| !o.filter.is_empty())
    }

    /// What this build parses but does not apply (nothing now; kept so that a section a later
    /// file format adds can be refused rather than half-applied).
    pub fn unsupported(&self) -> Vec<Problem> {
        Vec::new()
    }

    /// The filter of each object that has one.
    pub fn filters(&self) -> std::collections::HashMap<ObjectKind, RecordFilter> {
        self.objects.iter().filter(|(_, o)| !o.filter.is_empty()).map(|(k, o)| (*k, o.filter.clone())).collect()
    }

    /// Checks `kind`'s mappings against HubSpot's property list: each mapped property must exist,
    /// and its column type must hold its HubSpot type.
    pub fn check_properties(&self, kind: ObjectKind, known: &[KnownProperty]) -> Vec<Problem> {
        let Some(object) = self.objects.get(&kind) else { return Vec::new() };
        object
            .columns
            .iter()
            .filter_map(|c| {
                let message = match known.iter().find(|p| p.name == c.property) {
                    None => format!("{kind}.{}: HubSpot has no {kind} property {:?}", c.column, c.property),
                    Some(p) if !c.column_type.holds(&p.hubspot_type, &p.field_type) => format!(
                        "{kind}.{}: type {} cannot hold {:?}, a HubSpot {} property (fieldType {}); use {}",
                        c.column,
                        c.column_type,
                        c.property,
                        p.hubspot_type,
                        p.field_type,
                        ColumnType::best_for(&p.hubspot_type, &p.field_type)
                    ),
                    Some(_) => return None,
                };
                Some(Problem { line: c.line, message })
            })
            .collect()
    }

    /// This configuration, or the error naming what this build cannot apply.
    pub fn supported(self) -> Result<CopyConfig, CopyConfigError> {
        let problems = self.unsupported();
        if problems.is_empty() { Ok(self) } else { Err(self.invalid(problems)) }
    }

    /// The error for `problems` found beyond parsing (against HubSpot, say).
    pub fn invalid(&self, problems: Vec<Problem>) -> CopyConfigError {
        CopyConfigError::Invalid { path: self.path.clone(), problems }
    }
}

fn object_config(kind: ObjectKind, raw: RawObject, text: &str, problems: &mut Vec<Problem>) -> ObjectConfig {
    let builtin = builtin_columns(kind);
    let mut columns = Vec::new();
    for (name, spec) in raw.columns {
        let line = line_at(text, name.span().start);
        let column = name.into_inner();
        let spec_line = line_at(text, spec.span().start);
        let spec = spec.into_inner();
        let mut bad = |line: usize, message: String| {
            problems.push(Problem { line, message: format!("{kind}.{column}: {message}") })
        };
        if let Err(e) = valid_column(&column) {
            bad(line, e);
            continue;
        }
        if builtin.contains(&column.as_str()) {
            bad(line, format!("{kind} already has a column {column:?}; choose another name"));
            continue;
        }
        let property_line = line_at(text, spec.property.span().start).max(spec_line);
        let property = spec.property.into_inner();
        if let Err(e) = valid_property(&property) {
            bad(property_line, e);
            continue;
        }
        let type_line = line_at(text, spec.column_type.span().start);
        let column_type = match spec.column_type.into_inner().parse::<ColumnType>() {
            Ok(t) => t,
            Err(e) => {
                bad(type_line, e);
                continue;
            }
        };
        columns.push(ColumnMapping { column, property, column_type, index: spec.index, line });
    }
    columns.sort_by(|a, b| a.column.cmp(&b.column));
    let properties = match raw.properties {
        None => PropertySelection::All,
        Some(spanned) => {
            let line = line_at(text, spanned.span().start);
            let spec = spanned.into_inner();
            match (spec.include, spec.exclude) {
                (Some(_), Some(_)) => {
                    problems.push(Problem {
                        line,
                        message: format!("{kind}.properties: give include or exclude, not both"),
                    });
                    PropertySelection::All
                }
                (Some(include), None) => PropertySelection::Include(globs(kind, include, text, problems)),
                (None, Some(exclude)) => PropertySelection::Exclude(globs(kind, exclude, text, problems)),
                (None, None) => PropertySelection::All,
            }
        }
    };
    let filter = match raw.filter {
        None => RecordFilter::default(),
        Some(spanned) => {
            let line = line_at(text, spanned.span().start);
            let spec = spanned.into_inner();
            let pipelines = ids(spec.pipelines, text, problems, kind, "pipelines");
            if !pipelines.is_empty() && kind != ObjectKind::Deals {
                problems.push(Problem { line, message: format!("{kind}.filter: pipelines filter deals only") });
            }
            let owners = ids(spec.owners, text, problems, kind, "owners");
            RecordFilter { pipelines, owners, line }
        }
    };
    ObjectConfig { columns, properties, filter }
}

fn globs(kind: ObjectKind, raw: Vec<Spanned<String>>, text: &str, problems: &mut Vec<Problem>) -> Vec<Glob> {
    raw.into_iter()
        .filter_map(|g| {
            let line = line_at(text, g.span().start);
            Glob::new(g.get_ref())
                .map_err(|e| problems.push(Problem { line, message: format!("{kind}.properties: {e}") }))
                .ok()
        })
        .collect()
}

fn ids(
    raw: Option<Vec<Spanned<String>>>,
    text: &str,
    problems: &mut Vec<Problem>,
    kind: ObjectKind,
    what: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for id in raw.unwrap_or_default() {
        let line = line_at(text, id.span().start);
        let value = id.into_inner();
        if value.trim().is_empty() || value.trim() != value {
            problems.push(Problem { line, message: format!("{kind}.filter.{what}: {value:?} is not an id") });
        } else {
            out.push(value);
        }
    }
    out
}

#[cfg(test)]
mod tests;

//! `sync_logs`: one row per reconciliation run. A run is started as `running` and finished once
//! with counts, duration and error details; `get_latest_sync_status()` reads the newest per type.
//!
//! Status rules ([`RunStatus::of`]): a run that could not complete is `failed`; a completed run
//! with no failed records is `success`; with some failed records it is `partial`; a run in which
//! every record failed is `failed`.

use chrono::{DateTime, Utc};
use diesel::deserialize::{FromSql, FromSqlRow};
use diesel::expression::AsExpression;
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::serialize::{Output, ToSql};
use diesel::sql_types::{Integer, Jsonb, Nullable, Text, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use serde::Serialize;
use uuid::Uuid;

use super::accounts::in_session_portal;
use super::schema::sync_logs;

/// An enum stored as one of a few `text` values (the column's `CHECK` lists the same ones): it
/// is written and read as itself through diesel, and serialised as the same text.
macro_rules! str_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, AsExpression, FromSqlRow)]
        #[diesel(sql_type = Text)]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }
        impl $name {
            pub fn as_str(self) -> &'static str { match self { $(Self::$variant => $text),+ } }
            pub fn parse(raw: &str) -> Option<Self> { match raw { $($text => Some(Self::$variant),)+ _ => None } }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.pad(self.as_str()) }
        }
        impl ToSql<Text, Pg> for $name {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> diesel::serialize::Result {
                <str as ToSql<Text, Pg>>::to_sql(self.as_str(), out)
            }
        }
        impl FromSql<Text, Pg> for $name {
            fn from_sql(bytes: PgValue<'_>) -> diesel::deserialize::Result<Self> {
                let raw = <String as FromSql<Text, Pg>>::from_sql(bytes)?;
                Self::parse(&raw).ok_or_else(|| {
                    format!(concat!("unknown ", stringify!($name), " {:?} in sync_logs; is the database migrated by a newer version?"), raw).into()
                })
            }
        }
    };
}

str_enum!(
    /// What started a run.
    RunTrigger { Schedule => "schedule", Manual => "manual", Startup => "startup", Sql => "sql" }
);
str_enum!(
    /// Whether a run fetched only changes or everything; `audit` rows are drift audits (see
    /// `store::audit`) and `maintenance` rows the retention job (`store::retention`), not runs.
    RunMode { Incremental => "incremental", Full => "full", Audit => "audit", Maintenance => "maintenance" }
);
str_enum!(
    /// The state of a run.
    RunStatus { Running => "running", Success => "success", Partial => "partial", Failed => "failed" }
);

/// How a run ended, as the poller reports it.
#[derive(Clone, Debug, Default)]
pub struct RunOutcome {
    /// Records the run handled, failed ones included.
    pub records_processed: i32,
    /// Records that could not be mapped or stored.
    pub records_failed: i32,
    /// Set when the run could not complete (HubSpot or the database gave up on it).
    pub fatal_error: Option<String>,
    /// HubSpot error bodies, failed ids and anything else worth keeping (`error_details`).
    pub details: Option<serde_json::Value>,
}

impl RunStatus {
    /// The status a finished run gets (see the module docs).
    pub fn of(outcome: &RunOutcome) -> Self {
        if outcome.fatal_error.is_some() {
            Self::Failed
        } else if outcome.records_failed == 0 {
            Self::Success
        } else if outcome.records_failed >= outcome.records_processed {
            Self::Failed
        } else {
            Self::Partial
        }
    }
}

/// Inserts a `running` row and returns its id.
pub async fn start_run(
    conn: &mut AsyncPgConnection,
    sync_type: &str,
    trigger: RunTrigger,
    mode: RunMode,
) -> QueryResult<Uuid> {
    diesel::insert_into(sync_logs::table)
        .values((sync_logs::sync_type.eq(sync_type), sync_logs::trigger.eq(trigger), sync_logs::mode.eq(mode)))
        .returning(sync_logs::id)
        .get_result(conn)
        .await
}

/// Closes the `running` rows of `sync_type` as `failed`: runs whose process stopped (a crash, a
/// kill) or lost the database before it could record their end. Call it only while holding the
/// object's run lock, when no run of it can be in progress anywhere. Returns the rows closed.
pub async fn fail_abandoned(conn: &mut AsyncPgConnection, sync_type: &str) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE sync_logs SET status = 'failed', completed_at = now(), error_details = jsonb_build_object( \
           'error', 'interrupted: the process stopped or lost the database before recording the end of the run') \
         WHERE portal_id = hubspot_sync_portal() AND sync_type = $1 AND status = 'running' AND mode <> 'audit'",
    )
    .bind::<Text, _>(sync_type)
    .execute(conn)
    .await
}

/// Finishes a running row once; a second call changes nothing and returns `None`.
pub async fn finish_run(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    outcome: &RunOutcome,
) -> QueryResult<Option<RunStatus>> {
    let status = RunStatus::of(outcome);
    let details = match (&outcome.fatal_error, &outcome.details) {
        (None, None) => None,
        (error, details) => Some(serde_json::json!({ "error": error, "details": details })),
    };
    let updated = diesel::sql_query(
        "UPDATE sync_logs SET status = $2, completed_at = now(), \
         duration_ms = greatest(0, (extract(epoch FROM (now() - started_at)) * 1000)::bigint), \
         records_processed = $3, records_failed = $4, error_details = $5 \
         WHERE id = $1 AND status = 'running'",
    )
    .bind::<SqlUuid, _>(id)
    .bind::<Text, _>(status)
    .bind::<Integer, _>(outcome.records_processed)
    .bind::<Integer, _>(outcome.records_failed)
    .bind::<Nullable<Jsonb>, _>(details)
    .execute(conn)
    .await?;
    Ok((updated == 1).then_some(status))
}

/// One row of `get_latest_sync_status()`.
#[derive(Clone, Debug, PartialEq, Serialize, QueryableByName)]
pub struct LatestStatus {
    #[diesel(sql_type = Text)]
    pub sync_type: String,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    pub last_sync_time: Option<DateTime<Utc>>,
    #[diesel(sql_type = Text)]
    pub status: RunStatus,
    #[diesel(sql_type = Integer)]
    pub records_processed: i32,
    #[diesel(sql_type = Integer)]
    pub records_failed: i32,
    #[diesel(sql_type = Nullable<diesel::sql_types::BigInt>)]
    pub duration_ms: Option<i64>,
}

/// The latest run per sync type of the session's portal, ordered by type.
pub async fn latest_status(conn: &mut AsyncPgConnection) -> QueryResult<Vec<LatestStatus>> {
    diesel::sql_query("SELECT * FROM get_latest_sync_status(hubspot_sync_portal()) ORDER BY sync_type").load(conn).await
}

/// A whole `sync_logs` row.
#[derive(Clone, Debug, PartialEq, Serialize, Queryable, Selectable)]
#[diesel(table_name = sync_logs)]
pub struct SyncLog {
    pub id: Uuid,
    pub platform: String,
    pub sync_type: String,
    pub status: RunStatus,
    pub trigger: RunTrigger,
    pub mode: RunMode,
    pub started_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub records_processed: i32,
    pub records_failed: i32,
    pub error_details: Option<serde_json::Value>,
}

/// The newest runs, optionally of one sync type only.
pub async fn recent(conn: &mut AsyncPgConnection, sync_type: Option<&str>, limit: i64) -> QueryResult<Vec<SyncLog>> {
    let mut query = sync_logs::table
        .select(SyncLog::as_select())
        .filter(in_session_portal())
        .order(sync_logs::started_at.desc())
        .limit(limit)
        .into_boxed();
    if let Some(sync_type) = sync_type {
        query = query.filter(sync_logs::sync_type.eq(sync_type.to_owned()));
    }
    query.load(conn).await
}

/// The last successful (or partial) run of a type (audits are not runs), if any: "no history" means a full sync.
pub async fn last_good_run(conn: &mut AsyncPgConnection, sync_type: &str) -> QueryResult<Option<SyncLog>> {
    sync_logs::table
        .select(SyncLog::as_select())
        .filter(in_session_portal())
        .filter(sync_logs::sync_type.eq(sync_type))
        .filter(sync_logs::mode.ne(RunMode::Audit))
        .filter(sync_logs::status.eq_any([RunStatus::Success, RunStatus::Partial]))
        .order(sync_logs::started_at.desc())
        .first(conn)
        .await
        .optional()
}

/// When the newest run of a type (of one mode only, with `mode`) started, whatever its outcome.
pub async fn last_started(
    conn: &mut AsyncPgConnection,
    sync_type: &str,
    mode: Option<RunMode>,
) -> QueryResult<Option<DateTime<Utc>>> {
    let mut query = sync_logs::table
        .select(diesel::dsl::max(sync_logs::started_at))
        .filter(in_session_portal())
        .filter(sync_logs::sync_type.eq(sync_type.to_owned()))
        .into_boxed();
    if let Some(mode) = mode {
        query = query.filter(sync_logs::mode.eq(mode));
    }
    query.first(conn).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(processed: i32, failed: i32, fatal: bool) -> RunOutcome {
        RunOutcome {
            records_processed: processed,
            records_failed: failed,
            fatal_error: fatal.then(|| "HubSpot answered 500".to_owned()),
            details: None,
        }
    }

    #[test]
    fn status_rules() {
        assert_eq!(RunStatus::of(&outcome(0, 0, false)), RunStatus::Success);
        assert_eq!(RunStatus::of(&outcome(100, 0, false)), RunStatus::Success);
        assert_eq!(RunStatus::of(&outcome(100, 3, false)), RunStatus::Partial);
        assert_eq!(RunStatus::of(&outcome(3, 3, false)), RunStatus::Failed);
        assert_eq!(RunStatus::of(&outcome(100, 0, true)), RunStatus::Failed);
    }

    #[test]
    fn names_round_trip() {
        for t in [RunTrigger::Schedule, RunTrigger::Manual, RunTrigger::Startup, RunTrigger::Sql] {
            assert_eq!(RunTrigger::parse(t.as_str()), Some(t));
        }
        assert_eq!(RunMode::parse("full"), Some(RunMode::Full));
        assert_eq!(RunStatus::parse("bogus"), None);
        assert_eq!(RunStatus::Partial.to_string(), "partial");
    }

    #[test]
    fn serialised_as_the_stored_text() {
        let json = serde_json::to_value((RunStatus::Running, RunTrigger::Sql, RunMode::Incremental)).unwrap();
        assert_eq!(json, serde_json::json!(["running", "sql", "incremental"]));
    }
}

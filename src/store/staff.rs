//! `staff`: HubSpot owners. `role` is set from `OWNER_ROLE` when an owner first appears and never
//! overwritten, so roles edited in the database survive later syncs.
//!
//! **Leaving.** `archived` is true while HubSpot lists the owner among its archived owners, or no
//! longer lists it at all (a complete owners run marks those: [`archive_unlisted`]); an owner that
//! comes back is live again at its next write. `archived_at` is when this copy first saw the owner
//! not live, `NULL` while it is live.
//!
//! **`created_at`** is HubSpot's `createdAt`. HubSpot may omit it; the row then keeps the earliest
//! value it ever had (at first sight, the time it was first written), so a run never moves it
//! later, and a real `createdAt` arriving later (always earlier than the first sight) replaces it.

use chrono::{DateTime, Utc};
use diesel::sql_types::{Array, BigInt, Bool, Nullable, Text, Timestamptz};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::records::in_id_order;

/// An owner as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct StaffRow {
    /// HubSpot owner id (the value in `hubspot_owner_id`).
    pub id: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub user_id: Option<i64>,
    pub archived: bool,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

/// Rows go in id order (bound sorted, kept by the `ORDER BY`), so concurrent writers never
/// deadlock on each other (see `store::records`).
const UPSERT: &str = "INSERT INTO staff AS t (id, name, email, role, first_name, last_name, user_id, archived, \
         archived_at, created_at, updated_at, synced_at) \
     SELECT u.id, u.name, u.email, $10, u.first_name, u.last_name, u.user_id, u.archived, \
         CASE WHEN u.archived THEN now() END, coalesce(u.created_at, now()), u.updated_at, now() \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[], $7::bool[], \
         $8::timestamptz[], $9::timestamptz[]) \
         AS u(id, name, email, first_name, last_name, user_id, archived, created_at, updated_at) \
     ORDER BY u.id \
     ON CONFLICT (portal_id, id) DO UPDATE SET name = excluded.name, email = excluded.email, \
         first_name = excluded.first_name, last_name = excluded.last_name, user_id = excluded.user_id, \
         archived = excluded.archived, \
         archived_at = CASE WHEN excluded.archived THEN coalesce(t.archived_at, excluded.archived_at) END, \
         created_at = least(t.created_at, excluded.created_at), updated_at = excluded.updated_at, \
         synced_at = excluded.synced_at";

/// Writes owners (all of them fit one statement: accounts have hundreds, not millions).
pub async fn upsert_batch(conn: &mut AsyncPgConnection, rows: &[StaffRow], role: &str) -> diesel::QueryResult<usize> {
    let mut rows = rows.to_vec();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    rows.dedup_by(|a, b| a.id == b.id);
    diesel::sql_query(UPSERT)
        .bind::<Array<Text>, _>(rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.name.as_deref()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.email.as_deref()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.first_name.as_deref()).collect::<Vec<_>>())
        .bind::<Array<Nullable<Text>>, _>(rows.iter().map(|r| r.last_name.as_deref()).collect::<Vec<_>>())
        .bind::<Array<Nullable<BigInt>>, _>(rows.iter().map(|r| r.user_id).collect::<Vec<_>>())
        .bind::<Array<Bool>, _>(rows.iter().map(|r| r.archived).collect::<Vec<_>>())
        .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|r| r.created_at).collect::<Vec<_>>())
        .bind::<Array<Nullable<Timestamptz>>, _>(rows.iter().map(|r| r.updated_at).collect::<Vec<_>>())
        .bind::<Text, _>(role)
        .execute(conn)
        .await
}

/// What marking owners archived sets.
const ARCHIVE: &str = "archived = true, archived_at = coalesce(archived_at, now()), synced_at = now()";

/// Marks owners archived: HubSpot has them neither active nor archived. Returns rows changed.
pub async fn archive(conn: &mut AsyncPgConnection, ids: &[String]) -> diesel::QueryResult<usize> {
    diesel::sql_query(in_id_order("staff", "id", ARCHIVE, "id = ANY($1) AND NOT archived"))
        .bind::<Array<Text>, _>(ids)
        .execute(conn)
        .await
}

/// After a complete pass over both of HubSpot's owner lists (active and archived) that returned
/// `listed`: marks archived every live owner not among them (HubSpot deleted it). Returns rows
/// changed.
pub async fn archive_unlisted(conn: &mut AsyncPgConnection, listed: &[String]) -> diesel::QueryResult<usize> {
    diesel::sql_query(in_id_order("staff", "id", ARCHIVE, "NOT archived AND NOT (id = ANY($1))"))
        .bind::<Array<Text>, _>(listed)
        .execute(conn)
        .await
}

//! `privacy_deletions`: erasing a contact for privacy (GDPR) so that nothing of the person is
//! left, and nothing can bring it back.
//!
//! **What goes.** The erased ids and every id linked to them by a merge, transitively: rows
//! merged into an erased row (`merged_into`, along whole chains: A and B merged into C, C and D
//! into E, erasing E takes A to E), the record an erased row was merged into, and every id listed
//! in `hs_merged_object_ids` of a row in the set (an alias whose merge webhook was missed and
//! that a full pass archived with `merged_into` NULL). For all of them: the `contacts` rows,
//! their `contact_owner_history`, their `associations` (from and to them), their entries in the failed-record lists of the contacts'
//! `sync_logs.error_details`, and the events naming them in the account's webhook batches
//! waiting in `webhook_handoff` (`store::cluster::scrub_handed_over`); every one of those ids is recorded in `privacy_deletions`.
//!
//! **What cannot come back.** The purge holds [`PURGE_LOCK`] exclusively for its transaction;
//! the `contacts_refuse_erased` trigger (migration `privacy_guard`) takes it shared before every
//! row inserted into `contacts` and then checks `privacy_deletions` with a fresh snapshot. So an
//! upsert that began before the purge committed either finished before the purge started (and
//! the purge removes what it wrote) or waits for it and then skips the erased ids; so does a row
//! that lists an erased id among those merged into it. Contact writes run in READ COMMITTED (the
//! default), where each query of the trigger sees what committed before it ran.

use std::collections::BTreeSet;

use diesel::sql_types::{Array, Integer, Nullable, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

pub use super::locks::PURGE_LOCK;

#[derive(diesel::QueryableByName)]
struct Linked {
    #[diesel(sql_type = Text)]
    id: String,
    #[diesel(sql_type = Nullable<Text>)]
    merged_into: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    merged_ids: Option<String>,
}

/// Every id linked to `ids` by merges, `ids` included (see the module docs).
async fn closure(conn: &mut AsyncPgConnection, ids: &[String]) -> diesel::QueryResult<BTreeSet<String>> {
    let mut all: BTreeSet<String> = ids.iter().map(|id| id.trim().to_owned()).filter(|id| !id.is_empty()).collect();
    let mut frontier: Vec<String> = all.iter().cloned().collect();
    while !frontier.is_empty() {
        let rows: Vec<Linked> = diesel::sql_query(
            "SELECT hubspot_contact_id AS id, merged_into, properties->>'hs_merged_object_ids' AS merged_ids \
             FROM contacts WHERE portal_id = hubspot_sync_portal() \
             AND (hubspot_contact_id = ANY($1) OR merged_into = ANY($1))",
        )
        .bind::<Array<Text>, _>(&frontier)
        .load(conn)
        .await?;
        let mut next = Vec::new();
        for row in rows {
            let listed = row.merged_ids.iter().flat_map(|list| list.split(';')).map(str::trim);
            let linked = std::iter::once(row.id.as_str()).chain(row.merged_into.as_deref()).chain(listed);
            for id in linked.filter(|id| !id.is_empty()) {
                if all.insert(id.to_owned()) {
                    next.push(id.to_owned());
                }
            }
        }
        frontier = next;
    }
    Ok(all)
}

/// Erases contacts `ids` and everything linked to them (see the module docs), in one
/// transaction. Idempotent: the second of HubSpot's two events for one deletion changes nothing.
/// Returns the number of `contacts` rows removed.
pub async fn erase(conn: &mut AsyncPgConnection, ids: &[String]) -> diesel::QueryResult<usize> {
    let ids = ids.to_vec();
    conn.transaction(async move |conn| {
        diesel::sql_query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind::<Integer, _>(PURGE_LOCK.0)
            .bind::<Integer, _>(PURGE_LOCK.1)
            .execute(conn)
            .await?;
        let all: Vec<String> = closure(conn, &ids).await?.into_iter().collect();
        diesel::sql_query(
            "INSERT INTO privacy_deletions (hubspot_contact_id) SELECT id FROM unnest($1::text[]) AS id ORDER BY id \
             ON CONFLICT DO NOTHING",
        )
        .bind::<Array<Text>, _>(&all)
        .execute(conn)
        .await?;
        diesel::sql_query("DELETE FROM contact_owner_history WHERE portal_id = hubspot_sync_portal() AND hubspot_contact_id = ANY($1)")
            .bind::<Array<Text>, _>(&all)
            .execute(conn)
            .await?;
        diesel::sql_query(
            "DELETE FROM owner_change_deliveries WHERE portal_id = hubspot_sync_portal() AND object = 'contacts' \
             AND hubspot_id = ANY($1)",
        )
            .bind::<Array<Text>, _>(&all)
            .execute(conn)
            .await?;
        let removed = diesel::sql_query("DELETE FROM contacts WHERE portal_id = hubspot_sync_portal() AND hubspot_contact_id = ANY($1)")
            .bind::<Array<Text>, _>(&all)
            .execute(conn)
            .await?;
        // Its associations name it: they go too (store::associations::erase).
        super::associations::erase(conn, "0-1", &all).await?;
        // A parked record's error text can quote the person's values.
        diesel::sql_query(
            "DELETE FROM sync_failures WHERE portal_id = hubspot_sync_portal() AND object = 'contacts' \
             AND hubspot_id = ANY($1)",
        )
            .bind::<Array<Text>, _>(&all)
            .execute(conn)
            .await?;
        scrub_run_details(conn, &all).await?;
        // Webhook batches waiting for this account's lease holder can name the person too.
        super::cluster::scrub_handed_over(conn, &all).await?;
        Ok(removed)
    })
    .await
}

/// The lists of failed records in `error_details` that can name an id (with a reason that may
/// quote a value).
const LISTS: &str = "ARRAY['failed_ids', 'store_failures', 'unreadable_records']";

/// Removes `ids` from the failed-record lists of the contacts' runs.
async fn scrub_run_details(conn: &mut AsyncPgConnection, ids: &[String]) -> diesel::QueryResult<usize> {
    let names = "coalesce(e->>'id', e #>> '{}') = ANY($1)";
    let sql = format!(
        "UPDATE sync_logs SET error_details = ( \
             SELECT jsonb_object_agg(k, CASE WHEN k = ANY({LISTS}) AND jsonb_typeof(v) = 'array' \
                 THEN coalesce((SELECT jsonb_agg(e) FROM jsonb_array_elements(v) e WHERE NOT {names}), '[]'::jsonb) \
                 ELSE v END) \
             FROM jsonb_each(error_details) AS f(k, v)) \
         WHERE portal_id = hubspot_sync_portal() AND sync_type = 'contacts' \
         AND jsonb_typeof(error_details) = 'object' AND EXISTS ( \
             SELECT 1 FROM jsonb_each(CASE WHEN jsonb_typeof(error_details) = 'object' THEN error_details \
                 ELSE '{{}}'::jsonb END) AS f(k, v), \
             jsonb_array_elements(CASE WHEN k = ANY({LISTS}) AND jsonb_typeof(v) = 'array' THEN v \
                 ELSE '[]'::jsonb END) AS e \
             WHERE {names})"
    );
    diesel::sql_query(sql).bind::<Array<Text>, _>(ids).execute(conn).await
}

//! The diesel schema of the tables in `migrations/`, maintained by hand (not generated: the
//! diesel CLI is not part of the build). Change a migration first, then this file, in the same
//! commit; the integration test `store::schema_module_matches_the_migrated_database` reads the
//! tables through it against a freshly migrated database, so a drifted name or type fails the
//! suite. `diesel.toml` holds the settings should someone regenerate it with `diesel
//! print-schema`.

pub mod sql_types {
    /// The `deal_status` enum: open, won, lost.
    #[derive(diesel::query_builder::QueryId, diesel::sql_types::SqlType)]
    #[diesel(postgres_type(name = "deal_status"))]
    pub struct DealStatus;
}

diesel::table! {
    /// HubSpot calls (object type 0-48), one row per HubSpot id.
    calls (portal_id, hubspot_call_id) {
        hubspot_call_id -> Text,
        title -> Nullable<Text>,
        direction -> Nullable<Text>,
        disposition -> Nullable<Text>,
        status -> Nullable<Text>,
        duration_ms -> Nullable<Int8>,
        called_at -> Nullable<Timestamptz>,
        owner_id -> Nullable<Text>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        archived -> Bool,
        archived_at -> Nullable<Timestamptz>,
        merged_into -> Nullable<Text>,
        properties -> Jsonb,
        synced_at -> Timestamptz,
        portal_id -> Int8,
    }
}

diesel::table! {
    contact_owner_history (id) {
        id -> Int8,
        hubspot_contact_id -> Text,
        previous_owner_id -> Nullable<Text>,
        new_owner_id -> Nullable<Text>,
        changed_at -> Timestamptz,
        recorded_at -> Timestamptz,
        portal_id -> Int8,
    }
}

diesel::table! {
    deal_owner_history (id) {
        id -> Int8,
        hubspot_deal_id -> Text,
        previous_owner_id -> Nullable<Text>,
        new_owner_id -> Nullable<Text>,
        changed_at -> Timestamptz,
        recorded_at -> Timestamptz,
        portal_id -> Int8,
    }
}

diesel::table! {
    /// HubSpot contacts (object type 0-1), one row per HubSpot id.
    contacts (portal_id, hubspot_contact_id) {
        hubspot_contact_id -> Text,
        email -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        phone -> Nullable<Text>,
        owner_id -> Nullable<Text>,
        lifecycle_stage -> Nullable<Text>,
        status -> Nullable<Text>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        archived -> Bool,
        archived_at -> Nullable<Timestamptz>,
        merged_into -> Nullable<Text>,
        properties -> Jsonb,
        synced_at -> Timestamptz,
        portal_id -> Int8,
    }
}

diesel::table! {
    use diesel::sql_types::*;
    use super::sql_types::DealStatus;

    /// HubSpot deals (object type 0-3), one row per HubSpot id.
    deals (portal_id, hubspot_deal_id) {
        hubspot_deal_id -> Text,
        deal_name -> Nullable<Text>,
        deal_value -> Nullable<Numeric>,
        stage -> Nullable<Text>,
        status -> Nullable<DealStatus>,
        close_date -> Nullable<Timestamptz>,
        closer_id -> Nullable<Text>,
        pipeline -> Nullable<Text>,
        created_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        archived -> Bool,
        archived_at -> Nullable<Timestamptz>,
        merged_into -> Nullable<Text>,
        properties -> Jsonb,
        synced_at -> Timestamptz,
        portal_id -> Int8,
    }
}

diesel::table! {
    privacy_deletions (portal_id, hubspot_contact_id) {
        hubspot_contact_id -> Text,
        deleted_at -> Timestamptz,
        portal_id -> Int8,
    }
}

diesel::table! {
    /// HubSpot owners; id is the owner id used in hubspot_owner_id.
    staff (portal_id, id) {
        id -> Text,
        name -> Nullable<Text>,
        email -> Nullable<Text>,
        role -> Text,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        user_id -> Nullable<Int8>,
        archived -> Bool,
        created_at -> Timestamptz,
        updated_at -> Nullable<Timestamptz>,
        synced_at -> Timestamptz,
        archived_at -> Nullable<Timestamptz>,
        portal_id -> Int8,
    }
}

diesel::table! {
    sync_logs (id) {
        id -> Uuid,
        platform -> Text,
        sync_type -> Text,
        status -> Text,
        trigger -> Text,
        mode -> Text,
        started_at -> Timestamptz,
        completed_at -> Nullable<Timestamptz>,
        duration_ms -> Nullable<Int8>,
        records_processed -> Int4,
        records_failed -> Int4,
        error_details -> Nullable<Jsonb>,
        portal_id -> Int8,
    }
}

diesel::table! {
    /// Parked records (`store::sync_failures`).
    sync_failures (portal_id, object, hubspot_id) {
        object -> Text,
        hubspot_id -> Text,
        error -> Text,
        first_seen -> Timestamptz,
        last_seen -> Timestamptz,
        attempts -> Int4,
        next_attempt -> Timestamptz,
        updated_at -> Nullable<Timestamptz>,
        portal_id -> Int8,
    }
}

diesel::table! {
    sync_state (portal_id, sync_type) {
        sync_type -> Text,
        watermark -> Nullable<Timestamptz>,
        full_cursor -> Nullable<Text>,
        full_started_at -> Nullable<Timestamptz>,
        full_completed_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        full_failed_ids -> Array<Text>,
        full_earliest_failed -> Nullable<Timestamptz>,
        full_stuck_runs -> Int4,
        portal_id -> Int8,
    }
}

diesel::table! {
    /// Digest of each accepted webhook delivery: SHA-256 of its v1/v2 signature, itself a hash of the client secret and the body; pruned after a few days: a v1/v2-only repeat of one is a replay.
    webhook_deliveries (digest) {
        digest -> Bytea,
        accepted_at -> Timestamptz,
    }
}

diesel::table! {
    /// One row once a valid v3 webhook signature has been seen: v1/v2 are refused from then on (HUBSPOT_REQUIRE_V3=auto).
    webhook_v3_seen (portal_id) {
        singleton -> Bool,
        first_seen_at -> Timestamptz,
        portal_id -> Int8,
    }
}

diesel::table! {
    /// HubSpot accounts (portals) this database copies; secrets named by environment variable, never stored.
    accounts (portal_id) {
        portal_id -> Int8,
        name -> Text,
        is_default -> Bool,
        token_env -> Nullable<Text>,
        client_secret_env -> Nullable<Text>,
        api_base -> Nullable<Text>,
        requests_per_10s -> Nullable<Int4>,
        schedule_incremental -> Nullable<Text>,
        schedule_full -> Nullable<Text>,
        created_at -> Timestamptz,
    }
}

diesel::allow_tables_to_appear_in_same_query!(
    accounts,
    calls,
    contact_owner_history,
    contacts,
    deal_owner_history,
    deals,
    privacy_deletions,
    staff,
    sync_failures,
    sync_logs,
    sync_state,
    webhook_deliveries,
    webhook_v3_seen,
);

-- Several HubSpot accounts (issue 20). Every synced and bookkeeping table carries the HubSpot
-- portal id of the account it belongs to, and uniqueness is per portal.
--
-- An existing single-account database migrates in place, without a re-sync: `portal_id` is added
-- with the constant default 0 (no table rewrite: PostgreSQL stores the default once), 0 being the
-- default account's portal id until it is known. `hubspot-sync migrate` and `serve` rewrite 0 to
-- `HUBSPOT_PORTAL_ID` once it is set (store::accounts::adopt_default_portal), in every table, in
-- one transaction.
--
-- Scope: every query of the store reads and writes the rows of `hubspot_sync_portal()`, the
-- session's `hubspot_sync.portal_id` (set on the connections of each account's pool, or for one
-- transaction with `SET LOCAL`), else the default account; new rows take it as their default.
CREATE TABLE accounts (
    portal_id bigint PRIMARY KEY CHECK (portal_id >= 0),
    name text NOT NULL UNIQUE CHECK (name <> ''),
    is_default boolean NOT NULL DEFAULT false,
    token_env text CHECK (token_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    client_secret_env text CHECK (client_secret_env ~ '^[A-Za-z_][A-Za-z0-9_]*$'),
    api_base text,
    requests_per_10s integer CHECK (requests_per_10s > 0),
    schedule_incremental text,
    schedule_full text,
    created_at timestamptz NOT NULL DEFAULT now(),
    CHECK (is_default OR token_env IS NOT NULL)
);
CREATE UNIQUE INDEX accounts_one_default ON accounts (is_default) WHERE is_default;
COMMENT ON TABLE accounts IS 'HubSpot accounts (portals) this database copies. Secrets are named by environment variable (token_env, client_secret_env), never stored. The default account (is_default) is the one of the process settings (HUBSPOT_ACCESS_TOKEN, ...): its NULL columns mean those settings; its portal_id is 0 until HUBSPOT_PORTAL_ID is known.';
INSERT INTO accounts (portal_id, name, is_default) VALUES (0, 'default', true);

CREATE FUNCTION hubspot_sync_portal() RETURNS bigint
LANGUAGE sql STABLE AS $$
    SELECT coalesce(nullif(current_setting('hubspot_sync.portal_id', true), '')::bigint,
                    (SELECT a.portal_id FROM accounts a WHERE a.is_default))
$$;
COMMENT ON FUNCTION hubspot_sync_portal() IS 'The portal id the session reads and writes: setting hubspot_sync.portal_id, else the default account''s.';

-- The column, then its default for new rows (a non-constant default on ADD COLUMN would rewrite
-- the table).
ALTER TABLE contacts ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE contacts ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
ALTER TABLE contacts DROP CONSTRAINT contacts_pkey, ADD PRIMARY KEY (portal_id, hubspot_contact_id);

ALTER TABLE deals ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE deals ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
ALTER TABLE deals DROP CONSTRAINT deals_pkey, ADD PRIMARY KEY (portal_id, hubspot_deal_id);

ALTER TABLE calls ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE calls ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
ALTER TABLE calls DROP CONSTRAINT calls_pkey, ADD PRIMARY KEY (portal_id, hubspot_call_id);

ALTER TABLE staff ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE staff ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
ALTER TABLE staff DROP CONSTRAINT staff_pkey, ADD PRIMARY KEY (portal_id, id);

ALTER TABLE privacy_deletions ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE privacy_deletions ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
ALTER TABLE privacy_deletions DROP CONSTRAINT privacy_deletions_pkey, ADD PRIMARY KEY (portal_id, hubspot_contact_id);

ALTER TABLE associations ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE associations ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
ALTER TABLE associations DROP CONSTRAINT associations_pkey,
    ADD PRIMARY KEY (portal_id, from_type, from_id, to_type, to_id, type_id);
DROP INDEX associations_to_idx;
CREATE INDEX associations_to_idx ON associations (portal_id, to_type, to_id, from_type) WHERE NOT removed;

ALTER TABLE sync_logs ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE sync_logs ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
DROP INDEX sync_logs_type_started_idx;
CREATE INDEX sync_logs_type_started_idx ON sync_logs (portal_id, sync_type, started_at DESC);

ALTER TABLE sync_state ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE sync_state ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
ALTER TABLE sync_state DROP CONSTRAINT sync_state_pkey, ADD PRIMARY KEY (portal_id, sync_type);

ALTER TABLE sync_failures ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE sync_failures ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
ALTER TABLE sync_failures DROP CONSTRAINT sync_failures_object_hubspot_id_key,
    ADD CONSTRAINT sync_failures_object_hubspot_id_key UNIQUE (portal_id, object, hubspot_id);
DROP INDEX sync_failures_due;
CREATE INDEX sync_failures_due ON sync_failures (portal_id, object, next_attempt);

ALTER TABLE contact_owner_history ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE contact_owner_history ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
DROP INDEX contact_owner_history_contact_idx;
CREATE INDEX contact_owner_history_contact_idx ON contact_owner_history (portal_id, hubspot_contact_id, changed_at);

ALTER TABLE deal_owner_history ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE deal_owner_history ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
DROP INDEX deal_owner_history_deal_idx;
CREATE INDEX deal_owner_history_deal_idx ON deal_owner_history (portal_id, hubspot_deal_id, changed_at);

ALTER TABLE owner_change_deliveries ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE owner_change_deliveries ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();

-- The v3-seen fact is per account (each account's app signs its own deliveries).
ALTER TABLE webhook_v3_seen ADD COLUMN portal_id bigint NOT NULL DEFAULT 0;
ALTER TABLE webhook_v3_seen ALTER COLUMN portal_id SET DEFAULT hubspot_sync_portal();
ALTER TABLE webhook_v3_seen DROP CONSTRAINT webhook_v3_seen_pkey, ADD PRIMARY KEY (portal_id);
COMMENT ON TABLE webhook_v3_seen IS 'One row per account once a valid v3 webhook signature has been seen from it: v1/v2 are refused from then on (HUBSPOT_REQUIRE_V3=auto).';

-- The views join within one portal and say which.
CREATE OR REPLACE VIEW deal_contacts AS
    SELECT from_id AS hubspot_deal_id, to_id AS hubspot_contact_id,
           bool_or(is_primary) AS is_primary,
           array_remove(array_agg(DISTINCT label), NULL) AS labels,
           max(updated_at) AS updated_at,
           portal_id
    FROM associations
    WHERE from_type = '0-3' AND to_type = '0-1' AND NOT removed
    GROUP BY portal_id, from_id, to_id;

CREATE OR REPLACE VIEW call_contacts AS
    SELECT from_id AS hubspot_call_id, to_id AS hubspot_contact_id,
           bool_or(is_primary) AS is_primary,
           array_remove(array_agg(DISTINCT label), NULL) AS labels,
           max(updated_at) AS updated_at,
           portal_id
    FROM associations
    WHERE from_type = '0-48' AND to_type = '0-1' AND NOT removed
    GROUP BY portal_id, from_id, to_id;

CREATE OR REPLACE VIEW call_deals AS
    SELECT from_id AS hubspot_call_id, to_id AS hubspot_deal_id,
           bool_or(is_primary) AS is_primary,
           array_remove(array_agg(DISTINCT label), NULL) AS labels,
           max(updated_at) AS updated_at,
           portal_id
    FROM associations
    WHERE from_type = '0-48' AND to_type = '0-3' AND NOT removed
    GROUP BY portal_id, from_id, to_id;

-- Triggers: an erased contact is erased in its own portal; owner history and the owner-change
-- outbox carry the portal of the row that changed.
CREATE OR REPLACE FUNCTION refuse_erased_contact() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(18515, 200);
    IF EXISTS (SELECT 1 FROM privacy_deletions p
               WHERE p.portal_id = NEW.portal_id AND p.hubspot_contact_id = NEW.hubspot_contact_id)
       OR EXISTS (SELECT 1 FROM privacy_deletions p
                  WHERE p.portal_id = NEW.portal_id
                    AND p.hubspot_contact_id = ANY (string_to_array(NEW.properties->>'hs_merged_object_ids', ';'))) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION refuse_erased_edge() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(18515, 200);
    IF EXISTS (SELECT 1 FROM privacy_deletions p
               WHERE p.portal_id = NEW.portal_id
                 AND ((NEW.from_type = '0-1' AND p.hubspot_contact_id = NEW.from_id)
                      OR (NEW.to_type = '0-1' AND p.hubspot_contact_id = NEW.to_id))) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;

DROP FUNCTION announce_owner_change(text, text, text, text, timestamptz);
CREATE FUNCTION announce_owner_change(portal bigint, object text, id text, old_owner text, new_owner text, changed timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hubspot_owner_changed', json_build_object(
        'object', object, 'id', id, 'old_owner_id', old_owner, 'new_owner_id', new_owner,
        'changed_at', changed, 'portal_id', portal)::text);
    INSERT INTO owner_change_deliveries (portal_id, object, hubspot_id, old_owner_id, new_owner_id, changed_at)
    VALUES (portal, object, id, old_owner, new_owner, changed);
END;
$$;

CREATE OR REPLACE FUNCTION record_contact_owner_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_owner_history (portal_id, hubspot_contact_id, previous_owner_id, new_owner_id, changed_at)
    VALUES (NEW.portal_id, NEW.hubspot_contact_id, OLD.owner_id, NEW.owner_id, NEW.updated_at);
    PERFORM announce_owner_change(NEW.portal_id, 'contacts', NEW.hubspot_contact_id, OLD.owner_id, NEW.owner_id, NEW.updated_at);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION record_deal_owner_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deal_owner_history (portal_id, hubspot_deal_id, previous_owner_id, new_owner_id, changed_at)
    VALUES (NEW.portal_id, NEW.hubspot_deal_id, OLD.closer_id, NEW.closer_id, NEW.updated_at);
    PERFORM announce_owner_change(NEW.portal_id, 'deals', NEW.hubspot_deal_id, OLD.closer_id, NEW.closer_id, NEW.updated_at);
    RETURN NULL;
END;
$$;

-- The SQL interface: an optional portal id (NULL: the default account for the status, every
-- account for a trigger).
DROP FUNCTION get_latest_sync_status();
CREATE FUNCTION get_latest_sync_status(portal_id bigint DEFAULT NULL)
RETURNS TABLE (
    sync_type text,
    last_sync_time timestamptz,
    status text,
    records_processed integer,
    records_failed integer,
    duration_ms bigint
)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (l.sync_type)
           l.sync_type,
           coalesce(l.completed_at, l.started_at),
           l.status,
           l.records_processed,
           l.records_failed,
           l.duration_ms
    FROM sync_logs l
    WHERE l.platform = 'hubspot' AND l.mode NOT IN ('audit', 'maintenance')
      AND l.portal_id = coalesce($1, (SELECT a.portal_id FROM accounts a WHERE a.is_default))
    ORDER BY l.sync_type, l.started_at DESC
$$;

DROP FUNCTION trigger_hubspot_sync(text);
CREATE FUNCTION trigger_hubspot_sync(sync_type text, portal_id bigint DEFAULT NULL) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF sync_type IS NULL OR sync_type NOT IN ('contacts', 'deals', 'calls', 'owners', 'associations', 'all') THEN
        RAISE EXCEPTION 'unknown sync type %: expected contacts, deals, calls, owners, associations or all', quote_nullable(sync_type)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF portal_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.portal_id = trigger_hubspot_sync.portal_id) THEN
        RAISE EXCEPTION 'unknown portal id %: see hubspot-sync accounts list', portal_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_notify('hubspot_sync', json_build_object('sync_type', sync_type, 'portal_id', portal_id)::text);
END;
$$;

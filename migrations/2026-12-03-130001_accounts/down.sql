-- Back to one account: refused while more than one account exists (ids would collide).
DO $$
BEGIN
    IF (SELECT count(*) FROM accounts) > 1 THEN
        RAISE EXCEPTION 'more than one HubSpot account: remove all but the default one first (hubspot-sync accounts remove)';
    END IF;
END;
$$;

DROP FUNCTION trigger_hubspot_sync(text, bigint);
CREATE FUNCTION trigger_hubspot_sync(sync_type text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF sync_type IS NULL OR sync_type NOT IN ('contacts', 'deals', 'calls', 'owners', 'all') THEN
        RAISE EXCEPTION 'unknown sync type %: expected contacts, deals, calls, owners or all', quote_nullable(sync_type)
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_notify('hubspot_sync', json_build_object('sync_type', sync_type)::text);
END;
$$;

DROP FUNCTION get_latest_sync_status(bigint);
CREATE FUNCTION get_latest_sync_status()
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
    ORDER BY l.sync_type, l.started_at DESC
$$;

CREATE OR REPLACE FUNCTION record_deal_owner_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deal_owner_history (hubspot_deal_id, previous_owner_id, new_owner_id, changed_at)
    VALUES (NEW.hubspot_deal_id, OLD.closer_id, NEW.closer_id, NEW.updated_at);
    PERFORM announce_owner_change('deals', NEW.hubspot_deal_id, OLD.closer_id, NEW.closer_id, NEW.updated_at);
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION record_contact_owner_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_owner_history (hubspot_contact_id, previous_owner_id, new_owner_id, changed_at)
    VALUES (NEW.hubspot_contact_id, OLD.owner_id, NEW.owner_id, NEW.updated_at);
    PERFORM announce_owner_change('contacts', NEW.hubspot_contact_id, OLD.owner_id, NEW.owner_id, NEW.updated_at);
    RETURN NULL;
END;
$$;

DROP FUNCTION announce_owner_change(bigint, text, text, text, text, timestamptz);
CREATE FUNCTION announce_owner_change(object text, id text, old_owner text, new_owner text, changed timestamptz)
RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('hubspot_owner_changed', json_build_object(
        'object', object, 'id', id, 'old_owner_id', old_owner, 'new_owner_id', new_owner,
        'changed_at', changed)::text);
    INSERT INTO owner_change_deliveries (object, hubspot_id, old_owner_id, new_owner_id, changed_at)
    VALUES (object, id, old_owner, new_owner, changed);
END;
$$;

CREATE OR REPLACE FUNCTION refuse_erased_edge() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(18515, 200);
    IF EXISTS (SELECT 1 FROM privacy_deletions p
               WHERE (NEW.from_type = '0-1' AND p.hubspot_contact_id = NEW.from_id)
                  OR (NEW.to_type = '0-1' AND p.hubspot_contact_id = NEW.to_id)) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;

CREATE OR REPLACE FUNCTION refuse_erased_contact() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock_shared(18515, 200);
    IF EXISTS (SELECT 1 FROM privacy_deletions p WHERE p.hubspot_contact_id = NEW.hubspot_contact_id)
       OR EXISTS (SELECT 1 FROM privacy_deletions p
                  WHERE p.hubspot_contact_id = ANY (string_to_array(NEW.properties->>'hs_merged_object_ids', ';'))) THEN
        RETURN NULL;
    END IF;
    RETURN NEW;
END;
$$;

DROP VIEW call_deals;
DROP VIEW call_contacts;
DROP VIEW deal_contacts;
CREATE VIEW deal_contacts AS
    SELECT from_id AS hubspot_deal_id, to_id AS hubspot_contact_id,
           bool_or(is_primary) AS is_primary,
           array_remove(array_agg(DISTINCT label), NULL) AS labels,
           max(updated_at) AS updated_at
    FROM associations
    WHERE from_type = '0-3' AND to_type = '0-1' AND NOT removed
    GROUP BY from_id, to_id;

CREATE VIEW call_contacts AS
    SELECT from_id AS hubspot_call_id, to_id AS hubspot_contact_id,
           bool_or(is_primary) AS is_primary,
           array_remove(array_agg(DISTINCT label), NULL) AS labels,
           max(updated_at) AS updated_at
    FROM associations
    WHERE from_type = '0-48' AND to_type = '0-1' AND NOT removed
    GROUP BY from_id, to_id;

CREATE VIEW call_deals AS
    SELECT from_id AS hubspot_call_id, to_id AS hubspot_deal_id,
           bool_or(is_primary) AS is_primary,
           array_remove(array_agg(DISTINCT label), NULL) AS labels,
           max(updated_at) AS updated_at
    FROM associations
    WHERE from_type = '0-48' AND to_type = '0-3' AND NOT removed
    GROUP BY from_id, to_id;

COMMENT ON TABLE webhook_v3_seen IS 'One row once a valid v3 webhook signature has been seen: v1/v2 are refused from then on (HUBSPOT_REQUIRE_V3=auto).';
DELETE FROM webhook_v3_seen a USING webhook_v3_seen b WHERE a.first_seen_at > b.first_seen_at;
ALTER TABLE webhook_v3_seen DROP CONSTRAINT webhook_v3_seen_pkey, ADD PRIMARY KEY (singleton);
ALTER TABLE webhook_v3_seen DROP COLUMN portal_id;

ALTER TABLE owner_change_deliveries DROP COLUMN portal_id;

DROP INDEX deal_owner_history_deal_idx;
ALTER TABLE deal_owner_history DROP COLUMN portal_id;
CREATE INDEX deal_owner_history_deal_idx ON deal_owner_history (hubspot_deal_id, changed_at);

DROP INDEX contact_owner_history_contact_idx;
ALTER TABLE contact_owner_history DROP COLUMN portal_id;
CREATE INDEX contact_owner_history_contact_idx ON contact_owner_history (hubspot_contact_id, changed_at);

DROP INDEX sync_failures_due;
ALTER TABLE sync_failures DROP CONSTRAINT sync_failures_object_hubspot_id_key;
ALTER TABLE sync_failures DROP COLUMN portal_id;
ALTER TABLE sync_failures ADD CONSTRAINT sync_failures_object_hubspot_id_key UNIQUE (object, hubspot_id);
CREATE INDEX sync_failures_due ON sync_failures (object, next_attempt);

ALTER TABLE sync_state DROP CONSTRAINT sync_state_pkey;
ALTER TABLE sync_state DROP COLUMN portal_id;
ALTER TABLE sync_state ADD PRIMARY KEY (sync_type);

DROP INDEX sync_logs_type_started_idx;
ALTER TABLE sync_logs DROP COLUMN portal_id;
CREATE INDEX sync_logs_type_started_idx ON sync_logs (sync_type, started_at DESC);

DROP INDEX associations_to_idx;
ALTER TABLE associations DROP CONSTRAINT associations_pkey;
ALTER TABLE associations DROP COLUMN portal_id;
ALTER TABLE associations ADD PRIMARY KEY (from_type, from_id, to_type, to_id, type_id);
CREATE INDEX associations_to_idx ON associations (to_type, to_id, from_type) WHERE NOT removed;

ALTER TABLE privacy_deletions DROP CONSTRAINT privacy_deletions_pkey;
ALTER TABLE privacy_deletions DROP COLUMN portal_id;
ALTER TABLE privacy_deletions ADD PRIMARY KEY (hubspot_contact_id);

ALTER TABLE staff DROP CONSTRAINT staff_pkey;
ALTER TABLE staff DROP COLUMN portal_id;
ALTER TABLE staff ADD PRIMARY KEY (id);

ALTER TABLE calls DROP CONSTRAINT calls_pkey;
ALTER TABLE calls DROP COLUMN portal_id;
ALTER TABLE calls ADD PRIMARY KEY (hubspot_call_id);

ALTER TABLE deals DROP CONSTRAINT deals_pkey;
ALTER TABLE deals DROP COLUMN portal_id;
ALTER TABLE deals ADD PRIMARY KEY (hubspot_deal_id);

ALTER TABLE contacts DROP CONSTRAINT contacts_pkey;
ALTER TABLE contacts DROP COLUMN portal_id;
ALTER TABLE contacts ADD PRIMARY KEY (hubspot_contact_id);

DROP FUNCTION hubspot_sync_portal();
DROP TABLE accounts;

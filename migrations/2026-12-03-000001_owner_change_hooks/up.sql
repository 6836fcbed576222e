-- Owner-change hooks (issue 18): every change of a contact's or a deal's owner, by any writer
-- (webhook fetch, poller, full pass), gives in the writing transaction itself
--   1. one owner history row (`contact_owner_history`, and now `deal_owner_history`),
--   2. one `NOTIFY hubspot_owner_changed` with {"object", "id", "old_owner_id", "new_owner_id",
--      "changed_at"} (sent at commit, so never for a write that rolls back),
--   3. one row in the outbox `owner_change_deliveries`, drained by `serve` to
--      `OWNER_CHANGE_WEBHOOK_URL` (at least once: the row goes only once delivered).
-- The triggers fire on UPDATE only: a record's first insert (the initial copy) is not a change.

CREATE TABLE deal_owner_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hubspot_deal_id text NOT NULL,
    previous_owner_id text,
    new_owner_id text,
    changed_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE deal_owner_history IS 'Every change of a deal''s owner (closer_id, HubSpot hubspot_owner_id) after its first sync, written by a trigger.';
COMMENT ON COLUMN deal_owner_history.changed_at IS 'HubSpot updatedAt of the deal version that carried the new owner.';
CREATE INDEX deal_owner_history_deal_idx ON deal_owner_history (hubspot_deal_id, changed_at);
CREATE INDEX deal_owner_history_changed_idx ON deal_owner_history (changed_at);

CREATE TABLE owner_change_deliveries (
    -- The delivery id the receiver deduplicates on (sent in the body and a header).
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    object text NOT NULL CHECK (object IN ('contacts', 'deals')),
    hubspot_id text NOT NULL,
    old_owner_id text,
    new_owner_id text,
    changed_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 0,
    -- When the next attempt may start; a sender claims a row by moving it a lease ahead.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error text
);
COMMENT ON TABLE owner_change_deliveries IS 'Outbox of the signed owner-change webhook: a row per change, deleted once OWNER_CHANGE_WEBHOOK_URL accepted it.';
CREATE INDEX owner_change_deliveries_due_idx ON owner_change_deliveries (next_attempt_at);

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

CREATE OR REPLACE FUNCTION record_contact_owner_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_owner_history (hubspot_contact_id, previous_owner_id, new_owner_id, changed_at)
    VALUES (NEW.hubspot_contact_id, OLD.owner_id, NEW.owner_id, NEW.updated_at);
    PERFORM announce_owner_change('contacts', NEW.hubspot_contact_id, OLD.owner_id, NEW.owner_id, NEW.updated_at);
    RETURN NULL;
END;
$$;

CREATE FUNCTION record_deal_owner_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO deal_owner_history (hubspot_deal_id, previous_owner_id, new_owner_id, changed_at)
    VALUES (NEW.hubspot_deal_id, OLD.closer_id, NEW.closer_id, NEW.updated_at);
    PERFORM announce_owner_change('deals', NEW.hubspot_deal_id, OLD.closer_id, NEW.closer_id, NEW.updated_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER deals_owner_change
AFTER UPDATE OF closer_id ON deals
FOR EACH ROW
WHEN (OLD.closer_id IS DISTINCT FROM NEW.closer_id)
EXECUTE FUNCTION record_deal_owner_change();

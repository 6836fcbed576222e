DROP TRIGGER deals_owner_change ON deals;
DROP FUNCTION record_deal_owner_change();
CREATE OR REPLACE FUNCTION record_contact_owner_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_owner_history (hubspot_contact_id, previous_owner_id, new_owner_id, changed_at)
    VALUES (NEW.hubspot_contact_id, OLD.owner_id, NEW.owner_id, NEW.updated_at);
    RETURN NULL;
END;
$$;
DROP FUNCTION announce_owner_change(text, text, text, text, timestamptz);
DROP TABLE owner_change_deliveries;
DROP TABLE deal_owner_history;

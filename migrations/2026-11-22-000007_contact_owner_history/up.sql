-- Every change of a contact's owner, written by a trigger so that no writer can forget it.
CREATE TABLE contact_owner_history (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hubspot_contact_id text NOT NULL,
    previous_owner_id text,
    new_owner_id text,
    changed_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN contact_owner_history.changed_at IS 'HubSpot updatedAt of the contact version that carried the new owner.';
CREATE INDEX contact_owner_history_contact_idx ON contact_owner_history (hubspot_contact_id, changed_at);

CREATE FUNCTION record_contact_owner_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO contact_owner_history (hubspot_contact_id, previous_owner_id, new_owner_id, changed_at)
    VALUES (NEW.hubspot_contact_id, OLD.owner_id, NEW.owner_id, NEW.updated_at);
    RETURN NULL;
END;
$$;

CREATE TRIGGER contacts_owner_change
AFTER UPDATE OF owner_id ON contacts
FOR EACH ROW
WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id)
EXECUTE FUNCTION record_contact_owner_change();

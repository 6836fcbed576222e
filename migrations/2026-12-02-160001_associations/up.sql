-- Associations: the edges between HubSpot records (docs/hubspot.md §7). One row per direction and
-- association type, as HubSpot reports them: a contact associated with a deal is a row 0-1 -> 0-3
-- (type 4) and a row 0-3 -> 0-1 (type 3), each read from its own side. Removed edges stay, marked,
-- so a reader can ask since when; a removed edge that comes back is made live again.
CREATE TABLE associations (
    from_type text NOT NULL,
    from_id text NOT NULL,
    to_type text NOT NULL,
    to_id text NOT NULL,
    type_id integer NOT NULL,
    category text NOT NULL,
    label text,
    is_primary boolean NOT NULL DEFAULT false,
    removed boolean NOT NULL DEFAULT false,
    removed_at timestamptz,
    updated_at timestamptz NOT NULL,
    synced_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (from_type, from_id, to_type, to_id, type_id)
);
COMMENT ON TABLE associations IS 'Edges between HubSpot records (object type ids 0-1 contacts, 0-3 deals, 0-48 calls, 0-2 companies), one row per direction and association type; removed ones kept and marked.';
COMMENT ON COLUMN associations.type_id IS 'HubSpot association type id (4 contact to deal, 3 deal to contact, 194 call to contact...; user-defined labels have their own).';
COMMENT ON COLUMN associations.category IS 'HUBSPOT_DEFINED, USER_DEFINED or INTEGRATOR_DEFINED.';
COMMENT ON COLUMN associations.label IS 'The label of a labelled association type (Primary, or a user-defined label); null for the unlabelled type.';
COMMENT ON COLUMN associations.updated_at IS 'When the edge last changed: HubSpot''s occurredAt for a change from a webhook, else when the read that saw the change started. Orders out-of-order events.';
COMMENT ON COLUMN associations.removed_at IS 'When the edge was removed (HubSpot''s occurredAt when an event said so); null while live.';
COMMENT ON COLUMN associations.synced_at IS 'When this row was last written.';
-- "The contacts of a deal", "the deals of a contact", "the calls of a contact or deal" are prefixes
-- of the primary key (both directions are stored); this one finds what points at a record.
CREATE INDEX associations_to_idx ON associations (to_type, to_id, from_type) WHERE NOT removed;

-- No live edge touches an archived or erased record. A live edge written for an end that is
-- archived here is stored removed; one naming a contact erased for privacy is not stored at all.
CREATE FUNCTION association_end_archived(end_type text, end_id text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE end_type
        WHEN '0-1' THEN EXISTS (SELECT 1 FROM contacts WHERE hubspot_contact_id = end_id AND archived)
        WHEN '0-3' THEN EXISTS (SELECT 1 FROM deals WHERE hubspot_deal_id = end_id AND archived)
        WHEN '0-48' THEN EXISTS (SELECT 1 FROM calls WHERE hubspot_call_id = end_id AND archived)
        ELSE false
    END
$$;

CREATE FUNCTION associations_keep_ends_live() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.from_type = '0-1' AND EXISTS (SELECT 1 FROM privacy_deletions p WHERE p.hubspot_contact_id = NEW.from_id))
       OR (NEW.to_type = '0-1' AND EXISTS (SELECT 1 FROM privacy_deletions p WHERE p.hubspot_contact_id = NEW.to_id)) THEN
        RETURN NULL;
    END IF;
    IF NOT NEW.removed AND (association_end_archived(NEW.from_type, NEW.from_id)
                            OR association_end_archived(NEW.to_type, NEW.to_id)) THEN
        NEW.removed := true;
        NEW.removed_at := coalesce(NEW.removed_at, now());
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER associations_keep_ends_live
BEFORE INSERT OR UPDATE ON associations
FOR EACH ROW
EXECUTE FUNCTION associations_keep_ends_live();

-- A record archived (deleted, merged away) takes its edges, both directions, with it. Arguments:
-- the table's object type id and its key column.
CREATE FUNCTION associations_remove_archived_end() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    end_type text := TG_ARGV[0];
    end_id text := to_jsonb(NEW) ->> TG_ARGV[1];
    at timestamptz := coalesce(NEW.archived_at, now());
BEGIN
    UPDATE associations
       SET removed = true, removed_at = at, updated_at = greatest(updated_at, at), synced_at = now()
     WHERE NOT removed
       AND ((from_type = end_type AND from_id = end_id) OR (to_type = end_type AND to_id = end_id));
    RETURN NULL;
END;
$$;

CREATE TRIGGER contacts_remove_edges_on_archive AFTER UPDATE OF archived ON contacts FOR EACH ROW
    WHEN (NEW.archived AND NOT OLD.archived) EXECUTE FUNCTION associations_remove_archived_end('0-1', 'hubspot_contact_id');
CREATE TRIGGER contacts_remove_edges_on_insert AFTER INSERT ON contacts FOR EACH ROW
    WHEN (NEW.archived) EXECUTE FUNCTION associations_remove_archived_end('0-1', 'hubspot_contact_id');
CREATE TRIGGER deals_remove_edges_on_archive AFTER UPDATE OF archived ON deals FOR EACH ROW
    WHEN (NEW.archived AND NOT OLD.archived) EXECUTE FUNCTION associations_remove_archived_end('0-3', 'hubspot_deal_id');
CREATE TRIGGER deals_remove_edges_on_insert AFTER INSERT ON deals FOR EACH ROW
    WHEN (NEW.archived) EXECUTE FUNCTION associations_remove_archived_end('0-3', 'hubspot_deal_id');
CREATE TRIGGER calls_remove_edges_on_archive AFTER UPDATE OF archived ON calls FOR EACH ROW
    WHEN (NEW.archived AND NOT OLD.archived) EXECUTE FUNCTION associations_remove_archived_end('0-48', 'hubspot_call_id');
CREATE TRIGGER calls_remove_edges_on_insert AFTER INSERT ON calls FOR EACH ROW
    WHEN (NEW.archived) EXECUTE FUNCTION associations_remove_archived_end('0-48', 'hubspot_call_id');

-- A record brought back live (restored, or revived by a read that started after its deletion)
-- has its edges read again: whoever revives it (a fetch, a run, an audit) takes it from here, and
-- the sweep takes what is left. A table, not the writer's own bookkeeping: a deletion applied
-- between a writer's look at the row and its write would otherwise hide the revival.
CREATE TABLE association_reads_due (
    object_type text NOT NULL,
    id text NOT NULL,
    since timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (object_type, id)
);
COMMENT ON TABLE association_reads_due IS 'Records revived (archived, then live again) whose associations are to be read again.';

CREATE FUNCTION associations_read_revived() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO association_reads_due (object_type, id) VALUES (TG_ARGV[0], to_jsonb(NEW) ->> TG_ARGV[1])
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END;
$$;

CREATE TRIGGER contacts_read_edges_on_revival AFTER UPDATE OF archived ON contacts FOR EACH ROW
    WHEN (OLD.archived AND NOT NEW.archived) EXECUTE FUNCTION associations_read_revived('0-1', 'hubspot_contact_id');
CREATE TRIGGER deals_read_edges_on_revival AFTER UPDATE OF archived ON deals FOR EACH ROW
    WHEN (OLD.archived AND NOT NEW.archived) EXECUTE FUNCTION associations_read_revived('0-3', 'hubspot_deal_id');
CREATE TRIGGER calls_read_edges_on_revival AFTER UPDATE OF archived ON calls FOR EACH ROW
    WHEN (OLD.archived AND NOT NEW.archived) EXECUTE FUNCTION associations_read_revived('0-48', 'hubspot_call_id');

-- The three common joins, one row per pair of live records (every association type of the pair
-- folded into one row).
CREATE VIEW deal_contacts AS
SELECT a.from_id AS hubspot_deal_id, a.to_id AS hubspot_contact_id,
       bool_or(a.is_primary) AS is_primary,
       array_remove(array_agg(DISTINCT a.label), NULL) AS labels,
       max(a.updated_at) AS updated_at
  FROM associations a
 WHERE a.from_type = '0-3' AND a.to_type = '0-1' AND NOT a.removed
 GROUP BY a.from_id, a.to_id;
COMMENT ON VIEW deal_contacts IS 'Live deal-contact associations, one row per pair: join deals.hubspot_deal_id and contacts.hubspot_contact_id.';

CREATE VIEW call_contacts AS
SELECT a.from_id AS hubspot_call_id, a.to_id AS hubspot_contact_id,
       bool_or(a.is_primary) AS is_primary,
       array_remove(array_agg(DISTINCT a.label), NULL) AS labels,
       max(a.updated_at) AS updated_at
  FROM associations a
 WHERE a.from_type = '0-48' AND a.to_type = '0-1' AND NOT a.removed
 GROUP BY a.from_id, a.to_id;
COMMENT ON VIEW call_contacts IS 'Live call-contact associations, one row per pair: join calls.hubspot_call_id and contacts.hubspot_contact_id.';

CREATE VIEW call_deals AS
SELECT a.from_id AS hubspot_call_id, a.to_id AS hubspot_deal_id,
       bool_or(a.is_primary) AS is_primary,
       array_remove(array_agg(DISTINCT a.label), NULL) AS labels,
       max(a.updated_at) AS updated_at
  FROM associations a
 WHERE a.from_type = '0-48' AND a.to_type = '0-3' AND NOT a.removed
 GROUP BY a.from_id, a.to_id;
COMMENT ON VIEW call_deals IS 'Live call-deal associations, one row per pair: join calls.hubspot_call_id and deals.hubspot_deal_id.';

-- A privacy deletion and a contact write that overlap can never bring the contact back.
--
-- The purge (store::privacy) holds the advisory lock (18515, 200) exclusively for its whole
-- transaction. Every row inserted into `contacts` (a plain insert or the insert half of an
-- upsert) first takes the same lock shared, which waits while a purge runs, and then reads
-- `privacy_deletions` in a query of its own: in READ COMMITTED that query has a fresh snapshot,
-- so it sees a purge that committed after the writing statement began. An erased id, or a row
-- that lists an erased id among the records merged into it, is skipped. A write that took the
-- lock first finishes before the purge starts, and the purge then removes what it wrote.
CREATE FUNCTION refuse_erased_contact() RETURNS trigger
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

CREATE TRIGGER contacts_refuse_erased
BEFORE INSERT ON contacts
FOR EACH ROW
EXECUTE FUNCTION refuse_erased_contact();

-- The purge follows merge chains downwards (rows merged into an erased one).
CREATE INDEX contacts_merged_into_idx ON contacts (merged_into) WHERE merged_into IS NOT NULL;

COMMENT ON TABLE privacy_deletions IS 'Contact ids erased for privacy (GDPR), with every id merged into them: never written again.';

-- An edge naming a contact erased for privacy is never written again (a late association event,
-- a read in flight during the purge, a merge moving edges): like `contacts_refuse_erased`, every
-- row inserted into `associations` with a contact end (a plain insert or the insert half of an
-- upsert) takes the purge's advisory lock (18515, 200) shared, which waits while a purge runs,
-- and then reads `privacy_deletions` in a query of its own (a fresh snapshot in READ COMMITTED:
-- it sees a purge that committed after the writing statement began). An edge to or from an
-- erased id is skipped. A write that took the lock first finishes before the purge starts, and
-- the purge then deletes what it wrote (store::associations::erase). The writers take the lock
-- before any other (store::associations), so a purge never waits on a writer that waits on it.
CREATE FUNCTION refuse_erased_edge() RETURNS trigger
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

CREATE TRIGGER associations_refuse_erased
BEFORE INSERT ON associations
FOR EACH ROW
WHEN (NEW.from_type = '0-1' OR NEW.to_type = '0-1')
EXECUTE FUNCTION refuse_erased_edge();

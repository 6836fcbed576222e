-- Asks a running `hubspot-sync serve` to run a sync now: `SELECT trigger_hubspot_sync('contacts');`
-- Valid types: contacts, deals, calls, owners, all.
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

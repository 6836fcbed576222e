-- No index on updated_at and fillfactor 90: a re-sync that changes no indexed column is a
-- HOT update (no index writes), which keeps webhook and poller upserts fast.
CREATE TABLE calls (
    hubspot_call_id text PRIMARY KEY,
    title text,
    direction text,
    disposition text,
    status text,
    duration_ms bigint,
    called_at timestamptz,
    owner_id text,
    created_at timestamptz,
    updated_at timestamptz NOT NULL,
    archived boolean NOT NULL DEFAULT false,
    archived_at timestamptz,
    merged_into text,
    properties jsonb NOT NULL DEFAULT '{}'::jsonb,
    synced_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);
COMMENT ON TABLE calls IS 'HubSpot calls (object type 0-48), one row per HubSpot id.';
COMMENT ON COLUMN calls.disposition IS 'hs_call_disposition: a GUID naming the call outcome.';
COMMENT ON COLUMN calls.called_at IS 'hs_timestamp: when the call happened.';
CREATE INDEX calls_owner_id_idx ON calls (owner_id);
CREATE INDEX calls_called_at_idx ON calls (called_at);

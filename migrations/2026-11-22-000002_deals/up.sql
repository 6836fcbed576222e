CREATE TYPE deal_status AS ENUM ('open', 'won', 'lost');

-- No index on updated_at and fillfactor 90: a re-sync that changes no indexed column is a
-- HOT update (no index writes), which keeps webhook and poller upserts fast.
CREATE TABLE deals (
    hubspot_deal_id text PRIMARY KEY,
    deal_name text,
    deal_value numeric,
    stage text,
    status deal_status,
    close_date timestamptz,
    closer_id text,
    pipeline text,
    created_at timestamptz,
    updated_at timestamptz NOT NULL,
    archived boolean NOT NULL DEFAULT false,
    archived_at timestamptz,
    merged_into text,
    properties jsonb NOT NULL DEFAULT '{}'::jsonb,
    synced_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);
COMMENT ON TABLE deals IS 'HubSpot deals (object type 0-3), one row per HubSpot id.';
COMMENT ON COLUMN deals.status IS 'open, won or lost, from hs_is_closed and hs_is_closed_won.';
COMMENT ON COLUMN deals.closer_id IS 'HubSpot owner id (hubspot_owner_id).';
COMMENT ON COLUMN deals.stage IS 'Internal stage id (dealstage).';
CREATE INDEX deals_closer_id_idx ON deals (closer_id);
CREATE INDEX deals_status_idx ON deals (status);

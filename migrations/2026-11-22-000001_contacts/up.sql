-- Contacts as HubSpot last reported them. `created_at`/`updated_at` are HubSpot's own
-- createdAt/updatedAt; `synced_at` is when this row was last written here.
-- No index on updated_at and fillfactor 90: a re-sync that changes no indexed column is a
-- HOT update (no index writes), which keeps webhook and poller upserts fast.
CREATE TABLE contacts (
    hubspot_contact_id text PRIMARY KEY,
    email text,
    first_name text,
    last_name text,
    phone text,
    owner_id text,
    lifecycle_stage text,
    status text,
    created_at timestamptz,
    updated_at timestamptz NOT NULL,
    archived boolean NOT NULL DEFAULT false,
    archived_at timestamptz,
    merged_into text,
    properties jsonb NOT NULL DEFAULT '{}'::jsonb,
    synced_at timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);
COMMENT ON TABLE contacts IS 'HubSpot contacts (object type 0-1), one row per HubSpot id.';
COMMENT ON COLUMN contacts.status IS 'HubSpot hs_lead_status.';
COMMENT ON COLUMN contacts.archived IS 'Deleted (recycle bin) or merged away in HubSpot.';
COMMENT ON COLUMN contacts.merged_into IS 'HubSpot id of the record this one was merged into.';
COMMENT ON COLUMN contacts.properties IS 'Every property fetched from HubSpot, as strings.';
CREATE INDEX contacts_email_idx ON contacts (lower(email));
CREATE INDEX contacts_owner_id_idx ON contacts (owner_id);

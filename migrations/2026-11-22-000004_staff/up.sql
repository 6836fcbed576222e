-- HubSpot owners. `role` is set from OWNER_ROLE when an owner first appears and is then left
-- alone, so roles edited here survive later syncs.
CREATE TABLE staff (
    id text PRIMARY KEY,
    name text,
    email text,
    role text NOT NULL DEFAULT 'coach',
    first_name text,
    last_name text,
    user_id bigint,
    archived boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz,
    synced_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE staff IS 'HubSpot owners; id is the owner id used in hubspot_owner_id.';
CREATE INDEX staff_email_idx ON staff (lower(email));

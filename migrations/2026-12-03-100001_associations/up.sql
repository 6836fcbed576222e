-- Associations (edges) between HubSpot records, one row per direction and association type as
-- HubSpot reports them. A removed edge stays as a row with `removed` true (and `removed_at`), so a
-- reader can ask "since when"; a re-added edge becomes live again.
-- `updated_at` is when HubSpot's change happened as far as this copy knows: the webhook event's
-- `occurredAt`, or the start of the read that reported (or no longer reported) the edge. A change
-- older than the stored row never overwrites it (a removal older than the stored addition does not
-- remove it, an addition older than the stored removal does not bring it back).
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
COMMENT ON TABLE associations IS
    'Edges between HubSpot records (object type ids: 0-1 contacts, 0-2 companies, 0-3 deals, 0-48 calls), both directions as HubSpot reports them; removed edges kept with removed = true';
COMMENT ON COLUMN associations.updated_at IS
    'when the change happened as far as this copy knows: the event''s occurredAt, or the start of the read that saw it';

-- The primary key serves "the deals of a contact" (from 0-1 to 0-3), "the contacts of a deal"
-- (from 0-3 to 0-1) and "the calls of a contact or deal" (from 0-1 or 0-3 to 0-48); this one the
-- same questions asked from the other end, live edges only.
CREATE INDEX associations_to_idx ON associations (to_type, to_id, from_type) WHERE NOT removed;

CREATE VIEW deal_contacts AS
    SELECT from_id AS hubspot_deal_id, to_id AS hubspot_contact_id,
           bool_or(is_primary) AS is_primary,
           array_remove(array_agg(DISTINCT label), NULL) AS labels,
           max(updated_at) AS updated_at
    FROM associations
    WHERE from_type = '0-3' AND to_type = '0-1' AND NOT removed
    GROUP BY from_id, to_id;

CREATE VIEW call_contacts AS
    SELECT from_id AS hubspot_call_id, to_id AS hubspot_contact_id,
           bool_or(is_primary) AS is_primary,
           array_remove(array_agg(DISTINCT label), NULL) AS labels,
           max(updated_at) AS updated_at
    FROM associations
    WHERE from_type = '0-48' AND to_type = '0-1' AND NOT removed
    GROUP BY from_id, to_id;

CREATE VIEW call_deals AS
    SELECT from_id AS hubspot_call_id, to_id AS hubspot_deal_id,
           bool_or(is_primary) AS is_primary,
           array_remove(array_agg(DISTINCT label), NULL) AS labels,
           max(updated_at) AS updated_at
    FROM associations
    WHERE from_type = '0-48' AND to_type = '0-3' AND NOT removed
    GROUP BY from_id, to_id;

-- Owners leave: `archived` is true while HubSpot lists the owner among its archived owners or no
-- longer lists it at all (a complete owners run marks those), false again when it comes back;
-- `archived_at` is when this copy first saw it so (NULL while live).
-- (No COMMENT ON COLUMN archived_at: comments are keyed by column number, which a down/up round
-- trip of an added column changes; it is described in src/store/staff.rs.)
ALTER TABLE staff ADD COLUMN archived_at timestamptz;
UPDATE staff SET archived_at = synced_at WHERE archived;
COMMENT ON COLUMN staff.archived IS
    'true while HubSpot lists the owner as archived, or lists it no more (deleted); false when it comes back';
COMMENT ON COLUMN staff.created_at IS
    'HubSpot''s createdAt; when HubSpot omits it, when the owner was first seen (never moved later)';

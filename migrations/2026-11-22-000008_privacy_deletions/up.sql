-- Contacts deleted for privacy (GDPR). Their rows are removed and their ids kept here so that a
-- slow fetch that read the contact before the deletion can never write it back.
CREATE TABLE privacy_deletions (
    hubspot_contact_id text PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);

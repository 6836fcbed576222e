COMMENT ON COLUMN staff.created_at IS NULL;
COMMENT ON COLUMN staff.archived IS NULL;
ALTER TABLE staff DROP COLUMN archived_at;

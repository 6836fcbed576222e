COMMENT ON TABLE privacy_deletions IS NULL;
DROP INDEX contacts_merged_into_idx;
DROP TRIGGER contacts_refuse_erased ON contacts;
DROP FUNCTION refuse_erased_contact();

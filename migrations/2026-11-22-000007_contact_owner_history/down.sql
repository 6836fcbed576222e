DROP TRIGGER contacts_owner_change ON contacts;
DROP FUNCTION record_contact_owner_change();
DROP TABLE contact_owner_history;

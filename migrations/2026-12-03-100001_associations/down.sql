DROP VIEW call_deals;
DROP VIEW call_contacts;
DROP VIEW deal_contacts;
DELETE FROM sync_logs WHERE sync_type = 'associations';
DROP TABLE associations;

DROP TABLE webhook_deliveries;
DROP TABLE webhook_v3_seen;

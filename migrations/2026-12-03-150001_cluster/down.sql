DROP TABLE webhook_handoff;
DROP TABLE account_leases;
DROP TABLE machines;

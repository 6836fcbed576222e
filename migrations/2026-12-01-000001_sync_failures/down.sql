DROP TABLE sync_failures;

DROP TABLE sync_logs;

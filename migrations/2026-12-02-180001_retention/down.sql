CREATE OR REPLACE FUNCTION get_latest_sync_status()
RETURNS TABLE (
    sync_type text,
    last_sync_time timestamptz,
    status text,
    records_processed integer,
    records_failed integer,
    duration_ms bigint
)
LANGUAGE sql STABLE AS $$
    SELECT DISTINCT ON (l.sync_type)
           l.sync_type,
           coalesce(l.completed_at, l.started_at),
           l.status,
           l.records_processed,
           l.records_failed,
           l.duration_ms
    FROM sync_logs l
    WHERE l.platform = 'hubspot' AND l.mode <> 'audit'
    ORDER BY l.sync_type, l.started_at DESC
$$;
DROP INDEX contact_owner_history_changed_idx;
DELETE FROM sync_logs WHERE mode = 'maintenance';
ALTER TABLE sync_logs DROP CONSTRAINT sync_logs_mode_check;
ALTER TABLE sync_logs ADD CONSTRAINT sync_logs_mode_check CHECK (mode IN ('incremental', 'full', 'audit'));
COMMENT ON COLUMN sync_logs.mode IS 'incremental or full (reconciliation runs), or audit (a drift audit: counts in error_details).';

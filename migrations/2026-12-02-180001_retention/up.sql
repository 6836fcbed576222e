-- Retention (`SYNC_LOGS_RETENTION`, `OWNER_HISTORY_RETENTION`): the daily maintenance job deletes
-- old rows in small batches and records itself as a `sync_logs` row of sync type and mode
-- `maintenance` (records_processed = rows deleted). It is not a run of an object: the latest
-- status per object leaves it out, as it leaves out audits.
ALTER TABLE sync_logs DROP CONSTRAINT sync_logs_mode_check;
ALTER TABLE sync_logs ADD CONSTRAINT sync_logs_mode_check
    CHECK (mode IN ('incremental', 'full', 'audit', 'maintenance'));
COMMENT ON COLUMN sync_logs.mode IS
    'incremental or full (reconciliation runs), audit (a drift audit: counts in error_details), or maintenance (the retention job: rows deleted in records_processed).';

-- The owner history is deleted by age, oldest first, a batch at a time.
CREATE INDEX contact_owner_history_changed_idx ON contact_owner_history (changed_at);

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
    WHERE l.platform = 'hubspot' AND l.mode NOT IN ('audit', 'maintenance')
    ORDER BY l.sync_type, l.started_at DESC
$$;

-- One row per reconciliation run. A run is inserted as `running` and finished exactly once.
CREATE TABLE sync_logs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    platform text NOT NULL DEFAULT 'hubspot',
    sync_type text NOT NULL,
    status text NOT NULL DEFAULT 'running'
        CHECK (status IN ('running', 'success', 'partial', 'failed')),
    trigger text NOT NULL CHECK (trigger IN ('schedule', 'manual', 'startup', 'sql')),
    mode text NOT NULL CHECK (mode IN ('incremental', 'full')),
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    duration_ms bigint,
    records_processed integer NOT NULL DEFAULT 0,
    records_failed integer NOT NULL DEFAULT 0,
    error_details jsonb,
    CHECK ((status = 'running') = (completed_at IS NULL))
);
COMMENT ON COLUMN sync_logs.trigger IS 'What started the run: schedule, manual, startup or sql.';
COMMENT ON COLUMN sync_logs.error_details IS 'HubSpot error bodies and the ids that failed.';
CREATE INDEX sync_logs_type_started_idx ON sync_logs (sync_type, started_at DESC);
CREATE INDEX sync_logs_started_idx ON sync_logs (started_at DESC);

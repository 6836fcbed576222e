-- Per-object progress of the reconciliation poller.
CREATE TABLE sync_state (
    sync_type text PRIMARY KEY,
    watermark timestamptz,
    full_cursor text,
    full_started_at timestamptz,
    full_completed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN sync_state.watermark IS 'Upper bound of the last successful incremental window (HubSpot last-modified time).';
COMMENT ON COLUMN sync_state.full_cursor IS 'Paging cursor of an unfinished full sync, to resume from.';
COMMENT ON COLUMN sync_state.full_started_at IS 'When the unfinished (or last) full sync started.';
COMMENT ON COLUMN sync_state.full_completed_at IS 'When the last complete full sync finished.';

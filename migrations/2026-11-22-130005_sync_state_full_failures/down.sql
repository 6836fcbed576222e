ALTER TABLE sync_state
    DROP COLUMN full_stuck_runs,
    DROP COLUMN full_earliest_failed,
    DROP COLUMN full_failed_ids;

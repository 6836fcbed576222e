-- What an unfinished full pass must remember across an interruption: the ids it could not read
-- or store (so the resumed pass never archives them as unseen, and says `partial`), the oldest
-- last-modified time among them (the watermark stops there), and how many runs in a row failed
-- without moving the checkpoint (a stuck pass no longer holds incremental runs back).
ALTER TABLE sync_state
    ADD COLUMN full_failed_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN full_earliest_failed timestamptz,
    ADD COLUMN full_stuck_runs integer NOT NULL DEFAULT 0;
COMMENT ON COLUMN sync_state.full_failed_ids IS 'Ids the unfinished full sync could not read or store before its checkpoint.';
COMMENT ON COLUMN sync_state.full_earliest_failed IS 'Oldest HubSpot last-modified time among full_failed_ids that failed to store.';
COMMENT ON COLUMN sync_state.full_stuck_runs IS 'Runs in a row that failed without moving the full sync checkpoint.';

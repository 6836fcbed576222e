-- What an unfinished full pass must remember across an interruption: the ids it could not read
-- or store (so the resumed pass never archives them as unseen, and says `partial`), the oldest
-- last-modified time among them (the watermark stops there), and how many runs in a row failed
-- without moving the checkpoint (a stuck pass no longer holds incremental runs back).
-- (No COMMENT ON COLUMN: comments are keyed by column number, which a down/up round trip of an
-- added column changes; the columns are described in src/store/sync_state.rs.)
ALTER TABLE sync_state
    ADD COLUMN full_failed_ids text[] NOT NULL DEFAULT '{}',
    ADD COLUMN full_earliest_failed timestamptz,
    ADD COLUMN full_stuck_runs integer NOT NULL DEFAULT 0;

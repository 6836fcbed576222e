-- Records that could not be read or stored, parked so they never block other records, retried
-- with backoff (`next_attempt`) and deleted once they are stored.
CREATE TABLE sync_failures (
    object text NOT NULL,
    hubspot_id text NOT NULL,
    error text NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    attempts integer NOT NULL DEFAULT 1,
    next_attempt timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz,
    UNIQUE (object, hubspot_id)
);
CREATE INDEX sync_failures_due ON sync_failures (object, next_attempt);
COMMENT ON TABLE sync_failures IS 'Parked records: read or stored unsuccessfully, retried with backoff, deleted once stored.';
COMMENT ON COLUMN sync_failures.attempts IS 'Failed attempts so far; after 3 the record no longer holds the incremental watermark.';
COMMENT ON COLUMN sync_failures.next_attempt IS 'When the retry loop queues the id again.';
COMMENT ON COLUMN sync_failures.updated_at IS 'HubSpot last-modified time of the version that failed, when it was read.';

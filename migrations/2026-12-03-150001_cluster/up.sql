-- More than one machine (issue 20): the `serve` machines sharing this database, the lease each
-- non-default account's runtime runs under, and the durable hand-over of webhooks that reached a
-- machine not holding their account's lease.
--
-- These are cluster tables, not portal-scoped: a machine reads and writes every account's lease
-- and hands over batches for accounts it does not hold, so the store's queries of them are not
-- kept to `hubspot_sync_portal()` (see store::cluster; they are not in SCOPED_TABLES). Lease
-- times are PostgreSQL's clock (`now()`), never a machine's.
CREATE TABLE machines (
    machine_id text PRIMARY KEY CHECK (machine_id <> ''),
    started_at timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE machines IS 'The serve machines sharing this database: a machine is live while its heartbeat_at is more recent than the lease length (CLUSTER_LEASE).';

CREATE TABLE account_leases (
    portal_id bigint PRIMARY KEY REFERENCES accounts (portal_id) ON DELETE CASCADE ON UPDATE CASCADE,
    holder text,
    expires_at timestamptz NOT NULL DEFAULT '-infinity',
    taken_at timestamptz
);
CREATE INDEX account_leases_holder ON account_leases (holder);
COMMENT ON TABLE account_leases IS 'Which machine runs each non-default account (poller, fetchers, budget): the holder while expires_at is in the future; free (taken with FOR UPDATE SKIP LOCKED) once it is past.';

CREATE TABLE webhook_handoff (
    id bigserial PRIMARY KEY,
    portal_id bigint NOT NULL REFERENCES accounts (portal_id) ON DELETE CASCADE ON UPDATE CASCADE,
    body bytea NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_handoff_portal ON webhook_handoff (portal_id, id);
COMMENT ON TABLE webhook_handoff IS 'Verified webhook batches for an account whose lease another machine holds: written before the 204, taken (DELETE .. SKIP LOCKED) by the lease holder in the transaction that hands them to its intake.';

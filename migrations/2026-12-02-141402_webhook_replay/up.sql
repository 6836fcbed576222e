-- What the webhook replay rule keeps (README "Webhook signatures and replays").
--
-- `webhook_v3_seen`: at most one row, written once, when the first valid v3 signature arrives.
-- From then on `HUBSPOT_REQUIRE_V3=auto` refuses v1/v2-only deliveries, across restarts and
-- machines.
CREATE TABLE webhook_v3_seen (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    first_seen_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE webhook_v3_seen IS 'One row once a valid v3 webhook signature has been seen: v1/v2 are refused from then on (HUBSPOT_REQUIRE_V3=auto).';

-- `webhook_deliveries`: a digest of every accepted webhook delivery, kept for a few days (HubSpot
-- retries a failed delivery for about a day, with a new body each attempt): the SHA-256 of its
-- v1/v2 signature, itself a hash of the client secret and the body, so the same body always has
-- the same digest. A v1/v2-only delivery whose digest is listed here is a replay and is refused.
CREATE TABLE webhook_deliveries (
    digest bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
    accepted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_deliveries_accepted_at_idx ON webhook_deliveries (accepted_at);
COMMENT ON TABLE webhook_deliveries IS 'Digest of each accepted webhook delivery: SHA-256 of its v1/v2 signature, itself a hash of the client secret and the body; pruned after a few days: a v1/v2-only repeat of one is a replay.';

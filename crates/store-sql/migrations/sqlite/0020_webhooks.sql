-- Webhooks: each endpoint keeps its own cursor in its workspace's events (`delivered_seq`, the
-- last event it acknowledged with a 2xx or skipped by its filter), so delivery is at least once
-- and in order, and survives any restart: the outbox (0018) holds what is still to send. A node
-- claims an endpoint by setting `lease_owner`/`lease_until` in one conditional UPDATE, so two
-- nodes never send to one endpoint at once. `event_types` is the filter, space-separated
-- (`*` every event; `file.*` a prefix). Signing needs the secret itself, not a hash: it is
-- kept sealed with the server key (the endpoint's id as associated data; a row written as shown,
-- `whsec_…`, by the version before sealing is sealed when a server starts). `previous_secret`
-- still signs alongside it until `previous_secret_until`.
CREATE TABLE webhooks (
    id                     TEXT PRIMARY KEY,
    workspace_id           TEXT NOT NULL REFERENCES workspaces (id),
    url                    TEXT NOT NULL,
    event_types            TEXT NOT NULL,
    enabled                INTEGER NOT NULL,
    disabled_reason        TEXT,
    secret                 TEXT NOT NULL,
    previous_secret        TEXT,
    previous_secret_until  INTEGER,
    delivered_seq          INTEGER NOT NULL,
    failed_attempts        INTEGER NOT NULL DEFAULT 0,
    failing_since          INTEGER,
    next_attempt_at        INTEGER NOT NULL,
    lease_owner            TEXT,
    lease_until            INTEGER,
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL
);
CREATE INDEX webhooks_by_workspace ON webhooks (workspace_id, id);
CREATE INDEX webhooks_due ON webhooks (enabled, next_attempt_at);

-- The delivery log: one row an attempt (the response's status, or why there was none).
CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    webhook_id    TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    status        INTEGER,
    error         TEXT,
    duration_ms   INTEGER NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (at);

-- An endpoint the delivery worker gave up on is itself an event, in the same transaction.
CREATE TRIGGER events_webhook_disabled AFTER UPDATE OF enabled ON webhooks
WHEN OLD.enabled = 1 AND NEW.enabled = 0 AND NEW.disabled_reason IS NOT NULL
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'webhook.disabled', NEW.id, NEW.disabled_reason,
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.workspace_id;
END;

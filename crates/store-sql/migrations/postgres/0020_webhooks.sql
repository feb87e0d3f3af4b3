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
    enabled                BOOLEAN NOT NULL,
    disabled_reason        TEXT,
    secret                 TEXT NOT NULL,
    previous_secret        TEXT,
    previous_secret_until  BIGINT,
    delivered_seq          BIGINT NOT NULL,
    failed_attempts        BIGINT NOT NULL DEFAULT 0,
    failing_since          BIGINT,
    next_attempt_at        BIGINT NOT NULL,
    lease_owner            TEXT,
    lease_until            BIGINT,
    created_at             BIGINT NOT NULL,
    updated_at             BIGINT NOT NULL
);
CREATE INDEX webhooks_by_workspace ON webhooks (workspace_id, id);
CREATE INDEX webhooks_due ON webhooks (enabled, next_attempt_at);

-- The delivery log: one row an attempt (the response's status, or why there was none).
CREATE TABLE webhook_deliveries (
    id            TEXT PRIMARY KEY,
    webhook_id    TEXT NOT NULL,
    workspace_id  TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    attempt       BIGINT NOT NULL,
    at            BIGINT NOT NULL,
    status        BIGINT,
    error         TEXT,
    duration_ms   BIGINT NOT NULL
);
CREATE INDEX webhook_deliveries_by_webhook ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (at);

-- An endpoint the delivery worker gave up on is itself an event, in the same transaction.
CREATE FUNCTION events_of_disabled_webhooks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.enabled AND NOT NEW.enabled AND NEW.disabled_reason IS NOT NULL THEN
        PERFORM record_events(ARRAY[NEW.workspace_id], ARRAY['webhook.disabled'], ARRAY[NEW.id],
            ARRAY[NEW.disabled_reason]);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_disabled_webhooks AFTER UPDATE OF enabled ON webhooks
FOR EACH ROW EXECUTE FUNCTION events_of_disabled_webhooks();

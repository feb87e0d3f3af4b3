-- Metering: every value a workspace's used_bytes takes, with when, written in the transaction
-- that changed it; byte-seconds over a range are the integral of this step function.
CREATE TABLE usage_ledger (
    seq           BIGSERIAL PRIMARY KEY,
    workspace_id  TEXT NOT NULL,
    at            BIGINT NOT NULL,
    used_bytes    BIGINT NOT NULL
);
CREATE INDEX usage_ledger_by_time ON usage_ledger (workspace_id, at, seq);

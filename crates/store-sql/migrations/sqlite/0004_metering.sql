-- Metering: every value a workspace's used_bytes takes, with when, written in the transaction
-- that changed it; byte-seconds over a range are the integral of this step function.
CREATE TABLE usage_ledger (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    workspace_id  TEXT NOT NULL,
    at            INTEGER NOT NULL,
    used_bytes    INTEGER NOT NULL
);
CREATE INDEX usage_ledger_by_time ON usage_ledger (workspace_id, at, seq);

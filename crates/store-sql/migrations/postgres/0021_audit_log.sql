-- The audit log: who did what to which object, when, from where, and how it ended. Append-only:
-- no statement may change a record, and a record may be deleted only by the retention prune,
-- which first opens `audit_prune_gate` to its horizon (in the same transaction) and closes it
-- after; a DELETE of anything at or after the open horizon is refused.
CREATE TABLE audit_log (
    id              BIGSERIAL PRIMARY KEY,
    workspace_id    TEXT NOT NULL,
    at              BIGINT NOT NULL,
    actor_kind      TEXT NOT NULL,
    actor_id        TEXT,
    action          TEXT NOT NULL,
    object_id       TEXT,
    client_address  TEXT,
    status          BIGINT NOT NULL,
    error_code      TEXT
);
CREATE INDEX audit_log_by_workspace ON audit_log (workspace_id, id);
CREATE INDEX audit_log_by_time ON audit_log (at);

CREATE TABLE audit_prune_gate (
    only_row  BIGINT PRIMARY KEY CHECK (only_row = 1),
    horizon   BIGINT NOT NULL
);
INSERT INTO audit_prune_gate (only_row, horizon) VALUES (1, 0);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('UPDATE', 'TRUNCATE') THEN
        RAISE EXCEPTION 'the audit log is append-only';
    END IF;
    IF OLD.at >= (SELECT horizon FROM audit_prune_gate WHERE only_row = 1) THEN
        RAISE EXCEPTION 'the audit log is append-only: only records past the retention are pruned';
    END IF;
    RETURN OLD;
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- The same schema as SQLite's, in PostgreSQL's types (every number a BIGINT).
-- Workspaces carry the quota ledger; the CHECKs make an impossible ledger a failed write.
CREATE TABLE workspaces (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    limit_bytes     BIGINT CHECK (limit_bytes IS NULL OR limit_bytes >= 0),
    max_file_bytes  BIGINT CHECK (max_file_bytes IS NULL OR max_file_bytes >= 0),
    used_bytes      BIGINT NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    reserved_bytes  BIGINT NOT NULL DEFAULT 0 CHECK (reserved_bytes >= 0),
    created_at      BIGINT NOT NULL
);
CREATE UNIQUE INDEX workspaces_name ON workspaces (name);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    secret_hash  TEXT NOT NULL UNIQUE,
    name         TEXT,
    role         TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    hint         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);

CREATE TABLE api_key_workspaces (
    key_id        TEXT NOT NULL REFERENCES api_keys (id),
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    position      BIGINT NOT NULL,
    PRIMARY KEY (key_id, workspace_id)
);
CREATE INDEX api_key_workspaces_by_workspace ON api_key_workspaces (workspace_id);

CREATE TABLE uploads (
    workspace_id    TEXT NOT NULL REFERENCES workspaces (id),
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    size            BIGINT NOT NULL CHECK (size >= 0),
    declared_mime   TEXT,
    sha256          TEXT,
    folder_id       TEXT,
    status          TEXT NOT NULL CHECK (status IN ('WAITING', 'UPLOADING', 'SUCCESS', 'FAILED')),
    failure_reason  TEXT,
    file_id         TEXT NOT NULL,
    blob_key        TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX uploads_live ON uploads (status, expires_at) WHERE status IN ('WAITING', 'UPLOADING');

CREATE TABLE files (
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    id            TEXT NOT NULL,
    name          TEXT NOT NULL,
    mime_type     TEXT NOT NULL,
    size          BIGINT NOT NULL CHECK (size >= 0),
    sha256        TEXT NOT NULL,
    folder_id     TEXT,
    blob_key      TEXT NOT NULL UNIQUE,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE INDEX files_newest_first ON files (workspace_id, created_at DESC, id DESC);

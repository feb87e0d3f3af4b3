-- Access rules on files, folders and the workspace (target_id '' for the workspace); a NULL rule
-- inherits. Uploads remember the end user who started them, for creator tracking.
CREATE TABLE access_rules (
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    target_kind    TEXT NOT NULL CHECK (target_kind IN ('workspace', 'folder', 'file')),
    target_id      TEXT NOT NULL,
    create_rule    TEXT CHECK (create_rule IN ('public', 'authenticated', 'creator', 'admin')),
    read_rule      TEXT CHECK (read_rule IN ('public', 'authenticated', 'creator', 'admin')),
    delete_rule    TEXT CHECK (delete_rule IN ('public', 'authenticated', 'creator', 'admin')),
    track_creator  INTEGER,
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, target_kind, target_id)
);

ALTER TABLE uploads ADD COLUMN created_by TEXT;
CREATE INDEX files_by_creator ON files (workspace_id, created_by, created_at);

-- The keys that sign URLs. Key 0 is the deployment secret itself (no salt); each later key is
-- derived from that secret and its salt. Every key not retired is accepted; the newest signs.
CREATE TABLE signing_keys (
    id          INTEGER PRIMARY KEY,
    salt        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
);
INSERT INTO signing_keys (id, salt, created_at) VALUES (0, '', 0);

-- Permalinks name the generation they were made in; revoking a workspace's links moves it on.
ALTER TABLE workspaces ADD COLUMN link_generation INTEGER NOT NULL DEFAULT 0;

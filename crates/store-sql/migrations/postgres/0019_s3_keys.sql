-- Access keys of the S3 surface. SigV4 needs the secret itself, not a hash, so it is kept sealed
-- (XChaCha20-Poly1305) with the server's S3 key-encryption key. workspace_id NULL: an operator
-- key, which reaches every bucket and may create and delete them.
CREATE TABLE s3_keys (
    access_key_id  TEXT PRIMARY KEY,
    id             TEXT NOT NULL UNIQUE,
    workspace_id   TEXT REFERENCES workspaces (id),
    role           TEXT NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    sealed_secret  TEXT NOT NULL,
    name           TEXT,
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX s3_keys_by_workspace ON s3_keys (workspace_id);

-- The ETag S3 tools know a file by when it was stored through the S3 surface: the MD5 of its
-- bytes (one PUT), or S3's multipart form (the MD5 of the parts' MD5s, `-` and their count). A
-- file stored by another surface has none, and a sha256-derived ETag instead.
CREATE TABLE s3_etags (
    workspace_id  TEXT NOT NULL,
    file_id       TEXT NOT NULL,
    etag          TEXT NOT NULL,
    PRIMARY KEY (workspace_id, file_id)
);

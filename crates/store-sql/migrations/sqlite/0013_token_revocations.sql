-- End-user tokens minted up to `revoked_up_to` (milliseconds) are refused: those of `sub`, or of
-- every sub where `sub` is ''. One row per (workspace, sub): a later revocation moves the cutoff.
CREATE TABLE token_revocations (
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    sub            TEXT NOT NULL,
    revoked_up_to  INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, sub)
);

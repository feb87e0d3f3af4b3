-- The outbox: each change to a workspace's files, folders, uploads, references, keys, tokens and
-- quota writes its event here, by trigger, in the transaction that makes the change, so no path
-- (any surface, the sweepers, the admin CLI) can change something without its event, and no
-- event exists for a change that rolled back. `seq` counts per workspace: the workspace row's
-- `event_seq` is taken in the same transaction, so events commit in the order they are numbered.
ALTER TABLE workspaces ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE events (
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    seq           INTEGER NOT NULL,
    type          TEXT NOT NULL,
    object_id     TEXT NOT NULL,
    detail        TEXT,
    at            INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX events_by_time ON events (at);

CREATE TRIGGER events_file_created AFTER INSERT ON files
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'file.created', NEW.id, NULL, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.workspace_id;
END;

CREATE TRIGGER events_file_changed AFTER UPDATE ON files
WHEN OLD.name IS NOT NEW.name OR OLD.folder_id IS NOT NEW.folder_id OR OLD.is_favorite IS NOT NEW.is_favorite
  OR OLD.alt_text IS NOT NEW.alt_text OR OLD.caption IS NOT NEW.caption OR OLD.copyright IS NOT NEW.copyright
  OR OLD.metadata IS NOT NEW.metadata OR OLD.tags IS NOT NEW.tags OR OLD.trashed_at IS NOT NEW.trashed_at
  OR OLD.external_id IS NOT NEW.external_id
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq,
           CASE WHEN OLD.trashed_at IS NULL AND NEW.trashed_at IS NOT NULL THEN 'file.trashed'
                WHEN OLD.trashed_at IS NOT NULL AND NEW.trashed_at IS NULL THEN 'file.restored'
                WHEN OLD.folder_id IS NOT NEW.folder_id THEN 'file.moved'
                ELSE 'file.updated' END,
           NEW.id, NULL, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.workspace_id;
END;

CREATE TRIGGER events_file_purged AFTER DELETE ON files
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = OLD.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'file.purged', OLD.id, NULL, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = OLD.workspace_id;
END;

CREATE TRIGGER events_folder_created AFTER INSERT ON folders
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'folder.created', NEW.id, NULL, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.workspace_id;
END;

CREATE TRIGGER events_folder_changed AFTER UPDATE ON folders
WHEN OLD.name IS NOT NEW.name OR OLD.parent_id IS NOT NEW.parent_id OR OLD.is_favorite IS NOT NEW.is_favorite
  OR OLD.trashed_at IS NOT NEW.trashed_at OR OLD.is_shared IS NOT NEW.is_shared
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq,
           CASE WHEN OLD.trashed_at IS NULL AND NEW.trashed_at IS NOT NULL THEN 'folder.trashed'
                WHEN OLD.trashed_at IS NOT NULL AND NEW.trashed_at IS NULL THEN 'folder.restored'
                WHEN OLD.parent_id IS NOT NEW.parent_id THEN 'folder.moved'
                ELSE 'folder.updated' END,
           NEW.id, NULL, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.workspace_id;
END;

CREATE TRIGGER events_folder_purged AFTER DELETE ON folders
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = OLD.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'folder.purged', OLD.id, NULL, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = OLD.workspace_id;
END;

CREATE TRIGGER events_upload_ended AFTER UPDATE OF status ON uploads
WHEN OLD.status <> NEW.status AND NEW.status IN ('SUCCESS', 'FAILED')
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, CASE NEW.status WHEN 'SUCCESS' THEN 'upload.succeeded' ELSE 'upload.failed' END,
           NEW.id, NEW.failure_reason, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.workspace_id;
END;

CREATE TRIGGER events_reference_added AFTER INSERT ON file_references
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'reference.added', NEW.file_id, NEW.kind || '/' || NEW.ref_id,
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.workspace_id;
END;

CREATE TRIGGER events_reference_removed AFTER DELETE ON file_references
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = OLD.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'reference.removed', OLD.file_id, OLD.kind || '/' || OLD.ref_id,
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = OLD.workspace_id;
END;

CREATE TRIGGER events_key_revoked AFTER UPDATE OF revoked_at ON api_keys
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1
    WHERE id IN (SELECT workspace_id FROM api_key_workspaces WHERE key_id = NEW.id);
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT w.id, w.event_seq, 'key.revoked', NEW.id, NULL, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces w JOIN api_key_workspaces k ON k.workspace_id = w.id WHERE k.key_id = NEW.id;
END;

CREATE TRIGGER events_tokens_revoked AFTER INSERT ON token_revocations
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'tokens.revoked', NEW.workspace_id, NULLIF(NEW.sub, ''),
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.workspace_id;
END;

CREATE TRIGGER events_tokens_revoked_again AFTER UPDATE ON token_revocations
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.workspace_id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'tokens.revoked', NEW.workspace_id, NULLIF(NEW.sub, ''),
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.workspace_id;
END;

-- Quota: each of 80, 90 and 100 % of the limit, crossed upward by what the workspace holds.
CREATE TRIGGER events_quota_crossed AFTER UPDATE OF used_bytes ON workspaces
WHEN NEW.limit_bytes IS NOT NULL AND NEW.limit_bytes > 0 AND NEW.used_bytes > OLD.used_bytes
 AND (OLD.used_bytes * 100 < NEW.limit_bytes * 80 AND NEW.used_bytes * 100 >= NEW.limit_bytes * 80
   OR OLD.used_bytes * 100 < NEW.limit_bytes * 90 AND NEW.used_bytes * 100 >= NEW.limit_bytes * 90
   OR OLD.used_bytes < NEW.limit_bytes AND NEW.used_bytes >= NEW.limit_bytes)
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = NEW.id;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT id, event_seq, 'quota.crossed', NEW.id,
           CASE WHEN NEW.used_bytes >= NEW.limit_bytes THEN '100'
                WHEN NEW.used_bytes * 100 >= NEW.limit_bytes * 90 THEN '90' ELSE '80' END,
           CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    FROM workspaces WHERE id = NEW.id;
END;

-- The outbox: each change to a workspace's files, folders, uploads, references, keys, tokens and
-- quota writes its event here, by trigger, in the transaction that makes the change, so no path
-- (any surface, the sweepers, the admin CLI) can change something without its event, and no
-- event exists for a change that rolled back. `seq` counts per workspace: the workspace row's
-- `event_seq` is taken (and its row lock held to commit) in the same transaction, so events
-- commit in the order they are numbered and a reader never sees a later number before an
-- earlier one.
ALTER TABLE workspaces ADD COLUMN event_seq BIGINT NOT NULL DEFAULT 0;

CREATE TABLE events (
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    seq           BIGINT NOT NULL,
    type          TEXT NOT NULL,
    object_id     TEXT NOT NULL,
    detail        TEXT,
    at            BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX events_by_time ON events (at);

CREATE FUNCTION record_event(ws TEXT, kind TEXT, object TEXT, detail TEXT) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    next BIGINT;
BEGIN
    UPDATE workspaces SET event_seq = event_seq + 1 WHERE id = ws RETURNING event_seq INTO next;
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    VALUES (ws, next, kind, object, detail, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT);
END;
$$;

CREATE FUNCTION events_of_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event(NEW.workspace_id, 'file.created', NEW.id, NULL);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM record_event(OLD.workspace_id, 'file.purged', OLD.id, NULL);
    ELSIF (OLD.name, OLD.folder_id, OLD.is_favorite, OLD.alt_text, OLD.caption, OLD.copyright, OLD.metadata,
           OLD.tags, OLD.trashed_at, OLD.external_id)
          IS DISTINCT FROM (NEW.name, NEW.folder_id, NEW.is_favorite, NEW.alt_text, NEW.caption, NEW.copyright,
           NEW.metadata, NEW.tags, NEW.trashed_at, NEW.external_id) THEN
        PERFORM record_event(NEW.workspace_id,
            CASE WHEN OLD.trashed_at IS NULL AND NEW.trashed_at IS NOT NULL THEN 'file.trashed'
                 WHEN OLD.trashed_at IS NOT NULL AND NEW.trashed_at IS NULL THEN 'file.restored'
                 WHEN OLD.folder_id IS DISTINCT FROM NEW.folder_id THEN 'file.moved'
                 ELSE 'file.updated' END,
            NEW.id, NULL);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_files AFTER INSERT OR UPDATE OR DELETE ON files
FOR EACH ROW EXECUTE FUNCTION events_of_files();

CREATE FUNCTION events_of_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event(NEW.workspace_id, 'folder.created', NEW.id, NULL);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM record_event(OLD.workspace_id, 'folder.purged', OLD.id, NULL);
    ELSIF (OLD.name, OLD.parent_id, OLD.is_favorite, OLD.trashed_at, OLD.is_shared)
          IS DISTINCT FROM (NEW.name, NEW.parent_id, NEW.is_favorite, NEW.trashed_at, NEW.is_shared) THEN
        PERFORM record_event(NEW.workspace_id,
            CASE WHEN OLD.trashed_at IS NULL AND NEW.trashed_at IS NOT NULL THEN 'folder.trashed'
                 WHEN OLD.trashed_at IS NOT NULL AND NEW.trashed_at IS NULL THEN 'folder.restored'
                 WHEN OLD.parent_id IS DISTINCT FROM NEW.parent_id THEN 'folder.moved'
                 ELSE 'folder.updated' END,
            NEW.id, NULL);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_folders AFTER INSERT OR UPDATE OR DELETE ON folders
FOR EACH ROW EXECUTE FUNCTION events_of_folders();

CREATE FUNCTION events_of_uploads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> NEW.status AND NEW.status IN ('SUCCESS', 'FAILED') THEN
        PERFORM record_event(NEW.workspace_id,
            CASE NEW.status WHEN 'SUCCESS' THEN 'upload.succeeded' ELSE 'upload.failed' END,
            NEW.id, NEW.failure_reason);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_uploads AFTER UPDATE OF status ON uploads
FOR EACH ROW EXECUTE FUNCTION events_of_uploads();

CREATE FUNCTION events_of_references() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM record_event(NEW.workspace_id, 'reference.added', NEW.file_id, NEW.kind || '/' || NEW.ref_id);
    ELSE
        PERFORM record_event(OLD.workspace_id, 'reference.removed', OLD.file_id, OLD.kind || '/' || OLD.ref_id);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_references AFTER INSERT OR DELETE ON file_references
FOR EACH ROW EXECUTE FUNCTION events_of_references();

CREATE FUNCTION events_of_keys() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ws TEXT;
BEGIN
    IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
        FOR ws IN SELECT workspace_id FROM api_key_workspaces WHERE key_id = NEW.id ORDER BY workspace_id LOOP
            PERFORM record_event(ws, 'key.revoked', NEW.id, NULL);
        END LOOP;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_keys AFTER UPDATE OF revoked_at ON api_keys
FOR EACH ROW EXECUTE FUNCTION events_of_keys();

CREATE FUNCTION events_of_token_revocations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_event(NEW.workspace_id, 'tokens.revoked', NEW.workspace_id, NULLIF(NEW.sub, ''));
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_token_revocations AFTER INSERT OR UPDATE ON token_revocations
FOR EACH ROW EXECUTE FUNCTION events_of_token_revocations();

-- Quota: each of 80, 90 and 100 % of the limit, crossed upward by what the workspace holds.
CREATE FUNCTION events_of_quota() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.limit_bytes IS NOT NULL AND NEW.limit_bytes > 0 AND NEW.used_bytes > OLD.used_bytes
       AND (OLD.used_bytes * 100 < NEW.limit_bytes * 80 AND NEW.used_bytes * 100 >= NEW.limit_bytes * 80
         OR OLD.used_bytes * 100 < NEW.limit_bytes * 90 AND NEW.used_bytes * 100 >= NEW.limit_bytes * 90
         OR OLD.used_bytes < NEW.limit_bytes AND NEW.used_bytes >= NEW.limit_bytes) THEN
        PERFORM record_event(NEW.id, 'quota.crossed', NEW.id,
            CASE WHEN NEW.used_bytes >= NEW.limit_bytes THEN '100'
                 WHEN NEW.used_bytes * 100 >= NEW.limit_bytes * 90 THEN '90' ELSE '80' END);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_quota AFTER UPDATE OF used_bytes ON workspaces
FOR EACH ROW EXECUTE FUNCTION events_of_quota();

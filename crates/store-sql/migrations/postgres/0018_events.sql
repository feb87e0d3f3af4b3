-- The outbox: each change to a workspace's files, folders, uploads, references, keys, tokens and
-- quota writes its event here, by trigger, in the transaction that makes the change, so no path
-- (any surface, the sweepers, the admin CLI) can change something without its event, and no
-- event exists for a change that rolled back. `seq` counts per workspace: the workspace row's
-- `event_seq` is taken (and its row lock held to commit) in the same transaction, so events
-- commit in the order they are numbered and a reader never sees a later number before an
-- earlier one. The triggers on files, folders, uploads and references run once per statement
-- (over its transition tables), so a statement that changes many rows moves each workspace's
-- `event_seq` once, not once a row.
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

-- Records one event per element of the arrays (same length), numbered on after each
-- workspace's last.
CREATE FUNCTION record_events(ws TEXT[], kinds TEXT[], objects TEXT[], details TEXT[]) RETURNS void
LANGUAGE sql AS $$
    WITH changes AS (
        SELECT * FROM unnest(ws, kinds, objects, details) WITH ORDINALITY AS c (workspace_id, kind, object_id, detail, n)
    ),
    counts AS (SELECT workspace_id, COUNT(*) AS count FROM changes GROUP BY workspace_id),
    bumped AS (
        UPDATE workspaces w SET event_seq = w.event_seq + counts.count FROM counts
        WHERE w.id = counts.workspace_id
        RETURNING w.id, w.event_seq - counts.count AS base
    )
    INSERT INTO events (workspace_id, seq, type, object_id, detail, at)
    SELECT c.workspace_id, b.base + row_number() OVER (PARTITION BY c.workspace_id ORDER BY c.n), c.kind,
           c.object_id, c.detail, (extract(epoch FROM clock_timestamp()) * 1000)::BIGINT
    FROM changes c JOIN bumped b ON b.id = c.workspace_id
$$;

CREATE FUNCTION events_of_new_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(array_agg(workspace_id), array_agg('file.created'::TEXT), array_agg(id), array_agg(NULL::TEXT))
    FROM new_rows;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_new_files AFTER INSERT ON files
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION events_of_new_files();

CREATE FUNCTION events_of_changed_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(array_agg(n.workspace_id),
        array_agg(CASE WHEN o.trashed_at IS NULL AND n.trashed_at IS NOT NULL THEN 'file.trashed'
                       WHEN o.trashed_at IS NOT NULL AND n.trashed_at IS NULL THEN 'file.restored'
                       WHEN o.folder_id IS DISTINCT FROM n.folder_id THEN 'file.moved'
                       ELSE 'file.updated' END),
        array_agg(n.id), array_agg(NULL::TEXT))
    FROM new_rows n JOIN old_rows o ON o.workspace_id = n.workspace_id AND o.id = n.id
    WHERE (o.name, o.folder_id, o.is_favorite, o.alt_text, o.caption, o.copyright, o.metadata, o.tags,
           o.trashed_at, o.external_id)
          IS DISTINCT FROM (n.name, n.folder_id, n.is_favorite, n.alt_text, n.caption, n.copyright, n.metadata,
           n.tags, n.trashed_at, n.external_id);
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_changed_files AFTER UPDATE ON files
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION events_of_changed_files();

CREATE FUNCTION events_of_purged_files() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(array_agg(workspace_id), array_agg('file.purged'::TEXT), array_agg(id), array_agg(NULL::TEXT))
    FROM old_rows;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_purged_files AFTER DELETE ON files
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION events_of_purged_files();

CREATE FUNCTION events_of_new_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(array_agg(workspace_id), array_agg('folder.created'::TEXT), array_agg(id), array_agg(NULL::TEXT))
    FROM new_rows;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_new_folders AFTER INSERT ON folders
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION events_of_new_folders();

CREATE FUNCTION events_of_changed_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(array_agg(n.workspace_id),
        array_agg(CASE WHEN o.trashed_at IS NULL AND n.trashed_at IS NOT NULL THEN 'folder.trashed'
                       WHEN o.trashed_at IS NOT NULL AND n.trashed_at IS NULL THEN 'folder.restored'
                       WHEN o.parent_id IS DISTINCT FROM n.parent_id THEN 'folder.moved'
                       ELSE 'folder.updated' END),
        array_agg(n.id), array_agg(NULL::TEXT))
    FROM new_rows n JOIN old_rows o ON o.workspace_id = n.workspace_id AND o.id = n.id
    WHERE (o.name, o.parent_id, o.is_favorite, o.trashed_at, o.is_shared)
          IS DISTINCT FROM (n.name, n.parent_id, n.is_favorite, n.trashed_at, n.is_shared);
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_changed_folders AFTER UPDATE ON folders
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION events_of_changed_folders();

CREATE FUNCTION events_of_purged_folders() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(array_agg(workspace_id), array_agg('folder.purged'::TEXT), array_agg(id), array_agg(NULL::TEXT))
    FROM old_rows;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_purged_folders AFTER DELETE ON folders
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION events_of_purged_folders();

CREATE FUNCTION events_of_ended_uploads() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(array_agg(n.workspace_id),
        array_agg(CASE n.status WHEN 'SUCCESS' THEN 'upload.succeeded' ELSE 'upload.failed' END),
        array_agg(n.id), array_agg(n.failure_reason))
    FROM new_rows n JOIN old_rows o ON o.workspace_id = n.workspace_id AND o.id = n.id
    WHERE o.status <> n.status AND n.status IN ('SUCCESS', 'FAILED');
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_ended_uploads AFTER UPDATE ON uploads
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION events_of_ended_uploads();

CREATE FUNCTION events_of_new_references() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(array_agg(workspace_id), array_agg('reference.added'::TEXT), array_agg(file_id),
        array_agg(kind || '/' || ref_id))
    FROM new_rows;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_new_references AFTER INSERT ON file_references
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION events_of_new_references();

CREATE FUNCTION events_of_removed_references() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(array_agg(workspace_id), array_agg('reference.removed'::TEXT), array_agg(file_id),
        array_agg(kind || '/' || ref_id))
    FROM old_rows;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_removed_references AFTER DELETE ON file_references
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION events_of_removed_references();

CREATE FUNCTION events_of_keys() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL THEN
        PERFORM record_events(array_agg(workspace_id ORDER BY workspace_id), array_agg('key.revoked'::TEXT),
            array_agg(NEW.id), array_agg(NULL::TEXT))
        FROM api_key_workspaces WHERE key_id = NEW.id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_keys AFTER UPDATE OF revoked_at ON api_keys
FOR EACH ROW EXECUTE FUNCTION events_of_keys();

CREATE FUNCTION events_of_token_revocations() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM record_events(ARRAY[NEW.workspace_id], ARRAY['tokens.revoked'], ARRAY[NEW.workspace_id],
        ARRAY[NULLIF(NEW.sub, '')]);
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
        PERFORM record_events(ARRAY[NEW.id], ARRAY['quota.crossed'], ARRAY[NEW.id],
            ARRAY[CASE WHEN NEW.used_bytes >= NEW.limit_bytes THEN '100'
                       WHEN NEW.used_bytes * 100 >= NEW.limit_bytes * 90 THEN '90' ELSE '80' END]);
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_of_quota AFTER UPDATE OF used_bytes ON workspaces
FOR EACH ROW EXECUTE FUNCTION events_of_quota();

-- How many live (untrashed) files each workspace holds, kept by the database itself so that every
-- path that creates, trashes, restores or deletes a file keeps it true. It answers the `total` of
-- an unfiltered list without counting (a count grows with the workspace; this does not).
ALTER TABLE workspaces ADD COLUMN live_files INTEGER NOT NULL DEFAULT 0;

UPDATE workspaces SET live_files =
    (SELECT COUNT(*) FROM files f WHERE f.workspace_id = workspaces.id AND f.trashed_at IS NULL);

CREATE TRIGGER files_live_count_insert AFTER INSERT ON files
WHEN NEW.trashed_at IS NULL
BEGIN
    UPDATE workspaces SET live_files = live_files + 1 WHERE id = NEW.workspace_id;
END;

CREATE TRIGGER files_live_count_delete AFTER DELETE ON files
WHEN OLD.trashed_at IS NULL
BEGIN
    UPDATE workspaces SET live_files = live_files - 1 WHERE id = OLD.workspace_id;
END;

CREATE TRIGGER files_live_count_trash AFTER UPDATE OF trashed_at ON files
WHEN (OLD.trashed_at IS NULL) <> (NEW.trashed_at IS NULL)
BEGIN
    UPDATE workspaces
    SET live_files = live_files + (CASE WHEN NEW.trashed_at IS NULL THEN 1 ELSE -1 END)
    WHERE id = NEW.workspace_id;
END;

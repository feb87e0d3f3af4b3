-- A file may carry an id of the client's choosing (the CMS dialect's `api_id`), unique among the
-- live files of its workspace: a trashed file keeps its id without holding it.
ALTER TABLE files ADD COLUMN external_id TEXT;
CREATE UNIQUE INDEX files_external_ids ON files (workspace_id, external_id)
    WHERE external_id IS NOT NULL AND trashed_at IS NULL;

-- Tags keep the spelling they were given: `tag` stays the folded key that filters and counts
-- match on, `spelling` is how the file carries it (what `available_tags` and the like show).
ALTER TABLE file_tags ADD COLUMN spelling TEXT;
UPDATE file_tags SET spelling = tag;

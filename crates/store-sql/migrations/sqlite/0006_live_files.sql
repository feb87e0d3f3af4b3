-- Live files, newest first: serves the default list and counts live files from the index alone.
CREATE INDEX files_live_newest ON files (workspace_id, trashed_at, created_at, id);

-- How many live (untrashed) files each workspace holds, kept by the database itself so that every
-- path that creates, trashes, restores or deletes a file keeps it true. It answers the `total` of
-- an unfiltered list without counting (a count grows with the workspace; this does not).
ALTER TABLE workspaces ADD COLUMN live_files BIGINT NOT NULL DEFAULT 0;

UPDATE workspaces SET live_files =
    (SELECT COUNT(*) FROM files f WHERE f.workspace_id = workspaces.id AND f.trashed_at IS NULL);

-- Statement-level, over the transition tables: a statement that trashes a folder of 10,000 files
-- moves the counter once, not 10,000 times (which would also grow one row's version chain).
CREATE FUNCTION files_live_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE workspaces w SET live_files = w.live_files + d.delta
        FROM (SELECT workspace_id, COUNT(*) AS delta FROM new_rows WHERE trashed_at IS NULL
              GROUP BY workspace_id) d
        WHERE w.id = d.workspace_id;
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE workspaces w SET live_files = w.live_files - d.delta
        FROM (SELECT workspace_id, COUNT(*) AS delta FROM old_rows WHERE trashed_at IS NULL
              GROUP BY workspace_id) d
        WHERE w.id = d.workspace_id;
    ELSE
        UPDATE workspaces w SET live_files = w.live_files + d.delta
        FROM (SELECT workspace_id, SUM(change) AS delta
              FROM (SELECT workspace_id, 1 AS change FROM new_rows WHERE trashed_at IS NULL
                    UNION ALL
                    SELECT workspace_id, -1 FROM old_rows WHERE trashed_at IS NULL) changes
              GROUP BY workspace_id) d
        WHERE w.id = d.workspace_id AND d.delta <> 0;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER files_live_count_insert AFTER INSERT ON files
REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION files_live_count();
CREATE TRIGGER files_live_count_delete AFTER DELETE ON files
REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION files_live_count();
CREATE TRIGGER files_live_count_update AFTER UPDATE ON files
REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION files_live_count();

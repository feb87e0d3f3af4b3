-- A file's details (its row and its references) are kept in memory by each node like keys are
-- (migration 0023), so every change to them notifies `cabinet_cache` in its transaction: with
-- the file's id, or with its workspace's id when one statement changes more than 64 files (a
-- folder trashed or purged with what it holds), so a bulk change sends a few notices rather than
-- one a file. A new file notifies nothing: nothing can be kept of it before it exists.
CREATE FUNCTION file_details_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('cabinet_cache', '*');
    ELSIF (SELECT COUNT(*) FROM changed) > 64 THEN
        PERFORM pg_notify('cabinet_cache', w.workspace_id) FROM (SELECT DISTINCT workspace_id FROM changed) w;
    ELSIF TG_TABLE_NAME = 'files' THEN
        PERFORM pg_notify('cabinet_cache', c.id) FROM changed c;
    ELSE
        PERFORM pg_notify('cabinet_cache', c.file_id) FROM changed c;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER files_changed_notice AFTER UPDATE ON files
REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION file_details_changed();
CREATE TRIGGER files_removed_notice AFTER DELETE ON files
REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION file_details_changed();
CREATE TRIGGER files_emptied_notice AFTER TRUNCATE ON files
FOR EACH STATEMENT EXECUTE FUNCTION file_details_changed();
CREATE TRIGGER file_references_added_notice AFTER INSERT ON file_references
REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION file_details_changed();
CREATE TRIGGER file_references_changed_notice AFTER UPDATE ON file_references
REFERENCING NEW TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION file_details_changed();
CREATE TRIGGER file_references_removed_notice AFTER DELETE ON file_references
REFERENCING OLD TABLE AS changed FOR EACH STATEMENT EXECUTE FUNCTION file_details_changed();
CREATE TRIGGER file_references_emptied_notice AFTER TRUNCATE ON file_references
FOR EACH STATEMENT EXECUTE FUNCTION file_details_changed();

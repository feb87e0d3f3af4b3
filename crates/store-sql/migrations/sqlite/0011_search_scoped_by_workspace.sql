-- Name search scoped by workspace inside the index, so that what one workspace's search costs does
-- not depend on the names in any other. The shared trigram index found every workspace's matches
-- and dropped the others' after; now each index row is numbered (workspace's rowid << 38) | row's
-- rowid, and a search asks FTS5 for its workspace's range of rowids only, which it seeks to in
-- each trigram's list. The index keeps no copy of the names (contentless) and is filled from the
-- existing rows, so everything stays searchable.
DROP TRIGGER files_search_insert;
DROP TRIGGER files_search_delete;
DROP TRIGGER files_search_update;
DROP TABLE files_search;
DROP TRIGGER folders_search_insert;
DROP TRIGGER folders_search_delete;
DROP TRIGGER folders_search_update;
DROP TABLE folders_search;

-- 2^38 rows per table and 2^25 workspaces fit in a rowid; the triggers refuse more.
CREATE VIRTUAL TABLE files_search USING fts5 (name_folded, content = '', contentless_delete = 1, tokenize = 'trigram');
INSERT INTO files_search (rowid, name_folded)
    SELECT (w.rowid << 38) | f.rowid, f.name_folded FROM files f JOIN workspaces w ON w.id = f.workspace_id;
CREATE TRIGGER files_search_insert AFTER INSERT ON files BEGIN
    SELECT RAISE(ABORT, 'beyond the rows the search index can number')
        WHERE new.rowid >= 274877906944 OR (SELECT rowid FROM workspaces WHERE id = new.workspace_id) >= 33554432;
    INSERT INTO files_search (rowid, name_folded)
        VALUES (((SELECT rowid FROM workspaces WHERE id = new.workspace_id) << 38) | new.rowid, new.name_folded);
END;
CREATE TRIGGER files_search_delete AFTER DELETE ON files BEGIN
    DELETE FROM files_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
END;
CREATE TRIGGER files_search_update AFTER UPDATE OF name_folded ON files BEGIN
    DELETE FROM files_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
    INSERT INTO files_search (rowid, name_folded)
        VALUES (((SELECT rowid FROM workspaces WHERE id = new.workspace_id) << 38) | new.rowid, new.name_folded);
END;

CREATE VIRTUAL TABLE folders_search USING fts5 (name_folded, content = '', contentless_delete = 1, tokenize = 'trigram');
INSERT INTO folders_search (rowid, name_folded)
    SELECT (w.rowid << 38) | f.rowid, f.name_folded FROM folders f JOIN workspaces w ON w.id = f.workspace_id;
CREATE TRIGGER folders_search_insert AFTER INSERT ON folders BEGIN
    SELECT RAISE(ABORT, 'beyond the rows the search index can number')
        WHERE new.rowid >= 274877906944 OR (SELECT rowid FROM workspaces WHERE id = new.workspace_id) >= 33554432;
    INSERT INTO folders_search (rowid, name_folded)
        VALUES (((SELECT rowid FROM workspaces WHERE id = new.workspace_id) << 38) | new.rowid, new.name_folded);
END;
CREATE TRIGGER folders_search_delete AFTER DELETE ON folders BEGIN
    DELETE FROM folders_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
END;
CREATE TRIGGER folders_search_update AFTER UPDATE OF name_folded ON folders BEGIN
    DELETE FROM folders_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
    INSERT INTO folders_search (rowid, name_folded)
        VALUES (((SELECT rowid FROM workspaces WHERE id = new.workspace_id) << 38) | new.rowid, new.name_folded);
END;

-- Name search keyed by four bytes instead of three. A key of three bytes is common: at
-- 10,000,000 names of the form `photo 1234567 w0042.jpg`, `w00`, `004` and `042` each stood in a
-- hundred thousand names or more, and the phrase of a query's keys read all of their lists
-- (12 ms) to find the 10,000 that hold `w0042`. Keys of four bytes are rarer (the same phrase
-- reads 1.3 ms of lists).
-- Each name is indexed as the keys of four bytes that start at each of its offsets, except the
-- last, which holds the name's final three (`substr` stops at the name's end): so every offset a
-- substring of three bytes or more can start at has a key, in order. A query of four bytes or
-- more is the phrase of its own four-byte keys; one of three bytes is the prefix of a key (it
-- matches the four-byte keys it begins and a name's final three bytes).
-- Keys stay per workspace (its rowid, `x`, the bytes in hex) and rows keep their numbering
-- (workspace's rowid << 38 | row's rowid).

DROP TRIGGER files_search_insert;
DROP TRIGGER files_search_delete;
DROP TRIGGER files_search_update;
DROP TABLE files_search;
DROP TRIGGER folders_search_insert;
DROP TRIGGER folders_search_delete;
DROP TRIGGER folders_search_update;
DROP TABLE folders_search;

-- The keys hold only ASCII letters and digits, which the `ascii` tokenizer keeps whole.
CREATE VIRTUAL TABLE files_search USING fts5 (name_keys, content = '', contentless_delete = 1, tokenize = 'ascii');
INSERT INTO files_search (rowid, name_keys)
    SELECT (w.rowid << 38) | f.rowid,
           (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(f.name_folded AS BLOB), s.n, 4)), ' ' ORDER BY s.n)
            FROM search_trigram_starts s WHERE s.n <= length(CAST(f.name_folded AS BLOB)) - 2)
    FROM files f JOIN workspaces w ON w.id = f.workspace_id;
CREATE TRIGGER files_search_insert AFTER INSERT ON files BEGIN
    SELECT RAISE(ABORT, 'beyond the rows the search index can number')
        WHERE new.rowid >= 274877906944 OR (SELECT rowid FROM workspaces WHERE id = new.workspace_id) >= 33554432;
    INSERT INTO files_search (rowid, name_keys)
        SELECT (w.rowid << 38) | new.rowid,
               (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(new.name_folded AS BLOB), s.n, 4)), ' ' ORDER BY s.n)
                FROM search_trigram_starts s WHERE s.n <= length(CAST(new.name_folded AS BLOB)) - 2)
        FROM workspaces w WHERE w.id = new.workspace_id;
END;
CREATE TRIGGER files_search_delete AFTER DELETE ON files BEGIN
    DELETE FROM files_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
END;
CREATE TRIGGER files_search_update AFTER UPDATE OF name_folded ON files BEGIN
    DELETE FROM files_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
    INSERT INTO files_search (rowid, name_keys)
        SELECT (w.rowid << 38) | new.rowid,
               (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(new.name_folded AS BLOB), s.n, 4)), ' ' ORDER BY s.n)
                FROM search_trigram_starts s WHERE s.n <= length(CAST(new.name_folded AS BLOB)) - 2)
        FROM workspaces w WHERE w.id = new.workspace_id;
END;

CREATE VIRTUAL TABLE folders_search USING fts5 (name_keys, content = '', contentless_delete = 1, tokenize = 'ascii');
INSERT INTO folders_search (rowid, name_keys)
    SELECT (w.rowid << 38) | f.rowid,
           (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(f.name_folded AS BLOB), s.n, 4)), ' ' ORDER BY s.n)
            FROM search_trigram_starts s WHERE s.n <= length(CAST(f.name_folded AS BLOB)) - 2)
    FROM folders f JOIN workspaces w ON w.id = f.workspace_id;
CREATE TRIGGER folders_search_insert AFTER INSERT ON folders BEGIN
    SELECT RAISE(ABORT, 'beyond the rows the search index can number')
        WHERE new.rowid >= 274877906944 OR (SELECT rowid FROM workspaces WHERE id = new.workspace_id) >= 33554432;
    INSERT INTO folders_search (rowid, name_keys)
        SELECT (w.rowid << 38) | new.rowid,
               (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(new.name_folded AS BLOB), s.n, 4)), ' ' ORDER BY s.n)
                FROM search_trigram_starts s WHERE s.n <= length(CAST(new.name_folded AS BLOB)) - 2)
        FROM workspaces w WHERE w.id = new.workspace_id;
END;
CREATE TRIGGER folders_search_delete AFTER DELETE ON folders BEGIN
    DELETE FROM folders_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
END;
CREATE TRIGGER folders_search_update AFTER UPDATE OF name_folded ON folders BEGIN
    DELETE FROM folders_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
    INSERT INTO folders_search (rowid, name_keys)
        SELECT (w.rowid << 38) | new.rowid,
               (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(new.name_folded AS BLOB), s.n, 4)), ' ' ORDER BY s.n)
                FROM search_trigram_starts s WHERE s.n <= length(CAST(new.name_folded AS BLOB)) - 2)
        FROM workspaces w WHERE w.id = new.workspace_id;
END;

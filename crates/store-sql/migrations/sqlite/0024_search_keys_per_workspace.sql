-- Name search keyed by workspace inside the index, as PostgreSQL's (its migration 0011). The
-- trigram index numbered its rows by workspace and a search asked for its workspace's range, but
-- the trigrams themselves were shared: a search for a term that only another workspace held
-- found the term's lists and seeked through them, and took longer than one for a term nobody
-- held, so its time told of the other's names. Now each name is indexed as the keys of its
-- trigrams, each key its workspace's rowid, `x`, and three bytes of its UTF-8 in hex
-- (`12x616263`), in order, so a search's phrase of keys finds only its own workspace's lists.
-- The trigrams are of bytes, not characters: in UTF-8 a string is a substring of another exactly
-- when its bytes are, and a blob's bytes are reached at their offset where a text's characters are
-- counted from its start (a name's keys cost time in its length, not its square).
-- Rows keep their numbering (workspace's rowid << 38 | row's rowid).

-- Where a name's trigrams may start: names are at most 255 characters, and folding (NFKC, lower
-- case) makes a character at most 33 bytes (U+FDFA).
CREATE TABLE search_trigram_starts (n INTEGER PRIMARY KEY);
INSERT INTO search_trigram_starts (n)
    WITH RECURSIVE starts (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM starts WHERE n < 16384)
    SELECT n FROM starts;

DROP TRIGGER files_search_insert;
DROP TRIGGER files_search_delete;
DROP TRIGGER files_search_update;
DROP TABLE files_search;
DROP TRIGGER folders_search_insert;
DROP TRIGGER folders_search_delete;
DROP TRIGGER folders_search_update;
DROP TABLE folders_search;

-- The keys hold only ASCII letters and digits, which the `ascii` tokenizer keeps whole.
CREATE VIRTUAL TABLE files_search USING fts5 (trigram_keys, content = '', contentless_delete = 1, tokenize = 'ascii');
INSERT INTO files_search (rowid, trigram_keys)
    SELECT (w.rowid << 38) | f.rowid,
           (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(f.name_folded AS BLOB), s.n, 3)), ' ' ORDER BY s.n)
            FROM search_trigram_starts s WHERE s.n <= length(CAST(f.name_folded AS BLOB)) - 2)
    FROM files f JOIN workspaces w ON w.id = f.workspace_id;
CREATE TRIGGER files_search_insert AFTER INSERT ON files BEGIN
    SELECT RAISE(ABORT, 'beyond the rows the search index can number')
        WHERE new.rowid >= 274877906944 OR (SELECT rowid FROM workspaces WHERE id = new.workspace_id) >= 33554432;
    INSERT INTO files_search (rowid, trigram_keys)
        SELECT (w.rowid << 38) | new.rowid,
               (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(new.name_folded AS BLOB), s.n, 3)), ' ' ORDER BY s.n)
                FROM search_trigram_starts s WHERE s.n <= length(CAST(new.name_folded AS BLOB)) - 2)
        FROM workspaces w WHERE w.id = new.workspace_id;
END;
CREATE TRIGGER files_search_delete AFTER DELETE ON files BEGIN
    DELETE FROM files_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
END;
CREATE TRIGGER files_search_update AFTER UPDATE OF name_folded ON files BEGIN
    DELETE FROM files_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
    INSERT INTO files_search (rowid, trigram_keys)
        SELECT (w.rowid << 38) | new.rowid,
               (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(new.name_folded AS BLOB), s.n, 3)), ' ' ORDER BY s.n)
                FROM search_trigram_starts s WHERE s.n <= length(CAST(new.name_folded AS BLOB)) - 2)
        FROM workspaces w WHERE w.id = new.workspace_id;
END;

CREATE VIRTUAL TABLE folders_search USING fts5 (trigram_keys, content = '', contentless_delete = 1, tokenize = 'ascii');
INSERT INTO folders_search (rowid, trigram_keys)
    SELECT (w.rowid << 38) | f.rowid,
           (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(f.name_folded AS BLOB), s.n, 3)), ' ' ORDER BY s.n)
            FROM search_trigram_starts s WHERE s.n <= length(CAST(f.name_folded AS BLOB)) - 2)
    FROM folders f JOIN workspaces w ON w.id = f.workspace_id;
CREATE TRIGGER folders_search_insert AFTER INSERT ON folders BEGIN
    SELECT RAISE(ABORT, 'beyond the rows the search index can number')
        WHERE new.rowid >= 274877906944 OR (SELECT rowid FROM workspaces WHERE id = new.workspace_id) >= 33554432;
    INSERT INTO folders_search (rowid, trigram_keys)
        SELECT (w.rowid << 38) | new.rowid,
               (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(new.name_folded AS BLOB), s.n, 3)), ' ' ORDER BY s.n)
                FROM search_trigram_starts s WHERE s.n <= length(CAST(new.name_folded AS BLOB)) - 2)
        FROM workspaces w WHERE w.id = new.workspace_id;
END;
CREATE TRIGGER folders_search_delete AFTER DELETE ON folders BEGIN
    DELETE FROM folders_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
END;
CREATE TRIGGER folders_search_update AFTER UPDATE OF name_folded ON folders BEGIN
    DELETE FROM folders_search WHERE rowid = ((SELECT rowid FROM workspaces WHERE id = old.workspace_id) << 38) | old.rowid;
    INSERT INTO folders_search (rowid, trigram_keys)
        SELECT (w.rowid << 38) | new.rowid,
               (SELECT group_concat(w.rowid || 'x' || hex(substr(CAST(new.name_folded AS BLOB), s.n, 3)), ' ' ORDER BY s.n)
                FROM search_trigram_starts s WHERE s.n <= length(CAST(new.name_folded AS BLOB)) - 2)
        FROM workspaces w WHERE w.id = new.workspace_id;
END;

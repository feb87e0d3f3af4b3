-- Folders, favorites, trash, tags, metadata and references.
-- Names are compared case-insensitively through `name_folded` (Unicode lowercase, computed by the
-- core), which also feeds the trigram search index.

CREATE TABLE folders (
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    id            TEXT NOT NULL,
    parent_id     TEXT,
    name          TEXT NOT NULL,
    name_folded   TEXT NOT NULL,
    is_favorite   INTEGER NOT NULL DEFAULT 0,
    trashed_at    INTEGER,
    -- The folder whose trashing took this one along; NULL when trashed on its own.
    trash_root    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
-- Sibling folders have distinct names, among those not in the trash.
CREATE UNIQUE INDEX folders_sibling_names ON folders (workspace_id, COALESCE(parent_id, ''), name_folded)
    WHERE trashed_at IS NULL;
CREATE INDEX folders_children ON folders (workspace_id, parent_id);
CREATE INDEX folders_trash ON folders (workspace_id, trashed_at) WHERE trashed_at IS NOT NULL;

ALTER TABLE files ADD COLUMN name_folded TEXT NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN is_favorite INTEGER NOT NULL DEFAULT 0;
ALTER TABLE files ADD COLUMN alt_text TEXT;
ALTER TABLE files ADD COLUMN caption TEXT;
ALTER TABLE files ADD COLUMN copyright TEXT;
ALTER TABLE files ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
-- The file's tags as a JSON array, for reading; `file_tags` is for filtering and counting.
ALTER TABLE files ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE files ADD COLUMN trashed_at INTEGER;
ALTER TABLE files ADD COLUMN trash_root TEXT;
ALTER TABLE files ADD COLUMN created_by TEXT;
UPDATE files SET name_folded = lower(name);

CREATE INDEX files_in_folder ON files (workspace_id, folder_id, created_at);
CREATE INDEX files_trash ON files (workspace_id, trashed_at) WHERE trashed_at IS NOT NULL;
CREATE INDEX files_by_name ON files (workspace_id, name_folded, id);
CREATE INDEX files_by_size ON files (workspace_id, size, id);
CREATE INDEX files_by_updated ON files (workspace_id, updated_at, id);

CREATE TABLE file_tags (
    workspace_id  TEXT NOT NULL,
    file_id       TEXT NOT NULL,
    tag           TEXT NOT NULL,
    PRIMARY KEY (workspace_id, tag, file_id)
);
CREATE INDEX file_tags_by_file ON file_tags (workspace_id, file_id);

CREATE TABLE file_references (
    workspace_id  TEXT NOT NULL,
    file_id       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    ref_id        TEXT NOT NULL,
    label         TEXT,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, file_id, kind, ref_id)
);
CREATE INDEX file_references_by_referrer ON file_references (workspace_id, kind, ref_id);

-- Substring search on names: a trigram index kept in step with the tables by triggers.
CREATE VIRTUAL TABLE files_search USING fts5 (name_folded, content = 'files', content_rowid = 'rowid', tokenize = 'trigram');
INSERT INTO files_search (rowid, name_folded) SELECT rowid, name_folded FROM files;
CREATE TRIGGER files_search_insert AFTER INSERT ON files BEGIN
    INSERT INTO files_search (rowid, name_folded) VALUES (new.rowid, new.name_folded);
END;
CREATE TRIGGER files_search_delete AFTER DELETE ON files BEGIN
    INSERT INTO files_search (files_search, rowid, name_folded) VALUES ('delete', old.rowid, old.name_folded);
END;
CREATE TRIGGER files_search_update AFTER UPDATE OF name_folded ON files BEGIN
    INSERT INTO files_search (files_search, rowid, name_folded) VALUES ('delete', old.rowid, old.name_folded);
    INSERT INTO files_search (rowid, name_folded) VALUES (new.rowid, new.name_folded);
END;

CREATE VIRTUAL TABLE folders_search USING fts5 (name_folded, content = 'folders', content_rowid = 'rowid', tokenize = 'trigram');
CREATE TRIGGER folders_search_insert AFTER INSERT ON folders BEGIN
    INSERT INTO folders_search (rowid, name_folded) VALUES (new.rowid, new.name_folded);
END;
CREATE TRIGGER folders_search_delete AFTER DELETE ON folders BEGIN
    INSERT INTO folders_search (folders_search, rowid, name_folded) VALUES ('delete', old.rowid, old.name_folded);
END;
CREATE TRIGGER folders_search_update AFTER UPDATE OF name_folded ON folders BEGIN
    INSERT INTO folders_search (folders_search, rowid, name_folded) VALUES ('delete', old.rowid, old.name_folded);
    INSERT INTO folders_search (rowid, name_folded) VALUES (new.rowid, new.name_folded);
END;

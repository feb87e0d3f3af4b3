-- Folders, favorites, trash, tags, metadata and references (the same as SQLite's 0002).
-- Names are compared case-insensitively through `name_folded` (Unicode lowercase, computed by the
-- core), which also feeds the pg_trgm search index.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE folders (
    workspace_id  TEXT NOT NULL REFERENCES workspaces (id),
    id            TEXT NOT NULL,
    parent_id     TEXT,
    name          TEXT NOT NULL,
    name_folded   TEXT NOT NULL,
    is_favorite   BOOLEAN NOT NULL DEFAULT FALSE,
    trashed_at    BIGINT,
    trash_root    TEXT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, id)
);
CREATE UNIQUE INDEX folders_sibling_names ON folders (workspace_id, COALESCE(parent_id, ''), name_folded)
    WHERE trashed_at IS NULL;
CREATE INDEX folders_children ON folders (workspace_id, parent_id);
CREATE INDEX folders_trash ON folders (workspace_id, trashed_at) WHERE trashed_at IS NOT NULL;
CREATE INDEX folders_name_trgm ON folders USING gin (name_folded gin_trgm_ops);

ALTER TABLE files ADD COLUMN name_folded TEXT NOT NULL DEFAULT '';
ALTER TABLE files ADD COLUMN is_favorite BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE files ADD COLUMN alt_text TEXT;
ALTER TABLE files ADD COLUMN caption TEXT;
ALTER TABLE files ADD COLUMN copyright TEXT;
ALTER TABLE files ADD COLUMN metadata TEXT NOT NULL DEFAULT '{}';
ALTER TABLE files ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
ALTER TABLE files ADD COLUMN trashed_at BIGINT;
ALTER TABLE files ADD COLUMN trash_root TEXT;
ALTER TABLE files ADD COLUMN created_by TEXT;
UPDATE files SET name_folded = lower(name);

CREATE INDEX files_in_folder ON files (workspace_id, folder_id, created_at);
CREATE INDEX files_trash ON files (workspace_id, trashed_at) WHERE trashed_at IS NOT NULL;
CREATE INDEX files_by_name ON files (workspace_id, name_folded, id);
CREATE INDEX files_by_size ON files (workspace_id, size, id);
CREATE INDEX files_by_updated ON files (workspace_id, updated_at, id);
CREATE INDEX files_name_trgm ON files USING gin (name_folded gin_trgm_ops);

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
    created_at    BIGINT NOT NULL,
    PRIMARY KEY (workspace_id, file_id, kind, ref_id)
);
CREATE INDEX file_references_by_referrer ON file_references (workspace_id, kind, ref_id);

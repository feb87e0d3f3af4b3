-- An upload that awaits its record (Mavera's `POST /files`) keeps its verified bytes at its
-- arrival key, WAITING, until a client records it: only then does it become a file.
ALTER TABLE uploads ADD COLUMN awaits_record BOOLEAN NOT NULL DEFAULT FALSE;
-- A folder marked shared with every member of its workspace (Mavera's `is_shared`).
ALTER TABLE folders ADD COLUMN is_shared BOOLEAN NOT NULL DEFAULT FALSE;
-- An upload is found by the id its file will have (MAVI names an asset by it from the start).
CREATE INDEX uploads_by_file ON uploads (workspace_id, file_id);

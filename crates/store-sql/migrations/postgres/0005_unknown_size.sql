-- Uploads whose size is not declared up front (the MAVI dialect's signed URLs): nothing is
-- reserved, and the quota is charged when the file is created.
ALTER TABLE uploads ADD COLUMN size_known BOOLEAN NOT NULL DEFAULT TRUE;

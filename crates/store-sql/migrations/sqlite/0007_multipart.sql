-- Resumable multipart uploads: the size of every part but the last (NULL for an ordinary upload),
-- and the blob store's own id for the parts (S3's UploadId), when it keeps one.
ALTER TABLE uploads ADD COLUMN part_size INTEGER CHECK (part_size IS NULL OR part_size > 0);
ALTER TABLE uploads ADD COLUMN multipart_id TEXT;

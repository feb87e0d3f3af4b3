-- What the S3 surface keeps of an object beside its file, not only its ETag: the representation
-- headers given when it was written (Cache-Control, Content-Disposition, Content-Encoding,
-- Content-Language, Expires as an HTTP date), answered on GET and HEAD as S3 answers them; the
-- sizes of the parts it was completed from (comma-separated, in order; NULL for one PUT), so one
-- part can be read by its number; and the object's own checksum when the client asked for one
-- (algorithm, COMPOSITE or FULL_OBJECT, and the base64 value S3 answers, `-N` for a composite),
-- with its parts' checksums of that algorithm (comma-separated base64, in order).
-- They are the S3 surface's own: other surfaces serve their own headers for the same file.
ALTER TABLE s3_etags RENAME TO s3_objects;
ALTER TABLE s3_objects ADD COLUMN cache_control TEXT;
ALTER TABLE s3_objects ADD COLUMN content_disposition TEXT;
ALTER TABLE s3_objects ADD COLUMN content_encoding TEXT;
ALTER TABLE s3_objects ADD COLUMN content_language TEXT;
ALTER TABLE s3_objects ADD COLUMN expires TEXT;
ALTER TABLE s3_objects ADD COLUMN part_sizes TEXT;
ALTER TABLE s3_objects ADD COLUMN checksum_algorithm TEXT;
ALTER TABLE s3_objects ADD COLUMN checksum_type TEXT;
ALTER TABLE s3_objects ADD COLUMN checksum TEXT;
ALTER TABLE s3_objects ADD COLUMN part_checksums TEXT;

-- Uploads that failed while their URL was still valid, by the URL's expiry. A presigned PUT
-- (bytes sent straight to S3) can land after its upload was cancelled or refused, until its URL
-- expires; the sweeper removes what landed once that moment has passed (see
-- `Cabinet::sweep_expired_uploads`).
CREATE INDEX uploads_failed_by_expiry ON uploads (expires_at, id) WHERE status = 'FAILED';

//! An S3 bucket as blob store. Bytes move through `object_store`; URLs that let clients talk to
//! the bucket directly (presigned PUT and GET, the POST policy) are signed here with SigV4, so
//! file bytes of signed uploads and downloads never pass through Cabinet.
//!
//! Layout of the bucket: a file's blob at its key (`ws_…/file_…`); bytes streamed through Cabinet
//! at `tmp/<id>` until committed (a server-side copy, so the final key is never partial); bytes a
//! client sends directly in one PUT at the key Cabinet presigns: the upload's `incoming/…` key
//! until Cabinet has verified them and copied them into place, or, when the upload declared its
//! sha256, the file's own key, adopted there with no copy. Such a PUT to a file's key carries a
//! signed `If-None-Match: *` beside the signed checksum: S3 refuses (412) to replace an object that
//! is there, so the still-valid URL can never overwrite a finished file, whatever bytes it carries
//! (s3s-fs writes a PUT's bytes before it compares their checksum, but checks If-None-Match
//! first). A form POST cannot carry If-None-Match, so such an upload is offered no form. A
//! multipart upload is a real S3 multipart upload at the file's own key: clients send parts to
//! presigned UploadPart URLs, and CompleteMultipartUpload lands the object where the file will
//! be (no copy, so no 5 GiB CopyObject limit); no reader sees it before the file row exists.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use bytes::BytesMut;
use cabinet_core::ports::{
    Assembled, BlobInfo, ByteRange, ByteStream, PartInfo, PresignedDownload, PresignedPost, PresignedUpload,
    StageError, StagedBlob,
};
use cabinet_core::{BlobStore, Error, Result, Upload};
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::sigv4::{uri_encode, Presign, SigV4, MAX_EXPIRES_SECS};

/// Multipart part size while staging: memory per upload stays near a few parts.
const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts in flight at once while staging.
const PARTS_IN_FLIGHT: usize = 2;
/// How much of the start of a file is kept for content sniffing.
const HEAD_BYTES: usize = 8 * 1024;
const TMP_PREFIX: &str = "tmp/";
/// The limit on one request that moves or joins a whole file (5 GiB and more).
const LONG_REQUEST: std::time::Duration = std::time::Duration::from_secs(3600);

/// How S3 requests are retried: transient errors (503 SlowDown, a refused or cut connection) are
/// retried with backoff, but only for as long as a client of Cabinet may sensibly wait for its
/// answer; after that it is told 503 `unavailable` and retries itself. (object_store's default
/// retries for 3 minutes, with backoff growing to 15 s: a request would hang while S3 is down.)
fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: std::time::Duration::from_millis(100),
            max_backoff: std::time::Duration::from_secs(2),
            base: 2.0,
        },
        max_retries: 10,
        retry_timeout: std::time::Duration::from_secs(15),
    }
}

/// Where the bucket is and how to reach it: `s3://bucket[/prefix]?endpoint=…&region=…`, credentials
/// from `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and `AWS_SESSION_TOKEN`.
#[derive(Clone)]
pub struct S3Config {
    pub bucket: String,
    /// Keys live under `prefix/` when not empty, so deployments (or test runs) can share a bucket.
    pub prefix: String,
    pub region: String,
    /// `http(s)://host[:port]`; path-style addressing when given, AWS's virtual hosts otherwise.
    pub endpoint: Option<String>,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl S3Config {
    /// Parses an `s3://` storage URL, taking credentials from the usual AWS variables.
    pub fn from_url(url: &str) -> std::result::Result<Self, String> {
        Self::from_url_with(url, |name| std::env::var(name).ok().filter(|value| !value.is_empty()))
    }

    /// Parses an `s3://` storage URL with credentials from `env`.
    pub fn from_url_with(
        url: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> std::result::Result<Self, String> {
        let rest = url.strip_prefix("s3://").ok_or("an S3 storage URL starts with s3://")?;
        let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
        let location = location.trim_end_matches('/');
        let (bucket, prefix) = location.split_once('/').unwrap_or((location, ""));
        let valid_prefix = prefix.split('/').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
        if !prefix.is_empty() && !valid_prefix {
            return Err(format!(
                "{prefix:?} is not a valid key prefix (letters, digits, - and _ between slashes)"
            ));
        }
        let valid_bucket = (3..=63).contains(&bucket.len())
            && bucket.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !valid_bucket {
            return Err(format!("{bucket:?} is not a valid bucket name"));
        }
        let mut region = None;
        let mut endpoint = None;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            match name {
                "region" => region = Some(value),
                "endpoint" => endpoint = Some(value.trim_end_matches('/').to_owned()),
                other => return Err(format!("unknown S3 storage option {other:?} (use endpoint, region)")),
            }
        }
        if let Some(endpoint) = &endpoint {
            let host = endpoint.strip_prefix("http://").or_else(|| endpoint.strip_prefix("https://"));
            if host.is_none_or(|host| host.is_empty() || host.contains('/')) {
                return Err(format!("endpoint must be http(s)://host[:port], not {endpoint:?}"));
            }
        }
        let access_key_id = env("AWS_ACCESS_KEY_ID").ok_or("AWS_ACCESS_KEY_ID is not set")?;
        let secret_access_key = env("AWS_SECRET_ACCESS_KEY").ok_or("AWS_SECRET_ACCESS_KEY is not set")?;
        Ok(Self {
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            region: region.or_else(|| env("AWS_REGION")).unwrap_or_else(|| "us-east-1".to_owned()),
            endpoint,
            access_key_id,
            secret_access_key,
            session_token: env("AWS_SESSION_TOKEN"),
        })
    }
}

fn percent_decode(text: &str) -> std::result::Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text.get(i + 1..i + 3).ok_or("bad percent-encoding in the storage URL")?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| "bad percent-encoding in the storage URL")?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the storage URL is not UTF-8".to_owned())
}

/// Blobs in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    /// The same bucket for requests whose time grows with the file: whole reads, completions.
    long: Arc<AmazonS3>,
    signer: SigV4,
    bucket: String,
    /// `prefix/`, or empty.
    prefix: String,
    /// `scheme://host[:port]` of the URLs clients are given.
    origin: String,
    /// `host[:port]` as signed.
    host: String,
    /// `/bucket` for path-style addressing, empty for virtual hosts.
    path_prefix: String,
    http: reqwest_s3::Client,
}

fn storage_error(err: object_store::Error) -> Error {
    match err {
        object_store::Error::NotFound { .. } => Error::from(io::Error::new(io::ErrorKind::NotFound, err)),
        other => Error::Unavailable(Box::new(other)),
    }
}

/// Whether an S3 status is one a retry may get past: throttling, or the service failing.
fn transient(status: u16) -> bool {
    status == 429 || status >= 500
}

/// An answer S3 should not have given: unavailable (503) when it is S3's own trouble, internal
/// otherwise (a refusal of Cabinet's request is a fault of Cabinet's, or of its configuration).
fn unexpected_status(request: &str, status: u16) -> Error {
    let message = format!("S3 answered {request} with {status}");
    if transient(status) {
        Error::Unavailable(message.into())
    } else {
        Error::internal(message)
    }
}

fn stage_error(err: object_store::Error) -> StageError {
    // The bucket did not take the bytes (unreachable, refusing, failing): S3's trouble, which the
    // client may retry, not a fault of Cabinet's own.
    StageError::Unavailable(io::Error::other(err))
}

impl S3BlobStore {
    /// Connects to the bucket (lazily: nothing is sent until first use).
    pub fn new(config: &S3Config) -> Result<Self> {
        // TLS for https endpoints uses ring; installing it twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key)
            .with_retry(retry_config());
        if let Some(token) = &config.session_token {
            builder = builder.with_token(token);
        }
        let (origin, host, path_prefix) = match &config.endpoint {
            Some(endpoint) => {
                builder = builder
                    .with_endpoint(endpoint)
                    .with_allow_http(endpoint.starts_with("http://"))
                    .with_virtual_hosted_style_request(false);
                let host = endpoint.split_once("://").map_or(endpoint.as_str(), |(_, host)| host);
                (endpoint.clone(), host.to_owned(), format!("/{}", uri_encode(&config.bucket, false)))
            }
            None => {
                let host = format!("{}.s3.{}.amazonaws.com", config.bucket, config.region);
                (format!("https://{host}"), host, String::new())
            }
        };
        let store =
            builder.clone().build().map_err(|err| Error::internal(format!("configuring S3: {err}")))?;
        // Requests that move or join a whole file take as long as the file is large: object_store's
        // default 30 s limit (for the whole request, body included) would cut them off, and a
        // retried CompleteMultipartUpload finds its upload already gone.
        let allow_http = config.endpoint.as_deref().is_some_and(|endpoint| endpoint.starts_with("http://"));
        let long = builder
            .with_client_options(ClientOptions::new().with_allow_http(allow_http).with_timeout(LONG_REQUEST))
            .build()
            .map_err(|err| Error::internal(format!("configuring S3: {err}")))?;
        let http = reqwest_s3::Client::builder().build().map_err(Error::internal)?;
        Ok(Self {
            store: Arc::new(store),
            long: Arc::new(long),
            signer: SigV4 {
                access_key_id: config.access_key_id.clone(),
                secret_access_key: config.secret_access_key.clone(),
                session_token: config.session_token.clone(),
                region: config.region.clone(),
            },
            bucket: config.bucket.clone(),
            prefix: if config.prefix.is_empty() { String::new() } else { format!("{}/", config.prefix) },
            origin,
            host,
            path_prefix,
            http,
        })
    }

    /// The object of a key (committed, `tmp/…` or `incoming/…`), under the prefix.
    fn path(&self, key: &str) -> Result<Path> {
        let safe = !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if !safe {
            return Err(Error::internal(format!("refusing blob key {key:?}")));
        }
        Ok(Path::from(format!("{}{key}", self.prefix)))
    }

    /// The encoded path of an object in URLs.
    fn url_path(&self, key: &str) -> String {
        format!("{}/{}", self.path_prefix, uri_encode(&format!("{}{key}", self.prefix), true))
    }

    /// A signed request to the bucket that `object_store` does not make (HEAD with checksums,
    /// ListParts), sent now.
    async fn send_signed(
        &self,
        method: reqwest_s3::Method,
        key: &str,
        headers: &[(&str, String)],
        query: &[(&str, String)],
    ) -> Result<reqwest_s3::Response> {
        let path = self.url_path(key);
        let signed = self.signer.presign(&Presign {
            method: method.as_str(),
            host: &self.host,
            path: &path,
            headers,
            query,
            signed_at: Utc::now(),
            expires_in: 60,
        });
        let mut request = self.http.request(method, format!("{}{path}?{signed}", self.origin));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.send().await.map_err(|err| Error::Unavailable(Box::new(err)))
    }

    /// The S3 multipart upload of a Cabinet multipart upload.
    fn multipart_of(upload: &Upload) -> Result<&str> {
        upload.multipart_id.as_deref().ok_or_else(|| Error::internal("the upload has no S3 multipart upload"))
    }

    /// Moves `from` to `to` with a server-side copy, then removes `from`.
    async fn copy_then_delete(&self, from: &Path, to: &Path) -> Result<()> {
        self.store.copy(from, to).await.map_err(storage_error)?;
        if let Err(err) = self.store.delete(from).await {
            // The copy is the file; a leftover source is found by the sweeps.
            tracing::warn!(error = %err, key = %from, "could not delete a moved object's source");
        }
        Ok(())
    }
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn ping(&self) -> Result<()> {
        let probe =
            self.path(&format!("{TMP_PREFIX}ping-{}", ulid::Ulid::new().to_string().to_ascii_lowercase()))?;
        self.store.put(&probe, bytes::Bytes::from_static(b"ok").into()).await.map_err(storage_error)?;
        self.store.delete(&probe).await.map_err(storage_error)
    }

    async fn stage(&self, mut body: ByteStream<'_>, limit: u64) -> Result<StagedBlob, StageError> {
        let temp_key = format!("{TMP_PREFIX}{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let path = self.path(&temp_key).map_err(|err| StageError::Storage(io::Error::other(err)))?;
        let upload = self.store.put_multipart(&path).await.map_err(stage_error)?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let mut hasher = Sha256::new();
        let mut head = BytesMut::new();
        let mut received = 0u64;
        let outcome: Result<(), StageError> = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(StageError::Body)?;
                received += chunk.len() as u64;
                if received > limit {
                    return Err(StageError::TooLarge { limit });
                }
                if head.len() < HEAD_BYTES {
                    let take = (HEAD_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                hasher.update(&chunk);
                writer.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(stage_error)?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        if let Err(err) = outcome {
            // Nothing was ever visible under the temporary key: the multipart upload is dropped.
            let _ = writer.abort().await;
            return Err(err);
        }
        writer.finish().await.map_err(stage_error)?;
        Ok(StagedBlob {
            temp_key,
            size: received,
            sha256: hex::encode(hasher.finalize()),
            head: head.freeze(),
        })
    }

    async fn commit(&self, staged: &StagedBlob, key: &str) -> Result<()> {
        if !staged.temp_key.starts_with(TMP_PREFIX) {
            return Err(Error::internal(format!("refusing temporary key {:?}", staged.temp_key)));
        }
        self.copy_then_delete(&self.path(&staged.temp_key)?, &self.path(key)?).await
    }

    async fn discard(&self, temp_key: &str) {
        if let (true, Ok(path)) = (temp_key.starts_with(TMP_PREFIX), self.path(temp_key)) {
            let _ = self.store.delete(&path).await;
        }
    }

    async fn open(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream<'static>> {
        let options = GetOptions {
            range: range.map(|range| GetRange::Bounded(range.first..range.last + 1)),
            ..Default::default()
        };
        let result = self.long.get_opts(&self.path(key)?, options).await.map_err(storage_error)?;
        Ok(result.into_stream().map_err(io::Error::other).boxed())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(storage_error(err)),
        }
    }

    async fn list_keys(&self) -> Result<Vec<String>> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.trim_end_matches('/')));
        let objects: Vec<_> = self.store.list(prefix.as_ref()).try_collect().await.map_err(storage_error)?;
        Ok(objects
            .into_iter()
            .filter_map(|object| object.location.as_ref().strip_prefix(&self.prefix).map(str::to_owned))
            .filter(|key| !key.starts_with(TMP_PREFIX))
            .collect())
    }

    async fn remove_temporaries(&self) -> Result<u64> {
        let prefix = Path::from(format!("{}{}", self.prefix, TMP_PREFIX.trim_end_matches('/')));
        let objects: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.map_err(storage_error)?;
        for object in &objects {
            match self.store.delete(&object.location).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(storage_error(err)),
            }
        }
        Ok(objects.len() as u64)
    }

    async fn head(&self, key: &str) -> Result<Option<BlobInfo>> {
        self.path(key)?;
        // object_store's HEAD does not ask for checksums; a presigned one that does is short.
        let headers = [("x-amz-checksum-mode", "ENABLED".to_owned())];
        let path = self.url_path(key);
        // Retried like object_store's own requests (see `retry_config`), on a shorter budget.
        let mut pause = std::time::Duration::from_millis(100);
        let mut attempts_left = 4;
        let response = loop {
            attempts_left -= 1;
            let query = self.signer.presign(&Presign {
                method: "HEAD",
                host: &self.host,
                path: &path,
                headers: &headers,
                query: &[],
                signed_at: Utc::now(),
                expires_in: 60,
            });
            let sent = self
                .http
                .head(format!("{}{path}?{query}", self.origin))
                .header("x-amz-checksum-mode", "ENABLED")
                .send()
                .await;
            let error = match sent {
                Ok(response) if !transient(response.status().as_u16()) => break response,
                Ok(response) => unexpected_status(&format!("HEAD {key}"), response.status().as_u16()),
                Err(err) => Error::Unavailable(Box::new(err)),
            };
            if attempts_left == 0 {
                return Err(error);
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        };
        match response.status().as_u16() {
            404 => return Ok(None),
            200 => {}
            status => return Err(unexpected_status(&format!("HEAD {key}"), status)),
        }
        let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok());
        let size = header("content-length")
            .and_then(|length| length.parse().ok())
            .ok_or_else(|| Error::internal("S3 sent no Content-Length"))?;
        // A composite (multipart) checksum does not decode to 32 bytes: it is no sha256 of the file.
        let sha256 = header("x-amz-checksum-sha256")
            .and_then(|value| BASE64.decode(value).ok())
            .filter(|digest| digest.len() == 32)
            .map(hex::encode);
        Ok(Some(BlobInfo { size, sha256 }))
    }

    async fn promote(&self, from: &str, to: &str) -> Result<()> {
        self.copy_then_delete(&self.path(from)?, &self.path(to)?).await
    }

    fn receives_through_cabinet(&self) -> bool {
        false
    }

    async fn begin_parts(&self, upload: &Upload) -> Result<Option<String>> {
        let path = self.path(&upload.blob_key)?;
        let id = MultipartStore::create_multipart(&*self.store, &path).await.map_err(storage_error)?;
        Ok(Some(id))
    }

    fn presign_part(
        &self,
        upload: &Upload,
        part_number: u32,
        size: u64,
        signed_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Option<PresignedUpload> {
        self.path(&upload.blob_key).ok()?;
        let id = upload.multipart_id.clone()?;
        let path = self.url_path(&upload.blob_key);
        // The length is signed: S3 refuses a part of any other size.
        let query = self.signer.presign(&Presign {
            method: "PUT",
            host: &self.host,
            path: &path,
            headers: &[("content-length", size.to_string())],
            query: &[("partNumber", part_number.to_string()), ("uploadId", id)],
            signed_at,
            expires_in: (expires_at - signed_at).num_seconds(),
        });
        Some(PresignedUpload {
            url: format!("{}{path}?{query}", self.origin),
            method: "PUT",
            headers: Vec::new(),
            form: None,
        })
    }

    async fn commit_part(
        &self,
        _staged: &StagedBlob,
        _upload: &Upload,
        _part_number: u32,
    ) -> Result<PartInfo> {
        Err(Error::internal("parts go straight to S3, never through Cabinet"))
    }

    async fn list_parts(&self, upload: &Upload) -> Result<Vec<PartInfo>> {
        let id = Self::multipart_of(upload)?;
        let mut parts = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut query = vec![("uploadId", id.to_owned())];
            if let Some(marker) = &marker {
                query.push(("part-number-marker", marker.clone()));
            }
            let response = self.send_signed(reqwest_s3::Method::GET, &upload.blob_key, &[], &query).await?;
            match response.status().as_u16() {
                200 => {}
                // Completed or aborted: no parts are waiting.
                404 => return Ok(Vec::new()),
                status => return Err(unexpected_status("ListParts", status)),
            }
            let body = response.text().await.map_err(|err| Error::Unavailable(Box::new(err)))?;
            let page = ListPartsPage::parse(&body)?;
            parts.extend(page.parts);
            match page.next_marker {
                Some(next) if page.truncated => marker = Some(next),
                _ => break,
            }
        }
        parts.sort_by_key(|part| part.part_number);
        Ok(parts)
    }

    async fn assemble_parts(&self, upload: &Upload, parts: &[PartInfo]) -> Result<Assembled> {
        let id = Self::multipart_of(upload)?.to_owned();
        let path = self.path(&upload.blob_key)?;
        let ids = parts
            .iter()
            .map(|part| PartId {
                content_id: if part.etag.is_empty() { String::new() } else { format!("\"{}\"", part.etag) },
            })
            .collect();
        MultipartStore::complete_multipart(&*self.long, &path, &id, ids).await.map_err(storage_error)?;
        let info = self
            .head(&upload.blob_key)
            .await?
            .ok_or_else(|| Error::internal("the completed object is missing"))?;
        Ok(Assembled::InPlace { size: info.size })
    }

    async fn remove_parts(&self, upload: &Upload) -> Result<()> {
        let Some(id) = &upload.multipart_id else { return Ok(()) };
        let path = self.path(&upload.blob_key)?;
        match MultipartStore::abort_multipart(&*self.store, &path, id).await {
            // S3 answers NoSuchUpload (404) for an upload it no longer has; s3s-fs AccessDenied.
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(object_store::Error::PermissionDenied { .. }) => {
                tracing::debug!(upload = %upload.id, "S3 refused to abort a multipart upload it may no longer have");
                Ok(())
            }
            Err(err) => Err(storage_error(err)),
        }
    }

    async fn part_sets(&self) -> Result<Vec<(String, String)>> {
        // Every multipart upload is aborted when its upload ends; a bucket lifecycle rule
        // (AbortIncompleteMultipartUpload) catches what a crash left behind.
        Ok(Vec::new())
    }

    fn presign_upload(&self, key: &str, upload: &Upload) -> Option<PresignedUpload> {
        self.path(key).ok()?;
        let expires_in =
            (upload.expires_at.timestamp() - upload.created_at.timestamp()).clamp(1, MAX_EXPIRES_SECS);
        let content_type =
            upload.declared_mime.clone().unwrap_or_else(|| "application/octet-stream".to_owned());
        let checksum = upload
            .sha256
            .as_deref()
            .and_then(|sha256| hex::decode(sha256).ok())
            .map(|digest| BASE64.encode(digest));
        // What the client must send, bound by the signature: S3 itself refuses anything else.
        let mut bound = vec![("content-type", content_type)];
        if let Some(checksum) = &checksum {
            bound.push(("x-amz-checksum-sha256", checksum.clone()));
        }
        // At the file's own key the PUT may only create the object: once it exists, a replay of
        // the URL is refused (412) before any byte is written.
        let at_file_key = key == upload.blob_key;
        if at_file_key {
            bound.push(("if-none-match", "*".to_owned()));
        }
        let path = self.url_path(key);
        let mut signed = bound.clone();
        // Signed, so S3 refuses any other size. Every HTTP client sends it for a body with bytes,
        // so it is not listed then; for an empty body some (hyper, so reqwest) send none, and the
        // signature would not match: an empty upload lists it.
        signed.push(("content-length", upload.size.to_string()));
        if upload.size == 0 {
            bound.push(("content-length", "0".to_owned()));
        }
        let query = self.signer.presign(&Presign {
            method: "PUT",
            host: &self.host,
            path: &path,
            headers: &signed,
            query: &[],
            signed_at: upload.created_at,
            expires_in,
        });
        // A form POST cannot carry If-None-Match: only uploads landing at an incoming key get one.
        let form = (!at_file_key).then(|| {
            let mut fields = vec![("Content-Type", bound[0].1.clone())];
            if let Some(checksum) = checksum {
                fields.push(("x-amz-checksum-sha256", checksum));
            }
            let object_key = format!("{}{key}", self.prefix);
            let fields = self.signer.post_policy(
                &self.bucket,
                &object_key,
                &fields,
                upload.size,
                upload.created_at,
                upload.expires_at,
            );
            PresignedPost { url: format!("{}{}", self.origin, self.path_prefix), fields }
        });
        Some(PresignedUpload {
            url: format!("{}{path}?{query}", self.origin),
            method: "PUT",
            headers: bound
                .into_iter()
                .map(|(name, value)| {
                    let name = match name {
                        "content-type" => "Content-Type",
                        "if-none-match" => "If-None-Match",
                        "content-length" => "Content-Length",
                        other => other,
                    };
                    (name.to_owned(), value)
                })
                .collect(),
            form,
        })
    }

    fn browser_origin(&self) -> Option<String> {
        Some(self.origin.clone())
    }

    fn presign_download(&self, key: &str, download: &PresignedDownload) -> Option<String> {
        self.path(key).ok()?;
        let path = self.url_path(key);
        let query = self.signer.presign(&Presign {
            method: "GET",
            host: &self.host,
            path: &path,
            headers: &[],
            query: &[
                ("response-content-disposition", download.disposition.clone()),
                ("response-content-type", download.content_type.clone()),
            ],
            signed_at: download.signed_at,
            expires_in: (download.expires_at - download.signed_at).num_seconds(),
        });
        Some(format!("{}{path}?{query}", self.origin))
    }
}

/// One page of a ListParts answer.
#[derive(Debug, Default, PartialEq)]
struct ListPartsPage {
    parts: Vec<PartInfo>,
    truncated: bool,
    next_marker: Option<String>,
}

/// The text of the first `<tag>…</tag>` in `xml`.
fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(&xml[start..end])
}

impl ListPartsPage {
    /// Reads the fields Cabinet uses from S3's ListPartsResult document.
    fn parse(xml: &str) -> Result<Self> {
        let bad = || Error::internal("S3 sent a ListParts answer Cabinet cannot read");
        let mut page = ListPartsPage {
            truncated: xml_text(xml, "IsTruncated") == Some("true"),
            next_marker: xml_text(xml, "NextPartNumberMarker").map(str::to_owned),
            ..Default::default()
        };
        let mut rest = xml;
        while let Some(start) = rest.find("<Part>") {
            let end = rest[start..].find("</Part>").ok_or_else(bad)? + start;
            let part = &rest[start..end];
            let etag =
                xml_text(part, "ETag").unwrap_or_default().replace("&quot;", "\"").replace("&#34;", "\"");
            page.parts.push(PartInfo {
                part_number: xml_text(part, "PartNumber").and_then(|n| n.parse().ok()).ok_or_else(bad)?,
                size: xml_text(part, "Size").and_then(|n| n.parse().ok()).ok_or_else(bad)?,
                etag: etag.trim_matches('"').to_owned(),
            });
            rest = &rest[end..];
        }
        Ok(page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_parts_answers_are_read() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListPartsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Bucket>b</Bucket><Key>k</Key>
<UploadId>u</UploadId><NextPartNumberMarker>2</NextPartNumberMarker><IsTruncated>true</IsTruncated>
<Part><PartNumber>2</PartNumber><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;7778aef83f66abc1fa1e8477f296d394&quot;</ETag><Size>10485760</Size></Part>
<Part><PartNumber>1</PartNumber><Size>5</Size></Part></ListPartsResult>"#;
        let page = ListPartsPage::parse(xml).unwrap();
        assert!(page.truncated);
        assert_eq!(page.next_marker.as_deref(), Some("2"));
        assert_eq!(
            page.parts,
            vec![
                PartInfo { part_number: 2, size: 10485760, etag: "7778aef83f66abc1fa1e8477f296d394".into() },
                PartInfo { part_number: 1, size: 5, etag: String::new() },
            ]
        );
        assert!(ListPartsPage::parse("<Part><PartNumber>x</PartNumber></Part>").is_err());
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "AWS_ACCESS_KEY_ID" => Some("id".to_owned()),
            "AWS_SECRET_ACCESS_KEY" => Some("secret".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn storage_urls_parse_with_endpoint_and_region() {
        let config = S3Config::from_url_with(
            "s3://cabinet-test?endpoint=http%3A%2F%2F127.0.0.1%3A9000&region=eu-west-1",
            env,
        )
        .unwrap();
        assert_eq!(config.bucket, "cabinet-test");
        assert_eq!(config.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(config.region, "eu-west-1");
        let plain = S3Config::from_url_with("s3://bucket", env).unwrap();
        assert_eq!((plain.endpoint, plain.region.as_str(), plain.prefix.as_str()), (None, "us-east-1", ""));
        let prefixed = S3Config::from_url_with("s3://bucket/team-a/cabinet/", env).unwrap();
        assert_eq!((prefixed.bucket.as_str(), prefixed.prefix.as_str()), ("bucket", "team-a/cabinet"));
    }

    fn upload(sha256: Option<&str>) -> Upload {
        let now = Utc::now();
        let ws = cabinet_core::WorkspaceId::generate();
        let file_id = cabinet_core::FileId::generate();
        Upload {
            blob_key: format!("{ws}/{file_id}"),
            workspace_id: ws,
            id: cabinet_core::UploadId::generate(),
            name: "x.bin".to_owned(),
            size: 10,
            size_known: true,
            declared_mime: None,
            sha256: sha256.map(str::to_owned),
            folder_id: None,
            status: cabinet_core::UploadStatus::Waiting,
            failure_reason: None,
            file_id,
            created_at: now,
            updated_at: now,
            expires_at: now + chrono::Duration::hours(1),
            created_by: None,
            part_size: None,
            multipart_id: None,
        }
    }

    #[test]
    fn a_put_to_a_files_own_key_may_only_create_it_and_has_no_form() {
        let config = S3Config::from_url_with("s3://bucket?endpoint=http://127.0.0.1:9", env).unwrap();
        let store = S3BlobStore::new(&config).unwrap();
        let upload = upload(Some(&"ab".repeat(32)));
        let direct = store.presign_upload(&upload.blob_key, &upload).unwrap();
        assert!(
            direct.headers.contains(&("If-None-Match".to_owned(), "*".to_owned())),
            "{:?}",
            direct.headers
        );
        assert!(direct.headers.iter().any(|(name, _)| name == "x-amz-checksum-sha256"));
        assert!(direct.url.contains("if-none-match"), "signed: {}", direct.url);
        assert!(direct.form.is_none(), "a form cannot carry If-None-Match");

        let incoming = format!("incoming/{}/{}", upload.workspace_id, upload.id);
        let staged = store.presign_upload(&incoming, &upload).unwrap();
        assert!(staged.headers.iter().all(|(name, _)| name != "If-None-Match"), "{:?}", staged.headers);
        assert!(!staged.url.contains("if-none-match"));
        assert!(staged.form.is_some());
    }

    #[test]
    fn bad_storage_urls_are_refused() {
        for url in [
            "s3://",
            "s3://Bad_Bucket",
            "s3://b?nope=1",
            "s3://bucket?endpoint=ftp://x",
            "http://b",
            "s3://b/../x",
        ] {
            assert!(S3Config::from_url_with(url, env).is_err(), "{url}");
        }
        assert!(S3Config::from_url_with("s3://bucket", |_| None).is_err());
    }
}

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
    StageError, StagedBlob, KEY_PAGE,
};
use cabinet_core::{BlobStore, Error, Result, Upload};
use chrono::{DateTime, Utc};
use futures::stream::{BoxStream, TryChunksError};
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

use crate::sigv4::{uri_encode, Presign, SigV4, MAX_EXPIRES_SECS};

mod config;
mod parts;
mod reads;

pub use config::S3Config;
use parts::ListPartsPage;

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

/// Whether the environment names a proxy for reqwest (and so object_store) to send requests through.
fn proxy_in_environment() -> bool {
    ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()))
}

/// Blobs in an S3 bucket.
#[derive(Debug, Clone)]
pub struct S3BlobStore {
    store: Arc<AmazonS3>,
    /// The same bucket for requests whose time grows with the file: multipart completions.
    long: Arc<AmazonS3>,
    /// The same bucket for reading objects, through connections that read 64 KiB at a time, or
    /// 16 KiB once reads for sending hold 64 MiB (`reads`): so a download whose client reads
    /// nothing holds little.
    reads: Arc<AmazonS3>,
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
            .clone()
            .with_client_options(ClientOptions::new().with_allow_http(allow_http).with_timeout(LONG_REQUEST))
            .build()
            .map_err(|err| Error::internal(format!("configuring S3: {err}")))?;
        // reqwest goes through the proxy the environment names; hyper's client would not, so
        // there reads keep reqwest's connections and their larger buffers.
        let reads = if proxy_in_environment() {
            long.clone()
        } else {
            builder
                .with_http_connector(reads::BoundedReads::new(allow_http))
                .build()
                .map_err(|err| Error::internal(format!("configuring S3: {err}")))?
        };
        let http = reqwest_s3::Client::builder().build().map_err(Error::internal)?;
        Ok(Self {
            store: Arc::new(store),
            long: Arc::new(long),
            reads: Arc::new(reads),
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
        let result = self.reads.get_opts(&self.path(key)?, options).await.map_err(storage_error)?;
        Ok(result.into_stream().map_err(io::Error::other).boxed())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&self.path(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(err) => Err(storage_error(err)),
        }
    }

    async fn list_folder(&self, folder: &str) -> Result<Vec<(String, u64)>> {
        let listed =
            self.store.list_with_delimiter(Some(&self.path(folder)?)).await.map_err(storage_error)?;
        Ok(listed
            .objects
            .into_iter()
            .filter_map(|object| object.location.filename().map(|name| (name.to_owned(), object.size)))
            .collect())
    }

    fn key_pages(&self) -> BoxStream<'static, Result<Vec<String>>> {
        let prefix = (!self.prefix.is_empty()).then(|| Path::from(self.prefix.trim_end_matches('/')));
        let ours = self.prefix.clone();
        // object_store asks for the listing a page (1,000 keys) at a time as the stream is read.
        self.store
            .list(prefix.as_ref())
            .map_err(storage_error)
            .try_filter_map(move |object| {
                let key = object.location.as_ref().strip_prefix(&ours).map(str::to_owned);
                futures::future::ready(Ok(key.filter(|key| !key.starts_with(TMP_PREFIX))))
            })
            .try_chunks(KEY_PAGE)
            .map_err(|TryChunksError(_, err)| err)
            .boxed()
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

    fn joins_parts_in_place(&self) -> bool {
        true
    }

    async fn put_part(
        &self,
        upload: &Upload,
        part_number: u32,
        bytes: Vec<bytes::Bytes>,
    ) -> Result<PartInfo> {
        let id = Self::multipart_of(upload)?.to_owned();
        let path = self.path(&upload.blob_key)?;
        let size = bytes.iter().map(|piece| piece.len() as u64).sum();
        let index = part_number.checked_sub(1).ok_or_else(|| Error::internal("parts are numbered from 1"))?;
        let payload: object_store::PutPayload = bytes.into_iter().collect();
        let part = MultipartStore::put_part(&*self.store, &path, &id, index as usize, payload)
            .await
            .map_err(storage_error)?;
        Ok(PartInfo { part_number, size, etag: part.content_id.trim_matches('"').to_owned() })
    }

    async fn put_part_stream(
        &self,
        upload: &Upload,
        part_number: u32,
        size: u64,
        body: ByteStream<'static>,
    ) -> Result<PartInfo> {
        // object_store signs a part's payload, so it would need the whole part in memory: the
        // part is sent to a presigned UploadPart URL instead (its payload unsigned, its length
        // signed), the body streamed as it arrives. It cannot be retried (its bytes have gone
        // by): a failure is the client's to retry, from the offset the parts reached.
        let now = Utc::now();
        let presigned = self
            .presign_part(
                upload,
                part_number,
                size,
                now,
                now + chrono::Duration::seconds(LONG_REQUEST.as_secs() as i64),
            )
            .ok_or_else(|| Error::internal("the upload has no S3 multipart upload"))?;
        let response = self
            .http
            .put(presigned.url)
            .header("content-length", size)
            .body(reqwest_s3::Body::wrap_stream(body))
            .send()
            .await
            .map_err(|err| Error::Unavailable(Box::new(err)))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(unexpected_status("UploadPart", status));
        }
        let etag = response
            .headers()
            .get("etag")
            .and_then(|value| value.to_str().ok())
            .ok_or_else(|| Error::internal("S3 sent no ETag for a part"))?;
        Ok(PartInfo { part_number, size, etag: etag.trim_matches('"').to_owned() })
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

#[cfg(test)]
mod tests {
    use super::*;

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
            awaits_record: false,
        }
    }

    #[test]
    fn a_put_to_a_files_own_key_may_only_create_it_and_has_no_form() {
        let config =
            S3Config::from_url_with("s3://bucket?endpoint=http://127.0.0.1:9", config::test_env).unwrap();
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
}

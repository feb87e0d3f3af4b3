//! The S3 surface: S3's wire protocol (SigV4 and presigned URLs, routing, XML, aws-chunked
//! bodies — all the `s3s` crate's) over the core. A workspace is a bucket, named by the
//! workspace's name; an object key `a/b/c.txt` is the file `c.txt` in the folder `/a/b` (folders
//! are made as needed); a key ending in `/` with no body is a folder. Every byte goes through the
//! core's one intake path (reserved against the quota, staged, verified, committed), so files
//! stored here are ordinary Cabinet files and every other surface sees them, and the other way.
//!
//! It is served on its own listener (`--s3-listen`): S3 clients sign the Host and the path, so
//! mixing their paths with the native router's would be fragile. See docs/compat/s3.md.

mod allowance;
mod errors;
mod keys;
mod listing;
mod multipart;
mod objects;

use std::sync::Arc;

use axum::Router;
use cabinet_core::access::Actor;
use cabinet_core::s3_keys::{S3Key, SecretSealer};
use cabinet_core::{Cabinet, Caller, Workspace};
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};

pub use errors::s3_error_of;

/// The longest a SigV4 presigned URL may live (S3's limit, a week).
const MAX_PRESIGNED_SECONDS: u64 = 7 * 24 * 3600;

/// The most keys one DeleteObjects request may name (S3's limit).
const MAX_DELETE_KEYS: usize = 1000;

/// The S3 service over a Cabinet.
#[derive(Clone)]
pub struct S3Surface {
    cabinet: Cabinet,
    sealer: Arc<SecretSealer>,
    writes: Arc<objects::Writes>,
    completing: Arc<multipart::Completing>,
}

/// How the S3 listener is set up.
#[derive(Debug, Clone, Default)]
pub struct S3Options {
    /// The domain of virtual-host-style requests (`BUCKET.DOMAIN`); path style always works.
    pub domain: Option<String>,
    /// Proxies whose forwarding headers name the client (for the audit log's addresses).
    pub trusted_proxies: crate::TrustedProxies,
    /// Requests each S3 key may make a minute (`--rate-limit-per-minute`); 0 turns it off.
    pub rate_limit_per_minute: u32,
}

/// The S3 surface as a router to serve on its own listener.
pub fn app(cabinet: Cabinet, sealer: SecretSealer, options: &S3Options) -> Result<Router, String> {
    let capture = crate::audit::AuditCapture {
        cabinet: cabinet.clone(),
        proxies: options.trusted_proxies.clone(),
        s3: true,
    };
    let surface = S3Surface {
        cabinet,
        sealer: Arc::new(sealer),
        writes: Default::default(),
        completing: Default::default(),
    };
    let mut builder = S3ServiceBuilder::new(surface.clone());
    builder.set_auth(keys::KeyLookup(surface));
    let limiter = (options.rate_limit_per_minute > 0)
        .then(|| Arc::new(crate::rate_limit::RateLimiter::new(options.rate_limit_per_minute)));
    if let Some(limiter) = &limiter {
        let proxies = options.trusted_proxies.clone();
        builder.set_access(allowance::KeyAllowance { limiter: limiter.clone(), proxies });
    }
    if let Some(domain) = &options.domain {
        let host = s3s::host::SingleDomain::new(domain).map_err(|err| format!("--s3-domain: {err}"))?;
        builder.set_host(host);
    }
    let service = builder.build();
    let service = axum::error_handling::HandleError::new(service, errors::http_error);
    Ok(Router::new()
        .fallback_service(service)
        .layer(axum::middleware::from_fn_with_state(limiter, allowance::after_the_answer))
        .layer(axum::middleware::from_fn_with_state(options.domain.clone(), sig_v2_bucket_path))
        .layer(axum::middleware::from_fn(bare_attributes_etag))
        .layer(axum::middleware::from_fn_with_state(capture, crate::audit::record))
        .layer(axum::middleware::from_fn(errors::request_id)))
}

/// A SigV2 signature covers a bucket's path-style resource as `/bucket/` (what the AWS SDKs and
/// s3cmd sign), but s3s checks it against the path as sent, `/bucket`: such a request gets the
/// slash before s3s sees it (s3s routes both alike). SigV4 signs the path as sent, so it is left,
/// as is a virtual-host-style request (`BUCKET.DOMAIN`), whose one-part path is an object's key.
async fn sig_v2_bucket_path(
    axum::extract::State(domain): axum::extract::State<Option<String>>,
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let virtual_host = domain.as_deref().is_some_and(|domain| {
        let host = request.headers().get(axum::http::header::HOST).and_then(|host| host.to_str().ok());
        host.is_some_and(|host| host.strip_suffix(domain).is_some_and(|bucket| bucket.ends_with('.')))
    });
    let signed_v2 = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .is_some_and(|value| value.as_bytes().starts_with(b"AWS "))
        || request.uri().query().is_some_and(|query| {
            query.split('&').any(|pair| pair.starts_with("AWSAccessKeyId="))
                && query.split('&').any(|pair| pair.starts_with("Signature="))
        });
    let path = request.uri().path();
    if signed_v2 && !virtual_host && path.len() > 1 && !path[1..].contains('/') {
        let with_slash = match request.uri().query() {
            Some(query) => format!("{path}/?{query}"),
            None => format!("{path}/"),
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(path_and_query) = with_slash.parse() {
            parts.path_and_query = Some(path_and_query);
            if let Ok(uri) = axum::http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    next.run(request).await
}

/// GetObjectAttributes answers its ETag bare (`<ETag>abc</ETag>`), unlike every other answer of
/// S3's, and clients compare it as such; s3s writes every ETag quoted, so this one is unquoted
/// here. Its answer is small: at most 1,000 parts.
async fn bare_attributes_etag(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let attributes = request.method() == axum::http::Method::GET
        && request.uri().query().is_some_and(|query| {
            query.split('&').any(|pair| pair == "attributes" || pair.starts_with("attributes="))
        });
    let response = next.run(request).await;
    if !attributes || response.status() != axum::http::StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, 4 * 1024 * 1024).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(err) => {
            tracing::warn!(error = %err, "a GetObjectAttributes answer could not be read");
            return axum::response::IntoResponse::into_response(axum::http::StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let text = text.replacen("<ETag>\"", "<ETag>", 1).replacen("\"</ETag>", "</ETag>", 1);
    parts.headers.insert(axum::http::header::CONTENT_LENGTH, axum::http::HeaderValue::from(text.len()));
    axum::response::Response::from_parts(parts, axum::body::Body::from(text))
}

/// Whether a workspace's name can be a bucket's (3–63 lowercase letters, digits, `-`, `.`;
/// S3 also refuses a dot beside a dash, which s3s's check lets through).
pub fn is_bucket_name(name: &str) -> bool {
    s3s::path::check_bucket_name(name) && !name.contains(".-") && !name.contains("-.")
}

impl S3Surface {
    /// The key that signed the request (s3s has verified the signature by now).
    async fn key_of<T>(&self, req: &S3Request<T>) -> S3Result<S3Key> {
        let Some(credentials) = &req.credentials else {
            return Err(s3_error!(AccessDenied, "this service needs signed requests (an S3 access key)"));
        };
        // SigV4 presigned URLs live at most a week; s3s checks the expiry but not this bound.
        let expires = req
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .find_map(|pair| pair.strip_prefix("X-Amz-Expires="));
        if expires
            .and_then(|seconds| seconds.parse::<u64>().ok())
            .is_some_and(|seconds| seconds > MAX_PRESIGNED_SECONDS)
        {
            return Err(s3_error!(
                AccessDenied,
                "X-Amz-Expires must be at most {MAX_PRESIGNED_SECONDS} seconds (a week)"
            ));
        }
        let (key, _) = self
            .cabinet
            .s3_key_with_secret(&self.sealer, &credentials.access_key)
            .await
            .map_err(s3_error_of)?;
        Ok(key)
    }

    /// The caller acting on a bucket: its workspace, when the key reaches it. A bucket the key
    /// cannot reach is `AccessDenied` whether or not it exists.
    async fn caller_for<T>(&self, req: &S3Request<T>, bucket: &str) -> S3Result<Caller> {
        let key = self.key_of(req).await?;
        let workspace = self.workspace_for(&key, bucket).await?;
        let caller = Caller { workspace_id: workspace.id, actor: Actor::Key { id: key.id, role: key.role } };
        cabinet_core::audit::note_caller(&caller);
        Ok(caller)
    }

    async fn workspace_for(&self, key: &S3Key, bucket: &str) -> S3Result<Workspace> {
        let denied = || s3_error!(AccessDenied, "this key cannot reach that bucket");
        match &key.workspace_id {
            Some(ws) => {
                let workspace = self.cabinet.workspace(ws).await.map_err(s3_error_of)?;
                if workspace.name == bucket {
                    Ok(workspace)
                } else {
                    Err(denied())
                }
            }
            None => self
                .cabinet
                .list_workspaces()
                .await
                .map_err(s3_error_of)?
                .into_iter()
                .find(|workspace| workspace.name == bucket)
                .ok_or_else(|| s3_error!(NoSuchBucket)),
        }
    }
}

/// What a write may ask for beyond its bytes and metadata that this service does not do.
struct Asked<'a> {
    acl: Option<&'a str>,
    grants: bool,
    encryption: bool,
    lock: bool,
    tagging: bool,
}

/// The `Asked` of a write's input (PutObject, CopyObject and CreateMultipartUpload share the
/// fields' names).
macro_rules! asked {
    ($input:expr) => {
        Asked {
            acl: $input.acl.as_ref().map(|acl| acl.as_str()),
            grants: $input.grant_full_control.is_some()
                || $input.grant_read.is_some()
                || $input.grant_read_acp.is_some()
                || $input.grant_write_acp.is_some(),
            encryption: $input.server_side_encryption.is_some()
                || $input.sse_customer_algorithm.is_some()
                || $input.sse_customer_key.is_some()
                || $input.ssekms_key_id.is_some(),
            lock: $input.object_lock_mode.is_some()
                || $input.object_lock_retain_until_date.is_some()
                || $input.object_lock_legal_hold_status.is_some(),
            tagging: $input.tagging.as_deref().is_some_and(|tagging| !tagging.is_empty()),
        }
    };
}

/// A write asking for what is not done here is refused (`NotImplemented`) rather than stored
/// without it: a client that asked for encryption, a public ACL, a lock or tags must not
/// believe it got them. The ACLs that say what is true here anyway (only keys reach an object)
/// pass.
fn refuse_unsupported(asked: Asked<'_>) -> S3Result<()> {
    let refused = |what: &str| Err(s3_error!(NotImplemented, "{what} is not supported by this service"));
    if asked.acl.is_some_and(|acl| !["private", "bucket-owner-full-control"].contains(&acl)) || asked.grants {
        return refused("an ACL other than private");
    }
    if asked.encryption {
        return refused("server-side encryption");
    }
    if asked.lock {
        return refused("object lock");
    }
    if asked.tagging {
        return refused("object tagging");
    }
    Ok(())
}

/// A request naming a version: only `null`, the one version of an object in a bucket that was
/// never versioned, is there.
fn check_version(version_id: Option<&str>) -> S3Result<()> {
    match version_id {
        None | Some(listing::NULL_VERSION) => Ok(()),
        Some(other) => Err(s3_error!(
            NoSuchVersion,
            "no version {other:?}: buckets here are not versioned, and an object's one version is \"null\""
        )),
    }
}

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> Timestamp {
    Timestamp::from(std::time::SystemTime::from(at))
}

#[async_trait::async_trait]
impl S3 for S3Surface {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let key = self.key_of(&req).await?;
        let workspaces = match &key.workspace_id {
            Some(ws) => vec![self.cabinet.workspace(ws).await.map_err(s3_error_of)?],
            None => self.cabinet.list_workspaces().await.map_err(s3_error_of)?,
        };
        let input = &req.input;
        let most = match input.max_buckets {
            None => usize::MAX,
            Some(most @ 1..=10_000) => most as usize,
            Some(_) => return Err(s3_error!(InvalidArgument, "max-buckets runs from 1 to 10000")),
        };
        // The token is the last name of the page before: bucket names are unique and sorted.
        let after = input.continuation_token.as_deref().unwrap_or_default();
        let prefix = input.prefix.as_deref().unwrap_or_default();
        let mut workspaces: Vec<Workspace> = workspaces
            .into_iter()
            .filter(|workspace| {
                is_bucket_name(&workspace.name)
                    && workspace.name.starts_with(prefix)
                    && workspace.name.as_str() > after
            })
            .collect();
        workspaces.sort_by(|a, b| a.name.cmp(&b.name));
        let truncated = workspaces.len() > most;
        workspaces.truncate(most);
        let token = truncated.then(|| workspaces.last().map(|workspace| workspace.name.clone())).flatten();
        let buckets = workspaces
            .into_iter()
            .map(|workspace| Bucket {
                name: Some(workspace.name),
                creation_date: Some(timestamp(workspace.created_at)),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            continuation_token: token,
            prefix: input.prefix.clone(),
            ..Default::default()
        }))
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let key = self.key_of(&req).await?;
        if !key.is_operator() {
            return Err(s3_error!(AccessDenied, "only an operator S3 key may create buckets"));
        }
        let name = req.input.bucket.clone();
        if !is_bucket_name(&name) {
            return Err(s3_error!(InvalidBucketName));
        }
        let input = &req.input;
        refuse_unsupported(Asked {
            acl: input.acl.as_ref().map(|acl| acl.as_str()),
            grants: input.grant_full_control.is_some()
                || input.grant_read.is_some()
                || input.grant_read_acp.is_some()
                || input.grant_write.is_some()
                || input.grant_write_acp.is_some(),
            encryption: false,
            lock: input.object_lock_enabled_for_bucket == Some(true),
            tagging: false,
        })?;
        // Every bucket is an operator key's own, and this service answers as S3's us-east-1 (its
        // location): creating a bucket one owns already succeeds and changes nothing.
        let created = Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{name}")) }));
        let taken = self.cabinet.list_workspaces().await.map_err(s3_error_of)?;
        if taken.iter().any(|workspace| workspace.name == name) {
            return created;
        }
        let request = cabinet_core::admin::NewWorkspace { name: name.clone(), ..Default::default() };
        match self.cabinet.create_workspace(request).await {
            Ok(workspace) => {
                tracing::info!(workspace = %workspace.id, bucket = %workspace.name, "bucket created through S3");
                created
            }
            Err(cabinet_core::Error::Conflict { .. }) => created,
            Err(err) => Err(s3_error_of(err)),
        }
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let key = self.key_of(&req).await?;
        if !key.is_operator() {
            return Err(s3_error!(AccessDenied, "only an operator S3 key may delete buckets"));
        }
        let workspace = self.workspace_for(&key, &req.input.bucket).await?;
        cabinet_core::audit::note_caller(&Caller {
            workspace_id: workspace.id.clone(),
            actor: Actor::Key { id: key.id, role: key.role },
        });
        match self.cabinet.delete_workspace(&workspace.id).await {
            Ok(_) => {
                tracing::info!(workspace = %workspace.id, bucket = %workspace.name, "bucket deleted through S3");
                Ok(S3Response::new(DeleteBucketOutput::default()))
            }
            // Deleted by another request meanwhile.
            Err(cabinet_core::Error::NotFound(_)) => Err(s3_error!(NoSuchBucket)),
            Err(err) => Err(s3_error_of(err)),
        }
    }

    async fn head_bucket(&self, req: S3Request<HeadBucketInput>) -> S3Result<S3Response<HeadBucketOutput>> {
        self.caller_for(&req, &req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput::default()))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.caller_for(&req, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        listing::list_v2(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        listing::list_v1(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        listing::list_versions(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    /// A bucket here is never versioned: S3 answers such a bucket's versioning with no status.
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.caller_for(&req, &req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput::default()))
    }

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        check_version(req.input.version_id.as_deref())?;
        objects::head(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn get_object_attributes(
        &self,
        req: S3Request<GetObjectAttributesInput>,
    ) -> S3Result<S3Response<GetObjectAttributesOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        check_version(req.input.version_id.as_deref())?;
        if req.input.sse_customer_algorithm.is_some() || req.input.sse_customer_key.is_some() {
            return Err(s3_error!(NotImplemented, "server-side encryption is not served here"));
        }
        objects::attributes(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        check_version(req.input.version_id.as_deref())?;
        objects::get(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        refuse_unsupported(asked!(req.input))?;
        let trailers = req.trailing_headers;
        objects::put(&self.cabinet, &self.writes, &caller, req.input, trailers).await.map(S3Response::new)
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        refuse_unsupported(asked!(req.input))?;
        let (source_bucket, source_key) = match &req.input.copy_source {
            CopySource::Bucket { bucket, key, version_id } => {
                check_version(version_id.as_deref())?;
                (bucket.to_string(), key.to_string())
            }
            _ => return Err(s3_error!(NotImplemented, "only bucket copy sources are supported")),
        };
        let replaces_metadata = req
            .input
            .metadata_directive
            .as_ref()
            .is_some_and(|directive| directive.as_str() == MetadataDirective::REPLACE);
        if source_bucket == req.input.bucket && source_key == req.input.key && !replaces_metadata {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata"
            ));
        }
        let source_caller = self.caller_for(&req, &source_bucket).await?;
        objects::copy(&self.cabinet, &self.writes, &source_caller, &source_key, &caller, req.input)
            .await
            .map(S3Response::new)
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        refuse_unsupported(asked!(req.input))?;
        multipart::create(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn upload_part(&self, req: S3Request<UploadPartInput>) -> S3Result<S3Response<UploadPartOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        let trailers = req.trailing_headers;
        multipart::upload_part(&self.cabinet, &caller, req.input, trailers).await.map(S3Response::new)
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        multipart::complete(&self.cabinet, &self.writes, &self.completing, &caller, req.input)
            .await
            .map(S3Response::new)
    }

    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        let (source_bucket, source_key) = match &req.input.copy_source {
            CopySource::Bucket { bucket, key, version_id } => {
                check_version(version_id.as_deref())?;
                (bucket.to_string(), key.to_string())
            }
            _ => return Err(s3_error!(NotImplemented, "only bucket copy sources are supported")),
        };
        let source_caller = self.caller_for(&req, &source_bucket).await?;
        multipart::upload_part_copy(&self.cabinet, &source_caller, &source_key, &caller, req.input)
            .await
            .map(S3Response::new)
    }

    async fn list_parts(&self, req: S3Request<ListPartsInput>) -> S3Result<S3Response<ListPartsOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        multipart::list_parts(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        multipart::list_uploads(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        multipart::abort(&self.cabinet, &caller, req.input).await?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        check_version(req.input.version_id.as_deref())?;
        let input = &req.input;
        let conditions = objects::DeleteConditions {
            etag: input.if_match.clone(),
            last_modified: input.if_match_last_modified_time.as_ref(),
            size: input.if_match_size,
        };
        objects::check_delete_conditions(&self.cabinet, &caller, &input.key, conditions).await?;
        objects::delete(&self.cabinet, &self.writes, &caller, &req.input.key).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        if req.input.delete.objects.len() > MAX_DELETE_KEYS {
            return Err(s3_error!(
                MalformedXML,
                "a DeleteObjects request names at most {MAX_DELETE_KEYS} keys"
            ));
        }
        let quiet = req.input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in req.input.delete.objects {
            let version_id = object.version_id;
            let conditions = objects::DeleteConditions {
                etag: object.e_tag.clone().map(ETagCondition::ETag),
                last_modified: object.last_modified_time.as_ref(),
                size: object.size,
            };
            let done = match check_version(version_id.as_deref()) {
                Ok(()) => {
                    match objects::check_delete_conditions(&self.cabinet, &caller, &object.key, conditions)
                        .await
                    {
                        Ok(()) => objects::delete(&self.cabinet, &self.writes, &caller, &object.key).await,
                        Err(err) => Err(err),
                    }
                }
                Err(err) => Err(err),
            };
            match done {
                Ok(()) => {
                    if !quiet {
                        deleted.push(DeletedObject {
                            key: Some(object.key),
                            version_id,
                            ..Default::default()
                        });
                    }
                }
                Err(err) => errors.push(Error {
                    key: Some(object.key),
                    code: Some(err.code().as_str().to_owned()),
                    message: err.message().map(str::to_owned),
                    version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }
}

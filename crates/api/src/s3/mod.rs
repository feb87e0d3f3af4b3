//! The S3 surface: S3's wire protocol (SigV4 and presigned URLs, routing, XML, aws-chunked
//! bodies — all the `s3s` crate's) over the core. A workspace is a bucket, named by the
//! workspace's name; an object key `a/b/c.txt` is the file `c.txt` in the folder `/a/b` (folders
//! are made as needed); a key ending in `/` with no body is a folder. Every byte goes through the
//! core's one intake path (reserved against the quota, staged, verified, committed), so files
//! stored here are ordinary Cabinet files and every other surface sees them, and the other way.
//!
//! It is served on its own listener (`--s3-listen`): S3 clients sign the Host and the path, so
//! mixing their paths with the native router's would be fragile. See docs/compat/s3.md.

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
    if let Some(domain) = &options.domain {
        let host = s3s::host::SingleDomain::new(domain).map_err(|err| format!("--s3-domain: {err}"))?;
        builder.set_host(host);
    }
    let service = builder.build();
    let service = axum::error_handling::HandleError::new(service, errors::http_error);
    Ok(Router::new()
        .fallback_service(service)
        .layer(axum::middleware::from_fn_with_state(capture, crate::audit::record)))
}

/// Whether a workspace's name can be a bucket's (3–63 lowercase letters, digits, `-`, `.`).
pub fn is_bucket_name(name: &str) -> bool {
    s3s::path::check_bucket_name(name)
}

impl S3Surface {
    /// The key that signed the request (s3s has verified the signature by now).
    async fn key_of<T>(&self, req: &S3Request<T>) -> S3Result<S3Key> {
        let Some(credentials) = &req.credentials else {
            return Err(s3_error!(AccessDenied, "this service needs signed requests (an S3 access key)"));
        };
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
        let buckets = workspaces
            .into_iter()
            .filter(|workspace| is_bucket_name(&workspace.name))
            .map(|workspace| Bucket {
                name: Some(workspace.name),
                creation_date: Some(timestamp(workspace.created_at)),
                bucket_region: None,
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput { buckets: Some(buckets), ..Default::default() }))
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
        let taken = self.cabinet.list_workspaces().await.map_err(s3_error_of)?;
        if taken.iter().any(|workspace| workspace.name == name) {
            return Err(s3_error!(BucketAlreadyOwnedByYou));
        }
        let request = cabinet_core::admin::NewWorkspace { name, ..Default::default() };
        match self.cabinet.create_workspace(request).await {
            Ok(workspace) => {
                tracing::info!(workspace = %workspace.id, bucket = %workspace.name, "bucket created through S3");
                Ok(S3Response::new(CreateBucketOutput { location: Some(format!("/{}", workspace.name)) }))
            }
            Err(cabinet_core::Error::Conflict { .. }) => Err(s3_error!(BucketAlreadyOwnedByYou)),
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

    async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        objects::head(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        objects::get(&self.cabinet, &caller, req.input).await.map(S3Response::new)
    }

    async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        let trailers = req.trailing_headers;
        objects::put(&self.cabinet, &self.writes, &caller, req.input, trailers).await.map(S3Response::new)
    }

    async fn copy_object(&self, req: S3Request<CopyObjectInput>) -> S3Result<S3Response<CopyObjectOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        let (source_bucket, source_key) = match &req.input.copy_source {
            CopySource::Bucket { bucket, key, .. } => (bucket.to_string(), key.to_string()),
            _ => return Err(s3_error!(NotImplemented, "only bucket copy sources are supported")),
        };
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
            CopySource::Bucket { bucket, key, .. } => (bucket.to_string(), key.to_string()),
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
        objects::delete(&self.cabinet, &self.writes, &caller, &req.input.key).await?;
        Ok(S3Response::new(DeleteObjectOutput::default()))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let caller = self.caller_for(&req, &req.input.bucket).await?;
        let quiet = req.input.delete.quiet.unwrap_or(false);
        let mut deleted = Vec::new();
        let mut errors = Vec::new();
        for object in req.input.delete.objects {
            match objects::delete(&self.cabinet, &self.writes, &caller, &object.key).await {
                Ok(()) => {
                    if !quiet {
                        deleted.push(DeletedObject { key: Some(object.key), ..Default::default() });
                    }
                }
                Err(err) => errors.push(Error {
                    key: Some(object.key),
                    code: Some(err.code().as_str().to_owned()),
                    message: err.message().map(str::to_owned),
                    version_id: None,
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

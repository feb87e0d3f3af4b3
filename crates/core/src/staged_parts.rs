//! Uploads in parts of the client's choosing (S3's multipart uploads): no size is declared up
//! front and parts may have any size, so they cannot follow the fixed plan of `multipart`. Each
//! part is reserved against the quota as it arrives (added to its upload's reservation: refused
//! before a byte is stored when it does not fit), staged and kept at
//! `incoming/{ws}/{upload}-parts/{name}`; when the client completes, the upload's reservation is
//! released and the parts, read in order as one stream, become a file through the one intake
//! path (reserved, staged, verified, committed), after which they are removed. Parts of an upload
//! that ends otherwise (aborted, expired) are removed by the orphan sweep.

use crate::error::{Error, Result};
use crate::ids::{FileId, UploadId};
use crate::model::{FailureReason, Role, Upload, UploadStatus};
use crate::multipart::MULTIPART_TTL;
use crate::names::validate_name;
use crate::ports::{ByteStream, StageError};
use crate::uploads::INCOMING_PREFIX;
use crate::{Cabinet, Caller, Code};

/// Where a part of a staged-parts upload is kept; `name` is the surface's (letters, digits, `-`).
fn part_key(upload: &Upload, name: &str) -> String {
    format!("{INCOMING_PREFIX}{}/{}-parts/{name}", upload.workspace_id, upload.id)
}

fn part_name_ok(name: &str) -> bool {
    !name.is_empty() && name.len() <= 100 && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

impl Cabinet {
    /// Opens an upload whose parts will arrive one by one, for a file of this name (and declared
    /// type, kept for its completion).
    pub async fn begin_staged_parts(
        &self,
        caller: &Caller,
        name: &str,
        mime_type: Option<&str>,
    ) -> Result<Upload> {
        caller.require(Role::Write)?;
        let name = validate_name(name)?;
        let declared_mime = mime_type.map(crate::content_type::parse_declared).transpose()?;
        let now = self.clock.now();
        let file_id = FileId::generate();
        let ws = &caller.workspace_id;
        let upload = Upload {
            workspace_id: ws.clone(),
            id: UploadId::generate(),
            name,
            size: 0,
            size_known: false,
            declared_mime,
            sha256: None,
            folder_id: None,
            status: UploadStatus::Waiting,
            failure_reason: None,
            blob_key: format!("{ws}/{file_id}"),
            file_id,
            created_at: now,
            updated_at: now,
            expires_at: now + MULTIPART_TTL,
            created_by: None,
            part_size: None,
            multipart_id: None,
            awaits_record: false,
        };
        self.store.insert_upload_reserving(&upload).await?;
        Ok(upload)
    }

    /// A live staged-parts upload of the caller's workspace.
    pub async fn staged_parts_upload(&self, caller: &Caller, id: &UploadId) -> Result<Upload> {
        caller.require(Role::Write)?;
        let upload = self.store.get_upload(&caller.workspace_id, id).await?;
        if upload.status != UploadStatus::Waiting || upload.size_known || upload.part_size.is_some() {
            return Err(Error::NotFound("upload"));
        }
        Ok(upload)
    }

    /// Receives one part of exactly `length` bytes: reserved first, then staged, then kept under
    /// `name()` (asked once the bytes are in, so a surface may name a part by its digest).
    pub async fn stage_part(
        &self,
        caller: &Caller,
        id: &UploadId,
        length: u64,
        body: ByteStream<'_>,
        name: &(dyn Fn() -> String + Send + Sync),
    ) -> Result<u64> {
        let upload = self.staged_parts_upload(caller, id).await?;
        let ws = &caller.workspace_id;
        let workspace = self.store.get_workspace(ws).await?;
        let cap = self.max_file_bytes(workspace.max_file_bytes);
        if length > cap {
            return Err(Error::TooLarge {
                code: Code::FileTooLarge,
                message: format!("a part is {length} bytes; the most a file may hold here is {cap}"),
            });
        }
        let _slot = self.transfer_slot(ws, Some(caller))?;
        if !self.store.reserve_more(ws, id, length).await? {
            return Err(Error::NotFound("upload"));
        }
        let staged = match self.blobs.stage(body, length).await {
            Ok(staged) => staged,
            Err(StageError::TooLarge { .. }) => {
                return Err(Error::bad_request(
                    Code::IncompleteBody,
                    format!("the part is longer than its {length} bytes"),
                ))
            }
            Err(StageError::Body(cause)) => {
                return Err(Error::bad_request(
                    Code::IncompleteBody,
                    format!("the part's body ended early: {cause}"),
                ))
            }
            Err(StageError::Storage(cause)) => return Err(Error::from(cause)),
            Err(StageError::Unavailable(cause)) => return Err(Error::Unavailable(Box::new(cause))),
        };
        if staged.size != length {
            self.blobs.discard(&staged.temp_key).await;
            return Err(Error::bad_request(
                Code::IncompleteBody,
                format!("{} bytes arrived; the part declared {length}", staged.size),
            ));
        }
        let name = name();
        if !part_name_ok(&name) {
            self.blobs.discard(&staged.temp_key).await;
            return Err(Error::internal(format!("a part name must be letters, digits and -: {name:?}")));
        }
        if let Err(err) = self.blobs.commit(&staged, &part_key(&upload, &name)).await {
            self.blobs.discard(&staged.temp_key).await;
            return Err(err);
        }
        Ok(length)
    }

    /// The sizes of these parts, `None` for one that is not there.
    pub async fn staged_part_sizes(
        &self,
        caller: &Caller,
        id: &UploadId,
        names: &[String],
    ) -> Result<Vec<Option<u64>>> {
        let upload = self.staged_parts_upload(caller, id).await?;
        let mut sizes = Vec::with_capacity(names.len());
        for name in names {
            if !part_name_ok(name) {
                sizes.push(None);
                continue;
            }
            sizes.push(self.blobs.head(&part_key(&upload, name)).await?.map(|info| info.size));
        }
        Ok(sizes)
    }

    /// Makes the parts, in this order, a file: the upload ends (its reservation released), then
    /// `store` receives the parts as one stream (through the intake: reserved, verified,
    /// committed); the parts are removed once it has run, whatever it answered.
    pub async fn complete_staged_parts<F, Fut>(
        &self,
        caller: &Caller,
        id: &UploadId,
        names: &[String],
        store: F,
    ) -> Result<Fut::Output>
    where
        F: FnOnce(ByteStream<'static>, u64) -> Fut,
        Fut: std::future::Future,
    {
        let upload = self.staged_parts_upload(caller, id).await?;
        let sizes = self.staged_part_sizes(caller, id, names).await?;
        if sizes.iter().any(Option::is_none) {
            return Err(Error::PartsMissing {
                missing: (1..).zip(&sizes).filter(|(_, size)| size.is_none()).map(|(n, _)| n).collect(),
            });
        }
        let total: u64 = sizes.iter().flatten().sum();
        if !self
            .store
            .fail_upload(&caller.workspace_id, id, FailureReason::Cancelled, self.clock.now())
            .await?
        {
            return Err(Error::NotFound("upload"));
        }
        let keys: Vec<String> = names.iter().map(|name| part_key(&upload, name)).collect();
        let blobs = self.blobs.clone();
        let opened = keys.clone();
        // Each part is opened when the one before it has been read: one open stream at a time.
        let body = futures::StreamExt::flatten(futures::stream::iter(opened).then_open(blobs));
        let stored = store(Box::pin(body), total).await;
        for key in &keys {
            self.delete_blob_quietly(key).await;
        }
        Ok(stored)
    }

    /// Ends a staged-parts upload without a file; its parts are removed by the orphan sweep.
    pub async fn abort_staged_parts(&self, caller: &Caller, id: &UploadId) -> Result<()> {
        self.staged_parts_upload(caller, id).await?;
        self.store.fail_upload(&caller.workspace_id, id, FailureReason::Cancelled, self.clock.now()).await?;
        Ok(())
    }
}

/// Opens each key in turn as the stream reaches it.
trait ThenOpen {
    fn then_open(
        self,
        blobs: std::sync::Arc<dyn crate::ports::BlobStore>,
    ) -> futures::stream::BoxStream<'static, ByteStream<'static>>;
}

impl<S> ThenOpen for S
where
    S: futures::Stream<Item = String> + Send + 'static,
{
    fn then_open(
        self,
        blobs: std::sync::Arc<dyn crate::ports::BlobStore>,
    ) -> futures::stream::BoxStream<'static, ByteStream<'static>> {
        Box::pin(futures::StreamExt::then(self, move |key| {
            let blobs = blobs.clone();
            async move {
                match blobs.open(&key, None).await {
                    Ok(stream) => stream,
                    Err(err) => {
                        let failed: ByteStream<'static> = Box::pin(futures::stream::once(async move {
                            Err(std::io::Error::other(err.to_string()))
                        }));
                        failed
                    }
                }
            }
        }))
    }
}

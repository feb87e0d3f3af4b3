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

/// The folder of a staged-parts upload's parts.
fn parts_folder(upload: &Upload) -> String {
    format!("{INCOMING_PREFIX}{}/{}-parts", upload.workspace_id, upload.id)
}

/// Where part `number` with this tag (the surface's: letters and digits, e.g. its MD5) is kept.
fn part_key(upload: &Upload, number: u32, tag: &str) -> String {
    format!("{}/{}", parts_folder(upload), part_name(number, tag))
}

fn part_name(number: u32, tag: &str) -> String {
    format!("{number:05}-{tag}")
}

/// Where the surface's note of the upload is kept (S3: the object key and metadata, for listing
/// uploads and completing them).
fn note_key(upload: &Upload) -> String {
    format!("{}/note", parts_folder(upload))
}

/// The longest note a surface may keep with an upload.
pub const MOST_NOTE_BYTES: usize = 8 * 1024;

fn tag_ok(tag: &str) -> bool {
    !tag.is_empty() && tag.len() <= 90 && tag.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A part as kept: its number, the surface's tag and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedPart {
    pub number: u32,
    pub tag: String,
    pub size: u64,
}

/// A live staged-parts upload and the surface's note of it.
#[derive(Debug, Clone)]
pub struct OpenUpload {
    pub upload: Upload,
    pub note: String,
}

/// The most parts a staged-parts upload takes (S3's limit).
pub const MOST_STAGED_PARTS: u32 = 10_000;

impl Cabinet {
    /// Opens an upload whose parts will arrive one by one, for a file of this name (and declared
    /// type, kept for its completion).
    pub async fn begin_staged_parts(
        &self,
        caller: &Caller,
        name: &str,
        note: &str,
        mime_type: Option<&str>,
    ) -> Result<Upload> {
        if note.len() > MOST_NOTE_BYTES {
            return Err(Error::bad_request(Code::InvalidName, "the upload's key and metadata are too long"));
        }
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
        self.insert_upload_reserving(&upload).await?;
        let kept = self.write_small_object(&note_key(&upload), note).await;
        if let Err(err) = kept {
            self.store.fail_upload(ws, &upload.id, FailureReason::StorageError, now).await?;
            return Err(err);
        }
        Ok(upload)
    }

    /// The workspace's live staged-parts uploads, by id after `after`, with their notes.
    pub async fn open_staged_parts(
        &self,
        caller: &Caller,
        after: Option<&UploadId>,
        limit: u32,
    ) -> Result<Vec<OpenUpload>> {
        caller.require(Role::Write)?;
        let uploads = self.store.waiting_open_uploads(&caller.workspace_id, after, limit).await?;
        let mut open = Vec::with_capacity(uploads.len());
        for upload in uploads {
            // Other uploads of unknown size (a tus upload of deferred length) keep no note.
            if let Some(note) = self.note_of(&upload).await? {
                open.push(OpenUpload { upload, note });
            }
        }
        Ok(open)
    }

    async fn note_of(&self, upload: &Upload) -> Result<Option<String>> {
        let key = note_key(upload);
        if self.blobs.head(&key).await?.is_none() {
            return Ok(None);
        }
        self.read_small_object(&key).await.map(Some)
    }

    /// The surface's note of a live staged-parts upload (empty when it kept none).
    pub async fn staged_parts_note(&self, caller: &Caller, id: &UploadId) -> Result<String> {
        let upload = self.staged_parts_upload(caller, id).await?;
        Ok(self.note_of(&upload).await?.unwrap_or_default())
    }

    /// The parts received, by number (one per number: a part sent again replaced the earlier).
    pub async fn staged_parts(&self, caller: &Caller, id: &UploadId) -> Result<Vec<StagedPart>> {
        let upload = self.staged_parts_upload(caller, id).await?;
        let mut parts: Vec<StagedPart> = self
            .blobs
            .list_folder(&parts_folder(&upload))
            .await?
            .into_iter()
            .filter_map(|(name, size)| {
                let (number, tag) = name.split_once('-')?;
                let number = number.parse().ok().filter(|_| number.len() == 5)?;
                tag_ok(tag).then(|| StagedPart { number, tag: tag.to_owned(), size })
            })
            .collect();
        parts.sort_by_key(|part| part.number);
        Ok(parts)
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

    /// Receives part `number` of exactly `length` bytes: reserved first, then staged, then kept
    /// under `tag()` (asked once the bytes are in, so a surface may tag a part by its digest),
    /// replacing a part of the same number.
    pub async fn stage_part(
        &self,
        caller: &Caller,
        id: &UploadId,
        number: u32,
        length: u64,
        body: ByteStream<'_>,
        tag: &(dyn Fn() -> String + Send + Sync),
    ) -> Result<u64> {
        if !(1..=MOST_STAGED_PARTS).contains(&number) {
            return Err(Error::bad_request(
                Code::InvalidPartNumber,
                format!("part numbers run from 1 to {MOST_STAGED_PARTS}"),
            ));
        }
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
        let tag = tag();
        if !tag_ok(&tag) {
            self.blobs.discard(&staged.temp_key).await;
            return Err(Error::internal(format!("a part's tag must be letters and digits: {tag:?}")));
        }
        if let Err(err) = self.blobs.commit(&staged, &part_key(&upload, number, &tag)).await {
            self.blobs.discard(&staged.temp_key).await;
            return Err(err);
        }
        // A part sent again replaces the one before (as S3's do): the earlier bytes go.
        let replaced = part_name(number, "");
        for (name, _) in self.blobs.list_folder(&parts_folder(&upload)).await? {
            if name.starts_with(&replaced) && name != part_name(number, &tag) {
                self.delete_blob_quietly(&format!("{}/{name}", parts_folder(&upload))).await;
            }
        }
        Ok(length)
    }

    /// The sizes of these parts (number, tag), `None` for one that is not there.
    pub async fn staged_part_sizes(
        &self,
        caller: &Caller,
        id: &UploadId,
        parts: &[(u32, String)],
    ) -> Result<Vec<Option<u64>>> {
        let upload = self.staged_parts_upload(caller, id).await?;
        let mut sizes = Vec::with_capacity(parts.len());
        for (number, tag) in parts {
            if !tag_ok(tag) {
                sizes.push(None);
                continue;
            }
            sizes.push(self.blobs.head(&part_key(&upload, *number, tag)).await?.map(|info| info.size));
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
        parts: &[(u32, String)],
        store: F,
    ) -> Result<Fut::Output>
    where
        F: FnOnce(ByteStream<'static>, u64) -> Fut,
        Fut: std::future::Future,
    {
        let upload = self.staged_parts_upload(caller, id).await?;
        let sizes = self.staged_part_sizes(caller, id, parts).await?;
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
        let keys: Vec<String> = parts.iter().map(|(number, tag)| part_key(&upload, *number, tag)).collect();
        let blobs = self.blobs.clone();
        let opened = keys.clone();
        // Each part is opened when the one before it has been read: one open stream at a time.
        let body = futures::StreamExt::flatten(futures::stream::iter(opened).then_open(blobs));
        let stored = store(Box::pin(body), total).await;
        for key in &keys {
            self.delete_blob_quietly(key).await;
        }
        self.delete_blob_quietly(&note_key(&upload)).await;
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

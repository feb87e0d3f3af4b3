//! Resumable uploads by offset, the model of tus 1.0 and of the IETF resumable-upload draft: an
//! upload is created (reserving its declared length), its bytes are appended in any number of
//! requests, each at the offset the server reports, and the upload becomes a file when the last
//! byte has arrived. The protocols are translated in the HTTP layer; the rules live here.
//!
//! Each append's bytes are staged like any upload's (streamed, hashed, durable when committed)
//! and kept as one *segment*: an ordinary object at `incoming/{ws}/{upload}/{offset}`, named by
//! the offset it starts at. The offset is therefore persisted with the bytes themselves: it is
//! found by following the segments from 0 (`head` of the next offset's key until there is none),
//! and an object exists whole or not at all, so after a crash the offset reported is never past
//! the durable bytes nor short of any offset acknowledged (an append is acknowledged only after
//! its segment is committed). A request cut short keeps what arrived (without a checksum to
//! honour), so a client resumes from there rather than from the start of its request.
//!
//! When the offset reaches the length, the segments are read in order into one staged object
//! (streaming, memory flat), which becomes the file through the core's `finish`: size and
//! declared sha256 verified, committed under the file's key and settled in one transaction, as
//! for every other route. The same holds on every blob store: segments are plain objects, so S3
//! needs no part-size rules (its 5 MiB minimum) and nothing is buffered in memory.
//!
//! An upload of deferred length holds reserved the bytes it has received; each append reserves
//! what it may bring before reading a byte (its `Content-Length`, or without one all the quota
//! holds, like any upload of unknown size) and is trimmed to what arrived when it ends, so
//! uploads streaming at once never hold more than the quota. The length, once declared, is
//! reserved whole and kept as a small object next to the segments.
//!
//! Appends to one upload are serialised on the node that receives them (a second concurrent one
//! is refused with `upload_in_progress`); clients resume against one server address.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};

mod in_parts;

use crate::error::{Error, Result};
use crate::ids::{FolderId, UploadId};
use crate::intake::{OnTrouble, ReceivingGuard};
use crate::model::{FailureReason, FileRecord, Quota, Role, Upload, UploadStatus};
use crate::multipart::MULTIPART_TTL;
use crate::ports::{ByteStream, StageError, StagedBlob};
use crate::telemetry::TransferInFlight;
use crate::uploads::{NewUpload, INCOMING_PREFIX};
use crate::{Cabinet, Caller, Code};

/// The longest a segment key's offset can be, zero-padded so keys sort by offset.
const OFFSET_DIGITS: usize = 20;

/// What a client declares when it creates a resumable upload.
#[derive(Debug, Clone, Default)]
pub struct NewResumable {
    pub name: String,
    /// The length, reserved at once; `None` for a length declared later.
    pub length: Option<u64>,
    pub mime_type: Option<String>,
    /// Hex sha256 of the whole file, verified before the file exists.
    pub sha256: Option<String>,
    pub folder_id: Option<FolderId>,
    /// Seconds the upload may stay unfinished (default: a day).
    pub expires_in: Option<u64>,
}

/// Where a resumable upload stands.
#[derive(Debug, Clone)]
pub struct ResumableState {
    pub upload: Upload,
    /// Bytes durably received.
    pub offset: u64,
    /// The length, when declared.
    pub length: Option<u64>,
    /// The file, once the upload is complete.
    pub file: Option<FileRecord>,
}

/// One append: where the client believes the upload stands, what it now says of the length,
/// and the sha256 its bytes must have.
#[derive(Debug, Clone, Default)]
pub struct Append {
    pub offset: u64,
    /// The length, for an upload whose length was deferred (or the same length again).
    pub length: Option<u64>,
    /// Lowercase hex sha256 of this request's bytes; a mismatch keeps none of them.
    pub sha256: Option<String>,
    pub content_length: Option<u64>,
    /// These bytes are the last: an upload whose length is not known yet ends where they end
    /// (the IETF draft's `Upload-Complete: ?1` on a body of unknown length).
    pub completes: bool,
}

/// Per node: which uploads are being appended to, and the offsets last seen (a lower bound of
/// the durable offset: segments are only ever added while an upload is live).
#[derive(Default)]
pub struct Sessions {
    busy: Mutex<HashSet<UploadId>>,
    offsets: Mutex<HashMap<UploadId, u64>>,
    /// The multipart uploads of uploads sent as parts (a record never changes once written).
    multipart: Mutex<HashMap<UploadId, in_parts::InParts>>,
}

/// The most uploads a node remembers anything of: what it remembers can always be read again
/// from the store, so past this it starts over rather than keep entries of abandoned uploads.
const REMEMBERED_UPLOADS: usize = 10_000;

fn remember_bounded<T>(map: &Mutex<HashMap<UploadId, T>>, id: &UploadId, value: T) {
    let mut map = map.lock().expect("sessions lock");
    if map.len() >= REMEMBERED_UPLOADS && !map.contains_key(id) {
        map.clear();
    }
    map.insert(id.clone(), value);
}

/// Holds an upload's append lock until dropped.
struct Appending<'a> {
    sessions: &'a Sessions,
    id: UploadId,
}

impl Drop for Appending<'_> {
    fn drop(&mut self) {
        self.sessions.busy.lock().expect("sessions lock").remove(&self.id);
    }
}

impl Sessions {
    fn lock(&self, id: &UploadId) -> Result<Appending<'_>> {
        if !self.busy.lock().expect("sessions lock").insert(id.clone()) {
            return Err(Error::conflict(
                Code::UploadInProgress,
                "bytes for this upload are already arriving; retry once that request has ended",
            ));
        }
        Ok(Appending { sessions: self, id: id.clone() })
    }

    fn known_offset(&self, id: &UploadId) -> u64 {
        self.offsets.lock().expect("sessions lock").get(id).copied().unwrap_or(0)
    }

    fn remember(&self, id: &UploadId, offset: u64) {
        remember_bounded(&self.offsets, id, offset);
    }

    fn forget(&self, id: &UploadId) {
        self.offsets.lock().expect("sessions lock").remove(id);
        self.multipart.lock().expect("sessions lock").remove(id);
    }
}

/// Where everything an upload keeps until it ends lives: its segments, length and parts record.
fn upload_folder(upload: &Upload) -> String {
    format!("{INCOMING_PREFIX}{}/{}", upload.workspace_id, upload.id)
}

/// The key of the segment that starts at `offset`.
fn segment_key(upload: &Upload, offset: u64) -> String {
    format!("{}/{offset:0OFFSET_DIGITS$}", upload_folder(upload))
}

/// The key of the object that keeps a deferred length once declared.
fn length_key(upload: &Upload) -> String {
    format!("{}/length", upload_folder(upload))
}

/// A body whose transport error ends it instead: what arrived before the cut is kept.
fn until_cut(body: ByteStream<'static>, cut: Arc<AtomicBool>) -> ByteStream<'static> {
    body.scan((), move |(), item| {
        futures::future::ready(match item {
            Ok(bytes) => Some(Ok(bytes)),
            Err(_) => {
                cut.store(true, Ordering::SeqCst);
                None
            }
        })
    })
    .boxed()
}

fn ended(upload: &Upload) -> Error {
    let reason = upload.failure_reason.map_or("unknown", FailureReason::as_str);
    Error::conflict(Code::UploadNotLive, format!("the upload has ended ({reason})"))
}

fn expired() -> Error {
    Error::conflict(Code::UploadNotLive, "the upload has expired")
}

impl Cabinet {
    /// Creates a resumable upload: the same validation, folder and quota rules as any upload
    /// (`start_upload`); its declared length is reserved now.
    pub async fn start_resumable(&self, caller: &Caller, request: NewResumable) -> Result<Upload> {
        let expires_in = request.expires_in.or(Some(MULTIPART_TTL.num_seconds() as u64));
        let ticket = self
            .start_upload(
                caller,
                NewUpload {
                    name: request.name,
                    size: request.length,
                    mime_type: request.mime_type,
                    sha256: request.sha256,
                    folder_id: request.folder_id,
                    expires_in,
                    ..NewUpload::default()
                },
            )
            .await?;
        Ok(ticket.upload)
    }

    /// A live-or-finished upload of the caller's that takes bytes by offset (not a multipart
    /// upload, nor one that waits for a record).
    async fn resumable_upload(&self, caller: &Caller, id: &UploadId, role: Role) -> Result<Upload> {
        self.own_upload(caller, id, role).await?;
        let upload = self.store.get_upload(&caller.workspace_id, id).await?;
        if upload.part_size.is_some() || upload.awaits_record {
            return Err(Error::NotFound("upload"));
        }
        Ok(upload)
    }

    /// The upload's offset and length; a finished upload reports its whole length.
    pub async fn resumable_state(&self, caller: &Caller, id: &UploadId) -> Result<ResumableState> {
        let upload = self.resumable_upload(caller, id, Role::Read).await?;
        match upload.status {
            UploadStatus::Success => {
                let file = self.store.get_file(&upload.workspace_id, &upload.file_id).await.ok();
                let size = file.as_ref().map_or(upload.size, |file| file.size);
                Ok(ResumableState { upload, offset: size, length: Some(size), file })
            }
            UploadStatus::Failed => Err(ended(&upload)),
            UploadStatus::Waiting | UploadStatus::Uploading => {
                if self.clock.now() >= upload.expires_at {
                    return Err(expired());
                }
                let offset = self.durable_offset(&upload).await?;
                let length = self.declared_length(&upload).await?;
                if upload.status == UploadStatus::Waiting && length == Some(offset) {
                    // Every byte is here but the file is not (a crash cut its completion short,
                    // and the upload was reopened at restart): it is completed now, so a client
                    // that sees its whole length finds its file.
                    if let Ok(_appending) = self.sessions.lock(id) {
                        let file = self.complete_resumable(&upload, offset).await?;
                        let upload = upload.finished_as(&file);
                        return Ok(ResumableState { upload, offset, length, file: Some(file) });
                    }
                }
                Ok(ResumableState { upload, offset, length, file: None })
            }
        }
    }

    /// Appends a request's bytes at `append.offset` (which must be the upload's offset) and,
    /// when they complete it, makes the file. Runs on a task of its own, so a client that goes
    /// away mid-request still has what arrived kept and its offset advanced.
    pub async fn append_resumable(
        &self,
        caller: &Caller,
        id: &UploadId,
        append: Append,
        body: ByteStream<'static>,
    ) -> Result<ResumableState> {
        let upload = self.resumable_upload(caller, id, Role::Write).await?;
        let cabinet = self.clone();
        let caller = caller.clone();
        let appending = tokio::spawn(async move { cabinet.append(&caller, upload, append, body).await });
        appending.await.map_err(Error::internal)?
    }

    async fn append(
        &self,
        caller: &Caller,
        upload: Upload,
        append: Append,
        body: ByteStream<'static>,
    ) -> Result<ResumableState> {
        let (ws, id) = (&upload.workspace_id, &upload.id);
        match upload.status {
            UploadStatus::Success => {
                // A repeat of the last append, or a client that resumes a finished upload.
                let state = self.resumable_state(caller, id).await?;
                if append.offset == state.offset && append.content_length.unwrap_or(0) == 0 {
                    return Ok(state);
                }
                return Err(Error::conflict(Code::UploadNotWaiting, "the upload is already complete"));
            }
            UploadStatus::Failed => return Err(ended(&upload)),
            UploadStatus::Uploading => {
                return Err(Error::conflict(Code::UploadInProgress, "the upload is being completed"))
            }
            UploadStatus::Waiting => {}
        }
        if self.clock.now() >= upload.expires_at {
            self.fail(&upload, FailureReason::Expired).await?;
            self.remove_segments(&upload).await;
            return Err(expired());
        }
        let _appending = self.sessions.lock(id)?;
        let offset = self.durable_offset(&upload).await?;
        if append.offset != offset {
            return Err(Error::conflict(
                Code::OffsetMismatch,
                format!("the upload's offset is {offset}, not {}", append.offset),
            ));
        }
        let workspace = self.store.get_workspace(ws).await?;
        let quota = self.quota_of(&workspace);
        let length = match (self.declared_length(&upload).await?, append.length) {
            (Some(length), Some(declared)) if declared != length => {
                return Err(Error::bad_request(
                    Code::InvalidSize,
                    format!("the upload's length is {length}; it cannot change"),
                ))
            }
            (Some(length), _) => Some(length),
            (None, Some(declared)) => {
                self.declare_length(&upload, declared, offset, quota.max_file_size_bytes).await?;
                Some(declared)
            }
            (None, None) => None,
        };
        // The most this request may bring: up to the length, or (length unknown) up to the file
        // size limit and what the quota still holds besides the bytes already received.
        let free =
            quota.available_bytes().map(|free| free.saturating_add(upload.size.saturating_sub(offset)));
        let room = match length {
            Some(length) => length - offset,
            None => quota.max_file_size_bytes.saturating_sub(offset).min(free.unwrap_or(u64::MAX)),
        };
        if let Some(sent) = append.content_length.filter(|sent| *sent > room) {
            return Err(Self::over_room(length, offset, sent, free, &quota));
        }
        if length.is_none() {
            // Reserved before a byte is read, so uploads of unknown length streaming at once never
            // hold more than the quota; trimmed to what arrived once the request ends.
            let wanted = offset + append.content_length.unwrap_or(room);
            self.reserve_received(&upload, wanted).await?;
        }
        if append.content_length.unwrap_or(1) > 0 {
            // Before a byte of the body is read.
            let _slot = self.transfer_slot(ws, None)?;
            let _in_flight = TransferInFlight::upload();
            let cut = Arc::new(AtomicBool::new(false));
            // On a store that joins parts in place, bytes of a known count with no checksum to
            // honour go straight into parts; the others are staged (and checked) first.
            let in_parts = self.in_parts(&upload).await?;
            let to_parts = self.blobs.joins_parts_in_place() && (in_parts.is_some() || offset == 0);
            let whole_request = offset == 0 && length.is_some() && length == append.content_length;
            let streams_to_parts =
                to_parts && append.sha256.is_none() && append.content_length.is_some() && !whole_request;
            let received = if streams_to_parts {
                let body = until_cut(body, cut.clone());
                async {
                    let in_parts = match in_parts {
                        Some(in_parts) => in_parts,
                        None => self.begin_in_parts(&upload, length).await?,
                    };
                    let count = append.content_length.unwrap_or_default();
                    self.append_in_parts(&upload, &in_parts, body, count).await
                }
                .await
            } else {
                let staged = match self.blobs.stage(until_cut(body, cut.clone()), room).await {
                    Ok(staged) => staged,
                    Err(err) => {
                        if length.is_none() {
                            self.reserve_received(&upload, offset).await?;
                        }
                        return Err(match err {
                            StageError::TooLarge { .. } => {
                                Self::over_room(length, offset, room + 1, free, &quota)
                            }
                            StageError::Body(cause) | StageError::Storage(cause) => Error::from(cause),
                            StageError::Unavailable(cause) => Error::Unavailable(Box::new(cause)),
                        });
                    }
                };
                if let Some(declared) = &append.sha256 {
                    if cut.load(Ordering::SeqCst) || *declared != staged.sha256 {
                        self.blobs.discard(&staged.temp_key).await;
                        if length.is_none() {
                            self.reserve_received(&upload, offset).await?;
                        }
                        return Err(Error::Unprocessable {
                            code: Code::ChunkChecksumMismatch,
                            message: "the request's bytes do not match its checksum; none were kept"
                                .to_owned(),
                        });
                    }
                }
                let whole = offset == 0 && length == Some(staged.size) && !cut.load(Ordering::SeqCst);
                if whole && staged.size > 0 {
                    // The whole upload in one request: its bytes become the file as they are, with
                    // no segment to join (as fast as a signed PUT); acknowledged once it exists.
                    let size = staged.size;
                    let file = self.settle_resumable(&upload, staged, size).await?;
                    return Ok(ResumableState {
                        upload: upload.finished_as(&file),
                        offset: file.size,
                        length,
                        file: Some(file),
                    });
                }
                self.keep_staged(&upload, offset, length, in_parts, to_parts, staged).await
            };
            let received = match received {
                Ok(received) => received,
                Err(err) => {
                    if length.is_none() {
                        // Trimmed to what landed; left as it is (never short) when that is unknown.
                        if let Ok(landed) = self.durable_offset(&upload).await {
                            let _ = self.reserve_received(&upload, landed).await;
                        }
                    }
                    return Err(err);
                }
            };
            if length.is_none() {
                self.reserve_received(&upload, received).await?;
            }
            if cut.load(Ordering::SeqCst) {
                // Nobody is waiting for the answer; what arrived is kept.
                return Err(Error::bad_request(Code::IncompleteBody, "the request's body ended early"));
            }
        }
        let offset = self.durable_offset(&upload).await?;
        let length = match length {
            None if append.completes => {
                self.declare_length(&upload, offset, offset, quota.max_file_size_bytes).await?;
                Some(offset)
            }
            Some(length) if append.completes && offset != length => {
                return Err(Error::bad_request(
                    Code::InvalidSize,
                    format!("the upload's length is {length}, but it was completed at {offset} bytes"),
                ))
            }
            known => known,
        };
        if length == Some(offset) {
            let file = self.complete_resumable(&upload, offset).await?;
            return Ok(ResumableState {
                upload: upload.finished_as(&file),
                offset,
                length,
                file: Some(file),
            });
        }
        Ok(ResumableState { upload, offset, length, file: None })
    }

    /// Keeps a request's staged bytes after those at `offset`: as parts (on a store that joins
    /// them in place) or as the segment at `offset`. Returns the offset reached.
    async fn keep_staged(
        &self,
        upload: &Upload,
        offset: u64,
        length: Option<u64>,
        in_parts: Option<in_parts::InParts>,
        to_parts: bool,
        staged: StagedBlob,
    ) -> Result<u64> {
        if staged.size == 0 {
            self.blobs.discard(&staged.temp_key).await;
            return Ok(offset);
        }
        if to_parts {
            let kept = async {
                let in_parts = match in_parts {
                    Some(in_parts) => in_parts,
                    None => self.begin_in_parts(upload, length).await?,
                };
                let bytes = self.blobs.open(&staged.temp_key, None).await?;
                self.append_in_parts(upload, &in_parts, bytes, staged.size).await
            }
            .await;
            self.blobs.discard(&staged.temp_key).await;
            return kept;
        }
        if let Err(err) = self.blobs.commit(&staged, &segment_key(upload, offset)).await {
            self.blobs.discard(&staged.temp_key).await;
            return Err(err);
        }
        self.sessions.remember(&upload.id, offset + staged.size);
        Ok(offset + staged.size)
    }

    /// Why a request with more bytes than the upload has room for was refused: past its length,
    /// or (length unknown) past what the quota holds for it (`free`) or the file size limit.
    fn over_room(length: Option<u64>, offset: u64, sent: u64, free: Option<u64>, quota: &Quota) -> Error {
        if let Some(length) = length {
            return Error::TooLarge {
                code: Code::SizeExceeded,
                message: format!("the upload's length is {length}; this request brings more"),
            };
        }
        let cap = quota.max_file_size_bytes.saturating_sub(offset);
        match free {
            Some(free) if free < cap => Error::QuotaExceeded { requested: sent, available: free },
            _ => Error::TooLarge {
                code: Code::FileTooLarge,
                message: format!(
                    "the file would pass the {} bytes this workspace accepts",
                    quota.max_file_size_bytes
                ),
            },
        }
    }

    /// Sets what an upload of unknown length holds reserved: the bytes it has received, plus
    /// those of the request streaming in. Refused (`QuotaExceeded`) when a growth does not fit.
    async fn reserve_received(&self, upload: &Upload, bytes: u64) -> Result<()> {
        if self.store.reserve_exactly(&upload.workspace_id, &upload.id, bytes).await? {
            Ok(())
        } else {
            Err(Error::conflict(Code::UploadNotLive, "the upload is no longer live"))
        }
    }

    /// Keeps a deferred length, once and for all; the whole length is reserved from then on.
    async fn declare_length(&self, upload: &Upload, length: u64, offset: u64, max_file: u64) -> Result<()> {
        if length < offset {
            return Err(Error::bad_request(
                Code::InvalidSize,
                format!("the length cannot be less than the {offset} bytes already received"),
            ));
        }
        if length > max_file {
            return Err(Error::TooLarge {
                code: Code::FileTooLarge,
                message: format!("the file is {length} bytes; the most this workspace accepts is {max_file}"),
            });
        }
        self.reserve_received(upload, length).await?;
        self.write_small_object(&length_key(upload), &length.to_string()).await
    }

    /// Makes `bytes` the object at `key`, durably (staged, then committed).
    pub(crate) async fn write_object(&self, key: &str, bytes: bytes::Bytes) -> Result<()> {
        self.write_pieces(key, vec![bytes]).await
    }

    /// Writes an object of bytes in the pieces they arrived in (never joined into one buffer).
    pub(crate) async fn write_pieces(&self, key: &str, pieces: Vec<bytes::Bytes>) -> Result<()> {
        let size = pieces.iter().map(|piece| piece.len() as u64).sum();
        let body = futures::stream::iter(pieces.into_iter().map(Ok)).boxed();
        let staged = self.blobs.stage(body, size).await.map_err(|err| Error::internal(err.to_string()))?;
        if let Err(err) = self.blobs.commit(&staged, key).await {
            self.blobs.discard(&staged.temp_key).await;
            return Err(err);
        }
        Ok(())
    }

    pub(crate) async fn write_small_object(&self, key: &str, text: &str) -> Result<()> {
        self.write_object(key, bytes::Bytes::from(text.to_owned())).await
    }

    pub(crate) async fn read_small_object(&self, key: &str) -> Result<String> {
        let text: Vec<bytes::Bytes> = self.blobs.open(key, None).await?.try_collect().await?;
        String::from_utf8(text.concat()).map_err(Error::internal)
    }

    /// The upload's length: declared at creation, or kept when declared later.
    async fn declared_length(&self, upload: &Upload) -> Result<Option<u64>> {
        if upload.size_known {
            return Ok(Some(upload.size));
        }
        let key = length_key(upload);
        if self.blobs.head(&key).await?.is_none() {
            return Ok(None);
        }
        self.read_small_object(&key).await?.trim().parse().map(Some).map_err(Error::internal)
    }

    /// The bytes durably received: the segments followed from the last offset this node saw.
    async fn durable_offset(&self, upload: &Upload) -> Result<u64> {
        if let Some(in_parts) = self.in_parts(upload).await? {
            return Ok(self.parts_state(upload, &in_parts).await?.offset());
        }
        let mut offset = self.sessions.known_offset(&upload.id);
        while let Some(info) = self.blobs.head(&segment_key(upload, offset)).await? {
            if info.size == 0 {
                break;
            }
            offset += info.size;
        }
        self.sessions.remember(&upload.id, offset);
        Ok(offset)
    }

    /// Whether an upload has bytes kept as segments (a resumable upload that received some):
    /// at restart such an upload, found UPLOADING because its completion was cut short, is
    /// reopened rather than failed, since its bytes are all still there.
    pub(crate) async fn has_segments(&self, upload: &Upload) -> Result<bool> {
        Ok(self.blobs.head(&segment_key(upload, 0)).await?.is_some() || self.has_parts_record(upload).await?)
    }

    /// Every segment, in order: (offset, size).
    async fn segments(&self, upload: &Upload) -> Result<Vec<(u64, u64)>> {
        let mut segments = Vec::new();
        let mut offset = 0;
        while let Some(info) = self.blobs.head(&segment_key(upload, offset)).await? {
            if info.size == 0 {
                break;
            }
            segments.push((offset, info.size));
            offset += info.size;
        }
        Ok(segments)
    }

    /// Joins the segments into the file (verified and settled by the core's `finish`).
    async fn complete_resumable(&self, upload: &Upload, length: u64) -> Result<FileRecord> {
        if let Some(in_parts) = self.in_parts(upload).await? {
            let Some(claimed) = self.claim_for_completion(upload, length).await? else {
                return self.completed_elsewhere(upload).await;
            };
            let mut guard = ReceivingGuard { cabinet: self.clone(), upload: Some(claimed.clone()) };
            let finished = self.complete_in_parts(&claimed, &in_parts).await;
            guard.upload = None;
            self.remove_segments(&claimed).await;
            return finished;
        }
        let keys: Vec<String> =
            self.segments(upload).await?.into_iter().map(|(offset, _)| segment_key(upload, offset)).collect();
        let blobs = self.blobs.clone();
        let joined = futures::stream::iter(keys)
            .then(move |key| {
                let blobs = blobs.clone();
                async move { blobs.open(&key, None).await.map_err(std::io::Error::other) }
            })
            .try_flatten()
            .boxed();
        let staged = match self.blobs.stage(joined, length).await {
            Ok(staged) if staged.size == length => staged,
            Ok(staged) => {
                self.blobs.discard(&staged.temp_key).await;
                return Err(Error::internal(format!(
                    "the segments hold {} bytes, not {length}",
                    staged.size
                )));
            }
            Err(err) => return Err(Error::internal(err.to_string())),
        };
        self.settle_resumable(upload, staged, length).await
    }

    /// Makes the staged bytes of a whole upload its file: the upload claimed (its deferred
    /// length reserved), then the core's `finish`; the segments go either way.
    async fn settle_resumable(&self, upload: &Upload, staged: StagedBlob, length: u64) -> Result<FileRecord> {
        let claimed = match self.claim_for_completion(upload, length).await {
            Ok(Some(claimed)) => claimed,
            Ok(None) => {
                self.blobs.discard(&staged.temp_key).await;
                return self.completed_elsewhere(upload).await;
            }
            Err(err) => {
                self.blobs.discard(&staged.temp_key).await;
                return Err(err);
            }
        };
        let mut guard = ReceivingGuard { cabinet: self.clone(), upload: Some(claimed.clone()) };
        let finished = self.finish(&claimed, &staged, OnTrouble::Fail).await;
        guard.upload = None;
        self.remove_segments(&claimed).await;
        finished
    }

    /// WAITING → UPLOADING for the completion of an upload of `length` bytes (a deferred length
    /// reserved now): the claimed upload, or `None` when another request claimed it first. A
    /// length the quota cannot hold fails the upload.
    async fn claim_for_completion(&self, upload: &Upload, length: u64) -> Result<Option<Upload>> {
        let (ws, id) = (&upload.workspace_id, &upload.id);
        let now = self.clock.now();
        if upload.size_known {
            return Ok(self.store.begin_receiving(ws, id, now).await?.then(|| upload.clone()));
        }
        match self.store.begin_receiving_reserving(ws, id, now, length).await? {
            None => Ok(None),
            Some(reserved) if reserved < length => {
                self.fail(upload, FailureReason::QuotaExceeded).await?;
                self.remove_segments(upload).await;
                Err(Error::QuotaExceeded { requested: length, available: reserved })
            }
            Some(reserved) => Ok(Some(Upload { size: reserved, ..upload.clone() })),
        }
    }

    /// The file of an upload another request completed (or why it ended).
    async fn completed_elsewhere(&self, upload: &Upload) -> Result<FileRecord> {
        let state = self.upload_state(&upload.workspace_id, &upload.id).await?;
        state.file.ok_or_else(|| ended(&state.upload))
    }

    /// Ends an upload that is not complete: its reservation released, its bytes removed.
    pub async fn terminate_resumable(&self, caller: &Caller, id: &UploadId) -> Result<()> {
        let upload = self.resumable_upload(caller, id, Role::Write).await?;
        let _appending = self.sessions.lock(id)?;
        match upload.status {
            UploadStatus::Success => {
                return Err(Error::conflict(Code::UploadNotWaiting, "the upload is already complete"))
            }
            UploadStatus::Failed => return Err(ended(&upload)),
            _ => {}
        }
        self.cancel_upload(caller, id).await?;
        self.remove_segments(&upload).await;
        Ok(())
    }

    /// Removes an upload's segments, kept length and parts (aborting the store's multipart
    /// upload); what cannot be removed now is left to the orphan sweep (its upload is no longer
    /// live).
    pub(crate) async fn remove_segments(&self, upload: &Upload) {
        match self.in_parts(upload).await {
            Ok(Some(in_parts)) => self.abort_in_parts(upload, &in_parts).await,
            Ok(None) => {}
            Err(err) => {
                tracing::warn!(error = %err, upload = %upload.id, "could not read an upload's parts record")
            }
        }
        // Everything in the upload's folder, segments left by a crash included.
        let folder = upload_folder(upload);
        match self.blobs.list_folder(&folder).await {
            Ok(objects) => {
                for (name, _) in objects {
                    self.delete_blob_quietly(&format!("{folder}/{name}")).await;
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, upload = %upload.id, "could not list an upload's segments")
            }
        }
        self.sessions.forget(&upload.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::WorkspaceId;

    #[test]
    fn segment_keys_sort_by_offset() {
        let upload = Upload {
            workspace_id: WorkspaceId::generate(),
            id: UploadId::generate(),
            ..crate::multipart::placeholder()
        };
        let (small, large) = (segment_key(&upload, 9), segment_key(&upload, 10 * 1024 * 1024));
        assert!(small < large, "{small} < {large}");
        assert!(small.starts_with(INCOMING_PREFIX));
        assert!(small.ends_with("/00000000000000000009"));
    }
}

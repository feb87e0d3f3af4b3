//! Resumable multipart uploads: one upload session, its bytes sent as numbered parts of a fixed
//! size (each part its own signed URL, re-sendable), listed, and completed into one file.
//!
//! The rules: a part is exactly its planned size or it is not recorded; `complete` with a part
//! missing answers `parts_missing` and leaves the upload open, so the client sends the rest and
//! completes again; otherwise the parts are assembled (streaming, memory flat), the whole is
//! verified like any upload (size, declared sha256) and becomes the file in one transaction.
//! The upload's reservation covers every part: parts are bounded by the plan, never beyond it.

use chrono::{DateTime, Duration, Utc};

use crate::error::{Error, Result};
use crate::ids::{UploadId, WorkspaceId};
use crate::intake::{check_sha256, check_size, file_of, OnTrouble};
use crate::model::{FailureReason, FileRecord, Role, Upload, UploadStatus};
use crate::ports::{Assembled, ByteStream, PartInfo, StageError};
use crate::signing::{expiry_instant, expiry_timestamp, SignedOperation, SignedParams};
use crate::uploads::{settled, UploadState, UploadTicket};
use crate::{Cabinet, Caller, Code, STORAGE_UPLOAD_PREFIX};

const MIB: u64 = 1024 * 1024;
/// The part size when the client names none.
pub const DEFAULT_PART_SIZE: u64 = 64 * MIB;
/// The smallest part size (S3's minimum for every part but the last).
pub const MIN_PART_SIZE: u64 = 5 * MIB;
/// The largest part size (S3's maximum).
pub const MAX_PART_SIZE: u64 = 5 * 1024 * MIB;
/// The most parts an upload may have (S3's maximum).
pub const MAX_PARTS: u64 = 10_000;
/// The most part URLs one request may ask for.
pub const MAX_PART_URLS: usize = 100;
/// How long a multipart upload stays open unless the client asks otherwise.
pub const MULTIPART_TTL: Duration = Duration::hours(24);
/// The longest a part URL lives (never past the upload's own expiry).
pub const PART_URL_TTL: Duration = Duration::hours(1);

/// How an upload's bytes are cut into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartPlan {
    pub size: u64,
    pub part_size: u64,
    pub part_count: u32,
}

impl PartPlan {
    /// Checks a part size (the default when `None`) against the upload's size.
    pub fn new(size: u64, part_size: Option<u64>) -> Result<Self> {
        let part_size = part_size.unwrap_or(DEFAULT_PART_SIZE);
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&part_size) {
            return Err(Error::bad_request(
                Code::InvalidPartSize,
                format!("part_size must be between {MIN_PART_SIZE} and {MAX_PART_SIZE} bytes"),
            ));
        }
        // An empty file is one empty part.
        let count = size.div_ceil(part_size).max(1);
        if count > MAX_PARTS {
            return Err(Error::bad_request(
                Code::TooManyParts,
                format!("{size} bytes in parts of {part_size} makes {count} parts; at most {MAX_PARTS} are allowed: use larger parts"),
            ));
        }
        Ok(Self { size, part_size, part_count: count as u32 })
    }

    /// The plan of a multipart upload; `None` for an ordinary one.
    pub fn of(upload: &Upload) -> Option<Self> {
        let part_size = upload.part_size?;
        let count = upload.size.div_ceil(part_size).max(1);
        Some(Self { size: upload.size, part_size, part_count: count as u32 })
    }

    /// The exact size of part `number` (1-based), or `None` when there is no such part.
    pub fn part_len(&self, number: u32) -> Option<u64> {
        if number == 0 || number > self.part_count {
            return None;
        }
        let start = u64::from(number - 1) * self.part_size;
        Some((self.size - start).min(self.part_size))
    }
}

/// Where to send one part.
#[derive(Debug, Clone)]
pub struct PartUrl {
    pub part_number: u32,
    /// The exact number of bytes the part must have.
    pub size: u64,
    pub url: String,
    pub method: &'static str,
    /// Headers the request must carry as given.
    pub headers: Vec<(String, String)>,
    pub expires_at: DateTime<Utc>,
}

impl Cabinet {
    /// Records a multipart upload (reserving its size) after the blob store is ready for its parts.
    pub(crate) async fn start_multipart(&self, mut upload: Upload, plan: PartPlan) -> Result<UploadTicket> {
        upload.multipart_id = self.blobs.begin_parts(&upload).await?;
        if let Err(err) = self.insert_upload_reserving(&upload).await {
            self.remove_parts_quietly(&upload).await;
            return Err(err);
        }
        tracing::info!(
            workspace = %upload.workspace_id, upload = %upload.id, size = upload.size,
            parts = plan.part_count, "multipart upload started"
        );
        Ok(UploadTicket {
            upload,
            url: String::new(),
            method: "PUT",
            headers: Vec::new(),
            form: None,
            multipart: Some(plan),
        })
    }

    /// A multipart upload of the caller's that is still waiting for parts, and its plan.
    async fn open_multipart(&self, caller: &Caller, id: &UploadId, role: Role) -> Result<(Upload, PartPlan)> {
        self.own_upload(caller, id, role).await?;
        let upload = self.store.get_upload(&caller.workspace_id, id).await?;
        let plan = PartPlan::of(&upload).ok_or_else(|| {
            Error::conflict(Code::NotMultipart, "this upload was not started as a multipart upload")
        })?;
        Ok((upload, plan))
    }

    /// Signs a URL for each of these parts, valid for an hour at most (never past the upload's
    /// expiry). Refused unless the upload is waiting for parts.
    pub async fn part_urls(&self, caller: &Caller, id: &UploadId, numbers: &[u32]) -> Result<Vec<PartUrl>> {
        let (upload, plan) = self.open_multipart(caller, id, Role::Write).await?;
        if numbers.is_empty() || numbers.len() > MAX_PART_URLS {
            return Err(Error::bad_request(
                Code::InvalidPartNumbers,
                format!("ask for between 1 and {MAX_PART_URLS} part numbers at a time"),
            ));
        }
        let now = self.clock.now();
        if upload.status != UploadStatus::Waiting || now >= upload.expires_at {
            return Err(Error::conflict(Code::UploadNotWaiting, "this upload is not accepting parts"));
        }
        let expires = expiry_timestamp((now + PART_URL_TTL).min(upload.expires_at));
        let expires_at = expiry_instant(expires);
        let ws = &upload.workspace_id;
        numbers
            .iter()
            .map(|&number| {
                let size = plan.part_len(number).ok_or_else(|| {
                    Error::bad_request(
                        Code::InvalidPartNumber,
                        format!("part numbers run from 1 to {}", plan.part_count),
                    )
                })?;
                if let Some(direct) = self.blobs.presign_part(&upload, number, size, now, expires_at) {
                    return Ok(PartUrl {
                        part_number: number,
                        size,
                        url: direct.url,
                        method: direct.method,
                        headers: direct.headers,
                        expires_at,
                    });
                }
                let params = SignedParams { expires, max_bytes: size, attachment: false };
                let object = format!("{}/{number}", upload.id);
                let query = self.signer.sign(SignedOperation::UploadPart, ws.as_str(), &object, &params);
                Ok(PartUrl {
                    part_number: number,
                    size,
                    url: format!(
                        "{}{STORAGE_UPLOAD_PREFIX}/{ws}/{}/parts/{number}?{query}",
                        self.url_base(),
                        upload.id
                    ),
                    method: "PUT",
                    headers: Vec::new(),
                    expires_at,
                })
            })
            .collect()
    }

    /// The parts received so far, ascending, with the upload's plan.
    pub async fn received_parts(&self, caller: &Caller, id: &UploadId) -> Result<(PartPlan, Vec<PartInfo>)> {
        let (upload, plan) = self.open_multipart(caller, id, Role::Read).await?;
        let parts = if upload.status == UploadStatus::Waiting {
            let mut parts = self.blobs.list_parts(&upload).await?;
            parts.sort_by_key(|part| part.part_number);
            parts
        } else {
            // Assembled, failed or cancelled: the parts are gone or going.
            Vec::new()
        };
        Ok((plan, parts))
    }

    /// Checks a signed part URL and returns what it authorises: workspace, upload, part number
    /// and the part's exact size.
    pub async fn verify_part_url(
        &self,
        ws: &str,
        upload: &str,
        part: &str,
        query: Option<&str>,
    ) -> Result<(WorkspaceId, UploadId, u32, u64)> {
        self.learn_keys_named_by(query).await;
        let object = format!("{upload}/{part}");
        let params = self.signer.verify(SignedOperation::UploadPart, ws, &object, query, self.clock.now())?;
        let ws = WorkspaceId::parse(ws)?;
        let upload = UploadId::parse(upload)?;
        let number = part.parse().map_err(|_| Error::NotFound("part"))?;
        Ok((ws, upload, number, params.max_bytes))
    }

    /// Takes one part through Cabinet's storage endpoint (after its URL was verified). The part
    /// is recorded only when exactly its planned size arrived; sending it again replaces it.
    pub async fn receive_part(
        &self,
        ws: &WorkspaceId,
        id: &UploadId,
        number: u32,
        body: ByteStream<'_>,
        content_length: Option<u64>,
    ) -> Result<PartInfo> {
        let upload = self.store.get_upload(ws, id).await?;
        let size =
            PartPlan::of(&upload).and_then(|plan| plan.part_len(number)).ok_or(Error::NotFound("part"))?;
        if upload.status != UploadStatus::Waiting {
            return Err(Error::conflict(Code::UploadNotWaiting, "this upload is not accepting parts"));
        }
        if self.clock.now() >= upload.expires_at {
            return Err(Error::BadSignature { code: Code::UrlExpired, message: "this URL has expired" });
        }
        let wrong_size = |got: u64| {
            if got > size {
                Error::TooLarge {
                    code: Code::PartTooLarge,
                    message: format!("part {number} must be exactly {size} bytes"),
                }
            } else {
                Error::bad_request(
                    Code::PartSizeMismatch,
                    format!("part {number} must be exactly {size} bytes; {got} arrived"),
                )
            }
        };
        if let Some(length) = content_length.filter(|length| *length != size) {
            return Err(wrong_size(length));
        }
        // Before a byte of the body is read: parts count against the workspace's uploads in progress.
        let _slot = self.transfer_slot(ws, None)?;
        let staged = match self.blobs.stage(body, size).await {
            Ok(staged) => staged,
            Err(StageError::TooLarge { .. }) => return Err(wrong_size(size + 1)),
            Err(StageError::Body(cause)) => {
                return Err(Error::bad_request(
                    Code::IncompleteBody,
                    format!("the part's body ended early: {cause}"),
                ))
            }
            Err(StageError::Storage(cause)) => return Err(Error::from(cause)),
            Err(StageError::Unavailable(cause)) => return Err(Error::Unavailable(Box::new(cause))),
        };
        if staged.size != size {
            self.blobs.discard(&staged.temp_key).await;
            return Err(wrong_size(staged.size));
        }
        match self.blobs.commit_part(&staged, &upload, number).await {
            Ok(part) => Ok(part),
            Err(err) => {
                self.blobs.discard(&staged.temp_key).await;
                Err(err)
            }
        }
    }

    /// Completes a WAITING multipart upload: `parts_missing` (upload left open) unless every part
    /// has arrived with its size; otherwise claims the upload and assembles, verifies and settles
    /// it on a task of its own, so a client that goes away does not stop it halfway.
    pub(crate) async fn complete_multipart(&self, upload: Upload) -> Result<UploadState> {
        let plan = PartPlan::of(&upload).ok_or_else(|| Error::internal("not a multipart upload"))?;
        let mut parts = self.blobs.list_parts(&upload).await?;
        parts.sort_by_key(|part| part.part_number);
        parts.dedup_by_key(|part| part.part_number);
        let missing: Vec<u32> = (1..=plan.part_count)
            .filter(|&number| {
                let wanted = plan.part_len(number);
                !parts.iter().any(|part| part.part_number == number && Some(part.size) == wanted)
            })
            .collect();
        if !missing.is_empty() {
            // A racing complete may have claimed the upload and be consuming its parts.
            let state = self.upload_state(&upload.workspace_id, &upload.id).await?;
            if state.upload.status != UploadStatus::Waiting {
                return settled(state);
            }
            return Err(Error::PartsMissing { missing });
        }
        parts.retain(|part| part.part_number <= plan.part_count);
        let (ws, id) = (upload.workspace_id.clone(), upload.id.clone());
        if !self.store.begin_receiving(&ws, &id, self.clock.now()).await? {
            return settled(self.upload_state(&ws, &id).await?);
        }
        let cabinet = self.clone();
        let assembling = upload.clone();
        let assembly = tokio::spawn(async move { cabinet.assemble(&assembling, &parts).await });
        let file = assembly.await.map_err(Error::internal)??;
        Ok(UploadState { upload: upload.finished_as(&file), file: Some(file) })
    }

    /// Assembles a claimed (UPLOADING) upload's parts and verifies the whole; any failure fails
    /// the upload (releasing its reservation) and leaves no file and no parts behind.
    async fn assemble(&self, upload: &Upload, parts: &[PartInfo]) -> Result<FileRecord> {
        let assembled = self.blobs.assemble_parts(upload, parts).await;
        match assembled {
            Ok(Assembled::Staged(staged)) => {
                let result = self.finish(upload, &staged, OnTrouble::Fail).await;
                self.remove_parts_quietly(upload).await;
                result
            }
            // The store joined the parts into the object: none are left.
            Ok(Assembled::InPlace { size }) => self.finish_in_place(upload, size).await,
            Err(err) => {
                self.fail(upload, FailureReason::StorageError).await?;
                self.remove_parts_quietly(upload).await;
                Err(err)
            }
        }
    }

    /// Verifies bytes assembled directly under the file's key (S3): read back and hashed, since
    /// the store has no whole-object sha256 of a multipart object.
    pub(crate) async fn finish_in_place(&self, upload: &Upload, size: u64) -> Result<FileRecord> {
        let verdict = match check_size(upload, size) {
            Ok(()) => match self.hash_object(&upload.blob_key).await {
                Ok((sha256, head)) => check_sha256(upload, &sha256).map(|()| (sha256, head)),
                Err(err) => {
                    self.delete_blob_quietly(&upload.blob_key).await;
                    self.fail(upload, FailureReason::StorageError).await?;
                    return Err(err);
                }
            },
            Err(rejection) => Err(rejection),
        };
        match verdict {
            Ok((sha256, head)) => {
                let file = file_of(upload, size, sha256, &head, self.clock.now());
                self.settle(upload, file, OnTrouble::Fail).await
            }
            Err((reason, error)) => {
                self.delete_blob_quietly(&upload.blob_key).await;
                self.fail(upload, reason).await?;
                Err(error)
            }
        }
    }

    /// Removes a multipart upload's parts, if it has any; a failure is left to the sweeps.
    pub(crate) async fn remove_parts_quietly(&self, upload: &Upload) {
        if upload.part_size.is_none() {
            return;
        }
        if let Err(err) = self.blobs.remove_parts(upload).await {
            tracing::warn!(error = %err, upload = %upload.id, "could not remove an upload's parts");
        }
    }

    /// Removes every set of parts whose upload is no longer live (expired, failed, cancelled,
    /// finished or unknown); returns how many. Parts of live uploads are kept: they survive a
    /// restart, which is what makes the upload resumable.
    pub async fn remove_orphan_parts(&self) -> Result<u64> {
        let mut removed = 0;
        for (ws, id) in self.blobs.part_sets().await? {
            let (Ok(ws), Ok(id)) = (WorkspaceId::parse(&ws), UploadId::parse(&id)) else { continue };
            let upload = match self.store.get_upload(&ws, &id).await {
                Ok(upload) if upload.status.is_live() => continue,
                Ok(upload) => upload,
                Err(Error::NotFound(_)) => {
                    // No row: a stand-in that names where the parts are.
                    Upload { workspace_id: ws, id, part_size: Some(MIN_PART_SIZE), ..placeholder() }
                }
                Err(err) => return Err(err),
            };
            self.blobs.remove_parts(&upload).await?;
            removed += 1;
        }
        Ok(removed)
    }
}

/// An upload with nothing but defaults, for naming parts whose upload row is gone.
pub(crate) fn placeholder() -> Upload {
    let now = DateTime::<Utc>::UNIX_EPOCH;
    Upload {
        workspace_id: WorkspaceId::generate(),
        id: UploadId::generate(),
        name: String::new(),
        size: 0,
        size_known: true,
        declared_mime: None,
        sha256: None,
        folder_id: None,
        status: UploadStatus::Failed,
        failure_reason: None,
        file_id: crate::ids::FileId::generate(),
        blob_key: String::new(),
        created_at: now,
        updated_at: now,
        expires_at: now,
        created_by: None,
        part_size: None,
        multipart_id: None,
        awaits_record: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_cuts_the_last_part_short() {
        let plan = PartPlan::new(12 * MIB + 3, Some(5 * MIB)).unwrap();
        assert_eq!(plan.part_count, 3);
        assert_eq!(plan.part_len(1), Some(5 * MIB));
        assert_eq!(plan.part_len(3), Some(2 * MIB + 3));
        assert_eq!(plan.part_len(0), None);
        assert_eq!(plan.part_len(4), None);
        assert_eq!(PartPlan::new(0, None).unwrap().part_len(1), Some(0));
    }

    #[test]
    fn part_sizes_and_counts_are_bounded() {
        assert_eq!(PartPlan::new(10, Some(MIN_PART_SIZE - 1)).unwrap_err().code(), Code::InvalidPartSize);
        assert_eq!(PartPlan::new(10, Some(MAX_PART_SIZE + 1)).unwrap_err().code(), Code::InvalidPartSize);
        assert_eq!(
            PartPlan::new(MAX_PARTS * MIN_PART_SIZE + 1, Some(MIN_PART_SIZE)).unwrap_err().code(),
            Code::TooManyParts
        );
        assert_eq!(PartPlan::new(MAX_PARTS * MIN_PART_SIZE, Some(MIN_PART_SIZE)).unwrap().part_count, 10_000);
        assert_eq!(PartPlan::new(5 * 1024 * MIB, None).unwrap().part_count, 80);
    }
}

//! The upload state machine: WAITING → UPLOADING → SUCCESS | FAILED.
//!
//! Starting an upload reserves its declared size against the quota. Bytes land in a temporary
//! object while they are hashed; only when size (and sha256, when declared) are verified does the
//! object become durable and, in one transaction, the upload SUCCESS, the file created and the
//! reservation usage. Every failure path fails the upload with a reason, releases the reservation
//! and removes the bytes; except the server's own trouble (a store unavailable, the disk full:
//! 503) under a signed URL, which puts the upload back to WAITING, its reservation kept, so the
//! same URL takes the bytes again (`intake::OnTrouble`).
//!
//! Two ways in, one set of rules: bytes sent through Cabinet are staged and verified as they
//! stream; bytes sent straight to the blob store (a presigned S3 URL) land at the upload's
//! *arrival* key (`arrival_key`), and `complete_upload` (or the reconciler) verifies them with
//! `head`. Either way `check_size` and `check_sha256` decide. An upload that declared its sha256
//! (of a known size, in one PUT) arrives at the file's own key, under a URL that can only create
//! the object (never replace it) and whose checksum the store verifies, so verified bytes are
//! adopted where they are; any other arrives at its *incoming* key and is promoted (copied) to the
//! file's key once verified. Refused bytes are removed from the arrival key either way: no file
//! owns that key until the upload succeeds.

use chrono::{DateTime, Utc};

use crate::content_type;
use crate::error::{Error, Result};
use crate::ids::{FileId, FolderId, UploadId, WorkspaceId};
use crate::intake::{
    check_sha256, check_size, checksum_mismatch, file_of, OnTrouble, ReceivingGuard, Rejection,
};
use crate::model::{FailureReason, FileRecord, Role, Upload, UploadStatus};
use crate::multipart::{PartPlan, MULTIPART_TTL};
use crate::names::validate_name;
use crate::ports::{BlobInfo, ByteRange, ByteStream, PresignedPost};
use crate::signing::{expiry_instant, expiry_timestamp, SignedOperation, SignedParams};
use crate::{Cabinet, Caller, Code, STORAGE_UPLOAD_PREFIX};

/// Where bytes sent straight to the blob store land until verified, unless they arrive at the
/// file's key (see `arrival_key`): `incoming/{ws}/{upload}`. Never a file's key, so a client
/// re-using such a URL after completion cannot touch the file.
pub const INCOMING_PREFIX: &str = "incoming/";

/// The incoming key of an upload.
pub fn incoming_key(ws: &WorkspaceId, upload: &UploadId) -> String {
    format!("{INCOMING_PREFIX}{ws}/{upload}")
}

/// Where the bytes of an upload sent in one request straight to the blob store land: the file's
/// own key when the upload declared its sha256 and size (the store verifies both, and the URL may
/// only create the object, so a replay cannot replace a finished file's bytes), its incoming key
/// otherwise. Multipart uploads assemble at the file's key by their own route.
pub fn arrival_key(upload: &Upload) -> String {
    if upload.sha256.is_some() && upload.size_known && upload.part_size.is_none() {
        upload.blob_key.clone()
    } else {
        incoming_key(&upload.workspace_id, &upload.id)
    }
}

/// How many bytes of a file are read to sniff its type.
const SNIFF_BYTES: u64 = 8 * 1024;

/// What a client declares when it starts an upload.
#[derive(Debug, Clone, Default)]
pub struct NewUpload {
    pub name: String,
    /// The exact size, reserved up front; `None` when the client does not know it (any size up to
    /// the workspace's limits is accepted and charged when the bytes have arrived).
    pub size: Option<u64>,
    pub mime_type: Option<String>,
    pub sha256: Option<String>,
    pub folder_id: Option<FolderId>,
    /// Seconds the upload URL should live; the server's default when absent.
    pub expires_in: Option<u64>,
    /// Send the bytes in parts (resumable), each of this size but the last; `Some(None)` for the
    /// default part size. Needs a declared size.
    pub multipart: Option<Option<u64>>,
    /// The bytes, once verified, wait for a client to record the upload (`complete_upload`)
    /// before they become a file: Mavera's `upload-url` then `POST /files`.
    pub awaits_record: bool,
    /// The most an upload of unknown size may bring, below the workspace's own limit (MAVI's
    /// signed URLs: 5 GB).
    pub max_bytes: Option<u64>,
}

/// A started upload and where to send its bytes.
#[derive(Debug, Clone)]
pub struct UploadTicket {
    pub upload: Upload,
    pub url: String,
    pub method: &'static str,
    pub headers: Vec<(String, String)>,
    /// The same upload as a browser form, when the blob store offers one.
    pub form: Option<PresignedPost>,
    /// For a multipart upload, its parts; then `url` is empty: each part has its own URL.
    pub multipart: Option<PartPlan>,
}

/// An upload and, once it succeeded, its file.
#[derive(Debug, Clone)]
pub struct UploadState {
    pub upload: Upload,
    pub file: Option<FileRecord>,
}

/// Checks a declared sha256 and returns it lowercased.
pub fn parse_sha256(raw: &str) -> Result<String> {
    let hex = raw.trim().to_ascii_lowercase();
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(hex)
    } else {
        Err(Error::bad_request(Code::InvalidSha256, "sha256 must be 64 hexadecimal characters"))
    }
}

impl Cabinet {
    /// Starts an upload: validates it, reserves its size and signs a URL for its bytes.
    pub async fn start_upload(&self, caller: &Caller, request: NewUpload) -> Result<UploadTicket> {
        self.reserve_upload(caller, request).await.inspect_err(crate::telemetry::count_if_reservation_refused)
    }

    async fn reserve_upload(&self, caller: &Caller, request: NewUpload) -> Result<UploadTicket> {
        let created_by = self.authorize_create(caller, request.folder_id.as_ref()).await?;
        let ws = &caller.workspace_id;
        let name = validate_name(&request.name)?;
        let declared_mime = request.mime_type.as_deref().map(content_type::parse_declared).transpose()?;
        let sha256 = request.sha256.as_deref().map(parse_sha256).transpose()?;
        let quota = self.quota_of(&self.store.get_workspace(ws).await?);
        let max_file =
            request.max_bytes.map_or(quota.max_file_size_bytes, |cap| cap.min(quota.max_file_size_bytes));
        if let Some(size) = request.size.filter(|size| *size > max_file) {
            return Err(Error::TooLarge {
                code: Code::FileTooLarge,
                message: format!("the file is {size} bytes; the most this workspace accepts is {max_file}"),
            });
        }
        if request.size.is_none() && quota.is_full() {
            // Nothing is reserved for an unknown size, but a full workspace can take nothing.
            return Err(Error::QuotaExceeded { requested: 1, available: 0 });
        }
        let plan = match request.multipart {
            None => None,
            Some(part_size) => {
                let size = request.size.ok_or_else(|| {
                    Error::bad_request(Code::SizeRequired, "a multipart upload must declare its size")
                })?;
                Some(PartPlan::new(size, part_size)?)
            }
        };
        if let Some(folder) = &request.folder_id {
            self.check_folder(ws, folder).await?;
        }
        let default_ttl = if plan.is_some() { MULTIPART_TTL } else { self.settings.upload_url_ttl };
        let ttl = self.url_ttl(request.expires_in, default_ttl)?;
        let now = self.clock.now();
        // The URL's expiry is whole seconds; the upload expires with it, never before.
        let expires = expiry_timestamp(now + ttl);
        let file_id = FileId::generate();
        let upload = Upload {
            workspace_id: ws.clone(),
            id: UploadId::generate(),
            name,
            size: request.size.unwrap_or(0),
            size_known: request.size.is_some(),
            declared_mime,
            sha256,
            folder_id: request.folder_id,
            status: UploadStatus::Waiting,
            failure_reason: None,
            blob_key: format!("{ws}/{file_id}"),
            file_id,
            created_at: now,
            updated_at: now,
            expires_at: expiry_instant(expires),
            created_by,
            part_size: plan.map(|plan| plan.part_size),
            multipart_id: None,
            awaits_record: request.awaits_record,
        };
        if let Some(plan) = plan {
            return self.start_multipart(upload, plan).await;
        }
        // Its answer is settled once this commits: the request's audit record goes in the commit.
        let record = crate::audit::record_of_this_change(now);
        self.insert_upload_reserving_recorded(&upload, record).await?;
        // Bytes of unknown size always come through Cabinet, which measures them as they stream.
        let direct =
            if upload.size_known { self.blobs.presign_upload(&arrival_key(&upload), &upload) } else { None };
        let (url, method, headers, form) = match direct {
            Some(direct) => (direct.url, direct.method, direct.headers, direct.form),
            None => {
                let max_bytes = if upload.size_known { upload.size } else { max_file };
                let params = SignedParams { expires, max_bytes, attachment: false };
                let query =
                    self.signer.sign(SignedOperation::Upload, ws.as_str(), upload.id.as_str(), &params);
                let url = format!("{}{STORAGE_UPLOAD_PREFIX}/{ws}/{}?{query}", self.url_base(), upload.id);
                let headers = upload
                    .declared_mime
                    .iter()
                    .map(|mime| ("Content-Type".to_owned(), mime.clone()))
                    .collect();
                (url, "PUT", headers, None)
            }
        };
        tracing::info!(workspace = %ws, upload = %upload.id, size = upload.size, "upload started");
        Ok(UploadTicket { upload, url, method, headers, form, multipart: None })
    }

    /// An upload's state.
    pub async fn get_upload(&self, caller: &Caller, id: &UploadId) -> Result<UploadState> {
        self.own_upload(caller, id, Role::Read).await?;
        self.upload_state(&caller.workspace_id, id).await
    }

    /// The upload that makes (or made) the file of this id: a file's id is fixed when its upload
    /// starts, so it names the file-to-be from then on.
    pub async fn upload_of_file(&self, caller: &Caller, file: &FileId) -> Result<UploadState> {
        let upload = self.store.upload_of_file(&caller.workspace_id, file).await?;
        self.own_upload(caller, &upload.id, Role::Read).await?;
        self.upload_state(&caller.workspace_id, &upload.id).await
    }

    /// Keys reach every upload of their workspace (by role); an end user only their own.
    pub(crate) async fn own_upload(&self, caller: &Caller, id: &UploadId, role: Role) -> Result<()> {
        match caller.end_user() {
            None => caller.require(role),
            Some(sub) => {
                let upload = self.store.get_upload(&caller.workspace_id, id).await?;
                if upload.created_by.as_deref() == Some(sub) {
                    Ok(())
                } else {
                    Err(Error::NotFound("upload"))
                }
            }
        }
    }

    pub(crate) async fn upload_state(&self, ws: &WorkspaceId, id: &UploadId) -> Result<UploadState> {
        let upload = self.store.get_upload(ws, id).await?;
        let file = match upload.status {
            // The file may have been deleted since; the upload still says SUCCESS.
            UploadStatus::Success => self.store.get_file(ws, &upload.file_id).await.ok(),
            _ => None,
        };
        Ok(UploadState { upload, file })
    }

    /// Finalizes an upload whose bytes went straight to the blob store; on any backend it is
    /// idempotent: a finished upload is returned as it is.
    pub async fn complete_upload(&self, caller: &Caller, id: &UploadId) -> Result<UploadState> {
        self.record_upload(caller, id, None).await
    }

    /// Completes an upload as its record says: `complete_upload`, with the content type the
    /// record declares (it takes the place of the one the upload declared, and is honoured as
    /// far as the bytes agree with it). An upload that awaits its record becomes a file here.
    pub async fn record_upload(
        &self,
        caller: &Caller,
        id: &UploadId,
        mime_type: Option<&str>,
    ) -> Result<UploadState> {
        self.own_upload(caller, id, Role::Write).await?;
        let declared_mime = mime_type.map(content_type::parse_declared).transpose()?;
        let mut state = self.upload_state(&caller.workspace_id, id).await?;
        if declared_mime.is_some() {
            state.upload.declared_mime = declared_mime;
        }
        if state.upload.status == UploadStatus::Waiting && state.upload.part_size.is_some() {
            return self.complete_multipart(state.upload).await;
        }
        let arrives_directly = !self.blobs.receives_through_cabinet() || state.upload.awaits_record;
        if state.upload.status == UploadStatus::Waiting && arrives_directly {
            if let Some(info) = self.blobs.head(&arrival_key(&state.upload)).await? {
                return self.finish_arrived(state.upload, info).await;
            }
        }
        if state.upload.status == UploadStatus::Uploading && !self.blobs.receives_through_cabinet() {
            // The bytes are in the bucket and another node (or the reconciler) is verifying
            // them: wait for its verdict, so `complete` answers alike on every node.
            return settled(self.verdict_of(&caller.workspace_id, id).await?);
        }
        settled(state)
    }

    /// The upload's state once it is no longer UPLOADING, or as it is after a bounded wait.
    async fn verdict_of(&self, ws: &WorkspaceId, id: &UploadId) -> Result<UploadState> {
        const WAIT: std::time::Duration = std::time::Duration::from_secs(30);
        let started = std::time::Instant::now();
        let mut pause = std::time::Duration::from_millis(20);
        loop {
            let state = self.upload_state(ws, id).await?;
            if state.upload.status != UploadStatus::Uploading || started.elapsed() >= WAIT {
                return Ok(state);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(std::time::Duration::from_millis(500));
        }
    }

    /// Verifies bytes that arrived under an upload's arrival key and turns them into its file.
    /// The upload is UPLOADING meanwhile, so a racing `complete` or reconciler backs off.
    pub(crate) async fn finish_arrived(&self, upload: Upload, info: BlobInfo) -> Result<UploadState> {
        let (ws, id) = (&upload.workspace_id, &upload.id);
        if !self.store.begin_receiving(ws, id, self.clock.now()).await? {
            return settled(self.upload_state(ws, id).await?);
        }
        let mut guard = ReceivingGuard { cabinet: self.clone(), upload: Some(upload.clone()) };
        let arrival = arrival_key(&upload);
        let finished = self.verify_arrived(&upload, &arrival, info).await;
        guard.upload = None;
        let file = match finished {
            Ok(file) => file,
            Err(Ok((reason, error))) => {
                // Even at the file's own key: no file row exists before the upload succeeds.
                self.delete_blob_quietly(&arrival).await;
                self.fail(&upload, reason).await?;
                return Err(error);
            }
            Err(Err(error)) => {
                // The bytes were neither accepted nor refused (the blob store or the database
                // failed meanwhile): they wait, untouched, for `complete` (or the reconciler) to
                // verify them again, rather than the upload staying UPLOADING until the sweeper's
                // grace ends it.
                if let Err(err) = self.store.reopen_upload(ws, id, self.clock.now()).await {
                    tracing::warn!(error = %err, upload = %id, "could not reopen an upload whose verification failed");
                }
                return Err(error);
            }
        };
        Ok(UploadState { upload: upload.finished_as(&file), file: Some(file) })
    }

    /// The checks and the promotion of arrived bytes (none when they arrived at the file's own
    /// key); a rejection leaves the cleanup to the caller.
    async fn verify_arrived(
        &self,
        upload: &Upload,
        arrival: &str,
        info: BlobInfo,
    ) -> std::result::Result<FileRecord, Result<Rejection>> {
        check_size(upload, info.size).map_err(Ok)?;
        let (sha256, head) = match (&info.sha256, &upload.sha256) {
            (Some(sha256), _) => (sha256.clone(), self.read_head(arrival, info.size).await.map_err(Err)?),
            // The client was told to send the checksum to the store, which did not verify one.
            (None, Some(_)) if !self.blobs.receives_through_cabinet() => return Err(Ok(checksum_mismatch())),
            // Bytes Cabinet kept for a record (verified as they arrived): hashed again here, so
            // only what is there now becomes the file.
            (None, _) => self.hash_object(arrival).await.map_err(Err)?,
        };
        check_sha256(upload, &sha256).map_err(Ok)?;
        let file = file_of(upload, info.size, sha256, &head, self.clock.now());
        if arrival == file.blob_key {
            return self.settle(upload, file, OnTrouble::Fail).await.map_err(Err);
        }
        if let Err(err) = self.blobs.promote(arrival, &file.blob_key).await {
            self.delete_blob_quietly(&file.blob_key).await;
            // A blob store that is only unavailable refuses nothing: the bytes wait to be
            // verified again.
            if matches!(err, Error::Unavailable(_)) {
                return Err(Err(err));
            }
            return Err(Ok((FailureReason::StorageError, err)));
        }
        self.settle(upload, file, OnTrouble::Fail).await.map_err(Err)
    }

    /// The first bytes of an object, for sniffing.
    async fn read_head(&self, key: &str, size: u64) -> Result<bytes::Bytes> {
        if size == 0 {
            return Ok(bytes::Bytes::new());
        }
        let range = ByteRange { first: 0, last: size.min(SNIFF_BYTES) - 1 };
        let mut stream = self.blobs.open(key, Some(range)).await?;
        let mut head = bytes::BytesMut::new();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            head.extend_from_slice(&chunk?);
        }
        Ok(head.freeze())
    }

    /// Reads a whole object to learn its sha256 (when the store did not verify one), keeping its
    /// first bytes for sniffing.
    pub(crate) async fn hash_object(&self, key: &str) -> Result<(String, bytes::Bytes)> {
        use sha2::{Digest, Sha256};
        let mut stream = self.blobs.open(key, None).await?;
        let mut hasher = Sha256::new();
        let mut head = bytes::BytesMut::new();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk?;
            if (head.len() as u64) < SNIFF_BYTES {
                let take = (SNIFF_BYTES as usize - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            hasher.update(&chunk);
        }
        Ok((hex::encode(hasher.finalize()), head.freeze()))
    }

    /// Cancels a live upload, releasing its reservation.
    pub async fn cancel_upload(&self, caller: &Caller, id: &UploadId) -> Result<UploadState> {
        self.own_upload(caller, id, Role::Write).await?;
        let ws = &caller.workspace_id;
        let upload = self.store.get_upload(ws, id).await?;
        if upload.status == UploadStatus::Uploading {
            return Err(Error::conflict(
                Code::UploadInProgress,
                "the upload's bytes are arriving; it cannot be cancelled now",
            ));
        }
        if !self.store.fail_upload(ws, id, FailureReason::Cancelled, self.clock.now()).await? {
            return Err(Error::conflict(Code::UploadNotLive, "the upload has already ended"));
        }
        self.remove_what_a_failed_upload_left(&upload).await;
        self.upload_state(ws, id).await
    }

    /// Checks a signed upload URL and returns what it authorises.
    pub async fn verify_upload_url(
        &self,
        ws: &str,
        upload: &str,
        query: Option<&str>,
    ) -> Result<(WorkspaceId, UploadId, u64)> {
        self.learn_keys_named_by(query).await;
        let params = self.signer.verify(SignedOperation::Upload, ws, upload, query, self.clock.now())?;
        let ws = WorkspaceId::parse(ws)?;
        let upload = UploadId::parse(upload)?;
        Ok((ws, upload, params.max_bytes))
    }

    /// Takes the bytes of an upload through Cabinet's storage endpoint (after its URL was
    /// verified), at most `url_max_bytes` (what the URL was signed for), and finishes or fails it.
    pub async fn receive_upload(
        &self,
        ws: &WorkspaceId,
        id: &UploadId,
        body: ByteStream<'_>,
        content_length: Option<u64>,
        url_max_bytes: u64,
    ) -> Result<UploadState> {
        let upload = self.store.get_upload(ws, id).await?;
        match upload.status {
            UploadStatus::Waiting => {}
            UploadStatus::Uploading => {
                return Err(Error::conflict(
                    Code::UploadInProgress,
                    "bytes for this upload are already arriving",
                ))
            }
            UploadStatus::Success | UploadStatus::Failed => {
                return Err(Error::conflict(
                    Code::UploadNotWaiting,
                    "this upload has already ended; start a new one",
                ))
            }
        }
        if self.clock.now() >= upload.expires_at {
            self.fail(&upload, FailureReason::Expired).await?;
            return Err(Error::BadSignature { code: Code::UrlExpired, message: "this URL has expired" });
        }
        // Before a byte of the body is read: a workspace's slow uploads fill its own slots only.
        let _slot = self.transfer_slot(ws, None)?;
        let workspace = self.store.get_workspace(ws).await?;
        let file_cap = self.max_file_bytes(workspace.max_file_bytes).min(url_max_bytes);
        match self.receive(&upload, body, content_length, file_cap, OnTrouble::Reopen).await? {
            Some(file) => Ok(UploadState { upload: upload.finished_as(&file), file: Some(file) }),
            // Held for its record: WAITING again, with no file yet.
            None => self.upload_state(ws, id).await,
        }
    }

    /// Checks a folder exists and is not in the trash, so a file can go into it.
    pub(crate) async fn check_folder(&self, ws: &WorkspaceId, folder: &FolderId) -> Result<()> {
        self.live_folder(ws, folder).await.map(|_| ())
    }

    /// The instant before which a live upload counts as expired (for the sweeper).
    pub(crate) fn expiry_cutoffs(&self, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
        (now, now - self.settings.receive_grace)
    }
}

/// What `complete` answers for an upload it did not (or could not) finish now.
pub(crate) fn settled(state: UploadState) -> Result<UploadState> {
    match state.upload.status {
        UploadStatus::Success => Ok(state),
        UploadStatus::Failed => Err(Error::conflict(
            Code::UploadFailed,
            format!(
                "the upload failed: {}",
                state.upload.failure_reason.map(FailureReason::as_str).unwrap_or("unknown")
            ),
        )),
        UploadStatus::Uploading => {
            Err(Error::conflict(Code::UploadInProgress, "the upload's bytes are still arriving"))
        }
        UploadStatus::Waiting => {
            Err(Error::conflict(Code::UploadIncomplete, "no bytes have been received for this upload yet"))
        }
    }
}

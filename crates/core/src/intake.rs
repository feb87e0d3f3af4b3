//! The one way bytes become a file, whichever route brought them (a signed PUT or POST, a direct
//! upload, the parts of a multipart upload, a blob that arrived in the bucket): received within
//! a byte cap, staged and hashed, verified against what the upload declared (`check_size`,
//! `check_sha256`), committed under the file's key, and settled (the upload SUCCESS, the file
//! created and its size charged, in one transaction) or failed with a reason that releases what
//! the upload held. An upload that awaits its record is verified the same way but held at its
//! arrival key, WAITING, until a client records it (`record_upload`).

use chrono::{DateTime, Utc};

use crate::audit;
use crate::content_type;
use crate::error::{Error, ErrorKind, Result};
use crate::ids::UploadId;
use crate::model::{FailureReason, FileRecord, Upload, UploadStatus};
use crate::ports::{Begin, ByteStream, Finish, StageError, StagedBlob};
use crate::telemetry::{self, TransferInFlight};
use crate::uploads::arrival_key;
use crate::{Cabinet, Code};

/// What is logged when failing an upload is given up on.
const FAIL_GIVEN_UP: &str = "could not fail an upload; the sweeper will";

/// Why verified bytes were refused: the upload's failure reason and the client's error.
pub(crate) type Rejection = (FailureReason, Error);

/// What becomes of a live upload whose bytes could not be taken for the server's own trouble (a
/// store unavailable, the disk full): the client is answered 503, which says to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnTrouble {
    /// Failed, releasing what it holds: the retry is a new upload (a direct upload's own request
    /// made it, and nobody else knows it; a completion's parts or segments are spent).
    Fail,
    /// WAITING again with its reservation, so the same signed URL may be sent again until it
    /// expires.
    Reopen,
}

impl Cabinet {
    /// Receives the bytes of a WAITING upload, at most `file_cap` of them, and finishes (or, when
    /// it awaits its record, holds: then there is no file yet) or fails it. An upload of unknown
    /// size first reserves what it may bring (its Content-Length, else `file_cap`, as far as the
    /// quota holds), so uploads streaming at once never hold more than the quota; what the file
    /// does not use is released when it is created.
    pub(crate) async fn receive(
        &self,
        upload: &Upload,
        body: ByteStream<'_>,
        content_length: Option<u64>,
        file_cap: u64,
        on_trouble: OnTrouble,
    ) -> Result<Option<FileRecord>> {
        let now = self.clock.now();
        let not_waiting =
            || Error::conflict(Code::UploadNotWaiting, "this upload is no longer waiting for bytes");
        if upload.size_known {
            if content_length.is_some_and(|length| length > upload.size) {
                let (reason, error) = too_large(upload, upload.size, false);
                self.fail(upload, reason).await?;
                return Err(error);
            }
            if self.begin_receiving_together(upload, now, None).await?.is_none() {
                return Err(not_waiting());
            }
            return self.receive_begun(upload, body, upload.size, false, on_trouble).await;
        }
        if content_length.is_some_and(|length| length > file_cap) {
            let (reason, error) = too_large(upload, file_cap, false);
            telemetry::count_if_reservation_refused(&error);
            self.fail(upload, reason).await?;
            return Err(error);
        }
        let wanted = content_length.unwrap_or(file_cap);
        let Some(reserved) = self.begin_receiving_together(upload, now, Some(wanted)).await? else {
            return Err(not_waiting());
        };
        self.receive_reserved(upload, body, content_length, wanted, reserved, on_trouble).await
    }

    /// `receive` of a direct upload, which the request creating it receives: inserted already
    /// UPLOADING, its reservation taken in the same commit (one commit where a signed URL's upload
    /// takes two). Never held: the file, or an error. `room` is what the workspace's quota held
    /// when the request read it (`None`: unlimited).
    pub(crate) async fn receive_direct(
        &self,
        upload: &Upload,
        body: ByteStream<'_>,
        content_length: Option<u64>,
        file_cap: u64,
        room: Option<u64>,
    ) -> Result<FileRecord> {
        let wanted = content_length.unwrap_or(file_cap);
        let received = if upload.size_known || upload.awaits_record || wanted > file_cap {
            // Refused as any upload is (recorded as failed, with its reason), or not direct.
            self.insert_upload_reserving(upload).await?;
            self.receive(upload, body, content_length, file_cap, OnTrouble::Fail).await?
        } else {
            // Refused before anything is written when the room read already falls short, as a
            // reservation of a known size is: a client that keeps sending to a full workspace
            // costs a read, not an upload's insert and failure (two commits). The insert still
            // judges the quota in its own transaction, since that read may be a moment old.
            if let Some(refused) = room.and_then(|room| past_quota(content_length, wanted, room)) {
                return Err(refused);
            }
            let reserved = self.insert_upload_receiving(upload, wanted).await?;
            self.receive_reserved(upload, body, content_length, wanted, reserved, OnTrouble::Fail).await?
        };
        received.ok_or_else(|| Error::Internal("a direct upload was held for a record".into()))
    }

    /// Receives an upload of unknown size now UPLOADING with `reserved` of the `wanted` bytes
    /// reserved, or refuses it (failed, its reservation released) when the declared bytes (or any
    /// byte at all) cannot fit, before reading them.
    async fn receive_reserved(
        &self,
        upload: &Upload,
        body: ByteStream<'_>,
        content_length: Option<u64>,
        wanted: u64,
        reserved: u64,
        on_trouble: OnTrouble,
    ) -> Result<Option<FileRecord>> {
        if let Some(refused) = past_quota(content_length, wanted, reserved) {
            self.fail(upload, FailureReason::QuotaExceeded).await?;
            return Err(refused);
        }
        self.receive_begun(upload, body, reserved, reserved < wanted, on_trouble).await
    }

    /// Receives the bytes of an upload now UPLOADING, at most `limit` of them (`quota_bound`: the
    /// limit is what the quota held rather than the file's cap), and finishes, holds or fails it.
    async fn receive_begun(
        &self,
        upload: &Upload,
        body: ByteStream<'_>,
        limit: u64,
        quota_bound: bool,
        on_trouble: OnTrouble,
    ) -> Result<Option<FileRecord>> {
        // From here the upload is UPLOADING: if this future is dropped (the client went away, a
        // timeout fired), the guard still fails the upload and releases its reservation.
        let mut guard = ReceivingGuard { cabinet: self.clone(), upload: Some(upload.clone()) };
        let _in_flight = TransferInFlight::upload();
        let staged = match self.blobs.stage(body, limit).await {
            Ok(staged) => staged,
            Err(err) => {
                let (reason, error) = match err {
                    StageError::TooLarge { .. } => too_large(upload, limit, quota_bound),
                    StageError::Body(cause) => (
                        FailureReason::Incomplete,
                        Error::bad_request(
                            Code::IncompleteBody,
                            format!("the upload's body ended early: {cause}"),
                        ),
                    ),
                    StageError::Storage(cause) => (FailureReason::StorageError, Error::from(cause)),
                    StageError::Unavailable(cause) => {
                        (FailureReason::StorageError, Error::Unavailable(Box::new(cause)))
                    }
                };
                if matches!(error, Error::Unavailable(_)) && on_trouble == OnTrouble::Reopen {
                    // Nothing was kept: the temporary is gone with its stream. The guard would
                    // fail the upload this reopens.
                    guard.upload = None;
                    self.reopen(upload).await?;
                } else {
                    self.fail(upload, reason).await?;
                    guard.upload = None;
                }
                return Err(error);
            }
        };
        let finished = if upload.awaits_record {
            self.hold(upload, &staged).await.map(|()| {
                telemetry::upload_held();
                None
            })
        } else {
            self.finish(upload, &staged, on_trouble).await.map(Some)
        };
        guard.upload = None;
        finished
    }

    /// Verifies the staged bytes of an upload that awaits its record and keeps them at its
    /// arrival key, the upload WAITING again: no file exists until a client records it
    /// (`complete_upload`), and the sweeper removes them if none does before it expires.
    async fn hold(&self, upload: &Upload, staged: &StagedBlob) -> Result<()> {
        let arrival = arrival_key(upload);
        let verdict = check_size(upload, staged.size).and_then(|()| check_sha256(upload, &staged.sha256));
        if let Err((reason, error)) = verdict {
            self.blobs.discard(&staged.temp_key).await;
            self.fail(upload, reason).await?;
            // Bytes an earlier request kept there belong to an upload that has now failed.
            self.delete_blob_quietly(&arrival).await;
            return Err(error);
        }
        if let Err(err) = self.blobs.commit(staged, &arrival).await {
            self.blobs.discard(&staged.temp_key).await;
            self.fail(upload, FailureReason::StorageError).await?;
            self.delete_blob_quietly(&arrival).await;
            return Err(err);
        }
        if !self.store.reopen_upload(&upload.workspace_id, &upload.id, self.clock.now()).await? {
            self.delete_blob_quietly(&arrival).await;
            return Err(Error::conflict(
                Code::UploadNotLive,
                "the upload ended (expired or cancelled) before its bytes were kept",
            ));
        }
        tracing::info!(workspace = %upload.workspace_id, upload = %upload.id, "upload held for its record");
        Ok(())
    }

    /// Verifies staged bytes against the upload's declaration and turns them into its file.
    pub(crate) async fn finish(
        &self,
        upload: &Upload,
        staged: &StagedBlob,
        on_trouble: OnTrouble,
    ) -> Result<FileRecord> {
        let verdict = check_size(upload, staged.size).and_then(|()| check_sha256(upload, &staged.sha256));
        if let Err((reason, error)) = verdict {
            self.blobs.discard(&staged.temp_key).await;
            self.fail(upload, reason).await?;
            return Err(error);
        }
        let file = file_of(upload, staged.size, staged.sha256.clone(), &staged.head, self.clock.now());
        if let Err(err) = self.blobs.commit(staged, &file.blob_key).await {
            self.blobs.discard(&staged.temp_key).await;
            if matches!(err, Error::Unavailable(_)) {
                // What reached the file's key, if anything, is replaced by the next attempt.
                self.after_trouble(upload, on_trouble).await?;
            } else {
                self.fail(upload, FailureReason::StorageError).await?;
            }
            return Err(err);
        }
        self.settle(upload, file, on_trouble).await
    }

    /// The bytes are durable under the file's key; the file exists once this transaction commits.
    pub(crate) async fn settle(
        &self,
        upload: &Upload,
        file: FileRecord,
        on_trouble: OnTrouble,
    ) -> Result<FileRecord> {
        match self.finish_upload_together(upload, &file).await {
            Ok(true) => {
                tracing::info!(workspace = %file.workspace_id, file = %file.id, size = file.size, "upload finished");
                telemetry::upload_succeeded();
                self.file_created(&file);
                Ok(file)
            }
            Ok(false) => {
                self.delete_blob_quietly(&file.blob_key).await;
                Err(Error::conflict(
                    Code::UploadNotLive,
                    "the upload ended (expired or cancelled) before it finished",
                ))
            }
            // The store could not be reached or failed as the batch committed: the commit may
            // have happened with its answer lost (a connection cut after `COMMIT` was sent), and
            // then the file exists and its bytes are these.
            Err(err) if matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Internal) => {
                self.undo_unless_committed(upload, &file, on_trouble).await;
                Err(err)
            }
            Err(err) => {
                self.delete_blob_quietly(&file.blob_key).await;
                let reason = match err {
                    Error::QuotaExceeded { .. } => FailureReason::QuotaExceeded,
                    _ => FailureReason::StorageError,
                };
                self.fail(upload, reason).await?;
                Err(err)
            }
        }
    }

    /// After a finish that may or may not have committed: the upload is failed (or reopened, as
    /// `on_trouble` says) if it is still live, and its blob deleted only when no file was made of
    /// it. While the store cannot be reached this is retried in the background, the blob kept
    /// meanwhile.
    async fn undo_unless_committed(&self, upload: &Upload, file: &FileRecord, on_trouble: OnTrouble) {
        const WAIT: std::time::Duration = std::time::Duration::from_secs(2);
        let undone = tokio::time::timeout(WAIT, self.undone_unless_committed(upload, file, on_trouble)).await;
        if matches!(undone, Ok(Ok(()))) {
            return;
        }
        let (id, upload, file) = (&upload.id, upload.clone(), file.clone());
        // Given up on, the sweeper ends the upload and the orphan sweep finds a blob left alone.
        self.retry_once_reachable(
            id,
            "could not settle an upload whose commit went unanswered",
            move |cabinet| {
                let (upload, file) = (upload.clone(), file.clone());
                async move { cabinet.undone_unless_committed(&upload, &file, on_trouble).await }
            },
        );
    }

    async fn undone_unless_committed(
        &self,
        upload: &Upload,
        file: &FileRecord,
        on_trouble: OnTrouble,
    ) -> Result<()> {
        let (ws, id) = (&upload.workspace_id, &upload.id);
        if on_trouble == OnTrouble::Reopen {
            // Reopening changes an UPLOADING upload only, as finishing it does: once it waits
            // again, no file can be made of this attempt. Its bytes stay at the file's key, where
            // the next attempt replaces them (or the sweeper removes them when the URL expires):
            // removed here, they could be the next attempt's, sent as soon as the upload waited.
            if self.reopened(upload).await? {
                return Ok(());
            }
            // Finished (its answer lost), ended by the sweeper, or already waiting again (an
            // earlier try whose answer was lost): only a failed one's bytes are nobody's.
            if self.store.get_upload(ws, id).await?.status == UploadStatus::Failed {
                self.delete_blob_quietly(&file.blob_key).await;
            }
            return Ok(());
        }
        let reason = FailureReason::StorageError;
        // Failing it and finishing it each change a live upload only: once it is failed, no file
        // can be made of it.
        if self.store.fail_upload(ws, id, reason, self.clock.now()).await? {
            tracing::info!(workspace = %ws, upload = %id, reason = reason.as_str(), "upload failed");
            telemetry::upload_failed(reason);
            self.delete_blob_quietly(&file.blob_key).await;
            return Ok(());
        }
        match self.store.get_file(ws, &file.id).await {
            Ok(_) => {
                tracing::info!(workspace = %ws, file = %file.id, "upload finished, its answer lost");
                Ok(())
            }
            Err(err) if err.kind() == ErrorKind::NotFound => {
                self.delete_blob_quietly(&file.blob_key).await;
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Moves the WAITING upload to UPLOADING, reserving as it does when `reserving` says so (see
    /// `UploadStore::begin_receiving_all`), committed together with the uploads beginning at the
    /// same moment; returns once its commit is durable.
    async fn begin_receiving_together(
        &self,
        upload: &Upload,
        at: DateTime<Utc>,
        reserving: Option<u64>,
    ) -> Result<Option<u64>> {
        let begin =
            Begin { workspace: upload.workspace_id.clone(), upload: upload.id.clone(), at, reserving };
        let together = self.begins.commit(&self.store, begin.clone(), |store, begins| async move {
            store.begin_receiving_all(&begins).await
        });
        match together.await {
            Some(outcome) => outcome,
            None => self.store.begin_receiving_all(&[begin]).await?.pop().unwrap_or(Ok(None)),
        }
    }

    /// Inserts a direct upload already UPLOADING with as much of `most` bytes reserved as the
    /// quota holds, committed together with the others inserted at the same moment; returns the
    /// reservation once its commit is durable.
    async fn insert_upload_receiving(&self, upload: &Upload, most: u64) -> Result<u64> {
        let together =
            self.direct_begins.commit(&self.store, (upload.clone(), most), |store, uploads| async move {
                store.insert_uploads_receiving(&uploads).await
            });
        let outcome = match together.await {
            Some(outcome) => outcome,
            None => {
                self.store.insert_uploads_receiving(&[(upload.clone(), most)]).await?.pop().unwrap_or(Ok(0))
            }
        };
        if let Err(err) = &outcome {
            // Its commit may have happened with the answer lost: failed once the store answers.
            // (The direct upload fails an `unavailable` one itself, whichever step it came from.)
            if err.kind() == ErrorKind::Internal {
                self.fail_once_reachable(upload.clone(), FailureReason::StorageError);
            }
        }
        outcome
    }

    /// Finishes the upload into `file`, committed together with the uploads finishing at the same
    /// moment and with the request's audit record where its answer is settled by this commit
    /// (`audit::answers_change_with`); returns once its commit is durable.
    async fn finish_upload_together(&self, upload: &Upload, file: &FileRecord) -> Result<bool> {
        let record = audit::record_of_this_change(self.clock.now());
        let status = record.as_ref().map(|record| record.status);
        let finish = Finish { upload: upload.id.clone(), file: file.clone(), record };
        let together = self.finishes.commit(&self.store, finish, |store, finishes| async move {
            store.finish_uploads(&finishes).await
        });
        match together.await {
            Some(outcome) => {
                if let (Ok(true), Some(status)) = (&outcome, status) {
                    audit::change_recorded(status);
                }
                outcome
            }
            // The layer around the request appends its record.
            None => self.store.finish_upload(&upload.workspace_id, &upload.id, file).await,
        }
    }

    /// Fails or reopens, as `on_trouble` says, an upload whose bytes could not be taken for the
    /// server's own trouble.
    async fn after_trouble(&self, upload: &Upload, on_trouble: OnTrouble) -> Result<()> {
        match on_trouble {
            OnTrouble::Fail => self.fail(upload, FailureReason::StorageError).await,
            OnTrouble::Reopen => self.reopen(upload).await,
        }
    }

    /// UPLOADING → WAITING, its reservation kept (a no-op when it is no longer UPLOADING); as with
    /// `fail`, recorded in the background when the store does not answer at once (the sweeper ends
    /// the upload if that never succeeds).
    async fn reopen(&self, upload: &Upload) -> Result<()> {
        let waiting = upload.clone();
        self.now_or_once_reachable(
            &upload.id,
            "could not reopen an upload; the sweeper will end it",
            move |cabinet, _| {
                let upload = waiting.clone();
                async move { cabinet.reopened(&upload).await.map(|_| ()) }
            },
        )
        .await
    }

    /// Whether this call moved the upload from UPLOADING back to WAITING.
    async fn reopened(&self, upload: &Upload) -> Result<bool> {
        let (ws, id) = (&upload.workspace_id, &upload.id);
        let reopened = self.store.reopen_upload(ws, id, self.clock.now()).await?;
        if reopened {
            tracing::info!(workspace = %ws, upload = %id, "upload waits for its bytes again");
        }
        Ok(reopened)
    }

    /// Fails a live upload (a no-op when it already ended). When the metadata store cannot be
    /// reached (the very trouble that often ends an upload) or does not answer at once, the
    /// failure is retried in the background until it can be recorded: otherwise the upload would
    /// stay UPLOADING, its reservation held and its URL answering `upload_in_progress`, until the
    /// sweeper's grace ends it.
    pub(crate) async fn fail(&self, upload: &Upload, reason: FailureReason) -> Result<()> {
        let failing = upload.clone();
        self.now_or_once_reachable(&upload.id, FAIL_GIVEN_UP, move |cabinet, again| {
            let upload = failing.clone();
            async move { cabinet.record_failure(&upload, reason, again).await }
        })
        .await
    }

    /// Retries failing an upload, with backoff, until the metadata store answers (see
    /// `retry_once_reachable`; the sweeper ends whatever is left).
    pub(crate) fn fail_once_reachable(&self, upload: Upload, reason: FailureReason) {
        let id = upload.id.clone();
        self.retry_once_reachable(&id, FAIL_GIVEN_UP, move |cabinet| {
            let upload = upload.clone();
            async move { cabinet.record_failure(&upload, reason, true).await }
        });
    }

    /// Fails the upload in the store and, when this call did, logs and counts it (`again`: once
    /// the store answered after it had not).
    async fn record_failure(&self, upload: &Upload, reason: FailureReason, again: bool) -> Result<()> {
        let (ws, id) = (&upload.workspace_id, &upload.id);
        if self.store.fail_upload(ws, id, reason, self.clock.now()).await? {
            if again {
                tracing::info!(workspace = %ws, upload = %id, reason = reason.as_str(), "upload failed once the metadata store answered again");
            } else {
                tracing::info!(workspace = %ws, upload = %id, reason = reason.as_str(), "upload failed");
            }
            telemetry::upload_failed(reason);
        }
        Ok(())
    }

    /// Runs `step` now, waiting at most 2 s for the metadata store; when it finds the store
    /// unreachable or does not answer in time, the caller is told `unavailable` and `step` goes on
    /// in the background (`retry_once_reachable`). On an error path the store is often what
    /// failed: a client is not kept waiting for a second pool timeout while a step is recorded.
    /// `step`'s flag says whether it runs again, in the background.
    async fn now_or_once_reachable<F, Fut>(
        &self,
        upload: &UploadId,
        given_up: &'static str,
        step: F,
    ) -> Result<()>
    where
        F: Fn(Cabinet, bool) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        const WAIT: std::time::Duration = std::time::Duration::from_secs(2);
        let error = match tokio::time::timeout(WAIT, step(self.clone(), false)).await {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(err @ Error::Unavailable(_))) => err,
            Ok(Err(err)) => return Err(err),
            Err(_) => Error::Unavailable("the metadata store did not answer in time".into()),
        };
        self.retry_once_reachable(upload, given_up, move |cabinet| step(cabinet, true));
        Err(error)
    }

    /// Runs `step` in the background until it is done: again, after a pause that grows from
    /// 200 ms to 5 s, while it finds the metadata store unreachable, for at most ten minutes.
    /// Any other error, or the last, is logged with `given_up`.
    fn retry_once_reachable<F, Fut>(&self, upload: &UploadId, given_up: &'static str, step: F)
    where
        F: Fn(Cabinet) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send,
    {
        const RETRY_FOR: std::time::Duration = std::time::Duration::from_secs(600);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (cabinet, upload) = (self.clone(), upload.clone());
        runtime.spawn(async move {
            let give_up_at = std::time::Instant::now() + RETRY_FOR;
            let mut pause = std::time::Duration::from_millis(200);
            loop {
                tokio::time::sleep(pause).await;
                match step(cabinet.clone()).await {
                    Ok(()) => return,
                    Err(Error::Unavailable(_)) if std::time::Instant::now() < give_up_at => {
                        pause = (pause * 2).min(std::time::Duration::from_secs(5));
                    }
                    Err(err) => return tracing::warn!(error = %err, upload = %upload, "{given_up}"),
                }
            }
        });
    }

    /// Removes what an upload the caller has just failed (cancelled, expired) may have left in the
    /// blob store: its parts; what a signed upload answered 503 left at its file's key, where it
    /// waited for its bytes again (`OnTrouble::Reopen`); and bytes that landed without Cabinet
    /// (sent straight to S3, never completed) or were held for a record nobody made. No file can
    /// be made of a failed upload, so none owns any of it. A presigned PUT can still land after
    /// this, until its URL expires: the sweeper removes that once it has
    /// (`remove_late_arrivals`).
    pub(crate) async fn remove_what_a_failed_upload_left(&self, upload: &Upload) {
        self.remove_parts_quietly(upload).await;
        if self.blobs.receives_through_cabinet() && !upload.awaits_record {
            self.delete_blob_quietly(&upload.blob_key).await;
        } else {
            self.delete_blob_quietly(&arrival_key(upload)).await;
        }
    }

    pub(crate) async fn delete_blob_quietly(&self, key: &str) {
        self.hot.forget_object(key);
        if let Err(err) = self.blobs.delete(key).await {
            // The orphan sweep will find it.
            tracing::warn!(error = %err, key, "could not delete a blob");
        }
    }
}

/// Fails an UPLOADING upload whose receiving future was dropped before it ended.
pub(crate) struct ReceivingGuard {
    pub(crate) cabinet: Cabinet,
    pub(crate) upload: Option<Upload>,
}

impl Drop for ReceivingGuard {
    fn drop(&mut self) {
        let Some(upload) = self.upload.take() else { return };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let cabinet = self.cabinet.clone();
        runtime.spawn(async move {
            // Whatever was staged is removed by the blob store when its stream is dropped; a
            // blob committed under the upload's key without a file is removed here.
            match cabinet.fail(&upload, FailureReason::Incomplete).await {
                Ok(()) => {
                    // Only when the store says there is no such file: not when it cannot say.
                    let file = cabinet.store.get_file(&upload.workspace_id, &upload.file_id).await;
                    if file.is_err_and(|err| err.kind() == ErrorKind::NotFound) {
                        cabinet.delete_blob_quietly(&upload.blob_key).await;
                    }
                    let arrival = arrival_key(&upload);
                    let direct = !cabinet.blobs.receives_through_cabinet() || upload.awaits_record;
                    if direct && arrival != upload.blob_key {
                        cabinet.delete_blob_quietly(&arrival).await;
                    }
                }
                Err(err) => {
                    tracing::warn!(error = %err, upload = %upload.id, "could not fail an abandoned upload")
                }
            }
        });
    }
}

/// The size rule: exactly the declared number of bytes.
pub(crate) fn check_size(upload: &Upload, size: u64) -> std::result::Result<(), Rejection> {
    if size == upload.size || !upload.size_known {
        return Ok(());
    }
    Err((
        FailureReason::SizeMismatch,
        Error::Unprocessable {
            code: Code::SizeMismatch,
            message: format!("{size} bytes arrived; the upload declared {}", upload.size),
        },
    ))
}

/// The checksum rule: when a sha256 was declared, the bytes hash to it.
pub(crate) fn check_sha256(upload: &Upload, sha256: &str) -> std::result::Result<(), Rejection> {
    match &upload.sha256 {
        Some(declared) if declared != sha256 => Err(checksum_mismatch()),
        _ => Ok(()),
    }
}

pub(crate) fn checksum_mismatch() -> Rejection {
    (
        FailureReason::ChecksumMismatch,
        Error::Unprocessable {
            code: Code::ChecksumMismatch,
            message: "the bytes do not match the declared sha256".to_owned(),
        },
    )
}

/// The file verified bytes become.
pub(crate) fn file_of(
    upload: &Upload,
    size: u64,
    sha256: String,
    head: &[u8],
    now: DateTime<Utc>,
) -> FileRecord {
    let mut file = FileRecord::new(
        upload.workspace_id.clone(),
        upload.file_id.clone(),
        upload.name.clone(),
        content_type::sniff(head, upload.declared_mime.as_deref(), &upload.name),
        size,
        sha256,
        upload.folder_id.clone(),
        upload.blob_key.clone(),
        now,
    );
    file.created_by = upload.created_by.clone();
    file
}

/// The refusal (counted) of an upload of unknown size whose `room` in the quota falls short of the
/// `wanted` bytes it declared, or, declaring none, holds not one byte; `None` when it may begin.
fn past_quota(content_length: Option<u64>, wanted: u64, room: u64) -> Option<Error> {
    if room >= wanted || (content_length.is_none() && room > 0) {
        return None;
    }
    let refused = Error::QuotaExceeded { requested: content_length.unwrap_or(1), available: room };
    telemetry::count_if_reservation_refused(&refused);
    Some(refused)
}

/// Why more than `limit` bytes were refused: more than declared, over the file size limit, or
/// over what the quota still holds.
fn too_large(upload: &Upload, limit: u64, quota_bound: bool) -> Rejection {
    if upload.size_known {
        let message = format!("more bytes were sent than the {} the upload declared", upload.size);
        return (FailureReason::SizeMismatch, Error::TooLarge { code: Code::SizeExceeded, message });
    }
    if quota_bound {
        return (
            FailureReason::QuotaExceeded,
            Error::QuotaExceeded { requested: limit + 1, available: limit },
        );
    }
    let message = format!("the file is larger than the {limit} bytes this workspace accepts");
    (FailureReason::SizeMismatch, Error::TooLarge { code: Code::FileTooLarge, message })
}

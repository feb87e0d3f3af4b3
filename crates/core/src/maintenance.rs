//! Leaving nothing behind: the sweeper fails expired uploads (releasing their reservations and
//! deleting bytes that went straight to the blob store, at the upload's arrival key: its incoming
//! key, or the file's own key, which no file owns before the upload succeeds) and, once their URLs
//! expire, deletes what was sent to uploads that failed before then, the reconciler
//! completes direct uploads whose clients never called complete, and recovery after a restart
//! removes temporary objects, fails uploads whose bytes were lost with the stopped process, and
//! removes blobs that no file or live upload owns (a thumbnail is owned by its file); past
//! `OBJECTS_SWEPT_BEFORE_SERVING` objects, that last part goes on while the server serves.

use futures::{StreamExt, TryStreamExt};

use crate::error::Result;
use crate::ids::{UploadId, WorkspaceId};
use crate::model::FailureReason;
use crate::multipart::PartPlan;
use crate::thumbnails::{owner_blob_key, THUMBNAIL_PREFIX};
use crate::uploads::{arrival_key, incoming_key, INCOMING_PREFIX};
use crate::{Cabinet, Code, UploadStatus};

const BATCH: u32 = 500;
/// How long past its URL's expiry the sweeper waits before removing what landed for an upload
/// that failed while its URL was valid: the blob store judges the URL by its own clock, which may
/// run a little behind this one.
const STORE_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(1);
/// How many objects `check_consistency` asks the blob store about at once.
const HEADS_AT_ONCE: usize = 32;

/// What a reconciler pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Uploads whose bytes had arrived and were verified into files.
    pub completed: u64,
    /// Uploads whose bytes had arrived but were refused (size or checksum).
    pub refused: u64,
    /// Uploads that expired with no bytes.
    pub expired: u64,
}

/// What recovery found and fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub temporaries_removed: u64,
    pub interrupted_uploads_failed: u64,
    /// Multipart uploads stopped while their parts were being joined: every part is still
    /// there, so they wait for `complete` again.
    pub interrupted_assemblies_reopened: u64,
    pub orphan_blobs_removed: u64,
    pub orphan_parts_removed: u64,
    /// Whether the store held more objects than are judged before serving
    /// (`recover_before_serving`): the rest are swept while the server serves.
    pub orphan_sweep_continues: bool,
}

/// How many stored objects the sweep after a restart judges before the server answers. A store of
/// up to this many is swept whole first, as before; a larger one is swept on while the server
/// serves (judging 1,000,000 objects took 7.5 s, so a store of 10,000,000 would otherwise keep the
/// server from answering for over a minute). Sweeping while serving is safe because a blob is
/// written only after the row that owns it (a live upload's, at its key) is committed: one that
/// no file and no live upload owns when it is judged is never owned again.
pub const OBJECTS_SWEPT_BEFORE_SERVING: usize = 100_000;

/// A sweep of the blob store for orphans, a page of its listing at a time; what is left of one
/// after a restart runs while the server serves (`finish`).
pub struct OrphanSweep {
    cabinet: Cabinet,
    pages: futures::stream::BoxStream<'static, Result<Vec<String>>>,
}

impl OrphanSweep {
    fn new(cabinet: &Cabinet) -> Self {
        Self { cabinet: cabinet.clone(), pages: cabinet.blobs.key_pages() }
    }

    /// Judges `objects` more stored objects (rounded up to whole pages), or every one left,
    /// deleting orphans; returns how many it deleted and whether the listing ended.
    async fn judge(&mut self, objects: usize) -> Result<(u64, bool)> {
        let (mut judged, mut removed) = (0, 0);
        while judged < objects {
            let Some(page) = self.pages.try_next().await? else { return Ok((removed, true)) };
            judged += page.len();
            removed += self.cabinet.remove_orphans_among(page).await?;
        }
        Ok((removed, false))
    }

    /// Judges the rest of the store's objects, deleting orphans; returns how many it deleted.
    pub async fn finish(mut self) -> Result<u64> {
        Ok(self.judge(usize::MAX).await?.0)
    }
}

/// What `cabinet admin check` found, and what it repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CheckReport {
    /// Blobs that no file or live upload owns.
    pub orphan_objects: Vec<String>,
    /// Files whose blob is missing or of another size: (file id, blob key).
    pub files_without_objects: Vec<(String, String)>,
    /// Workspaces whose ledger differs from their files and uploads.
    pub ledger_drift: Vec<LedgerDrift>,
    /// Whether the safe repairs were made: orphans removed, ledgers recomputed.
    pub repaired: bool,
}

/// One workspace's drift.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LedgerDrift {
    pub workspace_id: String,
    pub recorded_used: u64,
    pub actual_used: u64,
    pub recorded_reserved: u64,
    pub actual_reserved: u64,
}

impl CheckReport {
    /// Whether everything was consistent.
    pub fn is_clean(&self) -> bool {
        self.orphan_objects.is_empty()
            && self.files_without_objects.is_empty()
            && self.ledger_drift.is_empty()
    }
}

impl Cabinet {
    /// Checks the stores against each other: orphan objects, files without objects, ledger drift.
    /// With `repair`, removes orphans and recomputes ledgers; missing objects can only be reported.
    /// Orphans are only those older than a live upload could explain, so it is safe while serving.
    pub async fn check_consistency(&self, repair: bool) -> Result<CheckReport> {
        let mut report = CheckReport { repaired: repair, ..Default::default() };
        report.orphan_objects = self.orphan_keys().await?;
        // Every upload's row commits before its blob is written, so what nothing owns now stays
        // unowned; but servers of earlier versions, which may be serving beside this check,
        // committed a direct upload's blob a moment before its row: before removing anything,
        // pause and look again, so a blob whose row was being written is never taken for an orphan.
        if repair && !report.orphan_objects.is_empty() {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            let still: std::collections::HashSet<String> = self.orphan_keys().await?.into_iter().collect();
            report.orphan_objects.retain(|key| still.contains(key));
        }
        let mut after = None;
        loop {
            let page = self.store.file_blobs(after.as_ref(), BATCH).await?;
            // Several at once: on S3 each is a round trip, and one at a time a store of
            // 10,000,000 files would wait through hours of them.
            let missing: Vec<Option<(String, String)>> = futures::stream::iter(&page)
                .map(|(_, id, key, size)| async move {
                    Ok::<_, crate::Error>(match self.blobs.head(key).await? {
                        Some(info) if info.size == *size => None,
                        _ => Some((id.to_string(), key.clone())),
                    })
                })
                .buffered(HEADS_AT_ONCE)
                .try_collect()
                .await?;
            report.files_without_objects.extend(missing.into_iter().flatten());
            match page.last() {
                Some((ws, id, _, _)) if page.len() == BATCH as usize => {
                    after = Some((ws.clone(), id.clone()))
                }
                _ => break,
            }
        }
        for workspace in self.store.list_workspaces().await? {
            let ledger = self.store.reconcile_ledger(&workspace.id, repair, self.clock.now()).await?;
            if ledger.drifted() {
                report.ledger_drift.push(LedgerDrift {
                    workspace_id: workspace.id.to_string(),
                    recorded_used: ledger.recorded_used,
                    actual_used: ledger.actual_used,
                    recorded_reserved: ledger.recorded_reserved,
                    actual_reserved: ledger.actual_reserved,
                });
            }
        }
        if repair {
            for key in &report.orphan_objects {
                self.blobs.delete(key).await?;
            }
        }
        Ok(report)
    }

    /// Fails every upload whose URL has expired; returns how many.
    pub async fn sweep_expired_uploads(&self) -> Result<u64> {
        let (waiting_before, uploading_before) = self.expiry_cutoffs(self.clock.now());
        let mut failed = 0;
        loop {
            let batch = self.store.expired_uploads(waiting_before, uploading_before, BATCH).await?;
            let done = batch.len() < BATCH as usize;
            for (ws, id) in batch {
                if self.store.fail_upload(&ws, &id, FailureReason::Expired, self.clock.now()).await? {
                    failed += 1;
                    match self.store.get_upload(&ws, &id).await {
                        Ok(upload) => self.remove_what_a_failed_upload_left(&upload).await,
                        // Not read back: bytes sent straight to the store land at its incoming
                        // key unless it declared a sha256, which the orphan sweep then finds.
                        Err(_) if !self.blobs.receives_through_cabinet() => {
                            self.delete_blob_quietly(&incoming_key(&ws, &id)).await
                        }
                        Err(_) => {}
                    }
                }
            }
            if done {
                break;
            }
        }
        if failed > 0 {
            tracing::info!(failed, "expired uploads failed");
        }
        let late = self.remove_late_arrivals().await?;
        if late > 0 {
            tracing::info!(uploads = late, "what landed after uploads failed was removed");
        }
        // Parts whose upload ended without them being removed (a crash, a failed removal).
        let parts = self.remove_orphan_parts().await?;
        if parts > 0 {
            tracing::info!(parts, "orphan upload parts removed");
        }
        Ok(failed)
    }

    /// For blob stores that receive bytes directly (S3): once the URL of an upload that failed
    /// while it was valid (cancelled, refused at `complete`) has expired, removes what was sent to
    /// it after the upload failed, which no file and no live upload owns; returns how many uploads
    /// it judged. Each is judged once, in the order their URLs expired; those whose URLs expired
    /// before this process started are left to the orphan sweep after the restart.
    async fn remove_late_arrivals(&self) -> Result<u64> {
        if self.blobs.receives_through_cabinet() {
            return Ok(0);
        }
        let by = self.clock.now() - STORE_CLOCK_SKEW;
        let (mut after, mut after_id) = lock(&self.late_arrivals_swept).clone();
        let mut judged = 0;
        loop {
            let batch = self.store.uploads_failed_before_expiry(after, after_id.as_ref(), by, BATCH).await?;
            let done = batch.len() < BATCH as usize;
            for upload in &batch {
                // Parts need their multipart upload, which ended with it; bytes of unknown size
                // only ever came through Cabinet.
                if upload.size_known && PartPlan::of(upload).is_none() {
                    self.delete_blob_quietly(&arrival_key(upload)).await;
                }
                judged += 1;
            }
            if let Some(last) = batch.last() {
                (after, after_id) = (last.expires_at, Some(last.id.clone()));
            }
            *lock(&self.late_arrivals_swept) = (after, after_id.clone());
            if done {
                break;
            }
        }
        // Every URL that expired before `by` is judged: the next pass starts there.
        if after < by {
            *lock(&self.late_arrivals_swept) = (by, None);
        }
        Ok(judged)
    }

    /// For blob stores that receive bytes directly (S3): completes every WAITING upload whose
    /// bytes have arrived, as `complete` would, and fails those that expired with none. Expiry is
    /// judged by the upload, not the object: the store itself refused bytes sent after expiry.
    pub async fn reconcile_uploads(&self) -> Result<ReconcileReport> {
        let mut report = ReconcileReport::default();
        if self.blobs.receives_through_cabinet() {
            return Ok(report);
        }
        let mut after: Option<UploadId> = None;
        loop {
            let batch = self.store.waiting_uploads(after.as_ref(), BATCH).await?;
            let done = batch.len() < BATCH as usize;
            after = batch.last().map(|upload| upload.id.clone());
            for upload in batch {
                let arrival = arrival_key(&upload);
                if (upload.part_size.is_some() || upload.awaits_record)
                    && self.clock.now() < upload.expires_at
                {
                    // Parts are completed by the client's `complete`, never guessed at; an upload
                    // that awaits its record becomes a file only when a client records it.
                    continue;
                }
                // An expired upload that awaited its record expires with whatever arrived.
                let arrived = if upload.awaits_record { None } else { self.blobs.head(&arrival).await? };
                match arrived {
                    Some(info) => match self.finish_arrived(upload, info).await {
                        Ok(state) if state.upload.status == UploadStatus::Success => report.completed += 1,
                        Ok(_) => {}
                        Err(err)
                            if err.code() == Code::SizeMismatch || err.code() == Code::ChecksumMismatch =>
                        {
                            report.refused += 1
                        }
                        Err(err) => tracing::warn!(error = %err, "reconciling an upload failed"),
                    },
                    None if self.clock.now() >= upload.expires_at => {
                        let (ws, id, now) = (&upload.workspace_id, &upload.id, self.clock.now());
                        let failed = self.store.fail_upload(ws, id, FailureReason::Expired, now).await?;
                        report.expired += u64::from(failed);
                        // The file's own key only when this call ended the upload: had another
                        // finished it meanwhile, the object there would be its file's.
                        if failed || arrival != upload.blob_key {
                            self.delete_blob_quietly(&arrival).await;
                        }
                        self.remove_parts_quietly(&upload).await;
                    }
                    None => {}
                }
            }
            if done {
                break;
            }
        }
        if report != ReconcileReport::default() {
            tracing::info!(?report, "direct uploads reconciled");
        }
        Ok(report)
    }

    /// Run once at start-up, before serving: nothing is staging yet, so every temporary object is
    /// a leftover, and (when bytes reach storage only through Cabinet) no UPLOADING upload can
    /// ever finish. The whole store is swept for orphans before this returns.
    pub async fn recover_after_restart(&self) -> Result<RecoveryReport> {
        // No bound: the sweep judges every object, and nothing is left of it.
        Ok(self.recover_before_serving(usize::MAX).await?.0)
    }

    /// `recover_after_restart`, with the orphan sweep stopped once it has judged `objects` stored
    /// objects (rounded up to whole pages of the listing): the rest of the sweep, if the store
    /// holds more, is returned, for the server to finish while it serves.
    pub async fn recover_before_serving(
        &self,
        objects: usize,
    ) -> Result<(RecoveryReport, Option<OrphanSweep>)> {
        let mut report = RecoveryReport {
            temporaries_removed: self.blobs.remove_temporaries().await?,
            ..Default::default()
        };
        if self.blobs.receives_through_cabinet() {
            loop {
                let batch = self.store.receiving_uploads(BATCH).await?;
                let done = batch.len() < BATCH as usize;
                for (ws, id) in batch {
                    let upload = self.store.get_upload(&ws, &id).await?;
                    if PartPlan::of(&upload).is_some() || self.has_segments(&upload).await? {
                        // Parts (and a resumable upload's segments) are only removed once the
                        // file is committed (or the upload ends).
                        if self.store.reopen_upload(&ws, &id, self.clock.now()).await? {
                            report.interrupted_assemblies_reopened += 1;
                        }
                        continue;
                    }
                    if self.store.fail_upload(&ws, &id, FailureReason::Interrupted, self.clock.now()).await? {
                        report.interrupted_uploads_failed += 1;
                    }
                }
                if done {
                    break;
                }
            }
        }
        // Only parts of uploads that ended: a live multipart upload resumes after the restart.
        report.orphan_parts_removed = self.remove_orphan_parts().await?;
        let mut sweep = OrphanSweep::new(self);
        let (removed, ended) = sweep.judge(objects).await?;
        report.orphan_blobs_removed = removed;
        report.orphan_sweep_continues = !ended;
        let rest = (!ended).then_some(sweep);
        tracing::info!(?report, "recovered after restart");
        Ok((report, rest))
    }

    /// Deletes every committed blob that no file and no live upload owns; returns how many.
    pub async fn remove_orphan_blobs(&self) -> Result<u64> {
        OrphanSweep::new(self).finish().await
    }

    /// Deletes the blobs of `keys` that no file and no live upload owns; returns how many.
    async fn remove_orphans_among(&self, keys: Vec<String>) -> Result<u64> {
        let orphans = self.orphans_among(keys).await?;
        for key in &orphans {
            self.blobs.delete(key).await?;
        }
        Ok(orphans.len() as u64)
    }

    /// Blobs that no file and no live upload owns. Only keys Cabinet writes are judged (a file's
    /// `ws_…/file_…`, `thumbnails/…`, `incoming/…`): anything else under the store's prefix is
    /// another's (an object put there by hand, another deployment's prefix in the same bucket)
    /// and is left alone.
    async fn orphan_keys(&self) -> Result<Vec<String>> {
        let mut orphans = Vec::new();
        // A page of the listing at a time: a store of 10,000,000 objects listed whole held ~1 GB
        // of their keys while the sweep after a restart ran.
        let mut pages = self.blobs.key_pages();
        while let Some(page) = pages.try_next().await? {
            orphans.extend(self.orphans_among(page).await?);
        }
        Ok(orphans)
    }

    /// The keys of `keys` that no file and no live upload owns.
    async fn orphans_among(&self, keys: Vec<String>) -> Result<Vec<String>> {
        let keys: Vec<String> = keys.into_iter().filter(|key| is_cabinets(key)).collect();
        let mut orphans = Vec::new();
        let (incoming, keys): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|key| key.starts_with(INCOMING_PREFIX));
        // A thumbnail is owned by its file, through the file's blob key; anything else under the
        // thumbnails prefix is not a thumbnail and is an orphan.
        let (thumbnails, keys): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|key| key.starts_with(THUMBNAIL_PREFIX));
        let owned = self.store.blob_keys_in_use(&keys).await?;
        orphans.extend(keys.into_iter().filter(|key| !owned.contains(key)));
        let owners: Vec<String> =
            thumbnails.iter().filter_map(|key| owner_blob_key(key)).map(str::to_owned).collect();
        let owned = self.store.blob_keys_in_use(&owners).await?;
        orphans.extend(
            thumbnails
                .into_iter()
                .filter(|key| !owner_blob_key(key).is_some_and(|owner| owned.contains(owner))),
        );
        // Bytes that arrived directly belong to their upload while it is live: at the file's own
        // key (`arrival_key`) through `blob_keys_in_use` above, at an incoming key through this.
        for key in incoming {
            if !self.incoming_is_wanted(&key).await? {
                orphans.push(key);
            }
        }
        Ok(orphans)
    }
}

/// A poisoned lock only means a panic elsewhere while it was held; the cursor is still usable.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a key has the shape of one Cabinet writes.
fn is_cabinets(key: &str) -> bool {
    let shaped = key.split('/').all(|part| {
        !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    shaped
        && (key.starts_with("ws_") || key.starts_with(THUMBNAIL_PREFIX) || key.starts_with(INCOMING_PREFIX))
}

impl Cabinet {
    /// Whether an incoming key belongs to a live upload.
    async fn incoming_is_wanted(&self, key: &str) -> Result<bool> {
        let parsed = key
            .strip_prefix(INCOMING_PREFIX)
            .and_then(|rest| rest.split_once('/'))
            // `incoming/{ws}/{upload}`, a part staged under it (`incoming/{ws}/{upload}-parts/…`),
            // or a resumable upload's segment (`incoming/{ws}/{upload}/{offset}`).
            .map(|(ws, rest)| (ws, rest.split(['/', '-']).next().unwrap_or(rest)))
            .and_then(|(ws, id)| Some((WorkspaceId::parse(ws).ok()?, UploadId::parse(id).ok()?)));
        let Some((ws, id)) = parsed else { return Ok(false) };
        match self.store.get_upload(&ws, &id).await {
            Ok(upload) => Ok(upload.status.is_live()),
            Err(crate::Error::NotFound(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::is_cabinets;

    #[test]
    fn only_keys_of_cabinets_shape_are_judged_as_orphans() {
        for ours in [
            "ws_01h/file_01h",
            "thumbnails/ws_01h/file_01h/256",
            "incoming/ws_01h/upl_01h",
            "incoming/ws_01h/upl_01h-parts/00001-abc",
        ] {
            assert!(is_cabinets(ours), "{ours}");
        }
        for foreign in
            ["notes.txt", "backup/ws_01h/file_01h", "bench-rclone/big-0/big.bin", "ws_01h/a b", "ws_01h//x"]
        {
            assert!(!is_cabinets(foreign), "{foreign}");
        }
    }
}

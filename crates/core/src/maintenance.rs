//! Leaving nothing behind: the sweeper fails expired uploads (releasing their reservations), and
//! recovery after a restart removes temporary objects, fails uploads whose bytes were lost with
//! the stopped process, and removes blobs that no file or live upload owns.

use crate::error::Result;
use crate::model::FailureReason;
use crate::Cabinet;

const BATCH: u32 = 500;

/// What recovery found and fixed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    pub temporaries_removed: u64,
    pub interrupted_uploads_failed: u64,
    pub orphan_blobs_removed: u64,
}

impl Cabinet {
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
                }
            }
            if done {
                break;
            }
        }
        if failed > 0 {
            tracing::info!(failed, "expired uploads failed");
        }
        Ok(failed)
    }

    /// Run once at start-up, before serving: nothing is staging yet, so every temporary object is
    /// a leftover, and (when bytes reach storage only through Cabinet) no UPLOADING upload can
    /// ever finish.
    pub async fn recover_after_restart(&self) -> Result<RecoveryReport> {
        let mut report = RecoveryReport {
            temporaries_removed: self.blobs.remove_temporaries().await?,
            ..Default::default()
        };
        if self.blobs.receives_through_cabinet() {
            loop {
                let batch = self.store.receiving_uploads(BATCH).await?;
                let done = batch.len() < BATCH as usize;
                for (ws, id) in batch {
                    if self.store.fail_upload(&ws, &id, FailureReason::Interrupted, self.clock.now()).await? {
                        report.interrupted_uploads_failed += 1;
                    }
                }
                if done {
                    break;
                }
            }
        }
        report.orphan_blobs_removed = self.remove_orphan_blobs().await?;
        tracing::info!(?report, "recovered after restart");
        Ok(report)
    }

    /// Deletes every committed blob that no file and no live upload owns; returns how many.
    pub async fn remove_orphan_blobs(&self) -> Result<u64> {
        let keys = self.blobs.list_keys().await?;
        let mut removed = 0;
        for chunk in keys.chunks(BATCH as usize) {
            let owned = self.store.blob_keys_in_use(chunk).await?;
            for key in chunk.iter().filter(|key| !owned.contains(*key)) {
                self.blobs.delete(key).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

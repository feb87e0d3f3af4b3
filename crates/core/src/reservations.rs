//! Group commit of upload reservations (`crate::group_commit`): uploads started at the same moment
//! are inserted, each with its reservation, in one transaction. An upload whose ticket was
//! answered is durable; each is judged by the quota on its own (one that does not fit is refused,
//! the others in its commit stand).

use crate::error::{ErrorKind, Result};
use crate::model::{FailureReason, Upload};
use crate::Cabinet;

impl Cabinet {
    /// Inserts a live upload and reserves its size (`QuotaExceeded`, nothing written, when it
    /// does not fit), committed together with the uploads started at the same moment; returns
    /// once its commit is durable.
    ///
    /// When the commit failed on the database's side (away, or the connection cut), it may still
    /// have landed with only its answer lost. The caller is told it failed, so the upload is failed
    /// too once the database answers again: its reservation never outlives the refusal.
    pub(crate) async fn insert_upload_reserving(&self, upload: &Upload) -> Result<()> {
        let outcome = self.insert_upload_reserving_together(upload).await;
        if let Err(err) = &outcome {
            if matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Internal) {
                self.fail_once_reachable(upload.clone(), FailureReason::StorageError);
            }
        }
        outcome
    }

    async fn insert_upload_reserving_together(&self, upload: &Upload) -> Result<()> {
        let together = self.reservations.commit(&self.store, upload.clone(), |store, uploads| async move {
            store.insert_uploads_reserving(&uploads).await
        });
        match together.await {
            Some(outcome) => outcome,
            None => self.store.insert_upload_reserving(upload).await,
        }
    }
}

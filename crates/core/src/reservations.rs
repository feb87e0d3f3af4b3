//! Group commit of upload reservations (`crate::group_commit`): uploads started at the same moment
//! are inserted, each with its reservation, in one transaction. An upload whose ticket was
//! answered is durable; each is judged by the quota on its own (one that does not fit is refused,
//! the others in its commit stand).

use crate::audit::{self, NewAuditRecord};
use crate::error::{ErrorKind, Result};
use crate::model::{FailureReason, Upload};
use crate::ports::Reservation;
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
        self.insert_upload_reserving_recorded(upload, None).await
    }

    /// `insert_upload_reserving`, with `record` (the request's audit record) in the same commit.
    pub(crate) async fn insert_upload_reserving_recorded(
        &self,
        upload: &Upload,
        record: Option<NewAuditRecord>,
    ) -> Result<()> {
        let outcome = self.insert_upload_reserving_together(upload, record).await;
        if let Err(err) = &outcome {
            if matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Internal) {
                self.fail_once_reachable(upload.clone(), FailureReason::StorageError);
            }
        }
        outcome
    }

    async fn insert_upload_reserving_together(
        &self,
        upload: &Upload,
        record: Option<NewAuditRecord>,
    ) -> Result<()> {
        let status = record.as_ref().map(|record| record.status);
        let reservation = Reservation { upload: upload.clone(), record };
        let together = self.reservations.commit(&self.store, reservation, |store, reservations| async move {
            store.insert_uploads_reserving(&reservations).await
        });
        match together.await {
            Some(outcome) => {
                if let (Ok(()), Some(status)) = (&outcome, status) {
                    audit::change_recorded(status);
                }
                outcome
            }
            // The layer around the request appends its record.
            None => self.store.insert_upload_reserving(upload).await,
        }
    }
}

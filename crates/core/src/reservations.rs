//! Group commit of upload reservations: uploads started at the same moment are inserted, each
//! with its reservation, in one transaction, so that one commit (one fsync on SQLite, whose writes
//! go one at a time) serves them all. Each caller still waits for the commit that holds its
//! upload, so an upload whose ticket was answered is durable; each is judged by the quota on its
//! own (one that does not fit is refused, the others in its commit stand).

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorKind, Result};
use crate::model::{FailureReason, Upload};
use crate::{Cabinet, MetadataStore};

/// The most uploads one commit inserts.
const MOST_UPLOADS_PER_COMMIT: usize = 256;

/// The queue of uploads waiting for their commit, and the task that commits them.
#[derive(Default)]
pub(crate) struct ReservationWriter {
    queue: OnceLock<mpsc::Sender<PendingUpload>>,
}

struct PendingUpload {
    upload: Upload,
    inserted: oneshot::Sender<Result<()>>,
}

impl ReservationWriter {
    fn queue(&self, store: &Arc<dyn MetadataStore>) -> &mpsc::Sender<PendingUpload> {
        self.queue.get_or_init(|| {
            // Bounded: past it, callers wait for room rather than queue without limit.
            let (queue, pending) = mpsc::channel(4096);
            tokio::spawn(insert_batches(store.clone(), pending));
            queue
        })
    }
}

async fn insert_batches(store: Arc<dyn MetadataStore>, mut pending: mpsc::Receiver<PendingUpload>) {
    while let Some(first) = pending.recv().await {
        let mut batch = vec![first];
        while batch.len() < MOST_UPLOADS_PER_COMMIT {
            let Ok(next) = pending.try_recv() else { break };
            batch.push(next);
        }
        let (uploads, waiting): (Vec<Upload>, Vec<_>) =
            batch.into_iter().map(|pending| (pending.upload, pending.inserted)).unzip();
        match store.insert_uploads_reserving(&uploads).await {
            Ok(outcomes) => {
                for (inserted, outcome) in waiting.into_iter().zip(outcomes) {
                    let _ = inserted.send(outcome);
                }
            }
            Err(err) => {
                for inserted in waiting {
                    let _ = inserted.send(Err(shared(&err)));
                }
            }
        }
    }
}

/// The failure of a whole commit, told to each upload in it: the same kind (a database away is
/// still `unavailable`) and message.
fn shared(err: &Error) -> Error {
    match err.kind() {
        ErrorKind::Unavailable => Error::Unavailable(err.to_string().into()),
        _ => Error::internal(err.to_string()),
    }
}

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
        let (inserted, committed) = oneshot::channel();
        let queue = self.reservation_writer.queue(&self.store);
        if queue.send(PendingUpload { upload: upload.clone(), inserted }).await.is_ok() {
            if let Ok(outcome) = committed.await {
                return outcome;
            }
        }
        // The writer is gone (the runtime it ran on ended): this caller commits its own.
        self.store.insert_upload_reserving(upload).await
    }
}

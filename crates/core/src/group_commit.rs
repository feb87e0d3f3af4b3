//! Group commit: writes asked for at the same moment go to the store together, in one
//! transaction, so that one commit (one fsync on SQLite, whose writes go one at a time) serves
//! them all. Each caller still waits for the commit that holds its write, so an answered write is
//! durable, and each gets the outcome of its own write.

use std::future::Future;
use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};

use crate::error::{Error, ErrorKind, Result};
use crate::MetadataStore;

/// The most writes one commit holds.
const MOST_PER_COMMIT: usize = 256;
/// How many writes may wait for a commit; past it, callers wait for room rather than queue
/// without limit.
const MOST_WAITING: usize = 4096;

/// A queue of writes of one kind (`T`, each answered with a `Result<O>`) and the task that
/// commits them, started by the first write.
pub(crate) struct GroupCommit<T, O> {
    queue: OnceLock<mpsc::Sender<Pending<T, O>>>,
}

impl<T, O> Default for GroupCommit<T, O> {
    fn default() -> Self {
        Self { queue: OnceLock::new() }
    }
}

struct Pending<T, O> {
    write: T,
    done: oneshot::Sender<Result<O>>,
}

impl<T: Send + 'static, O: Send + 'static> GroupCommit<T, O> {
    /// Commits `write` with the others waiting now, through `commit_batch` (which answers one
    /// outcome per write, in their order, or `Err` when the transaction as a whole failed and none
    /// was written). `None` when the committing task is gone (the runtime it ran on ended, or its
    /// thread could not be started): the caller then writes on its own.
    pub(crate) async fn commit<F, Fut>(
        &self,
        store: &Arc<dyn MetadataStore>,
        write: T,
        commit_batch: F,
    ) -> Option<Result<O>>
    where
        F: Fn(Arc<dyn MetadataStore>, Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Vec<Result<O>>>> + Send + 'static,
    {
        let queue = self.queue.get_or_init(|| {
            let (queue, pending) = mpsc::channel(MOST_WAITING);
            spawn_committer(store, commit_batches(store.clone(), pending, commit_batch));
            queue
        });
        let (done, committed) = oneshot::channel();
        queue.send(Pending { write, done }).await.ok()?;
        committed.await.ok()
    }
}

/// Starts `committer`, the loop that takes a group commit's queue. Where the store hands each
/// statement to a thread of its own, the loop gets a thread of its own too, with a runtime of its
/// own (timers only: the store's thread is all it waits on): a transaction is several statements
/// in a row, and on the server's runtime each answer's wake-up would wait its turn behind the
/// requests queued there while every write of the batch waits on it. If that thread or its
/// runtime cannot be started, the queue is dropped and each write goes on its own (`commit`
/// answers `None`).
pub(crate) fn spawn_committer<F>(store: &Arc<dyn MetadataStore>, committer: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if !store.hands_statements_to_a_thread() {
        tokio::spawn(committer);
        return;
    }
    let started = std::thread::Builder::new().name("group-commit".into()).spawn(move || {
        match tokio::runtime::Builder::new_current_thread().enable_time().build() {
            Ok(runtime) => runtime.block_on(committer),
            Err(err) => {
                tracing::warn!(error = %err, "group commit: no runtime of its own; each write commits alone")
            }
        }
    });
    if let Err(err) = started {
        tracing::warn!(error = %err, "group commit: no thread of its own; each write commits alone");
    }
}

async fn commit_batches<T, O, F, Fut>(
    store: Arc<dyn MetadataStore>,
    mut pending: mpsc::Receiver<Pending<T, O>>,
    commit_batch: F,
) where
    F: Fn(Arc<dyn MetadataStore>, Vec<T>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<O>>>>,
{
    while let Some(first) = pending.recv().await {
        let mut batch = vec![first];
        while batch.len() < MOST_PER_COMMIT {
            let Ok(next) = pending.try_recv() else { break };
            batch.push(next);
        }
        let (writes, waiting): (Vec<T>, Vec<_>) = batch.into_iter().map(|p| (p.write, p.done)).unzip();
        match commit_batch(store.clone(), writes).await {
            Ok(outcomes) => {
                for (done, outcome) in waiting.into_iter().zip(outcomes) {
                    let _ = done.send(outcome);
                }
            }
            Err(err) => {
                for done in waiting {
                    let _ = done.send(Err(shared(&err)));
                }
            }
        }
    }
}

/// The failure of a whole commit, told to each write in it: the same kind (a database away is
/// still `unavailable`) and its causes, so the log line of each request it fails says why.
fn shared(err: &Error) -> Error {
    match err.kind() {
        ErrorKind::Unavailable => Error::Unavailable(err.causes().into()),
        _ => Error::internal(err.causes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Code;

    #[test]
    fn a_failed_commit_is_told_to_each_write_with_its_kind_and_its_cause() {
        let away = Error::Unavailable(Box::new(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "pool timed out while waiting for an open connection",
        )));
        let told = shared(&away);
        assert_eq!(told.kind(), ErrorKind::Unavailable);
        assert_eq!(told.causes(), "pool timed out while waiting for an open connection");
        let broken = Error::internal(std::io::Error::other("disk I/O error"));
        let told = shared(&broken);
        assert_eq!(told.kind(), ErrorKind::Internal);
        assert_eq!(told.causes(), "disk I/O error");
        // An error with no cause behind it is described by its own words.
        assert_eq!(
            Error::conflict(Code::AlreadyExists, "that already exists").causes(),
            "that already exists"
        );
    }
}

//! The blob port's implementations. `LocalBlobStore` keeps objects under a data folder: bytes are
//! written to a temporary file while hashed, fsynced, and renamed into place only when committed.
//! `S3BlobStore` keeps them in a bucket and presigns URLs so clients talk to the bucket directly.

mod local;
mod recent_reads;
mod s3;
mod sending;
mod sigv4;

pub use local::LocalBlobStore;
pub use recent_reads::RecentReads;
pub use s3::{S3BlobStore, S3Config};

/// A poisoned lock only means a panic elsewhere while it was held; what it guards is still usable.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

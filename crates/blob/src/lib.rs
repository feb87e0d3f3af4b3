//! The blob port's implementations. `LocalBlobStore` keeps objects under a data folder: bytes are
//! written to a temporary file while hashed, fsynced, and renamed into place only when committed.

mod local;

pub use local::LocalBlobStore;

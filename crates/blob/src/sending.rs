//! What downloads hold in memory for sending, in all of the process, whichever store they read.

use std::sync::atomic::AtomicUsize;

/// Bytes read for downloads and not yet sent, in all of the process: a chunk read from the local
/// folder is counted from its read until the connection has written it (or dropped it); a read
/// from S3, three of its connection's read buffers while the read is open. A client that asks for a
/// download and does not read it holds the chunk its connection could not send.
pub(crate) static HELD_FOR_SENDING: AtomicUsize = AtomicUsize::new(0);
/// What all downloads may hold before each reads in small pieces: a thousand downloads whose
/// clients did not read held 590 MiB in 256 KiB chunks; a stalled one now holds 16 KiB once the
/// process as a whole holds this much.
pub(crate) const MOST_HELD_FOR_SENDING: usize = 64 * 1024 * 1024;

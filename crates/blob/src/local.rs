//! A local folder as blob store: `objects/<key>` for committed objects, `tmp/<id>.part` while
//! bytes arrive, `parts/<ws>/<upload>/<n>` for the received parts of a multipart upload (durable
//! like objects: they outlive a restart, so the upload resumes). Bytes are received on the async
//! runtime and handed to the blocking pool only in ~1 MiB batches, one at a time, where they are
//! hashed and written: memory stays flat whatever the file size, the network never waits on the
//! disk for more than one batch, and a slow client holds no thread while it waits. Past its first
//! 32 MiB a file is written with `O_DIRECT`, in half batches, each written while the next is hashed.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use cabinet_core::ports::{
    Assembled, BlobInfo, ByteRange, ByteStream, PartInfo, StageError, StagedBlob, KEY_PAGE,
};
use cabinet_core::{BlobStore, Error, Result, Upload};
use futures::stream::BoxStream;
use futures::StreamExt;
use memmap2::MmapMut;
use sha2::{Digest, Sha256};

use crate::lock;
use crate::sending::{HELD_FOR_SENDING, MOST_HELD_FOR_SENDING};

/// The batch handed to the disk at a time; large writes keep syscalls few.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Bytes written between early writeback requests. A syncer thread flushes what has been written
/// so far while more arrives, so the fsync before SUCCESS has little left to do: a large upload
/// pays for the disk while the network is still sending, not after it.
const WRITEBACK_EVERY: u64 = 32 * 1024 * 1024;
/// How much of the start of a file is kept for content sniffing.
const HEAD_BYTES: usize = 8 * 1024;
/// The most a download reads at a time. A connection queues one chunk of an answer at most
/// before it waits for the socket (hyper's `max_buf_size`, 64 KiB here, which bounds its read
/// buffer too), so the chunk is what each `writev` sends, and the next is read meanwhile
/// (`read_ahead`): a download holds two. A 1 GiB download from the page cache ran at ~2,650 MiB/s
/// in 1 MiB chunks and ~2,450 in 512 KiB (nginx ~2,300; ~2,000 in 1 MiB chunks read only once the
/// one before was sent), but 1 MiB chunks took the server's peak RSS while it sent 1 GiB to 66 MiB,
/// and 512 KiB to 62.1–64.7 MiB (the memory test allows 64); 256 KiB: 59.8–62.2 MiB, and 1.11–1.20×
/// nginx's rate where 512 KiB ran at 1.33–1.38× in the same hour.
const READ_CHUNK: usize = 256 * 1024;
/// The least a download reads at a time, once downloads hold `MOST_HELD_FOR_SENDING`.
const SMALL_READ_CHUNK: usize = 16 * 1024;
/// Objects (or ranges) up to this size are read in the same blocking call that opens them.
const SMALL_READ: u64 = 64 * 1024;

/// How much a download reads next: a sixteenth of what downloads may still hold, from
/// `READ_CHUNK` when they hold nothing down to `SMALL_READ_CHUNK`, so one download alone reads
/// large chunks and many at once share the allowance.
fn next_read_size() -> usize {
    read_size_while_held(HELD_FOR_SENDING.load(Ordering::Relaxed))
}

fn read_size_while_held(held: usize) -> usize {
    let share = MOST_HELD_FOR_SENDING.saturating_sub(held) / 16;
    (share / SMALL_READ_CHUNK * SMALL_READ_CHUNK).clamp(SMALL_READ_CHUNK, READ_CHUNK)
}

/// A chunk read for sending, counted in `HELD_FOR_SENDING` until the last `Bytes` of it drops.
struct HeldForSending(Vec<u8>);

impl AsRef<[u8]> for HeldForSending {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for HeldForSending {
    fn drop(&mut self) {
        HELD_FOR_SENDING.fetch_sub(self.0.capacity(), Ordering::Relaxed);
    }
}

/// Reads exactly `len` bytes of `file` into a counted chunk.
fn read_chunk(file: &mut fs::File, len: usize) -> io::Result<Bytes> {
    HELD_FOR_SENDING.fetch_add(len, Ordering::Relaxed);
    let mut chunk = HeldForSending(Vec::with_capacity(len));
    file.take(len as u64).read_to_end(&mut chunk.0)?;
    if chunk.0.len() != len {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the object ended before its size"));
    }
    Ok(Bytes::from_owner(chunk))
}

/// A chunk of a download being read on the blocking pool, with the file to read the next from.
type ReadAhead = tokio::task::JoinHandle<io::Result<(fs::File, Bytes)>>;

/// Starts reading the next chunk of `left` bytes, as large as `next_read_size` says.
fn read_ahead(mut file: fs::File, left: u64) -> Option<ReadAhead> {
    if left == 0 {
        return None;
    }
    let size = next_read_size().min(usize::try_from(left).unwrap_or(usize::MAX));
    Some(tokio::task::spawn_blocking(move || read_chunk(&mut file, size).map(|chunk| (file, chunk))))
}

/// `wanted` bytes of `file`, from where it stands, a chunk at a time on the blocking pool. Each
/// chunk is read while the connection sends the one before, so the socket is not left idle while
/// the disk (or the page cache) is read.
fn chunks_of(file: fs::File, wanted: u64) -> ByteStream<'static> {
    futures::stream::try_unfold((read_ahead(file, wanted), wanted), |(pending, left)| async move {
        let Some(pending) = pending else {
            return Ok(None);
        };
        let (file, chunk) = pending.await.map_err(io::Error::other)??;
        let left = left - chunk.len() as u64;
        Ok(Some((chunk, (read_ahead(file, left), left))))
    })
    .boxed()
}

/// An object opened for reading: small ones already read.
enum Opened {
    Whole(Bytes),
    Large(fs::File, u64),
}

/// Blobs in a local folder.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    objects: PathBuf,
    tmp: PathBuf,
    parts: PathBuf,
}

impl LocalBlobStore {
    /// Opens (creating if needed) a blob store under `root`.
    pub fn open(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref();
        let store = Self { objects: root.join("objects"), tmp: root.join("tmp"), parts: root.join("parts") };
        fs::create_dir_all(&store.objects)?;
        fs::create_dir_all(&store.tmp)?;
        fs::create_dir_all(&store.parts)?;
        Ok(store)
    }

    /// The path of a committed object; refuses keys that could leave the objects folder.
    fn object_path(&self, key: &str) -> Result<PathBuf> {
        let safe = !key.is_empty()
            && key.split('/').all(|part| {
                !part.is_empty()
                    && part != "."
                    && part != ".."
                    && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            });
        if !safe {
            return Err(Error::internal(format!("refusing blob key {key:?}")));
        }
        Ok(self.objects.join(key))
    }

    /// The folder of an upload's parts.
    fn parts_path(&self, upload: &Upload) -> Result<PathBuf> {
        let (ws, id) = (upload.workspace_id.as_str(), upload.id.as_str());
        let safe =
            |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !safe(ws) || !safe(id) {
            return Err(Error::internal(format!("refusing parts of {ws:?}/{id:?}")));
        }
        Ok(self.parts.join(ws).join(id))
    }

    fn temp_path(&self, temp_key: &str) -> Result<PathBuf> {
        let safe = temp_key.ends_with(".part")
            && temp_key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_')
            && !temp_key.starts_with('.');
        if !safe {
            return Err(Error::internal(format!("refusing temporary key {temp_key:?}")));
        }
        Ok(self.tmp.join(temp_key))
    }
}

/// Flushes a file's written pages to disk in the background while the writer carries on.
/// Started on a file's first `WRITEBACK_EVERY` bytes, so small files never spawn one.
struct Writeback {
    requests: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<io::Result<()>>,
}

impl Writeback {
    fn start(file: &fs::File) -> io::Result<Self> {
        #[cfg(test)]
        if tests::REFUSE_WRITEBACK_THREADS.get() {
            return Err(io::Error::from(io::ErrorKind::WouldBlock));
        }
        let file = file.try_clone()?;
        let (requests, pending) = std::sync::mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new().name("cabinet-writeback".into()).spawn(move || {
            while pending.recv().is_ok() {
                file.sync_data()?;
            }
            Ok(())
        })?;
        Ok(Self { requests, thread })
    }

    /// Asks for a flush of everything written so far; one already pending covers this one too.
    fn request(&self) {
        let _ = self.requests.try_send(());
    }

    /// Waits for the syncer and reports its error: the clone shares the open file description,
    /// so an error it saw might not be reported again to the final fsync.
    fn finish(self) -> io::Result<()> {
        drop(self.requests);
        self.thread.join().map_err(|_| io::Error::other("the writeback thread panicked"))?
    }
}

/// The temporary file being written, with the hash and size of what it holds. It moves into a
/// blocking task for each batch and comes back with it, so no thread is held between batches.
struct TempWriter {
    /// Unbuffered: a batch is already ~1 MiB and goes down in vectored writes, so no copy of it is
    /// held per upload (a thousand uploads at once held a thousand 1 MiB buffers).
    out: fs::File,
    hasher: Sha256,
    size: u64,
    /// Dropped with the writer, its thread sees the channel close and ends.
    writeback: Option<Writeback>,
    flushed_at: u64,
    /// A large file's bytes go to the disk past the page cache (`DirectWrites`).
    direct: Direct,
}

/// Whether a file's bytes go past the page cache.
enum Direct {
    /// Not before `DIRECT_FROM` bytes.
    NotYet,
    Writing(DirectWrites),
    /// The filesystem does not take `O_DIRECT`.
    Refused,
}

/// Where a file's bytes start to go past the page cache: files this small (a thousand uploads of
/// 1 MiB at once, or a small file's one batch) are written as before, without the aligned copy
/// each batch written past the page cache takes.
const DIRECT_FROM: u64 = WRITEBACK_EVERY;

/// A large file's bytes past `DIRECT_FROM`, written with `O_DIRECT` through a second handle on the
/// same file: from a page-aligned copy straight to the device, where a write through the page cache
/// copies them there first and the kernel's writeback later sends them on (`perf` put that copy at
/// ~40% of the server's CPU during a 1 GiB upload). Whole blocks only: the bytes up to the first
/// block boundary and the file's last part block go through the page cache (`DirectFiles::cached`).
struct DirectWrites {
    files: Arc<DirectFiles>,
    /// Where the next bytes go: past the first boundary, a whole number of blocks.
    handed: u64,
    /// Received bytes not yet handed on, less than a block.
    carry: Vec<u8>,
    /// The file's buffers not in use, for its next batches.
    spare: Arc<Mutex<Vec<MmapMut>>>,
}

/// What `O_DIRECT` asks to be aligned: the buffer's address, each write's length and its offset.
const DIRECT_BLOCK: usize = 4096;
/// The batch past `DIRECT_FROM` (`Staging::batch_size`).
const DIRECT_BATCH: usize = WRITE_BUFFER / 2;
/// The room of a buffer of blocks: a full batch, whose last chunk may take it past `DIRECT_BATCH`.
const BLOCKS_ROOM: usize = DIRECT_BATCH + 256 * 1024;
/// A file's buffers kept for its next batches: one is filled while another is written.
const MOST_SPARE: usize = 2;

impl DirectWrites {
    /// From `at` in the file at `path`, open as `out`; `None` where the filesystem does not take
    /// `O_DIRECT`.
    fn open(path: &Path, out: &fs::File, at: u64) -> Option<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let direct = fs::OpenOptions::new()
            .write(true)
            .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
            .open(path)
            .ok()?;
        let files = DirectFiles { direct, cached: out.try_clone().ok()? };
        Some(Self { files: Arc::new(files), handed: at, carry: Vec::new(), spare: Arc::default() })
    }

    /// The batch's whole blocks (after what the last batch left) in an aligned copy, to be written
    /// by the caller while the next batch is hashed; the rest waits for the next batch. Bytes
    /// before the first block boundary are written through the page cache here.
    fn blocks(&mut self, batch: &[impl AsRef<[u8]>]) -> io::Result<Blocks> {
        let carry = std::mem::take(&mut self.carry);
        let mut received = Pieces::new(&carry, batch);
        let past_boundary = (self.handed % DIRECT_BLOCK as u64) as usize;
        if past_boundary != 0 {
            let mut lead = Vec::new();
            received.move_into(&mut lead, DIRECT_BLOCK - past_boundary);
            std::os::unix::fs::FileExt::write_all_at(&self.files.cached, &lead, self.handed)?;
            self.handed += lead.len() as u64;
        }
        let whole = match self.handed % DIRECT_BLOCK as u64 {
            0 => received.left() / DIRECT_BLOCK * DIRECT_BLOCK,
            _ => 0,
        };
        let map = match whole {
            0 => None,
            _ => {
                let spare = lock(&self.spare).pop().filter(|map| map.len() >= whole);
                let mut map = match spare {
                    Some(map) => map,
                    None => MmapMut::map_anon(whole.max(BLOCKS_ROOM))?,
                };
                received.copy_to(&mut map[..whole]);
                Some(map)
            }
        };
        received.move_into(&mut self.carry, received.left());
        BUFFERED.fetch_add(whole, Ordering::Relaxed);
        let blocks = Blocks {
            files: self.files.clone(),
            offset: self.handed,
            map,
            len: whole,
            spare: self.spare.clone(),
        };
        self.handed += whole as u64;
        Ok(blocks)
    }

    /// Writes the last part of a block through the page cache, once every `Blocks` is written.
    fn finish(&self) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.files.cached, &self.carry, self.handed)
    }
}

/// Received bytes in pieces, read from the front.
struct Pieces<'a> {
    pieces: Vec<&'a [u8]>,
    next: usize,
}

impl<'a> Pieces<'a> {
    fn new(first: &'a [u8], then: &'a [impl AsRef<[u8]>]) -> Self {
        let pieces = std::iter::once(first).chain(then.iter().map(AsRef::as_ref)).collect();
        Self { pieces, next: 0 }
    }

    fn left(&self) -> usize {
        self.pieces[self.next..].iter().map(|piece| piece.len()).sum()
    }

    /// Fills `into` with the next bytes (its start only, when fewer are left).
    fn copy_to(&mut self, into: &mut [u8]) {
        let mut copied = 0;
        while copied < into.len() && self.next < self.pieces.len() {
            let piece = self.pieces[self.next];
            let taken = piece.len().min(into.len() - copied);
            into[copied..copied + taken].copy_from_slice(&piece[..taken]);
            copied += taken;
            if taken == piece.len() {
                self.next += 1;
            } else {
                self.pieces[self.next] = &piece[taken..];
            }
        }
    }

    /// Appends the next `wanted` bytes (fewer when fewer are left) to `into`.
    fn move_into(&mut self, into: &mut Vec<u8>, wanted: usize) {
        let from = into.len();
        into.resize(from + wanted.min(self.left()), 0);
        self.copy_to(&mut into[from..]);
    }
}

/// The file being written, opened with `O_DIRECT` and without.
struct DirectFiles {
    direct: fs::File,
    cached: fs::File,
}

/// Whole blocks of a file in a page-aligned buffer, for `O_DIRECT`; counted in `BUFFERED` until
/// written, then the buffer goes back to the file's spares. An anonymous map, not the allocator's:
/// a buffer is filled on one blocking thread and freed on another, and glibc kept each freed one
/// in the arena of the thread that took it, ~8 MiB more at the peak of a 1 GiB upload; a map is
/// given back to the system when the file's last buffer drops.
struct Blocks {
    files: Arc<DirectFiles>,
    offset: u64,
    map: Option<MmapMut>,
    len: usize,
    spare: Arc<Mutex<Vec<MmapMut>>>,
}

impl Blocks {
    fn write(self) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let Some(map) = &self.map else { return Ok(()) };
        let blocks = &map[..self.len];
        match self.files.direct.write_all_at(blocks, self.offset) {
            // A filesystem that opens files with `O_DIRECT` and then asks another alignment of
            // its writes: these bytes go through the page cache instead.
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                self.files.cached.write_all_at(blocks, self.offset)
            }
            written => written,
        }
    }
}

impl Drop for Blocks {
    fn drop(&mut self) {
        BUFFERED.fetch_sub(self.len, Ordering::Relaxed);
        let mut spare = lock(&self.spare);
        if let Some(map) = self.map.take().filter(|_| spare.len() < MOST_SPARE) {
            spare.push(map);
        }
    }
}

/// What the writer reports once the file is durable.
struct Written {
    size: u64,
    sha256: String,
}

impl TempWriter {
    fn create(path: &Path) -> io::Result<Self> {
        // Creating a file locks its folder in the kernel while the filesystem finds it an inode,
        // which can take a while (ext4 without a journal steps past every inode freed in the last
        // minute); the kernel's waiters spin for that lock. One at a time here, the others sleep.
        let creating = lock(&CREATING);
        let file = fs::OpenOptions::new().write(true).create_new(true).open(path);
        drop(creating);
        let file = file?;
        Ok(Self {
            out: file,
            hasher: Sha256::new(),
            size: 0,
            writeback: None,
            flushed_at: 0,
            direct: Direct::NotYet,
        })
    }

    /// The writer a staging already has, or a new file at `path` for its first batch.
    fn open(writer: Option<Self>, path: &Path) -> io::Result<Self> {
        writer.map_or_else(|| Self::create(path), Ok)
    }

    /// Hashes and writes a batch of chunks, asking for early writeback every `WRITEBACK_EVERY`.
    /// On a file written past the page cache, the batch's whole blocks come back for the caller
    /// to write (`Blocks::write`), so that the next batch is hashed while the device takes them.
    fn write(&mut self, path: &Path, batch: &[impl AsRef<[u8]>]) -> io::Result<Option<Blocks>> {
        let at = self.size;
        for chunk in batch {
            self.hasher.update(chunk);
            self.size += chunk.as_ref().len() as u64;
        }
        if let Direct::NotYet = self.direct {
            if at >= DIRECT_FROM {
                self.direct =
                    DirectWrites::open(path, &self.out, at).map_or(Direct::Refused, Direct::Writing);
            }
        }
        if let Direct::Writing(direct) = &mut self.direct {
            return direct.blocks(batch).map(Some);
        }
        write_all_chunks(&mut self.out, batch)?;
        if self.size - self.flushed_at >= WRITEBACK_EVERY {
            self.flushed_at = self.size;
            if self.writeback.is_none() {
                // Early writeback only spreads the flush over the upload; `finish` makes the file
                // durable without it. A thread that cannot be started (the process at its limit of
                // threads) costs the upload that and nothing more.
                self.writeback = Writeback::start(&self.out)
                    .inspect_err(|err| {
                        tracing::warn!(error = %err, "no writeback thread for an upload; its bytes are flushed when it ends")
                    })
                    .ok();
            }
            if let Some(writeback) = &self.writeback {
                writeback.request();
            }
        }
        Ok(None)
    }

    /// Flushes and fsyncs: the bytes are durable before SUCCESS, whatever happened above.
    fn finish(mut self) -> io::Result<Written> {
        if let Some(writeback) = self.writeback.take() {
            writeback.finish()?;
        }
        if let Direct::Writing(direct) = &self.direct {
            direct.finish()?;
        }
        self.out.sync_all()?;
        Ok(Written { size: self.size, sha256: hex::encode(self.hasher.finalize()) })
    }
}

/// Writes the chunks in order with as few `writev` calls as the system's limit on slices allows.
fn write_all_chunks(out: &mut fs::File, chunks: &[impl AsRef<[u8]>]) -> io::Result<()> {
    // Linux's IOV_MAX; a batch of a trickling client's one-byte chunks has far more.
    const MOST_SLICES: usize = 1024;
    for group in chunks.chunks(MOST_SLICES) {
        let mut slices: Vec<io::IoSlice<'_>> =
            group.iter().map(|chunk| io::IoSlice::new(chunk.as_ref())).collect();
        let mut unwritten = &mut slices[..];
        while !unwritten.is_empty() {
            match out.write_vectored(unwritten) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
                Ok(written) => io::IoSlice::advance_slices(&mut unwritten, written),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
    }
    Ok(())
}

/// Held while a temporary file is created (`TempWriter::create`).
static CREATING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Bytes received by every staging of the process and not yet written.
static BUFFERED: AtomicUsize = AtomicUsize::new(0);
/// Past this, each staging hands what it holds to the disk at once instead of filling its batch:
/// memory stays bounded however many uploads arrive at once.
const MOST_BUFFERED: usize = 64 * 1024 * 1024;

/// Chunks received and not yet written, counted in `BUFFERED` until they are dropped (written,
/// or abandoned with their upload).
#[derive(Default)]
struct Batch {
    chunks: Vec<Bytes>,
    bytes: usize,
}

impl Batch {
    fn push(&mut self, chunk: Bytes) {
        self.bytes += chunk.len();
        BUFFERED.fetch_add(chunk.len(), Ordering::Relaxed);
        self.chunks.push(chunk);
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        BUFFERED.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

/// A batch's trip to the blocking pool: the writer comes back, with the blocks it copied for the
/// device on a file written past the page cache.
type BatchTrip = tokio::task::JoinHandle<io::Result<(TempWriter, Option<Blocks>)>>;

/// A temporary file while its bytes arrive. The network is read on the async runtime; only a
/// filled batch goes to the blocking pool, and at most one at a time (with, past the page cache,
/// the blocks of the one before being written), so a slow or stalled client holds no thread while
/// it waits, and the disk works on one batch while the next arrives.
/// The file is created with its first batch, so a small body is created, written and made
/// durable in one trip to the blocking pool.
struct Staging {
    path: PathBuf,
    /// The blocking task that holds the writer while it hashes and writes a batch (or, on a file
    /// written past the page cache, copies its blocks for `writing`); `None` before the first.
    pending: Option<BatchTrip>,
    /// Blocks being written past the page cache while the next batch is hashed.
    writing: Option<tokio::task::JoinHandle<io::Result<()>>>,
    /// Chunks received and not yet handed to the disk.
    batch: Batch,
    /// Bytes handed to the writer so far.
    handed: u64,
    /// Set once the file is durable and handed over; until then, dropping removes it.
    kept: bool,
}

impl Staging {
    fn start(path: PathBuf) -> Self {
        Self { path, pending: None, writing: None, batch: Batch::default(), handed: 0, kept: false }
    }

    /// Waits for the writer to be free again and takes it; `None` before the first batch, whose
    /// trip to the blocking pool creates the file (`TempWriter::open`). Blocks the writer copied
    /// go to the disk once those before them are written, while the caller goes on.
    async fn writer(&mut self) -> io::Result<Option<TempWriter>> {
        let Some(pending) = self.pending.take() else { return Ok(None) };
        let (writer, blocks) = pending.await.map_err(io::Error::other)??;
        if let Some(blocks) = blocks {
            self.written().await?;
            self.writing = Some(tokio::task::spawn_blocking(move || blocks.write()));
        }
        Ok(Some(writer))
    }

    /// Waits for the blocks being written, if any.
    async fn written(&mut self) -> io::Result<()> {
        match self.writing.take() {
            Some(writing) => writing.await.map_err(io::Error::other)?,
            None => Ok(()),
        }
    }

    /// A full batch: half as large past `DIRECT_FROM`, where the file is written past the page
    /// cache: there a batch is copied for the device while the copy of the one before is written,
    /// so an upload holds four half batches where it held two batches (a 1 GiB upload's peak RSS
    /// in `memory.rs` stayed at 60 MiB; with whole batches it rose to 62).
    fn batch_size(&self) -> usize {
        match self.handed >= DIRECT_FROM {
            true => DIRECT_BATCH,
            false => WRITE_BUFFER,
        }
    }

    /// Adds a chunk; a full batch goes to the disk once the previous one is written.
    async fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        self.batch.push(chunk);
        // A full batch goes down; so does a smaller one while the process as a whole holds too
        // many bytes not yet written (a thousand uploads at once each filling a batch).
        if self.batch.bytes < self.batch_size() && BUFFERED.load(Ordering::Relaxed) < MOST_BUFFERED {
            return Ok(());
        }
        self.handed += self.batch.bytes as u64;
        let writer = self.writer().await?;
        let batch = std::mem::take(&mut self.batch);
        let path = self.path.clone();
        self.pending = Some(tokio::task::spawn_blocking(move || {
            let mut writer = TempWriter::open(writer, &path)?;
            let blocks = writer.write(&path, &batch.chunks)?;
            Ok((writer, blocks))
        }));
        Ok(())
    }

    /// Writes what is left and makes the file durable.
    async fn finish(&mut self) -> io::Result<Written> {
        let writer = self.writer().await?;
        self.written().await?;
        let batch = std::mem::take(&mut self.batch);
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || {
            let mut writer = TempWriter::open(writer, &path)?;
            let blocks = writer.write(&path, &batch.chunks)?;
            drop(batch);
            if let Some(blocks) = blocks {
                blocks.write()?;
            }
            writer.finish()
        })
        .await
        .map_err(io::Error::other)??;
        self.kept = true;
        Ok(written)
    }

    /// Removes the file once the blocking tasks that may hold it are done, before the caller hears
    /// of the failure.
    async fn abandon(&mut self) {
        if let Some(pending) = self.pending.take() {
            let _ = pending.await;
        }
        let _ = self.written().await;
        let _ = tokio::fs::remove_file(&self.path).await;
        self.kept = true;
    }
}

impl Drop for Staging {
    /// A staging whose future was dropped before it finished removes its file once the blocking
    /// task that may still hold it is done.
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        let path = std::mem::take(&mut self.path);
        let pending = self.pending.take();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let _ = fs::remove_file(&path);
            return;
        };
        runtime.spawn(async move {
            if let Some(pending) = pending {
                let _ = pending.await;
            }
            let _ = tokio::fs::remove_file(&path).await;
        });
    }
}

/// Hands `page` the keys under `objects` (paths at any depth: `ws_…/file_…`,
/// `thumbnails/ws_…/file_…/256`; folders are only where keys live), `KEY_PAGE` at a time, until
/// it answers `false`. Depth first with each folder's listing open, so that what is held is one
/// open listing a level, not the names of every folder still to visit (a thumbnail folder a file).
fn walk_keys(objects: &Path, mut page: impl FnMut(Vec<String>) -> bool) -> io::Result<()> {
    let mut keys = Vec::with_capacity(KEY_PAGE);
    let mut open = vec![(fs::read_dir(objects)?, String::new())];
    while let Some((listing, prefix)) = open.last_mut() {
        let Some(entry) = listing.next() else {
            open.pop();
            continue;
        };
        let entry = entry?;
        let key = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            open.push((fs::read_dir(entry.path())?, format!("{key}/")));
        } else if kind.is_file() && !prefix.is_empty() {
            keys.push(key);
            if keys.len() == KEY_PAGE && !page(std::mem::replace(&mut keys, Vec::with_capacity(KEY_PAGE))) {
                return Ok(());
            }
        }
    }
    if !keys.is_empty() {
        page(keys);
    }
    Ok(())
}

fn sync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Creates `dir` (and its missing parents up to `root`), making each new entry durable.
fn create_dir_durably(root: &Path, dir: &Path) -> io::Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let parent = dir.parent().expect("a folder under the root has a parent");
    if parent != root {
        create_dir_durably(root, parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
        Err(err) => return Err(err),
    }
    sync_dir(parent)
}

/// What a stored part is: its number from its name, its size and a tag that changes with it.
fn part_info(path: &Path) -> io::Result<Option<PartInfo>> {
    let Some(part_number) =
        path.file_name().and_then(|name| name.to_str()).and_then(|name| name.parse().ok())
    else {
        return Ok(None);
    };
    let meta = fs::metadata(path)?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default();
    Ok(Some(PartInfo { part_number, size: meta.len(), etag: format!("{modified:x}-{:x}", meta.len()) }))
}

/// Streams `parts` in order into a new temporary file while hashing, removing each part once it
/// is copied; memory stays at one buffer whatever the file size.
fn assemble(dir: &Path, parts: &[PartInfo], temp: &Path) -> io::Result<(u64, String, Bytes)> {
    // Written as an upload's file is: past its first 32 MiB, past the page cache.
    let mut writer = TempWriter::create(temp)?;
    let mut head = BytesMut::new();
    let mut buffer = vec![0u8; DIRECT_BATCH];
    for part in parts {
        let path = dir.join(part.part_number.to_string());
        let mut input = fs::File::open(&path)?;
        loop {
            let read = input.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            let chunk = &buffer[..read];
            if head.len() < HEAD_BYTES {
                let take = (HEAD_BYTES - head.len()).min(read);
                head.extend_from_slice(&chunk[..take]);
            }
            if let Some(blocks) = writer.write(temp, &[chunk])? {
                blocks.write()?;
            }
        }
        // Consumed: the disk holds the file about once, not twice, while it is assembled.
        drop(input);
        fs::remove_file(&path)?;
    }
    let written = writer.finish()?;
    Ok((written.size, written.sha256, head.freeze()))
}

#[async_trait]
impl BlobStore for LocalBlobStore {
    async fn ping(&self) -> Result<()> {
        let tmp = self.tmp.clone();
        tokio::task::spawn_blocking(move || {
            let probe = tmp.join(format!("ping-{}.probe", std::process::id()));
            fs::write(&probe, b"ok")?;
            fs::remove_file(&probe)
        })
        .await
        .map_err(Error::internal)?
        .map_err(|err| Error::Unavailable(Box::new(err)))
    }

    async fn stage(&self, mut body: ByteStream<'_>, limit: u64) -> Result<StagedBlob, StageError> {
        let temp_key = format!("{}.part", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let mut staging = Staging::start(self.tmp.join(&temp_key));
        let mut head = BytesMut::new();
        let mut received = 0u64;
        let written = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(StageError::Body)?;
                if chunk.is_empty() {
                    continue;
                }
                received += chunk.len() as u64;
                if received > limit {
                    return Err(StageError::TooLarge { limit });
                }
                if head.len() < HEAD_BYTES {
                    let take = (HEAD_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                }
                staging.push(chunk).await.map_err(StageError::Storage)?;
            }
            staging.finish().await.map_err(StageError::Storage)
        }
        .await;
        match written {
            Ok(written) => {
                Ok(StagedBlob { temp_key, size: written.size, sha256: written.sha256, head: head.freeze() })
            }
            Err(err) => {
                staging.abandon().await;
                Err(err)
            }
        }
    }

    async fn commit(&self, staged: &StagedBlob, key: &str) -> Result<()> {
        let from = self.temp_path(&staged.temp_key)?;
        let to = self.object_path(key)?;
        let objects = self.objects.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let parent = to.parent().expect("object paths have a parent");
            if !parent.exists() {
                fs::create_dir_all(parent)?;
                sync_dir(&objects)?;
            }
            fs::rename(&from, &to)?;
            // The rename is durable only once the directory entry is.
            sync_dir(parent)
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::from)
    }

    async fn discard(&self, temp_key: &str) {
        if let Ok(path) = self.temp_path(temp_key) {
            let _ = tokio::fs::remove_file(path).await;
        }
    }

    async fn open(&self, key: &str, range: Option<ByteRange>) -> Result<ByteStream<'static>> {
        let path = self.object_path(key)?;
        let (start, len) = range.map_or((0, u64::MAX), |range| (range.first, range.len()));
        // One trip to the blocking pool opens and positions the file and, when what is asked for
        // is small, reads it whole: each further `tokio::fs` call would be another thread handoff,
        // and handoffs are most of the cost of serving a small file.
        let opened = tokio::task::spawn_blocking(move || -> io::Result<Opened> {
            let mut file = fs::File::open(path)?;
            let size = file.metadata()?.len();
            if start > 0 {
                file.seek(SeekFrom::Start(start))?;
            }
            let wanted = size.saturating_sub(start).min(len);
            if wanted <= SMALL_READ && HELD_FOR_SENDING.load(Ordering::Relaxed) < MOST_HELD_FOR_SENDING {
                Ok(Opened::Whole(read_chunk(&mut file, wanted as usize)?))
            } else {
                Ok(Opened::Large(file, wanted))
            }
        })
        .await
        .map_err(Error::internal)??;
        Ok(match opened {
            Opened::Whole(bytes) => futures::stream::once(async move { Ok(bytes) }).boxed(),
            Opened::Large(file, wanted) => chunks_of(file, wanted),
        })
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.object_path(key)?;
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn list_folder(&self, folder: &str) -> Result<Vec<(String, u64)>> {
        let path = self.object_path(folder)?;
        tokio::task::spawn_blocking(move || -> io::Result<Vec<(String, u64)>> {
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(err) => return Err(err),
            };
            let mut objects = Vec::new();
            for entry in entries {
                let entry = entry?;
                let metadata = entry.metadata()?;
                if metadata.is_file() {
                    objects.push((entry.file_name().to_string_lossy().into_owned(), metadata.len()));
                }
            }
            Ok(objects)
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::from)
    }

    fn key_pages(&self) -> BoxStream<'static, Result<Vec<String>>> {
        let objects = self.objects.clone();
        let (pages, taken) = tokio::sync::mpsc::channel(1);
        tokio::task::spawn_blocking(move || {
            if let Err(err) = walk_keys(&objects, |page| pages.blocking_send(Ok(page)).is_ok()) {
                let _ = pages.blocking_send(Err(Error::from(err)));
            }
        });
        futures::stream::unfold(
            taken,
            |mut taken| async move { taken.recv().await.map(|page| (page, taken)) },
        )
        .boxed()
    }

    async fn remove_temporaries(&self) -> Result<u64> {
        let tmp = self.tmp.clone();
        tokio::task::spawn_blocking(move || -> io::Result<u64> {
            let mut removed = 0;
            for entry in fs::read_dir(&tmp)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    fs::remove_file(entry.path())?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::from)
    }

    async fn head(&self, key: &str) -> Result<Option<BlobInfo>> {
        match tokio::fs::metadata(self.object_path(key)?).await {
            Ok(meta) if meta.is_file() => Ok(Some(BlobInfo { size: meta.len(), sha256: None })),
            Ok(_) => Ok(None),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn promote(&self, from: &str, to: &str) -> Result<()> {
        let from = self.object_path(from)?;
        let to = self.object_path(to)?;
        let objects = self.objects.clone();
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            let parent = to.parent().expect("object paths have a parent");
            if !parent.exists() {
                fs::create_dir_all(parent)?;
                sync_dir(&objects)?;
            }
            fs::rename(&from, &to)?;
            sync_dir(parent)
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::from)
    }

    fn receives_through_cabinet(&self) -> bool {
        true
    }

    async fn begin_parts(&self, upload: &Upload) -> Result<Option<String>> {
        // The folder is made with the first part.
        self.parts_path(upload)?;
        Ok(None)
    }

    async fn commit_part(&self, staged: &StagedBlob, upload: &Upload, part_number: u32) -> Result<PartInfo> {
        let from = self.temp_path(&staged.temp_key)?;
        let dir = self.parts_path(upload)?;
        let root = self.parts.clone();
        tokio::task::spawn_blocking(move || -> io::Result<PartInfo> {
            create_dir_durably(&root, &dir)?;
            let to = dir.join(part_number.to_string());
            // Atomic replace: a part is whole, the old one or the new one.
            fs::rename(&from, &to)?;
            sync_dir(&dir)?;
            part_info(&to)?.ok_or_else(|| io::Error::other("a part without a number"))
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::from)
    }

    async fn list_parts(&self, upload: &Upload) -> Result<Vec<PartInfo>> {
        let dir = self.parts_path(upload)?;
        tokio::task::spawn_blocking(move || -> io::Result<Vec<PartInfo>> {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
                Err(err) => return Err(err),
            };
            let mut parts = Vec::new();
            for entry in entries {
                match part_info(&entry?.path()) {
                    Ok(Some(part)) => parts.push(part),
                    Ok(None) => {}
                    // Replaced or removed while listing.
                    Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                    Err(err) => return Err(err),
                }
            }
            parts.sort_by_key(|part| part.part_number);
            Ok(parts)
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::from)
    }

    async fn assemble_parts(&self, upload: &Upload, parts: &[PartInfo]) -> Result<Assembled> {
        let dir = self.parts_path(upload)?;
        let temp_key = format!("{}.part", ulid::Ulid::new().to_string().to_ascii_lowercase());
        let temp = self.tmp.join(&temp_key);
        let parts = parts.to_vec();
        let assembled = tokio::task::spawn_blocking({
            let temp = temp.clone();
            move || assemble(&dir, &parts, &temp)
        })
        .await
        .map_err(Error::internal)?;
        match assembled {
            Ok((size, sha256, head)) => Ok(Assembled::Staged(StagedBlob { temp_key, size, sha256, head })),
            Err(err) => {
                let _ = tokio::fs::remove_file(&temp).await;
                Err(err.into())
            }
        }
    }

    async fn remove_parts(&self, upload: &Upload) -> Result<()> {
        let dir = self.parts_path(upload)?;
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn part_sets(&self) -> Result<Vec<(String, String)>> {
        let parts = self.parts.clone();
        tokio::task::spawn_blocking(move || -> io::Result<Vec<(String, String)>> {
            let mut sets = Vec::new();
            for workspace in fs::read_dir(&parts)? {
                let workspace = workspace?;
                if !workspace.file_type()?.is_dir() {
                    continue;
                }
                let ws = workspace.file_name().to_string_lossy().into_owned();
                for upload in fs::read_dir(workspace.path())? {
                    let upload = upload?;
                    if upload.file_type()?.is_dir() {
                        sets.push((ws.clone(), upload.file_name().to_string_lossy().into_owned()));
                    }
                }
            }
            Ok(sets)
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::from)
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        /// Makes `Writeback::start` fail on this thread, as `spawn` does at the process's limit
        /// of threads (`EAGAIN`).
        pub(super) static REFUSE_WRITEBACK_THREADS: Cell<bool> = const { Cell::new(false) };
    }

    /// A file that reaches `WRITEBACK_EVERY` in the page cache asks a thread to flush it early;
    /// when no thread can be started, the file is still written whole and made durable.
    #[test]
    fn a_file_whose_writeback_thread_cannot_start_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-writeback.part");
        let mut writer = TempWriter::create(&path).unwrap();
        let bytes: Vec<u8> = (0..WRITEBACK_EVERY as usize + 4_099).map(|i| (i % 241) as u8).collect();
        let batch: Vec<Bytes> = bytes.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
        REFUSE_WRITEBACK_THREADS.set(true);
        let blocks = writer.write(&path, &batch);
        REFUSE_WRITEBACK_THREADS.set(false);
        assert!(
            blocks.unwrap().is_none(),
            "a batch that starts before DIRECT_FROM goes through the page cache"
        );
        assert!(writer.writeback.is_none());
        let written = writer.finish().unwrap();
        assert_eq!(written.size, bytes.len() as u64);
        assert_eq!(written.sha256, hex::encode(Sha256::digest(&bytes)));
        assert_eq!(fs::read(&path).unwrap(), bytes);
    }

    /// The keys come out in pages of at most `KEY_PAGE`, every one of them once, at every depth;
    /// a file straight in the objects folder is no key; and the walk stops when told to.
    #[test]
    fn keys_are_walked_in_pages_and_the_walk_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let objects = dir.path();
        let mut expected = std::collections::BTreeSet::new();
        fs::create_dir_all(objects.join("ws_a")).unwrap();
        for i in 0..1_100 {
            fs::write(objects.join(format!("ws_a/file_{i}")), b"x").unwrap();
            expected.insert(format!("ws_a/file_{i}"));
        }
        for i in 0..150 {
            let folder = objects.join(format!("thumbnails/ws_a/file_{i}"));
            fs::create_dir_all(&folder).unwrap();
            fs::write(folder.join("256"), b"t").unwrap();
            expected.insert(format!("thumbnails/ws_a/file_{i}/256"));
        }
        fs::write(objects.join("stray"), b"not a key").unwrap();
        let mut pages = Vec::new();
        walk_keys(objects, |page| {
            pages.push(page);
            true
        })
        .unwrap();
        assert_eq!(pages.len(), expected.len().div_ceil(KEY_PAGE));
        assert!(pages[..pages.len() - 1].iter().all(|page| page.len() == KEY_PAGE));
        let listed: Vec<String> = pages.into_iter().flatten().collect();
        assert_eq!(listed.len(), expected.len(), "each key once");
        assert_eq!(listed.into_iter().collect::<std::collections::BTreeSet<_>>(), expected);
        let mut handed = 0;
        walk_keys(objects, |_| {
            handed += 1;
            false
        })
        .unwrap();
        assert_eq!(handed, 1);
    }

    #[test]
    fn downloads_read_large_chunks_alone_and_small_ones_once_they_hold_their_allowance() {
        const MIB: usize = 1024 * 1024;
        assert_eq!(read_size_while_held(0), READ_CHUNK);
        assert_eq!(read_size_while_held(60 * MIB), READ_CHUNK);
        assert_eq!(read_size_while_held(62 * MIB), 128 * 1024);
        assert_eq!(read_size_while_held(63 * MIB), 64 * 1024);
        assert_eq!(read_size_while_held(64 * MIB - 1), SMALL_READ_CHUNK);
        assert_eq!(read_size_while_held(500 * MIB), SMALL_READ_CHUNK);
        // Every size is a whole number of the smallest.
        for held in (0..70 * MIB).step_by(777_777) {
            assert_eq!(read_size_while_held(held) % SMALL_READ_CHUNK, 0, "{held}");
        }
    }

    #[test]
    fn a_batch_of_more_chunks_than_one_writev_takes_is_written_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunks");
        let mut out = fs::File::create(&path).unwrap();
        // A trickling client's batch: thousands of one-byte chunks, then a large one.
        let mut chunks: Vec<Bytes> = (0..5_000u32).map(|i| Bytes::from(vec![(i % 251) as u8])).collect();
        chunks.push(Bytes::from(vec![7u8; 3 * 1024 * 1024]));
        write_all_chunks(&mut out, &chunks).unwrap();
        let expected: Vec<u8> = chunks.iter().flat_map(|chunk| chunk.iter().copied()).collect();
        assert_eq!(fs::read(&path).unwrap(), expected);
    }

    /// Batches of odd sizes across `DIRECT_FROM`, some smaller than a block, each written as the
    /// staging writes it: the file holds every byte in order, whichever way each went down.
    #[test]
    fn a_file_written_partly_past_the_page_cache_holds_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("large.part");
        let mut writer = TempWriter::create(&path).unwrap();
        let mut expected = Vec::new();
        let mut sizes = [1_048_573usize, 100, 4_095, 1, 4_097, 999_999, 65_536].into_iter().cycle();
        let mut next_byte = 0u32;
        while (expected.len() as u64) < DIRECT_FROM + 5 * 1024 * 1024 + 17 {
            let size = sizes.next().unwrap();
            // Each batch in chunks of up to 64 KiB, as a connection hands them over.
            let bytes: Vec<u8> = (0..size)
                .map(|_| {
                    next_byte = next_byte.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    (next_byte >> 16) as u8
                })
                .collect();
            expected.extend_from_slice(&bytes);
            let batch: Vec<Bytes> = bytes.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
            if let Some(blocks) = writer.write(&path, &batch).unwrap() {
                blocks.write().unwrap();
            }
        }
        assert!(matches!(writer.direct, Direct::Writing(_)), "the temporary folder takes O_DIRECT");
        let written = writer.finish().unwrap();
        assert_eq!(written.size, expected.len() as u64);
        assert_eq!(written.sha256, hex::encode(Sha256::digest(&expected)));
        assert_eq!(fs::read(&path).unwrap(), expected);
    }

    /// Blocks that the device refuses as misaligned (here: at an offset off a block boundary)
    /// are written through the page cache instead, not lost.
    #[test]
    fn blocks_refused_as_misaligned_are_written_through_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("misaligned.part");
        let out = fs::File::create(&path).unwrap();
        let mut direct = DirectWrites::open(&path, &out, 0).expect("the temporary folder takes O_DIRECT");
        let bytes: Vec<u8> = (0..3 * DIRECT_BLOCK as u32).map(|i| (i % 253) as u8).collect();
        let mut blocks = direct.blocks(&[&bytes[..]]).unwrap();
        assert_eq!(blocks.len, bytes.len());
        blocks.offset = 1;
        blocks.write().unwrap();
        let mut expected = vec![0u8];
        expected.extend_from_slice(&bytes);
        assert_eq!(fs::read(&path).unwrap(), expected);
    }
}

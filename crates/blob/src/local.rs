//! A local folder as blob store: `objects/<key>` for committed objects, `tmp/<id>.part` while
//! bytes arrive. Writing and hashing run on a blocking thread fed through a small bounded
//! channel, so memory stays flat whatever the file size and the network never waits on the disk
//! for more than a few chunks.

use std::fs;
use std::io::{self, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use cabinet_core::ports::{BlobInfo, ByteRange, ByteStream, StageError, StagedBlob};
use cabinet_core::{BlobStore, Error, Result};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::mpsc;
use tokio_util::io::ReaderStream;

/// Chunks in flight between the network and the disk.
const CHANNEL_CHUNKS: usize = 16;
/// The write buffer; large writes keep syscalls few.
const WRITE_BUFFER: usize = 1024 * 1024;
/// Bytes written between early writeback requests. A syncer thread flushes what has been written
/// so far while more arrives, so the fsync before SUCCESS has little left to do: a large upload
/// pays for the disk while the network is still sending, not after it.
const WRITEBACK_EVERY: u64 = 32 * 1024 * 1024;
/// How much of the start of a file is kept for content sniffing.
const HEAD_BYTES: usize = 8 * 1024;
/// Read size when serving.
const READ_CHUNK: usize = 256 * 1024;

/// Blobs in a local folder.
#[derive(Debug, Clone)]
pub struct LocalBlobStore {
    objects: PathBuf,
    tmp: PathBuf,
}

impl LocalBlobStore {
    /// Opens (creating if needed) a blob store under `root`.
    pub fn open(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref();
        let store = Self { objects: root.join("objects"), tmp: root.join("tmp") };
        fs::create_dir_all(&store.objects)?;
        fs::create_dir_all(&store.tmp)?;
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

enum Message {
    Chunk(Bytes),
    Finish,
}

/// What the writer thread reports.
struct Written {
    size: u64,
    sha256: String,
}

/// Flushes a file's written pages to disk in the background while the writer carries on.
/// Started on a file's first `WRITEBACK_EVERY` bytes, so small files never spawn one.
struct Writeback {
    requests: std::sync::mpsc::SyncSender<()>,
    thread: std::thread::JoinHandle<io::Result<()>>,
}

impl Writeback {
    fn start(file: &fs::File) -> io::Result<Self> {
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

/// Hashes and writes chunks until told to finish, then fsyncs. If the channel closes without
/// `Finish` (the request failed or was dropped), the temporary file is removed.
fn write_temporary(path: &Path, mut chunks: mpsc::Receiver<Message>) -> io::Result<Option<Written>> {
    let file = fs::OpenOptions::new().write(true).create_new(true).open(path)?;
    let mut out = io::BufWriter::with_capacity(WRITE_BUFFER, file);
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut writeback: Option<Writeback> = None;
    let mut flushed_at = 0u64;
    let result = (|| {
        while let Some(message) = chunks.blocking_recv() {
            match message {
                Message::Chunk(chunk) => {
                    hasher.update(&chunk);
                    out.write_all(&chunk)?;
                    size += chunk.len() as u64;
                    if size - flushed_at >= WRITEBACK_EVERY {
                        out.flush()?;
                        flushed_at = size;
                        if writeback.is_none() {
                            writeback = Some(Writeback::start(out.get_ref())?);
                        }
                        if let Some(writeback) = &writeback {
                            writeback.request();
                        }
                    }
                }
                Message::Finish => {
                    let file = out.into_inner().map_err(|err| err.into_error())?;
                    if let Some(writeback) = writeback.take() {
                        writeback.finish()?;
                    }
                    // The fsync that makes the bytes durable before SUCCESS, whatever happened above.
                    file.sync_all()?;
                    return Ok(Some(Written { size, sha256: hex::encode(hasher.finalize()) }));
                }
            }
        }
        Ok(None)
    })();
    if let Some(writeback) = writeback {
        let _ = writeback.finish();
    }
    if !matches!(result, Ok(Some(_))) {
        let _ = fs::remove_file(path);
    }
    result
}

fn sync_dir(path: &Path) -> io::Result<()> {
    fs::File::open(path)?.sync_all()
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
        let path = self.tmp.join(&temp_key);
        let (sender, receiver) = mpsc::channel(CHANNEL_CHUNKS);
        let writer = tokio::task::spawn_blocking({
            let path = path.clone();
            move || write_temporary(&path, receiver)
        });
        let mut head = BytesMut::new();
        let mut received = 0u64;
        let outcome: Result<(), StageError> = async {
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
                if sender.send(Message::Chunk(chunk)).await.is_err() {
                    // The writer stopped: its error is reported below.
                    break;
                }
            }
            Ok(())
        }
        .await;
        let finishing = outcome.is_ok();
        if finishing {
            let _ = sender.send(Message::Finish).await;
        }
        drop(sender);
        let written = writer.await.map_err(|err| StageError::Storage(io::Error::other(err)))?;
        outcome?;
        match written {
            Ok(Some(written)) => {
                Ok(StagedBlob { temp_key, size: written.size, sha256: written.sha256, head: head.freeze() })
            }
            Ok(None) => Err(StageError::Storage(io::Error::other("the writer stopped early"))),
            Err(err) => Err(StageError::Storage(err)),
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
        let mut file = tokio::fs::File::open(self.object_path(key)?).await?;
        let (start, len) = range.map_or((0, u64::MAX), |range| (range.first, range.len()));
        if start > 0 {
            file.seek(SeekFrom::Start(start)).await?;
        }
        Ok(ReaderStream::with_capacity(file.take(len), READ_CHUNK).boxed())
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.object_path(key)?;
        match tokio::fs::remove_file(path).await {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn list_keys(&self) -> Result<Vec<String>> {
        let objects = self.objects.clone();
        tokio::task::spawn_blocking(move || -> io::Result<Vec<String>> {
            // Keys are paths under the objects folder, at any depth (`ws_…/file_…`,
            // `thumbnails/ws_…/file_…/256`); folders are only where keys live.
            let mut keys = Vec::new();
            let mut folders = vec![(objects, String::new())];
            while let Some((folder, prefix)) = folders.pop() {
                for entry in fs::read_dir(&folder)? {
                    let entry = entry?;
                    let key = format!("{prefix}{}", entry.file_name().to_string_lossy());
                    let kind = entry.file_type()?;
                    if kind.is_dir() {
                        folders.push((entry.path(), format!("{key}/")));
                    } else if kind.is_file() && !prefix.is_empty() {
                        keys.push(key);
                    }
                }
            }
            Ok(keys)
        })
        .await
        .map_err(Error::internal)?
        .map_err(Error::from)
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
}

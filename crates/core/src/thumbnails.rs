//! Thumbnails of images: JPEG, PNG, WebP and GIF (its first frame), scaled so the longest edge is
//! one of [`SIZES`] pixels and never enlarged. Each size is made once — the default size in the
//! background when the file is created, others on first request — and cached in the blob store at
//! `thumbnails/{file's blob key}/{size}`, counted in no quota; an image that cannot be made into
//! a thumbnail has its refusal's code cached there instead, so it is read and refused only once.
//! Purging the file removes them; the orphan sweep removes those whose file is gone.
//!
//! Sources larger than [`MAX_SOURCE_BYTES`] are refused before they are read; the codec
//! (`ports::ImageCodec`, `cabinet-images`) bounds what decoding one takes. Renders run on threads
//! of their own at the lowest CPU priority, [`CONCURRENT_RENDERS`] at a time, and each workspace
//! waits for its turn behind its own renders only: one tenant's queue of large images never
//! stands in front of another tenant's thumbnail, and a render, which can take a core for
//! seconds, gives way to every request the server is answering.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::ids::{FileId, WorkspaceId};
use crate::model::FileRecord;
use crate::ports::StageError;
use crate::rules::Operation;
use crate::signing::{windowed_expiry, SignedOperation, SignedParams};
use crate::{Cabinet, Caller, Code};

/// The longest edges a thumbnail may have; any other requested size is refused (400).
pub const SIZES: [u32; 3] = [64, 256, 1024];
/// The size made in the background after upload, and the one `thumbnail_url` names.
pub const DEFAULT_SIZE: u32 = 256;
/// Where thumbnails live in the blob store: `thumbnails/{blob key}/{size}`.
pub const THUMBNAIL_PREFIX: &str = "thumbnails/";
/// Where Cabinet's storage endpoint serves a thumbnail: `{prefix}/{ws}/{file}/{size}`.
pub const STORAGE_THUMBNAIL_PREFIX: &str = "/storage/v1/thumbnails";
/// The largest source read into memory to be decoded.
pub const MAX_SOURCE_BYTES: u64 = 64 * 1024 * 1024;
/// The largest thumbnail kept or served (1024 px of RGBA PNG is far below it).
const MAX_THUMBNAIL_BYTES: u64 = 8 * 1024 * 1024;
/// How many images are decoded at once; decoding is CPU-heavy and the API must stay responsive.
pub const CONCURRENT_RENDERS: usize = 1;

/// The types thumbnails are made of.
pub fn is_supported(mime_type: &str) -> bool {
    matches!(mime_type, "image/jpeg" | "image/png" | "image/webp" | "image/gif")
}

/// The blob key of a file's thumbnail of one size.
pub fn thumbnail_key(blob_key: &str, size: u32) -> String {
    format!("{THUMBNAIL_PREFIX}{blob_key}/{size}")
}

/// The blob key of the file a thumbnail key belongs to, when it is one.
pub fn owner_blob_key(key: &str) -> Option<&str> {
    let (owner, size) = key.strip_prefix(THUMBNAIL_PREFIX)?.rsplit_once('/')?;
    (!owner.is_empty() && size.parse::<u32>().is_ok()).then_some(owner)
}

/// Checks a requested size: one of [`SIZES`], or [`DEFAULT_SIZE`] when absent.
pub fn parse_size(requested: Option<u32>) -> Result<u32> {
    match requested {
        None => Ok(DEFAULT_SIZE),
        Some(size) if SIZES.contains(&size) => Ok(size),
        Some(_) => Err(Error::bad_request(
            Code::InvalidSize,
            format!("size must be one of {SIZES:?} (pixels of the longest edge)"),
        )),
    }
}

/// A made thumbnail: its bytes and their type.
#[derive(Debug, Clone)]
pub struct Thumbnail {
    pub bytes: Bytes,
    /// `image/jpeg` (opaque images) or `image/png` (with transparency).
    pub content_type: &'static str,
    /// A strong validator: the same source and size give the same thumbnail.
    pub etag: String,
}

/// The render pool's limits, shared by every clone of the service.
#[derive(Debug, Clone)]
pub(crate) struct Renderer {
    permits: Arc<Semaphore>,
    /// One place in the pool's queue per workspace: its other renders wait on this first, so the
    /// pool's queue holds at most one render of each workspace and a tenant with a hundred images
    /// to decode delays another tenant's thumbnail by one render, not a hundred.
    places: Arc<Mutex<HashMap<WorkspaceId, Arc<Semaphore>>>>,
}

/// Workspaces whose places are kept before unused ones are forgotten.
const PLACES_PRUNED_AT: usize = 1024;

/// A render's turn: the pool's permit and its workspace's place, both given back when dropped.
pub(crate) struct RenderTurn {
    _pool: OwnedSemaphorePermit,
    _place: OwnedSemaphorePermit,
}

impl Default for Renderer {
    fn default() -> Self {
        Self { permits: Arc::new(Semaphore::new(CONCURRENT_RENDERS)), places: Default::default() }
    }
}

impl Renderer {
    /// Waits for `workspace`'s place in the queue (behind its own renders), then for the pool.
    pub(crate) async fn turn(&self, workspace: &WorkspaceId) -> Result<RenderTurn> {
        let place = {
            let mut places = self.places.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            if places.len() >= PLACES_PRUNED_AT {
                // Held only by the map: nobody of that workspace is waiting or rendering.
                places.retain(|_, place| Arc::strong_count(place) > 1);
            }
            places.entry(workspace.clone()).or_insert_with(|| Arc::new(Semaphore::new(1))).clone()
        };
        let place = place.acquire_owned().await.map_err(Error::internal)?;
        let pool = self.permits.clone().acquire_owned().await.map_err(Error::internal)?;
        Ok(RenderTurn { _pool: pool, _place: place })
    }
}

/// A job for the render threads.
type RenderJob = Box<dyn FnOnce() + Send>;

/// Runs `work` on a render thread: one of [`CONCURRENT_RENDERS`] threads, started on first use,
/// each at the lowest CPU priority (`SCHED_IDLE` on Linux) on one core (the same for all), so
/// decoding an image only takes the CPU that requests leave. A thread's priority cannot be raised
/// again without privileges, so the render threads are never the runtime's or the blocking pool's.
async fn in_the_background<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T> {
    static RENDER_THREADS: std::sync::OnceLock<std::sync::mpsc::Sender<RenderJob>> =
        std::sync::OnceLock::new();
    let queue = RENDER_THREADS.get_or_init(|| {
        let (send, receive) = std::sync::mpsc::channel::<RenderJob>();
        let receive = Arc::new(Mutex::new(receive));
        for n in 0..CONCURRENT_RENDERS {
            let receive = receive.clone();
            let spawned = std::thread::Builder::new().name(format!("cabinet-render-{n}")).spawn(move || {
                lower_this_threads_priority();
                loop {
                    let job = receive.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(err) = spawned {
                tracing::error!(error = %err, "could not start a render thread");
            }
        }
        send
    });
    let (done, result) = tokio::sync::oneshot::channel();
    let job: RenderJob = Box::new(move || {
        let _ = done.send(work());
    });
    queue.send(job).map_err(|_| Error::internal("the render threads are gone"))?;
    result.await.map_err(|_| Error::internal("a render thread stopped before it answered"))
}

/// The lowest scheduling priority for the calling thread alone, on one core (Linux: the
/// `SCHED_IDLE` policy, nice 19 should that policy ever be left, and the last core it may run on);
/// elsewhere nothing. Nice 19 alone is not enough: a thread woken on the core a nice-19 render
/// holds waits for the render's slice to end, and the scheduler does not count that core as idle
/// when it places the woken thread. A `SCHED_IDLE` thread gives its core up when another thread
/// wakes on it, and its core counts as idle. The one core holds what a render starts with it (the
/// JPEG decoder's thread per colour component: about a thousand switches between them a photo) to
/// the core the render thread has: with the decoder's threads on both of two cores, another
/// tenant's worst p99 under image renders was 1.87× its quiet p99 and 2.42× under photo renders
/// (medians of three runs), on one core 1.56× and 2.04×, and the renders ran faster (8% more photos
/// in the same time).
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            set_thread_priority_and_policy, thread_native_id, thread_schedule_policy,
        };
        use thread_priority::{NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        if let Err(err) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
            // The crate sets nice 0 after the policy, which a process started niced may not do.
            if thread_schedule_policy().ok() != Some(idle) {
                tracing::warn!(error = ?err, "could not put the render thread under SCHED_IDLE");
            }
        }
        // After the policy: setting it also sets the thread's nice value, to 0.
        if let Err(err) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 19) {
            tracing::warn!(error = %err, "could not lower the render thread's priority");
        }
        if let Err(err) = keep_this_thread_to_one_core() {
            tracing::warn!(error = %err, "could not keep the render thread to one core");
        }
    }
}

/// Narrows the calling thread (and the threads it starts) to the last of the cores it may run on.
#[cfg(target_os = "linux")]
fn keep_this_thread_to_one_core() -> rustix::io::Result<()> {
    use rustix::thread::{sched_getaffinity, sched_setaffinity, CpuSet};
    let allowed = sched_getaffinity(None)?;
    if allowed.count() <= 1 {
        return Ok(());
    }
    let Some(last) = (0..CpuSet::MAX_CPU).rev().find(|&cpu| allowed.is_set(cpu)) else {
        return Ok(());
    };
    let mut one = CpuSet::new();
    one.set(last);
    sched_setaffinity(None, &one)
}

/// The refusal of an image that is not JPEG, PNG, WebP or GIF.
pub fn unsupported() -> Error {
    Error::Unprocessable {
        code: Code::ThumbnailUnsupported,
        message: "thumbnails are made of JPEG, PNG, WebP and GIF images only".to_owned(),
    }
}

/// The refusal of an image over a limit, saying which.
pub fn too_large(message: String) -> Error {
    Error::Unprocessable { code: Code::ImageTooLarge, message }
}

/// The refusal of bytes that are not a complete image.
pub fn undecodable(err: impl std::fmt::Display) -> Error {
    Error::Unprocessable {
        code: Code::ImageUndecodable,
        message: format!("the image could not be read: {err}"),
    }
}

/// The type of a thumbnail from its first bytes.
pub fn content_type_of(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    }
}

impl Cabinet {
    /// A thumbnail of a file the caller may read: made now if it was not yet.
    pub async fn thumbnail(
        &self,
        caller: &Caller,
        id: &FileId,
        size: Option<u32>,
    ) -> Result<(FileRecord, Thumbnail)> {
        let size = parse_size(size)?;
        let file = self.live_file(&caller.workspace_id, id).await?;
        self.authorize_file(caller, &file, Operation::Read).await?;
        let thumbnail = self.thumbnail_of(&file, size).await?;
        Ok((file, thumbnail))
    }

    /// A signed URL of a file's default thumbnail that needs no key (for `<img src>`), or `None`
    /// when no thumbnail is made of its type or it is in the trash.
    pub fn thumbnail_url(&self, file: &FileRecord) -> Option<String> {
        if !is_supported(&file.mime_type) || file.trashed_at.is_some() {
            return None;
        }
        // Lives at least as long as a download URL, at most a window longer.
        let expires = windowed_expiry(
            self.clock.now(),
            self.settings.download_url_ttl.num_seconds(),
            self.settings.url_window.num_seconds(),
        );
        let params = SignedParams { expires, max_bytes: 0, attachment: false };
        let (ws, size) = (&file.workspace_id, DEFAULT_SIZE);
        let object = format!("{}/{size}", file.id);
        let query = self.signer.sign(SignedOperation::Thumbnail, ws.as_str(), &object, &params);
        Some(format!("{}{STORAGE_THUMBNAIL_PREFIX}/{ws}/{}/{size}?{query}", self.url_base(), file.id))
    }

    /// Checks a signed thumbnail URL and returns the thumbnail it names.
    pub async fn thumbnail_at_signed_url(
        &self,
        ws: &str,
        file: &str,
        size: &str,
        query: Option<&str>,
    ) -> Result<Thumbnail> {
        self.learn_keys_named_by(query).await;
        let object = format!("{file}/{size}");
        self.signer.verify(SignedOperation::Thumbnail, ws, &object, query, self.clock.now())?;
        let size = parse_size(Some(size.parse().unwrap_or(0)))?;
        let ws = WorkspaceId::parse(ws)?;
        let file = self.live_file(&ws, &FileId::parse(file)?).await?;
        self.thumbnail_of(&file, size).await
    }

    /// Schedules the default thumbnail of a new file, when it is an image.
    pub(crate) fn file_created(&self, file: &FileRecord) {
        if !is_supported(&file.mime_type) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (cabinet, file) = (self.clone(), file.clone());
        runtime.spawn(async move {
            match cabinet.thumbnail_of(&file, DEFAULT_SIZE).await {
                Ok(_) => {}
                Err(err) if err.kind() == crate::ErrorKind::Unprocessable => {
                    tracing::info!(file = %file.id, code = err.code().as_str(), "no thumbnail for this image")
                }
                Err(err) => tracing::warn!(file = %file.id, error = %err, "making a thumbnail failed"),
            }
        });
    }

    /// Removes every thumbnail of a purged file.
    pub(crate) async fn delete_thumbnails(&self, file: &FileRecord) {
        if is_supported(&file.mime_type) {
            for size in SIZES {
                self.delete_blob_quietly(&thumbnail_key(&file.blob_key, size)).await;
            }
        }
    }

    /// The cached thumbnail, or one made now (and cached).
    async fn thumbnail_of(&self, file: &FileRecord, size: u32) -> Result<Thumbnail> {
        if !is_supported(&file.mime_type) {
            return Err(unsupported());
        }
        let key = thumbnail_key(&file.blob_key, size);
        let etag = format!("\"{}-{size}\"", file.sha256);
        if let Some(bytes) = self.cached_thumbnail(&key).await? {
            return Ok(Thumbnail { content_type: content_type_of(&bytes), bytes, etag });
        }
        let _turn = self.renderer.turn(&file.workspace_id).await?;
        // Made by someone else while this one waited its turn.
        if let Some(bytes) = self.cached_thumbnail(&key).await? {
            return Ok(Thumbnail { content_type: content_type_of(&bytes), bytes, etag });
        }
        if file.size > MAX_SOURCE_BYTES {
            return Err(too_large(format!(
                "the image is {} bytes; thumbnails are made of images up to {MAX_SOURCE_BYTES} bytes",
                file.size
            )));
        }
        let source = self.read_bounded(&file.blob_key, MAX_SOURCE_BYTES).await?;
        let started = std::time::Instant::now();
        let rendered = {
            let images = self.images.clone();
            in_the_background(move || images.thumbnail(&source, size))
        }
        .await?;
        let outcome = match &rendered {
            Ok(_) => "made",
            Err(refused) if refused.kind() == crate::ErrorKind::Unprocessable => "refused",
            Err(_) => "failed",
        };
        crate::telemetry::thumbnail_rendered(outcome, started.elapsed());
        let (bytes, content_type) = match rendered {
            Ok(made) => made,
            Err(refused) if refused.kind() == crate::ErrorKind::Unprocessable => {
                // Remembered in the thumbnail's place, so a hostile image is read and refused once,
                // not on every request.
                self.keep_thumbnail(file, &key, Bytes::from_static(refused.code().as_str().as_bytes()))
                    .await?;
                return Err(refused);
            }
            Err(err) => return Err(err),
        };
        self.keep_thumbnail(file, &key, bytes.clone()).await?;
        tracing::info!(workspace = %file.workspace_id, file = %file.id, size, "thumbnail made");
        Ok(Thumbnail { bytes, content_type, etag })
    }

    /// Stores a thumbnail (or a remembered refusal) under its key.
    async fn keep_thumbnail(&self, file: &FileRecord, key: &str, bytes: Bytes) -> Result<()> {
        let body = futures::stream::once(std::future::ready(Ok::<_, std::io::Error>(bytes))).boxed();
        let staged = self.blobs.stage(body, MAX_THUMBNAIL_BYTES).await.map_err(|err| match err {
            StageError::Storage(cause) | StageError::Body(cause) => Error::internal(cause),
            StageError::Unavailable(cause) => Error::Unavailable(Box::new(cause)),
            StageError::TooLarge { .. } => Error::internal("the thumbnail came out too large"),
        })?;
        if let Err(err) = self.blobs.commit(&staged, key).await {
            self.blobs.discard(&staged.temp_key).await;
            return Err(err);
        }
        // The file may have been purged meanwhile: then the thumbnail must not outlive it.
        if self.store.get_file(&file.workspace_id, &file.id).await.is_err() {
            self.delete_blob_quietly(key).await;
        }
        Ok(())
    }

    /// The cached thumbnail; `Err` when what is cached is the refusal to make one.
    async fn cached_thumbnail(&self, key: &str) -> Result<Option<Bytes>> {
        match self.blobs.head(key).await? {
            Some(info) if info.size <= MAX_THUMBNAIL_BYTES => {
                let bytes = self.read_bounded(key, MAX_THUMBNAIL_BYTES).await?;
                match &bytes[..] {
                    b"image_too_large" => {
                        Err(too_large("the image is too large to make a thumbnail of".to_owned()))
                    }
                    b"image_undecodable" => Err(undecodable("it is not a complete image")),
                    b"thumbnail_unsupported" => Err(unsupported()),
                    _ => Ok(Some(bytes)),
                }
            }
            _ => Ok(None),
        }
    }

    /// Reads a whole object known to be small, refusing more than `limit` bytes.
    async fn read_bounded(&self, key: &str, limit: u64) -> Result<Bytes> {
        let mut stream = self.blobs.open(key, None).await?;
        let mut bytes = BytesMut::new();
        while let Some(chunk) = stream.next().await {
            bytes.extend_from_slice(&chunk?);
            if bytes.len() as u64 > limit {
                return Err(too_large(format!("more than {limit} bytes")));
            }
        }
        Ok(bytes.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    #[cfg(target_os = "linux")]
    async fn renders_run_at_the_lowest_priority_on_one_core_and_the_runtime_keeps_its_own() {
        use thread_priority::unix::thread_schedule_policy;
        use thread_priority::{NormalThreadSchedulePolicy, ThreadSchedulePolicy};
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        let priority_here = || {
            let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
            (thread_schedule_policy().unwrap(), nice)
        };
        let rendering = in_the_background(priority_here).await.unwrap();
        assert_eq!(rendering, (idle, 19));
        let (policy, nice) = priority_here();
        assert!(policy != idle && nice != 19, "the caller's thread was lowered too");
        // The same thread serves the next render: nothing raised it back.
        assert_eq!(in_the_background(priority_here).await.unwrap(), (idle, 19));

        let cores = || rustix::thread::sched_getaffinity(None).unwrap().count();
        let (here, rendering) = (cores(), in_the_background(cores).await.unwrap());
        assert_eq!(rendering, 1, "a render may run on {rendering} cores");
        // What the render starts is held to its core too.
        let started = in_the_background(move || std::thread::spawn(cores).join().unwrap()).await.unwrap();
        assert_eq!(started, 1);
        assert_eq!(cores(), here, "the caller's thread was narrowed too");
    }

    #[tokio::test]
    async fn a_workspace_waits_behind_its_own_renders_not_in_front_of_anothers() {
        let renderer = Renderer::default();
        let (busy, other) = (WorkspaceId::generate(), WorkspaceId::generate());
        let rendering = renderer.turn(&busy).await.unwrap();
        let queued: Vec<_> = (0..5)
            .map(|_| {
                let (renderer, busy) = (renderer.clone(), busy.clone());
                tokio::spawn(async move { renderer.turn(&busy).await.unwrap() })
            })
            .collect();
        let settle = || async {
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
        };
        settle().await;
        let others = tokio::spawn({
            let (renderer, other) = (renderer.clone(), other.clone());
            async move { renderer.turn(&other).await.unwrap() }
        });
        settle().await;
        assert!(!others.is_finished(), "the pool is busy: the other workspace waits");
        drop(rendering);
        // Next is the other workspace, though five of the busy one's renders asked first.
        let others_turn = tokio::time::timeout(std::time::Duration::from_secs(10), others)
            .await
            .expect("the other workspace waited behind the busy one's whole queue")
            .unwrap();
        settle().await;
        assert!(queued.iter().all(|render| !render.is_finished()), "the busy workspace jumped the queue");
        drop(others_turn);
        for render in queued {
            drop(render.await.unwrap());
        }
    }
    #[test]
    fn sizes_and_keys() {
        assert_eq!(parse_size(None).unwrap(), 256);
        assert_eq!(parse_size(Some(1024)).unwrap(), 1024);
        assert_eq!(parse_size(Some(100)).unwrap_err().code(), Code::InvalidSize);
        let key = thumbnail_key("ws_a/file_b", 64);
        assert_eq!(key, "thumbnails/ws_a/file_b/64");
        assert_eq!(owner_blob_key(&key), Some("ws_a/file_b"));
        assert_eq!(owner_blob_key("ws_a/file_b"), None);
        assert_eq!(owner_blob_key("thumbnails/ws_a/file_b/x"), None);
    }
}

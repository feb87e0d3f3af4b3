//! Thumbnails of images: JPEG, PNG, WebP and GIF (its first frame), scaled so the longest edge is
//! one of [`SIZES`] pixels and never enlarged. Each size is made once — the default size in the
//! background when the file is created, others on first request — and cached in the blob store at
//! `thumbnails/{file's blob key}/{size}`, counted in no quota; an image that cannot be made into
//! a thumbnail has its refusal's code cached there instead, so it is read and refused only once.
//! Purging the file removes them; the orphan sweep removes those whose file is gone.
//!
//! Decoding is refused before it starts for sources larger than [`MAX_SOURCE_BYTES`], whose header
//! claims more than [`MAX_PIXELS`] pixels or an edge over [`MAX_EDGE`], or whose decoding would take
//! more than [`MAX_DECODE_BYTES`] by what the header says (the frame at its own depth, 16 bits a
//! channel included, and the decoder's own buffers). The image is scaled before it is turned the
//! way its EXIF orientation says, so only the thumbnail is ever copied. So one render holds at most
//! [`MAX_RENDER_BYTES`]; renders run on the blocking pool, [`CONCURRENT_RENDERS`] at a time, and
//! each workspace waits for its turn behind its own renders only: one tenant's queue of large
//! images never stands in front of another tenant's thumbnail.

use crate::Code;
use std::collections::HashMap;
use std::io::Cursor;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::{Error, Result};
use crate::ids::{FileId, WorkspaceId};
use crate::model::FileRecord;
use crate::ports::StageError;
use crate::rules::Operation;
use crate::signing::{SignedOperation, SignedParams};
use crate::{Cabinet, Caller};

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
/// The most pixels a source's header may claim.
pub const MAX_PIXELS: u64 = 40_000_000;
/// The longest edge a source's header may claim.
pub const MAX_EDGE: u32 = 16_384;
/// The most memory decoding one image may take, by the estimate [`decode_bytes`] makes from its
/// header before anything is decoded; also the decoders' allocation limit. 40 MP of 8-bit RGBA
/// fits; 40 MP of 16-bit RGB, or a progressive JPEG over about 18 MP, does not.
pub const MAX_DECODE_BYTES: u64 = 160 * 1024 * 1024;
/// The most the thumbnail itself takes once the source is decoded: the scaled copy at the source's
/// depth (at most 1024² pixels × 8 bytes), its turned copy, its 8-bit conversion and the encoding.
pub const MAX_THUMBNAIL_WORK_BYTES: u64 = 24 * 1024 * 1024;
/// The most memory one render holds at once: the source read whole, its decoding, the thumbnail.
pub const MAX_RENDER_BYTES: u64 = MAX_SOURCE_BYTES + MAX_DECODE_BYTES + MAX_THUMBNAIL_WORK_BYTES;
/// The largest thumbnail kept or served (1024 px of RGBA PNG is far below it).
const MAX_THUMBNAIL_BYTES: u64 = 8 * 1024 * 1024;
/// How many images are decoded at once; decoding is CPU-heavy and the API must stay responsive.
pub const CONCURRENT_RENDERS: usize = 1;
/// Signed thumbnail URLs expire on a boundary of this window, so the same URL is handed out for a
/// while and browsers can cache the image.
const URL_WINDOW_SECS: i64 = 3600;
const JPEG_QUALITY: u8 = 82;

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

fn unsupported() -> Error {
    Error::Unprocessable {
        code: Code::ThumbnailUnsupported,
        message: "thumbnails are made of JPEG, PNG, WebP and GIF images only".to_owned(),
    }
}

fn too_large(message: String) -> Error {
    Error::Unprocessable { code: Code::ImageTooLarge, message }
}

fn undecodable(err: impl std::fmt::Display) -> Error {
    Error::Unprocessable {
        code: Code::ImageUndecodable,
        message: format!("the image could not be read: {err}"),
    }
}

/// The type of a thumbnail from its first bytes.
fn content_type_of(bytes: &[u8]) -> &'static str {
    if bytes.starts_with(b"\x89PNG") {
        "image/png"
    } else {
        "image/jpeg"
    }
}

/// Checks the dimensions a header claims, before anything is decoded.
pub fn check_dimensions(width: u32, height: u32) -> Result<()> {
    if width > MAX_EDGE || height > MAX_EDGE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(too_large(format!(
            "the image is {width}×{height}; thumbnails are made of images up to {MAX_EDGE} pixels a side \
             and {MAX_PIXELS} pixels in all"
        )));
    }
    Ok(())
}

/// The bytes decoding an image takes at its peak, from its header alone: the decoded frame at its
/// own depth plus what the format's decoder holds beside it.
fn decode_bytes(format: ImageFormat, source: &[u8], decoder: &impl ImageDecoder) -> u64 {
    let (width, height) = decoder.dimensions();
    let pixels = u64::from(width) * u64::from(height);
    let frame = decoder.total_bytes();
    let beside = match format {
        // A progressive (or non-interleaved) JPEG keeps every DCT coefficient of every channel
        // (2 bytes each) until its last scan; a baseline one decodes a row of blocks at a time.
        ImageFormat::Jpeg if jpeg_keeps_every_coefficient(source) => {
            pixels * 2 * u64::from(decoder.original_color_type().channel_count())
        }
        ImageFormat::Jpeg => u64::from(width) * 16 * 4 * 2,
        // WebP decodes into RGBA planes (and lossless transforms) before the frame is filled.
        ImageFormat::WebP => pixels * 8,
        // GIF composes a frame smaller than its screen on an RGBA canvas of its own.
        ImageFormat::Gif => pixels * 4,
        // PNG unfilters a row or two at a time.
        _ => u64::from(width) * 8 * 2,
    };
    frame.saturating_add(beside)
}

/// Whether decoding a JPEG keeps all its coefficients until the end: it is progressive, or its first
/// scan does not carry every component. Read from the markers before the first scan; anything
/// unexpected counts as yes, the costlier answer.
fn jpeg_keeps_every_coefficient(source: &[u8]) -> bool {
    const SEQUENTIAL_FRAMES: [u8; 4] = [0xC0, 0xC1, 0xC3, 0xC9];
    const PROGRESSIVE_FRAMES: [u8; 4] = [0xC2, 0xC6, 0xCA, 0xCE];
    const START_OF_SCAN: u8 = 0xDA;
    let mut components = None;
    let mut at = 2; // after the start-of-image marker
    while let Some(&[0xFF, marker, high, low]) = source.get(at..at + 4) {
        if marker == 0xFF {
            at += 1; // a fill byte before a marker
            continue;
        }
        let end = at + 2 + usize::from(u16::from_be_bytes([high, low]));
        let Some(segment) = source.get(at + 4..end) else { return true };
        match marker {
            _ if PROGRESSIVE_FRAMES.contains(&marker) => return true,
            // Precision (1), height (2), width (2), then the number of components.
            _ if SEQUENTIAL_FRAMES.contains(&marker) => components = segment.get(5).copied(),
            START_OF_SCAN => return components.is_none() || segment.first().copied() != components,
            _ => {}
        }
        at = end;
    }
    true
}

/// Decodes an image (its first frame) and scales it so its longest edge is at most `size`,
/// encoded as JPEG when opaque, PNG when it has transparency. CPU-heavy: call it off the runtime.
pub fn render(source: &[u8], size: u32) -> Result<(Bytes, &'static str)> {
    let reader = || ImageReader::new(Cursor::new(source)).with_guessed_format().map_err(undecodable);
    let format = match reader()?.format() {
        Some(format @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif)) => {
            format
        }
        _ => return Err(unsupported()),
    };
    let (width, height) = reader()?.into_dimensions().map_err(undecodable)?;
    check_dimensions(width, height)?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_EDGE);
    limits.max_image_height = Some(MAX_EDGE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    let mut reader = reader()?;
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(refusal)?;
    let needed = decode_bytes(format, source, &decoder);
    if needed > MAX_DECODE_BYTES {
        return Err(too_large(format!(
            "the image is {width}×{height} of {:?}; decoding it would take {} MiB, and thumbnails are made \
             of images that take at most {} MiB",
            decoder.color_type(),
            needed.div_ceil(1 << 20),
            MAX_DECODE_BYTES >> 20
        )));
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut thumb = {
        let image = DynamicImage::from_decoder(decoder).map_err(refusal)?;
        // The decoded source is dropped here, before the thumbnail is turned and encoded.
        if image.width().max(image.height()) > size {
            image.thumbnail(size, size)
        } else {
            image
        }
    };
    // Turned after scaling (to a square bound, so the result is the same): a rotation copies the
    // image, and a copy of the thumbnail is small where one of the source is not.
    thumb.apply_orientation(orientation);
    let opaque = !thumb.color().has_alpha() || thumb.to_rgba8().pixels().all(|pixel| pixel[3] == u8::MAX);
    let mut out = Vec::new();
    if opaque {
        let encoder = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY);
        DynamicImage::ImageRgb8(thumb.to_rgb8()).write_with_encoder(encoder).map_err(Error::internal)?;
        Ok((Bytes::from(out), "image/jpeg"))
    } else {
        let encoder = image::codecs::png::PngEncoder::new(&mut out);
        DynamicImage::ImageRgba8(thumb.to_rgba8()).write_with_encoder(encoder).map_err(Error::internal)?;
        Ok((Bytes::from(out), "image/png"))
    }
}

/// A decoder's refusal: over a limit, or bytes it cannot read.
fn refusal(err: image::ImageError) -> Error {
    match err {
        image::ImageError::Limits(limit) => {
            too_large(format!("the image needs more memory to decode than allowed: {limit}"))
        }
        other => undecodable(other),
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
        let end = (self.clock.now() + self.settings.download_url_ttl).timestamp();
        let expires = (end / URL_WINDOW_SECS + 1) * URL_WINDOW_SECS;
        let params = SignedParams { expires, max_bytes: 0, attachment: false };
        let (ws, size) = (&file.workspace_id, DEFAULT_SIZE);
        let object = format!("{}/{size}", file.id);
        let query = self.signer.sign(SignedOperation::Thumbnail, ws.as_str(), &object, &params);
        Some(format!(
            "{}{STORAGE_THUMBNAIL_PREFIX}/{ws}/{}/{size}?{query}",
            self.settings.public_url, file.id
        ))
    }

    /// Checks a signed thumbnail URL and returns the thumbnail it names.
    pub async fn thumbnail_at_signed_url(
        &self,
        ws: &str,
        file: &str,
        size: &str,
        query: Option<&str>,
    ) -> Result<Thumbnail> {
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
        let rendered =
            tokio::task::spawn_blocking(move || render(&source, size)).await.map_err(Error::internal)?;
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
    use image::{ImageEncoder, Rgba, RgbaImage};

    fn encoded(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        image.write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_large_image_is_scaled_to_the_size_and_a_small_one_never_enlarged() {
        let photo = DynamicImage::ImageRgb8(image::RgbImage::from_fn(600, 300, |x, y| {
            image::Rgb([x as u8, y as u8, 9])
        }));
        let (bytes, content_type) = render(&encoded(&photo, ImageFormat::Png), 256).unwrap();
        assert_eq!(content_type, "image/jpeg");
        let thumb = image::load_from_memory(&bytes).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (256, 128));
        let (bytes, _) = render(&encoded(&photo, ImageFormat::Png), 1024).unwrap();
        let same = image::load_from_memory(&bytes).unwrap();
        assert_eq!((same.width(), same.height()), (600, 300));
    }

    #[test]
    fn transparency_is_kept_as_png() {
        let mut clear = RgbaImage::from_pixel(100, 50, Rgba([10, 20, 30, 255]));
        for (x, y) in (0..20).flat_map(|x| (0..20).map(move |y| (x, y))) {
            clear.put_pixel(x, y, Rgba([0, 0, 0, 0]));
        }
        let (bytes, content_type) =
            render(&encoded(&DynamicImage::ImageRgba8(clear), ImageFormat::Png), 64).unwrap();
        assert_eq!(content_type, "image/png");
        assert_eq!(content_type_of(&bytes), "image/png");
        let thumb = image::load_from_memory(&bytes).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (64, 32));
    }

    #[test]
    fn a_photo_is_turned_the_way_its_exif_orientation_says() {
        // A TIFF header with one IFD entry: Orientation (0x0112) = 6, "rotate 90° clockwise".
        let exif =
            [0x49, 0x49, 0x2a, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];
        let mut jpeg = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut jpeg);
        encoder.set_exif_metadata(exif.to_vec()).unwrap();
        encoder.write_image(&[200u8; 200 * 100 * 3], 200, 100, image::ExtendedColorType::Rgb8).unwrap();
        let (bytes, _) = render(&jpeg, 64).unwrap();
        let thumb = image::load_from_memory(&bytes).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (32, 64), "stored landscape, shown portrait");
    }

    /// A valid PNG signature and IHDR that claim `width`×`height` of 8-bit RGB, and no pixel data.
    fn png_header(width: u32, height: u32) -> Vec<u8> {
        png_header_of(width, height, 8, 2)
    }

    /// A valid PNG signature and IHDR that claim `width`×`height` at a bit depth and colour type
    /// (2 RGB, 6 RGBA), and no pixel data.
    fn png_header_of(width: u32, height: u32, bit_depth: u8, color_type: u8) -> Vec<u8> {
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&[0, 0, 0], 1, 1, image::ExtendedColorType::Rgb8)
            .unwrap();
        // IHDR's data starts at byte 16; its CRC (bytes 29..33) covers the type and data.
        png[16..20].copy_from_slice(&width.to_be_bytes());
        png[20..24].copy_from_slice(&height.to_be_bytes());
        png[24] = bit_depth;
        png[25] = color_type;
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        png
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xffff_ffff_u32;
        for byte in bytes {
            crc ^= u32::from(*byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 { 0xedb8_8320 ^ (crc >> 1) } else { crc >> 1 };
            }
        }
        !crc
    }

    #[test]
    fn an_image_bomb_is_refused_from_its_header() {
        let err = render(&png_header(100_000, 100_000), 256).unwrap_err();
        assert_eq!(err.code(), Code::ImageTooLarge);
        let err = render(&png_header(20_000, 10), 256).unwrap_err();
        assert_eq!(err.code(), Code::ImageTooLarge);
        // Within the limits, the same header is read and its missing pixels are the refusal.
        assert_eq!(render(&png_header(2000, 2000), 256).unwrap_err().code(), Code::ImageUndecodable);
    }

    #[test]
    fn an_image_inside_the_pixel_cap_is_refused_when_decoding_it_would_exceed_the_memory_budget() {
        // 36 MP: 108 MB as 8-bit RGB fits the budget (its missing pixels are the refusal), 288 MB
        // as 16-bit RGBA does not, and is refused before a byte of it is decoded.
        const { assert!(6000 * 6000 < MAX_PIXELS) };
        assert_eq!(render(&png_header_of(6000, 6000, 8, 2), 256).unwrap_err().code(), Code::ImageUndecodable);
        let err = render(&png_header_of(6000, 6000, 16, 6), 256).unwrap_err();
        assert_eq!(err.code(), Code::ImageTooLarge);
        assert!(err.to_string().contains("288 MiB") || err.to_string().contains("275 MiB"), "{err}");
    }

    #[test]
    fn a_progressive_jpeg_counts_its_coefficients_and_a_baseline_one_does_not() {
        let mut baseline = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut baseline)
            .write_image(&[90u8; 32 * 16 * 3], 32, 16, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(!jpeg_keeps_every_coefficient(&baseline));
        // The same file marked progressive (SOF2 instead of SOF0).
        let sof = baseline.windows(2).position(|pair| pair == [0xFF, 0xC0]).expect("a SOF0 marker");
        let mut progressive = baseline.clone();
        progressive[sof + 1] = 0xC2;
        assert!(jpeg_keeps_every_coefficient(&progressive));
        // A scan of fewer components than the frame has (a non-interleaved file).
        let sos = baseline.windows(2).position(|pair| pair == [0xFF, 0xDA]).expect("a SOS marker");
        let mut non_interleaved = baseline.clone();
        non_interleaved[sos + 4] = 1;
        assert!(jpeg_keeps_every_coefficient(&non_interleaved));
        // Cut short before its first scan: the costlier answer.
        assert!(jpeg_keeps_every_coefficient(&baseline[..sof]));
    }

    #[test]
    fn other_bytes_are_refused_as_unsupported() {
        assert_eq!(render(b"%PDF-1.7 not an image", 256).unwrap_err().code(), Code::ThumbnailUnsupported);
        let mut bmp = b"BM".to_vec();
        bmp.resize(64, 0);
        assert_eq!(render(&bmp, 256).unwrap_err().code(), Code::ThumbnailUnsupported);
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

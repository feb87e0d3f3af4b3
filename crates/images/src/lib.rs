//! The image codec behind thumbnails (`cabinet_core::ports::ImageCodec`): JPEG, PNG, WebP and GIF
//! (its first frame), decoded within a memory budget and scaled so the longest edge is at most the
//! size asked for.
//!
//! Decoding is refused before it starts for an image whose header claims more than [`MAX_PIXELS`]
//! pixels or an edge over [`MAX_EDGE`], or whose decoding would take more than
//! [`MAX_DECODE_BYTES`] by what the header says (the frame at its own depth, 16 bits a channel
//! included, and the decoder's own buffers). The image is scaled before it is turned the way its
//! EXIF orientation says, so only the thumbnail is ever copied. With the source read whole (at most
//! `cabinet_core::thumbnails::MAX_SOURCE_BYTES`), one render holds at most [`MAX_RENDER_BYTES`].

use std::io::Cursor;

use bytes::Bytes;
use cabinet_core::ports::ImageCodec;
use cabinet_core::thumbnails::{too_large, undecodable, unsupported, MAX_SOURCE_BYTES};
use cabinet_core::{Error, Result};
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

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
const JPEG_QUALITY: u8 = 82;

/// The codec Cabinet renders thumbnails with.
#[derive(Debug, Default, Clone, Copy)]
pub struct Thumbnailer;

impl ImageCodec for Thumbnailer {
    fn thumbnail(&self, source: &[u8], size: u32) -> Result<(Bytes, &'static str)> {
        render(source, size)
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

#[cfg(test)]
mod tests {
    use super::*;
    use cabinet_core::thumbnails::content_type_of;
    use cabinet_core::Code;
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
}

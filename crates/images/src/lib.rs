//! The image codec behind thumbnails (`cabinet_core::ports::ImageCodec`): JPEG, PNG, WebP and GIF
//! (its first frame), decoded within a memory budget and scaled so the longest edge is at most the
//! size asked for.
//!
//! JPEG and PNG are shrunk while they are decoded (shrink-on-load): a JPEG is scaled in the DCT to
//! 1/2, 1/4 or 1/8 ([`jpeg`]), a PNG averaged by blocks a row at a time as its rows arrive
//! ([`png_rows`]), so a photo's full frame is never held; a convolution then brings the shrunk
//! image to the size. What those paths do not take (CMYK and 12-bit JPEG, interlaced PNG, WebP,
//! GIF, and a JPEG whose shrinking would not fit the budget) is decoded whole and then scaled.
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
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

mod jpeg;
mod png_rows;
mod resize;
mod yielding;

/// The most pixels a source's header may claim.
pub const MAX_PIXELS: u64 = 40_000_000;
/// The longest edge a source's header may claim.
pub const MAX_EDGE: u32 = 16_384;
/// The most memory decoding one image may take, by the estimate [`decode_bytes`] makes from its
/// header before anything is decoded; also the decoders' allocation limit. Decoded whole, 40 MP
/// of 8-bit RGBA fits; 40 MP of 16-bit RGB, or a progressive JPEG over about 18 MP, does not.
/// Shrunk on load, a non-interlaced PNG within the caps always fits, and a JPEG does up to about
/// 22–27 MP of baseline YCbCr (by the scale) or 13 MP progressive (beyond, it is decoded whole).
pub const MAX_DECODE_BYTES: u64 = 160 * 1024 * 1024;
/// The most the thumbnail itself takes once the source is decoded: the scaled copy at the source's
/// depth (at most 1024² pixels × 8 bytes), its turned copy, its 8-bit conversion and the encoding.
pub const MAX_THUMBNAIL_WORK_BYTES: u64 = 24 * 1024 * 1024;
/// The most memory one render holds at once: the source read whole, its decoding, the thumbnail.
pub const MAX_RENDER_BYTES: u64 = MAX_SOURCE_BYTES + MAX_DECODE_BYTES + MAX_THUMBNAIL_WORK_BYTES;
const JPEG_QUALITY: u8 = 82;

/// An image shrunk while it was decoded, and how it is to be turned.
struct Shrunk {
    image: DynamicImage,
    orientation: Orientation,
}

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
    render_with(source, size, true)
}

/// [`render`] with every image decoded whole before it is scaled, as it was before shrink-on-load:
/// what the shrinking paths are checked and measured against.
pub fn render_decoding_whole(source: &[u8], size: u32) -> Result<(Bytes, &'static str)> {
    render_with(source, size, false)
}

fn render_with(source: &[u8], size: u32, shrink_on_load: bool) -> Result<(Bytes, &'static str)> {
    let reader = || {
        ImageReader::new(yielding::Yielding::new(Cursor::new(source)))
            .with_guessed_format()
            .map_err(undecodable)
    };
    let format = match reader()?.format() {
        Some(format @ (ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP | ImageFormat::Gif)) => {
            format
        }
        _ => return Err(unsupported()),
    };
    let (width, height) = reader()?.into_dimensions().map_err(undecodable)?;
    check_dimensions(width, height)?;
    let shrunk = match format {
        _ if !shrink_on_load => None,
        ImageFormat::Jpeg => jpeg::shrink_on_load(source, size),
        ImageFormat::Png => png_rows::shrink_on_load(source, size).transpose().map_err(undecodable)?,
        _ => None,
    };
    let (mut thumb, orientation) = match shrunk {
        Some(Shrunk { image, orientation }) => {
            (resize::to(image, resize::fit(width, height, size)), orientation)
        }
        None => decode_whole(format, source, width, height, size, reader()?)?,
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

/// Decodes the whole frame (within the budget its header allows) and scales it to `size`.
fn decode_whole(
    format: ImageFormat,
    source: &[u8],
    width: u32,
    height: u32,
    size: u32,
    mut reader: ImageReader<yielding::Yielding<Cursor<&[u8]>>>,
) -> Result<(DynamicImage, Orientation)> {
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_EDGE);
    limits.max_image_height = Some(MAX_EDGE);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
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
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(refusal)?;
    // The decoded source is dropped here, once its thumbnail (an area average, no larger copy) is made.
    let thumb = if image.width().max(image.height()) > size { image.thumbnail(size, size) } else { image };
    Ok((thumb, orientation))
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
        // 36 MP, interlaced (so decoded whole): 108 MB as 8-bit RGB fits the budget (its missing
        // pixels are the refusal), 288 MB as 16-bit RGBA does not, and is refused before a byte
        // of it is decoded.
        const { assert!(6000 * 6000 < MAX_PIXELS) };
        let interlaced = |mut png: Vec<u8>| {
            png[28] = 1; // IHDR's interlace method: Adam7
            let crc = crc32(&png[12..29]);
            png[29..33].copy_from_slice(&crc.to_be_bytes());
            png
        };
        let rgb8 = interlaced(png_header_of(6000, 6000, 8, 2));
        assert_eq!(render(&rgb8, 256).unwrap_err().code(), Code::ImageUndecodable);
        let err = render(&interlaced(png_header_of(6000, 6000, 16, 6)), 256).unwrap_err();
        assert_eq!(err.code(), Code::ImageTooLarge);
        assert!(err.to_string().contains("288 MiB") || err.to_string().contains("275 MiB"), "{err}");
        // Read a row at a time, the same image needs only a few rows: its missing pixels are the
        // refusal.
        let rows = png_header_of(6000, 6000, 16, 6);
        assert_eq!(render(&rows, 256).unwrap_err().code(), Code::ImageUndecodable);
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

    /// A smooth picture with edges: what a thumbnail should keep.
    fn scene(width: u32, height: u32) -> image::RgbImage {
        image::RgbImage::from_fn(width, height, |x, y| {
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let disc = ((fx - 0.5).powi(2) + (fy - 0.5).powi(2)) < 0.04;
            let wave = 128.0 + 100.0 * (fx * 9.0).sin() * (fy * 7.0).cos();
            image::Rgb([(255.0 * fx) as u8, if disc { 250 } else { (200.0 * fy) as u8 }, wave as u8])
        })
    }

    /// The mean absolute difference of two images' samples, as 8-bit RGBA.
    fn mean_difference(a: &DynamicImage, b: &DynamicImage) -> f64 {
        assert_eq!((a.width(), a.height()), (b.width(), b.height()));
        let (a, b) = (a.to_rgba8(), b.to_rgba8());
        let total: u64 = a.as_raw().iter().zip(b.as_raw()).map(|(x, y)| u64::from(x.abs_diff(*y))).sum();
        total as f64 / a.as_raw().len() as f64
    }

    fn jpeg_of(image: &image::RgbImage) -> Vec<u8> {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .write_image(image.as_raw(), image.width(), image.height(), image::ExtendedColorType::Rgb8)
            .unwrap();
        jpeg
    }

    #[test]
    fn a_jpeg_is_scaled_while_it_is_decoded_and_looks_as_when_decoded_whole() {
        let jpeg = jpeg_of(&scene(1600, 1200));
        // The smallest DCT scale that keeps the longest edge at least the size: 1/4 for 256, 1/8 for 64.
        let shrunk = jpeg::shrink_on_load(&jpeg, 256).expect("a baseline RGB JPEG is shrunk on load");
        assert_eq!((shrunk.image.width(), shrunk.image.height()), (400, 300));
        let shrunk = jpeg::shrink_on_load(&jpeg, 64).unwrap();
        assert_eq!((shrunk.image.width(), shrunk.image.height()), (200, 150));
        assert_eq!(shrunk.orientation, Orientation::NoTransforms);
        for size in [64, 256, 1024] {
            let (fast, content_type) = render(&jpeg, size).unwrap();
            assert_eq!(content_type, "image/jpeg");
            let (whole, _) = render_decoding_whole(&jpeg, size).unwrap();
            let (fast, whole) =
                (image::load_from_memory(&fast).unwrap(), image::load_from_memory(&whole).unwrap());
            assert_eq!((fast.width(), fast.height()), (size, size * 3 / 4));
            let difference = mean_difference(&fast, &whole);
            assert!(difference < 3.0, "{size} px: mean difference {difference:.2} from the whole decode");
        }
    }

    #[test]
    fn a_jpeg_shrunk_on_load_keeps_the_sources_ratio_not_its_blocks() {
        // 1/8 of 300×900 is 38×113 (edges rounded up to whole blocks), whose ratio would give
        // 22×64; the source's gives 21×64.
        let jpeg = jpeg_of(&scene(300, 900));
        let shrunk = jpeg::shrink_on_load(&jpeg, 64).unwrap();
        assert_eq!((shrunk.image.width(), shrunk.image.height()), (38, 113));
        let thumb = image::load_from_memory(&render(&jpeg, 64).unwrap().0).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (21, 64));
    }

    #[test]
    fn a_grey_jpeg_is_shrunk_on_load_and_stays_grey() {
        let grey = DynamicImage::ImageRgb8(scene(900, 1200)).to_luma8();
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .write_image(grey.as_raw(), 900, 1200, image::ExtendedColorType::L8)
            .unwrap();
        let shrunk = jpeg::shrink_on_load(&jpeg, 64).unwrap();
        assert_eq!(shrunk.image.color(), image::ColorType::L8);
        assert_eq!((shrunk.image.width(), shrunk.image.height()), (113, 150));
        let thumb = image::load_from_memory(&render(&jpeg, 64).unwrap().0).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (48, 64));
    }

    #[test]
    fn the_exif_orientation_of_a_jpeg_shrunk_on_load_is_kept() {
        // Orientation 8: "rotate 90° counter-clockwise".
        let exif =
            [0x49, 0x49, 0x2a, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0];
        let mut jpeg = Vec::new();
        let mut encoder = image::codecs::jpeg::JpegEncoder::new(&mut jpeg);
        encoder.set_exif_metadata(exif.to_vec()).unwrap();
        let source = scene(1200, 600);
        encoder.write_image(source.as_raw(), 1200, 600, image::ExtendedColorType::Rgb8).unwrap();
        let shrunk = jpeg::shrink_on_load(&jpeg, 256).unwrap();
        assert_eq!((shrunk.image.width(), shrunk.image.height()), (300, 150));
        assert_eq!(shrunk.orientation, Orientation::Rotate270);
        let (fast, _) = render(&jpeg, 256).unwrap();
        let (whole, _) = render_decoding_whole(&jpeg, 256).unwrap();
        let (fast, whole) =
            (image::load_from_memory(&fast).unwrap(), image::load_from_memory(&whole).unwrap());
        assert_eq!((fast.width(), fast.height()), (128, 256), "stored landscape, shown portrait");
        assert!(mean_difference(&fast, &whole) < 3.0, "turned the same way as the whole decode");
    }

    /// `jpeg` with its frame header's dimensions replaced, and its frame type when `sof` is given.
    fn jpeg_claiming(jpeg: &[u8], width: u16, height: u16, sof: Option<u8>) -> Vec<u8> {
        let at = jpeg.windows(2).position(|pair| pair == [0xFF, 0xC0]).expect("a SOF0 marker");
        let mut claimed = jpeg.to_vec();
        // Marker (2), length (2), precision (1), then height and width.
        claimed[at + 5..at + 7].copy_from_slice(&height.to_be_bytes());
        claimed[at + 7..at + 9].copy_from_slice(&width.to_be_bytes());
        if let Some(sof) = sof {
            claimed[at + 1] = sof;
        }
        claimed
    }

    #[test]
    fn a_jpeg_header_over_the_limits_is_refused_before_shrink_on_load_decodes_it() {
        let jpeg = jpeg_of(&scene(64, 48));
        let err = render(&jpeg_claiming(&jpeg, 20_000, 100, None), 256).unwrap_err();
        assert_eq!(err.code(), Code::ImageTooLarge);
        let err = render(&jpeg_claiming(&jpeg, 9_000, 9_000, None), 256).unwrap_err();
        assert_eq!(err.code(), Code::ImageTooLarge, "81 MP is over the pixel cap");
        // 30 MP progressive: its coefficients (and their copies on their way to the decoder's
        // threads) do not fit the budget, so it is not shrunk on load, and decoding it whole
        // would not fit either: refused from the header.
        let progressive = jpeg_claiming(&jpeg, 6_000, 5_000, Some(0xC2));
        assert!(jpeg::shrink_on_load(&progressive, 256).is_none());
        let err = render(&progressive, 256).unwrap_err();
        assert_eq!(err.code(), Code::ImageTooLarge);
        // 12 MP baseline fits: shrunk on load (a scan cut short is filled in, as libjpeg does).
        let baseline = jpeg_claiming(&jpeg, 4_000, 3_000, None);
        let shrunk = jpeg::shrink_on_load(&baseline, 256).expect("a 12 MP baseline JPEG fits the budget");
        assert_eq!((shrunk.image.width(), shrunk.image.height()), (500, 375));
    }

    #[test]
    fn a_png_is_shrunk_a_row_at_a_time_and_looks_as_when_decoded_whole() {
        let source = scene(1500, 1000);
        let variants = [
            DynamicImage::ImageRgb8(source.clone()),
            DynamicImage::ImageRgb16(DynamicImage::ImageRgb8(source.clone()).to_rgb16()),
            DynamicImage::ImageLuma8(DynamicImage::ImageRgb8(source.clone()).to_luma8()),
        ];
        for image in variants {
            let png = encoded(&image, ImageFormat::Png);
            let shrunk = png_rows::shrink_on_load(&png, 256).expect("a non-interlaced PNG").unwrap();
            // 1500 / (2 × 256): blocks of 2×2.
            assert_eq!((shrunk.image.width(), shrunk.image.height()), (750, 500));
            let (fast, content_type) = render(&png, 256).unwrap();
            assert_eq!(content_type, "image/jpeg");
            let (whole, _) = render_decoding_whole(&png, 256).unwrap();
            let (fast, whole) =
                (image::load_from_memory(&fast).unwrap(), image::load_from_memory(&whole).unwrap());
            assert_eq!((fast.width(), fast.height()), (256, 171));
            let difference = mean_difference(&fast, &whole);
            assert!(difference < 3.0, "{:?}: mean difference {difference:.2}", image.color());
        }
    }

    #[test]
    fn a_png_with_transparency_shrunk_a_row_at_a_time_keeps_it() {
        let mut clear = RgbaImage::from_fn(1200, 600, |x, _| Rgba([200, (x / 5) as u8, 40, 255]));
        for (x, y) in (0..300).flat_map(|x| (0..300).map(move |y| (x, y))) {
            clear.put_pixel(x, y, Rgba([0, 0, 0, 0]));
        }
        let png = encoded(&DynamicImage::ImageRgba8(clear), ImageFormat::Png);
        let (fast, content_type) = render(&png, 64).unwrap();
        assert_eq!(content_type, "image/png");
        let (whole, _) = render_decoding_whole(&png, 64).unwrap();
        let (fast, whole) =
            (image::load_from_memory(&fast).unwrap(), image::load_from_memory(&whole).unwrap());
        assert_eq!((fast.width(), fast.height()), (64, 32));
        assert_eq!(fast.to_rgba8().get_pixel(2, 2)[3], 0, "the clear corner stays clear");
        assert_eq!(fast.to_rgba8().get_pixel(60, 30)[3], 255);
        assert!(mean_difference(&fast, &whole) < 4.0);
    }

    #[test]
    fn a_png_cut_short_is_refused_as_undecodable() {
        let png = encoded(&DynamicImage::ImageRgb8(scene(600, 400)), ImageFormat::Png);
        let cut = &png[..png.len() / 2];
        assert_eq!(render(cut, 256).unwrap_err().code(), Code::ImageUndecodable);
    }

    #[test]
    fn other_bytes_are_refused_as_unsupported() {
        assert_eq!(render(b"%PDF-1.7 not an image", 256).unwrap_err().code(), Code::ThumbnailUnsupported);
        let mut bmp = b"BM".to_vec();
        bmp.resize(64, 0);
        assert_eq!(render(&bmp, 256).unwrap_err().code(), Code::ThumbnailUnsupported);
    }
}

//! Shrink-on-load for JPEG: the decoder scales each 8×8 block in the DCT to 4×4, 2×2 or 1×1
//! pixels, so a 12 MP photo thumbnailed to 256 px is decoded as 500×375 and never held whole.
//! Only 8-bit greyscale and YCbCr/RGB files whose decoding fits the budget take this path; CMYK,
//! 12-bit, lossless, what this decoder refuses and what would not fit go the general way, which
//! decides for itself.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, GrayImage, RgbImage};
use jpeg_decoder::{CodingProcess, Decoder, PixelFormat};

use crate::yielding::Yielding;
use crate::{resize, Shrunk, MAX_DECODE_BYTES};

/// The edge of a block, in pixels; every component is padded to whole blocks of its MCU (at most
/// 4 blocks a side), so 32 pixels bounds what padding adds.
const MCU_BOUND: u64 = 32;

/// The source decoded at the smallest DCT scale whose longest edge is still at least `size`, or
/// `None` when this path does not take it (see the module's comment). The dimensions were checked.
pub fn shrink_on_load(source: &[u8], size: u32) -> Option<Shrunk> {
    let mut decoder = Decoder::new(Yielding::new(Cursor::new(source)));
    decoder.read_info().ok()?;
    let info = decoder.info()?;
    let channels: u8 = match info.pixel_format {
        PixelFormat::L8 => 1,
        PixelFormat::RGB24 => 3,
        PixelFormat::L16 | PixelFormat::CMYK32 => return None,
    };
    if info.coding_process == CodingProcess::Lossless {
        return None;
    }
    let requested = u16::try_from(size).ok()?;
    let (width, height) = decoder.scale(requested, requested).ok()?;
    let (width, height) = (u32::from(width), u32::from(height));
    let progressive = info.coding_process == CodingProcess::DctProgressive;
    let needed = decode_bytes(info.width, info.height, width, height, channels, progressive)
        + resize::work_bytes(width, height, channels, size);
    if needed > MAX_DECODE_BYTES {
        return None;
    }
    decoder.set_max_decoding_buffer_size(usize::try_from(MAX_DECODE_BYTES).ok()?);
    let pixels = decoder.decode().ok()?;
    let image = match channels {
        1 => DynamicImage::ImageLuma8(GrayImage::from_raw(width, height, pixels)?),
        _ => DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, pixels)?),
    };
    let orientation =
        decoder.exif_data().and_then(Orientation::from_exif_chunk).unwrap_or(Orientation::NoTransforms);
    Some(Shrunk { image, orientation })
}

/// What decoding takes at its peak, from the header and the scale chosen: the coefficients (2
/// bytes each, one per pixel of each component at full size) that may wait in the queue to the
/// decoder's per-component threads — and, for a progressive file, its store of every coefficient
/// beside them — the scaled component planes, and the scaled frame.
fn decode_bytes(
    width: u16,
    height: u16,
    scaled_width: u32,
    scaled_height: u32,
    channels: u8,
    progressive: bool,
) -> u64 {
    let channels = u64::from(channels);
    let padded = u64::from(width).next_multiple_of(MCU_BOUND) * u64::from(height).next_multiple_of(MCU_BOUND);
    let coefficients = padded * 2 * channels * if progressive { 2 } else { 1 };
    let denominator = (u64::from(width) / u64::from(scaled_width).max(1)).max(1);
    let planes = padded / (denominator * denominator) * channels;
    let frame = u64::from(scaled_width) * u64::from(scaled_height) * channels;
    coefficients + planes + frame
}

//! Shrink-on-load for PNG: rows are decoded one at a time and averaged into blocks of k×k pixels
//! as they arrive, so the frame is never held whole: a 4000×3000 image thumbnailed to 256 px
//! holds a row, a sum per column of the band of rows being averaged and the 571×429 shrunk image.
//! k is the largest whole factor that leaves the longest edge at least twice the size, so the last
//! step (a convolution) still has pixels to filter. Interlaced files, whose rows arrive in seven
//! passes, go the general way.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, GrayAlphaImage, GrayImage, RgbImage, RgbaImage};
use png::{ColorType, Decoder, Transformations};

use crate::yielding::YieldEvery;
use crate::{resize, Shrunk, MAX_DECODE_BYTES};

/// The largest block edge: a block's sum of colour × alpha (at most 255² each) then fits in 32 bits.
const MAX_FACTOR: u32 = 128;

/// Samples decoded between two offers of the CPU to another thread: ~80 µs of this loop. Why a
/// render offers the core at all is in `yielding`'s comment; a yield costs about a microsecond
/// when nobody waits.
const SAMPLES_BETWEEN_YIELDS: usize = 256 * 1024;

/// The source decoded row by row and shrunk by a whole factor, or `None` when this path does not
/// take it (an interlaced file, or a header this decoder refuses). The dimensions were checked.
pub fn shrink_on_load(source: &[u8], size: u32) -> Option<Result<Shrunk, png::DecodingError>> {
    let mut decoder = Decoder::new(Cursor::new(source));
    // Palettes and low depths are expanded to 8 bits, transparency to an alpha channel, and 16-bit
    // samples cut to their high byte: a thumbnail is 8-bit.
    decoder.set_transformations(Transformations::EXPAND | Transformations::STRIP_16);
    let mut reader = decoder.read_info().ok()?;
    let info = reader.info();
    if info.interlaced {
        return None;
    }
    let (width, height) = (info.width, info.height);
    let orientation = info
        .exif_metadata
        .as_deref()
        .and_then(Orientation::from_exif_chunk)
        .unwrap_or(Orientation::NoTransforms);
    let channels: u8 = match reader.output_color_type().0 {
        ColorType::Grayscale => 1,
        ColorType::GrayscaleAlpha => 2,
        ColorType::Rgb => 3,
        ColorType::Rgba => 4,
        ColorType::Indexed => return None,
    };
    let factor = (width.max(height) / size.saturating_mul(2).max(1)).clamp(1, MAX_FACTOR);
    let mut shrink = BlockShrink::new(width, height, channels, factor);
    let (shrunk_width, shrunk_height) = (shrink.width, shrink.height);
    if decode_bytes(width, &shrink) + resize::work_bytes(shrunk_width, shrunk_height, channels, size)
        > MAX_DECODE_BYTES
    {
        return None;
    }
    let mut pixels = Vec::with_capacity(shrink.shrunk_len());
    let mut yields = YieldEvery::new(SAMPLES_BETWEEN_YIELDS);
    for _ in 0..height {
        match reader.next_row() {
            Ok(Some(row)) => {
                shrink.add_row(row.data(), &mut pixels);
                yields.advance(row.data().len());
            }
            Ok(None) => break,
            Err(err) => return Some(Err(err)),
        }
    }
    shrink.finish(&mut pixels);
    let image = match channels {
        1 => GrayImage::from_raw(shrunk_width, shrunk_height, pixels).map(DynamicImage::ImageLuma8),
        2 => GrayAlphaImage::from_raw(shrunk_width, shrunk_height, pixels).map(DynamicImage::ImageLumaA8),
        3 => RgbImage::from_raw(shrunk_width, shrunk_height, pixels).map(DynamicImage::ImageRgb8),
        _ => RgbaImage::from_raw(shrunk_width, shrunk_height, pixels).map(DynamicImage::ImageRgba8),
    };
    // A file that ends before its last row is refused, as the full decoder refuses it.
    let image = image.ok_or(png::DecodingError::IoError(std::io::ErrorKind::UnexpectedEof.into()));
    Some(image.map(|image| Shrunk { image, orientation }))
}

/// What decoding takes at its peak besides the source: the decoder's current and previous rows at
/// up to 16 bits a sample (and its inflate window), the column sums, and the shrunk image.
fn decode_bytes(width: u32, shrink: &BlockShrink) -> u64 {
    let row = u64::from(width) * 8;
    let sums = match &shrink.columns {
        ColumnSums::Plain(columns) => std::mem::size_of_val(columns.as_slice()),
        ColumnSums::WeightedByAlpha(columns) => std::mem::size_of_val(columns.as_slice()),
    };
    row * 3 + (64 << 10) + sums as u64 + shrink.shrunk_len() as u64
}

/// Averages rows into blocks of `factor`×`factor` pixels (those on the right and bottom edges
/// smaller), colour weighted by alpha where there is alpha so a clear pixel's colour does not
/// bleed into its neighbours.
///
/// A row is added to per-column sums, one independent add per sample that the compiler turns into
/// vector adds; the columns are folded into blocks once per band. Adding each sample straight into
/// its block's sum instead makes each add wait for the one before it to the same sum: that loop
/// was three quarters of the time a 36 MP image took to render.
struct BlockShrink {
    width: u32,
    height: u32,
    channels: usize,
    factor: u32,
    columns: ColumnSums,
    /// How many rows the current band has.
    rows: u32,
}

/// Per source column and channel, the sum over the current band's rows.
enum ColumnSums {
    /// Samples as they are: at most 128 rows of 255 fit 16 bits, so a vector add takes twice the
    /// samples it would at 32.
    Plain(Vec<u16>),
    /// Colour × alpha, and alpha.
    WeightedByAlpha(Vec<u32>),
}

impl BlockShrink {
    fn new(source_width: u32, source_height: u32, channels: u8, factor: u32) -> Self {
        let samples = source_width as usize * usize::from(channels);
        Self {
            width: source_width.div_ceil(factor),
            height: source_height.div_ceil(factor),
            channels: usize::from(channels),
            factor,
            columns: match channels {
                2 | 4 => ColumnSums::WeightedByAlpha(vec![0; samples]),
                _ => ColumnSums::Plain(vec![0; samples]),
            },
            rows: 0,
        }
    }

    fn shrunk_len(&self) -> usize {
        self.width as usize * self.height as usize * self.channels
    }

    /// Adds a row of 8-bit samples; a band that is complete is written to `out`.
    fn add_row(&mut self, row: &[u8], out: &mut Vec<u8>) {
        // A band's first row sets the sums, so they are never cleared.
        let first = self.rows == 0;
        match &mut self.columns {
            ColumnSums::Plain(columns) => {
                for (column, &sample) in columns.iter_mut().zip(row) {
                    *column = if first { 0 } else { *column } + u16::from(sample);
                }
            }
            ColumnSums::WeightedByAlpha(columns) if self.channels == 2 => {
                add_weighted_by_alpha::<2>(columns, row, first);
            }
            ColumnSums::WeightedByAlpha(columns) => add_weighted_by_alpha::<4>(columns, row, first),
        }
        self.rows += 1;
        if self.rows == self.factor {
            self.emit(out);
        }
    }

    /// Writes the last band when it has fewer rows than the factor.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.rows > 0 {
            self.emit(out);
        }
    }

    fn emit(&mut self, out: &mut Vec<u8>) {
        let (factor, rows) = (self.factor as usize, self.rows);
        match (&self.columns, self.channels) {
            (ColumnSums::Plain(columns), 1) => emit_blocks::<1, _>(columns, factor, rows, out),
            (ColumnSums::Plain(columns), _) => emit_blocks::<3, _>(columns, factor, rows, out),
            (ColumnSums::WeightedByAlpha(columns), 2) => emit_blocks::<2, _>(columns, factor, rows, out),
            (ColumnSums::WeightedByAlpha(columns), _) => emit_blocks::<4, _>(columns, factor, rows, out),
        }
        self.rows = 0;
    }
}

/// Adds a row of pixels whose last sample is alpha: each colour × alpha, and alpha.
fn add_weighted_by_alpha<const CHANNELS: usize>(columns: &mut [u32], row: &[u8], first: bool) {
    for (sums, pixel) in columns.chunks_exact_mut(CHANNELS).zip(row.chunks_exact(CHANNELS)) {
        let alpha = u32::from(pixel[CHANNELS - 1]);
        if first {
            sums.fill(0);
        }
        for (sum, &sample) in sums.iter_mut().zip(&pixel[..CHANNELS - 1]) {
            *sum += u32::from(sample) * alpha;
        }
        sums[CHANNELS - 1] += alpha;
    }
}

/// Folds a band's column sums into blocks of `factor` columns and writes each block's average.
fn emit_blocks<const CHANNELS: usize, Sum: Copy + Into<u32>>(
    columns: &[Sum],
    factor: usize,
    rows: u32,
    out: &mut Vec<u8>,
) {
    let has_alpha = CHANNELS == 2 || CHANNELS == 4;
    for block in columns.chunks(factor * CHANNELS) {
        let mut sums = [0u32; CHANNELS];
        for pixel in block.chunks_exact(CHANNELS) {
            for (sum, &column) in sums.iter_mut().zip(pixel) {
                *sum += column.into();
            }
        }
        let count = (block.len() / CHANNELS) as u32 * rows;
        if has_alpha {
            let alpha = sums[CHANNELS - 1];
            for sum in &sums[..CHANNELS - 1] {
                // A block that is all clear has no colour: black.
                out.push((sum + alpha / 2).checked_div(alpha).unwrap_or(0) as u8);
            }
            out.push(((alpha + count / 2) / count) as u8);
        } else {
            out.extend(sums.iter().map(|sum| ((sum + count / 2) / count) as u8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_averaged_and_the_edges_have_smaller_blocks() {
        // 5×3 grey, factor 2: blocks of 2×2, 1×2, 2×1 and 1×1.
        let rows: [[u8; 5]; 3] = [[0, 10, 20, 30, 40], [10, 20, 30, 40, 50], [100, 100, 7, 9, 200]];
        let mut shrink = BlockShrink::new(5, 3, 1, 2);
        let mut out = Vec::new();
        for row in &rows {
            shrink.add_row(row, &mut out);
        }
        shrink.finish(&mut out);
        assert_eq!((shrink.width, shrink.height), (3, 2));
        assert_eq!(out, [10, 30, 45, 100, 8, 200]);
    }

    #[test]
    fn every_layout_is_averaged_as_each_block_summed_on_its_own() {
        let (width, height, factor) = (23, 17, 4);
        let mut noise = 0x2545_f491_u32;
        for channels in 1..=4u8 {
            let channels_len = usize::from(channels);
            let rows: Vec<Vec<u8>> = (0..height)
                .map(|_| {
                    (0..width * channels_len)
                        .map(|_| {
                            noise ^= noise << 13;
                            noise ^= noise >> 17;
                            noise ^= noise << 5;
                            noise as u8
                        })
                        .collect()
                })
                .collect();
            let mut shrink = BlockShrink::new(width as u32, height as u32, channels, factor as u32);
            let mut out = Vec::new();
            for row in &rows {
                shrink.add_row(row, &mut out);
            }
            shrink.finish(&mut out);

            let mut expected = Vec::new();
            for band in rows.chunks(factor) {
                for left in (0..width).step_by(factor) {
                    let pixels: Vec<&[u8]> = band
                        .iter()
                        .flat_map(|row| row.chunks_exact(channels_len).skip(left).take(factor))
                        .collect();
                    let count = pixels.len() as u32;
                    let sum = |channel: usize, weighted: bool| -> u32 {
                        pixels
                            .iter()
                            .map(|pixel| {
                                let weight = if weighted { u32::from(pixel[channels_len - 1]) } else { 1 };
                                u32::from(pixel[channel]) * weight
                            })
                            .sum()
                    };
                    if matches!(channels, 2 | 4) {
                        let alpha = sum(channels_len - 1, false);
                        for channel in 0..channels_len - 1 {
                            expected
                                .push((sum(channel, true) + alpha / 2).checked_div(alpha).unwrap_or(0) as u8);
                        }
                        expected.push(((alpha + count / 2) / count) as u8);
                    } else {
                        for channel in 0..channels_len {
                            expected.push(((sum(channel, false) + count / 2) / count) as u8);
                        }
                    }
                }
            }
            assert_eq!((shrink.width, shrink.height), (6, 5));
            assert_eq!(out, expected, "{channels} channels");
        }
    }

    #[test]
    fn a_clear_pixel_lends_no_colour_to_its_block() {
        // Grey + alpha, factor 2: one opaque white pixel beside a clear black one.
        let mut shrink = BlockShrink::new(2, 1, 2, 2);
        let mut out = Vec::new();
        shrink.add_row(&[255, 255, 0, 0], &mut out);
        shrink.finish(&mut out);
        assert_eq!(out, [255, 128]);
    }
}

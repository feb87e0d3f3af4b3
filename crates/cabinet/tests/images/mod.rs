//! Real PNGs of any size for the thumbnail tests, written a row at a time so a test never holds a
//! whole frame: 8- or 16-bit, with or without an EXIF orientation, in blocks of colour that compress
//! the way large flat images do; optionally with a header that says interlaced (decoded whole).
#![allow(dead_code)]

use png::{BitDepth, ColorType, Compression, Encoder};

/// EXIF orientation 6, "rotate 90° clockwise": a little-endian TIFF header with one IFD entry.
pub const EXIF_ROTATE_90: [u8; 26] =
    [0x49, 0x49, 0x2a, 0, 8, 0, 0, 0, 1, 0, 0x12, 0x01, 3, 0, 1, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0];

/// What a generated PNG is.
#[derive(Debug, Clone, Copy)]
pub struct PngSpec {
    pub width: u32,
    pub height: u32,
    pub color: ColorType,
    pub depth: BitDepth,
    /// An eXIf chunk with orientation 6 (the decoder must turn it).
    pub rotated: bool,
    /// A header that says the rows are interlaced (Adam7), which are written in order all the
    /// same: such a PNG is decoded whole, so one too large for the budget is refused from its
    /// header before any row is read.
    pub interlaced_header: bool,
}

impl PngSpec {
    /// Bytes a decoder needs for the whole frame at the PNG's own depth.
    pub fn decoded_bytes(&self) -> u64 {
        let channels = match self.color {
            ColorType::Grayscale => 1,
            ColorType::GrayscaleAlpha => 2,
            ColorType::Rgb => 3,
            _ => 4,
        };
        let sample_bytes = if self.depth == BitDepth::Sixteen { 2 } else { 1 };
        u64::from(self.width) * u64::from(self.height) * channels * sample_bytes
    }

    /// The encoded PNG: 64-pixel blocks of colour that change from block to block.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // The encoder writes the header's interlace flag as it is told and the rows as they come.
        let mut info = png::Info::with_size(self.width, self.height);
        info.interlaced = self.interlaced_header;
        let mut encoder = Encoder::with_info(&mut out, info).expect("a PNG encoder");
        encoder.set_color(self.color);
        encoder.set_depth(self.depth);
        encoder.set_compression(Compression::Fast);
        let mut writer = encoder.write_header().expect("a PNG header");
        if self.rotated {
            writer.write_chunk(png::chunk::eXIf, &EXIF_ROTATE_90).expect("an eXIf chunk");
        }
        let row_bytes = (self.decoded_bytes() / u64::from(self.height)) as usize;
        let mut stream = writer.stream_writer().expect("a PNG stream");
        let mut row = vec![0u8; row_bytes];
        for y in 0..self.height {
            if y % 64 == 0 {
                for (index, byte) in row.iter_mut().enumerate() {
                    let x = (index / (row_bytes / self.width as usize)) as u32;
                    *byte = ((x / 64) * 37 + (y / 64) * 11 + index as u32 % 3 * 80) as u8;
                }
            }
            std::io::Write::write_all(&mut stream, &row).expect("a PNG row");
        }
        stream.finish().expect("the end of the PNG");
        writer.finish().expect("the PNG written");
        out
    }
}

//! The last step of a thumbnail: from an image already shrunk while it was decoded (at most a few
//! times the size asked for) to the size itself, by a SIMD Lanczos-3 convolution.

use fast_image_resize::{FilterType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;

/// The dimensions of a `width`×`height` image whose longest edge is brought down to `size`, the
/// aspect ratio kept; never enlarged.
pub fn fit(width: u32, height: u32, size: u32) -> (u32, u32) {
    if width.max(height) <= size {
        return (width, height);
    }
    let scaled = |edge: u32, longest: u32| {
        ((u64::from(edge) * u64::from(size) + u64::from(longest) / 2) / u64::from(longest)).max(1) as u32
    };
    if width >= height {
        (size, scaled(height, width))
    } else {
        (scaled(width, height), size)
    }
}

/// What resizing a `width`×`height` image of `channels` bytes a pixel to `size` holds besides
/// the source: the premultiplied copy when it has alpha, the vertical pass's `width`×(new height)
/// and the result.
pub fn work_bytes(width: u32, height: u32, channels: u8, size: u32) -> u64 {
    let (new_width, new_height) = fit(width, height, size);
    let pixel = u64::from(channels);
    let premultiplied =
        if channels == 2 || channels == 4 { u64::from(width) * u64::from(height) * pixel } else { 0 };
    premultiplied
        + u64::from(width) * u64::from(new_height) * pixel
        + u64::from(new_width) * u64::from(new_height) * pixel
}

/// `image` (the source shrunk while decoded) resized to `(width, height)`, the source's own
/// dimensions fitted to the size: the shrunk image's edges were rounded up to whole blocks, so
/// its ratio may differ from the source's by a pixel.
pub fn to(image: DynamicImage, (width, height): (u32, u32)) -> DynamicImage {
    if (width, height) == (image.width(), image.height()) {
        return image;
    }
    let mut thumb = DynamicImage::new(width, height, image.color());
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    match Resizer::new().resize(&image, &mut thumb, &options) {
        Ok(()) => thumb,
        // Only a pixel type the resizer lacks gets here (never one the shrinking decoders make).
        Err(_) => image.resize_exact(width, height, image::imageops::FilterType::Triangle),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_edge_becomes_the_size_and_the_ratio_is_kept() {
        assert_eq!(fit(4000, 3000, 256), (256, 192));
        assert_eq!(fit(3000, 4000, 256), (192, 256));
        assert_eq!(fit(600, 300, 256), (256, 128));
        assert_eq!(fit(10_000, 3, 64), (64, 1), "a sliver keeps one row");
        assert_eq!(fit(200, 100, 256), (200, 100), "never enlarged");
    }
}

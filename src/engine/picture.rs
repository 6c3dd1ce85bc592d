//! The pixels of a frame in flight, in whatever form the front keeps them.
//!
//! Why not RGB always: frames spend most of their time in the engine waiting (for a detection
//! worker, for the tracker's look-ahead, for the encoder), and only detection needs them as RGB.
//! A decoded clip frame is YUV 4:2:0, half the bytes of its RGB copy (3.1 against 6.2 MB at
//! 1080p), and with a dozen frames in flight the difference is most of the engine's own memory.
//! A front that has YUV keeps YUV: the detection worker converts a frame to RGB when it takes it,
//! into a buffer that lives only while it detects, and a frame that is not detected (the fast
//! preset's skipped frames) is never converted at all. A front that has RGB (a host's packed
//! buffer, a photo) pushes an [`RgbImage`], which is its own picture at no cost.

use image::RgbImage;

/// A frame's pixels as the engine holds them between push and release.
///
/// ```
/// use bystander::engine::Picture;
/// let frame = image::RgbImage::new(64, 48);
/// let mut red = 0u64;
/// frame.with_rgb(&mut |rgb| red = rgb.pixels().map(|p| u64::from(p[0])).sum());
/// assert_eq!((frame.dimensions(), red), ((64, 48), 0));
/// ```
pub trait Picture: Send + Sync + 'static {
    /// Width and height in pixels.
    fn dimensions(&self) -> (u32, u32);

    /// Calls `f` once with the frame as RGB (converted into a scratch buffer if it is not RGB
    /// already). Detection workers call this from their own threads.
    fn with_rgb(&self, f: &mut dyn FnMut(&RgbImage));
}

impl Picture for RgbImage {
    fn dimensions(&self) -> (u32, u32) {
        RgbImage::dimensions(self)
    }

    fn with_rgb(&self, f: &mut dyn FnMut(&RgbImage)) {
        f(self)
    }
}

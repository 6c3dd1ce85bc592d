//! The pixels of a frame in flight, in whatever form the front keeps them.
//!
//! Why not RGB always: frames spend most of their time in the engine waiting (for a detection
//! worker, for the tracker's look-ahead, for the encoder), and only detection needs them as RGB.
//! A decoded clip frame is YUV 4:2:0, half the bytes of its RGB copy (3.1 against 6.2 MB at
//! 1080p), and with a dozen frames in flight the difference is most of the engine's own memory.
//! A front that has YUV keeps YUV: the detection worker converts a frame to RGB when it takes it,
//! into a buffer that lives only while it detects, and a frame that is not detected (the fast
//! preset's skipped frames) is never converted at all. A front that has RGB (a host's packed
//! buffer, a photo) pushes an [`RgbImage`], which is its own picture at no cost. The engine's own
//! measure of change (the gate, and the tiles a detector may leave for their turn) reads a
//! picture's brightness as it is held ([`Picture::with_luma`]): a YUV frame's luma plane, a packed
//! frame's pixels, never a converted copy.

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
    /// already), of the size [`Picture::dimensions`] gives: a frame whose pixels come in another
    /// size, or never come, is not detected but covered whole. Detection workers call this from
    /// their own threads.
    fn with_rgb(&self, f: &mut dyn FnMut(&RgbImage));

    /// Calls `f` once with the frame's brightness: its luma plane where it has one, else its
    /// RGB ([`Picture::with_rgb`], the default). The engine measures change with it (the gate,
    /// and the tiles a detector may skip), so that a YUV frame is not converted for that. A
    /// picture that does not call `f`, or hands over too few rows for those the engine samples
    /// (every second one), counts as changed everywhere: it is searched whole.
    fn with_luma(&self, f: &mut dyn FnMut(Luma<'_>)) {
        self.with_rgb(&mut |rgb| f(Luma::rgb(rgb)))
    }
}

/// A frame's brightness as a [`Picture`] hands it over ([`Picture::with_luma`]).
///
/// ```
/// use bystander::engine::{Luma, Picture};
/// let frame = image::RgbImage::from_pixel(4, 2, image::Rgb([200, 10, 10]));
/// let mut bytes = 0;
/// frame.with_luma(&mut |luma| {
///     if let Luma::Packed { bytes: b, .. } = luma {
///         bytes = b;
///     }
/// });
/// assert_eq!(bytes, 3);
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub enum Luma<'a> {
    /// Packed pixels, whose luma is computed from their red, green and blue.
    Packed {
        /// The rows.
        data: &'a [u8],
        /// Bytes from the start of one row to the next.
        stride: usize,
        /// Bytes a pixel (3 or 4).
        bytes: usize,
        /// Where red, green and blue sit within a pixel.
        rgb: [usize; 3],
    },
    /// An 8-bit luma plane.
    Plane {
        /// The rows, one byte a pixel.
        data: &'a [u8],
        /// Bytes from the start of one row to the next.
        stride: usize,
        /// Levels 0 to 255; video range (16 to 235) when false.
        full_range: bool,
    },
    /// A 10-bit luma plane, each sample in two bytes, little-endian (FFmpeg's `yuv420p10le`:
    /// what phones record HDR in).
    Plane10 {
        /// The rows, two bytes a pixel.
        data: &'a [u8],
        /// Bytes from the start of one row to the next.
        stride: usize,
        /// Levels 0 to 1023; video range (64 to 940) when false.
        full_range: bool,
    },
}

impl<'a> Luma<'a> {
    /// Calls `f` with the column and the luma (0 to 255, as the samples lie) of every `step`th
    /// pixel of row `y` of a `w`-wide picture, from the first; `None`, without a call, where the
    /// row is missing or the channels lie outside the pixels.
    pub(crate) fn row_samples(
        &self,
        y: usize,
        w: usize,
        step: usize,
        mut f: impl FnMut(usize, u8),
    ) -> Option<()> {
        match *self {
            Luma::Packed {
                data,
                stride,
                bytes,
                rgb: [r, g, b],
            } => {
                if r.max(g).max(b) >= bytes {
                    return None;
                }
                let row = data.get(y * stride..y * stride + w * bytes)?;
                for x in (0..w).step_by(step) {
                    let p = &row[x * bytes..x * bytes + bytes];
                    let at = |i: usize| u32::from(p[i]);
                    f(x, ((77 * at(r) + 150 * at(g) + 29 * at(b)) >> 8) as u8);
                }
            }
            Luma::Plane { data, stride, .. } => {
                let row = data.get(y * stride..y * stride + w)?;
                for x in (0..w).step_by(step) {
                    f(x, row[x]);
                }
            }
            Luma::Plane10 { data, stride, .. } => {
                let row = data.get(y * stride..y * stride + w * 2)?;
                for x in (0..w).step_by(step) {
                    let v = u16::from_le_bytes([row[2 * x], row[2 * x + 1]]);
                    f(x, narrow10(v));
                }
            }
        }
        Some(())
    }

    /// Whether the samples are in video range (16 to 235 as [`Luma::row_samples`] gives them):
    /// a plane that says so; packed pixels are RGB, full range.
    pub(crate) fn video_range(&self) -> bool {
        matches!(
            self,
            Luma::Plane {
                full_range: false,
                ..
            } | Luma::Plane10 {
                full_range: false,
                ..
            }
        )
    }

    /// An RGB image's pixels.
    pub fn rgb(image: &'a RgbImage) -> Luma<'a> {
        Luma::Packed {
            data: image.as_raw(),
            stride: image.width() as usize * 3,
            bytes: 3,
            rgb: [0, 1, 2],
        }
    }
}

/// A 10-bit sample as an 8-bit one, rounded (video range's 64 to 940 lands on 16 to 235).
pub(crate) fn narrow10(v: u16) -> u8 {
    ((u32::from(v) + 2) >> 2).min(255) as u8
}

impl Picture for RgbImage {
    fn dimensions(&self) -> (u32, u32) {
        RgbImage::dimensions(self)
    }

    fn with_rgb(&self, f: &mut dyn FnMut(&RgbImage)) {
        f(self)
    }
}

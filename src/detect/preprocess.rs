//! Turning a region of a frame into a model's input tensor, and model boxes back into frame
//! pixels.
//!
//! Every model family goes through the same two steps: resize a rectangle of the frame (the
//! whole frame, or one tile) with `fast_image_resize` (SIMD; several times faster than `image`'s
//! resize, see `benches/`), then pack the pixels into an NCHW `f32` tensor with the family's
//! channel order, mean and scale. The [`Affine`] returned alongside maps tensor coordinates back
//! to frame coordinates, so decoders never need to know about tiles or letterboxing.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::RgbImage;

use crate::geometry::BBox;

/// An integer rectangle of the frame, in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rect {
    /// Left column.
    pub x: u32,
    /// Top row.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

impl Rect {
    /// The whole of a `w` x `h` frame.
    pub fn full(w: u32, h: u32) -> Rect {
        Rect { x: 0, y: 0, w, h }
    }

    /// Whether the two share a pixel.
    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.x + other.w
            && other.x < self.x + self.w
            && self.y < other.y + other.h
            && other.y < self.y + self.h
    }

    /// This rectangle grown by `margin` pixels on every side, inside a `w` x `h` frame.
    pub fn grown(&self, margin: u32, w: u32, h: u32) -> Rect {
        let (x, y) = (self.x.saturating_sub(margin), self.y.saturating_sub(margin));
        Rect {
            x,
            y,
            w: (self.x + self.w).saturating_add(margin).min(w).max(x) - x,
            h: (self.y + self.h).saturating_add(margin).min(h).max(y) - y,
        }
    }

    /// Replaces overlapping rectangles by their enclosing one until none overlap, so that an
    /// object on the border of two is seen whole in their union.
    pub fn merge_overlapping(mut rects: Vec<Rect>) -> Vec<Rect> {
        let mut i = 0;
        while i < rects.len() {
            let mut merged = false;
            let mut j = i + 1;
            while j < rects.len() {
                if rects[i].overlaps(&rects[j]) {
                    let b = rects.swap_remove(j);
                    rects[i] = rects[i].enclosing(&b);
                    merged = true;
                } else {
                    j += 1;
                }
            }
            if merged {
                i = 0;
            } else {
                i += 1;
            }
        }
        rects
    }

    /// The smallest rectangle holding this one and `other`.
    pub fn enclosing(&self, other: &Rect) -> Rect {
        let (x, y) = (self.x.min(other.x), self.y.min(other.y));
        let x2 = (self.x + self.w).max(other.x + other.w);
        let y2 = (self.y + self.h).max(other.y + other.h);
        Rect {
            x,
            y,
            w: x2 - x,
            h: y2 - y,
        }
    }
}

/// Maps tensor pixels to frame pixels: `frame = tensor * scale + offset`, per axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Affine {
    /// Horizontal scale.
    pub sx: f32,
    /// Vertical scale.
    pub sy: f32,
    /// Horizontal offset.
    pub dx: f32,
    /// Vertical offset.
    pub dy: f32,
}

impl Affine {
    /// A point from tensor to frame pixels.
    pub fn point(&self, x: f32, y: f32) -> [f32; 2] {
        [x * self.sx + self.dx, y * self.sy + self.dy]
    }

    /// A box from tensor to frame pixels.
    pub fn bbox(&self, b: &BBox) -> BBox {
        let [x1, y1] = self.point(b.x1, b.y1);
        let [x2, y2] = self.point(b.x2, b.y2);
        BBox::new(x1, y1, x2, y2)
    }
}

/// Channel order, per-channel mean and scale of a model's input: `value = (pixel - mean) * scale`.
#[derive(Clone, Copy, Debug)]
pub struct Normalize {
    /// `true` feeds channels as B, G, R.
    pub bgr: bool,
    /// Subtracted from each channel, in the model's channel order.
    pub mean: [f32; 3],
    /// Multiplied after the mean is subtracted.
    pub scale: f32,
}

/// Where a region lands inside a fixed-size letterboxed input: `(new_w, new_h, pad_x, pad_y)`.
pub fn letterbox_layout(region: Rect, target_w: u32, target_h: u32) -> (u32, u32, u32, u32) {
    let r = (target_w as f32 / region.w as f32).min(target_h as f32 / region.h as f32);
    let nw = ((region.w as f32 * r).round() as u32).clamp(1, target_w);
    let nh = ((region.h as f32 * r).round() as u32).clamp(1, target_h);
    (nw, nh, (target_w - nw) / 2, (target_h - nh) / 2)
}

/// Rounds `v` to the nearest positive multiple of `m`.
pub fn round_to_multiple(v: f32, m: u32) -> u32 {
    (((v / m as f32).round() as u32).max(1)) * m
}

/// Reusable buffers for building input tensors; one per model session.
pub struct TensorBuilder {
    resizer: Resizer,
    pixels: Vec<u8>,
    /// The packed NCHW tensor of the last [`TensorBuilder::build`].
    pub data: Vec<f32>,
    /// `(width, height)` of the last tensor.
    pub size: (u32, u32),
}

impl Default for TensorBuilder {
    fn default() -> Self {
        TensorBuilder {
            resizer: Resizer::new(),
            pixels: Vec::new(),
            data: Vec::new(),
            size: (0, 0),
        }
    }
}

thread_local! {
    /// The tensor builder of this thread (see [`with_scratch`]).
    static SCRATCH: std::cell::RefCell<TensorBuilder> = std::cell::RefCell::new(TensorBuilder::default());
}

/// Runs `f` with this thread's tensor builder.
///
/// Why one per thread: a thread runs one model at a time, and the builder's buffers (the resized
/// pixels, the `f32` tensor, the resizer's own) are scratch, refilled by every build. Held by
/// each model of each detection worker instead, they were 70 MB at the balanced preset on a 1080p
/// clip (four models, two workers, tensors of 960 x 544 and 640 x 640); one per thread is sized by
/// the largest input that thread builds. A nested call (none today) gets a builder of its own.
pub(crate) fn with_scratch<R>(f: impl FnOnce(&mut TensorBuilder) -> R) -> R {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut builder) => f(&mut builder),
        Err(_) => f(&mut TensorBuilder::default()),
    })
}

impl TensorBuilder {
    /// Resizes `region` of `frame` to `content_w` x `content_h`, places it at `(pad_x, pad_y)` in
    /// a `tensor_w` x `tensor_h` canvas filled with `pad` (a letterbox when they differ), and packs
    /// it normalised into [`TensorBuilder::data`]. Returns the tensor-to-frame mapping.
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        &mut self,
        frame: &RgbImage,
        region: Rect,
        (content_w, content_h): (u32, u32),
        (tensor_w, tensor_h): (u32, u32),
        (pad_x, pad_y): (u32, u32),
        pad: u8,
        norm: Normalize,
    ) -> Affine {
        debug_assert!(pad_x + content_w <= tensor_w && pad_y + content_h <= tensor_h);
        let resized = self.resize(frame, region, content_w, content_h);
        let plane = tensor_w as usize * tensor_h as usize;
        self.data.resize(plane * 3, 0.0);
        self.size = (tensor_w, tensor_h);
        let order = if norm.bgr { [2, 1, 0] } else { [0, 1, 2] };
        let src: &[u8] = match resized {
            Some(()) => &self.pixels,
            None => frame.as_raw(),
        };
        let src_stride = if resized.is_some() {
            content_w as usize
        } else {
            frame.width() as usize
        };
        let (ox, oy) = if resized.is_some() {
            (0, 0)
        } else {
            (region.x as usize, region.y as usize)
        };
        for (c, &src_c) in order.iter().enumerate() {
            let (mean, scale) = (norm.mean[c], norm.scale);
            let padded = (pad as f32 - mean) * scale;
            let out = &mut self.data[c * plane..(c + 1) * plane];
            for ty in 0..tensor_h as usize {
                let row = &mut out[ty * tensor_w as usize..(ty + 1) * tensor_w as usize];
                let sy = ty as isize - pad_y as isize;
                if sy < 0 || sy >= content_h as isize {
                    row.fill(padded);
                    continue;
                }
                let base = ((oy + sy as usize) * src_stride + ox) * 3 + src_c;
                let (left, rest) = row.split_at_mut(pad_x as usize);
                left.fill(padded);
                let (mid, right) = rest.split_at_mut(content_w as usize);
                right.fill(padded);
                for (x, v) in mid.iter_mut().enumerate() {
                    *v = (src[base + x * 3] as f32 - mean) * scale;
                }
            }
        }
        Affine {
            sx: region.w as f32 / content_w as f32,
            sy: region.h as f32 / content_h as f32,
            dx: region.x as f32 - pad_x as f32 * region.w as f32 / content_w as f32,
            dy: region.y as f32 - pad_y as f32 * region.h as f32 / content_h as f32,
        }
    }

    /// Plain resize (no letterbox) of `region` magnified by `scale` (horizontal, vertical), each
    /// side rounded to a multiple of 32 as the stride-32 networks need.
    pub fn build_scaled(
        &mut self,
        frame: &RgbImage,
        region: Rect,
        [sx, sy]: [f32; 2],
        norm: Normalize,
    ) -> Affine {
        let tw = round_to_multiple(region.w as f32 * sx, 32);
        let th = round_to_multiple(region.h as f32 * sy, 32);
        self.build(frame, region, (tw, th), (tw, th), (0, 0), 0, norm)
    }

    /// Resizes the region into `self.pixels`; `None` when no resize is needed (the region is read
    /// straight from the frame, saving a copy).
    fn resize(&mut self, frame: &RgbImage, region: Rect, w: u32, h: u32) -> Option<()> {
        if region.w == w && region.h == h {
            return None;
        }
        self.pixels.resize(w as usize * h as usize * 3, 0);
        let src = ImageRef::new(
            frame.width(),
            frame.height(),
            frame.as_raw(),
            PixelType::U8x3,
        )
        .expect("an RgbImage buffer always holds width*height*3 bytes");
        let mut dst = Image::from_slice_u8(w, h, &mut self.pixels, PixelType::U8x3)
            .expect("buffer was sized to w*h*3 just above");
        let opts = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Bilinear))
            .crop(
                region.x as f64,
                region.y as f64,
                region.w as f64,
                region.h as f64,
            );
        self.resizer
            .resize(&src, &mut dst, &opts)
            .expect("same pixel type on both sides and a crop inside the frame");
        Some(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grown rectangles hold the original, stay inside the frame, and grow by the margin
    /// wherever the frame leaves room; merged ones hold every input and overlap none.
    #[test]
    fn grown_and_merged_rectangles_hold_their_inputs_inside_the_frame() {
        let (w, h) = (300u32, 200u32);
        let mut seed = 7u32;
        let mut next = |n: u32| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (seed >> 8) % n
        };
        for _ in 0..500 {
            let (x, y) = (next(w), next(h));
            let r = Rect {
                x,
                y,
                w: 1 + next(w - x),
                h: 1 + next(h - y),
            };
            let m = next(80);
            let g = r.grown(m, w, h);
            assert!(g.x + g.w <= w && g.y + g.h <= h, "{r:?} grown {m}: {g:?}");
            assert_eq!(g.x, r.x.saturating_sub(m));
            assert_eq!(g.y + g.h, (r.y + r.h + m).min(h));
            assert_eq!(g.enclosing(&r), g);
        }
        for _ in 0..200 {
            let rects: Vec<Rect> = (0..1 + next(8))
                .map(|_| {
                    let (x, y) = (next(w), next(h));
                    Rect {
                        x,
                        y,
                        w: 1 + next(w - x),
                        h: 1 + next(h - y),
                    }
                })
                .collect();
            let merged = Rect::merge_overlapping(rects.clone());
            for r in &rects {
                assert!(merged.iter().any(|m| m.enclosing(r) == *m), "{r:?} lost");
            }
            for (i, a) in merged.iter().enumerate() {
                assert!(merged[i + 1..].iter().all(|b| !a.overlaps(b)));
            }
        }
    }

    #[test]
    fn letterbox_centres_and_maps_back() {
        let region = Rect::full(1280, 720);
        let (nw, nh, px, py) = letterbox_layout(region, 640, 640);
        assert_eq!((nw, nh, px, py), (640, 360, 0, 140));
        let frame = RgbImage::from_pixel(1280, 720, image::Rgb([10, 20, 30]));
        let mut tb = TensorBuilder::default();
        let norm = Normalize {
            bgr: false,
            mean: [0.0; 3],
            scale: 1.0 / 255.0,
        };
        let a = tb.build(&frame, region, (nw, nh), (640, 640), (px, py), 114, norm);
        // The tensor's top-left content pixel is the frame's origin; the far corner maps back too.
        assert_eq!(a.point(0.0, 140.0), [0.0, 0.0]);
        assert_eq!(a.point(640.0, 500.0), [1280.0, 720.0]);
        // Padding rows hold 114/255, content rows the frame's channel values, in RGB order.
        assert!((tb.data[0] - 114.0 / 255.0).abs() < 1e-6);
        let plane = 640 * 640;
        let inside = 300 * 640 + 10;
        assert!((tb.data[inside] - 10.0 / 255.0).abs() < 1e-6);
        assert!((tb.data[2 * plane + inside] - 30.0 / 255.0).abs() < 1e-6);
    }

    #[test]
    fn the_thread_scratch_is_reused_and_a_nested_call_gets_its_own() {
        let frame = RgbImage::from_pixel(64, 32, image::Rgb([10, 20, 30]));
        let norm = Normalize {
            bgr: false,
            mean: [0.0; 3],
            scale: 1.0,
        };
        let whole = Rect::full(64, 32);
        let outer = with_scratch(|tb| {
            tb.build_scaled(&frame, whole, [2.0, 2.0], norm);
            let inner = with_scratch(|nested| {
                nested.build_scaled(&frame, whole, [0.5, 0.5], norm);
                nested.size
            });
            // The nested build went to another builder: this one still holds its own tensor.
            assert_eq!(inner, (32, 32));
            assert_eq!(tb.size, (128, 64));
            assert_eq!(tb.data.len(), 128 * 64 * 3);
            tb.data.as_ptr() as usize
        });
        // The next call on this thread gets the same buffers back, already large enough.
        let again = with_scratch(|tb| {
            tb.build_scaled(&frame, whole, [1.0, 1.0], norm);
            assert_eq!(tb.data[0], 10.0);
            tb.data.as_ptr() as usize
        });
        assert_eq!(outer, again);
    }

    #[test]
    fn plain_resize_of_a_tile_maps_to_frame_pixels() {
        let mut frame = RgbImage::new(200, 100);
        frame.put_pixel(150, 60, image::Rgb([255, 0, 0]));
        let region = Rect {
            x: 100,
            y: 50,
            w: 100,
            h: 50,
        };
        let mut tb = TensorBuilder::default();
        let norm = Normalize {
            bgr: true,
            mean: [104.0, 117.0, 123.0],
            scale: 1.0,
        };
        let a = tb.build(&frame, region, (100, 50), (100, 50), (0, 0), 0, norm);
        assert_eq!(
            a,
            Affine {
                sx: 1.0,
                sy: 1.0,
                dx: 100.0,
                dy: 50.0
            }
        );
        // Unscaled tiles are read straight from the frame; BGR order puts red in channel 2.
        let plane = 100 * 50;
        assert_eq!(tb.data[2 * plane + 10 * 100 + 50], 255.0 - 123.0);
        assert_eq!(tb.data[10 * 100 + 50], -104.0);
        let a = tb.build(&frame, region, (200, 96), (200, 96), (0, 0), 0, norm);
        assert_eq!(
            a.bbox(&BBox::new(0.0, 0.0, 200.0, 96.0)),
            BBox::new(100.0, 50.0, 200.0, 100.0)
        );
    }

    #[test]
    fn multiples_round_to_nearest() {
        assert_eq!(round_to_multiple(832.0, 32), 832);
        assert_eq!(round_to_multiple(468.0, 32), 480);
        assert_eq!(round_to_multiple(3.0, 32), 32);
    }
}

//! YOLOv8 detect head with N classes (the shipped plate model has one).
//!
//! Input `[1, 3, H, W]` RGB / 255, the region letterboxed (aspect kept, centred, padded with 114).
//! Exported YOLOv8 files have a fixed input, 640 x 640; the shipped ones were rewritten to take
//! any size that is a multiple of 32 (`scripts/yolo_any_size.py`), and for them the padding is
//! cut to what rounding up to 32 needs: a 16:9 region scaled to 640 x 360 runs as 640 x 384, not
//! 640 x 640, at 0.6 of the cost and at the same scale, so the same objects at the same size.
//! Output `[1, 4 + N, A]`: for each of A anchors, centre x, centre y, width, height in input pixels,
//! then N class scores (already sigmoid, no objectness). The best class score is the score; every
//! class maps to the model's [`Class`](crate::geometry::Class).

use image::RgbImage;

use super::preprocess::{letterbox_layout, Normalize, Rect, TensorBuilder};
use std::sync::Arc;

use super::{Loaded, ModelRunner, Sessions};
use crate::error::{Error, Result};
use crate::geometry::{BBox, Detection};
use crate::models::ModelData;

/// The input's channel order and scaling (see the module doc).
const NORM: Normalize = Normalize {
    bgr: false,
    mean: [0.0; 3],
    scale: 1.0 / 255.0,
};
const NMS_IOU: f32 = 0.5;
const PAD: u8 = 114;

#[derive(Clone)]
pub(crate) struct Yolo {
    loaded: Loaded,
    /// The fixed input, or for a model that takes any size the most it is given (the size it was
    /// trained at), which sets the scale.
    size: (u32, u32),
    /// Whether the input size is free (symbolic height and width), so padding is kept to the
    /// multiple of [`STRIDE`].
    free: bool,
}

/// The coarsest stride of a YOLOv8 head: a free-size input must be a multiple of it.
const STRIDE: u32 = 32;

/// A region's size once scaled, the input's size, and the padding before the region.
type Layout = ((u32, u32), (u32, u32), (u32, u32));

/// The input of a free-size model for `region` at `scale` (at most `size`, the size the model
/// was trained at), padded to [`STRIDE`] and centred.
fn layout_at(region: Rect, scale: f32, size: (u32, u32)) -> Layout {
    let side = |n: u32, max: u32| ((n as f32 * scale).round() as u32).clamp(1, max.max(1));
    let (nw, nh) = (side(region.w, size.0), side(region.h, size.1));
    let (sw, sh) = (nw.div_ceil(STRIDE) * STRIDE, nh.div_ceil(STRIDE) * STRIDE);
    ((nw, nh), (sw, sh), ((sw - nw) / 2, (sh - nh) / 2))
}

/// The input a region gets: letterboxed into `size`, and for a free-size model only as much of
/// `size` as the scaled region needs, rounded up to [`STRIDE`]. Returns the scaled region's size,
/// the input's size and the padding before the region.
fn input_layout(region: Rect, size: (u32, u32), free: bool) -> Layout {
    let (nw, nh, px, py) = letterbox_layout(region, size.0, size.1);
    if !free {
        return ((nw, nh), size, (px, py));
    }
    let fit = |n: u32, max: u32| {
        n.div_ceil(STRIDE)
            .saturating_mul(STRIDE)
            .clamp(STRIDE, max.max(STRIDE))
    };
    let (sw, sh) = (fit(nw, size.0), fit(nh, size.1));
    (
        (nw, nh),
        (sw, sh),
        ((sw - nw.min(sw)) / 2, (sh - nh.min(sh)) / 2),
    )
}

impl Yolo {
    pub(crate) fn new(model: ModelData, sessions: Arc<Sessions>, threshold: f32) -> Result<Self> {
        let layout = (&[Some(3)][..], "1 output [1, 4 + classes, anchors]");
        let (loaded, (dims, rows)) = Loaded::new(model, sessions, threshold, layout, |session| {
            let dims: Vec<i64> = session.inputs()[0]
                .dtype()
                .tensor_shape()
                .map(|s| s.to_vec())
                .unwrap_or_default();
            let rows = session.outputs()[0]
                .dtype()
                .tensor_shape()
                .and_then(|s| s.get(1).copied())
                .unwrap_or(-1);
            Ok((dims, rows))
        })?;
        // Exported YOLO models have a fixed square input; a free size (symbolic height and width)
        // is fitted to each region, at the scale of the 640 x 640 the shipped ones were trained at.
        let (size, free) = match dims.as_slice() {
            [_, _, h, w] if *h > 0 && *w > 0 => ((*w as u32, *h as u32), false),
            _ => ((640, 640), true),
        };
        if rows != -1 && rows < 5 {
            return Err(Error::model(&loaded.model.path, format!("not a YOLOv8 detect head: output has {rows} rows, expected 4 box rows plus at least one class")));
        }
        Ok(Yolo { loaded, size, free })
    }
}

impl ModelRunner for Yolo {
    fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    fn fixed_input(&self) -> Option<(u32, u32)> {
        Some(self.size)
    }

    fn detect_region(
        &mut self,
        frame: &RgbImage,
        region: Rect,
        _scale: [f32; 2],
    ) -> Result<Vec<Detection>> {
        let layout = input_layout(region, self.size, self.free);
        self.run_layout(frame, region, layout)
    }

    fn input_at(&self, region: Rect, scale: f32) -> Option<(u32, u32)> {
        self.free.then(|| layout_at(region, scale, self.size).1)
    }

    fn detect_region_at(
        &mut self,
        frame: &RgbImage,
        region: Rect,
        scale: f32,
    ) -> Result<Vec<Detection>> {
        if !self.free {
            return self.detect_region(frame, region, [scale, scale]);
        }
        self.run_layout(frame, region, layout_at(region, scale, self.size))
    }
}

impl Yolo {
    /// Runs the model on `region` scaled to `nw` x `nh`, placed at `(px, py)` in an `sw` x `sh`
    /// input.
    fn run_layout(
        &mut self,
        frame: &RgbImage,
        region: Rect,
        ((nw, nh), (sw, sh), (px, py)): Layout,
    ) -> Result<Vec<Detection>> {
        let (model, threshold) = (&self.loaded.model, self.loaded.threshold);
        let build =
            |t: &mut TensorBuilder| t.build(frame, region, (nw, nh), (sw, sh), (px, py), PAD, NORM);
        self.loaded.run(build, |outs, affine, _| {
            let out = outs[0].view();
            let (rows, anchors) = (out.shape()[1], out.shape()[2]);
            if rows < 5 {
                return Err(Error::model(
                    &model.path,
                    format!("output has {rows} rows, expected at least 5"),
                ));
            }
            let mut found = Vec::new();
            for a in 0..anchors {
                let score = (4..rows)
                    .map(|r| out[[0, r, a]])
                    .fold(f32::NEG_INFINITY, f32::max);
                if !(score > threshold) {
                    continue;
                }
                let b = BBox::from_center(
                    out[[0, 0, a]],
                    out[[0, 1, a]],
                    out[[0, 2, a]],
                    out[[0, 3, a]],
                );
                found.push(Detection {
                    class: model.class,
                    score,
                    bbox: affine.bbox(&b),
                    landmarks: Vec::new(),
                });
            }
            Ok(super::nms::nms(found, NMS_IOU))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(w: u32, h: u32) -> Rect {
        Rect { x: 0, y: 0, w, h }
    }

    #[test]
    fn a_wide_frame_is_padded_only_to_the_next_multiple_of_32() {
        let (scaled, input, pad) = input_layout(region(1920, 1080), (640, 640), true);
        assert_eq!((scaled, input, pad), ((640, 360), (640, 384), (0, 12)));
        // A fixed-input model keeps its square.
        let (scaled, input, pad) = input_layout(region(1920, 1080), (640, 640), false);
        assert_eq!((scaled, input, pad), ((640, 360), (640, 640), (0, 140)));
    }

    /// A crop at a whole-frame pass's scale: scaled by that scale (rounded), padded to whole
    /// multiples of 32 by less than 32, centred; never more than the trained input.
    #[test]
    fn a_crop_at_the_frames_scale_is_scaled_by_it_and_padded_to_the_stride() {
        let sizes = (0..40u32).map(|i| 1 + i * i * i % 3840 + i);
        for (fw, fh) in [
            (768, 432),
            (1920, 1080),
            (640, 480),
            (3840, 2160),
            (176, 144),
        ] {
            let scale = 640.0 / fw.max(fh) as f32;
            for w in sizes.clone().map(|w| w.min(fw)) {
                for h in sizes.clone().map(|h| h.min(fh)) {
                    let ((nw, nh), (sw, sh), (px, py)) = layout_at(region(w, h), scale, (640, 640));
                    let want = |n: u32| ((n as f32 * scale).round() as u32).max(1);
                    assert_eq!((nw, nh), (want(w), want(h)), "{w} x {h} of {fw} x {fh}");
                    assert!(sw % STRIDE == 0 && sh % STRIDE == 0 && sw <= 640 && sh <= 640);
                    assert!(sw - nw < STRIDE && sh - nh < STRIDE, "{w} x {h}: padding");
                    assert_eq!(
                        (px, py),
                        ((sw - nw) / 2, (sh - nh) / 2),
                        "{w} x {h}: centred"
                    );
                }
            }
        }
    }

    /// Over regions of every shape from 1 x 1 to 4K, a free-size input scales the region exactly
    /// as the fixed 640 x 640 input does (the same objects at the same size), holds it whole,
    /// centred, in whole multiples of 32, and is never larger than the fixed input.
    #[test]
    fn a_free_size_input_keeps_the_fixed_inputs_scale_on_any_region() {
        let sizes = (0..60u32).map(|i| 1 + i * i * i % 3840 + i);
        for w in sizes.clone() {
            for h in sizes.clone().map(|h| h.min(2160)) {
                let r = region(w, h);
                let (fixed, _, _) = input_layout(r, (640, 640), false);
                let ((nw, nh), (sw, sh), (px, py)) = input_layout(r, (640, 640), true);
                assert_eq!((nw, nh), fixed, "{w} x {h}");
                assert!(
                    sw % STRIDE == 0 && sh % STRIDE == 0,
                    "{w} x {h}: {sw} x {sh}"
                );
                assert!(sw <= 640 && sh <= 640, "{w} x {h}: {sw} x {sh}");
                assert!(nw + px <= sw && nh + py <= sh, "{w} x {h}: region cut");
                assert!(
                    sw - nw < STRIDE && sh - nh < STRIDE,
                    "{w} x {h}: more padding than needed"
                );
                assert!(
                    px == (sw - nw) / 2 && py == (sh - nh) / 2,
                    "{w} x {h}: not centred"
                );
            }
        }
    }
}

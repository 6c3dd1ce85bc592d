//! CenterFace: an anchor-free face detector with a stride-4 heatmap.
//!
//! Input `[1, 3, H, W]` RGB in 0..255 (no mean, no scale), `H` and `W` multiples of 32, plain
//! resize. Outputs, in order: heatmap `[1, 1, H/4, W/4]` (already a sigmoid), scale `[1, 2, ..]`
//! (log height, log width), offset `[1, 2, ..]` (dy, dx) and landmarks `[1, 10, ..]` (five points,
//! y then x, as fractions of the box). A cell over the threshold is one face.

use image::RgbImage;

use super::preprocess::{Normalize, Rect, TensorBuilder};
use std::sync::Arc;

use super::{Loaded, ModelRunner, Sessions};
use crate::error::Result;
use crate::geometry::{BBox, Detection};
use crate::models::ModelData;

/// The input's channel order and scaling (see the module doc).
const NORM: Normalize = Normalize {
    bgr: false,
    mean: [0.0; 3],
    scale: 1.0,
};
const STRIDE: f32 = 4.0;
const NMS_IOU: f32 = 0.3;

#[derive(Clone)]
pub(crate) struct CenterFace {
    loaded: Loaded,
}

impl CenterFace {
    pub(crate) fn new(model: ModelData, sessions: Arc<Sessions>, threshold: f32) -> Result<Self> {
        let layout = (
            &[Some(4), Some(4), Some(4), Some(4)][..],
            "4 outputs (heatmap, scale, offset, landmarks) of rank 4",
        );
        let (loaded, ()) = Loaded::new(model, sessions, threshold, layout, |_| Ok(()))?;
        Ok(CenterFace { loaded })
    }
}

impl ModelRunner for CenterFace {
    fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    fn detect_region(
        &mut self,
        frame: &RgbImage,
        region: Rect,
        scale: [f32; 2],
    ) -> Result<Vec<Detection>> {
        let (model, threshold) = (&self.loaded.model, self.loaded.threshold);
        let build = |t: &mut TensorBuilder| t.build_scaled(frame, region, scale, NORM);
        self.loaded.run(build, |outs, affine, _| {
            let heat = outs[0].view();
            let (size, offset, marks) = (outs[1].view(), outs[2].view(), outs[3].view());
            let (gh, gw) = (heat.shape()[2], heat.shape()[3]);
            let mut found = Vec::new();
            for i in 0..gh {
                for j in 0..gw {
                    let score = heat[[0, 0, i, j]];
                    // `!(>)` also skips NaN.
                    if !(score > threshold) {
                        continue;
                    }
                    let h = size[[0, 0, i, j]].exp() * STRIDE;
                    let w = size[[0, 1, i, j]].exp() * STRIDE;
                    let cy = (i as f32 + offset[[0, 0, i, j]] + 0.5) * STRIDE;
                    let cx = (j as f32 + offset[[0, 1, i, j]] + 0.5) * STRIDE;
                    let b = BBox::from_center(cx, cy, w, h);
                    let landmarks = (0..5)
                        .map(|k| {
                            let ly = b.y1 + marks[[0, 2 * k, i, j]] * h;
                            let lx = b.x1 + marks[[0, 2 * k + 1, i, j]] * w;
                            affine.point(lx, ly)
                        })
                        .collect();
                    found.push(Detection {
                        class: model.class,
                        score,
                        bbox: affine.bbox(&b),
                        landmarks,
                    });
                }
            }
            Ok(super::nms::nms(found, NMS_IOU))
        })
    }
}

//! RetinaFace-style detectors: an SSD head over fixed priors (anchors) at strides 8, 16 and 32.
//!
//! Used by two shipped models that differ only in their prior sizes: RetinaFace mnet0.25 (faces,
//! five landmarks) and the CLP plate detector (plates, four corner points). Input `[1, 3, H, W]`
//! BGR minus (104, 117, 123), any size. Outputs `loc [1, N, 4]`, `conf [1, N, 2]` (softmaxed;
//! the score is column 1) and landmarks `[1, N, 2k]`, told apart by their last dimension.

use image::RgbImage;

use super::preprocess::{Normalize, Rect, TensorBuilder};
use std::sync::Arc;

use super::{Loaded, ModelRunner, Sessions};
use crate::error::{Error, Result};
use crate::geometry::{BBox, Class, Detection};
use crate::models::ModelData;

/// The input's channel order and scaling (see the module doc).
const NORM: Normalize = Normalize {
    bgr: true,
    mean: [104.0, 117.0, 123.0],
    scale: 1.0,
};
const STEPS: [u32; 3] = [8, 16, 32];
const FACE_SIZES: [[f32; 2]; 3] = [[16.0, 32.0], [64.0, 128.0], [256.0, 512.0]];
const PLATE_SIZES: [[f32; 2]; 3] = [[24.0, 48.0], [96.0, 192.0], [384.0, 768.0]];
const VARIANCE: [f32; 2] = [0.1, 0.2];
const NMS_IOU: f32 = 0.4;

/// One prior: centre and size as fractions of the input.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prior {
    /// Centre x / W.
    pub cx: f32,
    /// Centre y / H.
    pub cy: f32,
    /// Width / W.
    pub w: f32,
    /// Height / H.
    pub h: f32,
}

/// The priors for a `w` x `h` input, in the order the network emits them: level by level, then
/// row, then column, then size.
pub fn priors(w: u32, h: u32, sizes: &[[f32; 2]; 3]) -> Vec<Prior> {
    let mut out = Vec::new();
    for (step, level) in STEPS.iter().zip(sizes) {
        let (rows, cols) = (h.div_ceil(*step), w.div_ceil(*step));
        for i in 0..rows {
            for j in 0..cols {
                for m in level {
                    out.push(Prior {
                        cx: (j as f32 + 0.5) * *step as f32 / w as f32,
                        cy: (i as f32 + 0.5) * *step as f32 / h as f32,
                        w: m / w as f32,
                        h: m / h as f32,
                    });
                }
            }
        }
    }
    out
}

/// Decodes one `loc` row against its prior into a box in input pixels.
pub fn decode_box(p: &Prior, loc: [f32; 4], w: u32, h: u32) -> BBox {
    let cx = p.cx + loc[0] * VARIANCE[0] * p.w;
    let cy = p.cy + loc[1] * VARIANCE[0] * p.h;
    let bw = p.w * (loc[2] * VARIANCE[1]).exp();
    let bh = p.h * (loc[3] * VARIANCE[1]).exp();
    BBox::from_center(cx * w as f32, cy * h as f32, bw * w as f32, bh * h as f32)
}

#[derive(Clone)]
pub(crate) struct Retina {
    loaded: Loaded,
    sizes: &'static [[f32; 2]; 3],
    /// Output indices of loc, conf and landmarks.
    outputs: [usize; 3],
    /// Priors of the last input size, kept because consecutive frames share it.
    priors: (u32, u32, Vec<Prior>),
}

impl Retina {
    pub(crate) fn new(model: ModelData, sessions: Arc<Sessions>, threshold: f32) -> Result<Self> {
        let layout = (
            &[Some(3), Some(3), Some(3)][..],
            "3 outputs (loc, conf, landmarks) of rank 3",
        );
        let (loaded, last) = Loaded::new(model, sessions, threshold, layout, |session| {
            Ok(session
                .outputs()
                .iter()
                .map(|o| {
                    o.dtype()
                        .tensor_shape()
                        .and_then(|s| s.last().copied())
                        .unwrap_or(-1)
                })
                .collect::<Vec<i64>>())
        })?;
        let model = &loaded.model;
        let find = |pred: &dyn Fn(i64) -> bool| last.iter().position(|&d| pred(d));
        let outputs = match (find(&|d| d == 4), find(&|d| d == 2), find(&|d| d == 8 || d == 10)) {
            (Some(l), Some(c), Some(m)) => [l, c, m],
            _ => {
                return Err(Error::model(
                    &model.path,
                    format!("not a RetinaFace-style detector: expected outputs whose last dimensions are 4, 2 and 8 or 10, found {last:?}"),
                ))
            }
        };
        let sizes = if model.class == Class::Plate {
            &PLATE_SIZES
        } else {
            &FACE_SIZES
        };
        Ok(Retina {
            loaded,
            sizes,
            outputs,
            priors: (0, 0, Vec::new()),
        })
    }
}

impl ModelRunner for Retina {
    fn loaded(&self) -> &Loaded {
        &self.loaded
    }

    fn detect_region(
        &mut self,
        frame: &RgbImage,
        region: Rect,
        scale: [f32; 2],
    ) -> Result<Vec<Detection>> {
        let (loaded, [li, ci, mi]) = (&self.loaded, self.outputs);
        let (model, threshold) = (&loaded.model, loaded.threshold);
        let (cache, sizes) = (&mut self.priors, self.sizes);
        let build = |t: &mut TensorBuilder| t.build_scaled(frame, region, scale, NORM);
        loaded.run(build, |outs, affine, (tw, th)| {
                if (cache.0, cache.1) != (tw, th) {
                    *cache = (tw, th, priors(tw, th, sizes));
                }
                let priors = &cache.2;
                let (loc, conf, marks) = (outs[li].view(), outs[ci].view(), outs[mi].view());
                if loc.shape()[1] != priors.len()
                    || conf.shape()[1] != priors.len()
                    || marks.shape()[1] != priors.len()
                {
                    return Err(Error::model(
                    &model.path,
                    format!("produced {} boxes for a {tw}x{th} input, but RetinaFace-style priors number {}", loc.shape()[1], priors.len()),
                ));
                }
                let points = marks.shape()[2] / 2;
                let mut found = Vec::new();
                for (n, p) in priors.iter().enumerate() {
                    let score = conf[[0, n, 1]];
                    if !(score > threshold) {
                        continue;
                    }
                    let b = decode_box(
                        p,
                        [
                            loc[[0, n, 0]],
                            loc[[0, n, 1]],
                            loc[[0, n, 2]],
                            loc[[0, n, 3]],
                        ],
                        tw,
                        th,
                    );
                    let landmarks = (0..points)
                        .map(|k| {
                            let x = (p.cx + marks[[0, n, 2 * k]] * VARIANCE[0] * p.w) * tw as f32;
                            let y =
                                (p.cy + marks[[0, n, 2 * k + 1]] * VARIANCE[0] * p.h) * th as f32;
                            affine.point(x, y)
                        })
                        .collect();
                    found.push(Detection {
                        class: model.class,
                        score,
                        bbox: affine.bbox(&b),
                        landmarks,
                    });
                }
                Ok(super::nms::nms(found, NMS_IOU))
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prior_count_and_order_follow_the_network_layout() {
        // 64x32 input: stride 8 -> 4x8 cells, 16 -> 2x4, 32 -> 1x2; two sizes each.
        let p = priors(64, 32, &FACE_SIZES);
        assert_eq!(p.len(), (32 + 8 + 2) * 2);
        // First cell, both sizes, then the next column.
        assert_eq!(
            p[0],
            Prior {
                cx: 4.0 / 64.0,
                cy: 4.0 / 32.0,
                w: 16.0 / 64.0,
                h: 16.0 / 32.0
            }
        );
        assert_eq!(p[1].w, 32.0 / 64.0);
        assert_eq!(p[2].cx, 12.0 / 64.0);
        // First row of stride 8 has 8 columns; the 9th cell starts row 2.
        assert_eq!(p[16].cy, 12.0 / 32.0);
        // Last prior: stride 32, last column, largest size.
        let last = p.last().unwrap();
        assert_eq!((last.cx, last.w), (48.0 / 64.0, 512.0 / 64.0));
        // Odd sizes round the cell count up.
        assert_eq!(
            priors(65, 33, &PLATE_SIZES).len(),
            (9 * 5 + 5 * 3 + 3 * 2) * 2
        );
    }

    #[test]
    fn zero_offsets_decode_to_the_prior_and_offsets_scale_by_variance() {
        let p = Prior {
            cx: 0.5,
            cy: 0.5,
            w: 0.25,
            h: 0.5,
        };
        assert_eq!(
            decode_box(&p, [0.0; 4], 100, 100),
            BBox::new(37.5, 25.0, 62.5, 75.0)
        );
        let b = decode_box(&p, [1.0, 0.0, (2.0f32).ln() / 0.2, 0.0], 100, 100);
        // Centre moves by 0.1 * prior width (2.5 px); width doubles to 50 px.
        assert!(
            (b.x1 - (52.5 - 25.0)).abs() < 1e-4 && (b.x2 - (52.5 + 25.0)).abs() < 1e-4,
            "{b:?}"
        );
    }
}

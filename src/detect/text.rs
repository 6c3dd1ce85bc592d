//! Text detectors of the DBNet kind (differentiable binarization), used to find licence plates
//! with permissively licensed weights only.
//!
//! Why a text detector for plates: a plate is a short line of large characters, and a scene-text
//! detector finds exactly that, at any angle a camera sees it, without weights trained on plates.
//! The plate detectors shipped before it carry an AGPL claim (YOLOv8n) or no licence file
//! upstream (CLP); PaddleOCR's PP-OCRv4 detector, as the Apache-2.0 `rapidocr_onnxruntime` wheel
//! ships it, has neither problem (models/README.md). It also finds other text (shop signs, shirts,
//! road markings): those are masked too, which fails closed, and the masked share is measured
//! (BENCHMARKS.md).
//!
//! Input `[1, 3, H, W]` BGR, `(x / 255 - 0.5) / 0.5`, `H` and `W` multiples of 32, any size. Output
//! one map `[1, 1, H, W]`: the probability that each input pixel is text (already a sigmoid).
//! Decoding follows the DBNet paper's inference: the map is binarized at [`BINARIZE`], each
//! 8-connected region is one text box whose score is the region's mean probability, and the box
//! is grown outward by `area * ratio / perimeter` (the paper's "unclip", here on the region's
//! upright bounding box, which contains the rotated one), because the network is trained to mark a
//! shrunk core of each text line.

use image::RgbImage;

use super::preprocess::{Normalize, Rect, TensorBuilder};
use std::sync::Arc;

use super::{Loaded, ModelRunner, Sessions};
use crate::error::{Error, Result};
use crate::geometry::{BBox, Detection};
use crate::models::ModelData;

/// Probability above which a map pixel is text (DBNet's inference threshold).
pub const BINARIZE: f32 = 0.3;
/// How far a region's box is grown: by `area * UNCLIP / perimeter` on every side, about 1.5 times
/// the height of a long, thin region. DBNet marks a shrunk core of each text line, and reading text
/// grows it back by 1.5-1.6, to the characters. A plate's box also takes the plate's border and the
/// band around its characters, so it needs more. On the dev plates (`bystander eval`, 640-px whole
/// frame) 1.6 covers 219 of 222 (a Python probe), 2.2 covers 220 and 3.0 all 222, at a masked share
/// of 0.049 (the default's YOLOv8n and CLP: 0.055). The misses at the smaller factors are boxes
/// over the characters that leave out a band above them.
pub const UNCLIP: f32 = 3.0;
/// Regions thinner than this many map pixels are noise.
/// The input's channel order and scaling (see the module doc).
const NORM: Normalize = Normalize {
    bgr: true,
    mean: [127.5; 3],
    scale: 2.0 / 255.0,
};
const MIN_SIDE: u32 = 2;

#[derive(Clone)]
pub(crate) struct TextBoxes {
    loaded: Loaded,
}

impl TextBoxes {
    pub(crate) fn new(model: ModelData, sessions: Arc<Sessions>, threshold: f32) -> Result<Self> {
        let layout = (
            &[Some(4)][..],
            "1 output (a text probability map) of rank 4",
        );
        let (loaded, ()) = Loaded::new(model, sessions, threshold, layout, |_| Ok(()))?;
        Ok(TextBoxes { loaded })
    }
}

impl ModelRunner for TextBoxes {
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
        self.loaded.run(build, |outs, affine, (tw, th)| {
                let map = outs[0].view();
                let shape = map.shape();
                if shape[0] != 1
                    || shape[1] != 1
                    || shape[2] != th as usize
                    || shape[3] != tw as usize
                {
                    return Err(Error::model(
                        &model.path,
                        format!(
                            "produced a {shape:?} map for a {tw}x{th} input; a text detector gives [1, 1, {th}, {tw}]"
                        ),
                    ));
                }
                let probs = map.as_standard_layout();
                // Standard layout is contiguous; an error rather than an empty map if it were
                // not, so that a frame is never passed as having no plate by accident.
                let probs = probs.as_slice().ok_or_else(|| {
                    Error::model(&model.path, "gave a probability map that is not contiguous")
                })?;
                Ok(regions(probs, tw as usize, th as usize)
                    .into_iter()
                    .filter(|r| r.score >= threshold)
                    .map(|r| Detection {
                        class: model.class,
                        score: r.score,
                        bbox: affine.bbox(&r.unclipped()),
                        landmarks: Vec::new(),
                    })
                    .collect())
            },
        )
    }
}

/// One 8-connected region of the binarized map: its upright bounding box (map pixels, exclusive
/// right and bottom edges) and its mean probability.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TextRegion {
    /// Left column.
    pub x1: u32,
    /// Top row.
    pub y1: u32,
    /// One past the right column.
    pub x2: u32,
    /// One past the bottom row.
    pub y2: u32,
    /// Mean probability over the region's pixels.
    pub score: f32,
}

impl TextRegion {
    /// The box grown by DBNet's unclip distance, `area * UNCLIP / perimeter`, on every side.
    pub fn unclipped(&self) -> BBox {
        let (w, h) = ((self.x2 - self.x1) as f32, (self.y2 - self.y1) as f32);
        let d = w * h * UNCLIP / (2.0 * (w + h));
        BBox::new(
            self.x1 as f32 - d,
            self.y1 as f32 - d,
            self.x2 as f32 + d,
            self.y2 as f32 + d,
        )
    }
}

/// The 8-connected regions of `probs > BINARIZE` (a `w` x `h` map, row-major), each at least
/// [`MIN_SIDE`] pixels wide and high. A NaN pixel is not text.
pub fn regions(probs: &[f32], w: usize, h: usize) -> Vec<TextRegion> {
    let n = w * h;
    if probs.len() < n {
        return Vec::new();
    }
    let mut seen = vec![false; n];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    for start in 0..n {
        if seen[start] || !(probs[start] > BINARIZE) {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x1, mut y1, mut x2, mut y2) = (w, h, 0, 0);
        let (mut sum, mut count) = (0f64, 0u64);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % w, i / w);
            (x1, y1, x2, y2) = (x1.min(x), y1.min(y), x2.max(x + 1), y2.max(y + 1));
            sum += probs[i] as f64;
            count += 1;
            for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let j = ny * w + nx;
                    if !seen[j] && probs[j] > BINARIZE {
                        seen[j] = true;
                        stack.push(j);
                    }
                }
            }
        }
        if x2 - x1 >= MIN_SIDE as usize && y2 - y1 >= MIN_SIDE as usize {
            out.push(TextRegion {
                x1: x1 as u32,
                y1: y1 as u32,
                x2: x2 as u32,
                y2: y2 as u32,
                score: (sum / count as f64) as f32,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map with the given rectangles (x1, y1, x2, y2, probability) painted on zero.
    fn map(w: usize, h: usize, rects: &[(usize, usize, usize, usize, f32)]) -> Vec<f32> {
        let mut m = vec![0.0; w * h];
        for &(x1, y1, x2, y2, p) in rects {
            for y in y1..y2 {
                for x in x1..x2 {
                    m[y * w + x] = p;
                }
            }
        }
        m
    }

    #[test]
    fn each_connected_region_is_one_box_with_its_mean_score() {
        // Two blobs, one touching the other only diagonally (8-connected: one region), and a
        // third apart; a one-pixel-high line is noise; a NaN pixel is not text.
        let mut m = map(
            40,
            20,
            &[
                (2, 2, 6, 5, 0.9),
                (6, 5, 9, 8, 0.5),
                (20, 10, 30, 14, 0.6),
                (20, 18, 35, 19, 0.9),
            ],
        );
        m[15 * 40 + 15] = f32::NAN;
        let mut r = regions(&m, 40, 20);
        r.sort_by_key(|r| r.x1);
        assert_eq!(r.len(), 2, "{r:?}");
        assert_eq!((r[0].x1, r[0].y1, r[0].x2, r[0].y2), (2, 2, 9, 8));
        let mean = (12.0 * 0.9 + 9.0 * 0.5) / 21.0;
        assert!((r[0].score - mean).abs() < 1e-5, "{}", r[0].score);
        assert_eq!((r[1].x1, r[1].y1, r[1].x2, r[1].y2), (20, 10, 30, 14));
        assert!((r[1].score - 0.6).abs() < 1e-6);
    }

    #[test]
    fn pixels_at_the_threshold_are_not_text_and_short_maps_give_nothing() {
        let m = map(10, 10, &[(1, 1, 8, 8, BINARIZE)]);
        assert!(regions(&m, 10, 10).is_empty());
        assert!(regions(&m[..50], 10, 10).is_empty());
    }

    #[test]
    fn unclip_grows_every_side_by_area_times_ratio_over_perimeter() {
        let r = TextRegion {
            x1: 10,
            y1: 20,
            x2: 30,
            y2: 25,
            score: 0.9,
        };
        let d = 20.0 * 5.0 * UNCLIP / (2.0 * 25.0);
        let b = r.unclipped();
        for (got, want) in [
            (b.x1, 10.0 - d),
            (b.y1, 20.0 - d),
            (b.x2, 30.0 + d),
            (b.y2, 25.0 + d),
        ] {
            assert!((got - want).abs() < 1e-4, "{got} vs {want}");
        }
    }
}

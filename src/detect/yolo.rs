//! YOLOv8 detect head with N classes (the shipped plate model has one).
//!
//! Input `[1, 3, S, S]` RGB / 255, the region letterboxed (aspect kept, centred, padded with 114).
//! Output `[1, 4 + N, A]`: for each of A anchors, centre x, centre y, width, height in input pixels,
//! then N class scores (already sigmoid, no objectness). The best class score is the score; every
//! class maps to the model's [`Class`](crate::geometry::Class).

use image::RgbImage;

use super::preprocess::{letterbox_layout, Normalize, Rect, TensorBuilder};
use std::sync::Arc;

use super::{check_outputs, run_model, ModelRunner, Sessions};
use crate::error::{Error, Result};
use crate::geometry::{BBox, Detection};
use crate::models::ModelData;

const NMS_IOU: f32 = 0.5;
const PAD: u8 = 114;

#[derive(Clone)]
pub(crate) struct Yolo {
    model: ModelData,
    sessions: Arc<Sessions>,
    input: String,
    threshold: f32,
    size: (u32, u32),
}

impl Yolo {
    pub(crate) fn new(model: ModelData, sessions: Arc<Sessions>, threshold: f32) -> Result<Self> {
        let (input, dims, rows) = sessions.describe(|session| {
            check_outputs(
                &model,
                session,
                &[Some(3)],
                "1 output [1, 4 + classes, anchors]",
            )?;
            let input = &session.inputs()[0];
            let dims: Vec<i64> = input
                .dtype()
                .tensor_shape()
                .map(|s| s.to_vec())
                .unwrap_or_default();
            let rows = session.outputs()[0]
                .dtype()
                .tensor_shape()
                .and_then(|s| s.get(1).copied())
                .unwrap_or(-1);
            Ok((input.name().to_string(), dims, rows))
        })?;
        // Exported YOLO models have a fixed square input; symbolic sizes fall back to 640.
        let size = match dims.as_slice() {
            [_, _, h, w] if *h > 0 && *w > 0 => (*w as u32, *h as u32),
            _ => (640, 640),
        };
        if rows != -1 && rows < 5 {
            return Err(Error::model(&model.path, format!("not a YOLOv8 detect head: output has {rows} rows, expected 4 box rows plus at least one class")));
        }
        Ok(Yolo {
            model,
            sessions,
            input,
            threshold,
            size,
        })
    }
}

impl ModelRunner for Yolo {
    fn model(&self) -> &ModelData {
        &self.model
    }

    fn fork(&self) -> Box<dyn ModelRunner> {
        Box::new(self.clone())
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
        let (sw, sh) = self.size;
        let (nw, nh, px, py) = letterbox_layout(region, sw, sh);
        let norm = Normalize {
            bgr: false,
            mean: [0.0; 3],
            scale: 1.0 / 255.0,
        };
        let (model, threshold) = (&self.model, self.threshold);
        let build =
            |t: &mut TensorBuilder| t.build(frame, region, (nw, nh), (sw, sh), (px, py), PAD, norm);
        run_model(
            model,
            &self.sessions,
            &self.input,
            build,
            |outs, affine, _| {
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
            },
        )
    }
}

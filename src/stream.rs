//! Streaming redaction for hosts (NVR and camera software): frames in, redacted frames out.
//!
//! A [`Redactor`] runs on the caller's thread and owns no threads of its own beyond ONNX Runtime's
//! intra-op pool, whose size the host sets in [`DetectConfig::intra_threads`]. Frames come back in
//! order; the latency is exactly the tracker's look-ahead ([`TrackConfig::backfill`] frames),
//! so `backfill: 0` gives live view with no added delay at the cost of no back-fill.
//!
//! Frames can be handed over as `image` buffers, or as a borrowed RGB or BGR slice with a row
//! stride ([`Redactor::redact_in_place`], live view only): the pixels are read once for
//! detection and the redacted areas are written straight back into the host's buffer.
//!
//! Fail closed: if detection fails on a frame, that frame comes back fully covered and
//! [`RedactedFrame::fail_closed`] is set; it is never returned clear.

use std::collections::VecDeque;

use image::RgbImage;

use crate::detect::DetectConfig;
use crate::error::{Error, Result};
use crate::geometry::Detection;
use crate::pipeline::FrameRedactor;
use crate::redact::{self, RedactConfig, Region};
use crate::track::{TrackConfig, Tracker};

/// Channel order of a raw frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PixelLayout {
    /// Bytes R, G, B per pixel.
    Rgb,
    /// Bytes B, G, R per pixel (OpenCV, many camera SDKs).
    Bgr,
}

/// A frame leaving the redactor.
#[derive(Debug)]
pub struct RedactedFrame {
    /// The redacted pixels.
    pub image: RgbImage,
    /// The timestamp it was pushed with.
    pub pts: i64,
    /// What was redacted on it (detections, held and back-filled boxes).
    pub boxes: Vec<Detection>,
    /// The whole frame was covered because detection failed.
    pub fail_closed: bool,
}

struct Pending {
    image: RgbImage,
    pts: i64,
    failed: bool,
}

/// Frames in, redacted frames out, in order, on the caller's thread.
pub struct Redactor {
    frames: FrameRedactor,
    tracker: Tracker,
    pending: VecDeque<Pending>,
    next: usize,
}

impl Redactor {
    /// Builds the detectors. Redaction runs on the caller's thread only.
    pub fn new(detect: &DetectConfig, redact: RedactConfig, track: TrackConfig) -> Result<Self> {
        let mut frames = FrameRedactor::new(detect, redact)?;
        frames.parallel_redact = false;
        Ok(Redactor {
            frames,
            tracker: Tracker::new(track),
            pending: VecDeque::new(),
            next: 0,
        })
    }

    /// Frames between a push and the return of that frame.
    pub fn latency_frames(&self) -> usize {
        self.tracker.config().backfill
    }

    /// Pushes a frame with its timestamp; returns the frames that are ready, oldest first.
    pub fn push(&mut self, image: RgbImage, pts: i64) -> Vec<RedactedFrame> {
        let index = self.next;
        self.next += 1;
        let (detections, failed) = match self.frames.detect_frame(&image, index) {
            Ok(d) => (d, false),
            Err(_) => (Vec::new(), true),
        };
        self.pending.push_back(Pending { image, pts, failed });
        let ready = self.tracker.push(index, Some(detections));
        ready.into_iter().map(|f| self.emit(f.boxes)).collect()
    }

    /// Pushes a borrowed raw frame (`stride` bytes per row, 3 bytes per pixel in `layout`). The
    /// pixels are copied once, since the look-ahead has to hold them.
    pub fn push_raw(
        &mut self,
        data: &[u8],
        width: u32,
        height: u32,
        stride: usize,
        layout: PixelLayout,
        pts: i64,
    ) -> Result<Vec<RedactedFrame>> {
        let image = to_rgb(data, width, height, stride, layout)?;
        Ok(self.push(image, pts))
    }

    /// Live view without a copy back: detects on the borrowed frame and writes the redacted areas
    /// into it. Only for a redactor without look-ahead (`backfill: 0`); returns what was redacted.
    /// If detection fails, the whole buffer is covered and the error is returned.
    pub fn redact_in_place(
        &mut self,
        data: &mut [u8],
        width: u32,
        height: u32,
        stride: usize,
        layout: PixelLayout,
    ) -> Result<Vec<Detection>> {
        if self.latency_frames() != 0 {
            return Err(Error::InvalidSetting {
                name: "backfill",
                value: self.latency_frames().to_string(),
                allowed: "0 for in-place redaction (a look-ahead has to hold frames)",
            });
        }
        let mut rgb = to_rgb(data, width, height, stride, layout)?;
        let index = self.next;
        self.next += 1;
        let detected = self.frames.detect_frame(&rgb, index);
        let failed = detected.is_err();
        let boxes = match self
            .tracker
            .push(index, Some(detected.as_ref().cloned().unwrap_or_default()))
        {
            Some(f) => f.boxes,
            None => Vec::new(),
        };
        let regions = if failed {
            vec![Region::whole_frame(width, height)]
        } else {
            self.frames.config().regions(&boxes, width, height)
        };
        redact::redact(&mut rgb, &regions);
        // Write back only the pixels the regions can have touched.
        let raw = rgb.as_raw();
        for r in &regions {
            let Some((x0, y0, x1, y1)) = r.area.pixel_bounds(width, height) else {
                continue;
            };
            for y in y0 as usize..y1 as usize {
                let src = &raw[(y * width as usize + x0 as usize) * 3
                    ..(y * width as usize + x1 as usize) * 3];
                let dst = &mut data[y * stride + x0 as usize * 3..y * stride + x1 as usize * 3];
                match layout {
                    PixelLayout::Rgb => dst.copy_from_slice(src),
                    PixelLayout::Bgr => {
                        for (d, s) in dst.chunks_exact_mut(3).zip(src.chunks_exact(3)) {
                            d.copy_from_slice(&[s[2], s[1], s[0]]);
                        }
                    }
                }
            }
        }
        detected.map(|_| boxes)
    }

    /// Releases the frames still held for look-ahead (at the end of a stream).
    pub fn finish(&mut self) -> Vec<RedactedFrame> {
        let rest = self.tracker.finish();
        rest.into_iter().map(|f| self.emit(f.boxes)).collect()
    }

    fn emit(&mut self, boxes: Vec<Detection>) -> RedactedFrame {
        let Pending {
            mut image,
            pts,
            failed,
        } = self
            .pending
            .pop_front()
            .expect("the tracker releases only pushed frames");
        if failed {
            let whole = [Region::whole_frame(image.width(), image.height())];
            redact::redact(&mut image, &whole);
        } else {
            self.frames.apply(&mut image, &boxes);
        }
        RedactedFrame {
            image,
            pts,
            boxes,
            fail_closed: failed,
        }
    }
}

fn to_rgb(
    data: &[u8],
    width: u32,
    height: u32,
    stride: usize,
    layout: PixelLayout,
) -> Result<RgbImage> {
    let row = width as usize * 3;
    let needed = if height == 0 {
        0
    } else {
        stride * (height as usize - 1) + row
    };
    if stride < row || data.len() < needed {
        return Err(Error::FrameBuffer {
            width,
            height,
            stride,
            len: data.len(),
        });
    }
    let mut out = Vec::with_capacity(row * height as usize);
    for y in 0..height as usize {
        let src = &data[y * stride..y * stride + row];
        match layout {
            PixelLayout::Rgb => out.extend_from_slice(src),
            PixelLayout::Bgr => out.extend(src.chunks_exact(3).flat_map(|p| [p[2], p[1], p[0]])),
        }
    }
    Ok(RgbImage::from_raw(width, height, out).expect("buffer sized to width*height*3"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_frames_with_stride_and_bgr_are_read_and_short_buffers_refused() {
        // 2x2 BGR with 2 bytes of row padding.
        let data = [1, 2, 3, 4, 5, 6, 0, 0, 7, 8, 9, 10, 11, 12];
        let img = to_rgb(&data, 2, 2, 8, PixelLayout::Bgr).unwrap();
        assert_eq!(img.get_pixel(0, 0).0, [3, 2, 1]);
        assert_eq!(img.get_pixel(1, 1).0, [12, 11, 10]);
        let e = to_rgb(&data[..10], 2, 2, 8, PixelLayout::Rgb).unwrap_err();
        assert!(matches!(e, Error::FrameBuffer { .. }), "{e}");
        assert!(
            to_rgb(&data, 3, 2, 8, PixelLayout::Rgb).is_err(),
            "stride shorter than a row"
        );
    }
}

//! The host API: frames in from an NVR or camera application, redacted frames out, on the
//! [`crate::engine::Engine`] that every front shares.
//!
//! A [`Redactor`] takes a camera's frames in the host's own pixel format ([`PixelFormat`]: RGB,
//! BGR, RGBA, BGRA, I420 or NV12, with strides) and gives each back in that format, in the
//! host's own buffer, with only the redacted rectangles rewritten. Detection runs on a pool of
//! worker threads sized by the thread budget, so consecutive frames are detected in parallel;
//! frames come back in order after the tracker's look-ahead ([`TrackConfig::backfill`]) plus the
//! frames in flight. With `backfill: 0`, [`Redactor::redact_in_place`] redacts a borrowed buffer
//! and returns when it is done (live view).
//!
//! Video presets only: the engine applies the clip plans of the preset (no photo tiles, models
//! taking turns, the fast preset's detect-every-2), so a stream is never run with the photo plan.
//!
//! Fail closed: a frame whose detection fails comes back covered whole with
//! [`RedactedFrame::fault`] saying why; it is never returned clear. Errors that stop the stream
//! (a bad buffer, the worker threads gone) are returned as [`crate::Error`]s, whose
//! [`kind`](crate::Error::kind) tells a setting from a fault at run time.
//!
//! A `Redactor` is `Send` and `Sync`: it can move to the thread that feeds it, and be shared
//! behind a lock; its methods take `&mut self` because a stream's frames are ordered.
//!
//! ```no_run
//! use bystander::frame::{FrameLayout, PixelFormat};
//! use bystander::stream::{Redactor, StreamConfig};
//!
//! let mut cfg = StreamConfig::default(); // balanced video preset, one worker per core
//! cfg.track.backfill = 4; // frames of look-ahead: masks drawn before a face is first found
//! let mut r = Redactor::new(&cfg)?;
//! let layout = FrameLayout::packed(PixelFormat::Bgr24, 1280, 720);
//! for n in 0..100i64 {
//!     let frame = vec![0u8; layout.len()]; // the camera's BGR frame
//!     for out in r.push(frame, layout, n * 40)? {
//!         // out.data: the same frame, redacted; out.boxes, out.regions, out.fault
//!         let _ = (out.pts, out.boxes.len(), out.fault.is_some());
//!     }
//! }
//! for out in r.finish()? { /* the frames still in the look-ahead */ }
//! # Ok::<(), bystander::Error>(())
//! ```

use std::cell::RefCell;

use image::RgbImage;

use crate::engine::{Engine, EngineConfig, Luma, Output, Picture};
use crate::error::{Error, Result};
use crate::frame::{self, FrameLayout};
use crate::geometry::Detection;
use crate::redact::Region;

pub use crate::engine::{EngineConfig as StreamConfig, Fault};
pub use crate::frame::PixelFormat;
pub use crate::track::TrackConfig;

/// A frame leaving the redactor: the host's own buffer, redacted, and what was done to it.
///
/// ```no_run
/// # use bystander::frame::{FrameLayout, PixelFormat};
/// # use bystander::stream::{Redactor, StreamConfig};
/// # let mut r = Redactor::new(&StreamConfig::default())?;
/// # let layout = FrameLayout::packed(PixelFormat::Bgra, 640, 480);
/// for f in r.push(vec![0; layout.len()], layout, 0)? {
///     if let Some(why) = &f.fault {
///         eprintln!("frame {} covered whole: {why}", f.pts); // fail closed, with the cause
///     }
///     let _painted = f.regions.len(); // zones and masks, as drawn
///     let _bgra: Vec<u8> = f.data; // same layout as pushed
/// }
/// # Ok::<(), bystander::Error>(())
/// ```
#[derive(Debug)]
pub struct RedactedFrame {
    /// The frame's bytes, in its own format and layout, redacted.
    pub data: Vec<u8>,
    /// Where its pixels lie (as pushed).
    pub layout: FrameLayout,
    /// The timestamp it was pushed with.
    pub pts: i64,
    /// What was redacted on it: detections, held and back-filled boxes.
    pub boxes: Vec<Detection>,
    /// The areas actually painted (zones, masks; the whole frame for a fault).
    pub regions: Vec<Region>,
    /// Why it was covered whole, if it was.
    pub fault: Option<Fault>,
}

/// What [`Redactor::redact_in_place`] did to a frame.
///
/// ```no_run
/// # use bystander::frame::{FrameLayout, PixelFormat};
/// # use bystander::stream::{Redactor, StreamConfig};
/// let mut cfg = StreamConfig::default();
/// cfg.track.backfill = 0; // in place needs no look-ahead
/// cfg.workers = 1;
/// cfg.intra_threads = 2; // one frame at a time: give its detection the cores
/// let mut r = Redactor::new(&cfg)?;
/// let layout = FrameLayout::packed(PixelFormat::Bgr24, 640, 480);
/// let mut buffer = vec![0u8; layout.len()]; // the live view's frame
/// let done = r.redact_in_place(&mut buffer, &layout)?;
/// println!("{} boxes, fault: {:?}", done.boxes.len(), done.fault);
/// # Ok::<(), bystander::Error>(())
/// ```
#[derive(Debug)]
pub struct FrameResult {
    /// What was redacted.
    pub boxes: Vec<Detection>,
    /// The areas painted.
    pub regions: Vec<Region>,
    /// Why it was covered whole, if it was.
    pub fault: Option<Fault>,
}

/// A host's frame in flight: its own bytes, as pushed. It goes to RGB only on the detection
/// worker that detects it (into a buffer of that thread), and is painted rectangle by rectangle
/// (see [`paint_into`]): a frame in flight costs its own size, not that plus an RGB copy.
#[derive(Clone)]
struct HostFrame {
    data: Vec<u8>,
    layout: FrameLayout,
}

thread_local! {
    /// A detection thread's RGB picture of the host frame it detects.
    static RGB: RefCell<RgbImage> = RefCell::new(RgbImage::new(0, 0));
}

impl Picture for HostFrame {
    fn dimensions(&self) -> (u32, u32) {
        (self.layout.width, self.layout.height)
    }

    fn with_rgb(&self, f: &mut dyn FnMut(&RgbImage)) {
        let (w, h) = self.dimensions();
        RGB.with(|rgb| {
            let mut rgb = rgb.borrow_mut();
            if rgb.dimensions() != (w, h) {
                *rgb = RgbImage::new(w, h);
            }
            // The buffer was checked against its layout when it was pushed; were it refused
            // here, the frame would not be detected and would leave covered whole.
            if frame::read_rects(&self.data, &self.layout, &[(0, 0, w, h)], &mut rgb).is_ok() {
                f(&rgb);
            }
        })
    }

    /// The luma plane of I420 and NV12, the packed pixels of the other formats, as they are:
    /// measuring change (the engine's) converts nothing.
    fn with_luma(&self, f: &mut dyn FnMut(Luma<'_>)) {
        let l = &self.layout;
        let data = self.data.get(l.offsets[0]..).unwrap_or_default();
        let stride = l.strides[0];
        f(match l.format.packed_bytes() {
            Some(bytes) => Luma::Packed {
                data,
                stride,
                bytes,
                rgb: l.format.rgb_order(),
            },
            // In the layout's range, as `frame::yuv` converts it for detection.
            None => Luma::Plane {
                data,
                stride,
                full_range: l.range == frame::Range::Full,
            },
        })
    }
}

/// Frames in, redacted frames out, in order; see the module documentation.
///
/// ```no_run
/// use bystander::frame::{FrameLayout, PixelFormat};
/// use bystander::stream::{Redactor, StreamConfig};
/// // A host that ships its own ONNX Runtime and models.
/// bystander::runtime::use_library(std::path::Path::new("/opt/nvr/lib/libonnxruntime.so.1.31.1"))?;
/// let mut cfg = StreamConfig::default();
/// cfg.detect.model_dir = Some("/opt/nvr/share/bystander/models".into());
/// let mut r = Redactor::new(&cfg)?;
/// let layout = FrameLayout::packed(PixelFormat::I420, 1920, 1080);
/// let ready = r.push(vec![16; layout.len()], layout, 0)?;
/// # let _ = ready;
/// # Ok::<(), bystander::Error>(())
/// ```
pub struct Redactor {
    /// Frames carry their pts.
    engine: Engine<i64, HostFrame>,
    /// RGB for painting, one rectangle at a time: each redacted rectangle is read into it,
    /// painted and written back (see `frame::paint_rects`).
    scratch: Vec<u8>,
}

impl Default for EngineConfig {
    /// The balanced preset on a budget of one thread per core, hold 8 and back-fill 4 frames.
    fn default() -> Self {
        EngineConfig::new(
            crate::detect::DetectConfig::default(),
            crate::redact::RedactConfig::default(),
            crate::cores(),
        )
    }
}

impl Redactor {
    /// Starts the detector pool (every session is built before this returns: a missing model
    /// or runtime is an error here). Starts `cfg.workers` threads; no network, no process.
    pub fn new(cfg: &StreamConfig) -> Result<Redactor> {
        Ok(Redactor {
            engine: Engine::new(cfg)?,
            scratch: Vec::new(),
        })
    }

    /// Frames of look-ahead between a push and the return of that frame (frames in detection add
    /// to it when the host pushes faster than the workers detect).
    pub fn latency_frames(&self) -> usize {
        self.engine.latency_frames()
    }

    /// Pushes a frame (the host's buffer, `layout` describing it) with its timestamp; returns the
    /// frames that are ready, oldest first, in their own buffers. Waits while too many frames are
    /// in flight. A buffer that does not hold `layout` is refused ([`Error::FrameBuffer`]).
    pub fn push(
        &mut self,
        data: Vec<u8>,
        layout: FrameLayout,
        pts: i64,
    ) -> Result<Vec<RedactedFrame>> {
        layout.check(data.len())?;
        let (mut ready, scratch) = (Vec::new(), &mut self.scratch);
        self.engine
            .push(HostFrame { data, layout }, pts, None, &mut |out| {
                collect(out, &mut ready, scratch)
            })?;
        Ok(ready)
    }

    /// [`Redactor::push`] for an `image` buffer: it comes back as packed RGB bytes.
    pub fn push_image(&mut self, image: RgbImage, pts: i64) -> Result<Vec<RedactedFrame>> {
        let layout = FrameLayout::packed(PixelFormat::Rgb24, image.width(), image.height());
        self.push(image.into_raw(), layout, pts)
    }

    /// Live view: detects on the borrowed frame and writes the redacted rectangles into it, in its
    /// own format; returns when done. Only for a redactor without look-ahead (`backfill: 0`). If
    /// detection fails, the whole frame is covered and the result's `fault` says why.
    pub fn redact_in_place(
        &mut self,
        data: &mut [u8],
        layout: &FrameLayout,
    ) -> Result<FrameResult> {
        if self.latency_frames() != 0 {
            return Err(Error::InvalidSetting {
                name: "backfill",
                value: self.latency_frames().to_string(),
                allowed: "0 for in-place redaction (a look-ahead has to hold frames)",
            });
        }
        layout.check(data.len())?;
        // The engine gets a copy to detect on (a borrowed buffer cannot wait in a queue); the
        // borrowed one is painted.
        let copy = HostFrame {
            data: data.to_vec(),
            layout: *layout,
        };
        let mut done = None;
        let mut sink = |out: Output<i64, HostFrame>| {
            done = Some(out);
            Ok(())
        };
        self.engine.push(copy, 0, None, &mut sink)?;
        self.engine.wait(&mut sink)?;
        let out = done.ok_or_else(|| Error::Engine {
            reason: "the frame did not come back".into(),
        })?;
        paint_into(&mut self.scratch, &out.regions, data, layout)?;
        Ok(FrameResult {
            boxes: out.boxes,
            regions: out.regions,
            fault: out.fault,
        })
    }

    /// Releases the frames still held for look-ahead (at the end of a stream).
    pub fn finish(&mut self) -> Result<Vec<RedactedFrame>> {
        let (mut ready, scratch) = (Vec::new(), &mut self.scratch);
        self.engine
            .finish(&mut |out| collect(out, &mut ready, scratch))?;
        Ok(ready)
    }

    /// What the engine counted (frames, detections, fail-closed frames, waits).
    pub fn stats(&self) -> crate::engine::EngineStats {
        self.engine.stats()
    }
}

/// Paints `regions` into the host's bytes, one changed rectangle at a time through `scratch`
/// (see `frame::paint_rects`); nothing else in `data` is touched.
fn paint_into(
    scratch: &mut Vec<u8>,
    regions: &[Region],
    data: &mut [u8],
    layout: &FrameLayout,
) -> Result<()> {
    let mut pixels = frame::HostPixels::new(data, layout)?;
    frame::paint_rects(&mut pixels, regions, scratch, false);
    Ok(())
}

fn collect(
    out: Output<i64, HostFrame>,
    ready: &mut Vec<RedactedFrame>,
    scratch: &mut Vec<u8>,
) -> Result<()> {
    let Output {
        image,
        payload: pts,
        boxes,
        regions,
        fault,
        ..
    } = out;
    let HostFrame { mut data, layout } = image;
    paint_into(scratch, &regions, &mut data, &layout)?;
    ready.push(RedactedFrame {
        data,
        layout,
        pts,
        boxes,
        regions,
        fault,
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORMATS: [PixelFormat; 6] = [
        PixelFormat::Rgb24,
        PixelFormat::Bgr24,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::I420,
        PixelFormat::Nv12,
    ];

    use crate::geometry::BBox;
    use crate::redact::{self, Area, Style};

    /// Painting through rectangles read into a scratch buffer gives the host exactly the bytes
    /// that painting a whole RGB copy and writing the rectangles back gave, in every format, on
    /// generated frames and regions (ellipses and rectangles, each style, partly outside the
    /// frame), with a scratch that holds another frame's pixels.
    #[test]
    fn painting_by_rectangles_equals_painting_the_whole_frame() {
        let mut seed = 0x2545_f491_u32;
        let mut next = move |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed % n
        };
        for case in 0..60 {
            let format = FORMATS[case % FORMATS.len()];
            let (w, h) = (8 + next(90), 8 + next(70));
            let stride =
                format.packed_bytes().map_or(w as usize, |b| w as usize * b) + next(9) as usize;
            let layout = FrameLayout::with_stride(format, w, h, stride);
            let data: Vec<u8> = (0..layout.len()).map(|i| (i * 31 % 251) as u8).collect();
            let regions: Vec<Region> = (0..1 + next(4))
                .map(|_| {
                    let (x, y) = (next(w + 20) as f32 - 10.0, next(h + 20) as f32 - 10.0);
                    let b = BBox::new(x, y, x + 2.0 + next(w) as f32, y + 2.0 + next(h) as f32);
                    Region {
                        area: if next(2) == 0 {
                            Area::Ellipse(b)
                        } else {
                            Area::Rect(b)
                        },
                        style: [Style::Blur, Style::Pixelate, Style::Fill([200, 30, 90])]
                            [next(3) as usize],
                    }
                })
                .collect();
            let mut whole = frame::to_rgb(&data, &layout).unwrap();
            redact::redact(&mut whole, &regions);
            let yuv = matches!(format, PixelFormat::I420 | PixelFormat::Nv12);
            let rects = frame::changed_rects(&regions, w, h, yuv);
            let mut expected = data.clone();
            frame::write_back(&whole, &rects, &mut expected, &layout).unwrap();
            let mut got = data.clone();
            let mut scratch = vec![7u8; 11];
            paint_into(&mut scratch, &regions, &mut got, &layout).unwrap();
            assert!(got == expected, "case {case}: {format:?} {w}x{h}");
        }
    }

    /// The change the engine measures on a host's frame, read from its own bytes (the luma plane
    /// of I420 and NV12, the packed pixels of the rest) without converting it, is what it measures
    /// on the same frame as RGB: exactly for packed formats, to a level for YUV (grey chroma and
    /// video-range luma, so that RGB is not clipped), on generated frames with padded rows.
    #[test]
    fn a_host_frame_measures_the_change_of_its_rgb_without_converting() {
        use crate::engine::gate::LumaCells;
        let mut rng = crate::TestRng::new(5);
        for case in 0..60 {
            let format = FORMATS[case % FORMATS.len()];
            let (w, h) = (2 * (4 + rng.below(60)), 2 * (4 + rng.below(40)));
            let stride = format.packed_bytes().map_or(w as usize, |b| w as usize * b)
                + rng.below(9) as usize;
            let layout = FrameLayout::with_stride(format, w, h, stride);
            let luma_end = layout.offsets[0] + stride * h as usize;
            let data: Vec<u8> = (0..layout.len())
                .map(|i| match format.packed_bytes() {
                    Some(_) => rng.below(256) as u8,
                    // Grey chroma; luma within video range, where RGB is not clipped either.
                    None if i >= luma_end => 128,
                    None => 16 + rng.below(220) as u8,
                })
                .collect();
            let host = LumaCells::of(&HostFrame {
                data: data.clone(),
                layout,
            });
            let rgb = LumaCells::of(&frame::to_rgb(&data, &layout).unwrap());
            let close = if format.packed_bytes().is_some() {
                0
            } else {
                1
            };
            let differs = |a: &LumaCells, b: &LumaCells, by: u8| {
                a.changed_in(b, crate::detect::Rect::full(w, h), by)
            };
            assert!(
                !differs(&host, &rgb, close),
                "case {case}: {format:?} {w}x{h}"
            );
        }
    }

    #[test]
    fn a_redactor_can_move_between_threads_and_be_shared() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Redactor>();
        send_sync::<RedactedFrame>();
    }
}

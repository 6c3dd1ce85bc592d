//! Putting the stages together for one frame or one photo: detect → redact.
//!
//! [`FrameRedactor`] owns one set of ONNX Runtime sessions and redacts frames one at a time; it is
//! what a host embeds. [`Workers`] hands such redactors to parallel jobs so that each thread has
//! its own sessions (rc.15's `Session::run` takes `&mut self`) and sessions are built only once
//! per thread, not once per file.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use image::{DynamicImage, RgbImage};

use crate::detect::{DetectConfig, Detector, DetectorSet};
use crate::error::Result;
use crate::geometry::{Class, Detection};
use crate::image_io;
use crate::models::ModelData;
use crate::redact::{self, RedactConfig, Region};
use crate::review::{Detections, DetectionsWriter, FrameBoxes};

/// Detects and redacts frames with one set of sessions.
pub struct FrameRedactor {
    detector: DetectorSet,
    config: RedactConfig,
    /// Compute redaction patches on rayon's pool (for a host redacting one stream); off when
    /// the caller already runs one redactor per core.
    pub parallel_redact: bool,
}

impl FrameRedactor {
    /// Builds the detectors of `detect` and checks `redact`.
    pub fn new(detect: &DetectConfig, redact: RedactConfig) -> Result<Self> {
        redact.validate()?;
        Ok(FrameRedactor {
            detector: detect.build()?,
            config: redact,
            parallel_redact: true,
        })
    }

    /// The redaction settings.
    pub fn config(&self) -> &RedactConfig {
        &self.config
    }

    /// The model files in use.
    pub fn models(&self) -> Vec<&ModelData> {
        self.detector.models()
    }

    /// Finds objects without changing the frame.
    pub fn detect(&mut self, frame: &RgbImage) -> Result<Vec<Detection>> {
        self.detector.detect(frame)
    }

    /// Finds objects on frame `index` of a sequence, running only the models whose turn it is
    /// when the detection settings interleave them.
    pub fn detect_frame(&mut self, frame: &RgbImage, index: usize) -> Result<Vec<Detection>> {
        self.detector
            .detect_frame_timed(frame, Some(index), &mut [])
    }

    /// Redacts `detections` and the privacy zones in `frame`.
    pub fn apply(&self, frame: &mut RgbImage, detections: &[Detection]) {
        let regions = self
            .config
            .regions(detections, frame.width(), frame.height());
        if self.parallel_redact {
            redact::redact_parallel(frame, &regions);
        } else {
            redact::redact(frame, &regions);
        }
    }

    /// Detects on a host's frame (any [`crate::frame::PixelFormat`], with strides) and redacts
    /// it in its own buffer: only the rectangles of the painted regions are written. Returns the
    /// boxes and the regions painted. Fail closed: when detection fails the whole frame is
    /// covered before the error is returned; a buffer that does not hold `layout` is refused
    /// untouched.
    pub fn redact_buffer(
        &mut self,
        data: &mut [u8],
        layout: &crate::frame::FrameLayout,
    ) -> Result<(Vec<Detection>, Vec<Region>)> {
        use crate::frame::{self, PixelFormat};
        let mut rgb = frame::to_rgb(data, layout)?;
        let (w, h) = (rgb.width(), rgb.height());
        let (found, regions, failed) = match self.detect(&rgb) {
            Ok(found) => {
                let regions = self.config.regions(&found, w, h);
                (found, regions, None)
            }
            Err(e) => (Vec::new(), vec![Region::whole_frame(w, h)], Some(e)),
        };
        if self.parallel_redact {
            redact::redact_parallel(&mut rgb, &regions);
        } else {
            redact::redact(&mut rgb, &regions);
        }
        let yuv = matches!(layout.format, PixelFormat::I420 | PixelFormat::Nv12);
        let rects = frame::changed_rects(&regions, w, h, yuv);
        frame::write_back(&rgb, &rects, data, layout)?;
        match failed {
            Some(e) => Err(e),
            None => Ok((found, regions)),
        }
    }

    /// Detects and redacts in place; returns what was found.
    pub fn process(&mut self, frame: &mut RgbImage) -> Result<Vec<Detection>> {
        let found = self.detect(frame)?;
        self.apply(frame, &found);
        Ok(found)
    }
}

/// What happened to one file.
#[derive(Clone, Debug, serde::Serialize)]
pub struct FileReport {
    /// Objects found and redacted (photos; empty for clips, which report counts only).
    pub detections: Vec<Detection>,
    /// Faces redacted.
    pub faces: usize,
    /// Plates redacted.
    pub plates: usize,
    /// Seconds spent on this file.
    pub seconds: f64,
    /// Frames written (clips only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<usize>,
    /// Frames written fully covered because they were corrupt or detection failed (clips only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_closed_frames: Option<usize>,
}

/// Reads `input` upright, redacts it and writes it to `output` in the same format (JPEG for a
/// HEIF photo), without metadata, its colour space kept in bystander's own profile (see
/// [`crate::image_io::icc`]), atomically. Nothing is written if any step fails.
pub fn redact_image_file(r: &mut FrameRedactor, input: &Path, output: &Path) -> Result<FileReport> {
    redact_image_file_exporting(r, input, output, None, image_io::DEFAULT_MAX_PIXELS)
}

/// [`redact_image_file`], also writing the boxes redacted to the detections file `export` (see
/// [`crate::review`]) when asked, refusing a photo over `max_pixels`.
pub fn redact_image_file_exporting(
    r: &mut FrameRedactor,
    input: &Path,
    output: &Path,
    export: Option<&Path>,
    max_pixels: u64,
) -> Result<FileReport> {
    let start = Instant::now();
    let (mut rgb, kept) = load_upright(input, max_pixels)?;
    let detections = r.process(&mut rgb)?;
    if let Some(path) = export {
        let mut w = DetectionsWriter::create(path, input, rgb.width(), rgb.height())?;
        w.frame(&FrameBoxes::from_detections(0, None, false, &detections))?;
        w.finish()?;
    }
    finish_image(rgb, kept, output, detections, start)
}

/// Redacts `input` with the boxes of a (reviewed) detections file instead of detecting: frame 0
/// of the file, or the whole picture when the file has no frame 0 or marks it whole. A photo
/// over `max_pixels` is refused.
pub fn render_image_file(
    config: &RedactConfig,
    detections: &Detections,
    detections_path: &Path,
    input: &Path,
    output: &Path,
    max_pixels: u64,
) -> Result<FileReport> {
    let start = Instant::now();
    let (mut rgb, kept) = load_upright(input, max_pixels)?;
    detections.check_size(detections_path, rgb.width(), rgb.height())?;
    let frames = detections.by_frame();
    let boxes = match frames.get(&0) {
        Some(f) if !f.whole_frame => f.detections(),
        _ => {
            let whole = [Region::whole_frame(rgb.width(), rgb.height())];
            redact::redact_parallel(&mut rgb, &whole);
            return finish_image(rgb, kept, output, Vec::new(), start).map(|mut r| {
                r.fail_closed_frames = Some(1);
                r
            });
        }
    };
    let regions = config.regions(&boxes, rgb.width(), rgb.height());
    redact::redact_parallel(&mut rgb, &regions);
    finish_image(rgb, kept, output, boxes, start)
}

/// What a photo's copy keeps of it besides the redacted RGB pixels.
struct Kept {
    /// The picture with its alpha channel, where it has one; its RGB is replaced on writing.
    alpha: Option<image::RgbaImage>,
    format: image::ImageFormat,
    icc_profile: Option<Vec<u8>>,
}

fn load_upright(input: &Path, max_pixels: u64) -> Result<(RgbImage, Kept)> {
    let loaded = image_io::load_within(input, max_pixels)?;
    let alpha = loaded
        .image
        .color()
        .has_alpha()
        .then(|| loaded.image.to_rgba8());
    let rgb = loaded.image.to_rgb8();
    let kept = Kept {
        alpha,
        format: loaded.format,
        icc_profile: loaded.icc_profile,
    };
    Ok((rgb, kept))
}

fn finish_image(
    rgb: RgbImage,
    kept: Kept,
    output: &Path,
    detections: Vec<Detection>,
    start: Instant,
) -> Result<FileReport> {
    let out = match kept.alpha {
        Some(mut rgba) => {
            for (dst, src) in rgba.pixels_mut().zip(rgb.pixels()) {
                dst.0[..3].copy_from_slice(&src.0);
            }
            DynamicImage::ImageRgba8(rgba)
        }
        None => DynamicImage::ImageRgb8(rgb),
    };
    image_io::save(&out, kept.format, kept.icc_profile.as_deref(), output)?;
    let count = |c: Class| detections.iter().filter(|d| d.class == c).count();
    Ok(FileReport {
        faces: count(Class::Face),
        plates: count(Class::Plate),
        detections,
        seconds: start.elapsed().as_secs_f64(),
        frames: None,
        fail_closed_frames: None,
    })
}

/// A pool of [`FrameRedactor`]s for parallel jobs: a job takes one (building it on first need)
/// and puts it back when done.
pub struct Workers {
    detect: DetectConfig,
    redact: RedactConfig,
    idle: Mutex<Vec<FrameRedactor>>,
}

impl Workers {
    /// A pool whose redactors use `detect` and `redact`. The first redactor is built now, so a
    /// missing runtime or model is reported once, before any file is touched.
    pub fn new(detect: DetectConfig, redact: RedactConfig) -> Result<Self> {
        let mut first = FrameRedactor::new(&detect, redact.clone())?;
        first.parallel_redact = false;
        Ok(Workers {
            detect,
            redact,
            idle: Mutex::new(vec![first]),
        })
    }

    /// A pool that builds no redactor until a job asks for one; the models are still read and
    /// verified now, so a missing or altered one is reported before any file is touched.
    ///
    /// For a batch of clips only: a clip's engine builds its own detectors (for the clip plan),
    /// so the photo plan's sessions that [`Workers::new`] builds would be made and dropped
    /// unused, which took about 0.15 s of a core before the first clip could start.
    pub fn deferred(detect: DetectConfig, redact: RedactConfig) -> Result<Self> {
        detect.resolve()?;
        Ok(Workers {
            detect,
            redact,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Runs `job` with a redactor of this pool.
    pub fn with<T>(&self, job: impl FnOnce(&mut FrameRedactor) -> Result<T>) -> Result<T> {
        let taken = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut r = match taken {
            Some(r) => r,
            None => {
                let mut r = FrameRedactor::new(&self.detect, self.redact.clone())?;
                r.parallel_redact = false;
                r
            }
        };
        let out = job(&mut r);
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        out
    }

    /// Drops the idle redactors and their ONNX Runtime sessions; a later job builds one again.
    /// The batch calls this when its photos are done: a clip's engine builds its own detectors
    /// (for the clip plan), and would otherwise hold these beside them.
    pub fn release(&self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The settings the redactors are built with.
    pub fn configs(&self) -> (&DetectConfig, &RedactConfig) {
        (&self.detect, &self.redact)
    }
}

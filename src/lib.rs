//! bystander finds faces and licence plates with ONNX detectors and redacts them before footage
//! leaves the device.
//!
//! The data path is visible in the modules:
//!
//! * [`image_io`]: read a photo upright (EXIF orientation), write a copy whole or not at all;
//! * [`detect`]: frame → boxes, with one [`detect::Detector`] trait over three model families
//!   (CenterFace, RetinaFace-style, YOLOv8), tiling and multi-model merging;
//! * [`redact`]: boxes and privacy zones → blurred, pixelated or filled pixels;
//! * [`pipeline`]: the stages joined for one frame ([`pipeline::FrameRedactor`]) and for parallel
//!   jobs;
//! * [`batch`]: folders of photos and clips, one thread budget, a report beside every output,
//!   resumable after an interruption;
//! * [`review`]: the boxes redacted, exported for review and rendered again after editing;
//! * [`eval`]: coverage of labelled boxes by the masks actually applied.
//!
//! Privacy comes first: when detection fails, nothing is written (a frame is never passed through
//! clear), and every setting's default is chosen for recall before speed.
//!
//! ```no_run
//! use bystander::{detect::DetectConfig, pipeline::FrameRedactor, redact::RedactConfig};
//! # fn main() -> bystander::Result<()> {
//! let mut redactor = FrameRedactor::new(&DetectConfig::default(), RedactConfig::default())?;
//! let mut frame = image::open("street.jpg").unwrap().to_rgb8();
//! let found = redactor.process(&mut frame)?;
//! println!("redacted {} objects", found.len());
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]
// `!(score > threshold)` is how this crate says "not above, and NaN counts as not above": a
// model's NaN score is never a detection, a NaN zoom never magnifies. `partial_cmp` would hide that.
#![allow(clippy::neg_cmp_op_on_partial_ord)]

pub mod batch;
pub mod detect;
pub mod engine;
pub mod error;
pub mod eval;
pub mod files;
pub mod frame;
#[cfg(feature = "internals")]
pub mod fuzz;
pub mod geometry;
pub mod image_io;
pub mod models;
pub mod options;
pub mod pipeline;
pub mod redact;
pub mod review;
pub mod runtime;
pub mod stream;
pub mod track;

/// A small deterministic generator for the generated-case tests of several modules.
#[cfg(test)]
pub(crate) struct TestRng(u64);

#[cfg(test)]
impl TestRng {
    pub(crate) fn new(seed: u64) -> TestRng {
        TestRng(seed.max(1))
    }

    /// A number in `0..n` (xorshift64).
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n.max(1))) as u32
    }

    /// A number in `[0, 1]`, in steps of 1/1000.
    pub(crate) fn unit(&mut self) -> f32 {
        self.below(1001) as f32 / 1000.0
    }
}
#[cfg(feature = "video")]
pub mod video;

pub use error::{Error, ErrorKind, Result};

/// Cores of this machine (1 when the system does not say): the default thread budget.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
pub use geometry::{BBox, Class, Detection, Polygon};

//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpus: one
//! function per parser of untrusted input that bystander owns, each also driving what the parsed
//! value feeds (masks drawn on a small frame), so that hostile numbers reach the geometry too.
//!
//! Not a public API: hidden from the docs, and it may change at any time.

use std::path::Path;

use image::RgbImage;

use crate::redact::{self, RedactConfig, Zones};
use crate::review::Detections;

const W: u32 = 64;
const H: u32 = 48;

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A detections file (review workflow): parse, then draw every frame's boxes on a small frame.
pub fn detections(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(d) = Detections::parse(Path::new("fuzz.json"), t) else {
        return;
    };
    let cfg = RedactConfig::default();
    for f in d.frames.iter().take(16) {
        let mut frame = RgbImage::new(W, H);
        let regions = cfg.regions(&f.detections(), W, H);
        redact::redact(&mut frame, &regions);
    }
}

/// A privacy-zone file: parse, then draw the zones on a small frame.
pub fn zones(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(z) = Zones::parse(t, Path::new("fuzz.json")) else {
        return;
    };
    let cfg = RedactConfig {
        zones: z,
        ..RedactConfig::default()
    };
    let mut frame = RgbImage::new(W, H);
    let regions = cfg.regions(&[], W, H);
    redact::redact(&mut frame, &regions);
}

/// An evaluation annotation file (JSONL).
pub fn annotations(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = crate::eval::parse_annotations(t, Path::new("fuzz.jsonl"));
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets` names them.
pub const TARGETS: [(&str, Target); 3] = [
    ("detections", detections),
    ("zones", zones),
    ("annotations", annotations),
];

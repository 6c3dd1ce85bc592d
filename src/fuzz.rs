//! Entry points for the fuzz targets in `fuzz/` and for the test that replays their corpus: one
//! function per parser of untrusted input that bystander owns, each also driving what the parsed
//! value feeds (masks drawn on a small frame), so that hostile numbers reach the geometry too.
//! Where boxes and zones come out, the redacted frame is checked against the privacy property
//! (`assert_covered`): a fuzzer finds not only crashes but leaks.
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

/// A detections file (review workflow): parse, then redact every frame's boxes on a small frame
/// and check that every pixel inside a listed box is covered.
pub fn detections(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(d) = Detections::parse(Path::new("fuzz.json"), t) else {
        return;
    };
    for f in d.frames.iter().take(16) {
        assert_covered(W, H, &f.detections(), &Zones::default());
    }
}

/// A privacy-zone file: parse, then redact the zones on a small frame and check that every pixel
/// inside a zone is covered.
pub fn zones(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let Ok(z) = Zones::parse(t, Path::new("fuzz.json")) else {
        return;
    };
    assert_covered(W, H, &[], &z);
}

/// Reads arbitrary fuzz bytes as numbers, with zeros once they run out.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn byte(&mut self) -> u8 {
        let (&b, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        b
    }

    /// A coordinate along a side of `len` pixels: on the grid, between pixel centres, far out
    /// (±1e12, ±3e38) or any `f32` bit pattern at all (NaN, infinities, subnormals).
    fn coord(&mut self, len: u32) -> f32 {
        let tag = self.byte();
        match tag % 4 {
            0 => f32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()]),
            1 => f32::from(self.byte()) % (len as f32 + 33.0) - 16.0,
            2 => (f32::from(self.byte()) % (len as f32 + 33.0) - 16.0) * 0.37 + 0.5,
            _ => [1e12, -1e12, 3e38, -3e38, f32::MAX, -f32::MAX, 1e38, -1e38][tag as usize / 4 % 8],
        }
    }
}

/// Geometry from raw bytes: boxes of both classes and privacy zones (in pixels or fractions), any
/// `f32` at all, checked with `assert_covered`.
pub fn geometry(data: &[u8]) {
    use crate::geometry::{BBox, Class, Detection, Polygon};
    let mut b = Bytes(data);
    let (w, h) = (1 + u32::from(b.byte()) % 64, 1 + u32::from(b.byte()) % 48);
    let fractional = b.byte() % 2 == 1;
    let mut dets = Vec::new();
    for _ in 0..b.byte() % 6 {
        let class = if b.byte() % 2 == 0 {
            Class::Face
        } else {
            Class::Plate
        };
        let bbox = BBox {
            x1: b.coord(w),
            y1: b.coord(h),
            x2: b.coord(w),
            y2: b.coord(h),
        };
        dets.push(Detection {
            class,
            score: 1.0,
            bbox,
            landmarks: Vec::new(),
        });
    }
    let mut polygons = Vec::new();
    for _ in 0..b.byte() % 4 {
        let n = 3 + b.byte() % 6;
        let (fw, fh) = if fractional { (1, 1) } else { (w, h) };
        let points = (0..n)
            .map(|_| {
                let (x, y) = (b.coord(fw), b.coord(fh));
                if fractional {
                    // Grid coordinates as fractions of the frame; far ones stay far.
                    [x / 16.0, y / 16.0]
                } else {
                    [x, y]
                }
            })
            .collect();
        polygons.push(Polygon { points });
    }
    let zone_file = serde_json::json!({
        "units": if fractional { "fraction" } else { "pixels" },
        "zones": polygons.iter().map(|p| &p.points).collect::<Vec<_>>(),
    });
    // Through the zone parser, as a file would come: it refuses non-finite numbers (JSON has
    // none), so a NaN zone never gets this far.
    let zones = Zones::parse(&zone_file.to_string(), Path::new("fuzz.json")).unwrap_or_default();
    assert_covered(w, h, &dets, &zones);
}

/// Redacts `dets` and `zones` with the `fill` style on a black `w` x `h` frame and asserts the
/// property no input may break: every pixel whose centre lies inside a listed box or inside a
/// zone (nonzero rule) carries the fill colour; a box with a NaN coordinate covers the whole
/// frame. The inside is decided here by independent arithmetic (point in box, winding number),
/// not by the redactor's spans.
fn assert_covered(w: u32, h: u32, dets: &[crate::geometry::Detection], zones: &Zones) {
    const FILL: [u8; 3] = [255, 0, 255];
    let mut cfg = RedactConfig {
        zones: zones.clone(),
        ..RedactConfig::default()
    };
    cfg.set_style(redact::Style::Fill(FILL));
    let mut frame = RgbImage::new(w, h);
    redact::redact(&mut frame, &cfg.regions(dets, w, h));

    let covered = |x: u32, y: u32| frame.get_pixel(x, y).0 == FILL;
    let all_covered = || (0..h).all(|y| (0..w).all(|x| covered(x, y)));
    for d in dets {
        let bb = d.bbox;
        if [bb.x1, bb.y1, bb.x2, bb.y2].iter().any(|v| v.is_nan()) {
            assert!(all_covered(), "a NaN box covers the frame: {bb:?}");
            continue;
        }
        for y in 0..h {
            for x in 0..w {
                let (cx, cy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
                let inside = f64::from(bb.x1) <= cx
                    && cx < f64::from(bb.x2)
                    && f64::from(bb.y1) <= cy
                    && cy < f64::from(bb.y2);
                assert!(
                    !inside || covered(x, y),
                    "({x},{y}) inside {bb:?} left clear"
                );
            }
        }
    }
    let (sx, sy) = if zones.is_fractional() {
        (f64::from(w), f64::from(h))
    } else {
        (1.0, 1.0)
    };
    for p in zones.as_given() {
        let pts: Vec<[f64; 2]> = p
            .points
            .iter()
            .map(|&[x, y]| [f64::from(x) * sx, f64::from(y) * sy])
            .collect();
        let far = pts.iter().flatten().any(|v| v.abs() > redact::zones::FAR);
        for y in 0..h {
            for x in 0..w {
                let c = [f64::from(x) + 0.5, f64::from(y) + 0.5];
                let inside = if far {
                    // Covered as the bounding box, which holds the whole zone (half-open, like
                    // every shape: a centre on the far side is outside).
                    let within = |i: usize| {
                        pts.iter().any(|p| p[i] <= c[i]) && pts.iter().any(|p| p[i] > c[i])
                    };
                    within(0) && within(1)
                } else {
                    winding(&pts, c) != 0 && !near_an_edge(&pts, c)
                };
                assert!(
                    !inside || covered(x, y),
                    "({x},{y}) inside zone {pts:?} left clear"
                );
            }
        }
    }
}

/// The winding number of `outline` about `p` (crossings of the ray to the right, signed by
/// which side of each edge `p` lies).
fn winding(outline: &[[f64; 2]], p: [f64; 2]) -> i32 {
    let mut wn = 0;
    for (i, a) in outline.iter().enumerate() {
        let b = outline[(i + 1) % outline.len()];
        let side = (b[0] - a[0]) * (p[1] - a[1]) - (p[0] - a[0]) * (b[1] - a[1]);
        if a[1] <= p[1] && b[1] > p[1] && side > 0.0 {
            wn += 1;
        } else if a[1] > p[1] && b[1] <= p[1] && side < 0.0 {
            wn -= 1;
        }
    }
    wn
}

/// Whether `p` lies within a thousandth of a pixel of an edge, where which side it is on is a
/// matter of rounding.
fn near_an_edge(outline: &[[f64; 2]], p: [f64; 2]) -> bool {
    outline.iter().enumerate().any(|(i, a)| {
        let b = outline[(i + 1) % outline.len()];
        let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
        let len2 = dx * dx + dy * dy;
        let t = if len2 > 0.0 {
            (((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / len2).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let (qx, qy) = (a[0] + t * dx - p[0], a[1] + t * dy - p[1]);
        (qx * qx + qy * qy).sqrt() < 1e-3
    })
}

/// An evaluation annotation file (JSONL).
pub fn annotations(data: &[u8]) {
    let Some(t) = text(data) else { return };
    let _ = crate::eval::parse_annotations(t, Path::new("fuzz.jsonl"));
}

/// A fuzz entry point.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets` names them.
pub const TARGETS: [(&str, Target); 4] = [
    ("detections", detections),
    ("zones", zones),
    ("annotations", annotations),
    ("geometry", geometry),
];

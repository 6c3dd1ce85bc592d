//! Redaction: painting detections and privacy zones out of a frame.
//!
//! The redactor is deliberately simple and deterministic. Every region's replacement patch is
//! computed from the *original* frame (so overlapping regions never blur already-blurred pixels
//! and the order of computation cannot matter), then the patches are pasted in order along the
//! region's mask rows (`mask`). [`redact`] computes the patches one after another,
//! [`redact_parallel`] with rayon; the results are identical, which a test checks.

pub mod filters;
pub mod mask;
pub mod zones;

use image::RgbImage;
use rayon::prelude::*;

use crate::error::Error;
use crate::geometry::{Class, Detection, Polygon};
pub use mask::{Area, CoverageMask};
pub use zones::Zones;

/// How a region's pixels are replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// Grid-average then heavy smoothing, scaled to the object (see `filters`).
    Blur,
    /// Uniform blocks about an eighth of the object wide.
    Pixelate,
    /// A solid colour.
    Fill([u8; 3]),
}

impl std::str::FromStr for Style {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "blur" => Ok(Style::Blur),
            "pixelate" => Ok(Style::Pixelate),
            "fill" => Ok(Style::Fill([0, 0, 0])),
            _ => Err(Error::InvalidSetting {
                name: "style",
                value: s.to_string(),
                allowed: "one of blur, pixelate, fill",
            }),
        }
    }
}

/// Parses `RRGGBB` (with or without a leading `#`).
pub fn parse_color(s: &str) -> Result<[u8; 3], Error> {
    let hex = s.strip_prefix('#').unwrap_or(s);
    let bad = || Error::InvalidSetting {
        name: "colour",
        value: s.to_string(),
        allowed: "six hex digits RRGGBB, e.g. 000000",
    };
    if hex.len() != 6 || !hex.is_ascii() {
        return Err(bad());
    }
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|_| bad());
    Ok([byte(0)?, byte(2)?, byte(4)?])
}

/// The mask shape drawn around a detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Shape {
    /// The ellipse inscribed in the (scaled) box.
    Ellipse,
    /// The (scaled) box.
    Rect,
}

/// How one class is redacted.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct ClassStyle {
    /// Pixel replacement.
    pub style: Style,
    /// Mask shape.
    pub shape: Shape,
    /// Factor the detected box is grown by about its centre before masking (1.0 to 4.0).
    pub mask_scale: f32,
}

/// Everything that decides how a frame is redacted.
#[derive(Clone, Debug, serde::Serialize)]
pub struct RedactConfig {
    /// Faces: blurred ellipses inscribed in the box grown 1.7×. Detectors' face boxes are
    /// tighter than the hair-to-chin extent a person is recognised by, and an ellipse inscribed
    /// in a box leaves its corners out: the ellipse of a 1.7× box contains the whole detected box
    /// grown 1.2× (1.7 ≈ 1.2·√2), the same margin plates get.
    pub face: ClassStyle,
    /// Plates: blurred rectangles grown 1.2× (plates are rectangles; an ellipse leaves the
    /// corner characters readable).
    pub plate: ClassStyle,
    /// Privacy zones, always redacted.
    #[serde(skip)]
    pub zones: Zones,
    /// Style of the zones.
    pub zone_style: Style,
}

impl Default for RedactConfig {
    fn default() -> Self {
        RedactConfig {
            face: ClassStyle {
                style: Style::Blur,
                shape: Shape::Ellipse,
                mask_scale: 1.7,
            },
            plate: ClassStyle {
                style: Style::Blur,
                shape: Shape::Rect,
                mask_scale: 1.2,
            },
            zones: Zones::default(),
            zone_style: Style::Blur,
        }
    }
}

/// One area of the frame and how to replace it.
#[derive(Clone, Debug, PartialEq)]
pub struct Region {
    /// Which pixels.
    pub area: Area,
    /// With what.
    pub style: Style,
}

impl Region {
    /// The whole `w` x `h` frame filled black: what a fail-closed frame becomes.
    pub fn whole_frame(w: u32, h: u32) -> Region {
        Region {
            area: Area::Rect(crate::geometry::BBox::new(0.0, 0.0, w as f32, h as f32)),
            style: Style::Fill([0, 0, 0]),
        }
    }
}

impl RedactConfig {
    /// The style of a class.
    pub fn class_style(&self, class: Class) -> &ClassStyle {
        match class {
            Class::Face => &self.face,
            Class::Plate => &self.plate,
        }
    }

    /// Sets the same style on every class and on the zones.
    pub fn set_style(&mut self, style: Style) {
        self.face.style = style;
        self.plate.style = style;
        self.zone_style = style;
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), Error> {
        for cs in [&self.face, &self.plate] {
            if !(1.0..=4.0).contains(&cs.mask_scale) {
                return Err(Error::InvalidSetting {
                    name: "mask scale",
                    value: cs.mask_scale.to_string(),
                    allowed: "a factor from 1.0 to 4.0",
                });
            }
        }
        Ok(())
    }

    /// The regions to redact in a `w` x `h` frame: zones first, then detections.
    pub fn regions(&self, detections: &[Detection], w: u32, h: u32) -> Vec<Region> {
        let mut out: Vec<Region> = self
            .zones
            .polygons(w, h)
            .into_iter()
            .map(|p: Polygon| Region {
                area: Area::Polygon(p),
                style: self.zone_style,
            })
            .collect();
        out.extend(detections.iter().map(|d| {
            let cs = self.class_style(d.class);
            let b = d.bbox.scaled(cs.mask_scale);
            let area = match cs.shape {
                Shape::Ellipse => Area::Ellipse(b),
                Shape::Rect => Area::Rect(b),
            };
            Region {
                area,
                style: cs.style,
            }
        }));
        out
    }
}

/// A region's replacement pixels over its bounding rectangle.
pub(crate) struct Patch {
    bounds: mask::PixelBounds,
    pixels: Vec<u8>,
}

fn compute_patch(img: &RgbImage, region: &Region) -> Option<Patch> {
    let (w, raw) = (img.width() as usize, img.as_raw());
    patch_with(region, img.dimensions(), |(x0, y0, x1, y1), buf| {
        let pw = (x1 - x0) as usize * 3;
        for y in y0..y1 {
            let start = (y as usize * w + x0 as usize) * 3;
            buf.extend_from_slice(&raw[start..start + pw]);
        }
    })
}

/// The patch of `region` in a `w` x `h` frame, where `read` appends the frame's RGB pixels of a
/// rectangle (in the frame's coordinates) to a buffer, row after row. A fill reads nothing.
pub(crate) fn patch_with(
    region: &Region,
    (w, h): (u32, u32),
    read: impl FnOnce(mask::PixelBounds, &mut Vec<u8>),
) -> Option<Patch> {
    let bounds @ (x0, y0, x1, y1) = region.area.pixel_bounds(w, h)?;
    let (pw, ph) = ((x1 - x0) as usize, (y1 - y0) as usize);
    let size = pw.max(ph) as f32;
    let mut pixels = match region.style {
        Style::Fill(c) => c.repeat(pw * ph),
        Style::Blur | Style::Pixelate => {
            let mut buf = Vec::with_capacity(pw * ph * 3);
            read(bounds, &mut buf);
            buf
        }
    };
    match region.style {
        Style::Blur => filters::strong_blur(&mut pixels, pw, ph, size),
        Style::Pixelate => filters::pixelate(&mut pixels, pw, ph, filters::pixelate_block(size)),
        Style::Fill(_) => {}
    }
    Some(Patch { bounds, pixels })
}

fn paste(img: &mut RgbImage, regions: &[Region], patches: Vec<Option<Patch>>) {
    let (w, h) = img.dimensions();
    paste_within(img, (0, 0, w, h), (w, h), regions, &patches, None);
}

/// Pastes `patches` (those of `regions`, in order) over the part of a `w` x `h` frame inside
/// `window`, held row-packed in `buf` (the window's width a row): only the pixels of the window
/// are written, each as [`redact`] writes it in the whole frame. Each run of a row written is
/// added to `covered` as (row, first column, end column), when given.
pub(crate) fn paste_within(
    buf: &mut [u8],
    window: mask::PixelBounds,
    (w, h): (u32, u32),
    regions: &[Region],
    patches: &[Option<Patch>],
    mut covered: Option<&mut Vec<(u32, u32, u32)>>,
) {
    let (wx0, wy0, wx1, wy1) = window;
    let stride = (wx1 - wx0) as usize * 3;
    let (mut scratch, mut runs) = (mask::Scratch::default(), Vec::new());
    for (region, patch) in regions.iter().zip(patches) {
        let Some(Patch {
            bounds: (x0, y0, x1, y1),
            pixels,
        }) = patch
        else {
            continue;
        };
        let (x0, y0, x1, y1) = (*x0, *y0, *x1, *y1);
        let pw = (x1 - x0) as usize;
        for y in y0.max(wy0)..y1.min(wy1) {
            runs.clear();
            region.area.row_spans(y, (w, h), &mut scratch, &mut runs);
            for &(s, e) in &runs {
                let (s, e) = (s.max(x0).max(wx0), e.min(x1).min(wx1));
                if s >= e {
                    continue;
                }
                let src = ((y - y0) as usize * pw + (s - x0) as usize) * 3;
                let dst = (y - wy0) as usize * stride + (s - wx0) as usize * 3;
                let n = (e - s) as usize * 3;
                buf[dst..dst + n].copy_from_slice(&pixels[src..src + n]);
                if let Some(c) = covered.as_deref_mut() {
                    c.push((y, s, e));
                }
            }
        }
    }
}

/// Redacts `regions` in place, one region after another.
pub fn redact(img: &mut RgbImage, regions: &[Region]) {
    let patches = regions.iter().map(|r| compute_patch(img, r)).collect();
    paste(img, regions, patches);
}

/// Redacts `regions` in place, computing the patches in parallel on rayon's pool. The result is
/// identical to [`redact`].
pub fn redact_parallel(img: &mut RgbImage, regions: &[Region]) {
    let patches = regions.par_iter().map(|r| compute_patch(img, r)).collect();
    paste(img, regions, patches);
}

/// The pixels `regions` cover in a `w` x `h` frame (what `bystander eval` measures).
pub fn coverage(regions: &[Region], w: u32, h: u32) -> CoverageMask {
    let mut m = CoverageMask::new(w, h);
    for r in regions {
        m.add(&r.area);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    fn noisy(w: u32, h: u32) -> RgbImage {
        let mut s = 12345u32;
        RgbImage::from_fn(w, h, |_, _| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            image::Rgb([(s >> 24) as u8, (s >> 16) as u8, (s >> 8) as u8])
        })
    }

    fn det(class: Class, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        Detection {
            class,
            score: 0.9,
            bbox: BBox::new(x1, y1, x2, y2),
            landmarks: vec![],
        }
    }

    #[test]
    fn serial_and_parallel_results_are_equal() {
        let img = noisy(320, 240);
        let mut cfg = RedactConfig {
            zones: Zones::pixels(vec![Polygon {
                points: vec![[0.0, 200.0], [100.0, 190.0], [60.0, 240.0]],
            }]),
            ..RedactConfig::default()
        };
        let dets: Vec<Detection> = (0..40)
            .map(|i| {
                let x = (i * 37 % 300) as f32;
                let y = (i * 53 % 220) as f32;
                det(
                    if i % 3 == 0 {
                        Class::Plate
                    } else {
                        Class::Face
                    },
                    x,
                    y,
                    x + 10.0 + i as f32,
                    y + 12.0 + i as f32,
                )
            })
            .collect();
        for style in [Style::Blur, Style::Pixelate, Style::Fill([1, 2, 3])] {
            cfg.set_style(style);
            let regions = cfg.regions(&dets, 320, 240);
            let (mut a, mut b) = (img.clone(), img.clone());
            redact(&mut a, &regions);
            redact_parallel(&mut b, &regions);
            assert!(a == b, "{style:?}");
            assert!(a != img);
        }
    }

    #[test]
    fn only_masked_pixels_change_and_all_masked_pixels_are_replaced() {
        let img = noisy(200, 100);
        let mut cfg = RedactConfig::default();
        cfg.set_style(Style::Fill([255, 0, 255]));
        let regions = cfg.regions(&[det(Class::Face, 50.0, 20.0, 90.0, 70.0)], 200, 100);
        let mut out = img.clone();
        redact(&mut out, &regions);
        let m = coverage(&regions, 200, 100);
        for (x, y, p) in out.enumerate_pixels() {
            if m.get(x, y) {
                assert_eq!(p.0, [255, 0, 255]);
            } else {
                assert_eq!(p, img.get_pixel(x, y));
            }
        }
        // Mask scale 1.7 grows the 40x50 box to 68x85 about its centre (x 36..104); the ellipse
        // holds the box's own corner (50, 20) but not the grown box's corner.
        assert!(m.get(70, 45) && m.get(37, 45) && !m.get(35, 45));
        assert!(m.get(50, 20) && !m.get(37, 4));
    }

    #[test]
    fn blur_leaves_no_trace_of_fine_detail() {
        // Text-like high-contrast stripes inside a plate box must be gone after blurring.
        let mut img = RgbImage::from_pixel(200, 100, image::Rgb([128, 128, 128]));
        for x in (60..140).step_by(4) {
            for y in 40..60 {
                img.put_pixel(x, y, image::Rgb([0, 0, 0]));
                img.put_pixel(x + 1, y, image::Rgb([255, 255, 255]));
            }
        }
        let cfg = RedactConfig::default();
        let regions = cfg.regions(&[det(Class::Plate, 60.0, 40.0, 140.0, 60.0)], 200, 100);
        redact(&mut img, &regions);
        for x in 62..138 {
            let (a, b) = (
                img.get_pixel(x, 50).0[0] as i32,
                img.get_pixel(x + 1, 50).0[0] as i32,
            );
            assert!(
                (a - b).abs() <= 6,
                "stripe contrast left at x={x}: {a} vs {b}"
            );
        }
    }

    #[test]
    fn colours_and_styles_parse() {
        assert_eq!(parse_color("#ff8000").unwrap(), [255, 128, 0]);
        assert!(parse_color("ff80").is_err());
        assert!(parse_color("gg0000").is_err());
        assert_eq!("pixelate".parse::<Style>().unwrap(), Style::Pixelate);
        assert!("smudge".parse::<Style>().is_err());
        let mut cfg = RedactConfig::default();
        cfg.face.mask_scale = 0.5;
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("1.0 to 4.0"));
    }
}

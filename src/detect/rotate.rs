//! Rotated passes: the frame searched again rotated in the picture plane, for faces that are not
//! upright.
//!
//! The face models learnt mostly upright faces. On the WIDER dev photos rotated about their
//! middle (`scripts/rolled_faces.py`), the balanced photo plan covers 0.974 of the faces at least
//! 20 px high upright, 0.852 rotated 30 degrees, 0.690 at 90 and 0.438 upside down. Cameras
//! show such faces: a ceiling-mounted fisheye (the 360-degree cameras NVRs sell) sees every face
//! pointing at the middle of its circle, so at every angle at once; a camera mounted upside down
//! without its flip set shows every face upside down; people lying down show theirs sideways. A
//! face at any angle is within half a step of one of `n` rotations of `360 / n` degrees, and the
//! models, which handle some roll, see it near upright there.
//!
//! Quarter turns are exact (pixels moved, not resampled) and the boxes come back exactly; other
//! angles are resampled bilinearly onto a canvas that holds the whole rotated frame (grey outside
//! it), and a box found there comes back as the bounding box of the ellipse inscribed in it,
//! rotated back: the face, not the rotated corners of its box. The masks (ellipses grown 1.7 times
//! for faces) then cover the rotated face whole.

use image::{Rgb, RgbImage};

use crate::geometry::{BBox, Detection};

use super::Rect;

/// The rotation counts a plan takes: upright only, upside down too, quarter turns, eighth turns.
pub const ALLOWED: [u32; 4] = [1, 2, 4, 8];

/// One rotation of a `w` x `h` frame by `degrees` counter-clockwise (as seen on screen) about its
/// middle, onto a canvas that holds all of it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rotation {
    /// Counter-clockwise, in [0, 360).
    pub degrees: f32,
    /// The frame's size.
    from: (u32, u32),
    /// The rotated canvas's size.
    to: (u32, u32),
    cos: f32,
    sin: f32,
}

impl Rotation {
    /// The rotations other than upright among `n` evenly spaced ones (`n` in [`ALLOWED`]), for a
    /// `w` x `h` frame: none for 1, the half rotation for 2, and so on.
    pub fn others(n: u32, w: u32, h: u32) -> Vec<Rotation> {
        (1..n.max(1))
            .map(|k| Rotation::new(360.0 * k as f32 / n as f32, w, h))
            .collect()
    }

    /// A rotation by `degrees` counter-clockwise of a `w` x `h` frame.
    pub fn new(degrees: f32, w: u32, h: u32) -> Rotation {
        let degrees = degrees.rem_euclid(360.0);
        let (sin, cos) = match Rotation::quarter_of(degrees) {
            Some(0) => (0.0, 1.0),
            Some(1) => (1.0, 0.0),
            Some(2) => (0.0, -1.0),
            Some(_) => (-1.0, 0.0),
            None => degrees.to_radians().sin_cos(),
        };
        let (fw, fh) = (w as f32, h as f32);
        let to = (
            (fw * cos.abs() + fh * sin.abs() - 1e-3).ceil().max(1.0) as u32,
            (fw * sin.abs() + fh * cos.abs() - 1e-3).ceil().max(1.0) as u32,
        );
        Rotation {
            degrees,
            from: (w, h),
            to,
            cos,
            sin,
        }
    }

    fn quarter_of(degrees: f32) -> Option<u32> {
        let q = degrees / 90.0;
        (q.fract() == 0.0).then_some(q as u32 % 4)
    }

    /// The rotation back, from the canvas to the frame: its [`Rotation::detection_back`] takes a
    /// box of the frame onto the canvas.
    pub fn inverse(&self) -> Rotation {
        Rotation {
            degrees: (360.0 - self.degrees).rem_euclid(360.0),
            from: self.to,
            to: self.from,
            cos: self.cos,
            sin: -self.sin,
        }
    }

    /// The rotated canvas's size.
    pub fn size(&self) -> (u32, u32) {
        self.to
    }

    /// A point of the frame on the rotated canvas.
    fn forward(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.from.0 as f32 / 2.0, y - self.from.1 as f32 / 2.0);
        (
            dx * self.cos + dy * self.sin + self.to.0 as f32 / 2.0,
            -dx * self.sin + dy * self.cos + self.to.1 as f32 / 2.0,
        )
    }

    /// A point of the rotated canvas in the frame.
    fn back(&self, x: f32, y: f32) -> (f32, f32) {
        let (dx, dy) = (x - self.to.0 as f32 / 2.0, y - self.to.1 as f32 / 2.0);
        (
            dx * self.cos - dy * self.sin + self.from.0 as f32 / 2.0,
            dx * self.sin + dy * self.cos + self.from.1 as f32 / 2.0,
        )
    }

    /// The frame rotated. Quarter turns move pixels; other angles sample bilinearly, grey where
    /// the canvas lies outside the frame.
    pub fn apply(&self, frame: &RgbImage) -> RgbImage {
        match Rotation::quarter_of(self.degrees) {
            // image's rotations are clockwise.
            Some(0) => frame.clone(),
            Some(1) => image::imageops::rotate270(frame),
            Some(2) => image::imageops::rotate180(frame),
            Some(_) => image::imageops::rotate90(frame),
            None => self.resample(frame),
        }
    }

    fn resample(&self, frame: &RgbImage) -> RgbImage {
        let (w, h) = frame.dimensions();
        let (tw, th) = self.to;
        let mut out = RgbImage::from_pixel(tw, th, Rgb([128, 128, 128]));
        if w == 0 || h == 0 {
            return out;
        }
        let src = frame.as_raw();
        let stride = w as usize * 3;
        for (ty, row) in out.rows_mut().enumerate() {
            for (tx, px) in row.enumerate() {
                // Pixel centres: sample the frame where this pixel's centre comes from.
                let (x, y) = self.back(tx as f32 + 0.5, ty as f32 + 0.5);
                let (x, y) = (x - 0.5, y - 0.5);
                if !(x > -1.0 && y > -1.0 && x < w as f32 && y < h as f32) {
                    continue;
                }
                let (x0, y0) = (x.floor(), y.floor());
                let (fx, fy) = (x - x0, y - y0);
                let at = |xi: f32, yi: f32, c: usize| -> f32 {
                    let xi = xi.clamp(0.0, (w - 1) as f32) as usize;
                    let yi = yi.clamp(0.0, (h - 1) as f32) as usize;
                    src[yi * stride + xi * 3 + c] as f32
                };
                for c in 0..3 {
                    let top = at(x0, y0, c) * (1.0 - fx) + at(x0 + 1.0, y0, c) * fx;
                    let bottom = at(x0, y0 + 1.0, c) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0, c) * fx;
                    px.0[c] = (top * (1.0 - fy) + bottom * fy).round() as u8;
                }
            }
        }
        out
    }

    /// The rectangle of the rotated canvas that holds `r` of the frame (its four corners' bounds),
    /// within the canvas.
    pub fn rect_forward(&self, r: Rect) -> Rect {
        let corners = [
            (r.x, r.y),
            (r.x + r.w, r.y),
            (r.x, r.y + r.h),
            (r.x + r.w, r.y + r.h),
        ]
        .map(|(x, y)| self.forward(x as f32, y as f32));
        // The corners' extent along one axis, whole pixels, within the canvas's `len`.
        let extent = |along: fn(&(f32, f32)) -> f32, len: u32| {
            let lo = corners.iter().map(along).fold(f32::MAX, f32::min);
            let hi = corners.iter().map(along).fold(f32::MIN, f32::max);
            let len = len as f32;
            (lo.floor().clamp(0.0, len), hi.ceil().clamp(0.0, len))
        };
        let (x1, x2) = extent(|c| c.0, self.to.0);
        let (y1, y2) = extent(|c| c.1, self.to.1);
        Rect {
            x: x1 as u32,
            y: y1 as u32,
            w: (x2 - x1) as u32,
            h: (y2 - y1) as u32,
        }
    }

    /// A box found on the rotated canvas, in the frame: the bounding box of the ellipse inscribed
    /// in it, rotated back (for quarter turns, exactly the box rotated back). Landmarks are
    /// rotated back too.
    pub fn detection_back(&self, mut d: Detection) -> Detection {
        let b = d.bbox;
        let (x, y) = b.centre();
        let (cx, cy) = self.back(x, y);
        let (a, e) = (b.width() / 2.0, b.height() / 2.0);
        let hw = ((a * self.cos).powi(2) + (e * self.sin).powi(2)).sqrt();
        let hh = ((a * self.sin).powi(2) + (e * self.cos).powi(2)).sqrt();
        d.bbox = BBox::new(cx - hw, cy - hh, cx + hw, cy + hh);
        for p in &mut d.landmarks {
            let (x, y) = self.back(p[0], p[1]);
            *p = [x, y];
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Class;

    fn det(b: BBox) -> Detection {
        Detection {
            class: Class::Face,
            score: 0.9,
            bbox: b,
            landmarks: vec![[b.x1, b.y1]],
        }
    }

    #[test]
    fn quarter_rotations_move_pixels_and_boxes_exactly() {
        // A 7 x 4 frame with one marked pixel at (5, 1).
        let mut frame = RgbImage::new(7, 4);
        frame.put_pixel(5, 1, Rgb([255, 0, 0]));
        for n in [2, 4] {
            for rotation in Rotation::others(n, 7, 4) {
                let rotated = rotation.apply(&frame);
                assert_eq!(
                    rotated.dimensions(),
                    rotation.size(),
                    "{}",
                    rotation.degrees
                );
                let (x, y) = rotated
                    .enumerate_pixels()
                    .find(|p| p.2 .0[0] == 255)
                    .map(|p| (p.0, p.1))
                    .unwrap();
                // The marked pixel's box, found on the rotated frame, comes back to (5, 1).
                let found = det(BBox::new(
                    x as f32,
                    y as f32,
                    x as f32 + 1.0,
                    y as f32 + 1.0,
                ));
                let back = rotation.detection_back(found).bbox;
                let want = BBox::new(5.0, 1.0, 6.0, 2.0);
                for (g, w) in [
                    (back.x1, want.x1),
                    (back.y1, want.y1),
                    (back.x2, want.x2),
                    (back.y2, want.y2),
                ] {
                    assert!((g - w).abs() < 1e-4, "{}°: {back:?}", rotation.degrees);
                }
            }
        }
        assert_eq!(Rotation::new(90.0, 7, 4).size(), (4, 7));
        assert!(Rotation::others(1, 7, 4).is_empty());
    }

    #[test]
    fn a_box_rotated_forward_and_back_lands_on_itself_at_any_angle() {
        for n in [8u32] {
            for rotation in Rotation::others(n, 640, 360) {
                for b in [
                    BBox::new(10.0, 20.0, 60.0, 80.0),
                    BBox::new(500.0, 300.0, 540.0, 350.0),
                ] {
                    // A round face: the ellipse inscribed in a square box rotated is the same box.
                    let s = b.width().min(b.height());
                    let sq = BBox::new(b.x1, b.y1, b.x1 + s, b.y1 + s);
                    let (x, y) = sq.centre();
                    let (cx, cy) = rotation.forward(x, y);
                    let on_canvas = BBox::from_center(cx, cy, s, s);
                    let back = rotation.detection_back(det(on_canvas)).bbox;
                    assert!(
                        back.iou(&sq) > 0.99,
                        "{}°: {back:?} against {sq:?}",
                        rotation.degrees
                    );
                }
            }
        }
    }

    #[test]
    fn the_rotated_canvas_holds_the_whole_frame() {
        let frame = RgbImage::from_pixel(64, 36, Rgb([0, 200, 0]));
        for rotation in Rotation::others(8, 64, 36) {
            let rotated = rotation.apply(&frame);
            let green = rotated
                .pixels()
                .filter(|p| p.0[1] > 150 && p.0[0] < 100)
                .count() as f32;
            // Every pixel of the frame lands on the canvas (area kept within resampling's edge).
            assert!(
                (green / (64.0 * 36.0) - 1.0).abs() < 0.08,
                "{}°: {green}",
                rotation.degrees
            );
            // And the frame's rectangle, rotated, lies inside the canvas.
            let r = rotation.rect_forward(Rect::full(64, 36));
            let (tw, th) = rotation.size();
            assert!(r.x + r.w <= tw && r.y + r.h <= th);
        }
    }

    /// The privacy property: whatever a rotated pass finds comes back as a box that holds the
    /// face it boxed (the ellipse inscribed in the box, rotated back), and a region of the frame
    /// lands inside its rotated rectangle, for generated frames, rotations and boxes.
    #[test]
    fn what_a_rotated_pass_boxes_comes_back_inside_the_box_it_is_given() {
        let mut rng = crate::TestRng::new(0x05ee_d0f0_dda9);
        for case in 0..2000 {
            let (w, h) = (1 + rng.below(2000), 1 + rng.below(2000));
            let n = ALLOWED[1 + rng.below(3) as usize];
            let rotations = Rotation::others(n, w, h);
            let r = rotations[rng.below(rotations.len() as u32) as usize];
            let (tw, th) = r.size();
            let (x1, y1) = (rng.unit() * tw as f32, rng.unit() * th as f32);
            let b = BBox::new(
                x1,
                y1,
                x1 + 1.0 + rng.unit() * 300.0,
                y1 + 1.0 + rng.unit() * 300.0,
            );
            let back = r.detection_back(det(b)).bbox;
            let (cx, cy) = b.centre();
            for k in 0..64 {
                let t = k as f32 * std::f32::consts::TAU / 64.0;
                let p = (
                    cx + b.width() / 2.0 * t.cos(),
                    cy + b.height() / 2.0 * t.sin(),
                );
                let (x, y) = r.back(p.0, p.1);
                let slack = 1e-3 * (1.0 + w.max(h) as f32);
                assert!(
                    x >= back.x1 - slack
                        && x <= back.x2 + slack
                        && y >= back.y1 - slack
                        && y <= back.y2 + slack,
                    "case {case}: {w}x{h} {}°, {b:?} -> {back:?} misses ({x}, {y})",
                    r.degrees
                );
            }
            // A region of the frame, rotated: its corners land in the rectangle given for it.
            let (rx, ry) = (rng.below(w), rng.below(h));
            let region = Rect {
                x: rx,
                y: ry,
                w: 1 + rng.below(w - rx),
                h: 1 + rng.below(h - ry),
            };
            let on = r.rect_forward(region);
            for (x, y) in [
                (region.x, region.y),
                (region.x + region.w, region.y + region.h),
                (region.x, region.y + region.h),
                (region.x + region.w, region.y),
            ] {
                let (fx, fy) = r.forward(x as f32, y as f32);
                let (fx, fy) = (fx.clamp(0.0, tw as f32), fy.clamp(0.0, th as f32));
                assert!(
                    fx >= on.x as f32 - 0.01
                        && fx <= (on.x + on.w) as f32 + 0.01
                        && fy >= on.y as f32 - 0.01
                        && fy <= (on.y + on.h) as f32 + 0.01,
                    "case {case}: {region:?} -> {on:?} misses ({fx}, {fy})"
                );
            }
        }
    }
}

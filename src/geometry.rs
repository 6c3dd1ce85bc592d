//! The shapes every stage talks in: boxes, detections and privacy-zone polygons.
//!
//! Coordinates are `f32` frame pixels with the origin at the top-left corner of the top-left
//! pixel; a pixel `(x, y)` is "inside" a shape when its centre `(x + 0.5, y + 0.5)` is. Keeping
//! one convention here is what lets the detector, the redactor and the coverage metric agree.

use serde::{Deserialize, Serialize};

/// An axis-aligned box, `x1 <= x2`, `y1 <= y2`, in frame pixels.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BBox {
    /// Left edge.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

impl BBox {
    /// A box from its corners; swapped corners are put in order.
    pub fn new(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        BBox {
            x1: x1.min(x2),
            y1: y1.min(y2),
            x2: x1.max(x2),
            y2: y1.max(y2),
        }
    }

    /// A box from its centre and size.
    pub fn from_center(cx: f32, cy: f32, w: f32, h: f32) -> Self {
        BBox::new(cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0)
    }

    /// Width in pixels.
    pub fn width(&self) -> f32 {
        self.x2 - self.x1
    }

    /// Height in pixels.
    pub fn height(&self) -> f32 {
        self.y2 - self.y1
    }

    /// The centre point `(x, y)`.
    pub fn centre(&self) -> (f32, f32) {
        ((self.x1 + self.x2) / 2.0, (self.y1 + self.y2) / 2.0)
    }

    /// Whether the point `(x, y)` lies inside or on the edge.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        x >= self.x1 && x <= self.x2 && y >= self.y1 && y <= self.y2
    }

    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// Area of the overlap with `other` (0 when they do not touch).
    pub fn intersection(&self, other: &BBox) -> f32 {
        let w = self.x2.min(other.x2) - self.x1.max(other.x1);
        let h = self.y2.min(other.y2) - self.y1.max(other.y1);
        w.max(0.0) * h.max(0.0)
    }

    /// Intersection over union, in `[0, 1]`.
    pub fn iou(&self, other: &BBox) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 {
            0.0
        } else {
            inter / union
        }
    }

    /// The smallest box containing both.
    pub fn enclose(&self, other: &BBox) -> BBox {
        BBox {
            x1: self.x1.min(other.x1),
            y1: self.y1.min(other.y1),
            x2: self.x2.max(other.x2),
            y2: self.y2.max(other.y2),
        }
    }

    /// The box grown (or shrunk) by `factor` about its centre. Computed in `f64`: a coordinate
    /// beyond `f32`'s range becomes an infinity on the side it lies, so a box grown past any frame
    /// still covers that frame to its edges.
    pub fn scaled(&self, factor: f32) -> BBox {
        let f = f64::from(factor);
        // A NaN stays NaN (the mask then covers the whole frame); `min`/`max` would drop it.
        let along = |a: f32, b: f32| {
            let (a, b) = (f64::from(a), f64::from(b));
            let (c, half) = ((a + b) / 2.0, ((b - a) / 2.0 * f).abs());
            ((c - half) as f32, (c + half) as f32)
        };
        let (x1, x2) = along(self.x1, self.x2);
        let (y1, y2) = along(self.y1, self.y2);
        BBox { x1, y1, x2, y2 }
    }

    /// The box clipped to a `width` x `height` frame.
    pub fn clipped(&self, width: u32, height: u32) -> BBox {
        let (w, h) = (width as f32, height as f32);
        BBox {
            x1: self.x1.clamp(0.0, w),
            y1: self.y1.clamp(0.0, h),
            x2: self.x2.clamp(0.0, w),
            y2: self.y2.clamp(0.0, h),
        }
    }

    /// Whether every coordinate is a finite number.
    pub fn is_finite(&self) -> bool {
        self.x1.is_finite() && self.y1.is_finite() && self.x2.is_finite() && self.y2.is_finite()
    }
}

/// What a detection is of. Each class has its own redaction style.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// A human face.
    Face,
    /// A vehicle licence plate.
    Plate,
}

impl Class {
    /// Every class, in a stable order.
    pub const ALL: [Class; 2] = [Class::Face, Class::Plate];

    /// The lowercase name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Class::Face => "face",
            Class::Plate => "plate",
        }
    }
}

impl std::fmt::Display for Class {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Class {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "face" | "faces" => Ok(Class::Face),
            "plate" | "plates" => Ok(Class::Plate),
            _ => Err(crate::Error::InvalidSetting {
                name: "class",
                value: s.to_string(),
                allowed: "one of face, plate",
            }),
        }
    }
}

/// One object found in a frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// What was found.
    pub class: Class,
    /// The detector's confidence in `[0, 1]`.
    pub score: f32,
    /// Where, in frame pixels.
    pub bbox: BBox,
    /// Landmarks in frame pixels where the model gives them (5 facial points, or 4 plate
    /// corners); empty otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub landmarks: Vec<[f32; 2]>,
}

/// A closed polygon in frame pixels: a privacy zone that is redacted in every frame whatever the
/// detectors see.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Polygon {
    /// Vertices in order; the last connects back to the first.
    pub points: Vec<[f32; 2]>,
}

impl Polygon {
    /// The bounding box of the vertices.
    pub fn bounds(&self) -> BBox {
        let mut b = BBox {
            x1: f32::INFINITY,
            y1: f32::INFINITY,
            x2: f32::NEG_INFINITY,
            y2: f32::NEG_INFINITY,
        };
        for p in &self.points {
            b.x1 = b.x1.min(p[0]);
            b.y1 = b.y1.min(p[1]);
            b.x2 = b.x2.max(p[0]);
            b.y2 = b.y2.max(p[1]);
        }
        b
    }

    /// Appends to `out` the runs `(start, end)` of the horizontal line `y` that are inside the
    /// polygon, in order (nonzero winding rule, see [`Polygon::contains`]). `scratch` holds the
    /// edge crossings between calls. Computed in `f64`, so any finite `f32` vertices work, however
    /// far outside the frame they lie.
    pub fn spans(&self, y: f64, scratch: &mut Vec<(f64, i32)>, out: &mut Vec<(f64, f64)>) {
        scratch.clear();
        let n = self.points.len();
        for i in 0..n {
            let [ax, ay] = self.points[i].map(f64::from);
            let [bx, by] = self.points[(i + 1) % n].map(f64::from);
            // Half-open rule so a vertex exactly on the line is counted once; the sign is the
            // edge's direction.
            if (ay <= y) != (by <= y) {
                let x = ax + (y - ay) / (by - ay) * (bx - ax);
                scratch.push((x, if by > ay { 1 } else { -1 }));
            }
        }
        scratch.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut winding = 0;
        let mut start = 0.0;
        for &(x, dir) in scratch.iter() {
            let was_inside = winding != 0;
            winding += dir;
            match (was_inside, winding != 0) {
                (false, true) => start = x,
                (true, false) => out.push((start, x)),
                _ => {}
            }
        }
    }

    /// Whether the point lies inside. A zone is everything its outline encloses: the nonzero
    /// winding rule, so a self-crossing outline (a star drawn in one stroke, a figure eight) leaves
    /// no hole where it overlaps itself.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let (mut scratch, mut spans) = (Vec::new(), Vec::new());
        self.spans(f64::from(y), &mut scratch, &mut spans);
        let x = f64::from(x);
        spans.iter().any(|&(a, b)| x >= a && x < b)
    }

    /// Whether every vertex is a finite number.
    pub fn is_finite(&self) -> bool {
        self.points.iter().flatten().all(|v| v.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BBox::new(0.0, 0.0, 10.0, 10.0);
        assert_eq!(a.iou(&a), 1.0);
        assert_eq!(a.iou(&BBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        let b = BBox::new(5.0, 0.0, 15.0, 10.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
    }

    #[test]
    fn scaled_keeps_centre() {
        let b = BBox::new(10.0, 20.0, 30.0, 60.0).scaled(1.5);
        assert_eq!(b, BBox::new(5.0, 10.0, 35.0, 70.0));
        assert_eq!(b.centre(), (20.0, 40.0));
        assert!(b.contains(20.0, 40.0) && b.contains(5.0, 70.0));
        assert!(!b.contains(4.9, 40.0) && !b.contains(20.0, 70.1));
        // Past f32's range: infinities on the side the coordinate lies, never NaN.
        let b = BBox::new(-3e38, 1.7e38, 3e38, 3.4e38).scaled(4.0);
        assert_eq!((b.x1, b.x2), (f32::NEG_INFINITY, f32::INFINITY));
        assert!(b.y1 < 0.0 && b.y2 == f32::INFINITY, "{b:?}");
        let nan = BBox {
            x1: f32::NAN,
            ..BBox::new(0.0, 0.0, 1.0, 1.0)
        };
        assert!(nan.scaled(1.5).x1.is_nan());
    }

    #[test]
    fn polygon_contains_follows_its_outline() {
        // A square with a notch: (0,0) (10,0) (10,10) (5,5) (0,10)
        let p = Polygon {
            points: vec![
                [0.0, 0.0],
                [10.0, 0.0],
                [10.0, 10.0],
                [5.0, 5.0],
                [0.0, 10.0],
            ],
        };
        assert!(p.contains(2.0, 2.0));
        assert!(p.contains(9.0, 9.0));
        assert!(!p.contains(5.0, 8.0));
        assert!(!p.contains(11.0, 5.0));
        assert_eq!(p.bounds(), BBox::new(0.0, 0.0, 10.0, 10.0));
    }

    #[test]
    fn a_self_crossing_outline_has_no_hole() {
        // A five-pointed star drawn in one stroke: even-odd would leave the centre pentagon out.
        let star = Polygon {
            points: (0..5)
                .map(|i| {
                    let a = std::f32::consts::PI * (0.5 + 0.8 * i as f32);
                    [50.0 + 40.0 * a.cos(), 50.0 - 40.0 * a.sin()]
                })
                .collect(),
        };
        assert!(star.contains(50.0, 50.0), "centre");
        assert!(star.contains(50.0, 15.0), "a point");
        assert!(!star.contains(5.0, 5.0));
        // A figure eight traced so both lobes turn the same way, and a doubled square.
        let doubled = Polygon {
            points: vec![
                [0.0, 0.0],
                [10.0, 0.0],
                [10.0, 10.0],
                [0.0, 10.0],
                [0.0, 0.0],
                [10.0, 0.0],
                [10.0, 10.0],
                [0.0, 10.0],
            ],
        };
        assert!(doubled.contains(5.0, 5.0));
    }

    #[test]
    fn huge_finite_vertices_still_give_the_inside() {
        let p = Polygon {
            points: vec![[-3e38, -3e38], [3e38, -3e38], [3e38, 3e38], [-3e38, 3e38]],
        };
        assert!(p.contains(0.5, 0.5) && p.contains(1e6, -1e6));
    }

    #[test]
    fn class_parses_names() {
        assert_eq!("Faces".parse::<Class>().unwrap(), Class::Face);
        assert_eq!("plate".parse::<Class>().unwrap(), Class::Plate);
        assert!("car".parse::<Class>().is_err());
    }
}

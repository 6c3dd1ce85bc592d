//! Which pixels a redaction covers.
//!
//! An [`Area`] answers one question: on row `y`, which runs of pixels are inside? The redactor
//! paints those runs and the coverage metric (`bystander eval`) counts them, from the same code,
//! so what is measured is exactly what is applied. A pixel is inside when its centre is.
//!
//! Geometry arrives from outside the process (review files, zone files, a host's boxes) and from
//! arithmetic on it (masks grown 1.7×, held boxes spread along their motion), so any `f32` may
//! reach here. Everything is computed in `f64` and clamped to the frame before it becomes a pixel
//! index, and the rules fail closed: a shape reaching past the frame covers the frame up to its
//! edges; an ellipse whose box is unbounded covers its box; a shape with a coordinate that is not
//! a number at all (NaN) covers the whole frame.
//!
//! Why not `imageproc`'s drawing (the stack's image-processing crate, dropped from the
//! dependencies for this): its polygons take integer vertices, so neither sub-pixel zones nor
//! numbers beyond `i32` can be drawn as given; it fills even-odd (a star drawn in one stroke
//! came out with its centre clear); it walks every row of the polygon's own extent (a square of
//! ±1e9 px took 11.9 s to fill a 100×100 frame); and its spans would not be the ones the coverage
//! metric counts. Dropping it took 25 crates out of the build (125 → 100 in `cargo tree`).

use crate::geometry::{BBox, Polygon};

/// The shape of one redaction, in frame pixels.
#[derive(Clone, Debug, PartialEq)]
pub enum Area {
    /// The ellipse inscribed in the box.
    Ellipse(BBox),
    /// The box itself.
    Rect(BBox),
    /// A polygon (privacy zone), nonzero winding rule (see [`Polygon::contains`]).
    Polygon(Polygon),
}

/// Inclusive-exclusive pixel bounds `(x0, y0, x1, y1)` of an area inside a `w` x `h` frame.
pub type PixelBounds = (u32, u32, u32, u32);

/// A box in `f64`.
#[derive(Clone, Copy)]
struct Box64 {
    x1: f64,
    y1: f64,
    x2: f64,
    y2: f64,
}

impl From<BBox> for Box64 {
    fn from(b: BBox) -> Self {
        Box64 {
            x1: b.x1.into(),
            y1: b.y1.into(),
            x2: b.x2.into(),
            y2: b.y2.into(),
        }
    }
}

/// What an area is rasterised as, after the fail-closed rules.
enum Shape<'a> {
    Rect(Box64),
    Ellipse(Box64),
    Polygon(&'a Polygon),
}

/// The first pixel whose centre is at or after `v`, clamped to `[0, max]`: pixel `i`'s centre is
/// `i + 0.5`, inside a run `[a, b)` when `a <= i + 0.5 < b`. Saturating and NaN-free.
fn edge(v: f64, max: u32) -> u32 {
    (v - 0.5).ceil().clamp(0.0, f64::from(max)) as u32
}

fn run(a: f64, b: f64, w: u32) -> Option<(u32, u32)> {
    let (s, e) = (edge(a, w), edge(b, w));
    (s < e).then_some((s, e))
}

impl Area {
    /// The shape to rasterise in a `w` x `h` frame.
    fn shape(&self, w: u32, h: u32) -> Shape<'_> {
        let whole = Box64 {
            x1: 0.0,
            y1: 0.0,
            x2: w.into(),
            y2: h.into(),
        };
        let nan = |b: &BBox| [b.x1, b.y1, b.x2, b.y2].iter().any(|v| v.is_nan());
        match self {
            Area::Rect(b) | Area::Ellipse(b) if nan(b) => Shape::Rect(whole),
            Area::Rect(b) => Shape::Rect((*b).into()),
            Area::Ellipse(b) if !b.is_finite() => Shape::Rect((*b).into()),
            Area::Ellipse(b) => Shape::Ellipse((*b).into()),
            Area::Polygon(p) if !p.is_finite() => Shape::Rect(whole),
            Area::Polygon(p) => Shape::Polygon(p),
        }
    }

    /// The pixels whose centres may be inside, clipped to the frame; `None` when nothing is.
    pub fn pixel_bounds(&self, w: u32, h: u32) -> Option<PixelBounds> {
        let b = match self.shape(w, h) {
            Shape::Rect(b) | Shape::Ellipse(b) => b,
            Shape::Polygon(p) => p.bounds().into(),
        };
        let (x0, y0, x1, y1) = (edge(b.x1, w), edge(b.y1, h), edge(b.x2, w), edge(b.y2, h));
        (x0 < x1 && y0 < y1).then_some((x0, y0, x1, y1))
    }

    /// Appends to `out` the runs `[start, end)` of row `y` that are inside, clipped to `[0, w)`.
    /// `h` is the frame's height (a shape with a NaN coordinate covers the whole frame).
    pub fn row_spans(
        &self,
        y: u32,
        (w, h): (u32, u32),
        scratch: &mut Scratch,
        out: &mut Vec<(u32, u32)>,
    ) {
        let cy = f64::from(y) + 0.5;
        match self.shape(w, h) {
            Shape::Rect(b) => {
                if cy >= b.y1 && cy < b.y2 {
                    out.extend(run(b.x1, b.x2, w));
                }
            }
            Shape::Ellipse(b) => {
                let (rx, ry) = ((b.x2 - b.x1) / 2.0, (b.y2 - b.y1) / 2.0);
                if rx <= 0.0 || ry <= 0.0 {
                    return;
                }
                let dy = (cy - (b.y1 + ry)) / ry;
                if dy.abs() >= 1.0 {
                    return;
                }
                let half = rx * (1.0 - dy * dy).sqrt();
                let cx = b.x1 + rx;
                out.extend(run(cx - half, cx + half, w));
            }
            Shape::Polygon(p) => {
                scratch.spans.clear();
                p.spans(cy, &mut scratch.crossings, &mut scratch.spans);
                out.extend(scratch.spans.iter().filter_map(|&(a, b)| run(a, b, w)));
            }
        }
    }
}

/// Buffers [`Area::row_spans`] reuses from row to row.
#[derive(Default)]
pub struct Scratch {
    crossings: Vec<(f64, i32)>,
    spans: Vec<(f64, f64)>,
}

/// A `w` x `h` bitmap of covered pixels, built from areas.
#[derive(Clone, Debug)]
pub struct CoverageMask {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    bits: Vec<bool>,
}

impl CoverageMask {
    /// An empty mask.
    pub fn new(width: u32, height: u32) -> Self {
        CoverageMask {
            width,
            height,
            bits: vec![false; width as usize * height as usize],
        }
    }

    /// Marks every pixel inside `area`.
    pub fn add(&mut self, area: &Area) {
        let Some((_, y0, _, y1)) = area.pixel_bounds(self.width, self.height) else {
            return;
        };
        let (mut scratch, mut runs) = (Scratch::default(), Vec::new());
        for y in y0..y1 {
            runs.clear();
            area.row_spans(y, (self.width, self.height), &mut scratch, &mut runs);
            let row = y as usize * self.width as usize;
            for &(s, e) in &runs {
                self.bits[row + s as usize..row + e as usize].fill(true);
            }
        }
    }

    /// Whether pixel `(x, y)` is covered.
    pub fn get(&self, x: u32, y: u32) -> bool {
        x < self.width
            && y < self.height
            && self.bits[y as usize * self.width as usize + x as usize]
    }

    /// Share of the frame covered, in `[0, 1]`.
    pub fn fraction(&self) -> f64 {
        if self.bits.is_empty() {
            return 0.0;
        }
        self.bits.iter().filter(|&&b| b).count() as f64 / self.bits.len() as f64
    }

    /// Share of the pixels whose centres lie in `b` that are covered (1 for a box with no pixel
    /// centre inside the frame: there is nothing left to leak).
    pub fn fraction_of(&self, b: &BBox) -> f64 {
        let Some((x0, y0, x1, y1)) = Area::Rect(*b).pixel_bounds(self.width, self.height) else {
            return 1.0;
        };
        let mut covered = 0usize;
        for y in y0..y1 {
            let row = &self.bits[y as usize * self.width as usize..][x0 as usize..x1 as usize];
            covered += row.iter().filter(|&&b| b).count();
        }
        covered as f64 / ((x1 - x0) as f64 * (y1 - y0) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rect_covers_pixels_whose_centres_are_inside() {
        let mut m = CoverageMask::new(10, 10);
        m.add(&Area::Rect(BBox::new(2.0, 2.0, 5.0, 4.0)));
        assert!(m.get(2, 2) && m.get(4, 3));
        assert!(!m.get(5, 3) && !m.get(2, 4) && !m.get(1, 2));
        assert_eq!(m.fraction(), 6.0 / 100.0);
        // Half-pixel edges: [2.6, 3.4) holds no centre.
        let mut m = CoverageMask::new(10, 10);
        m.add(&Area::Rect(BBox::new(2.6, 2.0, 3.4, 4.0)));
        assert_eq!(m.fraction(), 0.0);
    }

    #[test]
    fn ellipse_is_inside_its_box_and_about_pi_over_four_of_it() {
        let b = BBox::new(0.0, 0.0, 100.0, 60.0);
        let mut m = CoverageMask::new(100, 60);
        m.add(&Area::Ellipse(b));
        let f = m.fraction();
        assert!((f - std::f64::consts::FRAC_PI_4).abs() < 0.01, "{f}");
        assert!(m.get(50, 30) && !m.get(0, 0) && !m.get(99, 59));
    }

    #[test]
    fn areas_outside_the_frame_are_clipped() {
        let mut m = CoverageMask::new(10, 10);
        m.add(&Area::Rect(BBox::new(-50.0, -50.0, 5.0, 5.0)));
        m.add(&Area::Ellipse(BBox::new(-10.0, 0.0, 10.0, 10.0)));
        m.add(&Area::Rect(BBox::new(20.0, 20.0, 30.0, 30.0)));
        m.add(&Area::Rect(BBox::new(f32::NAN, 0.0, 3.0, 3.0)));
        assert!(m.get(0, 0) && m.get(4, 4) && !m.get(5, 0));
        assert!(m.get(0, 9) && !m.get(9, 9));
        // Rows of the half ellipse hold 4, 7, 9, 10, 10, 10, 10, 9, 7, 4 pixels; the rect adds one
        // to row 0 (5 instead of 4).
        assert_eq!(m.fraction(), 0.81);
    }

    #[test]
    fn fraction_of_box_counts_covered_share() {
        let mut m = CoverageMask::new(20, 20);
        m.add(&Area::Rect(BBox::new(0.0, 0.0, 10.0, 20.0)));
        assert_eq!(m.fraction_of(&BBox::new(5.0, 0.0, 15.0, 10.0)), 0.5);
        assert_eq!(m.fraction_of(&BBox::new(0.0, 0.0, 10.0, 10.0)), 1.0);
    }

    #[test]
    fn polygon_rows_match_point_in_polygon() {
        let p = Polygon {
            points: vec![[1.0, 1.0], [9.0, 2.0], [6.0, 9.0], [2.0, 7.0]],
        };
        let mut m = CoverageMask::new(10, 10);
        m.add(&Area::Polygon(p.clone()));
        for y in 0..10 {
            for x in 0..10 {
                assert_eq!(
                    m.get(x, y),
                    p.contains(x as f32 + 0.5, y as f32 + 0.5),
                    "({x},{y})"
                );
            }
        }
    }
}

//! Privacy zones: polygons that are redacted in every frame, whatever the detectors see.
//!
//! A camera owner marks the neighbour's window or the street once; the zone file is JSON:
//!
//! ```json
//! { "units": "fraction", "zones": [ [[0.0, 0.6], [1.0, 0.6], [1.0, 1.0], [0.0, 1.0]] ] }
//! ```
//!
//! `units` is `"pixels"` (the default) or `"fraction"` of the frame's width and height; fractions
//! keep one file valid for every resolution a camera records in. Each zone needs at least three
//! finite points.

use std::path::Path;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::geometry::Polygon;

/// How far out (pixels) a zone's vertex may lie and still be clipped exactly: at 1e9 px, `f64`
/// places an edge to within about 1e-7 px.
pub const FAR: f64 = 1e9;

/// A set of privacy zones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Zones {
    polygons: Vec<Polygon>,
    fractional: bool,
    /// sha256 of the file they were read from.
    source_sha256: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ZoneFile {
    #[serde(default)]
    units: Units,
    zones: Vec<Vec<[f32; 2]>>,
}

#[derive(Deserialize, Default, PartialEq)]
#[serde(rename_all = "lowercase")]
enum Units {
    #[default]
    Pixels,
    Fraction,
}

impl Zones {
    /// Zones in frame pixels.
    pub fn pixels(polygons: Vec<Polygon>) -> Zones {
        Zones {
            polygons,
            fractional: false,
            source_sha256: None,
        }
    }

    /// The polygons as given, in pixels or in fractions of the frame (see
    /// [`Zones::is_fractional`]).
    pub fn as_given(&self) -> &[Polygon] {
        &self.polygons
    }

    /// Whether the polygons are fractions of the frame's width and height.
    pub fn is_fractional(&self) -> bool {
        self.fractional
    }

    /// Whether there are no zones.
    pub fn is_empty(&self) -> bool {
        self.polygons.is_empty()
    }

    /// sha256 of the zone file these zones were read from (recorded in reports, so that a rerun
    /// with an edited zone file redoes its outputs).
    pub fn source_sha256(&self) -> Option<&str> {
        self.source_sha256.as_deref()
    }

    /// Reads a zone file: a regular file of at most [`crate::files::MAX_ZONES_BYTES`].
    pub fn load(path: &Path) -> Result<Zones> {
        let text =
            crate::files::read_text_capped(path, crate::files::MAX_ZONES_BYTES, "zone file")?;
        let mut zones = Zones::parse(&text, path)?;
        zones.source_sha256 = Some(crate::models::sha256_hex(text.as_bytes()));
        Ok(zones)
    }

    /// Parses zone-file text; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Zones> {
        let err = |line: usize, reason: String| Error::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let file: ZoneFile =
            serde_json::from_str(text).map_err(|e| err(e.line().max(1), e.to_string()))?;
        let fractional = file.units == Units::Fraction;
        let mut polygons = Vec::with_capacity(file.zones.len());
        for (i, points) in file.zones.into_iter().enumerate() {
            if points.len() < 3 {
                return Err(err(
                    1,
                    format!(
                        "zone {} has {} points, at least 3 are needed",
                        i + 1,
                        points.len()
                    ),
                ));
            }
            if points.iter().flatten().any(|v| !v.is_finite()) {
                return Err(err(
                    1,
                    format!(
                        "zone {} has a coordinate that is not a finite number",
                        i + 1
                    ),
                ));
            }
            polygons.push(Polygon { points });
        }
        Ok(Zones {
            polygons,
            fractional,
            source_sha256: None,
        })
    }

    /// The zones in pixels of a `w` x `h` frame, each clipped to the frame (with a pixel of
    /// margin). Scaling and clipping run in `f64`, so a vertex at 1e38 (a fraction) or ±3e38
    /// pixels reaches the frame's edge instead of overflowing: what the outline encloses inside
    /// the frame is what it enclosed before clipping (for the nonzero rule, clipping a closed
    /// outline to a half-plane keeps every inside point's winding number). An outline with a
    /// vertex more than [`FAR`] pixels out, where `f64` cannot place its edges to a pixel, is
    /// covered as its bounding box widened to whole pixels (which holds all of it: more, never
    /// less).
    pub fn polygons(&self, w: u32, h: u32) -> Vec<Polygon> {
        let (sx, sy) = if self.fractional {
            (f64::from(w), f64::from(h))
        } else {
            (1.0, 1.0)
        };
        let frame = [-1.0, -1.0, f64::from(w) + 1.0, f64::from(h) + 1.0];
        self.polygons
            .iter()
            .map(|p| {
                let points: Vec<[f64; 2]> = p
                    .points
                    .iter()
                    .map(|&[x, y]| [f64::from(x) * sx, f64::from(y) * sy])
                    .collect();
                let far = points.iter().flatten().any(|v| v.abs() > FAR);
                let points = if far {
                    let (lo, hi) = points.iter().fold(
                        ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]),
                        |(lo, hi), p| {
                            (
                                [lo[0].min(p[0]), lo[1].min(p[1])],
                                [hi[0].max(p[0]), hi[1].max(p[1])],
                            )
                        },
                    );
                    // Widened to whole pixels: the corners go to `f32` below, and an edge a
                    // hair past a pixel's centre (8.50000009) would round onto it (8.5) and
                    // leave that pixel out (found by fuzzing).
                    let [x0, y0, x1, y1] = [
                        lo[0].max(frame[0]).floor(),
                        lo[1].max(frame[1]).floor(),
                        hi[0].min(frame[2]).ceil(),
                        hi[1].min(frame[3]).ceil(),
                    ];
                    vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
                } else {
                    clip_to_rect(points, frame)
                };
                Polygon {
                    points: points
                        .into_iter()
                        .map(|[x, y]| [x as f32, y as f32])
                        .collect(),
                }
            })
            .collect()
    }
}

/// Clips a closed outline to the rectangle `[x0, y0, x1, y1]`, one side after another
/// (Sutherland–Hodgman). Parts outside are replaced by runs along the side, which keeps the
/// winding number of every point inside the rectangle.
fn clip_to_rect(mut points: Vec<[f64; 2]>, [x0, y0, x1, y1]: [f64; 4]) -> Vec<[f64; 2]> {
    // Each side: which axis, the limit, and whether inside is above (true) or below it.
    for (axis, limit, above) in [(0, x0, true), (0, x1, false), (1, y0, true), (1, y1, false)] {
        let inside = |p: &[f64; 2]| {
            if above {
                p[axis] >= limit
            } else {
                p[axis] <= limit
            }
        };
        let cross = |a: &[f64; 2], b: &[f64; 2]| {
            let t = (limit - a[axis]) / (b[axis] - a[axis]);
            let mut p = [0.0; 2];
            p[axis] = limit;
            p[1 - axis] = a[1 - axis] + t * (b[1 - axis] - a[1 - axis]);
            p
        };
        let mut out = Vec::with_capacity(points.len() + 4);
        for (i, b) in points.iter().enumerate() {
            let a = &points[(i + points.len() - 1) % points.len()];
            match (inside(a), inside(b)) {
                (true, true) => out.push(*b),
                (true, false) => out.push(cross(a, b)),
                (false, true) => {
                    out.push(cross(a, b));
                    out.push(*b);
                }
                (false, false) => {}
            }
        }
        points = out;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fractional_zones_scale_to_the_frame() {
        let z = Zones::parse(
            r#"{"units":"fraction","zones":[[[0,0.5],[1,0.5],[1,1]]]}"#,
            Path::new("z.json"),
        )
        .unwrap();
        assert_eq!(
            z.polygons(200, 100)[0].points,
            vec![[0.0, 50.0], [200.0, 50.0], [200.0, 100.0]]
        );
        let z = Zones::parse(r#"{"zones":[[[1,2],[3,4],[5,6]]]}"#, Path::new("z.json")).unwrap();
        assert_eq!(z.polygons(10, 10)[0].points[2], [5.0, 6.0]);
    }

    /// Pixels covered by the zones of `text` in a 40x30 frame.
    fn covered(text: &str) -> crate::redact::CoverageMask {
        let z = Zones::parse(text, Path::new("z.json")).unwrap();
        let mut m = crate::redact::CoverageMask::new(40, 30);
        for p in z.polygons(40, 30) {
            assert!(p.is_finite(), "{text}: {p:?}");
            m.add(&crate::redact::Area::Polygon(p));
        }
        m
    }

    #[test]
    fn zones_reaching_far_past_the_frame_cover_it_to_its_edges() {
        for text in [
            r#"{"units":"fraction","zones":[[[-1e38,-1e38],[1e38,-1e38],[1e38,1e38],[-1e38,1e38]]]}"#,
            r#"{"zones":[[[-3e38,-3e38],[3e38,-3e38],[3e38,3e38],[-3e38,3e38]]]}"#,
        ] {
            assert_eq!(covered(text).fraction(), 1.0, "{text}");
        }
        // A large triangle whose long side is the frame's diagonal: what lies below it is
        // covered, what lies above it is not.
        let m = covered(r#"{"zones":[[[-1e8,-1e8],[1e8,1e8],[-1e8,1e8]]]}"#);
        for y in 0..30 {
            for x in 0..40 {
                if y != x {
                    assert_eq!(m.get(x, y), y > x, "({x},{y})");
                }
            }
        }
        // The same with vertices beyond FAR is covered as its bounding box: all of the frame.
        let m = covered(r#"{"zones":[[[-3e38,-3e38],[3e38,3e38],[-3e38,3e38]]]}"#);
        assert_eq!(m.fraction(), 1.0);
        // Far away and off the frame: nothing.
        let m = covered(r#"{"zones":[[[1e30,0],[2e30,0],[2e30,10]]]}"#);
        assert_eq!(m.fraction(), 0.0);
    }

    #[test]
    fn clipping_keeps_the_inside_of_a_self_crossing_outline() {
        // A star larger than the frame, clipped: every pixel centre inside the star (nonzero) is
        // inside the clipped outline and the other way round.
        let star = Polygon {
            points: (0..5)
                .map(|i| {
                    let a = std::f32::consts::PI * (0.5 + 0.8 * i as f32);
                    [20.0 + 60.0 * a.cos(), 15.0 - 60.0 * a.sin()]
                })
                .collect(),
        };
        let clipped = Zones::pixels(vec![star.clone()]).polygons(40, 30).remove(0);
        for y in 0..30 {
            for x in 0..40 {
                let (cx, cy) = (x as f32 + 0.5, y as f32 + 0.5);
                assert_eq!(star.contains(cx, cy), clipped.contains(cx, cy), "({x},{y})");
            }
        }
    }

    #[test]
    fn bad_zone_files_name_the_file_and_the_problem() {
        let p = Path::new("cam1-zones.json");
        for (text, needle) in [
            (r#"{"zones":[[[1,2],[3,4]]]}"#, "at least 3"),
            ("{\n\"zones\": [[[1,2],[3,4],[5,]]]}", "line 2"),
            (r#"{"zones":[], "unit":"px"}"#, "unknown field"),
            (r#"{"units":"inches","zones":[]}"#, "unknown variant"),
        ] {
            let e = Zones::parse(text, p).unwrap_err().to_string();
            assert!(e.contains("cam1-zones.json") && e.contains(needle), "{e}");
        }
    }
}

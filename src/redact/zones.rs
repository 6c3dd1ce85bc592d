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

/// A set of privacy zones.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Zones {
    polygons: Vec<Polygon>,
    fractional: bool,
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

    /// Reads a zone file.
    pub fn load(path: &Path) -> Result<Zones> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Zones::parse(&text, path)
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
        })
    }

    /// The zones in pixels of a `w` x `h` frame.
    pub fn polygons(&self, w: u32, h: u32) -> Vec<Polygon> {
        if !self.fractional {
            return self.polygons.clone();
        }
        self.polygons
            .iter()
            .map(|p| Polygon {
                points: p
                    .points
                    .iter()
                    .map(|[x, y]| [x * w as f32, y * h as f32])
                    .collect(),
            })
            .collect()
    }
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

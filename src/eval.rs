//! Coverage: how much of each labelled face or plate the applied masks hide.
//!
//! A ground-truth box is *covered* when at least 80 % of its pixels lie under the union of the
//! redaction masks actually applied (after mask scaling, with the configured shapes and zones),
//! computed by the same row spans the redactor paints. Coverage is reported overall and by box
//! height, with the mean share of the image that was masked, so that a setting which "covers"
//! everything by masking the whole frame shows it.
//!
//! Annotation files are JSON lines: `{"image": "rel/path.jpg", "faces": [[x1,y1,x2,y2], ...]}`
//! (or `"plates"`), paths relative to the file's folder.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::geometry::{BBox, Class};
use crate::image_io;
use crate::pipeline::Workers;
use crate::redact;

/// Share of a box's pixels that must be masked for it to count as covered.
pub const COVERED_AT: f64 = 0.8;
/// Lower edges of the height buckets, in pixels.
pub const BUCKETS: [f32; 5] = [0.0, 10.0, 20.0, 40.0, 80.0];

/// One annotated image.
#[derive(Clone, Debug, Deserialize)]
pub struct Annotation {
    /// Image path relative to the annotation file.
    pub image: PathBuf,
    /// Face boxes.
    #[serde(default)]
    pub faces: Vec<[f32; 4]>,
    /// Plate boxes.
    #[serde(default)]
    pub plates: Vec<[f32; 4]>,
}

impl Annotation {
    fn boxes(&self) -> impl Iterator<Item = (Class, BBox)> + '_ {
        let f = self.faces.iter().map(|b| (Class::Face, b));
        let p = self.plates.iter().map(|b| (Class::Plate, b));
        f.chain(p)
            .map(|(c, b)| (c, BBox::new(b[0], b[1], b[2], b[3])))
    }
}

/// Reads an annotation file; errors name the file and line.
pub fn read_annotations(path: &Path) -> Result<Vec<Annotation>> {
    let text = crate::files::read_text_capped(
        path,
        crate::files::MAX_ANNOTATIONS_BYTES,
        "annotation file",
    )?;
    parse_annotations(&text, path)
}

/// Parses annotation JSONL text; `path` names the file in errors.
pub fn parse_annotations(text: &str, path: &Path) -> Result<Vec<Annotation>> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let a: Annotation = serde_json::from_str(line).map_err(|e| Error::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            reason: e.to_string(),
        })?;
        out.push(a);
    }
    Ok(out)
}

/// Covered and total counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Tally {
    /// Boxes with at least [`COVERED_AT`] of their pixels masked.
    pub covered: usize,
    /// Boxes.
    pub total: usize,
}

impl Tally {
    /// Covered fraction, `None` when there are no boxes.
    pub fn fraction(&self) -> Option<f64> {
        (self.total > 0).then(|| self.covered as f64 / self.total as f64)
    }

    fn add(&mut self, covered: bool) {
        self.total += 1;
        self.covered += covered as usize;
    }

    fn merge(&mut self, o: &Tally) {
        self.total += o.total;
        self.covered += o.covered;
    }
}

/// The result of an evaluation.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EvalReport {
    /// Images evaluated.
    pub images: usize,
    /// All boxes.
    pub overall: Tally,
    /// By box height: `<10`, `10-20`, `20-40`, `40-80`, `>=80` px.
    pub by_height: [Tally; 5],
    /// Mean over images of the share of the image that was masked.
    pub mean_masked_fraction: f64,
    /// Detections made, all classes.
    pub detections: usize,
    /// Seconds of wall time.
    pub seconds: f64,
    /// Images that could not be read, with the reason; their boxes are in no tally.
    pub unreadable: Vec<String>,
    /// Labelled boxes of the unreadable images.
    pub unscored_boxes: usize,
    /// Every labelled box that was not covered, image by image in annotation order.
    pub leaks: Vec<Leak>,
}

/// A labelled box that the masks did not cover: where a setting leaks, to look at.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Leak {
    /// Image path as the annotation file gives it.
    #[serde(serialize_with = "crate::files::serialize")]
    pub image: PathBuf,
    /// Class of the labelled box.
    pub class: Class,
    /// The labelled box, `[x1, y1, x2, y2]` in image pixels.
    pub bbox: [f32; 4],
    /// Share of the box's pixels that were masked (below [`COVERED_AT`]).
    pub masked: f64,
}

/// The bucket index of a box height.
pub fn bucket(height: f32) -> usize {
    BUCKETS.iter().rposition(|&lo| height >= lo).unwrap_or(0)
}

/// Bucket labels, in order.
pub const BUCKET_LABELS: [&str; 5] = ["<10", "10-20", "20-40", "40-80", ">=80"];

struct ImageResult {
    tallies: [Tally; 5],
    leaks: Vec<Leak>,
    masked: f64,
    detections: usize,
}

/// Detects and masks every annotated image with `workers` and scores coverage. Images run in
/// parallel on the current rayon pool. An image that cannot be read is listed in
/// [`EvalReport::unreadable`] and its boxes are left out of every tally (the report says so,
/// rather than silently scoring fewer boxes); a detection failure fails the evaluation.
pub fn evaluate(annotations: &Path, workers: &Workers) -> Result<EvalReport> {
    let start = std::time::Instant::now();
    let list = read_annotations(annotations)?;
    let base = annotations.parent().unwrap_or(Path::new("."));
    let results = list
        .par_iter()
        .map(|a| {
            let path = base.join(&a.image);
            let rgb = match image_io::load(&path) {
                Ok(img) => img.image.to_rgb8(),
                Err(e) => return Ok(Err((e.to_string(), a.boxes().count()))),
            };
            let (w, h) = rgb.dimensions();
            workers.with(|r| {
                let found = r.detect(&rgb)?;
                let regions = r.config().regions(&found, w, h);
                let mask = redact::coverage(&regions, w, h);
                let mut tallies = [Tally::default(); 5];
                let mut leaks = Vec::new();
                for (class, b) in a.boxes() {
                    let masked = mask.fraction_of(&b);
                    tallies[bucket(b.height())].add(masked >= COVERED_AT);
                    if masked < COVERED_AT {
                        leaks.push(Leak {
                            image: a.image.clone(),
                            class,
                            bbox: [b.x1, b.y1, b.x2, b.y2],
                            masked,
                        });
                    }
                }
                Ok(Ok(ImageResult {
                    tallies,
                    leaks,
                    masked: mask.fraction(),
                    detections: found.len(),
                }))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut report = EvalReport::default();
    let mut ok = Vec::new();
    for r in results {
        match r {
            Ok(r) => ok.push(r),
            Err((reason, boxes)) => {
                report.unreadable.push(reason);
                report.unscored_boxes += boxes;
            }
        }
    }
    report.images = ok.len();
    let n = ok.len() as f64;
    for r in &mut ok {
        report.leaks.append(&mut r.leaks);
        for (acc, t) in report.by_height.iter_mut().zip(&r.tallies) {
            acc.merge(t);
            report.overall.merge(t);
        }
        report.mean_masked_fraction += r.masked / n;
        report.detections += r.detections;
    }
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// The classes an annotation file labels.
pub fn labelled_classes(annotations: &Path) -> Result<Vec<Class>> {
    let list = read_annotations(annotations)?;
    let mut out = Vec::new();
    if list.iter().any(|a| !a.faces.is_empty()) {
        out.push(Class::Face);
    }
    if list.iter().any(|a| !a.plates.is_empty()) {
        out.push(Class::Plate);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_split_at_the_documented_heights() {
        assert_eq!(bucket(5.0), 0);
        assert_eq!(bucket(10.0), 1);
        assert_eq!(bucket(39.9), 2);
        assert_eq!(bucket(40.0), 3);
        assert_eq!(bucket(500.0), 4);
    }

    #[test]
    fn annotation_lines_parse_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.jsonl");
        std::fs::write(
            &p,
            "{\"image\": \"x.jpg\", \"faces\": [[1,2,3,4]]}\n\n{\"image\": 3}\n",
        )
        .unwrap();
        let e = read_annotations(&p).unwrap_err().to_string();
        assert!(e.contains("a.jsonl") && e.contains("line 3"), "{e}");
        std::fs::write(&p, "{\"image\": \"x.jpg\", \"plates\": [[1,2,3,4]]}\n").unwrap();
        let a = read_annotations(&p).unwrap();
        assert_eq!(
            a[0].boxes().next().unwrap(),
            (Class::Plate, BBox::new(1.0, 2.0, 3.0, 4.0))
        );
        assert_eq!(labelled_classes(&p).unwrap(), vec![Class::Plate]);
    }
}

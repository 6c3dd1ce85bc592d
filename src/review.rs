//! The review workflow: the boxes that were actually redacted, frame by frame, in a JSON file a
//! person can read and edit, and the input rendered again from that file without detecting.
//!
//! Why the *redacted* boxes (after hold and back-fill, in stored pixels) rather than the raw
//! detections: a reviewer edits what the output shows. A missed face gets a box added, a false
//! one is dropped, and `bystander render` makes the output from exactly that list.
//!
//! Failing closed carries over: a frame the file does not mention, or marks `whole_frame`, is
//! rendered fully covered. Deleting a frame's entry by mistake therefore hides the frame rather
//! than showing it clear.
//!
//! Format (version 1):
//!
//! ```json
//! {"bystander_detections": 1, "input": "clip.mp4", "width": 1920, "height": 1080,
//!  "frames": [{"frame": 0, "time": 0.0, "whole_frame": false,
//!              "boxes": [{"class": "face", "score": 0.91, "box": [x1, y1, x2, y2]}]}]}
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::geometry::{BBox, Class, Detection};

/// The format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// The largest frame side accepted in a detections file.
pub const MAX_SIDE: u32 = 1 << 16;

/// One box to redact.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewBox {
    /// What it is (decides the mask's shape and style).
    pub class: Class,
    /// The detector's score; 1 for boxes added by hand (informational).
    #[serde(default = "one")]
    pub score: f32,
    /// `[x1, y1, x2, y2]` in the stored picture's pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

fn one() -> f32 {
    1.0
}

/// The boxes of one frame.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrameBoxes {
    /// Frame index, from 0, in decoding order.
    pub frame: usize,
    /// Presentation time in seconds, as the input times the frame (informational: frames are
    /// matched by index). A clip written in another container than its input's starts at zero
    /// in the output, so there the two differ by the input's start (a Dahua DAV file's counts
    /// from 1970).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<f64>,
    /// The whole frame is covered (it was corrupt, or its detection failed).
    #[serde(default)]
    pub whole_frame: bool,
    /// The boxes redacted.
    #[serde(default)]
    pub boxes: Vec<ReviewBox>,
}

impl FrameBoxes {
    /// The boxes as detections, for the redaction stage.
    pub fn detections(&self) -> Vec<Detection> {
        self.boxes
            .iter()
            .map(|b| Detection {
                class: b.class,
                score: b.score,
                bbox: BBox::new(b.bbox[0], b.bbox[1], b.bbox[2], b.bbox[3]),
                landmarks: Vec::new(),
            })
            .collect()
    }

    /// The frame's entry for `boxes` redacted on frame `frame`.
    pub fn from_detections(
        frame: usize,
        time: Option<f64>,
        whole: bool,
        boxes: &[Detection],
    ) -> Self {
        FrameBoxes {
            frame,
            time,
            whole_frame: whole,
            boxes: boxes
                .iter()
                .map(|d| ReviewBox {
                    class: d.class,
                    score: d.score,
                    bbox: [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2],
                })
                .collect(),
        }
    }
}

/// A whole detections file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detections {
    /// Format version; must be [`FORMAT_VERSION`].
    pub bystander_detections: u32,
    /// The input the boxes were found on (informational).
    #[serde(default, serialize_with = "crate::files::serialize")]
    pub input: PathBuf,
    /// Stored picture width.
    pub width: u32,
    /// Stored picture height.
    pub height: u32,
    /// Frames, each at most once.
    pub frames: Vec<FrameBoxes>,
}

impl Detections {
    /// Parses and checks a detections file held in memory; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Detections> {
        let bad = |line: usize, reason: String| Error::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let d: Detections =
            serde_json::from_str(text).map_err(|e| bad(e.line().max(1), e.to_string()))?;
        if d.bystander_detections != FORMAT_VERSION {
            return Err(bad(
                1,
                format!(
                    "format version {} is not supported (this build reads version {FORMAT_VERSION})",
                    d.bystander_detections
                ),
            ));
        }
        if !(1..=MAX_SIDE).contains(&d.width) || !(1..=MAX_SIDE).contains(&d.height) {
            return Err(bad(
                1,
                format!(
                    "frame size {}x{} is outside 1 to {MAX_SIDE} pixels",
                    d.width, d.height
                ),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for f in &d.frames {
            if !seen.insert(f.frame) {
                return Err(bad(1, format!("frame {} is listed twice", f.frame)));
            }
            for b in &f.boxes {
                let [x1, y1, x2, y2] = b.bbox;
                if !b.bbox.iter().all(|v| v.is_finite()) || x2 < x1 || y2 < y1 {
                    return Err(bad(
                        1,
                        format!(
                            "frame {}: box {:?} is not [x1, y1, x2, y2] with x1 <= x2 and y1 <= y2",
                            f.frame, b.bbox
                        ),
                    ));
                }
                if !b.score.is_finite() {
                    return Err(bad(1, format!("frame {}: score is not a number", f.frame)));
                }
            }
        }
        Ok(d)
    }

    /// Reads and checks a detections file: a regular file of at most
    /// [`crate::files::MAX_DETECTIONS_BYTES`].
    pub fn load(path: &Path) -> Result<Detections> {
        let text = crate::files::read_text_capped(
            path,
            crate::files::MAX_DETECTIONS_BYTES,
            "detections file",
        )?;
        Self::parse(path, &text)
    }

    /// Frames by index.
    pub fn by_frame(&self) -> HashMap<usize, &FrameBoxes> {
        self.frames.iter().map(|f| (f.frame, f)).collect()
    }

    /// Checks that the file was made for a picture of `width` x `height`.
    pub fn check_size(&self, path: &Path, width: u32, height: u32) -> Result<()> {
        if (self.width, self.height) != (width, height) {
            return Err(Error::Parse {
                path: path.to_path_buf(),
                line: 1,
                reason: format!(
                    "the file is for a {}x{} picture but the input is {width}x{height}",
                    self.width, self.height
                ),
            });
        }
        Ok(())
    }
}

/// Writes a detections file frame by frame (a clip's boxes are never all held in memory), under
/// a temporary name renamed into place by [`DetectionsWriter::finish`]. Dropped unfinished, it
/// removes its temporary.
pub struct DetectionsWriter {
    out: Option<BufWriter<File>>,
    tmp: PathBuf,
    dest: PathBuf,
    frames: usize,
}

impl DetectionsWriter {
    /// Starts the file at `dest` for `input` of `width` x `height`.
    pub fn create(dest: &Path, input: &Path, width: u32, height: u32) -> Result<Self> {
        let tmp = crate::image_io::temp_path_for(dest);
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = DetectionsWriter {
            out: Some(BufWriter::new(file)),
            tmp,
            dest: dest.to_path_buf(),
            frames: 0,
        };
        let input = crate::files::json(input).to_string();
        w.write(format_args!(
            "{{\"bystander_detections\": {FORMAT_VERSION}, \"input\": {input}, \"width\": {width}, \"height\": {height},\n\"frames\": [\n"
        ))?;
        Ok(w)
    }

    fn write(&mut self, args: std::fmt::Arguments) -> Result<()> {
        let out = self.out.as_mut().expect("open until finish");
        out.write_fmt(args).map_err(|e| Error::io(&self.tmp, e))
    }

    /// Appends one frame.
    pub fn frame(&mut self, f: &FrameBoxes) -> Result<()> {
        let json = serde_json::to_string(f).map_err(|e| Error::io(&self.tmp, e.into()))?;
        let sep = if self.frames == 0 { "" } else { ",\n" };
        self.frames += 1;
        self.write(format_args!("{sep}{json}"))
    }

    /// Closes the document, syncs it and renames it into place.
    pub fn finish(mut self) -> Result<()> {
        self.write(format_args!("\n]}}\n"))?;
        let out = self.out.take().expect("open until finish");
        let file = out
            .into_inner()
            .map_err(|e| Error::io(&self.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp, e))?;
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))
    }
}

impl Drop for DetectionsWriter {
    fn drop(&mut self) {
        if self.out.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Where `--export-detections` puts the boxes of `output`: beside it, `NAME.detections.json`.
pub fn detections_path_for(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".detections.json");
    output.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_parse_back_to_the_same_frames() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("x.detections.json");
        let frames = vec![
            FrameBoxes {
                frame: 0,
                time: Some(0.0),
                whole_frame: false,
                boxes: vec![ReviewBox {
                    class: Class::Face,
                    score: 0.5,
                    bbox: [1.0, 2.0, 30.0, 40.0],
                }],
            },
            FrameBoxes {
                frame: 1,
                time: Some(0.04),
                whole_frame: true,
                boxes: vec![],
            },
        ];
        let mut w = DetectionsWriter::create(&dest, Path::new("in \"q\".mp4"), 64, 48).unwrap();
        for f in &frames {
            w.frame(f).unwrap();
        }
        w.finish().unwrap();
        let back = Detections::load(&dest).unwrap();
        assert_eq!(back.frames, frames);
        assert_eq!((back.width, back.height), (64, 48));
        assert_eq!(back.input, PathBuf::from("in \"q\".mp4"));
        // Only the finished file is left.
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_unfinished_writer_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dest = d.path().join("x.detections.json");
        let w = DetectionsWriter::create(&dest, Path::new("x"), 4, 4).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    }

    #[test]
    fn bad_files_are_refused_with_the_reason() {
        let p = Path::new("review.json");
        let cases = [
            ("", "EOF"),
            ("{\"bystander_detections\": 2, \"width\": 4, \"height\": 4, \"frames\": []}", "version 2"),
            ("{\"bystander_detections\": 1, \"width\": 0, \"height\": 4, \"frames\": []}", "frame size"),
            (
                "{\"bystander_detections\": 1, \"width\": 4, \"height\": 4, \"frames\": [{\"frame\": 0}, {\"frame\": 0}]}",
                "listed twice",
            ),
            (
                "{\"bystander_detections\": 1, \"width\": 4, \"height\": 4, \"frames\": [{\"frame\": 0, \"boxes\": [{\"class\": \"face\", \"box\": [5, 0, 1, 1]}]}]}",
                "x1 <= x2",
            ),
            (
                "{\"bystander_detections\": 1, \"width\": 4, \"height\": 4, \"frames\": [{\"frame\": 0, \"boxes\": [{\"class\": \"cat\", \"box\": [0, 0, 1, 1]}]}]}",
                "cat",
            ),
            (
                "{\"bystander_detections\": 1, \"width\": 4, \"height\": 4, \"frames\": [{\"frame\": 0, \"boxs\": []}]}",
                "boxs",
            ),
        ];
        for (text, want) in cases {
            let e = Detections::parse(p, text).unwrap_err().to_string();
            assert!(e.contains("review.json") && e.contains(want), "{text}: {e}");
        }
        let ok = "{\"bystander_detections\": 1, \"width\": 4, \"height\": 4, \"frames\": [{\"frame\": 3, \"boxes\": [{\"class\": \"plate\", \"box\": [0, 0, 1, 1]}]}]}";
        let d = Detections::parse(p, ok).unwrap();
        assert_eq!(d.by_frame()[&3].detections()[0].score, 1.0);
        assert!(d
            .check_size(p, 5, 4)
            .unwrap_err()
            .to_string()
            .contains("4x4"));
    }
}

//! Temporal hold: keep a mask on an object through the frames its detector misses.
//!
//! Detectors miss a face for a frame or two as a head turns or motion blurs it; in video one clear
//! frame is a leak. Each detection is associated with a track by IoU against the track's predicted
//! box (constant-velocity motion model from its last two sightings). A track's mask then
//!
//! * **holds** for `hold` frames after its last detection, following the predicted motion, and
//! * is **back-filled** onto the `backfill` frames *before* its first detection, which needs that
//!   many frames of look-ahead: the [`Tracker`] releases frame `i` only once frame `i + backfill`
//!   has been pushed, so latency is bounded by `backfill` frames (0 for live view).
//!
//! Frames on which detection did not run (`--detect-every N`) carry every live track forward.

use std::collections::VecDeque;

use crate::geometry::{BBox, Detection};

/// Hold and back-fill lengths.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct TrackConfig {
    /// Frames a mask persists after the last detection of its object.
    pub hold: usize,
    /// Frames a mask is drawn before the first detection of its object (the look-ahead).
    pub backfill: usize,
    /// IoU between a detection and a track's predicted box for them to be the same object.
    pub iou: f32,
}

impl Default for TrackConfig {
    fn default() -> Self {
        TrackConfig {
            hold: 8,
            backfill: 4,
            iou: 0.2,
        }
    }
}

#[derive(Clone, Debug)]
struct Track {
    last: Detection,
    last_seen: usize,
    /// Per-frame motion of the box centre and size: dx, dy, dw, dh.
    velocity: [f32; 4],
}

impl Track {
    fn predict(&self, index: usize) -> BBox {
        let n = index.saturating_sub(self.last_seen) as f32;
        let b = &self.last.bbox;
        let [dx, dy, dw, dh] = self.velocity;
        let cx = (b.x1 + b.x2) / 2.0 + dx * n;
        let cy = (b.y1 + b.y2) / 2.0 + dy * n;
        BBox::from_center(
            cx,
            cy,
            (b.width() + dw * n).max(1.0),
            (b.height() + dh * n).max(1.0),
        )
    }
}

/// What to redact on one frame, released in frame order.
#[derive(Clone, Debug, PartialEq)]
pub struct TrackedFrame {
    /// Frame index, counting from 0.
    pub index: usize,
    /// Boxes to redact: detections, held boxes and back-filled boxes.
    pub boxes: Vec<Detection>,
    /// The detector's own boxes on this frame (`None` when detection did not run).
    pub detected: Option<Vec<Detection>>,
}

/// Associates detections across frames and adds held and back-filled boxes.
#[derive(Debug)]
pub struct Tracker {
    cfg: TrackConfig,
    tracks: Vec<Track>,
    window: VecDeque<TrackedFrame>,
}

impl Tracker {
    /// A tracker with these hold and back-fill lengths.
    pub fn new(cfg: TrackConfig) -> Self {
        Tracker {
            cfg,
            tracks: Vec::new(),
            window: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TrackConfig {
        &self.cfg
    }

    /// Pushes frame `index` (consecutive from 0) with its detections, or `None` when detection did
    /// not run on it. Returns the frame that leaves the look-ahead window, if any.
    pub fn push(
        &mut self,
        index: usize,
        detections: Option<Vec<Detection>>,
    ) -> Option<TrackedFrame> {
        let mut boxes = Vec::new();
        if let Some(dets) = &detections {
            let mut matched = vec![false; self.tracks.len()];
            // Best-scoring detections claim tracks first.
            let mut order: Vec<usize> = (0..dets.len()).collect();
            order.sort_by(|&a, &b| dets[b].score.total_cmp(&dets[a].score));
            for di in order {
                let d = &dets[di];
                let best = self
                    .tracks
                    .iter()
                    .enumerate()
                    .filter(|(ti, t)| !matched[*ti] && t.last.class == d.class)
                    .map(|(ti, t)| (ti, t.predict(index).iou(&d.bbox)))
                    .filter(|&(_, iou)| iou >= self.cfg.iou)
                    .max_by(|a, b| a.1.total_cmp(&b.1));
                match best {
                    Some((ti, _)) => {
                        matched[ti] = true;
                        let t = &mut self.tracks[ti];
                        let gap = index.saturating_sub(t.last_seen).max(1) as f32;
                        let (o, n) = (&t.last.bbox, &d.bbox);
                        let v = [
                            ((n.x1 + n.x2) - (o.x1 + o.x2)) / 2.0 / gap,
                            ((n.y1 + n.y2) - (o.y1 + o.y2)) / 2.0 / gap,
                            (n.width() - o.width()) / gap,
                            (n.height() - o.height()) / gap,
                        ];
                        // Smooth the motion so one jittery box does not throw the prediction.
                        for (old, new) in t.velocity.iter_mut().zip(v) {
                            *old = 0.5 * *old + 0.5 * new;
                        }
                        t.last = d.clone();
                        t.last_seen = index;
                    }
                    None => {
                        // A new object: draw it on the frames still in the look-ahead window.
                        for f in self.window.iter_mut() {
                            f.boxes.push(d.clone());
                        }
                        self.tracks.push(Track {
                            last: d.clone(),
                            last_seen: index,
                            velocity: [0.0; 4],
                        });
                        matched.push(true);
                    }
                }
            }
            boxes.extend(dets.iter().cloned());
        }
        // Held boxes for tracks not seen on this frame.
        let hold = self.cfg.hold;
        let ran = detections.is_some();
        self.tracks.retain(|t| !ran || index - t.last_seen <= hold);
        for t in &self.tracks {
            if t.last_seen != index {
                boxes.push(Detection {
                    bbox: t.predict(index),
                    landmarks: Vec::new(),
                    ..t.last.clone()
                });
            }
        }
        self.window.push_back(TrackedFrame {
            index,
            boxes,
            detected: detections,
        });
        if self.window.len() > self.cfg.backfill {
            self.window.pop_front()
        } else {
            None
        }
    }

    /// Releases the frames still in the look-ahead window (at the end of a clip).
    pub fn finish(&mut self) -> Vec<TrackedFrame> {
        self.window.drain(..).collect()
    }
}

/// Counts frames on which a detected object has no counterpart (IoU ≥ 0.3, same class) on the
/// previous or the next frame: the flicker that temporal hold exists to cover. `without_hold`
/// compares detections with the neighbours' detections; `with_hold` compares them with the boxes
/// actually redacted on the neighbours (detections plus held and back-filled boxes).
#[derive(Debug, Default)]
pub struct FlickerCounter {
    frames: VecDeque<(Option<Vec<Detection>>, Vec<Detection>)>,
    /// Frames whose detections a neighbour's detections miss.
    pub without_hold: usize,
    /// Frames whose detections a neighbour's redacted boxes miss.
    pub with_hold: usize,
}

impl FlickerCounter {
    fn lonely(d: &Detection, other: &[Detection]) -> bool {
        !other
            .iter()
            .any(|o| o.class == d.class && o.bbox.iou(&d.bbox) >= 0.3)
    }

    /// Adds the next frame: its detections (`None` when detection did not run) and the boxes
    /// redacted on it.
    pub fn push(&mut self, detected: Option<&[Detection]>, redacted: &[Detection]) {
        self.frames
            .push_back((detected.map(<[Detection]>::to_vec), redacted.to_vec()));
        if self.frames.len() < 3 {
            return;
        }
        let [prev, cur, next] = [&self.frames[0], &self.frames[1], &self.frames[2]];
        if let Some(dets) = &cur.0 {
            if let (Some(p), Some(n)) = (&prev.0, &next.0) {
                if dets
                    .iter()
                    .any(|d| Self::lonely(d, p) || Self::lonely(d, n))
                {
                    self.without_hold += 1;
                }
            }
            if dets
                .iter()
                .any(|d| Self::lonely(d, &prev.1) || Self::lonely(d, &next.1))
            {
                self.with_hold += 1;
            }
        }
        self.frames.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Class;

    fn face(x: f32) -> Detection {
        Detection {
            class: Class::Face,
            score: 0.9,
            bbox: BBox::new(x, 10.0, x + 20.0, 30.0),
            landmarks: vec![],
        }
    }

    fn run(cfg: TrackConfig, frames: Vec<Option<Vec<Detection>>>) -> Vec<TrackedFrame> {
        let mut t = Tracker::new(cfg);
        let mut out: Vec<TrackedFrame> = frames
            .into_iter()
            .enumerate()
            .filter_map(|(i, d)| t.push(i, d))
            .collect();
        out.extend(t.finish());
        out
    }

    #[test]
    fn a_missed_frame_is_held_along_the_motion() {
        let cfg = TrackConfig {
            hold: 2,
            backfill: 0,
            iou: 0.2,
        };
        // The face moves 4 px per frame and is missed on frame 3.
        let frames = vec![
            Some(vec![face(0.0)]),
            Some(vec![face(4.0)]),
            Some(vec![face(8.0)]),
            Some(vec![]),
            Some(vec![face(16.0)]),
        ];
        let out = run(cfg, frames);
        assert_eq!(out.len(), 5);
        assert_eq!(out[3].boxes.len(), 1, "held on the missed frame");
        let held = out[3].boxes[0].bbox;
        assert!(
            held.x1 > 8.0 && held.x1 < 16.0,
            "moved with the face: {held:?}"
        );
        assert_eq!(out[4].boxes.len(), 1, "re-associated, not doubled");
    }

    #[test]
    fn holds_end_after_k_frames() {
        let cfg = TrackConfig {
            hold: 2,
            backfill: 0,
            iou: 0.2,
        };
        let mut frames = vec![Some(vec![face(0.0)])];
        frames.extend((0..4).map(|_| Some(vec![])));
        let counts: Vec<usize> = run(cfg, frames).iter().map(|f| f.boxes.len()).collect();
        assert_eq!(counts, vec![1, 1, 1, 0, 0]);
    }

    #[test]
    fn first_detection_is_back_filled_and_latency_is_the_look_ahead() {
        let cfg = TrackConfig {
            hold: 0,
            backfill: 2,
            iou: 0.2,
        };
        let mut t = Tracker::new(cfg);
        assert!(t.push(0, Some(vec![])).is_none());
        assert!(t.push(1, Some(vec![])).is_none());
        // Frame 0 leaves the window when frame 2 arrives: before the face appears on frame 3.
        assert_eq!(t.push(2, Some(vec![])).unwrap().boxes.len(), 0);
        let f1 = t.push(3, Some(vec![face(50.0)])).unwrap();
        assert_eq!((f1.index, f1.boxes.len()), (1, 1), "frame 1 is back-filled");
        let rest = t.finish();
        assert_eq!(
            rest.iter().map(|f| f.boxes.len()).collect::<Vec<_>>(),
            vec![1, 1]
        );
    }

    #[test]
    fn frames_without_detection_carry_tracks_forward() {
        let cfg = TrackConfig {
            hold: 0,
            backfill: 0,
            iou: 0.2,
        };
        let out = run(
            cfg,
            vec![Some(vec![face(0.0)]), None, None, Some(vec![face(2.0)])],
        );
        assert!(out.iter().all(|f| f.boxes.len() == 1));
        assert!(out[1].detected.is_none());
    }

    #[test]
    fn flicker_counts_lonely_detections_with_and_without_hold() {
        let cfg = TrackConfig {
            hold: 2,
            backfill: 1,
            iou: 0.2,
        };
        let mut t = Tracker::new(cfg);
        let mut c = FlickerCounter::default();
        let frames = [
            vec![face(0.0)],
            vec![],
            vec![face(0.0)],
            vec![face(0.0)],
            vec![face(0.0)],
        ];
        let mut out: Vec<TrackedFrame> = frames
            .iter()
            .enumerate()
            .filter_map(|(i, d)| t.push(i, Some(d.clone())))
            .collect();
        out.extend(t.finish());
        for f in &out {
            c.push(f.detected.as_deref(), &f.boxes);
        }
        // Frame 2's face is missing from frame 1's detections, but the hold covers frame 1.
        assert_eq!((c.without_hold, c.with_hold), (1, 0));
    }
}

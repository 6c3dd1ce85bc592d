//! Detection workers: one thread per share of the thread budget, each with its own detectors,
//! taking frames from one bounded queue and answering on another.
//!
//! The workers lend each other their ONNX Runtime sessions (see `detect::Sessions`) but never run
//! one session from two threads at once: ort 2.0.0-rc.15's `Session::run` takes `&mut self`, and
//! its maintainers document that ONNX Runtime's own `Run` is not reliably thread-safe on one
//! session. Memory is kept down by that lending, by one ONNX Runtime arena for every session (see
//! `runtime`), and by bounding the frames in flight.

use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use image::RgbImage;

use super::gate::{Look, LumaCells};
use super::Picture;
use crate::detect::{DetectConfig, DetectorSet};
use crate::error::{Error, Result};
use crate::geometry::{BBox, Class, Detection};

/// A frame to detect on: its index, its pixels and its turn among the interleaved models.
pub(crate) struct Job {
    /// The frame's index in the stream.
    pub index: usize,
    /// Its pixels.
    pub image: Arc<dyn Picture>,
    /// The detected frame's number, which decides the models whose turn it is (see
    /// `DetectorSet::detect_frame_timed`).
    pub turn: usize,
    /// Where to detect.
    pub look: Look,
    /// Where objects were found lately (see `Gate::hints`).
    pub hints: Vec<(Class, BBox)>,
    /// The luma cells of this and the latest detected frames (see [`Pool::change_depth`]).
    pub changes: Vec<(usize, Arc<LumaCells>)>,
    /// Whether to detect with the light plan (`PassPlan::light`).
    pub light: bool,
}

/// A worker's answer for frame `index`.
pub(crate) struct Answer {
    pub index: usize,
    pub result: Result<Vec<Detection>>,
}

/// The worker threads.
pub(crate) struct Pool {
    jobs: Option<SyncSender<Job>>,
    /// Behind a lock only so that the pool (and a `Redactor`) is `Sync`; one thread reads it.
    answers: Mutex<Receiver<Answer>>,
    handles: Vec<JoinHandle<()>>,
    names: Vec<String>,
    seconds: Arc<Mutex<Vec<f64>>>,
    cycle: usize,
    change_depth: usize,
    /// The workers' detectors once more, sharing their sessions, to plan with; never run. Behind
    /// a lock only so that the pool is `Sync`, as `answers`.
    planner: Mutex<DetectorSet>,
    rotation: u32,
}

impl Pool {
    /// Starts `workers` threads, each with the detectors of `detect` (with the share of intra-op
    /// threads set by the caller in `detect`), sharing their sessions. The detectors are built
    /// before any thread starts, so a bad model or a missing runtime fails here, at once. Frames are detected as
    /// displayed rotated `rotation` degrees clockwise, and their boxes mapped back. With
    /// `low_memory`, each model's sessions are capped at what the schedule needs
    /// (`DetectorSet::cap_sessions`).
    pub fn start(
        detect: &DetectConfig,
        workers: usize,
        rotation: u32,
        low_memory: bool,
    ) -> Result<Pool> {
        let n = workers.max(1);
        let first = detect.build()?;
        first.cap_sessions(n, low_memory);
        let planner = Mutex::new(first.fork());
        let mut sets: Vec<DetectorSet> = (1..n).map(|_| first.fork()).collect();
        sets.insert(0, first);
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(n * 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (answer_tx, answers) = mpsc::channel::<Answer>();
        let names = sets[0].model_names();
        let cycle = sets[0].cycle();
        // Frames detected turned are searched whole (no hints, no tile skipping).
        let change_depth = if rotation == 0 {
            sets[0].change_depth()
        } else {
            0
        };
        let seconds = Arc::new(Mutex::new(vec![0.0; names.len()]));
        let mut handles = Vec::with_capacity(n);
        for (i, set) in sets.into_iter().enumerate() {
            let (rx, tx) = (Arc::clone(&job_rx), answer_tx.clone());
            let total = Arc::clone(&seconds);
            let handle = std::thread::Builder::new()
                .name(format!("bystander-detect-{i}"))
                .spawn(move || work(set, &rx, &tx, &total, rotation))
                .map_err(|e| Error::Engine {
                    reason: format!("cannot start a detection thread: {e}"),
                })?;
            handles.push(handle);
        }
        Ok(Pool {
            jobs: Some(job_tx),
            answers: Mutex::new(answers),
            handles,
            names,
            seconds,
            cycle,
            change_depth,
            planner,
            rotation,
        })
    }

    /// Readies the sessions for frames of `size` (as stored, before the pool's rotation), before
    /// the first is sent (see `DetectorSet::make_spare`).
    pub fn prepare(&self, (w, h): (u32, u32)) {
        let upright = if self.rotation % 180 == 90 {
            (h, w)
        } else {
            (w, h)
        };
        let planner = self.planner.lock().unwrap_or_else(|e| e.into_inner());
        planner.make_spare(upright, self.workers());
    }

    /// Queues a frame, to be detected where its `look` says, looking again where its `hints` say
    /// objects were found lately, with the light plan when it says so (waits while the queue is
    /// full).
    pub fn send(&self, job: Job) -> Result<()> {
        let stopped = || Error::Engine {
            reason: "the detection threads stopped".into(),
        };
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())
    }

    /// An answer if one is ready.
    pub fn try_answer(&self) -> Option<Answer> {
        self.answers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_recv()
            .ok()
    }

    /// The next answer, waiting for it.
    pub fn answer(&self) -> Result<Answer> {
        let answers = self.answers.lock().unwrap_or_else(|e| e.into_inner());
        answers.recv().map_err(|_| Error::Engine {
            reason: "the detection threads stopped".into(),
        })
    }

    /// Detected frames over which the interleaved models each take their turn (1 when every
    /// model runs on every frame).
    pub fn cycle(&self) -> usize {
        self.cycle
    }

    /// How many detected frames back a detector compares a frame's luma cells with, to skip the
    /// tiles that did not change since it last looked at them (`DetectorSet::change_depth`); 0
    /// when none does, and the engine measures no cells for it.
    pub fn change_depth(&self) -> usize {
        self.change_depth
    }

    /// Worker threads.
    pub fn workers(&self) -> usize {
        self.handles.len()
    }

    /// Each model's name and its detection time so far, in thread-seconds summed over workers.
    pub fn model_seconds(&self) -> Vec<(String, f64)> {
        let secs = self.seconds.lock().unwrap_or_else(|e| e.into_inner());
        self.names
            .iter()
            .cloned()
            .zip(secs.iter().copied())
            .collect()
    }
}

fn work(
    mut set: DetectorSet,
    jobs: &Mutex<Receiver<Job>>,
    answers: &mpsc::Sender<Answer>,
    total: &Mutex<Vec<f64>>,
    rotation: u32,
) {
    let mut took = vec![0.0; set.detectors().len()];
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(Job {
            index,
            image,
            turn,
            look,
            hints,
            changes,
            light,
        }) = job
        else {
            break;
        };
        took.fill(0.0);
        // Everything done with the job is inside: a panic answers for its frame (which is then
        // covered), where an unanswered frame would hold the engine up for good.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            set.set_light(light);
            // Hints are where objects lay on the stored frame; a frame detected turned has none.
            set.set_hints(if rotation == 0 { &hints } else { &[] });
            // The cells are measured on the stored frame, as the hints are.
            set.set_changes(if rotation == 0 { changes } else { Vec::new() });
            // The frame as RGB lives only while it is detected (see `Picture`).
            let mut result = None;
            let size = image.dimensions();
            image.with_rgb(&mut |rgb| {
                // Boxes are painted in the picture's own size: pixels of another size would put
                // them in the wrong place.
                result = Some(if rgb.dimensions() == size {
                    detect_upright(&mut set, rgb, turn, &look, rotation, &mut took)
                } else {
                    Err(Error::Engine {
                        reason: format!(
                            "the frame's pixels are {}x{}, its picture says {}x{}",
                            rgb.width(),
                            rgb.height(),
                            size.0,
                            size.1
                        ),
                    })
                });
            });
            result.unwrap_or_else(|| {
                Err(Error::Engine {
                    reason: "the frame's pixels were never handed over".into(),
                })
            })
        }))
        .unwrap_or_else(|_| {
            Err(Error::Engine {
                reason: "detection panicked on this frame".into(),
            })
        });
        // Let go of the frame before answering, so that its other holder owns it alone by the
        // time it is redacted (no copy).
        drop(image);
        for (t, s) in total
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter_mut()
            .zip(&took)
        {
            *t += s;
        }
        if answers.send(Answer { index, result }).is_err() {
            break;
        }
    }
}

/// Detects on the picture as displayed (turned `rotation` degrees clockwise), boxes mapped back to
/// the stored pixels; only in the regions of `look` when it gives them (the engine gates only
/// frames stored upright).
fn detect_upright(
    set: &mut DetectorSet,
    image: &RgbImage,
    turn: usize,
    look: &Look,
    rotation: u32,
    took: &mut [f64],
) -> Result<Vec<Detection>> {
    let (w, h) = image.dimensions();
    if let (Look::Regions(regions), 0) = (look, rotation) {
        return set.detect_look_timed(image, Some(turn), Some(regions), took);
    }
    match upright(image, rotation) {
        Some(up) => set.detect_frame_timed(&up, Some(turn), took).map(|ds| {
            ds.into_iter()
                .map(|mut d| {
                    d.bbox = box_from_upright(&d.bbox, rotation, w, h);
                    d.landmarks.clear();
                    d
                })
                .collect()
        }),
        None => set.detect_frame_timed(image, Some(turn), took),
    }
}

/// Maps a box found on the upright picture back to the stored picture, for a stream displayed
/// rotated `rotation` degrees clockwise. `w` and `h` are the stored picture's size.
pub fn box_from_upright(b: &BBox, rotation: u32, w: u32, h: u32) -> BBox {
    let (w, h) = (w as f32, h as f32);
    let point = |u: f32, v: f32| match rotation {
        90 => [v, h - u],
        180 => [w - u, h - v],
        270 => [w - v, u],
        _ => [u, v],
    };
    let [x1, y1] = point(b.x1, b.y1);
    let [x2, y2] = point(b.x2, b.y2);
    BBox::new(x1, y1, x2, y2)
}

/// The upright picture of a stored frame displayed rotated `rotation` degrees clockwise.
pub fn upright(stored: &RgbImage, rotation: u32) -> Option<RgbImage> {
    match rotation {
        90 => Some(image::imageops::rotate90(stored)),
        180 => Some(image::imageops::rotate180(stored)),
        270 => Some(image::imageops::rotate270(stored)),
        _ => None,
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.jobs.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_on_the_upright_picture_map_back_to_the_stored_pixels() {
        let (w, h) = (40u32, 20u32);
        let mut stored = RgbImage::new(w, h);
        // A marked 1-pixel square at stored (30, 5).
        stored.put_pixel(30, 5, image::Rgb([255, 0, 0]));
        for rot in [0, 90, 180, 270] {
            let up = upright(&stored, rot).unwrap_or_else(|| stored.clone());
            let (u, v, _) = up
                .enumerate_pixels()
                .find(|(_, _, p)| p.0[0] == 255)
                .unwrap();
            let b = box_from_upright(
                &BBox::new(u as f32, v as f32, u as f32 + 1.0, v as f32 + 1.0),
                rot,
                w,
                h,
            );
            assert_eq!(b, BBox::new(30.0, 5.0, 31.0, 6.0), "rotation {rot}");
        }
    }
}

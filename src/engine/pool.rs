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
use crate::detect::{DetectConfig, DetectorSet, Rect};
use crate::error::{Error, Result};
use crate::geometry::{BBox, Class, Detection};

/// How a stream's stored frames are shown, which detection follows (see `Pool::start`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Shown {
    /// Display rotation, degrees clockwise (0, 90, 180, 270).
    pub rotation: u32,
    /// A stored pixel's shown width over its height (see [`shown_size`]).
    pub pixel_aspect: f32,
    /// Whether each frame holds two fields taken at different instants (see [`field_of`]).
    pub interlaced: bool,
    /// How the samples encode light: HDR frames are detected as SDR (see `hdr`).
    pub transfer: super::hdr::Transfer,
}

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
    /// Whether the frame showed combing and was searched field by field too (see `comb`).
    pub combed: bool,
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
    shown: Shown,
}

impl Pool {
    /// Starts `workers` threads, each with the detectors of `detect` (with the share of intra-op
    /// threads set by the caller in `detect`), sharing their sessions. The detectors are built
    /// before any thread starts, so a bad model or a missing runtime fails here, at once. Frames are detected as
    /// displayed (`shown`): stretched to their pixels' aspect (see [`shown_size`]), field by
    /// field where they are interlaced (see [`field_of`]), and rotated, and their boxes mapped
    /// back. With
    /// `low_memory`, each model's sessions are capped at what the schedule needs
    /// (`DetectorSet::cap_sessions`).
    pub fn start(
        detect: &DetectConfig,
        workers: usize,
        shown: Shown,
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
        let change_depth = if shown.rotation == 0 && !shown.interlaced {
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
                .spawn(move || work(set, &rx, &tx, &total, shown))
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
            shown,
        })
    }

    /// Readies the sessions for frames of `size` (as stored, before the pool's rotation), before
    /// the first is sent (see `DetectorSet::make_spare`).
    pub fn prepare(&self, size: (u32, u32)) {
        let (w, h) = shown_size(size, self.shown.pixel_aspect);
        let upright = if self.shown.rotation % 180 == 90 {
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
    shown: Shown,
) {
    let rotation = shown.rotation;
    let mut took = vec![0.0; set.detectors().len()];
    // HDR frames as an SDR display shows them, in a buffer kept from frame to frame.
    let (to_sdr, mut sdr) = (shown.transfer.table(), RgbImage::new(0, 0));
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
        let mut combed = false;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            set.set_light(light);
            let size = image.dimensions();
            let whole = shown_size(size, shown.pixel_aspect);
            // Hints are where objects lay on the stored frame, mapped onto the stretched one; a
            // frame detected turned, or field by field, has none.
            let hints: Vec<(Class, BBox)> = match (rotation, shown.interlaced) {
                (0, false) => hints
                    .iter()
                    .map(|(c, b)| (*c, box_to_shown(b, size, whole)))
                    .collect(),
                _ => Vec::new(),
            };
            set.set_hints(&hints);
            // The cells are measured on the stored frame, as the hints are; a stretched frame's
            // tiles cannot be compared with them, and count as changed.
            set.set_changes(if rotation == 0 && !shown.interlaced && whole == size {
                changes
            } else {
                Vec::new()
            });
            // A frame nothing says is interlaced that shows combing is also searched field by
            // field (see `comb`).
            combed = !shown.interlaced && super::comb::combed(&*image);
            // The frame as RGB lives only while it is detected (see `Picture`).
            let mut result = None;
            image.with_rgb(&mut |rgb| {
                let rgb = match to_sdr {
                    Some(table) => {
                        super::hdr::map_into(rgb, table, &mut sdr);
                        &sdr
                    }
                    None => rgb,
                };
                // Boxes are painted in the picture's own size: pixels of another size would put
                // them in the wrong place.
                result = Some(if rgb.dimensions() != size {
                    Err(Error::Engine {
                        reason: format!(
                            "the frame's pixels are {}x{}, its picture says {}x{}",
                            rgb.width(),
                            rgb.height(),
                            size.0,
                            size.1
                        ),
                    })
                } else if shown.interlaced {
                    detect_fields(&mut set, rgb, turn, shown, &mut took)
                } else if combed {
                    detect_combed(&mut set, rgb, whole, turn, &look, shown, &mut took)
                } else {
                    detect_shown(&mut set, rgb, whole, turn, &look, rotation, &mut took)
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
        if answers
            .send(Answer {
                index,
                result,
                combed,
            })
            .is_err()
        {
            break;
        }
    }
}

/// Detects on each field of an interlaced frame (see [`field_of`]) shown at the frame's height,
/// the whole field searched; the boxes of both, in the frame's pixels, are merged where they
/// overlap into one enclosing both instants.
///
/// Why: the two fields of an interlaced frame were taken a field's time apart, and whatever moved
/// in between shows combed, which the models were not trained on; and the mask must cover the
/// face at both instants. The first 60 frames of crowd_1080p woven two to a frame (the top field
/// from one, the bottom from the next): of the faces the default finds at 0.5 or more on the
/// progressive frames, the woven frames detected whole covered 0.834, field by field 0.934
/// (BENCHMARKS.md, "Interlaced frames").
fn detect_fields(
    set: &mut DetectorSet,
    frame: &RgbImage,
    turn: usize,
    shown: Shown,
    took: &mut [f64],
) -> Result<Vec<Detection>> {
    let mut found = Vec::new();
    for first in [0, 1] {
        let Some(field) = field_of(frame, first) else {
            continue;
        };
        // A field's pixels are twice as high as the frame's.
        let aspect = (shown.pixel_aspect / 2.0).max(1.0 / MAX_PIXEL_ASPECT);
        let at = shown_size(field.dimensions(), aspect);
        let boxes = detect_shown(set, &field, at, turn, &Look::Full, shown.rotation, took)?;
        let row = |y: f32| frame_row(y, first, frame.height());
        found.extend(boxes.into_iter().map(|mut d| {
            d.bbox = BBox::new(d.bbox.x1, row(d.bbox.y1), d.bbox.x2, row(d.bbox.y2));
            for p in &mut d.landmarks {
                p[1] = row(p[1]);
            }
            d
        }));
    }
    Ok(crate::detect::nms::merge_enclosing(
        found,
        crate::detect::MERGE_IOU,
    ))
}

/// Detects on a frame that shows combing in a stream not known to be interlaced (see `comb`):
/// as any other frame (`look`, the hints and the changes set for it), then field by field as
/// [`detect_fields`] does, every field searched whole; the boxes of all three are merged where
/// they overlap. The whole pass stays so that a frame taken for combed loses nothing it would
/// have found.
fn detect_combed(
    set: &mut DetectorSet,
    frame: &RgbImage,
    whole: (u32, u32),
    turn: usize,
    look: &Look,
    shown: Shown,
    took: &mut [f64],
) -> Result<Vec<Detection>> {
    let mut found = detect_shown(set, frame, whole, turn, look, shown.rotation, took)?;
    // The hints and changes were measured on the stored frame, not on a field.
    set.set_hints(&[]);
    set.set_changes(Vec::new());
    found.extend(detect_fields(set, frame, turn, shown, took)?);
    Ok(crate::detect::nms::merge_enclosing(
        found,
        crate::detect::MERGE_IOU,
    ))
}

/// Where row position `y` of the field starting at row `first` (see [`field_of`]) lies on its
/// frame of `h` rows.
fn frame_row(y: f32, first: u32, h: u32) -> f32 {
    (2.0 * y + first as f32).min(h as f32)
}

/// The field of `frame` starting at row `first` (0: the top field, 1: the bottom one): every
/// second row, so row `r` of the field is row `2 r + first` of the frame. `None` where the frame
/// has no such row.
pub fn field_of(frame: &RgbImage, first: u32) -> Option<RgbImage> {
    let (w, h) = frame.dimensions();
    let rows = h.saturating_sub(first).div_ceil(2);
    if w == 0 || rows == 0 {
        return None;
    }
    let stride = w as usize * 3;
    let raw = frame.as_raw();
    let mut out = Vec::with_capacity(stride * rows as usize);
    for r in 0..rows as usize {
        let at = (2 * r + first as usize) * stride;
        out.extend_from_slice(&raw[at..at + stride]);
    }
    RgbImage::from_raw(w, rows, out)
}

/// Detects on the picture stretched to `shown` (its display aspect, see [`shown_size`]), then as
/// [`detect_upright`] does, boxes mapped back to the stored pixels.
fn detect_shown(
    set: &mut DetectorSet,
    image: &RgbImage,
    shown: (u32, u32),
    turn: usize,
    look: &Look,
    rotation: u32,
    took: &mut [f64],
) -> Result<Vec<Detection>> {
    let size = image.dimensions();
    let Some(wide) = stretch(image, shown) else {
        return detect_upright(set, image, turn, look, rotation, took);
    };
    let look = match look {
        Look::Regions(regions) => Look::Regions(
            regions
                .iter()
                .map(|r| rect_to_shown(r, size, shown))
                .collect(),
        ),
        Look::Full => Look::Full,
    };
    let (kx, ky) = factors(size, shown);
    detect_upright(set, &wide, turn, &look, rotation, took).map(|ds| {
        ds.into_iter()
            .map(|mut d| {
                d.bbox = BBox::new(
                    d.bbox.x1 / kx,
                    d.bbox.y1 / ky,
                    d.bbox.x2 / kx,
                    d.bbox.y2 / ky,
                );
                for p in &mut d.landmarks {
                    *p = [p[0] / kx, p[1] / ky];
                }
                d
            })
            .collect()
    })
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

/// The widest a stored pixel may be against its height, and the narrowest (its inverse): the
/// anamorphic formats of cameras and broadcast (HDV's 4:3, D1's 64:45, half-D1's 2:1 or so) sit
/// well inside, and a frame stretched this far holds at most four times its stored pixels.
pub const MAX_PIXEL_ASPECT: f32 = 4.0;

/// The size at which a `w` x `h` frame whose pixels are `pixel_aspect` times as wide as they are
/// high (its sample aspect ratio) shows its pictures in their own shape: stretched in width
/// where the pixels are wide, in height where they are tall, never shrunk, so no detail of the
/// stored pixels is lost. Unchanged within half a percent of square pixels, and for an aspect
/// outside [`MAX_PIXEL_ASPECT`] or its inverse (the engine's settings refuse those; a file's
/// is clamped by its front).
///
/// Why: the models were trained on square-pixel pictures. An anamorphic frame shown as stored
/// squeezes faces and plates: on 30 frames of crowd_1080p stored at 1440 x 1080 with pixels 4:3
/// wide (HDV), the default covered 0.889 of the faces it covers at 1920 x 1080, at 960 x 1080
/// with pixels 2:1 wide 0.596, and at 720 x 576 with pixels 64:45 wide (D1 shown 16:9) 0.807
/// against 0.883 at 1024 x 576 (BENCHMARKS.md, "Frames with pixels that are not square").
pub fn shown_size((w, h): (u32, u32), pixel_aspect: f32) -> (u32, u32) {
    let a = pixel_aspect;
    if !(1.0 / MAX_PIXEL_ASPECT..=MAX_PIXEL_ASPECT).contains(&a) || (a - 1.0).abs() <= 0.005 {
        (w, h)
    } else if a > 1.0 {
        (((w as f32 * a).round() as u32).max(w), h)
    } else {
        (w, ((h as f32 / a).round() as u32).max(h))
    }
}

/// How many times the shown frame is wider and higher than the stored one.
fn factors((w, h): (u32, u32), (sw, sh): (u32, u32)) -> (f32, f32) {
    (sw as f32 / w.max(1) as f32, sh as f32 / h.max(1) as f32)
}

/// A box on the stored frame of `size`, on the frame shown at `shown`.
fn box_to_shown(b: &BBox, size: (u32, u32), shown: (u32, u32)) -> BBox {
    let (kx, ky) = factors(size, shown);
    BBox::new(b.x1 * kx, b.y1 * ky, b.x2 * kx, b.y2 * ky)
}

/// A rectangle of the stored frame of `size`, grown to whole pixels of the frame shown at
/// `shown`: it holds every shown pixel that any of its stored pixels contributes to in
/// [`stretch`] (shown pixel `i` mixes the stored ones either side of `(i + 0.5) / k - 0.5`), and
/// one more on each side.
fn rect_to_shown(r: &Rect, size: (u32, u32), shown: (u32, u32)) -> Rect {
    let (kx, ky) = factors(size, shown);
    let from =
        |a: u32, k: f32| (((a as f32 - 0.5) * k - 0.5).floor().max(0.0) as u32).saturating_sub(1);
    let to = |b: u32, k: f32, most: u32| {
        ((((b as f32 + 0.5) * k - 0.5).ceil().max(0.0) as u32) + 1).min(most)
    };
    let (x0, y0) = (from(r.x, kx), from(r.y, ky));
    let (x1, y1) = (to(r.x + r.w, kx, shown.0), to(r.y + r.h, ky, shown.1));
    Rect {
        x: x0.min(x1),
        y: y0.min(y1),
        w: x1.saturating_sub(x0),
        h: y1.saturating_sub(y0),
    }
}

/// `stored` stretched along one axis to `shown` (see [`shown_size`]), each new pixel interpolated
/// linearly between the two stored pixels nearest its centre; `None` unless `shown` is larger
/// along exactly one axis and the same along the other (what [`shown_size`] gives). One axis in
/// integer arithmetic, where a general resize filters both.
pub fn stretch(stored: &RgbImage, shown: (u32, u32)) -> Option<RgbImage> {
    let (w, h) = stored.dimensions();
    let (sw, sh) = shown;
    let one_axis = (sw > w && sh == h) || (sw == w && sh > h);
    if !one_axis || w == 0 || h == 0 {
        return None;
    }
    // For each position along the stretched axis: the stored index before it and the weight
    // (of 256) of the one after.
    let taps = |from: u32, to: u32| -> Vec<(usize, u32)> {
        let k = from as f32 / to as f32;
        (0..to)
            .map(|i| {
                let at = ((i as f32 + 0.5) * k - 0.5).clamp(0.0, (from - 1) as f32);
                let i0 = at.floor() as usize;
                (i0, ((at - i0 as f32) * 256.0).round() as u32)
            })
            .collect()
    };
    let mix =
        |a: u8, b: u8, t: u32| ((u32::from(a) * (256 - t) + u32::from(b) * t + 128) >> 8) as u8;
    let src = stored.as_raw();
    let mut out = Vec::with_capacity(sw as usize * sh as usize * 3);
    if sw != w {
        let taps = taps(w, sw);
        let last = w as usize - 1;
        for row in src.chunks_exact(w as usize * 3) {
            for &(i0, t) in &taps {
                let (a, b) = (i0 * 3, (i0 + 1).min(last) * 3);
                for c in 0..3 {
                    out.push(mix(row[a + c], row[b + c], t));
                }
            }
        }
    } else {
        let taps = taps(h, sh);
        let stride = w as usize * 3;
        let last = h as usize - 1;
        for &(i0, t) in &taps {
            let i1 = (i0 + 1).min(last);
            let (r0, r1) = (&src[i0 * stride..][..stride], &src[i1 * stride..][..stride]);
            out.extend(r0.iter().zip(r1).map(|(&a, &b)| mix(a, b, t)));
        }
    }
    RgbImage::from_raw(sw, sh, out)
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

    #[test]
    fn a_frame_is_shown_stretched_to_its_pixels_aspect_never_shrunk() {
        assert_eq!(shown_size((1440, 1080), 4.0 / 3.0), (1920, 1080));
        assert_eq!(shown_size((720, 576), 64.0 / 45.0), (1024, 576));
        assert_eq!(shown_size((1920, 540), 0.5), (1920, 1080));
        // Square, nearly square, and out of range: as stored.
        for a in [1.0, 1.004, 0.996, 4.5, 0.2, f32::NAN, 0.0, -2.0] {
            assert_eq!(shown_size((640, 480), a), (640, 480), "aspect {a}");
        }
        let img = RgbImage::new(64, 48);
        for shown in [(64, 48), (80, 60), (32, 48), (64, 24), (0, 48)] {
            assert!(stretch(&img, shown).is_none(), "{shown:?}");
        }
        assert_eq!(
            stretch(&img, (80, 48)).map(|i| i.dimensions()),
            Some((80, 48))
        );
        assert_eq!(
            stretch(&img, (64, 96)).map(|i| i.dimensions()),
            Some((64, 96))
        );
    }

    /// Generated frames and objects: a bright rectangle on a dark stored frame, stretched to any
    /// aspect from 1/4 to 4. The stretched frame shows it inside the rectangle mapped to the
    /// shown frame (`rect_to_shown`, the gate's regions), and the box around what it shows, mapped
    /// back, lies within a pixel of the stored rectangle (boxes found on the shown frame mask the
    /// stored object, no less).
    #[test]
    fn an_object_on_a_stretched_frame_maps_back_onto_its_stored_pixels() {
        let mut rng = crate::TestRng::new(17);
        for case in 0..400 {
            let (w, h) = (2 + rng.below(120), 2 + rng.below(120));
            let aspect = if rng.below(2) == 0 {
                1.01 + 2.99 * rng.unit()
            } else {
                1.0 / (1.01 + 2.99 * rng.unit())
            };
            let (x, y) = (rng.below(w), rng.below(h));
            let (rw, rh) = (1 + rng.below(w - x), 1 + rng.below(h - y));
            let mut stored = RgbImage::from_pixel(w, h, image::Rgb([10, 20, 30]));
            for yy in y..y + rh {
                for xx in x..x + rw {
                    stored.put_pixel(xx, yy, image::Rgb([250, 240, 230]));
                }
            }
            let shown = shown_size((w, h), aspect);
            let Some(wide) = stretch(&stored, shown) else {
                // Too few pixels for the aspect to add one.
                assert_eq!(shown, (w, h), "case {case}");
                continue;
            };
            assert_eq!(wide.dimensions(), shown, "case {case}");
            let region = rect_to_shown(&Rect { x, y, w: rw, h: rh }, (w, h), shown);
            let (mut lo, mut hi) = ([u32::MAX; 2], [0u32; 2]);
            for (u, v, p) in wide.enumerate_pixels() {
                if p.0[0] > 10 {
                    let inside = u >= region.x
                        && u < region.x + region.w
                        && v >= region.y
                        && v < region.y + region.h;
                    assert!(inside, "case {case}: {w}x{h} at {aspect} shown {shown:?}: ({x}, {y}, {rw}, {rh}): ({u}, {v}) outside {region:?}");
                }
                if p.0[0] >= 130 {
                    lo = [lo[0].min(u), lo[1].min(v)];
                    hi = [hi[0].max(u + 1), hi[1].max(v + 1)];
                }
            }
            let (kx, ky) = factors((w, h), shown);
            let back = BBox::new(
                lo[0] as f32 / kx,
                lo[1] as f32 / ky,
                hi[0] as f32 / kx,
                hi[1] as f32 / ky,
            );
            let near = |a: f32, b: u32| (a - b as f32).abs() <= 1.0;
            assert!(
                near(back.x1, x)
                    && near(back.y1, y)
                    && near(back.x2, x + rw)
                    && near(back.y2, y + rh),
                "case {case}: {w}x{h} at {aspect}: ({x}, {y}, {rw}, {rh}) came back as {back:?}"
            );
            // And a stored box goes to the shown frame and back unchanged.
            let b = BBox::new(x as f32, y as f32, (x + rw) as f32, (y + rh) as f32);
            let there = box_to_shown(&b, (w, h), shown);
            let again = BBox::new(there.x1 / kx, there.y1 / ky, there.x2 / kx, there.y2 / ky);
            assert!((again.x1 - b.x1).abs() < 1e-3 && (again.x2 - b.x2).abs() < 1e-3);
            assert!((again.y1 - b.y1).abs() < 1e-3 && (again.y2 - b.y2).abs() < 1e-3);
        }
    }

    /// Generated frames and objects: each field holds the object's rows of its parity, and the
    /// box around what a field shows, mapped to the frame's rows as `detect_fields` maps it, lies
    /// within two rows of the object (so the boxes of both fields cover it on the frame).
    #[test]
    fn a_field_shows_its_rows_and_its_boxes_map_back_onto_the_frame() {
        let mut rng = crate::TestRng::new(23);
        for case in 0..300 {
            let (w, h) = (1 + rng.below(60), 1 + rng.below(90));
            let (x, y) = (rng.below(w), rng.below(h));
            let (rw, rh) = (1 + rng.below(w - x), 2 + rng.below(h - y + 1));
            let rh = rh.min(h - y);
            let mut frame = RgbImage::from_pixel(w, h, image::Rgb([0, 0, 0]));
            for yy in y..y + rh {
                for xx in x..x + rw {
                    // Rows remember their own index, to check which rows a field takes.
                    frame.put_pixel(xx, yy, image::Rgb([255, yy as u8, 0]));
                }
            }
            for first in [0u32, 1] {
                let Some(field) = field_of(&frame, first) else {
                    assert!(h <= first, "case {case}");
                    continue;
                };
                assert_eq!(
                    field.dimensions(),
                    (w, (h - first).div_ceil(2)),
                    "case {case}"
                );
                let (mut lo, mut hi) = (u32::MAX, 0u32);
                for (_, r, p) in field.enumerate_pixels() {
                    if p.0[0] == 255 {
                        assert_eq!(u32::from(p.0[1]), 2 * r + first, "case {case}: row {r}");
                        lo = lo.min(r);
                        hi = hi.max(r + 1);
                    }
                }
                if lo == u32::MAX {
                    // The object is one row of the other parity.
                    assert!(rh == 1 || h == 1, "case {case}");
                    continue;
                }
                let row = |v: u32| frame_row(v as f32, first, h) as i64;
                assert!(
                    (row(lo) - y as i64).abs() <= 2,
                    "case {case}, field {first}"
                );
                assert!(
                    (row(hi) - (y + rh) as i64).abs() <= 2,
                    "case {case}, field {first}"
                );
            }
        }
    }
}

//! The frame engine every front runs on: frames in, in order, with their timestamps; redacted
//! frames and their boxes out, in the same order, after a bounded look-ahead.
//!
//! Why one engine: the clip transcoder, the host API ([`crate::stream::Redactor`]) and any later
//! front (a C ABI, a Python package, a live stream) need the same four things, and each got them
//! slightly differently when they were written apart:
//!
//! * a **detector pool** (`pool`): worker threads with their own sessions, sized by a thread
//!   budget, so that consecutive frames are detected in parallel;
//! * the **schedule**: which frames are detected (`detect_every`) and which models look at each
//!   (interleaved turns, the fast preset's plate period; see [`crate::detect::DetectConfig`]);
//! * the **tracker** ([`crate::track`]): hold, back-fill and motion spread, whose look-ahead is
//!   the engine's latency;
//! * the **fail-closed sequencer**: frames leave strictly in order, and a frame that cannot be
//!   trusted (corrupt, lost by the decoder, detection failed) leaves covered whole with its
//!   [`Fault`], the cause kept, never clear.
//!
//! The engine does not paint: each [`Output`] carries the [`Region`]s to paint, and the front
//! paints them in its own pixel format (the clip encoder on the decoded YUV picture, through RGB
//! rectangles; the host API in the host's buffer). A front keeps its frames in flight in its own
//! form too (a [`Picture`]: a clip's frames stay YUV, and only detection sees them as RGB). A
//! front wires a source of frames to a [`FrameSink`] through the engine.
//!
//! Frames in flight are bounded (the workers plus two waiting for detection, plus the
//! tracker's look-ahead), so memory does not grow with the length of a stream.

mod comb;
pub mod gate;
pub mod hdr;
pub mod memory;
mod picture;
pub mod pool;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use image::RgbImage;

use crate::detect::DetectConfig;
use crate::error::{Error, Result};
use crate::geometry::{Class, Detection};
use crate::redact::{RedactConfig, Region};
use crate::track::{FlickerCounter, TrackConfig, TrackedFrame, Tracker};
use gate::{Gate, GateConfig, GateStats};
pub(crate) use picture::narrow10;
pub use picture::{Luma, Picture};
pub use pool::{box_from_upright, upright};

/// Why a frame left the engine covered whole.
///
/// ```
/// use bystander::engine::Fault;
/// let f = Fault::Lost;
/// assert_eq!(f.to_string(), "the decoder never produced the frame");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Fault {
    /// The decoder flagged the frame as corrupt.
    Corrupt,
    /// The decoder never produced the frame; a covered stand-in takes its place and time.
    Lost,
    /// A reviewed detections file marks the frame whole, or does not list it.
    Marked,
    /// Detection failed on the frame; the error says why.
    Detection(Arc<Error>),
    /// The frame came soon after one whose detection failed: its own search left parts of the
    /// picture to that one's (the other models' turns, tiles waiting for their turn, the change
    /// gate), so it cannot be trusted either.
    Unsearched {
        /// The earlier frame, from 0.
        frame: usize,
        /// Why its detection failed.
        error: Arc<Error>,
    },
    /// A live stream's detection fell too far behind the camera: the frame is covered whole
    /// rather than waited for or passed clear.
    Behind,
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Corrupt => f.write_str("the decoder flagged the frame as corrupt"),
            Fault::Lost => f.write_str("the decoder never produced the frame"),
            Fault::Marked => f.write_str("the detections file marks it whole or does not list it"),
            Fault::Behind => f.write_str("detection fell behind the live stream"),
            Fault::Detection(e) => write!(f, "detection failed: {e}"),
            Fault::Unsearched { frame, error } => write!(
                f,
                "it leans on the search of frame {frame}, which failed: {error}"
            ),
        }
    }
}

/// How frames of a sequence are detected and tracked (also the host API's
/// [`StreamConfig`](crate::stream::StreamConfig)).
///
/// ```
/// use bystander::detect::{DetectConfig, Recall};
/// use bystander::engine::EngineConfig;
/// use bystander::redact::RedactConfig;
/// let fast = DetectConfig { recall: Recall::Fast, ..Default::default() };
/// let cfg = EngineConfig::new(fast, RedactConfig::default(), 4);
/// assert_eq!((cfg.workers, cfg.detect_every), (4, 2)); // the fast preset's rule
/// assert!(cfg.track.hold >= cfg.detect_every - 1);
/// let mut bad = cfg.clone();
/// bad.detect_every = 0;
/// assert!(bad.validate().unwrap_err().to_string().contains("1 to 100"));
/// ```
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// What to detect, as given: the engine applies the video plans itself
    /// ([`DetectConfig::for_clips`]), so the photo plan never runs on video frames.
    pub detect: DetectConfig,
    /// How boxes are turned into painted regions.
    pub redact: RedactConfig,
    /// Hold and back-fill.
    pub track: TrackConfig,
    /// Detect on every Nth frame only (1 to 100); the tracker carries masks in between.
    pub detect_every: usize,
    /// Detection threads, each with its own sessions (1 to 256).
    pub workers: usize,
    /// ONNX Runtime intra-op threads per worker session.
    pub intra_threads: usize,
    /// Display rotation of the frames, degrees clockwise (0, 90, 180, 270): detection runs on
    /// the upright picture and boxes come back in stored pixels.
    pub rotation: u32,
    /// How many times as wide as it is high a stored pixel is shown (the stream's sample aspect
    /// ratio; 1 for square pixels, 4:3 for HDV's 1440 x 1080, 64:45 for a 720 x 576 frame shown
    /// 16:9), from 1/4 to 4: detection runs on the frame stretched to that shape (see
    /// [`pool::shown_size`]), as the models were trained on square pixels, and boxes come back
    /// in stored pixels.
    pub pixel_aspect: f32,
    /// Whether each frame holds two fields taken at different instants (interlaced video, as
    /// analog cameras, their DVRs and 1080i record it): detection then runs on each field, line
    /// by line doubled to the frame's height, every detected frame searched whole, and the boxes
    /// of both fields are kept (see [`pool::field_of`]). Twice the detection. When false, a
    /// detected frame that shows combing all the same (woven fields in a stream that does not
    /// say so) is searched field by field as well as whole, and counted in
    /// [`EngineStats::combed_frames`].
    pub interlaced: bool,
    /// How the frames' samples encode light: HDR frames (PQ, HLG) are shown to the detectors as
    /// an SDR display would show them (see [`hdr`]); the frames themselves are not changed.
    pub transfer: hdr::Transfer,
    /// Change- and track-gated detection (see [`gate`]; off by default); frames displayed
    /// rotated, and interlaced frames, are never gated.
    pub gate: GateConfig,
    /// One ONNX Runtime session per model for each worker that can be on the model's turn at
    /// once (one with two workers and models taking turns every second frame), instead of one
    /// per worker: at the default on 2 cores, about 40 MB less at 1080p and 60 MB less at 4K,
    /// for up to 10 % more time, with the same detections (BENCHMARKS.md, "Fewer sessions for less
    /// memory"). Off by default; [`memory::memory_is_short`] says where it fits (the command line
    /// turns it on there unless told not to).
    pub low_memory: bool,
}

impl EngineConfig {
    /// The video settings of a preset for a budget of `threads` threads: every detection worker
    /// gets one ONNX Runtime thread; the fast preset detects every second frame; hold and
    /// back-fill as [`TrackConfig::default`].
    pub fn new(detect: DetectConfig, redact: RedactConfig, threads: usize) -> EngineConfig {
        let detect_every = default_detect_every(&detect);
        EngineConfig {
            detect,
            redact,
            track: TrackConfig::default(),
            detect_every,
            workers: threads.max(1),
            intra_threads: 1,
            rotation: 0,
            pixel_aspect: 1.0,
            interlaced: false,
            transfer: hdr::Transfer::Sdr,
            gate: GateConfig::default(),
            low_memory: false,
        }
        .held_across_skips()
    }

    /// This configuration with the hold long enough to bridge the frames `detect_every` skips
    /// (a hold shorter than the gap between detections would show an object clear in between).
    pub fn held_across_skips(mut self) -> EngineConfig {
        self.track.hold = self.track.hold.max(self.detect_every.saturating_sub(1));
        self
    }

    /// Checks every range, naming the setting and what is allowed, and the models.
    pub fn validate(&self) -> Result<()> {
        self.check_settings()?;
        self.detect.resolve().map(|_| ())
    }

    /// [`EngineConfig::validate`] but for the models, which building the detectors reads and
    /// checks anyway.
    fn check_settings(&self) -> Result<()> {
        self.redact.validate()?;
        self.track.validate()?;
        self.gate.validate()?;
        check_range("detect-every", self.detect_every, 1, 100, "1 to 100")?;
        check_range("workers", self.workers, 1, 256, "1 to 256")?;
        check_range("intra threads", self.intra_threads, 1, 256, "1 to 256")?;
        if ![0, 90, 180, 270].contains(&self.rotation) {
            return Err(Error::InvalidSetting {
                name: "rotation",
                value: self.rotation.to_string(),
                allowed: "0, 90, 180 or 270 degrees",
            });
        }
        let most = pool::MAX_PIXEL_ASPECT;
        if !(1.0 / most..=most).contains(&self.pixel_aspect) {
            return Err(Error::InvalidSetting {
                name: "pixel aspect",
                value: self.pixel_aspect.to_string(),
                allowed: "1/4 to 4 (a stored pixel's width over its height)",
            });
        }
        if self.track.hold + 1 < self.detect_every {
            return Err(Error::InvalidSetting {
                name: "hold",
                value: self.track.hold.to_string(),
                allowed: "at least detect-every minus 1 frames (masks must bridge the frames not detected)",
            });
        }
        Ok(())
    }
}

/// The frames the fast preset skips: it detects every second frame (its interleaved plate model
/// every fourth); the others detect every frame.
pub fn default_detect_every(detect: &DetectConfig) -> usize {
    match detect.recall {
        crate::detect::Recall::Fast => 2,
        _ => 1,
    }
}

/// Whether a preset gates detection by change in files (see [`gate`]), where the look-ahead
/// covers back to the previous sweep ([`crate::video::VideoOptions::swept_back`]): the fast preset
/// does. Over the eleven shared clips, the fast preset gated covers more of what every model finds
/// on every frame than ungated on every clip (4252 boxes against 4175 of 4947; room_432p_long 0.898
/// against 0.864), and on the static-camera clips it runs 1.09 to 1.28 times as fast
/// (BENCHMARKS.md, "The fast preset gates files"). Its crops are looked at at native resolution,
/// where its whole-frame pass shrinks frames to 640 px. The balanced and max presets do not:
/// gated, the balanced preset covers 0.980 of those boxes on five of the clips against 0.982
/// ungated (the plates it misses more are false ones on a crowd with no vehicle in it), and saves
/// no time on a busy scene (BENCHMARKS.md, "Gating at the balanced preset, measured again", and
/// "Back-fill along the motion"). Live streams and the host API have no look-ahead to spare
/// and gate only when asked.
pub fn default_file_gating(detect: &DetectConfig) -> bool {
    detect.recall == crate::detect::Recall::Fast
}

/// Keeps `cells`, of detected frame `turn`, among the `recent` ones a detector compares with,
/// and drops those more than `depth` detected frames back (or ahead: a new schedule numbers its
/// frames afresh). A frame detected with the light plan searches no tile, so no later turn may
/// take it for the search of a tile: it empties the list instead, and the tiles of the next turns
/// count as changed until they are searched again.
fn remember_cells(
    recent: &mut VecDeque<(usize, Arc<gate::LumaCells>)>,
    turn: usize,
    depth: usize,
    cells: Arc<gate::LumaCells>,
    light: bool,
) {
    recent.retain(|(t, _)| t + depth >= turn && *t < turn);
    if light {
        recent.clear();
    } else {
        recent.push_front((turn, cells));
    }
}

pub(crate) fn check_range(
    name: &'static str,
    v: usize,
    lo: usize,
    hi: usize,
    allowed: &'static str,
) -> Result<()> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(Error::InvalidSetting {
            name,
            value: v.to_string(),
            allowed,
        })
    }
}

/// A frame leaving the engine (see [`FrameSink`] for one taken and painted).
///
/// ```
/// use bystander::engine::Output;
/// fn painted_share<T>(out: &Output<T>) -> f64 {
///     let (w, h) = out.image.dimensions();
///     bystander::redact::coverage(&out.regions, w, h).fraction()
/// }
/// ```
#[derive(Debug)]
pub struct Output<T, P = RgbImage> {
    /// Its position in the sequence, from 0.
    pub index: usize,
    /// The frame's pixels as pushed (not painted yet).
    pub image: P,
    /// What the front pushed with it.
    pub payload: T,
    /// The boxes redacted on it: detections, held and back-filled boxes.
    pub boxes: Vec<Detection>,
    /// What to paint: the zones and the boxes' masks, or the whole frame for a fault.
    pub regions: Vec<Region>,
    /// Why it is covered whole, if it is.
    pub fault: Option<Fault>,
    /// The detector's own boxes on this frame (`None` when it was not detected).
    pub detected: Option<Vec<Detection>>,
}

/// Where a front sends the frames the engine releases (an encoder, a host's callback, a pipe).
/// A closure taking an [`Output`] is one.
///
/// ```no_run
/// use bystander::engine::{Engine, EngineConfig, Output};
/// let mut engine: Engine<i64> = Engine::new(&EngineConfig::default())?;
/// let mut sink = |out: Output<i64>| {
///     let mut image = out.image;
///     bystander::redact::redact(&mut image, &out.regions); // paint, then send on
///     println!("pts {} with {} boxes", out.payload, out.boxes.len());
///     Ok(())
/// };
/// engine.push(image::RgbImage::new(640, 480), 0, None, &mut sink)?;
/// engine.finish(&mut sink)?;
/// # Ok::<(), bystander::Error>(())
/// ```
pub trait FrameSink<T, P = RgbImage> {
    /// Takes the next frame, in order.
    fn frame(&mut self, out: Output<T, P>) -> Result<()>;
}

impl<T, P, F: FnMut(Output<T, P>) -> Result<()>> FrameSink<T, P> for F {
    fn frame(&mut self, out: Output<T, P>) -> Result<()> {
        self(out)
    }
}

/// What the engine counted.
///
/// ```no_run
/// # use bystander::stream::{Redactor, StreamConfig};
/// # let r = Redactor::new(&StreamConfig::default())?;
/// let s = r.stats();
/// println!("{} frames, {} detected, {} covered whole", s.frames, s.detected_frames, s.fail_closed_frames);
/// # Ok::<(), bystander::Error>(())
/// ```
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct EngineStats {
    /// Frames released.
    pub frames: usize,
    /// Frames detection ran on.
    pub detected_frames: usize,
    /// Of those, frames detected with the light plan (see [`Engine::set_light`]).
    pub light_frames: usize,
    /// Frames covered whole, by any fault.
    pub fail_closed_frames: usize,
    /// Detected frames of a stream not known to be interlaced that showed combing, and were
    /// searched field by field as well as whole.
    pub combed_frames: usize,
    /// Face detections (detector output, before hold).
    pub faces: usize,
    /// Plate detections.
    pub plates: usize,
    /// Frames with a detection that the previous or next frame's detections lack.
    pub flicker_frames_without_hold: usize,
    /// Frames with a detection the neighbours' redacted boxes do not cover.
    pub flicker_frames_with_hold: usize,
    /// Seconds the pushing thread spent in the tracker.
    pub track_seconds: f64,
    /// Seconds the pushing thread waited for detection results.
    pub wait_for_detect_seconds: f64,
    /// What the change gate did.
    pub gate: GateStats,
}

struct Slot<T, P> {
    index: usize,
    image: Arc<P>,
    payload: T,
    fault: Option<Fault>,
    /// `None`: not detected; `Some(None)`: awaiting the workers; `Some(Some(r))`: answered.
    awaiting: Option<Option<std::result::Result<Vec<Detection>, Arc<Error>>>>,
    /// Boxes given by the front (render mode).
    given: Option<Vec<Detection>>,
}

/// A failed detection, and the frames covered whole for it (see `Engine::forget_search`).
struct Failed {
    frame: usize,
    /// Frames still to be sent for detection with the full plan before no frame leans on its
    /// search (the frames up to and including the last of them are covered).
    searches_left: usize,
    error: Arc<Error>,
}

/// A frame handed to the tracker, waiting for its look-ahead.
struct Held<T, P> {
    image: Arc<P>,
    payload: T,
    fault: Option<Fault>,
}

/// The engine. `T` is what a front carries along with each frame (its timestamp, its own buffer).
///
/// ```no_run
/// use bystander::engine::{Engine, EngineConfig, Fault};
/// let mut engine: Engine<u64> = Engine::new(&EngineConfig::default())?;
/// let mut out = Vec::new();
/// // A frame the decoder flagged goes in with its fault: it is not detected and leaves covered.
/// engine.push(image::RgbImage::new(64, 64), 1, Some(Fault::Corrupt), &mut |o| Ok(out.push(o)))?;
/// engine.finish(&mut |o| Ok(out.push(o)))?;
/// assert!(out[0].fault.is_some());
/// # Ok::<(), bystander::Error>(())
/// ```
pub struct Engine<T, P = RgbImage> {
    pool: Option<pool::Pool>,
    tracker: Tracker,
    redact: RedactConfig,
    detect_every: usize,
    /// Whether detection uses the light plans (see [`Engine::set_light`]).
    light: bool,
    max_waiting: usize,
    slots: VecDeque<Slot<T, P>>,
    held: BTreeMap<usize, Held<T, P>>,
    next_index: usize,
    flicker: FlickerCounter,
    stats: EngineStats,
    gate: Gate,
    /// The luma cells of the latest detected frames, by detected-frame number, latest first, as
    /// far back as a detector compares them (see `pool::Pool::change_depth`).
    recent_cells: VecDeque<(usize, Arc<gate::LumaCells>)>,
    /// The latest failed detection, while frames are covered whole for it.
    failed: Option<Failed>,
    /// ONNX Runtime threads per worker (0 without detectors).
    intra_threads: usize,
}

impl<T: Send, P: Picture + Clone> Engine<T, P> {
    /// Starts the detector pool of `cfg` (every model's first session is built before this
    /// returns, so a bad model or a missing runtime is an error here, not on a frame).
    pub fn new(cfg: &EngineConfig) -> Result<Engine<T, P>> {
        // The models are read and their sha256 checked once, by the pool's build: each read is
        // 11 ms for the fast clip preset's three, per clip of a batch.
        cfg.check_settings()?;
        let mut detect = cfg.detect.for_clips();
        detect.intra_threads = cfg.intra_threads;
        let shown = pool::Shown {
            rotation: cfg.rotation,
            pixel_aspect: cfg.pixel_aspect,
            interlaced: cfg.interlaced,
            transfer: cfg.transfer,
        };
        let pool = pool::Pool::start(&detect, cfg.workers, shown, cfg.low_memory)?;
        Ok(Engine::with_pool(Some(pool), cfg))
    }

    /// An engine without detectors, for boxes given frame by frame ([`Engine::push_given`]):
    /// rendering a reviewed detections file.
    pub fn given(redact: RedactConfig) -> Engine<T, P> {
        let cfg = EngineConfig {
            track: TrackConfig {
                hold: 0,
                backfill: 0,
                ..TrackConfig::default()
            },
            ..EngineConfig::new(DetectConfig::default(), redact, 1)
        };
        Engine::with_pool(None, &cfg)
    }

    fn with_pool(pool: Option<pool::Pool>, cfg: &EngineConfig) -> Engine<T, P> {
        let workers = pool.as_ref().map_or(1, |p| p.workers());
        let detecting = pool.is_some();
        // Two frames beyond one per worker keep every worker fed while a slow frame (tiles) holds
        // the order up; each frame waiting is a picture (a clip's: 3 MB of YUV at 1080p).
        // Twice the workers plus two (two frames more on 2 cores, 19 MB at 1080p) was measured as
        // no faster on crowd_1080p.
        let max_waiting = workers + 2;
        let gate = GateConfig {
            enabled: cfg.gate.enabled && cfg.rotation == 0 && !cfg.interlaced && pool.is_some(),
            ..cfg.gate
        };
        // A change stays in view until every interleaved model has looked at it; a detection
        // until its hold ends, counting the frames in flight when it was found.
        let persist = pool.as_ref().map_or(1, |p| p.cycle()).max(2);
        let watch_for = cfg.track.hold.max(cfg.detect_every) + max_waiting * cfg.detect_every;
        Engine {
            gate: Gate::new(gate, persist, watch_for, max_waiting),
            recent_cells: VecDeque::new(),
            failed: None,
            pool,
            tracker: Tracker::new(cfg.track),
            redact: cfg.redact.clone(),
            detect_every: cfg.detect_every.max(1),
            light: false,
            max_waiting,
            slots: VecDeque::new(),
            held: BTreeMap::new(),
            next_index: 0,
            flicker: FlickerCounter::default(),
            stats: EngineStats::default(),
            intra_threads: if detecting { cfg.intra_threads } else { 0 },
        }
    }

    /// Detects every `n`th frame from the next push on (1 to 100), holding masks at least across
    /// the skipped frames: the live runner's way of keeping up when detection falls behind.
    pub fn set_detect_every(&mut self, n: usize) {
        self.detect_every = n.clamp(1, 100);
        let hold = self.tracker.config().hold.max(self.detect_every - 1);
        self.tracker.set_hold(hold);
    }

    /// Detects with every model's light plan ([`crate::detect::PassPlan::light`]: a smaller
    /// working size, no tiles) from the next push on, or with the configured plans: the live
    /// runner's last way of keeping up before it covers frames whole.
    pub fn set_light(&mut self, light: bool) {
        self.light = light;
    }

    /// Lets at most `n` frames (at least one per worker) wait for detection or for the frames
    /// before them, instead of the workers plus two: less delay for a live stream, whose
    /// frames then wait in the input while detection is busy, where the ladder sees them.
    pub fn set_max_waiting(&mut self, n: usize) {
        self.max_waiting = n.max(self.workers()).min(self.max_waiting);
    }

    /// The current detection schedule: every how many frames one is detected.
    pub fn detect_every(&self) -> usize {
        self.detect_every
    }

    /// Frames between a push and the release of that frame, at the least (the tracker's
    /// look-ahead; detection in flight can add to it).
    pub fn latency_frames(&self) -> usize {
        self.tracker.config().backfill
    }

    /// Pushes the next frame, with `fault` when the front already knows it cannot be trusted
    /// (it is then not detected and leaves covered). Frames that are ready go to `sink`, in
    /// order. Waits while too many frames are in flight. The first frame also waits while the
    /// models that tile frames of its size get their second session, which the workers would
    /// otherwise make while frames are in flight (see `DetectorSet::make_spare`).
    pub fn push(
        &mut self,
        image: P,
        payload: T,
        fault: Option<Fault>,
        sink: &mut dyn FrameSink<T, P>,
    ) -> Result<()> {
        let index = self.next_index;
        self.next_index += 1;
        if let (0, Some(pool)) = (index, &self.pool) {
            pool.prepare(image.dimensions());
        }
        let image = Arc::new(image);
        let detect = fault.is_none() && index.is_multiple_of(self.detect_every);
        // Detected all the same: its boxes feed the hold of the frames after the cover.
        let fault = fault.or_else(|| self.leaning_on_failure(index));
        if detect && self.pool.is_some() && !self.light {
            if let Some(f) = self.failed.as_mut() {
                f.searches_left = f.searches_left.saturating_sub(1);
            }
        }
        let awaiting = match (&self.pool, detect) {
            (Some(pool), true) => {
                let turn = index / self.detect_every;
                let depth = pool.change_depth();
                let cells = (self.gate.enabled() || depth > 0)
                    .then(|| Arc::new(gate::LumaCells::of(&*image)));
                let look = self.gate.look_at(index, cells.as_deref());
                if let Some(cells) = cells.filter(|_| depth > 0) {
                    remember_cells(&mut self.recent_cells, turn, depth, cells, self.light);
                }
                pool.send(pool::Job {
                    index,
                    image: Arc::clone(&image) as Arc<dyn Picture>,
                    turn,
                    look,
                    hints: self.gate.hints(index),
                    changes: self.recent_cells.iter().cloned().collect(),
                    light: self.light,
                })?;
                self.stats.detected_frames += 1;
                self.stats.light_frames += usize::from(self.light);
                Some(None)
            }
            _ => None,
        };
        self.slots.push_back(Slot {
            index,
            image,
            payload,
            fault,
            awaiting,
            given: None,
        });
        self.drain(false, sink)
    }

    /// Pushes the next frame with the boxes to redact on it, as given (no detection, no hold);
    /// with a `fault` it is covered whole instead.
    pub fn push_given(
        &mut self,
        image: P,
        payload: T,
        fault: Option<Fault>,
        boxes: Vec<Detection>,
        sink: &mut dyn FrameSink<T, P>,
    ) -> Result<()> {
        let index = self.next_index;
        self.next_index += 1;
        self.slots.push_back(Slot {
            index,
            image: Arc::new(image),
            payload,
            fault,
            awaiting: None,
            given: Some(boxes),
        });
        self.drain(false, sink)
    }

    /// Releases the frames whose detection has finished, in order, without waiting: for a front
    /// that has no frame to push just now (a live stream between two frames).
    pub fn poll(&mut self, sink: &mut dyn FrameSink<T, P>) -> Result<()> {
        self.drain(false, sink)
    }

    /// Waits for every frame in detection and releases what the tracker lets go (all of them
    /// when there is no look-ahead), without ending the stream.
    pub fn wait(&mut self, sink: &mut dyn FrameSink<T, P>) -> Result<()> {
        self.drain(true, sink)
    }

    /// Releases every frame still in flight (at the end of a stream).
    pub fn finish(&mut self, sink: &mut dyn FrameSink<T, P>) -> Result<()> {
        self.drain(true, sink)?;
        for f in self.tracker.finish() {
            self.release(f, sink)?;
        }
        Ok(())
    }

    /// What the engine counted so far.
    pub fn stats(&self) -> EngineStats {
        let mut s = self.stats.clone();
        s.flicker_frames_without_hold = self.flicker.without_hold;
        s.flicker_frames_with_hold = self.flicker.with_hold;
        s.gate = self.gate.stats();
        s
    }

    /// Each model's name and detection time, in thread-seconds summed over workers.
    pub fn model_seconds(&self) -> Vec<(String, f64)> {
        self.pool
            .as_ref()
            .map_or_else(Vec::new, |p| p.model_seconds())
    }

    /// Detection workers.
    pub fn workers(&self) -> usize {
        self.pool.as_ref().map_or(0, |p| p.workers())
    }

    /// ONNX Runtime threads each detection worker runs with (0 without detectors).
    pub fn intra_threads(&self) -> usize {
        self.intra_threads
    }

    fn store(&mut self, a: pool::Answer) {
        self.stats.combed_frames += usize::from(a.combed);
        let result = match a.result {
            Ok(found) => {
                self.gate.watch(a.index, &found);
                Ok(found)
            }
            Err(e) => {
                let e = Arc::new(e);
                self.forget_search(a.index, &e);
                Err(e)
            }
        };
        if let Some(s) = self.slots.iter_mut().find(|s| s.index == a.index) {
            s.awaiting = Some(Some(result));
        }
    }

    /// Fails closed after the detection of frame `index` failed. What a frame's search leaves
    /// out it takes from earlier searches: the other models' turns, carried by the hold; the
    /// tiles waiting for their turn and the cells the gate passes over, which did not change
    /// since they were searched. This one was taken for searched when the frames after it were
    /// sent. So every frame after it is covered whole ([`Fault::Unsearched`]; detected all the
    /// same) until each model has searched a frame sent from now on (counted in frames detected
    /// with the full plan, so a schedule that slows down meanwhile does not end the cover early),
    /// and those searches take nothing from before: the gate sweeps and holds every cell in view
    /// for each model's turn, and no tile is compared with cells from before now (each counts as
    /// changed).
    fn forget_search(&mut self, index: usize, error: &Arc<Error>) {
        self.gate.forget();
        self.recent_cells.clear();
        let cycle = self.pool.as_ref().map_or(1, |p| p.cycle());
        let left = self
            .failed
            .as_ref()
            .map_or(cycle, |f| f.searches_left.max(cycle));
        self.failed = Some(Failed {
            frame: index,
            searches_left: left,
            error: Arc::clone(error),
        });
        for i in (index + 1)..self.next_index {
            let fault = self.leaning_on_failure(i);
            if let Some(s) = self.slots.iter_mut().find(|s| s.index == i) {
                s.fault = s.fault.take().or(fault);
            }
        }
    }

    /// Why frame `index` is covered whole for an earlier frame's failed detection, if it is.
    fn leaning_on_failure(&self, index: usize) -> Option<Fault> {
        self.failed
            .as_ref()
            .filter(|f| f.frame < index && f.searches_left > 0)
            .map(|f| Fault::Unsearched {
                frame: f.frame,
                error: Arc::clone(&f.error),
            })
    }

    /// Collects answers and moves finished frames, in order, through the tracker; with `all`,
    /// waits for every answer, else only while too many frames wait.
    fn drain(&mut self, all: bool, sink: &mut dyn FrameSink<T, P>) -> Result<()> {
        loop {
            while let Some(a) = self.pool.as_ref().and_then(|p| p.try_answer()) {
                self.store(a);
            }
            let front_ready = self
                .slots
                .front()
                .map(|s| !matches!(s.awaiting, Some(None)));
            match front_ready {
                None => return Ok(()),
                Some(true) => {
                    let slot = self.slots.pop_front().ok_or_else(|| Error::Engine {
                        reason: "the frame queue emptied under it".into(),
                    })?;
                    self.advance(slot, sink)?;
                }
                Some(false) => {
                    if !all && self.slots.len() <= self.max_waiting {
                        return Ok(());
                    }
                    let pool = self.pool.as_ref().ok_or_else(|| Error::Engine {
                        reason: "a frame awaits detection without detectors".into(),
                    })?;
                    let started = Instant::now();
                    let a = pool.answer()?;
                    self.stats.wait_for_detect_seconds += started.elapsed().as_secs_f64();
                    self.store(a);
                }
            }
        }
    }

    /// Hands a finished slot to the tracker (or straight out, with given boxes).
    fn advance(&mut self, slot: Slot<T, P>, sink: &mut dyn FrameSink<T, P>) -> Result<()> {
        let Slot {
            index,
            image,
            payload,
            mut fault,
            awaiting,
            given,
        } = slot;
        if let Some(boxes) = given {
            self.count(&boxes);
            self.held.insert(
                index,
                Held {
                    image,
                    payload,
                    fault,
                },
            );
            let f = TrackedFrame {
                index,
                boxes,
                detected: None,
            };
            return self.release(f, sink);
        }
        let detections = match awaiting {
            None if fault.is_some() => Some(Vec::new()),
            None => None,
            Some(Some(Ok(d))) => Some(d),
            Some(Some(Err(e))) => {
                fault = Some(Fault::Detection(e));
                Some(Vec::new())
            }
            Some(None) => {
                return Err(Error::Engine {
                    reason: "a frame left before its detection".into(),
                })
            }
        };
        if let Some(d) = &detections {
            self.count(d);
        }
        self.held.insert(
            index,
            Held {
                image,
                payload,
                fault,
            },
        );
        let started = Instant::now();
        let tracked = self.tracker.push(index, detections);
        self.stats.track_seconds += started.elapsed().as_secs_f64();
        match tracked {
            Some(f) => self.release(f, sink),
            None => Ok(()),
        }
    }

    fn count(&mut self, dets: &[Detection]) {
        for d in dets {
            match d.class {
                Class::Face => self.stats.faces += 1,
                Class::Plate => self.stats.plates += 1,
            }
        }
    }

    fn release(&mut self, f: TrackedFrame, sink: &mut dyn FrameSink<T, P>) -> Result<()> {
        let Held {
            image,
            payload,
            fault,
        } = self.held.remove(&f.index).ok_or_else(|| Error::Engine {
            reason: format!("frame {} was released twice", f.index),
        })?;
        let image = Arc::try_unwrap(image).unwrap_or_else(|shared| (*shared).clone());
        let (w, h) = image.dimensions();
        let regions = match fault {
            Some(_) => {
                self.stats.fail_closed_frames += 1;
                vec![Region::whole_frame(w, h)]
            }
            None => self.redact.regions(&f.boxes, w, h),
        };
        self.flicker.push(f.detected.as_deref(), &f.boxes);
        self.stats.frames += 1;
        sink.frame(Output {
            index: f.index,
            image,
            payload,
            boxes: f.boxes,
            regions,
            fault,
            detected: f.detected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cells a detector may compare with are those of the latest detected frames within the
    /// depth, never of a frame the light plan detected, nor of another schedule's numbering.
    #[test]
    fn cells_remembered_are_recent_and_never_of_a_light_frame() {
        let cells = |v: usize| Arc::new(gate::LumaCells::from_means(8, 8, vec![v as u8]));
        let turns = |r: &VecDeque<(usize, Arc<gate::LumaCells>)>| -> Vec<usize> {
            r.iter().map(|(t, _)| *t).collect()
        };
        let mut recent = VecDeque::new();
        for t in 0..6 {
            remember_cells(&mut recent, t, 2, cells(t), false);
        }
        assert_eq!(turns(&recent), vec![5, 4, 3]);
        remember_cells(&mut recent, 6, 2, cells(6), true);
        assert!(recent.is_empty());
        for t in 7..9 {
            remember_cells(&mut recent, t, 2, cells(t), false);
        }
        assert_eq!(turns(&recent), vec![8, 7]);
        // Detect-every doubled: the frames are numbered afresh from a lower number.
        remember_cells(&mut recent, 4, 2, cells(40), false);
        assert_eq!(turns(&recent), vec![4]);
    }
}

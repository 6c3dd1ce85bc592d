//! Detection: from an RGB frame to boxes of faces and plates in frame pixels.
//!
//! Three layers, each with one job:
//!
//! * a model family (`centerface`, `retina`, `yolo`, `text`) turns one rectangle of the frame
//!   into boxes: preprocess → run → postprocess. What is not the family's own lives once: the
//!   loaded model, its sessions and the run itself (`Loaded`), `preprocess` (resize, letterbox,
//!   tensor packing) and `nms`; a family adds its input's scaling and its decoder;
//! * a [`ModelDetector`] decides which rectangles at which scale one model looks at: the whole
//!   frame at a working size (magnified up to 2× for small frames, because that is what finds
//!   faces under 20 px), plus native-resolution tiles when the working size shrinks a large
//!   frame; small boxes cut by a tile's edge are kept (an object wider than the tiles' overlap
//!   is cut in every tile, and only its pieces cover it) and passes are merged by enclosure; where
//!   the plan says so (the plate YOLO), boxes just under the threshold get a second look,
//!   magnified, and are kept only if it scores them over it ([`SECOND_LOOK_ZOOM`]);
//! * a [`DetectorSet`] runs the models chosen for each class and merges their boxes by
//!   enclosure, so a tight box from one model never shrinks a looser one from another.
//!
//! Which models, thresholds and plans are used is a [`Recall`] preset; every number in a preset
//! can be overridden in [`DetectConfig`].

mod centerface;
pub mod nms;
#[cfg(feature = "internals")]
pub mod preprocess;
#[cfg(not(feature = "internals"))]
mod preprocess;
mod retina;
pub mod rotate;
mod text;
mod yolo;

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use image::RgbImage;
use ndarray::ArrayViewD;
use ort::session::Session;
use ort::value::TensorRef;

use crate::engine::gate::LumaCells;
use crate::error::{Error, Result};
use crate::geometry::{BBox, Class, Detection};
use crate::models::{self, Family, ModelData};
pub use preprocess::Rect;
use preprocess::TensorBuilder;

/// Working size of the balanced preset's face models on clips (see [`DetectConfig::for_clips`]).
pub const CLIP_WORKING_SIZE: u32 = 960;
/// Which face model keeps native-resolution tiles on clips at the balanced preset, on frames its
/// 960-px whole-frame pass shrinks below 0.8 of their size (from 1200 px on): CenterFace.
///
/// Whole at 960 px, a 1080p frame's faces reach the models at half their size and a 4K frame's at
/// a quarter, and the small ones are lost. Measured on the WIDER dev photos laid out in large
/// frames, at their own size in 1080p and twice it in 4K (`scripts/face_mosaic.py`, `bystander
/// eval --as-clip`), faces 20 to 40 px high: 0.62 covered in 1080p frames and 0.15 in 4K ones
/// whole, against 0.87 and 0.85 with CenterFace's tiles (0.88 with both models tiled; in 1080p
/// frames, 0.70 with RetinaFace alone tiled and 0.87 with CenterFace alone). CenterFace
/// finds the most small faces, so it alone pays for them: about five times its whole-frame cost
/// on its turns, and 1.43 times the default's time on crowd_1080p. RetinaFace keeps looking at the
/// whole frame on its turns, and the hold bridges them (BENCHMARKS.md, "Small faces in large
/// frames").
pub const CLIP_FACE_TILES: Family = Family::CenterFace;
/// Over how many of CenterFace's turns its clip tiles ([`CLIP_FACE_TILES`]) are spread
/// ([`PassPlan::tile_rounds`]): half of them on each turn, in a checkerboard, and on every turn
/// the tiles that hold a face found lately ([`ModelDetector::set_hints`]) or whose picture changed
/// since the model last searched them (`ModelDetector::set_changes`). CenterFace takes every
/// second frame, so a still tile with no face in it comes every fourth frame, showing what the
/// model saw there four frames before; neighbouring tiles alternate, so an object in their
/// overlap is seen on every turn, and the whole-frame pass runs on each. A face being followed
/// keeps every turn: without that rule, the walkers at the back of crowd_1080p, found now and then
/// at scores 0.15 to 0.25, lapsed, and the default covered 2130 of 2191 reference face boxes on
/// two 1080p clips against 2164; with it, 2164. Where the picture is still, the tiles cost half;
/// on crowd_1080p, whose faces fill every tile, nothing changes (BENCHMARKS.md, "Face tiles
/// spread over turns" and "Still tiles wait their turn").
pub const CLIP_FACE_TILE_ROUNDS: u32 = 2;
/// Over how many of the plate YOLO's turns its native clip tiles are spread, as CenterFace's
/// ([`CLIP_FACE_TILE_ROUNDS`]). Spread with only the hint rule, they covered 76 of two 1080p
/// clips' 91 reference plate boxes against 80 with every tile on every turn: a car that drives
/// into a tile whose round it is not waited for it. With the tiles whose picture changed searched
/// at once, the default covers the same reference boxes as with every tile on three 1080p clips,
/// and a still street costs half the tiles (BENCHMARKS.md, "Still tiles wait their turn").
pub const CLIP_PLATE_TILE_ROUNDS: u32 = 2;
/// Working size of the balanced preset's RetinaFace-style plate model on clips: the same as the
/// YOLOv8 plate model's fixed input. Larger finds no more plates (openalpr photos: 0.900 of
/// plates covered by this model alone at 960, 0.910 at 640) and costs twice the time.
pub const CLIP_PLATE_WORKING_SIZE: u32 = 640;

/// IoU above which boxes of one class from different passes or models are one object.
pub const MERGE_IOU: f32 = 0.4;

/// Anything that finds objects in a frame.
pub trait Detector: Send {
    /// Finds objects in an RGB frame; boxes are in frame pixels, clipped to the frame.
    fn detect(&mut self, frame: &RgbImage) -> Result<Vec<Detection>>;

    /// The model files in use, for reports.
    fn models(&self) -> Vec<&ModelData>;
}

/// The ONNX Runtime sessions of one model, shared by every detection worker: a worker borrows an
/// idle session for one run and gives it back, and a new session is made only when every one is
/// busy. With interleaved models, consecutive frames (which the workers detect side by side) run
/// different models, so a model seldom needs more than one session, and its weights and
/// prepacked kernels are held once instead of once per worker. (Sessions are never run by two
/// threads at once: ort's maintainers document ONNX Runtime's `Run` as not reliably
/// thread-safe.)
pub(crate) struct Sessions {
    model: ModelData,
    intra_threads: usize,
    idle: std::sync::Mutex<Vec<Session>>,
    /// Signalled each time a session is put back, for a worker waiting for one.
    returned: std::sync::Condvar,
    /// Sessions made and not dropped, idle or lent.
    made: std::sync::atomic::AtomicUsize,
    /// The most sessions to make (see [`Sessions::set_cap`]).
    cap: std::sync::atomic::AtomicUsize,
}

impl Sessions {
    /// Makes the first session of `model` (so a model ONNX Runtime refuses fails here). The pool
    /// keeps the model without the bytes of its file (see [`ModelData::without_bytes`]).
    pub(crate) fn new(model: ModelData, intra_threads: usize) -> Result<std::sync::Arc<Sessions>> {
        let first = crate::runtime::session(&model.name, &model.session_bytes()?, intra_threads)?;
        Ok(std::sync::Arc::new(Sessions {
            idle: std::sync::Mutex::new(vec![first]),
            model: model.without_bytes(),
            intra_threads,
            returned: std::sync::Condvar::new(),
            made: std::sync::atomic::AtomicUsize::new(1),
            cap: std::sync::atomic::AtomicUsize::new(usize::MAX),
        }))
    }

    /// Drops the idle sessions but one: what a previous user of the pool needed more of (two
    /// workers on one model at once), the next may not; it makes them again if it does.
    fn keep_one(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let dropped = idle.len().saturating_sub(1);
        idle.truncate(1);
        self.made.fetch_sub(dropped, Ordering::SeqCst);
    }

    /// Makes at most `cap` sessions (at least one) from now on; a worker that needs one more
    /// waits for one to be put back instead. Sessions already made are kept.
    ///
    /// Why: a second session of a model costs its weights again and, as two runs of the model
    /// then overlap, a second set of its activations in ONNX Runtime's arena. With models taking
    /// turns, two workers need the same model at once only when they drift into its turn
    /// together; a pool asked for low memory caps each model at what its schedule needs
    /// (`DetectorSet::cap_sessions`), and a worker that drifts into a busy turn waits. That
    /// wait is the price: where one model's turns cost more than the others' (CenterFace's on
    /// a 432p clip), its runs no longer overlap.
    pub(crate) fn set_cap(&self, cap: usize) {
        self.cap.store(cap.max(1), Ordering::SeqCst);
    }

    /// Makes one more idle session now, where the cap leaves room for it (see
    /// [`Sessions::set_cap`]); where none can be made, [`Sessions::borrow`] tries again when one
    /// is needed. Why: see `DetectorSet::make_spare`.
    fn make_spare(&self) {
        if let Some(s) = self.make() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(s);
        }
    }

    /// A new session of the model, where the cap leaves room for it (counted before it is made,
    /// so that two workers do not both make the last one) and one can be made.
    fn make(&self) -> Option<Session> {
        self.made
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |m| {
                (m < self.cap.load(Ordering::SeqCst)).then_some(m + 1)
            })
            .ok()?;
        let made = self.model.session_bytes().and_then(|bytes| {
            crate::runtime::session(&self.model.name, &bytes, self.intra_threads)
        });
        if made.is_err() {
            self.made.fetch_sub(1, Ordering::SeqCst);
        }
        made.ok()
    }

    /// Reads a session's input and output descriptions (all sessions of a model have the same).
    pub(crate) fn describe<R>(&self, f: impl FnOnce(&Session) -> Result<R>) -> Result<R> {
        self.with(|s| f(s))
    }

    /// Runs `f` on an idle session, then puts it back (also when `f` panics, so that a worker
    /// waiting for it in [`Sessions::borrow`] is never left waiting).
    fn with<R>(&self, f: impl FnOnce(&mut Session) -> Result<R>) -> Result<R> {
        struct Lent<'a> {
            pool: &'a Sessions,
            session: Option<Session>,
        }
        impl Drop for Lent<'_> {
            fn drop(&mut self) {
                if let Some(session) = self.session.take() {
                    let mut idle = self.pool.idle.lock().unwrap_or_else(|e| e.into_inner());
                    idle.push(session);
                    self.pool.returned.notify_one();
                }
            }
        }
        let mut lent = Lent {
            pool: self,
            session: None,
        };
        f(lent.session.get_or_insert_with(|| self.borrow()))
    }

    /// An idle session; when every one is busy, a new one, or, when the cap is reached (see
    /// [`Sessions::set_cap`]) or none can be made (the model's file was replaced or removed while
    /// running, see [`ModelData::session_bytes`], or ONNX Runtime refuses one more), the first
    /// that another worker puts back. There always is one:
    /// the pool made its first when it was created, and a worker holds at most one session of a
    /// model at a time. A frame is then detected a little later, never failed for it.
    fn borrow(&self) -> Session {
        if let Some(s) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop() {
            return s;
        }
        if let Some(s) = self.make() {
            return s;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(s) = idle.pop() {
                return s;
            }
            idle = self.returned.wait(idle).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// ONNX Runtime sessions kept from one detector set to the next, by model (its sha256) and
/// threads per session: a batch of clips builds each clip's detectors through one cache, so that
/// every clip after the first reuses the sessions instead of making them again.
///
/// Why: making a session is ONNX Runtime's graph optimisation on one core while the other waits.
/// With the fast clip preset's three models, a clip's engine took 159-200 ms to build on a 2-core
/// machine, much of a 270p clip's run (BENCHMARKS.md, "Sessions kept across a batch's clips").
/// Each clip still checks its models ([`DetectConfig::resolve`]): a shipped model's file is read
/// and its sha256 checked again when it changed since this process last checked it (and refused
/// where it no longer matches); a user's own model file is read for every clip, and one that
/// changed gets a session of its own.
///
/// A cache holds its sessions until it is dropped; its clones share them.
#[derive(Clone, Default)]
pub struct SessionCache {
    kept: std::sync::Arc<std::sync::Mutex<KeptSessions>>,
}

/// A [`SessionCache`]'s sessions, by model sha256 and threads per session.
type KeptSessions = std::collections::HashMap<(String, usize), std::sync::Arc<Sessions>>;

impl SessionCache {
    /// An empty cache.
    pub fn new() -> SessionCache {
        SessionCache::default()
    }

    /// How many models' sessions it holds.
    pub fn len(&self) -> usize {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sessions of `model` at `intra_threads`: those kept, or new ones, then kept.
    fn sessions(
        &self,
        model: &ModelData,
        intra_threads: usize,
    ) -> Result<std::sync::Arc<Sessions>> {
        let key = (model.sha256.clone(), intra_threads);
        if let Some(s) = self
            .kept
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            // A new user: as many sessions as it needs, unless its own pool caps them again.
            s.keep_one();
            s.set_cap(usize::MAX);
            return Ok(std::sync::Arc::clone(s));
        }
        // Made outside the lock; two builds racing for one model each make one, and one is kept.
        let made = Sessions::new(model.clone(), intra_threads)?;
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        Ok(std::sync::Arc::clone(kept.entry(key).or_insert(made)))
    }
}

impl std::fmt::Debug for SessionCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SessionCache({} models)", self.len())
    }
}

/// For tests: makes a session pool of `model`, calls `then`, and runs `workers` threads that
/// each borrow a session for 200 ms at the same time (an error if any of them failed; with
/// `first_panics`, the first panics while it holds its session, and that one is not counted;
/// with `cap`, the pool makes at most that many sessions); says whether the pool kept the model's
/// bytes in memory and how many sessions it had at the end.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub fn session_pool_probe(
    model: ModelData,
    then: impl FnOnce(),
    workers: usize,
    first_panics: bool,
    cap: Option<usize>,
) -> Result<(bool, usize)> {
    let pool = Sessions::new(model, 1)?;
    if let Some(cap) = cap {
        pool.set_cap(cap);
    }
    let held = !pool.model.bytes.is_empty();
    then();
    // The first worker holds the pool's first session before the others start, so that they all
    // need more sessions than there are, and a panicking first worker panics holding one.
    let (holding, first_holds) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let runs: Vec<_> = (0..workers)
            .map(|i| {
                let (pool, holding) = (&pool, holding.clone());
                let run = scope.spawn(move || {
                    let panics = first_panics && i == 0;
                    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        pool.with(|_| {
                            let _ = holding.send(());
                            std::thread::sleep(std::time::Duration::from_millis(200));
                            assert!(!panics, "the probe's first worker panics, as asked");
                            Ok(())
                        })
                    }));
                    run.unwrap_or(Ok(())).map_err(|e| (!panics).then_some(e))
                });
                if i == 0 {
                    let _ = first_holds.recv();
                }
                run
            })
            .collect();
        runs.into_iter().try_for_each(|run| match run.join() {
            Ok(Err(Some(e))) => Err(e),
            _ => Ok(()),
        })
    })?;
    let sessions = pool.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
    Ok((held, sessions))
}

/// For tests: builds `detect`'s detectors as a clip's pool of `workers` workers does (capped as
/// `low_memory` says), readies them for frames of `size` (`DetectorSet::make_spare`), and says for
/// each model its name, whether its plan tiles such a frame, and how many sessions it has.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub fn spare_sessions_probe(
    detect: &DetectConfig,
    size: (u32, u32),
    workers: usize,
    low_memory: bool,
) -> Result<Vec<(String, bool, usize)>> {
    let set = detect.build()?;
    set.cap_sessions(workers, low_memory);
    set.make_spare(size, workers);
    Ok(set
        .detectors
        .iter()
        .map(|d| {
            let loaded = d.runner.loaded();
            let tiles = d.passes(size.0, size.1).iter().any(|p| p.tile);
            let sessions = loaded.sessions.made.load(Ordering::SeqCst);
            (loaded.model.name.clone(), tiles, sessions)
        })
        .collect())
}

/// One model family's preprocess → run → postprocess over a rectangle of the frame. A family's
/// runner holds a [`Loaded`] model (what every family shares) and its own decoding state.
pub(crate) trait ModelRunner: Send + Fork {
    /// The model, its sessions, input and threshold.
    fn loaded(&self) -> &Loaded;

    /// Boxes (NMS applied) in frame pixels for `region` of `frame`, magnified by `scale`
    /// (horizontal, vertical) for the model. Fixed-input models letterbox the region and ignore
    /// `scale`.
    fn detect_region(
        &mut self,
        frame: &RgbImage,
        region: Rect,
        scale: [f32; 2],
    ) -> Result<Vec<Detection>>;

    /// The input size of a model that only takes one size, or that is scaled as if it did: the
    /// shipped YOLOv8 files take any multiple of 32 but are scaled into 640 x 640 like the
    /// originals (only the padding is cut), so tiles and crops are planned for 640 x 640.
    fn fixed_input(&self) -> Option<(u32, u32)> {
        None
    }

    /// The input `region` gets at exactly `scale`, padded only as the model needs, for a model
    /// that [`fixed_input`](ModelRunner::fixed_input) plans as fixed but that takes any size, so
    /// that a crop is seen as the whole-frame pass sees that part of the frame
    /// ([`ModelRunner::detect_region_at`]). `None` where the model's input is truly fixed.
    fn input_at(&self, _region: Rect, _scale: f32) -> Option<(u32, u32)> {
        None
    }

    /// Boxes for `region` at exactly `scale`: [`ModelRunner::detect_region`] for the families
    /// that honour its scale, the input of [`ModelRunner::input_at`] for the others.
    fn detect_region_at(
        &mut self,
        frame: &RgbImage,
        region: Rect,
        scale: f32,
    ) -> Result<Vec<Detection>> {
        self.detect_region(frame, region, [scale, scale])
    }
}

/// A runner for another worker: its own buffers (a clone), the same sessions (shared through
/// [`Loaded`]).
pub(crate) trait Fork {
    fn fork(&self) -> Box<dyn ModelRunner>;
}

impl<T: ModelRunner + Clone + 'static> Fork for T {
    fn fork(&self) -> Box<dyn ModelRunner> {
        Box::new(self.clone())
    }
}

/// Checks the session's single input and its outputs' count and ranks against a family's layout,
/// so a model of the wrong family is refused when it is loaded rather than decoded into garbage.
fn check_outputs(
    model: &ModelData,
    session: &Session,
    ranks: &[Option<usize>],
    expected: &str,
) -> Result<()> {
    let describe = |outlets: &[ort::value::Outlet]| {
        outlets
            .iter()
            .map(|o| match o.dtype().tensor_shape() {
                Some(s) => format!("{}{:?}", o.name(), s.to_vec()),
                None => format!("{} (not a tensor)", o.name()),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let inputs_ok = session.inputs().len() == 1
        && session.inputs()[0]
            .dtype()
            .tensor_shape()
            .is_some_and(|s| s.len() == 4);
    let outputs = session.outputs();
    let outputs_ok = outputs.len() == ranks.len()
        && outputs
            .iter()
            .zip(ranks)
            .all(|(o, r)| match (o.dtype().tensor_shape(), r) {
                (Some(s), Some(r)) => s.len() == *r,
                (Some(_), None) => true,
                (None, _) => false,
            });
    if inputs_ok && outputs_ok {
        Ok(())
    } else {
        Err(Error::model(
            &model.path,
            format!(
                "does not look like a {:?} detector: expected one [1, 3, H, W] input and {expected}; found inputs [{}] and outputs [{}]",
                model.family,
                describe(session.inputs()),
                describe(outputs)
            ),
        ))
    }
}

/// What every family's runner holds: the model, its sessions (shared by every worker), the name
/// of its one input and its score threshold. Loading checks the session's layout against the
/// family's ([`check_outputs`]); [`Loaded::run`] is the one way any family runs its model.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub(crate) model: ModelData,
    sessions: std::sync::Arc<Sessions>,
    input: String,
    pub(crate) threshold: f32,
}

impl Loaded {
    /// Checks a session of `sessions` against the family's output `ranks` (`expected` says them
    /// in words for the error), and hands back what `describe` reads from it beside the model.
    pub(crate) fn new<R>(
        model: ModelData,
        sessions: std::sync::Arc<Sessions>,
        threshold: f32,
        (ranks, expected): (&[Option<usize>], &str),
        describe: impl FnOnce(&Session) -> Result<R>,
    ) -> Result<(Loaded, R)> {
        let (input, more) = sessions.describe(|session| {
            check_outputs(&model, session, ranks, expected)?;
            Ok((session.inputs()[0].name().to_string(), describe(session)?))
        })?;
        let loaded = Loaded {
            model: model.without_bytes(),
            sessions,
            input,
            threshold,
        };
        Ok((loaded, more))
    }

    /// Builds the input tensor with `build` (in this thread's scratch builder, see
    /// [`preprocess::with_scratch`]), runs an idle session on it and hands the `f32` outputs, the
    /// tensor-to-frame mapping and the tensor's size to `decode`.
    pub(crate) fn run<B, F>(&self, build: B, decode: F) -> Result<Vec<Detection>>
    where
        B: FnOnce(&mut TensorBuilder) -> preprocess::Affine,
        F: FnOnce(&[ArrayViewD<'_, f32>], preprocess::Affine, (u32, u32)) -> Result<Vec<Detection>>,
    {
        let name = &self.model.name;
        preprocess::with_scratch(|tensor| {
            let affine = build(tensor);
            let (w, h) = tensor.size;
            self.sessions.with(|session| {
                let value = TensorRef::from_array_view((
                    [1usize, 3, h as usize, w as usize],
                    tensor.data.as_slice(),
                ))
                .map_err(|e| Error::inference(name, e))?;
                let outputs = session
                    .run(ort::inputs![self.input.as_str() => value])
                    .map_err(|e| Error::inference(name, e))?;
                let views = (0..outputs.len())
                    .map(|i| outputs[i].try_extract_array::<f32>())
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::inference(name, e))?;
                decode(&views, affine, (w, h))
            })
        })
    }
}

/// Whether large frames are also scanned in native-resolution tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tiles {
    /// Only the whole-frame pass.
    Off,
    /// Tiles at native resolution when the whole-frame pass shrinks the frame by more than 1.25×:
    /// the fewest tiles no larger than the working size (a fixed-input model's input), overlap
    /// included ([`fitting`]).
    Auto,
    /// Always this grid of tiles, in addition to the whole-frame pass.
    Grid {
        /// Columns.
        cols: u32,
        /// Rows.
        rows: u32,
    },
}

/// How one model covers a frame.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct PassPlan {
    /// Long side, in pixels, of the whole-frame pass (models with a fixed input ignore it).
    pub working_size: u32,
    /// Largest magnification of a small frame.
    pub max_upscale: f32,
    /// Tiling of large frames.
    pub tiles: Tiles,
    /// When above 1, one more whole-frame pass over the frame stretched this many times in width
    /// (planned like a frame that wide), for faces that look narrower than the model expects.
    pub widen: f32,
    /// How much tiles magnify: automatic tiles are the working size (a fixed-input model's
    /// input) divided by this, and every tile is magnified up to it (1: native resolution).
    pub tile_zoom: f32,
    /// In how many evenly spaced rotations the frame is searched (1, 2, 4 or 8; 1: upright
    /// only): every pass above is made again on the frame rotated by each multiple of
    /// `360 / rotations` degrees, for faces that are not upright (see [`rotate`]).
    #[serde(skip_serializing_if = "is_one")]
    pub rotations: u32,
    /// When above 1, boxes scoring from [`NEAR_MISS`] up to the threshold, and in a sequence the
    /// places where objects were found on earlier frames ([`ModelDetector::set_hints`]), are
    /// looked at again, magnified this many times with some context around them (see
    /// [`SECOND_LOOK_ZOOM`]); 1 turns the second look off. Only YOLOv8 models take it (it was
    /// measured with them).
    #[serde(skip_serializing_if = "is_off")]
    pub second_look: f32,
    /// When above 1, each search of a sequence's frame (a clip's or stream's, not a photo's)
    /// adds one tile of the automatic grid magnified this many times, the next one on each of
    /// the model's turns, row by row, so the whole frame is seen magnified once per round of the
    /// grid (see [`ROVING_ZOOM`]). Only where the plan tiles, upright, and not in the light plan.
    #[serde(skip_serializing_if = "is_off")]
    pub roving: f32,
    /// Over how many of the model's turns its tiles are spread where it takes turns with another
    /// model of its class ([`DetectConfig::interleave`]); 1: every tile on every turn. The tiles
    /// of one turn are every `n`th square of a checkerboard (column plus row, modulo `n`), so at 2
    /// neighbouring tiles come on alternate turns and an object in their overlap is seen on each
    /// turn; the tiles that hold one of the detector's hints ([`ModelDetector::set_hints`]), or
    /// whose picture changed since the model last searched them (`ModelDetector::set_changes`),
    /// come on every turn (see [`CLIP_FACE_TILE_ROUNDS`]). Photos and searches outside a sequence
    /// run every tile.
    #[serde(skip_serializing_if = "is_one")]
    pub tile_rounds: u32,
}

fn is_off(zoom: &f32) -> bool {
    *zoom <= 1.0
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// One rectangle a model looks at.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pass {
    /// The rectangle of the frame.
    pub region: Rect,
    /// Magnification for the model.
    pub scale: f32,
    /// Extra horizontal stretch on top of `scale` (1 for all but the widened pass).
    pub widen: f32,
    /// Whether this is a tile (its interior edges cut objects).
    pub tile: bool,
}

/// How far the widened pass stretches a photo's width. Detectors trained on natural faces miss
/// faces that look narrower than a face is: photos squeezed into a square thumbnail (WIDER's
/// 416 x 416 copies squeeze faces 1.4 to 1.8 times), anamorphic frames shown without their aspect,
/// heads turned away. One look at 1.5 times the width, the middle of those squeezes, shows such
/// faces near their natural shape; on unsqueezed photos it finds a few more small faces and makes
/// boxes slightly taller, since merging keeps the enclosing box. It does not answer a wide-angle
/// lens's bend: faces in the outer half of a bent frame, squeezed towards its middle and tilted,
/// are found about as seldom with it as without (BENCHMARKS.md, "Faces under a wide-angle lens").
pub const WIDEN: f32 = 1.5;

/// The light plan's working size against the plan's: see [`PassPlan::light`].
pub const LIGHT_WORKING: f32 = 2.0 / 3.0;

/// The plate YOLO's tile magnification on photos (and at the max preset): its tiles are at most
/// 426 px for its 640-px input (6 x 3 on a 1080p frame, against 4 x 2 at native resolution), so a
/// plate 16 px high reaches it 24 px high. On the generated hard plate set
/// (`scripts/hard_plates.py`), 24 px is where YOLOv8n at native resolution stops missing plates
/// turned up to 45 degrees (0.94 of them, against 0.78 at 16 px). Magnified 1.5 times, it finds
/// 0.97 of the 16-px ones and 0.98 of all plates of at least 16 px (0.92 at native resolution),
/// in 1.8 times the set's time; magnified 1.25 times, 0.977 in 1.5 times the time. Clips keep
/// native tiles: on crowd_1080p the magnified ones took 1.7 times the default's time, and on the
/// hard clip they gained half a point (one plate on a few frames).
pub const PLATE_TILE_ZOOM: f32 = 1.5;

/// The magnification of the plate YOLO's roving tile on clips and streams at the balanced preset
/// ([`PassPlan::roving`]): one tile of the photo plan's magnified grid ([`PLATE_TILE_ZOOM`]) per
/// turn, on top of the native tiles, for about a seventh more of the plate model's input pixels
/// on a 1080p frame (the photo plan's whole grid costs 1.7 times the default's time). Some
/// plates 16 px high score under [`NEAR_MISS`] at native resolution wherever the tile cuts, and
/// over the threshold magnified: no native search ever proposes them, so neither the second look
/// nor the hints it feeds reach them. The roving tile finds such a plate when it passes over it
/// (once per round of the grid: 18 turns on a 1080p frame, 36 frames at the balanced preset);
/// from then on the hints keep it covered while the second look still finds it.
pub const ROVING_ZOOM: f32 = PLATE_TILE_ZOOM;

/// How much the second look magnifies a near miss (a box scoring from [`NEAR_MISS`] up to the
/// model's threshold), with context around it ([`SECOND_LOOK_CONTEXT`]); a box that magnified would
/// not fit the model's input is not looked at again. YOLOv8n resolves plates from about 24 px high
/// at native resolution: on the hard plate clip a 16-px plate scored 0.004 there, 0.25 to 0.36 at
/// 1.5 times and 0.19 to 0.28 at twice the size (by model copy, float or int8), and a 24-px plate
/// turned 45 degrees 0.02 to 0.45 by where the crop cut, 0.68 to 0.71 at twice the size. The
/// whole frame magnified costs its area times the zoom squared (1.25 times cost crowd_1080p 1.6
/// times the time, BENCHMARKS.md "Small frames and the plate model"); a near miss costs a crop a
/// few times the plate's size, and only where the model already saw something like a plate.
pub const SECOND_LOOK_ZOOM: f32 = 2.0;
/// The least score of a near miss (see [`SECOND_LOOK_ZOOM`]). The 16-px plates the hard plate
/// clips miss score 0.02 to 0.09 on most frames at native resolution; with hints following what a
/// look finds, 0.05 against 0.1 covered 6,470 against 6,410 of 6,720 plate-frames over seven
/// seeds, found two real plates more on cars_432p, and drew no more plate boxes on crowd_1080p
/// (no vehicle in it) at the default, for about 4 % more detection thread-time there
/// (BENCHMARKS.md, "Hints: second looks where plates were found lately").
pub const NEAR_MISS: f32 = 0.05;
/// The most near misses one search of a frame looks at again, best first, and the most hints
/// (see [`ModelDetector::set_hints`]), latest first: it bounds what a busy street costs. Apart,
/// so that the plates found lately never take the near misses' looks (with one bound for both,
/// hints first, the hard plate clip of seed 21 lost 14 of its 960 plate-frames).
pub const MAX_SECOND_LOOKS: usize = 8;
/// Side of a second look's square crop, in multiples of the near miss's or hint's long side
/// (plus 32 px): a plate's score depends on the car around it, and a hinted plate may have moved
/// its own size since it was seen.
pub const SECOND_LOOK_CONTEXT: f32 = 3.0;

impl PassPlan {
    /// The plan a live stream falls back to when detection cannot keep up (the last rung of its
    /// ladder before frames are covered whole): two-thirds of the working size ([`LIGHT_WORKING`],
    /// but not under 320 px unless the plan's is), no magnification of small frames, no tiles, no
    /// widened pass. By the pixels the models look at, it costs a 720p or 1080p frame about a
    /// third of the clip plan (CenterFace at 640 instead of 960, YOLOv8n's one whole-frame look
    /// instead of its tiles), and loses what only those extra pixels resolve: the smallest faces
    /// and plates the full plan finds.
    pub fn light(self) -> PassPlan {
        let lighter = (self.working_size as f32 * LIGHT_WORKING) as u32;
        PassPlan {
            working_size: lighter.max(320).min(self.working_size),
            max_upscale: self.max_upscale.min(1.0),
            tiles: Tiles::Off,
            widen: 1.0,
            tile_zoom: 1.0,
            // Kept: a camera that shows faces rotated shows them so whatever the load.
            rotations: self.rotations,
            second_look: 1.0,
            roving: 1.0,
            tile_rounds: 1,
        }
    }

    /// This plan with the widened whole-frame pass (see [`WIDEN`]).
    pub fn widened(self) -> PassPlan {
        PassPlan {
            widen: WIDEN,
            ..self
        }
    }

    /// The passes for a `w` x `h` frame. `fixed` is the input size of a fixed-size model.
    pub fn passes(&self, w: u32, h: u32, fixed: Option<(u32, u32)>) -> Vec<Pass> {
        self.passes_on_turn(w, h, fixed, None)
    }

    /// The passes for a `w` x `h` frame on the model's `turn` when it takes turns with another
    /// model of its class: the tiles of that turn's round ([`PassPlan::tile_rounds`]) only. With
    /// `None`, or one round, every tile, as [`PassPlan::passes`].
    pub fn passes_on_turn(
        &self,
        w: u32,
        h: u32,
        fixed: Option<(u32, u32)>,
        turn: Option<usize>,
    ) -> Vec<Pass> {
        let long = w.max(h).max(1) as f32;
        let working = fixed
            .map_or(self.working_size, |(fw, fh)| fw.max(fh))
            .max(32) as f32;
        let scale = (working / long).min(self.max_upscale);
        let mut out = vec![Pass {
            region: Rect::full(w, h),
            scale,
            widen: 1.0,
            tile: false,
        }];
        if self.widen > 1.0 && fixed.is_none() {
            let long = (w as f32 * self.widen).max(h as f32).max(1.0);
            out.push(Pass {
                region: Rect::full(w, h),
                scale: (working / long).min(self.max_upscale),
                widen: self.widen,
                tile: false,
            });
        }
        let zoom = self.tile_zoom.max(1.0);
        let grid = match self.tiles {
            Tiles::Off => None,
            Tiles::Auto if scale < 0.8 => {
                let most = (working / zoom) as u32;
                Some((fitting(w, most), fitting(h, most)))
            }
            Tiles::Auto => None,
            Tiles::Grid { cols, rows } => Some((cols, rows)),
        };
        if let Some((cols, rows)) = grid {
            let (cols, rows) = (cols.clamp(1, w.max(1)), rows.clamp(1, h.max(1)));
            if cols * rows > 1 {
                let xs = spans(w, cols);
                let ys = spans(h, rows);
                let rounds = self.tile_rounds.max(1) as usize;
                let round = turn.map(|t| t % rounds);
                for (row, &(y, th)) in ys.iter().enumerate() {
                    for (col, &(x, tw)) in xs.iter().enumerate() {
                        if round.is_some_and(|r| (col + row) % rounds != r) {
                            continue;
                        }
                        let region = Rect { x, y, w: tw, h: th };
                        let scale = (working / tw.max(th) as f32).min(zoom).max(scale);
                        out.push(Pass {
                            region,
                            scale,
                            widen: 1.0,
                            tile: true,
                        });
                    }
                }
            }
        }
        out
    }
}

impl PassPlan {
    /// The tiles of a `w` x `h` frame that are not of `turn`'s round ([`PassPlan::tile_rounds`])
    /// but are searched on it anyway: those holding a place where an object of the model's class
    /// was found lately (`hints`), and those whose picture changed since the turn of their own
    /// round that last searched them (`changes`, see [`ModelDetector::set_changes`]), or whose
    /// change cannot be told. An object being followed, or moving, is searched on every turn,
    /// and only a still picture waits its round: what a tile left out shows is what the model
    /// searched in it one round ago, to within [`OFF_TURN_CHANGE`] of every cell's mean.
    pub(crate) fn off_turn_tiles(
        &self,
        (w, h): (u32, u32),
        fixed: Option<(u32, u32)>,
        turn: usize,
        hints: &[BBox],
        changes: Option<&TileChanges>,
    ) -> Vec<Pass> {
        let rounds = self.tile_rounds as usize;
        if rounds <= 1 || (hints.is_empty() && changes.is_none()) {
            return Vec::new();
        }
        let on_turn = self.passes_on_turn(w, h, fixed, Some(turn));
        let holds_a_hint = |r: &Rect| {
            let tile = BBox {
                x1: r.x as f32,
                y1: r.y as f32,
                x2: (r.x + r.w) as f32,
                y2: (r.y + r.h) as f32,
            };
            hints.iter().any(|b| tile.intersection(b) > 0.0)
        };
        // The tiles of each earlier turn of the round, `j` turns back at `[j - 1]`.
        let earlier_turns: Vec<Vec<Pass>> = (1..rounds)
            .map(|j| match turn.checked_sub(j) {
                Some(t) if changes.is_some() => self.passes_on_turn(w, h, fixed, Some(t)),
                _ => Vec::new(),
            })
            .collect();
        let changed = |p: &Pass| -> bool {
            let Some(changes) = changes else {
                return false;
            };
            let Some(current) = &changes.current else {
                return true;
            };
            // The latest turn of the tile's own round, which searched it.
            let back = (1..rounds).find(|&j| earlier_turns[j - 1].contains(p));
            match back.and_then(|j| changes.earlier.get(j - 1)) {
                Some(Some(earlier)) => current.changed_in(earlier, p.region, OFF_TURN_CHANGE),
                _ => true,
            }
        };
        self.passes(w, h, fixed)
            .into_iter()
            .filter(|p| p.tile && !on_turn.contains(p) && (holds_a_hint(&p.region) || changed(p)))
            .collect()
    }
}

impl PassPlan {
    /// The roving tile of `turn` (see [`PassPlan::roving`]) on a `w` x `h` frame, or `None`
    /// where the plan has none: the grid [`Tiles::Auto`] plans at that magnification, visited
    /// row by row, one tile a turn.
    pub fn roving_tile(
        &self,
        w: u32,
        h: u32,
        fixed: Option<(u32, u32)>,
        turn: usize,
    ) -> Option<Pass> {
        if self.roving <= 1.0 || self.tiles == Tiles::Off {
            return None;
        }
        let grid = PassPlan {
            tiles: Tiles::Auto,
            tile_zoom: self.roving,
            widen: 1.0,
            ..*self
        };
        let tiles: Vec<Pass> = grid
            .passes(w, h, fixed)
            .into_iter()
            .filter(|p| p.tile)
            .collect();
        (!tiles.is_empty()).then(|| tiles[turn % tiles.len()])
    }
}

/// The fewest overlapping spans ([`spans`]) of `len` pixels that are each at most `most` long, so
/// that a model whose input is `most` pixels sees each at native resolution or more. Counting
/// `len / most` spans instead makes each an overlap longer than the input, shrunk to fit: a
/// 1920 x 1080 frame's three by two tiles of 720 x 608 reach YOLOv8n at 0.89 of their size, and on
/// the hard plate set (`scripts/hard_plates.py`) it found 0.44 of the 16-px plates turned at most
/// 45 degrees that way, and 0.78 with the 4 x 2 tiles that fit.
pub fn fitting(len: u32, most: u32) -> u32 {
    let mut n = len.div_ceil(most.max(1)).max(1);
    while n < len && spans(len, n)[0].1 > most {
        n += 1;
    }
    n
}

/// Splits `len` pixels into `n` overlapping spans `(start, length)` covering it. The overlap is an
/// eighth of a span, at least 48 px, so an object up to that size lies whole in some span.
pub fn spans(len: u32, n: u32) -> Vec<(u32, u32)> {
    if n <= 1 {
        return vec![(0, len)];
    }
    let base = len as f32 / n as f32;
    let overlap = (base / 8.0).max(48.0);
    let size = ((base + overlap).ceil() as u32).min(len);
    (0..n)
        .map(|i| {
            let start = ((len - size) as f32 * i as f32 / (n - 1) as f32).round() as u32;
            (start, size)
        })
        .collect()
}

/// Native windows of `size` (at most the `w` x `h` frame) inside the frame that hold each of
/// `regions` whole where it fits in one, and cover it with overlapping spans (see [`spans`]), each
/// held whole by a window, where it does not. The same window is listed once.
fn windows_around(regions: &[Rect], size: (u32, u32), w: u32, h: u32) -> Vec<Rect> {
    let (sw, sh) = (size.0.clamp(1, w.max(1)), size.1.clamp(1, h.max(1)));
    let split = |len: u32, win: u32| spans(len, fitting(len, win));
    // A window of `win` centred on the span `start..start + len`, inside `0..frame`.
    let place = |start: u32, len: u32, win: u32, frame: u32| {
        (start + len / 2)
            .saturating_sub(win / 2)
            .min(frame.saturating_sub(win))
    };
    let mut out: Vec<Rect> = Vec::new();
    for r in regions {
        for &(y0, th) in &split(r.h, sh) {
            for &(x0, tw) in &split(r.w, sw) {
                let win = Rect {
                    x: place(r.x + x0, tw, sw, w),
                    y: place(r.y + y0, th, sh, h),
                    w: sw,
                    h: sh,
                };
                if !out.contains(&win) {
                    out.push(win);
                }
            }
        }
    }
    out
}

/// How much a gated crop of a frame planned whole is grown on each side, as a share of its long
/// side (`with_context`), for every free-size model: the face models, and YOLOv8 on frames it
/// plans whole (`ModelDetector::crops_at_frame_scale`). The gate's regions hug what changed, and a
/// detector's score depends on what lies around the object: a plate's on the vehicle, a face's on
/// the head and shoulders. Tight plate crops lost 4 of 103 reference plate boxes on three shared
/// clips, boxes scoring 0.30 to 0.38 that tipped under the threshold. Tight face crops left 18
/// more reference face boxes uncovered than the ungated default on four shared clips; with the
/// crops grown by half, 2 more (BENCHMARKS.md, "Gated YOLOv8n crops" and "Context around gated
/// face crops").
pub const CROP_CONTEXT: f32 = 0.5;

/// Long side of a face box, as a share of the frame's long side, from which the face must score
/// at least [`LARGE_FACE_SCORE`]. A face that large fills the model's view and scores high; a box
/// that large just over the preset's threshold is mostly a false face (on footage without faces
/// they cover trees and tarmac, and one of them hides the whole scene). On the WIDER dev photos
/// (threshold 0.1), 16 of the 19 boxes over 0.3 of the frame that match a labelled face score above
/// 0.97, and 6 of the 10 that match none score under 0.3. The pair (0.4, 0.2) is the strictest
/// that loses nothing there, photo and clip plans alike (BENCHMARKS.md, "Large low-score faces"):
/// at (0.3, 0.2) a real 124-px face scoring 0.12 goes, and at a score of 0.3 one false box that
/// happened to cover 114 tiny faces of a crowd goes with them.
pub const LARGE_FACE: f32 = 0.4;
/// The least score of a face box at least [`LARGE_FACE`] of the frame.
pub const LARGE_FACE_SCORE: f32 = 0.2;

/// Height of a plate box, as a share of the frame's height, from which the plate must score at
/// least [`LARGE_PLATE_SCORE`]. A plate is wider than it is tall even turned 60 degrees away, so a
/// plate box this tall is a plate filling the frame, a close-up no camera of this kind records. The
/// boxes that tall are frame-sized false plates: on the hard plate set (`scripts/hard_plates.py`)
/// a barrel-distorted frame's dark corners make the whole picture look like a plate, boxed 0.82 to
/// 0.97 of the frame high at scores 0.19 to 0.51, and on the hard clip one such box, scoring 0.36
/// to 0.51, hid every plate by accident on 80 % of the frames. The tallest real plates of the dev
/// photos are boxed 0.33 to 0.43 of the frame high and score 0.51 to 0.79. Photos are exempt: a
/// person does photograph a plate close up (see [`ModelDetector::close_up_plates`]). Photos and
/// clips alike drop such a box with plates on it, whatever it scores ([`PLATES_ON_A_PLATE`]).
pub const LARGE_PLATE: f32 = 0.6;
/// The least score of a plate box at least [`LARGE_PLATE`] of the frame's height.
pub const LARGE_PLATE_SCORE: f32 = 0.6;

/// Whether a detection is kept by the size-dependent thresholds: faces at least [`LARGE_FACE`] of a
/// `w` x `h` frame's long side must score [`LARGE_FACE_SCORE`], plates at least [`LARGE_PLATE`] of
/// its height [`LARGE_PLATE_SCORE`].
pub fn plausible(d: &Detection, w: u32, h: u32) -> bool {
    match d.class {
        Class::Face => {
            d.score >= LARGE_FACE_SCORE
                || d.bbox.width().max(d.bbox.height()) < LARGE_FACE * w.max(h) as f32
        }
        Class::Plate => d.score >= LARGE_PLATE_SCORE || d.bbox.height() < LARGE_PLATE * h as f32,
    }
}

/// How many small plate boxes ([`SMALL_PLATE_SHARE`]) inside a plate box at least [`LARGE_PLATE`]
/// of the frame high make it no plate: a plate has no plates on it. YOLOv8n sees a whole frame as
/// one plate where the picture is a light, busy rectangle on a dark surround (a fisheye's or a
/// barrel-corrected lens's dark corners), and scores it like a real close-up: on the hard plate
/// clip made at 3840 x 2160 (`scripts/hard_plates.py make OUT --clip-size 3840x2160`) such a box,
/// 0.92 of the frame high and scoring 0.61 to 0.75, was found on 55 of 60 frames and blurred the
/// whole picture, and on another seed's 1080p clip one scoring 0.61 to 0.70 did on 13 frames. Its
/// score cannot tell it from a close-up (most real ones score 0.6 to 0.8; see
/// [`ModelDetector::close_up_plates`]), but what lies inside can: those boxes held the small plates
/// the tiles found, a real close-up holds its own characters. Two, not one, so that a single small
/// false box on a real close-up (a sticker, a bolt) never takes the close-up's box away.
pub const PLATES_ON_A_PLATE: usize = 2;
/// Height of a plate box, as a share of a large plate box's height, under which it counts as a
/// small plate inside it ([`PLATES_ON_A_PLATE`]): a real plate's characters are more than half its
/// height, and the small plates under the frame-sized false boxes were under a tenth of theirs
/// (68 px under a 985-px box on the 1080p clip).
pub const SMALL_PLATE_SHARE: f32 = 0.125;

/// Whether `d` is a plate box at least [`LARGE_PLATE`] of an `h`-high frame with at least
/// [`PLATES_ON_A_PLATE`] small plate boxes of `all` centred inside it.
fn plates_on_it(d: &Detection, all: &[Detection], h: u32) -> bool {
    if d.class != Class::Plate || d.bbox.height() < LARGE_PLATE * h as f32 {
        return false;
    }
    let small = all.iter().filter(|o| {
        let (cx, cy) = o.bbox.centre();
        o.class == Class::Plate
            && o.bbox.height() < SMALL_PLATE_SHARE * d.bbox.height()
            && d.bbox.contains(cx, cy)
    });
    small.count() >= PLATES_ON_A_PLATE
}

/// Keeps finite, non-empty boxes, clipped to the frame, that pass the size-dependent threshold;
/// with `close_ups`, plate boxes pass it whatever their height (see
/// [`ModelDetector::close_up_plates`]). A frame-high plate box with plates on it
/// ([`PLATES_ON_A_PLATE`]) goes either way.
fn sanitize(dets: Vec<Detection>, w: u32, h: u32, close_ups: bool) -> Vec<Detection> {
    let dets: Vec<Detection> = dets
        .into_iter()
        .filter(|d| d.bbox.is_finite() && d.score.is_finite())
        .filter(|d| plausible(d, w, h) || (close_ups && d.class == Class::Plate))
        .map(|mut d| {
            d.bbox = d.bbox.clipped(w, h);
            d
        })
        .filter(|d| d.bbox.area() > 0.0)
        .collect();
    let on_a_plate: Vec<bool> = dets.iter().map(|d| plates_on_it(d, &dets, h)).collect();
    dets.into_iter()
        .zip(on_a_plate)
        .filter(|(_, on)| !on)
        .map(|(d, _)| d)
        .collect()
}

/// Whether a box found in a tile touches one of the tile's interior edges (an edge that is not
/// also the frame's edge) and spans half the tile or more along either axis; such boxes are
/// dropped. A smaller box cut by the edge is kept: an object wider than the tiles' overlap (a plate
/// seen close) is cut in every tile, and only its pieces cover it, while merging by enclosure lets
/// no piece shrink a whole box another pass found. A box that spans half a tile is an object the
/// whole-frame pass sees large enough, or a false box: YOLOv8n boxes whole tiles as plates (on the
/// hard plate set, five tile-sized false plates scoring 0.45 to 0.62, in three of its 40 frames).
fn cut_and_large(d: &Detection, tile: Rect, frame_w: u32, frame_h: u32) -> bool {
    const MARGIN: f32 = 2.0;
    let b = &d.bbox;
    let cut = (tile.x > 0 && b.x1 <= tile.x as f32 + MARGIN)
        || (tile.y > 0 && b.y1 <= tile.y as f32 + MARGIN)
        || (tile.x + tile.w < frame_w && b.x2 >= (tile.x + tile.w) as f32 - MARGIN)
        || (tile.y + tile.h < frame_h && b.y2 >= (tile.y + tile.h) as f32 - MARGIN);
    cut && (b.width() >= tile.w as f32 / 2.0 || b.height() >= tile.h as f32 / 2.0)
}

/// One model with its pass plan.
pub struct ModelDetector {
    runner: Box<dyn ModelRunner>,
    /// The score a box must exceed; the runner decodes from [`NEAR_MISS`] up where the plan has a
    /// second look ([`PassPlan::second_look`]), and [`ModelDetector::finish`] sorts them.
    threshold: f32,
    plan: PassPlan,
    /// Whether the light plan ([`PassPlan::light`]) is in use.
    light: bool,
    /// See [`ModelDetector::close_up_plates`].
    close_ups: bool,
    /// See [`ModelDetector::set_hints`].
    hints: Vec<BBox>,
    /// See [`ModelDetector::set_turn`].
    turn: Option<usize>,
    /// See [`ModelDetector::set_changes`].
    changes: Option<TileChanges>,
}

/// What a detector taking turns knows of how the picture changed under its tiles (see
/// [`ModelDetector::set_changes`]).
#[derive(Clone, Debug, Default)]
pub(crate) struct TileChanges {
    /// This frame's luma cells; `None` where they were not measured (a frame detected turned),
    /// and every tile then counts as changed.
    pub current: Option<Arc<LumaCells>>,
    /// The cells of the frames of this model's earlier turns: `earlier[j - 1]` is `j` turns back
    /// (`None` where that frame was not detected, or is too far back).
    pub earlier: Vec<Option<Arc<LumaCells>>>,
}

/// Change in a luma cell's mean (0 to 255) since a model last searched a tile that makes it search
/// the tile again before the tile's own round comes (see `ModelDetector::set_changes`): the
/// change gate's own default ([`crate::engine::gate::GateConfig::threshold`]), which cleared
/// compression noise on the shared clips.
pub const OFF_TURN_CHANGE: u8 = 8;

impl ModelDetector {
    /// Makes a session for `model` and wraps it with its family's decoder.
    pub fn new(
        model: ModelData,
        threshold: f32,
        plan: PassPlan,
        intra_threads: usize,
    ) -> Result<Self> {
        Self::new_cached(model, threshold, plan, intra_threads, None)
    }

    /// [`ModelDetector::new`] with the sessions of `cache` when it holds this model's, and
    /// kept there when it does not.
    pub fn new_cached(
        model: ModelData,
        threshold: f32,
        plan: PassPlan,
        intra_threads: usize,
        cache: Option<&SessionCache>,
    ) -> Result<Self> {
        let sessions = match cache {
            Some(cache) => cache.sessions(&model, intra_threads)?,
            None => Sessions::new(model.clone(), intra_threads)?,
        };
        // The second look was measured with YOLOv8n only; other families keep one look.
        let mut plan = plan;
        if model.family != Family::Yolo {
            plan.second_look = 1.0;
        }
        let decode = if plan.second_look > 1.0 {
            threshold.min(NEAR_MISS)
        } else {
            threshold
        };
        let runner: Box<dyn ModelRunner> = match model.family {
            Family::CenterFace => Box::new(centerface::CenterFace::new(model, sessions, decode)?),
            Family::Retina => Box::new(retina::Retina::new(model, sessions, decode)?),
            Family::Yolo => Box::new(yolo::Yolo::new(model, sessions, decode)?),
            Family::Text => Box::new(text::TextBoxes::new(model, sessions, decode)?),
        };
        Ok(ModelDetector {
            runner,
            threshold,
            plan,
            light: false,
            close_ups: false,
            hints: Vec::new(),
            turn: None,
            changes: None,
        })
    }

    /// Keeps plate boxes at least [`LARGE_PLATE`] of the frame high whatever their score, unless
    /// plates lie on them ([`PLATES_ON_A_PLATE`]) (off by default; [`DetectConfig::build`] turns
    /// it on for photos). A frame-filling plate is a
    /// close-up: something a person photographs, never what a doorbell or NVR camera records, so
    /// on clips and streams such a box stays a false plate unless it scores
    /// [`LARGE_PLATE_SCORE`]. Photos keep it: on the shared plate photos cropped so that each
    /// plate fills 65 % or 80 % of the height (444 close-ups), the clip rule left 4 uncovered and
    /// no rule 2, and many real close-ups score just above the rule's bar (a bar of 0.7 left 51,
    /// 0.75 left 162); a frame-sized false box over a photo is more blur, never a leak
    /// (BENCHMARKS.md, "Small frames and the plate model").
    pub fn close_up_plates(&mut self, keep: bool) {
        self.close_ups = keep;
    }

    /// [`sanitize`] with this detector's rule for close-up plates.
    fn sanitize(&self, dets: Vec<Detection>, w: u32, h: u32) -> Vec<Detection> {
        sanitize(dets, w, h, self.close_ups)
    }

    /// A detector for another worker: its own buffers, sharing this one's sessions.
    pub fn fork(&self) -> ModelDetector {
        ModelDetector {
            runner: self.runner.fork(),
            threshold: self.threshold,
            plan: self.plan,
            light: self.light,
            close_ups: self.close_ups,
            hints: Vec::new(),
            turn: None,
            changes: None,
        }
    }

    /// The passes this detector makes over a `w` x `h` frame.
    pub fn passes(&self, w: u32, h: u32) -> Vec<Pass> {
        self.plan().passes(w, h, self.runner.fixed_input())
    }

    /// The plan in use: the configured one, or its light version.
    fn plan(&self) -> PassPlan {
        if self.light {
            self.plan.light()
        } else {
            self.plan
        }
    }

    /// Searches the frame in `rotations` evenly spaced rotations from the next frame on (see
    /// [`PassPlan::rotations`]; a value outside [`rotate::ALLOWED`] is taken as the next one up).
    pub fn set_rotations(&mut self, rotations: u32) {
        self.plan.rotations = rotate::ALLOWED
            .into_iter()
            .find(|&n| n >= rotations)
            .unwrap_or(8);
    }

    /// Uses the light plan ([`PassPlan::light`]) from the next frame on, or the configured one.
    pub fn set_light(&mut self, light: bool) {
        self.light = light;
    }

    /// Where objects of this detector's class were found on earlier frames of the sequence
    /// (the engine's `Gate::hints`), for the searches from now on. A detector with a second
    /// look ([`PassPlan::second_look`]) looks again, magnified, around each hint its own
    /// search of the frame leaves uncovered, as around a near miss, before the near misses
    /// (`ModelDetector::finish`): the plate a sighting proves is there is worth more than
    /// a box the model scored low. Boxes of other classes are ignored; hints apply to the frame
    /// upright, not to the rotated searches of [`PassPlan::rotations`].
    pub fn set_hints(&mut self, hints: &[(Class, BBox)]) {
        let class = self.runner.loaded().model.class;
        self.hints.clear();
        self.hints
            .extend(hints.iter().filter(|(c, _)| *c == class).map(|(_, b)| *b));
    }

    /// Which of this model's turns in a sequence the next search is (`None`: a photo, or a
    /// frame outside a sequence); it picks the roving tile ([`PassPlan::roving`]).
    pub fn set_turn(&mut self, turn: Option<usize>) {
        self.turn = turn;
    }

    /// How the picture changed since this model's earlier turns, for the next search (`None`:
    /// not known). With tiles spread over turns ([`PassPlan::tile_rounds`]), a tile whose round
    /// it is not is searched anyway where a cell under it changed by more than
    /// [`OFF_TURN_CHANGE`] since the turn that last searched it, or where its change cannot be
    /// told: an object that moves or appears is searched at once, as on every turn, and only a
    /// still picture waits for its tile's round, its pixels those the model searched one round
    /// ago. Without this (`None`), only the tiles holding a hint are.
    pub(crate) fn set_changes(&mut self, changes: Option<TileChanges>) {
        self.changes = changes;
    }
}

impl ModelDetector {
    /// Detects only inside `regions` of the frame (the change gate's crops, see
    /// [`crate::engine::gate`]): each grown by [`CROP_CONTEXT`], at native resolution, or
    /// magnified as much as the plan magnifies the whole frame where that is more, never shrunk.
    /// A model planned as fixed-input (YOLOv8 at 640 x 640): on a frame its plan looks at whole,
    /// it looks at the regions at the whole-frame pass's own scale where it takes any input size
    /// (the shipped files), and at the whole frame where its input is truly fixed (a crop
    /// letterboxed to its input was tried: on room_432p_long it found fewer of the boxes the
    /// whole-frame view finds); on a frame its plan tiles, it looks at native windows of its
    /// input's size holding the regions (`windows_around`) when they are fewer than its passes.
    /// Where the crops would cost a model more input pixels than its whole-frame passes, or one
    /// crop more than the plan's largest pass (a native crop of most of a frame the plan shrinks
    /// whole and tiles), it runs those passes instead, so gating never costs more than not gating
    /// and no gated run is larger than one of the plan's own (gating's longer look-ahead still
    /// holds more frames). Boxes cut by a crop's edge are kept (no other pass sees the object
    /// whole). With [`PassPlan::rotations`], the regions are searched in each rotation of the
    /// frame too.
    pub fn detect_in(&mut self, frame: &RgbImage, regions: &[Rect]) -> Result<Vec<Detection>> {
        self.each_rotation(frame, |me, f, rotation| match rotation {
            None => me.detect_in_upright(f, regions),
            Some(t) => {
                // A region rotated and clipped to the canvas can be empty; it has nothing to see.
                let rotated: Vec<Rect> = regions
                    .iter()
                    .map(|r| t.rect_forward(*r))
                    .filter(|r| r.w > 0 && r.h > 0)
                    .collect();
                me.detect_in_upright(f, &rotated)
            }
        })
    }

    /// The frame searched by `search` upright and in each rotation of the plan
    /// ([`PassPlan::rotations`]), the boxes found in a rotation brought back to the frame, all
    /// merged.
    fn each_rotation(
        &mut self,
        frame: &RgbImage,
        mut search: impl FnMut(
            &mut Self,
            &RgbImage,
            Option<&rotate::Rotation>,
        ) -> Result<Vec<Detection>>,
    ) -> Result<Vec<Detection>> {
        let (w, h) = frame.dimensions();
        let rotations = rotate::Rotation::others(self.plan().rotations, w, h);
        let mut all = search(self, frame, None)?;
        if rotations.is_empty() || w == 0 || h == 0 {
            return Ok(all);
        }
        // The hints are boxes on the upright frame, and the roving tile is searched upright.
        let hints = std::mem::take(&mut self.hints);
        let turn = self.turn.take();
        let mut rotated_searches = || -> Result<()> {
            for t in &rotations {
                let rotated = t.apply(frame);
                let found = search(self, &rotated, Some(t))?;
                all.extend(found.into_iter().map(|d| t.detection_back(d)));
            }
            Ok(())
        };
        let searched = rotated_searches();
        self.hints = hints;
        self.turn = turn;
        searched?;
        Ok(nms::merge_enclosing(self.sanitize(all, w, h), MERGE_IOU))
    }

    /// [`ModelDetector::detect_in`] on the frame as it is.
    fn detect_in_upright(&mut self, frame: &RgbImage, regions: &[Rect]) -> Result<Vec<Detection>> {
        let (w, h) = frame.dimensions();
        if w == 0 || h == 0 || regions.is_empty() {
            return Ok(Vec::new());
        }
        let full = self.passes(w, h);
        if let Some((fw, fh)) = self.runner.fixed_input() {
            // A truly fixed input costs the same on any rectangle: on a frame its plan looks at
            // whole, it does so, as it would without gating, and gating saves only the frames
            // with nothing to look at; a free-size model looks at the regions at the frame's
            // scale instead, seeing each as the whole-frame pass does. Where the plan adds native
            // tiles (the frame is larger than the input), it looks at native windows of the
            // input's size around the regions, fewer than the tiles, so a small plate keeps its
            // pixels at a fraction of the tiles' cost.
            if !full.iter().any(|p| p.tile) {
                // The scale the whole frame is letterboxed at.
                let scale = (fw as f32 / w as f32).min(fh as f32 / h as f32);
                return match self.crops_at_frame_scale(frame, regions, scale) {
                    Some(found) => found,
                    None => self.detect_upright(frame),
                };
            }
            let windows = windows_around(regions, (fw, fh), w, h);
            if windows.len() >= full.len() {
                return self.detect_upright(frame);
            }
            let mut all = Vec::new();
            for window in windows {
                all.extend(self.runner.detect_region(frame, window, [1.0, 1.0])?);
            }
            return self.finish(frame, all);
        }
        let cost = |r: &Rect, sx: f32, sy: f32| r.w as f32 * sx * r.h as f32 * sy;
        let full_cost: f32 = full
            .iter()
            .map(|p| cost(&p.region, p.scale * p.widen, p.scale))
            .sum();
        let scale = full[0].scale.max(1.0).min(self.plan().max_upscale.max(1.0));
        let crops: Vec<(Rect, f32)> = with_context(regions, w, h)
            .into_iter()
            .map(|r| (r, scale))
            .collect();
        let crop_cost: f32 = crops.iter().map(|(r, s)| cost(r, *s, *s)).sum();
        // No run larger than the plan's own: on a frame the plan shrinks whole and tiles at native
        // resolution, a crop at native resolution may be most of the frame, up to four times
        // the input of any pass, and its activations then take a second region of ONNX Runtime's
        // arena (crowd_1080p gated peaked at 708,072 KiB against 430,768 KiB ungated). Such a
        // frame runs the plan.
        let largest = full
            .iter()
            .map(|p| cost(&p.region, p.scale * p.widen, p.scale))
            .fold(0.0f32, f32::max);
        let too_large = crops.iter().any(|(r, s)| cost(r, *s, *s) > largest);
        if crop_cost > full_cost || too_large {
            return self.detect_upright(frame);
        }
        let mut all = Vec::new();
        for (region, scale) in crops {
            all.extend(self.runner.detect_region(frame, region, [scale, scale])?);
        }
        self.finish(frame, all)
    }

    /// A free-size model whose plan looks at the frame whole: each region, grown by
    /// [`CROP_CONTEXT`], at the whole frame's `scale`, when that costs fewer input pixels
    /// ([`ModelRunner::input_at`]) than the frame. `None` where the model cannot, or the frame
    /// costs less.
    fn crops_at_frame_scale(
        &mut self,
        frame: &RgbImage,
        regions: &[Rect],
        scale: f32,
    ) -> Option<Result<Vec<Detection>>> {
        let (w, h) = frame.dimensions();
        let regions = with_context(regions, w, h);
        let pixels = |r: Rect| {
            let (iw, ih) = self.runner.input_at(r, scale)?;
            Some(iw as u64 * ih as u64)
        };
        let crops = regions.iter().map(|&r| pixels(r)).sum::<Option<u64>>()?;
        if crops >= pixels(Rect::full(w, h))? {
            return None;
        }
        let mut all = Vec::new();
        for region in regions {
            match self.runner.detect_region_at(frame, region, scale) {
                Ok(found) => all.extend(found),
                Err(e) => return Some(Err(e)),
            }
        }
        Some(self.finish(frame, all))
    }
}

impl ModelDetector {
    /// The boxes of one search of `frame`: those over the threshold, plus what a second look
    /// finds around the hints this search left uncovered ([`ModelDetector::set_hints`]) and at
    /// the near misses (see [`SECOND_LOOK_ZOOM`]), sanitized and merged. Near misses and hints
    /// themselves are never kept: a box is drawn only where the model scored it over the
    /// threshold, at one magnification or the other.
    fn finish(&mut self, frame: &RgbImage, found: Vec<Detection>) -> Result<Vec<Detection>> {
        let (w, h) = frame.dimensions();
        let threshold = self.threshold;
        let (mut kept, mut near): (Vec<Detection>, Vec<Detection>) =
            found.into_iter().partition(|d| d.score > threshold);
        let zoom = self.plan().second_look;
        if zoom > 1.0 && (!near.is_empty() || !self.hints.is_empty()) {
            near.retain(|d| d.bbox.is_finite() && d.score.is_finite());
            near.sort_by(|a, b| b.score.total_cmp(&a.score));
            // A hinted object may have moved as far as its own size since it was seen.
            let hinted = self.hints.iter().map(|b| Candidate {
                around: *b,
                reach: b.scaled(3.0),
                hint: true,
            });
            let missed = near.iter().map(|d| Candidate {
                around: d.bbox,
                reach: d.bbox,
                hint: false,
            });
            let fits = self.runner.fixed_input().unwrap_or((u32::MAX, u32::MAX));
            for (region, zoom, c) in second_looks(hinted.chain(missed), &kept, w, h, zoom, fits) {
                let again = self.runner.detect_region_at(frame, region, zoom)?;
                kept.extend(
                    again
                        .into_iter()
                        .filter(|d| d.score > threshold && confirms(d, &c.reach, region)),
                );
            }
        }
        Ok(nms::merge_enclosing(self.sanitize(kept, w, h), MERGE_IOU))
    }
}

/// Where a second look goes: around a box (a near miss, or where a hint says an object was), and
/// what a box found there must overlap to be kept.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Candidate {
    around: BBox,
    reach: BBox,
    /// A hint (else a near miss): hints and near misses each get up to [`MAX_SECOND_LOOKS`].
    hint: bool,
}

/// Whether a box a second look found in `crop` is the object looked for, seen better: it overlaps
/// `reach` (the near miss, or the hinted box grown by its own size) and spans less than half the
/// crop either way. YOLOv8n boxes a magnified crop whole as a plate: on crowd_1080p (no vehicle
/// in it) second looks kept boxes most of their crop's size over people's clothes, scoring up to
/// 0.79; every model on every frame without hold gave 53 plate boxes there instead of 18 (all
/// false), and 20 with this rule.
fn confirms(d: &Detection, reach: &BBox, crop: Rect) -> bool {
    d.bbox.intersection(reach) > 0.0
        && d.bbox.width() < crop.w as f32 / 2.0
        && d.bbox.height() < crop.h as f32 / 2.0
}

/// Whether the point `(x, y)` lies on one of `r`'s pixels.
fn holds(r: &Rect, x: f32, y: f32) -> bool {
    x >= r.x as f32 && y >= r.y as f32 && x < (r.x + r.w) as f32 && y < (r.y + r.h) as f32
}

/// Where second looks go, and at what magnification: the first [`MAX_SECOND_LOOKS`] hints and the
/// first [`MAX_SECOND_LOOKS`] near misses of `candidates`, taken in the order given, whose box no
/// kept box already covers (its centre outside every kept box) and no earlier look holds (one look
/// serves a near miss and a hint in one place), each in a square crop
/// [`SECOND_LOOK_CONTEXT`] times the box's long side plus 32 px (moved inside the `w` x `h` frame,
/// clipped where the frame is smaller), magnified by `zoom`, or less where that would not fit in
/// `fits`; none where that leaves less than 1.25 (the box was already seen large enough).
fn second_looks(
    candidates: impl IntoIterator<Item = Candidate>,
    kept: &[Detection],
    w: u32,
    h: u32,
    zoom: f32,
    fits: (u32, u32),
) -> Vec<(Rect, f32, Candidate)> {
    let mut looks: Vec<(Rect, f32, Candidate)> = Vec::new();
    if w == 0 || h == 0 {
        return looks;
    }
    let mut counted = [0usize; 2];
    for c in candidates {
        let n = &mut counted[usize::from(c.hint)];
        if *n == MAX_SECOND_LOOKS {
            continue;
        }
        let b = &c.around;
        if !b.is_finite() {
            continue;
        }
        let (cx, cy) = b.centre();
        if kept.iter().any(|k| k.bbox.contains(cx, cy))
            || looks.iter().any(|(r, _, _)| holds(r, cx, cy))
        {
            continue;
        }
        let side = (b.width().max(b.height()) * SECOND_LOOK_CONTEXT + 32.0).ceil();
        let zoom = zoom.min(fits.0 as f32 / side).min(fits.1 as f32 / side);
        if !(zoom >= 1.25) {
            continue;
        }
        let span = |c: f32, len: u32| {
            let n = (side as u32).clamp(1, len);
            let start = (c - n as f32 / 2.0).round().clamp(0.0, (len - n) as f32) as u32;
            (start, n)
        };
        let ((x, rw), (y, rh)) = (span(cx, w), span(cy, h));
        looks.push((Rect { x, y, w: rw, h: rh }, zoom, c));
        *n += 1;
    }
    looks
}

/// `regions` each grown by [`CROP_CONTEXT`] of its long side, within the `w` x `h` frame, those
/// that then overlap merged into one.
fn with_context(regions: &[Rect], w: u32, h: u32) -> Vec<Rect> {
    let grown = regions
        .iter()
        .map(|r| r.grown((r.w.max(r.h) as f32 * CROP_CONTEXT) as u32, w, h))
        .collect();
    Rect::merge_overlapping(grown)
}

impl Detector for ModelDetector {
    fn detect(&mut self, frame: &RgbImage) -> Result<Vec<Detection>> {
        self.each_rotation(frame, |me, f, _| me.detect_upright(f))
    }

    fn models(&self) -> Vec<&ModelData> {
        vec![&self.runner.loaded().model]
    }
}

impl ModelDetector {
    /// Every pass of the plan over the frame as it is.
    fn detect_upright(&mut self, frame: &RgbImage) -> Result<Vec<Detection>> {
        let (w, h) = frame.dimensions();
        if w == 0 || h == 0 {
            return Ok(Vec::new());
        }
        let mut all = Vec::new();
        let turn = self.turn.filter(|_| !self.light);
        let fixed = self.runner.fixed_input();
        let plan = self.plan();
        let mut passes = plan.passes_on_turn(w, h, fixed, turn);
        if let Some(turn) = turn {
            passes.extend(plan.off_turn_tiles(
                (w, h),
                fixed,
                turn,
                &self.hints,
                self.changes.as_ref(),
            ));
            passes.extend(self.plan.roving_tile(w, h, fixed, turn));
        }
        for pass in passes {
            let scale = [pass.scale * pass.widen, pass.scale];
            let found = self.runner.detect_region(frame, pass.region, scale)?;
            all.extend(
                found
                    .into_iter()
                    .filter(|d| !(pass.tile && cut_and_large(d, pass.region, w, h))),
            );
        }
        self.finish(frame, all)
    }
}

/// Detection presets: which models, thresholds and passes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Recall {
    /// One model per class, no tiles: for previews and throughput; misses small objects.
    Fast,
    /// Two models per class merged, small frames magnified 2×, large frames tiled.
    #[default]
    Balanced,
    /// Balanced with lower thresholds and a larger working size: fewer misses, more false boxes.
    Max,
}

impl std::str::FromStr for Recall {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "fast" => Ok(Recall::Fast),
            "balanced" | "default" => Ok(Recall::Balanced),
            "max" => Ok(Recall::Max),
            _ => Err(Error::InvalidSetting {
                name: "recall",
                value: s.to_string(),
                allowed: "one of fast, balanced, max",
            }),
        }
    }
}

/// A model to run, with its threshold and plan.
#[derive(Clone, Debug)]
pub struct ModelChoice {
    /// The model's bytes and family.
    pub model: ModelData,
    /// Score threshold in (0, 1).
    pub threshold: f32,
    /// How it covers a frame.
    pub plan: PassPlan,
    /// On clips with [`DetectConfig::interleave`], the model runs on one detected frame in
    /// `period` (times the number of models its class takes turns between); 1 elsewhere.
    pub period: usize,
}

/// Where a model comes from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum ModelSource {
    /// One of bystander's shipped models, verified by sha256.
    Shipped(models::ShippedModel),
    /// A user's ONNX file of a known family.
    File {
        /// The .onnx file.
        path: PathBuf,
        /// Its decoder.
        family: Family,
        /// What it finds.
        class: Class,
    },
    /// A model already in memory ([`ModelData::from_bytes`]).
    Bytes(ModelData),
}

impl ModelSource {
    /// What the model finds.
    pub fn class(&self) -> Class {
        match self {
            ModelSource::Shipped(s) => s.class,
            ModelSource::File { class, .. } => *class,
            ModelSource::Bytes(m) => m.class,
        }
    }

    /// A model as the command line names it: `FAMILY:PATH` (family centerface, retina, yolo or
    /// text), a user's file finding `class`, or the name of a shipped model of that class (for
    /// example `plate-text`, the licence-clean plate model), verified by its sha256.
    ///
    /// ```
    /// use bystander::detect::ModelSource;
    /// use bystander::Class;
    /// let m = ModelSource::parse("plate-text", Class::Plate).unwrap();
    /// assert!(matches!(m, ModelSource::Shipped(s) if s.name == "plate-text"));
    /// assert!(ModelSource::parse("plate-text", Class::Face).is_err()); // it finds plates
    /// assert!(matches!(
    ///     ModelSource::parse("text:my/dbnet.onnx", Class::Plate),
    ///     Ok(ModelSource::File { .. })
    /// ));
    /// ```
    pub fn parse(spec: &str, class: Class) -> Result<ModelSource> {
        const ALLOWED: &str = "FAMILY:PATH with FAMILY one of centerface, retina, yolo, text, or \
            the name of a shipped model of the class (centerface, retinaface, plate-retina, \
            plate-yolo, plate-yolo-int8, plate-text)";
        let bad = || Error::InvalidSetting {
            name: "model",
            value: spec.to_string(),
            allowed: ALLOWED,
        };
        let Some((family, path)) = spec.split_once(':') else {
            return models::SHIPPED
                .into_iter()
                .find(|m| m.name == spec && m.class == class)
                .map(ModelSource::Shipped)
                .ok_or_else(bad);
        };
        Ok(ModelSource::File {
            path: PathBuf::from(path),
            family: family.parse().map_err(|_| bad())?,
            class,
        })
    }
}

/// Everything that decides what the detectors find.
#[derive(Clone, Debug)]
pub struct DetectConfig {
    /// Classes to detect.
    pub classes: Vec<Class>,
    /// The preset.
    pub recall: Recall,
    /// Overrides every model's preset threshold, in (0, 1).
    pub threshold: Option<f32>,
    /// Overrides the working size (long side of the whole-frame pass), 64..=4096.
    pub working_size: Option<u32>,
    /// Overrides the tiling.
    pub tiles: Option<Tiles>,
    /// Overrides the widened pass's stretch for every model that takes a free input size
    /// (1 to 3; 1 turns the pass off). See [`WIDEN`].
    pub widen: Option<f32>,
    /// Also searches every frame rotated, in this many evenly spaced rotations (1, 2, 4 or 8;
    /// `None` and 1: upright only), with every model: 2 for a camera mounted upside down, 4 for
    /// people lying down, 8 for a ceiling-mounted fisheye, where faces point at the middle of the
    /// picture at every angle. Each rotation costs one more detection of the frame. See
    /// [`rotate`].
    pub rotations: Option<u32>,
    /// Replaces the preset's models for their class.
    pub models: Vec<ModelSource>,
    /// The folder the shipped models are read from; `None` looks where [`models::model_dir`]
    /// says.
    pub model_dir: Option<PathBuf>,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// Take turns across frames: where a class has `n` models, frame `i` runs only one of them,
    /// model `(i + class position) mod n`, and the tracker's hold carries each model's boxes over
    /// the frames it skips. Every model still looks at every object within `n` consecutive
    /// frames, at `1/n` of the cost. A model with a clip period `p` ([`ModelChoice::period`])
    /// stretches its class's cycle to `n p` frames. `None` leaves it to the preset: off for photos
    /// (a photo has no next frame), on for clips at the balanced and fast presets (see
    /// [`DetectConfig::for_clips`]).
    pub interleave: Option<bool>,
    /// Use the preset's plans for clips (set by [`DetectConfig::for_clips`]).
    pub clip: bool,
    /// Where [`DetectConfig::build`] takes its sessions from and keeps them: a batch's cache,
    /// shared by its clips; `None` makes new ones for each build.
    pub sessions: Option<SessionCache>,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            classes: Class::ALL.to_vec(),
            recall: Recall::Balanced,
            threshold: None,
            working_size: None,
            tiles: None,
            widen: None,
            rotations: None,
            models: Vec::new(),
            model_dir: None,
            intra_threads: crate::cores(),
            interleave: None,
            clip: false,
            sessions: None,
        }
    }
}

/// The fast preset's plate model runs on one detected frame in this many on clips: YOLOv8n padded
/// to 640 x 640 cost twice CenterFace at 640 px (on a 16:9 frame it now runs at 640 x 384, about
/// 0.6 of that), and a plate (a car) moves predictably enough for the tracker to carry its box
/// between looks (see [`DetectConfig::for_clips`]).
pub const FAST_PLATE_PERIOD: usize = 2;

/// The preset's models for a class: model, threshold, plan, and clip period (see
/// [`ModelChoice::period`]).
fn preset(
    recall: Recall,
    class: Class,
    clip: bool,
) -> Vec<(models::ShippedModel, f32, PassPlan, usize)> {
    let plan = |working_size, max_upscale, tiles| PassPlan {
        working_size,
        max_upscale,
        tiles,
        widen: 1.0,
        tile_zoom: 1.0,
        rotations: 1,
        second_look: 1.0,
        roving: 1.0,
        tile_rounds: 1,
    };
    // The plate YOLO's magnified tiles (photos and max; clips keep native ones) and its second
    // look at near misses (everywhere but the fast preset).
    let zoomed = |p: PassPlan| PassPlan {
        tile_zoom: PLATE_TILE_ZOOM,
        second_look: SECOND_LOOK_ZOOM,
        ..p
    };
    let mut models: Vec<(models::ShippedModel, f32, PassPlan)> = match (recall, class) {
        // Small frames are magnified up to 640 px: cheap, and a 270p clip's faces are small.
        (Recall::Fast, Class::Face) => vec![(models::CENTERFACE, 0.2, plan(640, 2.0, Tiles::Off))],
        (Recall::Fast, Class::Plate) => {
            vec![(models::PLATE_YOLO_INT8, 0.3, plan(640, 1.0, Tiles::Off))]
        }
        // CenterFace also looks at the photo widened (see `WIDEN`). RetinaFace would be cheaper
        // but adds more false boxes there: widened, it boxed the astronaut fixture's torso, and the
        // dlib photos' masked share rose to 0.252 (0.212 with CenterFace, 0.196 with neither).
        (Recall::Balanced, Class::Face) => vec![
            (
                models::CENTERFACE,
                0.15,
                plan(832, 2.0, Tiles::Auto).widened(),
            ),
            (models::RETINAFACE, 0.15, plan(832, 2.0, Tiles::Auto)),
        ],
        (Recall::Balanced, Class::Plate) => vec![
            (
                models::PLATE_YOLO_INT8,
                0.3,
                zoomed(plan(640, 1.0, Tiles::Auto)),
            ),
            (models::PLATE_RETINA, 0.3, plan(1280, 1.0, Tiles::Off)),
        ],
        (Recall::Max, Class::Face) => vec![
            (
                models::CENTERFACE,
                0.1,
                plan(1024, 2.0, Tiles::Auto).widened(),
            ),
            (
                models::RETINAFACE,
                0.1,
                plan(1024, 2.0, Tiles::Auto).widened(),
            ),
        ],
        (Recall::Max, Class::Plate) => vec![
            (models::PLATE_YOLO, 0.2, zoomed(plan(640, 1.0, Tiles::Auto))),
            (models::PLATE_RETINA, 0.2, plan(1600, 1.0, Tiles::Off)),
        ],
    };
    // Clips at the balanced preset: the same models and thresholds on a per-frame budget, tiles
    // for one model per class and no widened pass (see `DetectConfig::for_clips`).
    if clip && recall == Recall::Balanced {
        for (m, _, p) in &mut models {
            // The plate YOLO keeps its native tiles on frames larger than its input: whole, a
            // 1080p frame shrinks a 24-px plate to 8 px and a 2560-px one to 6, below what it
            // finds (see `scripts/hard_plates.py`); at native resolution (see [`PLATE_TILE_ZOOM`]).
            // CenterFace keeps them for the same reason (see [`CLIP_FACE_TILES`]).
            p.tiles = match (class, m.family) {
                (Class::Plate, Family::Yolo) => Tiles::Auto,
                (Class::Face, f) if f == CLIP_FACE_TILES => Tiles::Auto,
                _ => Tiles::Off,
            };
            if (class, m.family) == (Class::Plate, Family::Yolo) {
                p.roving = ROVING_ZOOM;
                p.tile_rounds = CLIP_PLATE_TILE_ROUNDS;
            }
            if (class, m.family) == (Class::Face, CLIP_FACE_TILES) {
                p.tile_rounds = CLIP_FACE_TILE_ROUNDS;
            }
            p.widen = 1.0;
            p.tile_zoom = 1.0;
            p.working_size = match class {
                Class::Face => CLIP_WORKING_SIZE,
                Class::Plate => CLIP_PLATE_WORKING_SIZE,
            };
        }
    }
    // Clips at the fast preset: RetinaFace takes turns with CenterFace. CenterFace alone missed
    // half of what every model finds on a static camera (room_432p_long: 0.493 of the reference,
    // at any working size), and RetinaFace finds much of the rest at less than half
    // CenterFace's cost per run; with turns, a detected frame still runs one face model (see
    // [`DetectConfig::for_clips`]). Photos keep CenterFace alone: a photo has no next frame to
    // take a turn on, so it would run both.
    if clip && recall == Recall::Fast && class == Class::Face {
        models.push((models::RETINAFACE, 0.2, plan(640, 2.0, Tiles::Off)));
    }
    let period = match (recall, class) {
        (Recall::Fast, Class::Plate) => FAST_PLATE_PERIOD,
        _ => 1,
    };
    models
        .into_iter()
        .map(|(m, t, p)| (m, t, p, period))
        .collect()
}

impl DetectConfig {
    /// Checks ranges and resolves the preset into concrete model choices.
    pub fn resolve(&self) -> Result<Vec<ModelChoice>> {
        if let Some(t) = self.threshold {
            if !(t > 0.0 && t < 1.0) {
                return Err(Error::InvalidSetting {
                    name: "threshold",
                    value: t.to_string(),
                    allowed: "a score strictly between 0 and 1",
                });
            }
        }
        if let Some(s) = self.working_size {
            if !(64..=4096).contains(&s) {
                return Err(Error::InvalidSetting {
                    name: "working size",
                    value: s.to_string(),
                    allowed: "64 to 4096 pixels",
                });
            }
        }
        if let Some(Tiles::Grid { cols, rows }) = self.tiles {
            if !(1..=16).contains(&cols) || !(1..=16).contains(&rows) {
                return Err(Error::InvalidSetting {
                    name: "tiles",
                    value: format!("{cols}x{rows}"),
                    allowed: "1 to 16 columns and rows",
                });
            }
        }
        if let Some(w) = self.widen {
            if !(1.0..=3.0).contains(&w) {
                return Err(Error::InvalidSetting {
                    name: "widen",
                    value: w.to_string(),
                    allowed: "1 (off) to 3",
                });
            }
        }
        if let Some(n) = self.rotations {
            if !rotate::ALLOWED.contains(&n) {
                return Err(Error::InvalidSetting {
                    name: "rotations",
                    value: n.to_string(),
                    allowed: "1 (upright only), 2, 4 or 8",
                });
            }
        }
        let mut out = Vec::new();
        for &class in &self.classes {
            let custom: Vec<&ModelSource> =
                self.models.iter().filter(|m| m.class() == class).collect();
            let defaults = preset(self.recall, class, self.clip);
            let dir = self.model_dir.clone().unwrap_or_else(models::model_dir);
            let picked: Vec<(ModelData, f32, PassPlan, usize)> = if custom.is_empty() {
                defaults
                    .iter()
                    .map(|(m, t, p, period)| Ok((m.checked_in(&dir)?, *t, *p, *period)))
                    .collect::<Result<_>>()?
            } else {
                let (_, t, p, period) = defaults[0];
                custom
                    .iter()
                    .map(|m| {
                        let data = match m {
                            ModelSource::Shipped(s) => s.checked_in(&dir)?,
                            ModelSource::File {
                                path,
                                family,
                                class,
                            } => ModelData::from_path(path, *family, *class)?,
                            ModelSource::Bytes(data) => data.clone(),
                        };
                        let mut plan = p;
                        if data.family == Family::Yolo {
                            plan.max_upscale = 1.0;
                        }
                        Ok((data, t, plan, period))
                    })
                    .collect::<Result<_>>()?
            };
            for (model, t, mut plan, period) in picked {
                if let Some(s) = self.working_size {
                    plan.working_size = s;
                }
                if let Some(tiles) = self.tiles {
                    plan.tiles = tiles;
                }
                if let Some(w) = self.widen {
                    plan.widen = w;
                }
                if let Some(n) = self.rotations {
                    plan.rotations = n;
                }
                out.push(ModelChoice {
                    model,
                    threshold: self.threshold.unwrap_or(t),
                    plan,
                    period,
                });
            }
        }
        Ok(out)
    }

    /// The settings for clips. A clip is detected on every frame and the tracker carries masks
    /// across misses, so the per-frame budget is what matters. The balanced preset runs the face
    /// models' whole-frame pass at 960 px and drops the widened pass; CenterFace keeps its
    /// native-resolution tiles on frames over 1200 px, where the whole-frame pass loses faces 20 to
    /// 40 px high ([`CLIP_FACE_TILES`]), half of them on each of its turns and every one that holds
    /// a face found lately or whose picture changed ([`CLIP_FACE_TILE_ROUNDS`]), and RetinaFace
    /// looks at the whole frame only. The plate models run at 640 px ([`CLIP_PLATE_WORKING_SIZE`]),
    /// and the YOLOv8n one keeps its native tiles on frames over 800 px, spread over its turns the
    /// same way ([`CLIP_PLATE_TILE_ROUNDS`]): plates are small in camera footage, and at 640
    /// px a 1080p frame's 24-px plate is 8 px, a 2560-px frame's 6, below what it finds (on the
    /// generated hard plate set, `scripts/hard_plates.py`, the clip plan covered 0.16 of the plates
    /// at least 16 px high and turned at most 45 degrees without the tiles, 0.92 with them; they
    /// cost 1080p clips more than half their speed), and adds one magnified roving tile a turn
    /// ([`ROVING_ZOOM`]) for the 16-px plates the native tiles never propose. Its two models per
    /// class take turns ([`DetectConfig::interleave`]): each frame gets a fresh detection from one
    /// face and one plate model, and each model sees every object at least every second frame,
    /// which the hold (8 frames) bridges. That halves the inference, 80 % of a clip's work, while
    /// keeping both models' view of every object. `--tiles`, `--working-size` and `--no-interleave`
    /// still override; the max preset keeps its tiles and runs every model on every frame.
    ///
    /// The fast preset interleaves too: its two face models on clips, CenterFace and RetinaFace,
    /// take turns on the detected frames, and its one plate model, YOLOv8n, runs on every second
    /// detected frame ([`FAST_PLATE_PERIOD`]).
    pub fn for_clips(&self) -> DetectConfig {
        let mut cfg = self.clone();
        cfg.clip = true;
        if matches!(cfg.recall, Recall::Balanced | Recall::Fast) {
            cfg.interleave.get_or_insert(true);
        }
        cfg
    }

    /// When each of `choices` (from [`DetectConfig::resolve`]) runs: see [`turns`]; every frame
    /// unless the models are interleaved.
    pub fn turns(&self, choices: &[ModelChoice]) -> Vec<Option<(usize, usize)>> {
        if self.interleave.unwrap_or(false) {
            turns(
                &choices
                    .iter()
                    .map(|c| (c.model.class, c.period))
                    .collect::<Vec<_>>(),
            )
        } else {
            vec![None; choices.len()]
        }
    }

    /// Builds the detectors (one ONNX Runtime session per model, or those of
    /// [`DetectConfig::sessions`]).
    pub fn build(&self) -> Result<DetectorSet> {
        let choices = self.resolve()?;
        let turns = self.turns(&choices);
        let detectors = choices
            .into_iter()
            .zip(&turns)
            .map(|(c, turn)| {
                let cache = self.sessions.as_ref();
                // A model that runs on every frame has no turns to spread its tiles over.
                let plan = match turn {
                    Some(_) => c.plan,
                    None => PassPlan {
                        tile_rounds: 1,
                        ..c.plan
                    },
                };
                let mut d = ModelDetector::new_cached(
                    c.model,
                    c.threshold,
                    plan,
                    self.intra_threads,
                    cache,
                )?;
                d.close_up_plates(!self.clip);
                Ok(d)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DetectorSet {
            detectors,
            turns,
            changes: None,
        })
    }
}

/// When each model runs under [`DetectConfig::interleave`], for models given as (class, period)
/// in the order [`DetectConfig::resolve`] returns them: `Some((n, k))` runs on frames `i` with
/// `i % n == k`; `None` on every frame. A class's `m` models take turns over a cycle of `m` x
/// `period` frames, spread evenly (model `j` at `j` x `period`). The `c`-th class starts its turns
/// `c` frames later, so the most expensive models of two classes (both listed first) do not share
/// a frame.
pub fn turns(models: &[(Class, usize)]) -> Vec<Option<(usize, usize)>> {
    let mut order: Vec<Class> = Vec::new();
    for (c, _) in models {
        if !order.contains(c) {
            order.push(*c);
        }
    }
    let mut seen = vec![0usize; order.len()];
    models
        .iter()
        .map(|&(c, period)| {
            let ci = order.iter().position(|o| *o == c).expect("listed above");
            let cycle = models.iter().filter(|(o, _)| *o == c).count() * period.max(1);
            let j = seen[ci];
            seen[ci] += 1;
            (cycle > 1).then(|| (cycle, (j * period.max(1) + ci) % cycle))
        })
        .collect()
}

/// The detectors for every requested class, merged.
pub struct DetectorSet {
    detectors: Vec<ModelDetector>,
    /// Per detector, when it runs (see [`turns`]).
    turns: Vec<Option<(usize, usize)>>,
    /// The luma cells of the frame to detect and the latest detected frames, by detected-frame
    /// number (`None`: not told, see [`DetectorSet::set_changes`]).
    changes: Option<Vec<(usize, Arc<LumaCells>)>>,
}

impl DetectorSet {
    /// The individual model detectors.
    pub fn detectors(&self) -> &[ModelDetector] {
        &self.detectors
    }

    /// Every detector on the light plan ([`PassPlan::light`]) from the next frame on, or on its
    /// configured one.
    pub fn set_light(&mut self, light: bool) {
        for d in &mut self.detectors {
            d.set_light(light);
        }
    }

    /// Hints for every detector from the next frame on (see [`ModelDetector::set_hints`]).
    pub fn set_hints(&mut self, hints: &[(Class, BBox)]) {
        for d in &mut self.detectors {
            d.set_hints(hints);
        }
    }

    /// A set for another worker thread: its own buffers, sharing this set's ONNX Runtime
    /// sessions (see `Sessions`).
    pub fn fork(&self) -> DetectorSet {
        DetectorSet {
            detectors: self.detectors.iter().map(ModelDetector::fork).collect(),
            turns: self.turns.clone(),
            changes: None,
        }
    }

    /// The luma cells of the next frame and of the detected frames before it, by detected-frame
    /// number (the engine's, see `engine::pool::Pool::change_depth`), from the next frame on: each
    /// detector whose tiles are spread over its turns gets those of its own earlier turns (see
    /// [`ModelDetector::set_changes`]). An empty list tells that nothing was measured, and every
    /// tile then counts as changed.
    pub(crate) fn set_changes(&mut self, changes: Vec<(usize, Arc<LumaCells>)>) {
        self.changes = Some(changes);
    }

    /// How many detected frames back [`DetectorSet::set_changes`] is used: the turns of the
    /// models whose tiles are spread over them, as far back as a tile's round; 0 where none is.
    pub(crate) fn change_depth(&self) -> usize {
        self.detectors
            .iter()
            .zip(&self.turns)
            .filter_map(|(d, t)| {
                let rounds = d.plan.tile_rounds as usize;
                t.filter(|_| rounds > 1).map(|(n, _)| n * (rounds - 1))
            })
            .max()
            .unwrap_or(0)
    }

    /// What detector `i`, on its `turn`-th turn at detected frame `index`, knows of the change
    /// under its tiles (see [`DetectorSet::set_changes`]).
    fn tile_changes(&self, i: usize, index: usize) -> Option<TileChanges> {
        let changes = self.changes.as_ref()?;
        let (n, _) = self.turns.get(i).copied().flatten()?;
        let rounds = self.detectors[i].plan.tile_rounds as usize;
        Some(TileChanges::of_turns(changes, index, n, rounds))
    }
}

impl TileChanges {
    /// What a model that runs on every `n`th detected frame, its tiles spread over `rounds`
    /// turns, knows at detected frame `index` from `changes` (cells by detected-frame number):
    /// this frame's cells, and those of its own `rounds - 1` turns before.
    fn of_turns(
        changes: &[(usize, Arc<LumaCells>)],
        index: usize,
        n: usize,
        rounds: usize,
    ) -> TileChanges {
        let at = |f: usize| {
            changes
                .iter()
                .find(|(g, _)| *g == f)
                .map(|(_, c)| Arc::clone(c))
        };
        TileChanges {
            current: at(index),
            earlier: (1..rounds)
                .map(|j| index.checked_sub(n * j).and_then(at))
                .collect(),
        }
    }
}

impl DetectorSet {
    /// Detects like [`Detector::detect`] and adds each model's wall time, in seconds, to
    /// `seconds` (one entry per detector, in the order of [`DetectorSet::detectors`]).
    pub fn detect_timed(
        &mut self,
        frame: &RgbImage,
        seconds: &mut [f64],
    ) -> Result<Vec<Detection>> {
        self.detect_frame_timed(frame, None, seconds)
    }

    /// Detects on frame `index` of a sequence: with [`DetectConfig::interleave`] only the models
    /// whose turn it is run; with `index` `None`, every model. Times as [`Self::detect_timed`].
    pub fn detect_frame_timed(
        &mut self,
        frame: &RgbImage,
        index: Option<usize>,
        seconds: &mut [f64],
    ) -> Result<Vec<Detection>> {
        self.detect_look_timed(frame, index, None, seconds)
    }

    /// Detects like [`Self::detect_frame_timed`], only inside `regions` when given (see
    /// [`ModelDetector::detect_in`]).
    pub fn detect_look_timed(
        &mut self,
        frame: &RgbImage,
        index: Option<usize>,
        regions: Option<&[Rect]>,
        seconds: &mut [f64],
    ) -> Result<Vec<Detection>> {
        let mut all = Vec::new();
        for i in 0..self.detectors.len() {
            let mut turn = index;
            if let (Some(index), Some(Some((n, k)))) = (index, self.turns.get(i)) {
                if index % n != *k {
                    continue;
                }
                turn = Some(index / n);
            }
            let changes = index.and_then(|f| self.tile_changes(i, f));
            let d = &mut self.detectors[i];
            d.set_turn(turn);
            d.set_changes(changes);
            let start = std::time::Instant::now();
            match regions {
                Some(r) => all.extend(d.detect_in(frame, r)?),
                None => all.extend(d.detect(frame)?),
            }
            if let Some(s) = seconds.get_mut(i) {
                *s += start.elapsed().as_secs_f64();
            }
        }
        Ok(nms::merge_enclosing(all, MERGE_IOU))
    }

    /// Frames over which the interleaved models each take their turn (1 when every model runs
    /// on every frame).
    pub fn cycle(&self) -> usize {
        self.turns
            .iter()
            .map(|t| t.map_or(1, |(n, _)| n))
            .max()
            .unwrap_or(1)
    }

    /// With `low_memory`, caps each model's sessions at what `workers` workers detecting
    /// consecutive frames can need at once: one per worker for a model that runs on every frame,
    /// and for one that takes turns every `n`-th frame, `workers / n` rounded up (see
    /// [`Sessions::set_cap`]); a session pool two of this set's detectors share is left uncapped.
    /// Without, lifts any cap.
    pub(crate) fn cap_sessions(&self, workers: usize, low_memory: bool) {
        for (i, d) in self.detectors.iter().enumerate() {
            let sessions = &d.runner.loaded().sessions;
            let shared = || {
                self.detectors
                    .iter()
                    .enumerate()
                    .any(|(j, e)| j != i && Arc::ptr_eq(&e.runner.loaded().sessions, sessions))
            };
            let cap = if !low_memory || shared() {
                usize::MAX
            } else {
                match self.turns.get(i).copied().flatten() {
                    Some((n, _)) => workers.div_ceil(n.max(1)),
                    None => workers,
                }
            };
            sessions.set_cap(cap);
        }
    }

    /// Before the first frame of `w` x `h` frames that `workers` workers detect side by side,
    /// makes a second session of each model whose plan tiles such a frame (where its cap leaves
    /// room, see [`Sessions::set_cap`]).
    ///
    /// Why: a model that tiles the frame runs several times on its turn where the others run
    /// once, so a worker reaches its next turn while another still runs it, and makes a second
    /// session anyway. Made during the clip, a session's making (its file read and checked,
    /// parsed and optimised) comes on top of the frames in flight and the runs under way, and can
    /// set the peak; made here, it does not. On frames no plan tiles (at the default, up to 800 px
    /// across) nothing is made: which model falls behind there depends on the models, and memory
    /// there is far from a device's limit. Measured: BENCHMARKS.md, "Second sessions made before
    /// the first frame".
    pub(crate) fn make_spare(&self, (w, h): (u32, u32), workers: usize) {
        if workers < 2 {
            return;
        }
        for d in &self.detectors {
            if d.passes(w, h).iter().any(|p| p.tile) {
                d.runner.loaded().sessions.make_spare();
            }
        }
    }

    /// The model names, in the order of [`DetectorSet::detectors`].
    pub fn model_names(&self) -> Vec<String> {
        self.detectors
            .iter()
            .map(|d| d.runner.loaded().model.name.clone())
            .collect()
    }
}

impl Detector for DetectorSet {
    fn detect(&mut self, frame: &RgbImage) -> Result<Vec<Detection>> {
        self.detect_timed(frame, &mut [])
    }

    fn models(&self) -> Vec<&ModelData> {
        self.detectors.iter().flat_map(|d| d.models()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;

    #[test]
    fn every_shipped_model_is_named_by_its_class_and_listed_when_a_name_is_wrong() {
        for m in models::SHIPPED {
            let other = if m.class == Class::Face {
                Class::Plate
            } else {
                Class::Face
            };
            assert!(matches!(
                ModelSource::parse(m.name, m.class),
                Ok(ModelSource::Shipped(s)) if s.file == m.file
            ));
            assert!(ModelSource::parse(m.name, other).is_err(), "{}", m.name);
        }
        let Err(Error::InvalidSetting { allowed, .. }) = ModelSource::parse("nope", Class::Face)
        else {
            panic!("an unknown name must be a setting error");
        };
        for m in models::SHIPPED {
            assert!(
                allowed.contains(m.name),
                "{} missing from: {allowed}",
                m.name
            );
        }
    }

    #[test]
    fn native_windows_hold_every_pixel_of_every_region() {
        let mut rng = crate::TestRng::new(5);
        for _ in 0..300 {
            let (w, h) = (rng.below(4000) + 1, rng.below(2500) + 1);
            let size = (640, 640);
            let regions: Vec<Rect> = (0..rng.below(6))
                .map(|_| {
                    let (x, y) = (rng.below(w), rng.below(h));
                    Rect {
                        x,
                        y,
                        w: rng.below(w - x) + 1,
                        h: rng.below(h - y) + 1,
                    }
                })
                .collect();
            let wins = windows_around(&regions, size, w, h);
            for win in &wins {
                assert!(
                    win.x + win.w <= w && win.y + win.h <= h,
                    "{win:?} outside {w}x{h}"
                );
                assert_eq!((win.w, win.h), (640.min(w), 640.min(h)));
            }
            // Every pixel of a region lies in a window (checked on a grid and at the corners).
            for r in &regions {
                let xs = (r.x..r.x + r.w).step_by(17).chain([r.x + r.w - 1]);
                for x in xs {
                    for y in (r.y..r.y + r.h).step_by(17).chain([r.y + r.h - 1]) {
                        assert!(
                            wins.iter()
                                .any(|b| b.x <= x && x < b.x + b.w && b.y <= y && y < b.y + b.h),
                            "({x}, {y}) of {r:?} in no window of {wins:?} ({w}x{h})"
                        );
                    }
                }
                // A region that fits in a window lies whole in one.
                if r.w <= 640 && r.h <= 640 {
                    assert!(wins.iter().any(|b| b.enclosing(r) == *b), "{r:?} split");
                }
            }
        }
    }

    #[test]
    fn large_boxes_must_score_higher_small_ones_keep_the_preset_threshold() {
        // Generated cases over frame shapes, box sizes and scores: a box is dropped exactly when it
        // is large for its class and scores under that class's large-box score.
        let mut rng = crate::TestRng::new(11);
        for _ in 0..2000 {
            let (w, h) = (rng.below(3000) + 16, rng.below(3000) + 16);
            let (bw, bh) = (rng.unit() * w as f32, rng.unit() * h as f32);
            let score = rng.unit();
            for class in Class::ALL {
                let d = Detection {
                    class,
                    score,
                    bbox: BBox::new(0.0, 0.0, bw, bh),
                    landmarks: Vec::new(),
                };
                let (large, least) = match class {
                    Class::Face => (bw.max(bh) >= LARGE_FACE * w.max(h) as f32, LARGE_FACE_SCORE),
                    Class::Plate => (bh >= LARGE_PLATE * h as f32, LARGE_PLATE_SCORE),
                };
                assert_eq!(
                    plausible(&d, w, h),
                    !large || score >= least,
                    "{d:?} in {w}x{h}"
                );
            }
        }
        // Photos keep a frame-filling plate box whatever its score, clips only from the bar on;
        // faces are held to their own rule either way.
        for (score, kept_by_clips) in [(0.3, false), (0.59, false), (0.6, true), (0.9, true)] {
            let close_up = Detection {
                class: Class::Plate,
                score,
                bbox: BBox::new(10.0, 20.0, 620.0, 460.0),
                landmarks: Vec::new(),
            };
            let face = Detection {
                class: Class::Face,
                ..close_up.clone()
            };
            for photo in [false, true] {
                let kept = sanitize(vec![close_up.clone(), face.clone()], 640, 480, photo);
                let plates = kept.iter().filter(|d| d.class == Class::Plate).count();
                assert_eq!(plates == 1, photo || kept_by_clips, "{score} photo {photo}");
                let faces = kept.iter().filter(|d| d.class == Class::Face).count();
                assert_eq!(
                    faces == 1,
                    score >= LARGE_FACE_SCORE,
                    "{score} photo {photo}"
                );
            }
        }
        // The frame-sized false plate of the hard plate clip goes; the dev photos' tallest plate
        // stays.
        let plate = |score, bbox| Detection {
            class: Class::Plate,
            score,
            bbox,
            landmarks: Vec::new(),
        };
        assert!(!plausible(
            &plate(0.51, BBox::new(43.0, 33.0, 1871.0, 1012.0)),
            1920,
            1080
        ));
        assert!(plausible(
            &plate(0.51, BBox::new(100.0, 300.0, 890.0, 622.0)),
            1000,
            750
        ));
    }

    /// Generated cases: a frame-high plate box goes, photo or clip, exactly when at least
    /// `PLATES_ON_A_PLATE` small plate boxes are centred inside it; every other box stays,
    /// whatever lies inside it, and the small plates always stay.
    #[test]
    fn a_frame_high_plate_with_plates_on_it_goes_and_they_stay() {
        let mut rng = crate::TestRng::new(61);
        let plate = |score, bbox| Detection {
            class: Class::Plate,
            score,
            bbox,
            landmarks: Vec::new(),
        };
        for case in 0..2000 {
            let (w, h) = (200 + rng.below(3800), 200 + rng.below(2000));
            let (fw, fh) = (w as f32, h as f32);
            // A box from 0.3 to 1.0 of the frame high, scoring over every bar.
            let bh = fh * (0.3 + rng.unit() * 0.7);
            let bw = fw * (0.3 + rng.unit() * 0.7);
            let (x, y) = (rng.unit() * (fw - bw), rng.unit() * (fh - bh));
            let big = plate(0.9, BBox::new(x, y, x + bw, y + bh));
            let tall = bh >= LARGE_PLATE * fh;
            // Boxes inside it, small (under the share) or not, some centred outside it.
            let mut all = vec![big.clone()];
            let mut small_inside = 0;
            for _ in 0..rng.below(4) {
                let share = rng.unit() * 0.3;
                let ih = (bh * share).max(2.0);
                let iw = ih * 2.0;
                let (cx, cy) = (
                    x - bw * 0.2 + rng.unit() * bw * 1.4,
                    y - bh * 0.2 + rng.unit() * bh * 1.4,
                );
                let inner = plate(0.5, BBox::from_center(cx, cy, iw, ih));
                let clipped = inner.bbox.clipped(w, h);
                let (ccx, ccy) = clipped.centre();
                if clipped.area() > 0.0
                    && clipped.height() < SMALL_PLATE_SHARE * bh
                    && big.bbox.contains(ccx, ccy)
                {
                    small_inside += 1;
                }
                if clipped.area() > 0.0 {
                    all.push(inner);
                }
            }
            let goes = tall && small_inside >= PLATES_ON_A_PLATE;
            for photo in [false, true] {
                let kept = sanitize(all.clone(), w, h, photo);
                let big_kept = kept.iter().any(|d| d.bbox == big.bbox);
                assert_eq!(big_kept, !goes, "case {case} photo {photo}: {all:?}");
                assert_eq!(kept.len(), all.len() - goes as usize, "case {case}");
            }
        }
    }

    /// A plan that tiles as [`Tiles::Auto`] does, its tiles spread over `rounds` turns.
    fn auto_tiles(working_size: u32, max_upscale: f32, rounds: u32) -> PassPlan {
        PassPlan {
            working_size,
            max_upscale,
            tiles: Tiles::Auto,
            widen: 1.0,
            tile_zoom: 1.0,
            rotations: 1,
            second_look: 1.0,
            roving: 1.0,
            tile_rounds: rounds,
        }
    }

    /// Tiles spread over turns: every turn keeps the whole-frame passes, the turns of one round
    /// share the tiles out (each tile on exactly one turn, then again), and with two rounds every
    /// pixel that lies in two tiles or more (their overlap) lies in a tile of every turn.
    #[test]
    fn tiles_spread_over_turns_share_out_the_grid_and_keep_the_overlaps_on_every_turn() {
        let mut rng = crate::TestRng::new(61);
        for _ in 0..300 {
            let (w, h) = (16 + rng.below(4000), 16 + rng.below(4000));
            let rounds = 1 + rng.below(3);
            let plan = auto_tiles([640, 960][rng.below(2) as usize], 2.0, rounds);
            let fixed = (rng.below(2) == 0).then_some((640, 640));
            let case = format!("{w}x{h} rounds {rounds} {fixed:?}");
            let all = plan.passes(w, h, fixed);
            assert_eq!(plan.passes_on_turn(w, h, fixed, None), all, "{case}");
            let (whole, tiles): (Vec<Pass>, Vec<Pass>) = all.iter().partition(|p| !p.tile);
            let mut dealt: Vec<Pass> = Vec::new();
            let start = rng.below(5) as usize;
            for turn in start..start + rounds as usize {
                let on = plan.passes_on_turn(w, h, fixed, Some(turn));
                assert_eq!(
                    on,
                    plan.passes_on_turn(w, h, fixed, Some(turn + rounds as usize))
                );
                let (on_whole, on_tiles): (Vec<Pass>, Vec<Pass>) = on.iter().partition(|p| !p.tile);
                assert_eq!(on_whole, whole, "{case}");
                dealt.extend(on_tiles);
            }
            assert_eq!(dealt.len(), tiles.len(), "{case}");
            assert!(tiles.iter().all(|t| dealt.contains(t)), "{case}");
            if rounds != 2 || tiles.is_empty() {
                continue;
            }
            // Pixels sampled every 13 px: those in two tiles or more are in a tile on each turn.
            let inside = |r: &Rect, x: u32, y: u32| {
                (r.x..r.x + r.w).contains(&x) && (r.y..r.y + r.h).contains(&y)
            };
            let turns = [0, 1].map(|t| plan.passes_on_turn(w, h, fixed, Some(t)));
            for y in (0..h).step_by(13) {
                for x in (0..w).step_by(13) {
                    if tiles.iter().filter(|t| inside(&t.region, x, y)).count() < 2 {
                        continue;
                    }
                    for on in &turns {
                        assert!(
                            on.iter().any(|p| p.tile && inside(&p.region, x, y)),
                            "{case}: ({x}, {y}) lies in an overlap but in no tile of a turn"
                        );
                    }
                }
            }
        }
    }

    /// A model's earlier turns are its own: `n` detected frames apart, as far back as its
    /// rounds; a frame not measured (not detected: a fault) is unknown, never another's cells.
    #[test]
    fn a_model_compares_with_the_cells_of_its_own_earlier_turns() {
        use crate::engine::gate::LumaCells;
        let cells = |f: usize| Arc::new(LumaCells::from_means(8, 8, vec![f as u8]));
        // Detected frames 3 to 10, frame 6 lost.
        let changes: Vec<(usize, Arc<LumaCells>)> = (3..=10)
            .rev()
            .filter(|&f| f != 6)
            .map(|f| (f, cells(f)))
            .collect();
        let t = TileChanges::of_turns(&changes, 10, 2, 3);
        assert_eq!(t.current, Some(cells(10)));
        assert_eq!(t.earlier, vec![Some(cells(8)), None]);
        let t = TileChanges::of_turns(&changes, 9, 4, 2);
        assert_eq!(t.earlier, vec![Some(cells(5))]);
        let t = TileChanges::of_turns(&changes, 4, 2, 3);
        assert_eq!(t.earlier, vec![None, None]);
        assert!(TileChanges::of_turns(&changes, 11, 2, 2).current.is_none());
    }

    /// Tiles left out of a turn, over generated frame sizes, plans of two and three rounds, and
    /// sequences whose cells change in random places by random amounts (some under the
    /// threshold, adding up over turns): a tile is searched on a turn, or shows, to within
    /// [`OFF_TURN_CHANGE`] of each cell, what the model searched in it on one of its latest turns
    /// of the round; a tile holding a hint is searched on every turn; a still, unhinted picture
    /// waits for its round; cells not measured search every tile, and no change told searches
    /// only the hinted ones.
    #[test]
    fn a_tile_left_out_of_a_turn_shows_what_a_recent_search_of_it_saw() {
        use crate::engine::gate::{LumaCells, CELL};
        let mut rng = crate::TestRng::new(71);
        for case in 0..120 {
            let (w, h) = (700 + rng.below(3400), 500 + rng.below(2000));
            let rounds = 2 + rng.below(2);
            let plan = auto_tiles(640, 1.0, rounds);
            let fixed = (rng.below(2) == 0).then_some((640, 640));
            let tiles: Vec<Pass> = plan
                .passes(w, h, fixed)
                .into_iter()
                .filter(|p| p.tile)
                .collect();
            let (cols, rows) = (w.div_ceil(CELL), h.div_ceil(CELL));
            let mut means: Vec<u8> = (0..cols * rows).map(|_| rng.below(256) as u8).collect();
            let mut history: Vec<Arc<LumaCells>> = Vec::new();
            let mut searched: Vec<Vec<usize>> = vec![Vec::new(); tiles.len()];
            let rounds = rounds as usize;
            let turns = 12;
            // A slow drift: the same cells brighten a little, under the threshold, turn after turn.
            let drift = (
                rng.below(cols),
                rng.below(rows),
                1 + rng.below(30),
                1 + rng.below(30),
            );
            for turn in 0..turns {
                if turn + rounds + 1 < turns && rng.below(4) > 0 {
                    let (cx, cy, cw, ch) = drift;
                    for y in cy..(cy + ch).min(rows) {
                        for x in cx..(cx + cw).min(cols) {
                            let m = &mut means[(y * cols + x) as usize];
                            *m = m.saturating_add(5);
                        }
                    }
                }
                // The last rounds + 1 turns are still, to see the saving.
                if turn + rounds + 1 < turns && rng.below(3) > 0 {
                    let (cx, cy) = (rng.below(cols), rng.below(rows));
                    let (cw, ch) = (1 + rng.below(20), 1 + rng.below(20));
                    let by = rng.below(30) as u8;
                    for y in cy..(cy + ch).min(rows) {
                        for x in cx..(cx + cw).min(cols) {
                            let m = &mut means[(y * cols + x) as usize];
                            *m = m.saturating_add(by);
                        }
                    }
                }
                let current = Arc::new(LumaCells::from_means(w, h, means.clone()));
                history.push(Arc::clone(&current));
                let changes = TileChanges {
                    current: Some(Arc::clone(&current)),
                    earlier: (1..rounds)
                        .map(|j| turn.checked_sub(j).map(|t| Arc::clone(&history[t])))
                        .collect(),
                };
                let hints: Vec<BBox> = (0..rng.below(2))
                    .map(|_| {
                        let (x, y) = (rng.below(w - 40) as f32, rng.below(h - 40) as f32);
                        BBox::new(x, y, x + 30.0, y + 20.0)
                    })
                    .filter(|_| turn + rounds + 1 < turns)
                    .collect();
                let on = plan.passes_on_turn(w, h, fixed, Some(turn));
                let off = plan.off_turn_tiles((w, h), fixed, turn, &hints, Some(&changes));
                let label = format!("case {case}: {w}x{h}, {rounds} rounds, turn {turn}");
                assert!(off.iter().all(|p| p.tile && !on.contains(p)), "{label}");
                for (i, t) in tiles.iter().enumerate() {
                    let r = &t.region;
                    let area = BBox::new(
                        r.x as f32,
                        r.y as f32,
                        (r.x + r.w) as f32,
                        (r.y + r.h) as f32,
                    );
                    if on.contains(t) || off.contains(t) {
                        searched[i].push(turn);
                        continue;
                    }
                    assert!(
                        hints.iter().all(|b| area.intersection(b) == 0.0),
                        "{label}: a tile holding a hint was left out"
                    );
                    let recent = searched[i].iter().rev().take_while(|&&s| s + rounds > turn);
                    let seen = recent
                        .clone()
                        .any(|&s| !current.changed_in(&history[s], *r, OFF_TURN_CHANGE));
                    assert!(
                        seen,
                        "{label}: tile {r:?} left out, changed since every recent search"
                    );
                }
                if turn + 1 == turns {
                    assert!(
                        off.is_empty(),
                        "{label}: a still frame searched off-turn tiles"
                    );
                }
            }
            let not_measured = TileChanges::default();
            let on = plan.passes_on_turn(w, h, fixed, Some(5));
            let off = plan.off_turn_tiles((w, h), fixed, 5, &[], Some(&not_measured));
            assert_eq!(
                on.iter().filter(|p| p.tile).count() + off.len(),
                tiles.len(),
                "case {case}"
            );
            assert!(plan.off_turn_tiles((w, h), fixed, 5, &[], None).is_empty());
        }
    }

    /// One round of the roving tile sees every pixel of a frame the plan tiles, magnified and
    /// within the model's input; there is none where the plan does not tile or roves at 1.
    #[test]
    fn one_round_of_the_roving_tile_sees_every_pixel_magnified() {
        let mut rng = crate::TestRng::new(47);
        for case in 0..400 {
            let (w, h) = (16 + rng.below(4000), 16 + rng.below(4000));
            let tiles = if rng.below(4) == 0 {
                Tiles::Off
            } else {
                Tiles::Auto
            };
            let plan = PassPlan {
                working_size: 640,
                max_upscale: 1.0,
                tiles,
                widen: 1.0,
                tile_zoom: 1.0,
                rotations: 1,
                second_look: 1.0,
                roving: if case % 10 == 0 { 1.0 } else { ROVING_ZOOM },
                tile_rounds: 1,
            };
            let fixed = Some((640, 640));
            let planned_tiles = plan.passes(w, h, fixed).iter().any(|p| p.tile);
            let at = |turn| plan.roving_tile(w, h, fixed, turn);
            if plan.roving <= 1.0 || !planned_tiles {
                assert!((0..50).all(|t| at(t).is_none()), "{w}x{h} {plan:?}");
                continue;
            }
            // The round: turns until the first tile comes back.
            let first = at(0).unwrap();
            let round = (1..10_000).find(|&t| at(t) == Some(first)).unwrap();
            let mut seen = vec![false; (w * h) as usize];
            for t in 0..round {
                let p = at(t).unwrap();
                let r = p.region;
                assert!(p.tile && r.x + r.w <= w && r.y + r.h <= h, "{w}x{h}: {p:?}");
                assert!(p.scale > 1.0 && p.scale <= ROVING_ZOOM, "{w}x{h}: {p:?}");
                assert!(r.w.max(r.h) as f32 * p.scale <= 640.5, "{w}x{h}: {p:?}");
                for y in r.y..r.y + r.h {
                    seen[(y * w + r.x) as usize..(y * w + r.x + r.w) as usize].fill(true);
                }
            }
            assert!(seen.iter().all(|&s| s), "{w}x{h}: a pixel the round misses");
            // The next turn starts the round again, the same tiles in the same order.
            assert_eq!(at(round + 1), at(1));
        }
    }

    #[test]
    fn spans_cover_the_length_with_overlap() {
        for (len, n) in [(1920, 3), (1080, 2), (500, 4), (100, 1)] {
            let s = spans(len, n);
            assert_eq!(s.len(), n as usize);
            assert_eq!(s[0].0, 0);
            let (last_start, last_len) = *s.last().unwrap();
            assert_eq!(last_start + last_len, len);
            for pair in s.windows(2) {
                let overlap = pair[0].0 + pair[0].1 - pair[1].0;
                assert!(n == 1 || overlap >= 48, "{len}/{n}: {s:?}");
            }
        }
    }

    #[test]
    fn the_light_plan_looks_once_at_the_whole_frame_never_magnified_and_costs_less() {
        let mut rng = crate::TestRng::new(31);
        let cost = |ps: &[Pass]| -> f32 {
            ps.iter()
                .map(|p| p.region.w as f32 * p.region.h as f32 * p.scale * p.scale * p.widen)
                .sum()
        };
        for _ in 0..3000 {
            let (w, h) = (16 + rng.below(4000), 16 + rng.below(4000));
            let tiles = match rng.below(3) {
                0 => Tiles::Off,
                1 => Tiles::Auto,
                _ => Tiles::Grid {
                    cols: 1 + rng.below(5),
                    rows: 1 + rng.below(5),
                },
            };
            let plan = PassPlan {
                working_size: 64 + rng.below(1800),
                max_upscale: 1.0 + rng.unit() * 2.0,
                tiles,
                widen: if rng.below(2) == 0 { 1.0 } else { WIDEN },
                tile_zoom: if rng.below(2) == 0 {
                    1.0
                } else {
                    PLATE_TILE_ZOOM
                },
                rotations: 1,
                second_look: 1.0,
                roving: 1.0,
                tile_rounds: 1,
            };
            let fixed = (rng.below(2) == 0).then_some((640, 640));
            let full = plan.passes(w, h, fixed);
            let light = plan.light().passes(w, h, fixed);
            let case = format!("{w}x{h} {plan:?} {fixed:?}");
            assert_eq!(light.len(), 1, "{case}");
            assert_eq!(light[0].region, Rect::full(w, h), "{case}");
            assert!(light[0].scale <= 1.0, "{case}");
            assert!(light[0].scale <= full[0].scale + 1e-6, "{case}");
            assert!(cost(&light) <= cost(&full) * 1.0001, "{case}");
            if fixed.is_none() && plan.working_size > 480 && w.max(h) >= plan.working_size {
                assert!(light[0].scale < full[0].scale, "{case}");
            }
        }
    }

    #[test]
    fn small_frames_are_magnified_and_large_ones_tiled() {
        let plan = auto_tiles(832, 2.0, 1);
        let p = plan.passes(416, 416, None);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].scale, 2.0);
        let p = plan.passes(1920, 1080, None);
        // Whole frame at 832/1920, then a 3x2 grid at native resolution.
        assert_eq!(p.len(), 7);
        assert!((p[0].scale - 832.0 / 1920.0).abs() < 1e-6);
        assert!(p[1..].iter().all(|t| t.tile && t.scale == 1.0));
        // A 640 x 640 input gets the fewest tiles that reach it unshrunk: 4 x 2 of 540 x 608.
        let fixed = plan.passes(1920, 1080, Some((640, 640)));
        assert_eq!(fixed.len(), 1 + 4 * 2);
        assert!(fixed[1..]
            .iter()
            .all(|t| t.region.w <= 640 && t.region.h <= 640));
        // Magnified tiles: at most 426 px for the 640-px input (6 x 3 on 1080p), magnified to fit it.
        let zoomed = PassPlan {
            tile_zoom: PLATE_TILE_ZOOM,
            ..plan
        };
        let z = zoomed.passes(1920, 1080, Some((640, 640)));
        assert_eq!(z.len(), 1 + 6 * 3);
        assert!(z[1..].iter().all(|t| t.region.w.max(t.region.h) <= 426
            && t.scale <= PLATE_TILE_ZOOM
            && t.region.w.max(t.region.h) as f32 * t.scale <= 640.5));
        for (len, most) in [
            (1920, 640),
            (2560, 640),
            (1080, 640),
            (4000, 832),
            (700, 640),
        ] {
            let n = fitting(len, most);
            assert!(spans(len, n)[0].1 <= most, "{len}/{most}");
            assert!(
                n == 1 || spans(len, n - 1)[0].1 > most,
                "{len}/{most}: {n} is not the fewest"
            );
        }
        let off = PassPlan {
            tiles: Tiles::Off,
            ..plan
        };
        assert_eq!(off.passes(4000, 3000, None).len(), 1);
    }

    #[test]
    fn large_boxes_cut_by_interior_tile_edges_are_dropped_pieces_and_frame_edges_kept() {
        let tile = Rect {
            x: 100,
            y: 0,
            w: 100,
            h: 100,
        };
        let at = |x1, x2, y2| Detection {
            class: Class::Plate,
            score: 0.9,
            bbox: crate::geometry::BBox::new(x1, 10.0, x2, y2),
            landmarks: vec![],
        };
        // Cut by the left edge: a piece is kept, a box spanning half the tile goes.
        assert!(!cut_and_large(&at(100.0, 130.0, 20.0), tile, 200, 100));
        assert!(cut_and_large(&at(100.0, 150.0, 20.0), tile, 200, 100));
        assert!(cut_and_large(&at(100.0, 120.0, 60.0), tile, 200, 100));
        // Inside the tile, any size is kept.
        assert!(!cut_and_large(&at(110.0, 190.0, 90.0), tile, 200, 100));
        // The tile's right edge is the frame's right edge: a box there is whole.
        assert!(!cut_and_large(&at(120.0, 200.0, 90.0), tile, 200, 100));
    }

    #[test]
    fn interleaved_models_take_turns_and_each_class_keeps_one_per_frame() {
        use Class::{Face, Plate};
        let t = turns(&[(Face, 1), (Face, 1), (Plate, 1), (Plate, 1)]);
        assert_eq!(
            t,
            vec![Some((2, 0)), Some((2, 1)), Some((2, 1)), Some((2, 0))]
        );
        // A class with one model runs it on every frame; three models take three turns.
        assert_eq!(
            turns(&[(Face, 1), (Plate, 1), (Plate, 1), (Plate, 1)]),
            vec![None, Some((3, 1)), Some((3, 2)), Some((3, 0))]
        );
        // A period stretches the cycle: the fast preset's one plate model runs on every second
        // frame, off the first class's phase; two models of period 2 are two frames apart.
        assert_eq!(turns(&[(Face, 1), (Plate, 2)]), vec![None, Some((2, 1))]);
        assert_eq!(
            turns(&[(Face, 2), (Face, 2)]),
            vec![Some((4, 0)), Some((4, 2))]
        );
        // On every frame exactly one model of each class runs, and each model runs once in
        // every window of n frames.
        let classes = [Face, Face, Plate, Plate];
        for i in 0..6 {
            for class in [Face, Plate] {
                let running = classes
                    .iter()
                    .zip(&t)
                    .filter(|(c, turn)| **c == class && turn.is_some_and(|(n, k)| i % n == k))
                    .count();
                assert_eq!(running, 1, "frame {i}, {class:?}");
            }
        }
    }

    #[test]
    fn out_of_range_settings_are_refused_with_the_range() {
        let cfg = DetectConfig {
            threshold: Some(1.5),
            ..Default::default()
        };
        let err = cfg.resolve().unwrap_err().to_string();
        assert!(
            err.contains("threshold") && err.contains("between 0 and 1"),
            "{err}"
        );
        let cfg = DetectConfig {
            working_size: Some(10),
            ..Default::default()
        };
        assert!(cfg
            .resolve()
            .unwrap_err()
            .to_string()
            .contains("64 to 4096"));
        for bad in [0.5, 3.5, f32::NAN] {
            let cfg = DetectConfig {
                widen: Some(bad),
                ..Default::default()
            };
            let err = cfg.resolve().unwrap_err().to_string();
            assert!(
                err.contains("widen") && err.contains("1 (off) to 3"),
                "{err}"
            );
        }
        for bad in [0, 3, 16] {
            let cfg = DetectConfig {
                rotations: Some(bad),
                ..Default::default()
            };
            let err = cfg.resolve().unwrap_err().to_string();
            assert!(
                err.contains("rotations") && err.contains("1 (upright only), 2, 4 or 8"),
                "{err}"
            );
        }
        // A valid count reaches every model's plan.
        let cfg = DetectConfig {
            rotations: Some(4),
            ..Default::default()
        };
        assert!(cfg.resolve().unwrap().iter().all(|c| c.plan.rotations == 4));
    }

    #[test]
    fn the_widened_pass_stretches_the_whole_frame_and_fits_the_working_size() {
        let plan = PassPlan {
            working_size: 832,
            max_upscale: 2.0,
            tiles: Tiles::Auto,
            widen: 1.0,
            tile_zoom: 1.0,
            rotations: 1,
            second_look: 1.0,
            roving: 1.0,
            tile_rounds: 1,
        }
        .widened();
        // A 416 px square: the plain pass magnifies 2x; widened, it is 624 x 416, so 832/624.
        let p = plan.passes(416, 416, None);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].scale, p[0].widen), (2.0, 1.0));
        assert_eq!(p[1].region, Rect::full(416, 416));
        assert!(!p[1].tile);
        assert!((p[1].scale - 832.0 / 624.0).abs() < 1e-6);
        assert_eq!(p[1].widen, WIDEN);
        // 1080p: whole frame, widened whole frame at 832/2880, then the 3x2 tiles unwidened.
        let p = plan.passes(1920, 1080, None);
        assert_eq!(p.len(), 8);
        assert!((p[1].scale - 832.0 / (1920.0 * WIDEN)).abs() < 1e-6);
        assert!(p[2..].iter().all(|t| t.tile && t.widen == 1.0));
        // A fixed-input (letterboxing) model cannot be stretched: no widened pass.
        assert_eq!(plan.passes(416, 416, Some((640, 640))).len(), 1);
        // Presets: balanced widens CenterFace on photos only, max both face models, fast none.
        let widened = |recall, clip| -> Vec<f32> {
            preset(recall, Class::Face, clip)
                .iter()
                .map(|(_, _, p, _)| p.widen)
                .collect()
        };
        assert_eq!(widened(Recall::Balanced, false), vec![WIDEN, 1.0]);
        assert_eq!(widened(Recall::Balanced, true), vec![1.0, 1.0]);
        assert_eq!(widened(Recall::Max, false), vec![WIDEN, WIDEN]);
        assert_eq!(widened(Recall::Fast, false), vec![1.0]);
    }

    #[test]
    fn the_fast_preset_takes_face_turns_on_clips_and_keeps_centerface_alone_on_photos() {
        let families = |clip| -> Vec<Family> {
            preset(Recall::Fast, Class::Face, clip)
                .iter()
                .map(|(m, ..)| m.family)
                .collect()
        };
        assert_eq!(families(false), vec![Family::CenterFace]);
        assert_eq!(families(true), vec![Family::CenterFace, Family::Retina]);
        // On clips each detected frame runs one of the two face models, and the plate model
        // runs beside RetinaFace, the cheaper one, never beside CenterFace.
        let models: Vec<(Class, usize)> = [Class::Face, Class::Plate]
            .iter()
            .flat_map(|&c| {
                preset(Recall::Fast, c, true)
                    .into_iter()
                    .map(move |m| (c, m.3))
            })
            .collect();
        assert_eq!(
            turns(&models),
            vec![Some((2, 0)), Some((2, 1)), Some((2, 1))]
        );
    }

    #[test]
    fn second_looks_hold_their_near_miss_inside_the_frame_and_skip_what_is_kept() {
        // Generated frames, hints and near misses: every look is a crop inside the frame that
        // holds its box's centre, magnified at least 1.25 times and no more than asked or than
        // fits the input; no look goes to a box a kept box already covers, none to one an earlier
        // look holds; never more than MAX_SECOND_LOOKS hints and as many near misses, each taken
        // in the order given (hints first, near misses best first).
        let mut rng = crate::TestRng::new(47);
        let fits = (640, 640);
        let (mut total, mut hinted) = (0, 0);
        for _ in 0..500 {
            let (w, h) = (rng.below(2500) + 1, rng.below(1500) + 1);
            let box_at = |rng: &mut crate::TestRng, most: f32| {
                let (x, y) = (rng.unit() * w as f32, rng.unit() * h as f32);
                let (bw, bh) = (1.0 + rng.unit() * most, 1.0 + rng.unit() * most);
                BBox::new(x, y, x + bw, y + bh)
            };
            let det = |bbox, score| Detection {
                class: Class::Plate,
                score,
                bbox,
                landmarks: Vec::new(),
            };
            let kept: Vec<Detection> = (0..rng.below(4))
                .map(|_| det(box_at(&mut rng, 200.0), 0.9))
                .collect();
            let hints: Vec<Candidate> = (0..rng.below(12))
                .map(|_| {
                    let b = box_at(&mut rng, 150.0);
                    Candidate {
                        around: b,
                        reach: b.scaled(3.0),
                        hint: true,
                    }
                })
                .collect();
            let mut near: Vec<Candidate> = (0..rng.below(20))
                .map(|_| {
                    let b = box_at(&mut rng, 300.0);
                    Candidate {
                        around: b,
                        reach: b,
                        hint: false,
                    }
                })
                .collect();
            near.sort_by(|a, b| a.around.area().total_cmp(&b.around.area()));
            let given: Vec<Candidate> = hints.iter().chain(&near).copied().collect();
            let looks = second_looks(given.clone(), &kept, w, h, SECOND_LOOK_ZOOM, fits);
            for hint in [true, false] {
                let n = looks.iter().filter(|(_, _, c)| c.hint == hint).count();
                assert!(n <= MAX_SECOND_LOOKS);
                hinted += usize::from(hint) * n;
            }
            total += looks.len();
            let mut last = 0;
            for (i, (r, zoom, c)) in looks.iter().enumerate() {
                assert!(
                    r.w > 0 && r.h > 0 && r.x + r.w <= w && r.y + r.h <= h,
                    "{r:?} in {w}x{h}"
                );
                assert!((1.25..=SECOND_LOOK_ZOOM).contains(zoom), "{zoom}");
                assert!(
                    r.w as f32 * zoom <= 640.5 && r.h as f32 * zoom <= 640.5,
                    "{r:?} x {zoom}"
                );
                let (cx, cy) = c.around.centre();
                // A centre on the frame's far edge (or past it) has no pixel to hold it.
                if cx < w as f32 && cy < h as f32 {
                    assert!(holds(r, cx, cy), "{c:?} outside its look {r:?}");
                }
                assert!(
                    !looks[..i].iter().any(|(e, _, _)| holds(e, cx, cy)),
                    "{c:?} looked at twice"
                );
                assert!(!kept.iter().any(|k| k.bbox.contains(cx, cy)));
                let at = given.iter().position(|g| g == c).unwrap();
                assert!(at >= last, "looks out of the order given");
                last = at;
            }
        }
        assert!(
            total > 1000 && hinted > 500,
            "only {total} looks generated, {hinted} hinted"
        );
    }
}

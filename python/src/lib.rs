//! `bystander._bystander`: the native half of the Python package. Python's keyword options become
//! the library's [`Options`] (the same translation the command line uses, so a setting means the
//! same thing in both), frames are numpy arrays borrowed for the length of a call, and the GIL is
//! released while models run so that other Python threads (a capture loop, a web server) go on.
//!
//! The thin Python layer in `python/bystander/__init__.py` finds ONNX Runtime in the `onnxruntime`
//! wheel and the shipped models, and passes both here; nothing here downloads or spawns.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bystander::frame::{FrameLayout, PixelFormat, Range};
use bystander::options::Options;
use bystander::pipeline::Workers;
use bystander::redact::Region;
use bystander::stream::RedactedFrame;
use bystander::{batch, Class, Detection, ErrorKind};
use numpy::ndarray::{Array3, ArrayD, IxDyn};
use numpy::{IntoPyArray, PyArrayDyn, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

pyo3::create_exception!(
    _bystander,
    Error,
    PyException,
    "Every error bystander raises."
);
pyo3::create_exception!(
    _bystander,
    ConfigError,
    Error,
    "A setting or argument was refused: fix the call."
);
pyo3::create_exception!(
    _bystander,
    InputError,
    Error,
    "An input (a file, a frame) is unreadable, too large or of the wrong shape."
);
pyo3::create_exception!(
    _bystander,
    RuntimeFault,
    Error,
    "ONNX Runtime, a model file, a thread or the disk failed."
);

fn to_py(e: bystander::Error) -> PyErr {
    let msg = e.to_string();
    match e.kind() {
        ErrorKind::Config => ConfigError::new_err(msg),
        ErrorKind::Input => InputError::new_err(msg),
        _ => RuntimeFault::new_err(msg),
    }
}

fn config_err(msg: String) -> PyErr {
    ConfigError::new_err(msg)
}

/// The keyword options every function takes, named as the command line's flags with `_` for `-`.
const OPTION_NAMES: &str =
    "classes, recall, threshold, working_size, tiles, widen, rotations, face_model, \
    plate_model, no_interleave, jobs, style, fill_color, shape, mask_scale, zones, \
    max_megapixels, encoder, crf, preset, keep_metadata, keep_subtitles, no_audio, low_memory, hold, \
    backfill, detect_every, gating, sweep_every, model_dir, pixel_aspect, interlaced, transfer";

/// Reads `kwargs` into [`Options`]; an unknown name or a value of the wrong type is a
/// [`ConfigError`] naming it.
fn options(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Options> {
    let mut o = Options::default();
    let Some(kwargs) = kwargs else { return Ok(o) };
    for (k, v) in kwargs.iter() {
        let key: String = k.extract()?;
        let bad = |want: &str| config_err(format!("option {key}: expected {want}, got {v}"));
        if v.is_none() {
            continue; // None: the default
        }
        let list = |v: &Bound<'_, PyAny>| -> PyResult<Vec<String>> {
            if let Ok(s) = v.extract::<String>() {
                Ok(s.split(',').map(str::to_string).collect())
            } else {
                v.extract::<Vec<String>>()
                    .map_err(|_| bad("a string or a list of strings"))
            }
        };
        macro_rules! get {
            ($t:ty, $want:expr) => {
                v.extract::<$t>().map_err(|_| bad($want))?
            };
        }
        match key.as_str() {
            "classes" => o.classes = Some(list(&v)?),
            "recall" => o.recall = get!(String, "fast, balanced or max"),
            "threshold" => o.threshold = Some(get!(f32, "a number")),
            "working_size" => o.working_size = Some(get!(u32, "a whole number")),
            "tiles" => o.tiles = Some(get!(String, "auto, off or COLSxROWS")),
            "widen" => o.widen = Some(get!(f32, "a number")),
            "rotations" => o.rotations = Some(get!(u32, "1, 2, 4 or 8")),
            "face_model" => o.face_models = list(&v)?,
            "plate_model" => o.plate_models = list(&v)?,
            "no_interleave" => o.no_interleave = get!(bool, "True or False"),
            "jobs" => o.jobs = Some(get!(usize, "a whole number")),
            "style" => o.style = get!(String, "blur, pixelate or fill"),
            "fill_color" => o.fill_color = get!(String, "RRGGBB"),
            "shape" => o.shape = get!(String, "ellipse or rect"),
            "mask_scale" => o.mask_scale = Some(get!(f32, "a number")),
            "zones" => o.zones = Some(get!(PathBuf, "a path")),
            "max_megapixels" => o.max_megapixels = get!(f64, "a number"),
            "encoder" => o.encoder = Some(get!(String, "an FFmpeg encoder name")),
            "crf" => o.crf = get!(u8, "0 to 51"),
            "preset" => o.preset = get!(String, "an x264 preset name"),
            "keep_metadata" => o.keep_metadata = get!(bool, "True or False"),
            "keep_subtitles" => o.keep_subtitles = get!(bool, "True or False"),
            "no_audio" => o.no_audio = get!(bool, "True or False"),
            "low_memory" => o.low_memory = get!(bool, "True or False"),
            "pixel_aspect" => o.pixel_aspect = Some(get!(f32, "a number")),
            "interlaced" => o.interlaced = get!(bool, "True or False"),
            "transfer" => o.transfer = Some(get!(String, "sdr, pq or hlg")),
            "hold" => o.hold = get!(usize, "a whole number"),
            "backfill" => o.backfill = get!(usize, "a whole number"),
            "detect_every" => o.detect_every = Some(get!(usize, "a whole number")),
            "gating" => o.gating = Some(get!(bool, "True or False")),
            "sweep_every" => o.sweep_every = get!(usize, "a whole number"),
            "model_dir" => o.model_dir = Some(get!(PathBuf, "a path")),
            _ => {
                return Err(config_err(format!(
                    "unknown option {key}; the options are {OPTION_NAMES}"
                )))
            }
        }
    }
    Ok(o)
}

/// The pixel format and range of a frame's `order`: packed `bgr` (OpenCV's), `rgb`, `bgra` or
/// `rgba`, or 4:2:0 `i420` (Frigate's `yuv420p` frames: a (height * 3 / 2) x width array, the
/// Y plane, then U, then V) or `nv12` (Y, then interleaved U, V), each in video range, or in full
/// range as `i420_full`, `nv12_full`.
fn pixel_format(order: &str) -> PyResult<(PixelFormat, Range)> {
    Ok(match order {
        "bgr" => (PixelFormat::Bgr24, Range::Video),
        "rgb" => (PixelFormat::Rgb24, Range::Video),
        "bgra" => (PixelFormat::Bgra, Range::Video),
        "rgba" => (PixelFormat::Rgba, Range::Video),
        "i420" => (PixelFormat::I420, Range::Video),
        "nv12" => (PixelFormat::Nv12, Range::Video),
        "i420_full" => (PixelFormat::I420, Range::Full),
        "nv12_full" => (PixelFormat::Nv12, Range::Full),
        _ => {
            return Err(config_err(format!(
                "order {order:?}: expected bgr, rgb, bgra, rgba, i420, nv12, i420_full or nv12_full"
            )))
        }
    })
}

/// A numpy frame borrowed for writing: its bytes (rows may be padded: a crop of a larger array
/// is fine) and their layout.
struct Borrowed<'py> {
    _guard: numpy::PyReadwriteArrayDyn<'py, u8>,
    ptr: *mut u8,
    len: usize,
    layout: FrameLayout,
}

impl Borrowed<'_> {
    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` and `len` were computed from a live numpy array whose write borrow
        // `_guard` holds for as long as `self` lives (numpy refuses other Rust borrows, and a
        // read-only array was refused when the guard was taken). The array is uint8 with rows at
        // a positive stride, pixels `channels` bytes apart and channels adjacent, so the bytes
        // from its first pixel to the end of its last row, `(h - 1) * stride + w * channels`,
        // all lie inside its buffer; a 4:2:0 frame (`borrow_planar`) is a 2-D array with rows
        // contiguous (strides `[w, 1]`), so its `rows * w` bytes are its whole buffer. `&mut self`
        // makes the slice the only one handed out.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

fn borrow<'py>(frame: &Bound<'py, PyArrayDyn<u8>>, order: &str) -> PyResult<Borrowed<'py>> {
    let (format, range) = pixel_format(order)?;
    let Some(channels) = format.packed_bytes() else {
        return borrow_planar(frame, order, format, range);
    };
    let shape = frame.shape().to_vec();
    let strides = frame.strides().to_vec();
    let want = format!("a height x width x {channels} uint8 array ({order})");
    if shape.len() != 3 || shape[2] != channels {
        return Err(InputError::new_err(format!(
            "frame of shape {shape:?}: expected {want}"
        )));
    }
    let (h, w) = (shape[0], shape[1]);
    if h == 0 || w == 0 || h > u32::MAX as usize || w > u32::MAX as usize {
        return Err(InputError::new_err(format!(
            "frame of shape {shape:?}: expected {want} with at least one pixel"
        )));
    }
    let row = w * channels;
    if strides[2] != 1 || strides[1] != channels as isize || strides[0] < row as isize {
        return Err(InputError::new_err(format!(
            "frame with strides {strides:?}: expected pixels stored row by row, channels adjacent \
             (numpy.ascontiguousarray(frame) gives such an array)"
        )));
    }
    let stride = strides[0] as usize;
    let mut guard = frame.try_readwrite().map_err(|e| {
        InputError::new_err(format!(
            "the frame cannot be written in place ({e}); pass a writable array"
        ))
    })?;
    let ptr = guard.as_array_mut().as_mut_ptr();
    let layout = FrameLayout::with_stride(format, w as u32, h as u32, stride);
    Ok(Borrowed {
        _guard: guard,
        ptr,
        len: (h - 1) * stride + row,
        layout,
    })
}

/// [`borrow`] for a 4:2:0 frame: a (height * 3 / 2) x width uint8 array, rows contiguous, both
/// sides even (the planes lie where a packed frame's do).
fn borrow_planar<'py>(
    frame: &Bound<'py, PyArrayDyn<u8>>,
    order: &str,
    format: PixelFormat,
    range: Range,
) -> PyResult<Borrowed<'py>> {
    let (shape, strides) = (frame.shape().to_vec(), frame.strides().to_vec());
    let want = format!(
        "a (height * 3 / 2) x width uint8 array ({order}), height and width even, rows contiguous"
    );
    let (rows, w) = match shape[..] {
        [rows, w] => (rows, w),
        _ => {
            return Err(InputError::new_err(format!(
                "frame of shape {shape:?}: expected {want}"
            )))
        }
    };
    let h = rows * 2 / 3;
    let fits = rows > 0
        && w > 0
        && rows % 3 == 0
        && h % 2 == 0
        && w % 2 == 0
        && h <= u32::MAX as usize
        && w <= u32::MAX as usize;
    if !fits || strides[..] != [w as isize, 1] {
        return Err(InputError::new_err(format!(
            "frame of shape {shape:?} and strides {strides:?}: expected {want} \
             (numpy.ascontiguousarray(frame) gives such rows)"
        )));
    }
    let mut guard = frame.try_readwrite().map_err(|e| {
        InputError::new_err(format!(
            "the frame cannot be written in place ({e}); pass a writable array"
        ))
    })?;
    let ptr = guard.as_array_mut().as_mut_ptr();
    let layout = FrameLayout::packed(format, w as u32, h as u32).in_range(range);
    Ok(Borrowed {
        _guard: guard,
        ptr,
        len: rows * w,
        layout,
    })
}

fn boxes<'py>(py: Python<'py>, found: &[Detection]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for d in found {
        let item = PyDict::new(py);
        item.set_item("class", d.class.name())?;
        item.set_item("score", d.score)?;
        item.set_item("box", [d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2])?;
        list.append(item)?;
    }
    Ok(list)
}

/// The pixel rectangles painted, `[x1, y1, x2, y2]` (exclusive ends).
fn painted<'py>(
    py: Python<'py>,
    regions: &[Region],
    w: u32,
    h: u32,
) -> PyResult<Bound<'py, PyList>> {
    let rects: Vec<[u32; 4]> = regions
        .iter()
        .filter_map(|r| r.area.pixel_bounds(w, h))
        .map(|(x0, y0, x1, y1)| [x0, y0, x1, y1])
        .collect();
    PyList::new(py, rects)
}

fn json<'py>(py: Python<'py>, v: &serde_json::Value) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(v).map_err(|e| RuntimeFault::new_err(e.to_string()))?;
    py.import("json")?.call_method1("loads", (text,))
}

/// Redactors kept between calls (photos and files), for the options they were built with:
/// models load once.
static PHOTO: Mutex<Option<(String, Arc<Workers>)>> = Mutex::new(None);

fn photo_workers(o: &Options) -> bystander::Result<Arc<Workers>> {
    let key = format!("{o:?}");
    let mut cache = PHOTO.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((k, w)) = cache.as_ref() {
        if *k == key {
            return Ok(w.clone());
        }
    }
    let w = Arc::new(Workers::new(
        o.detect_config(&Class::ALL)?,
        o.redact_config()?,
    )?);
    *cache = Some((key, w.clone()));
    Ok(w)
}

/// Redacts one photo frame in place with the photo preset; returns its boxes.
#[pyfunction]
#[pyo3(signature = (frame, order = "bgr", **kwargs))]
fn redact_frame<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyArrayDyn<u8>>,
    order: &str,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyList>> {
    let o = options(kwargs)?;
    let mut b = borrow(frame, order)?;
    let layout = b.layout;
    let data = b.bytes();
    let found = py.allow_threads(|| {
        let workers = photo_workers(&o)?;
        workers.with(|r| r.redact_buffer(data, &layout))
    });
    let (found, _) = found.map_err(to_py)?;
    boxes(py, &found)
}

/// Reads a photo upright (EXIF orientation applied), within the pixel budget, as a
/// height x width x 3 uint8 array in `order` (bgr or rgb).
#[pyfunction]
#[pyo3(signature = (path, order = "bgr", max_megapixels = 100.0))]
fn read_image<'py>(
    py: Python<'py>,
    path: PathBuf,
    order: &str,
    max_megapixels: f64,
) -> PyResult<Bound<'py, PyAny>> {
    let swap = match order {
        "bgr" => true,
        "rgb" => false,
        _ => return Err(config_err(format!("order {order:?}: expected bgr or rgb"))),
    };
    let budget = Options {
        max_megapixels,
        ..Default::default()
    }
    .max_pixels()
    .map_err(to_py)?;
    let img = py
        .allow_threads(|| bystander::image_io::load_within(&path, budget))
        .map_err(to_py)?;
    let rgb = img.image.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    let mut raw = rgb.into_raw();
    if swap {
        raw.chunks_exact_mut(3).for_each(|p| p.swap(0, 2));
    }
    let arr =
        Array3::from_shape_vec((h, w, 3), raw).map_err(|e| InputError::new_err(e.to_string()))?;
    Ok(arr.into_pyarray(py).into_any())
}

/// A batch run as `bystander redact INPUTS -o OUTPUT` makes it (same listing and mirroring,
/// reports, resume rules, atomic writes); returns the summary `--json` prints.
#[pyfunction]
#[pyo3(signature = (inputs, output, overwrite = false, export_detections = false, **kwargs))]
fn redact<'py>(
    py: Python<'py>,
    inputs: Vec<PathBuf>,
    output: PathBuf,
    overwrite: bool,
    export_detections: bool,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let o = options(kwargs)?;
    let stop = Arc::new(AtomicBool::new(false));
    let summary = interruptible(py, &stop, || -> bystander::Result<serde_json::Value> {
        let plan = batch::plan(&inputs, &output, batch::is_supported)?;
        run_plan(&o, &output, &plan, (overwrite, export_detections), &stop)
    })?
    .map_err(to_py)?;
    json(py, &summary)
}

/// Runs `work` on a thread of its own, the GIL released, while this thread looks at Python's
/// signals every 50 ms. When a handler raises (Ctrl-C's KeyboardInterrupt), `stop` goes on, the
/// batch stops as the command line's does on SIGINT (no file started after, the clip under way
/// abandoned, every output on disk whole), and the exception is raised once `work` has ended.
/// Without this, Ctrl-C did nothing until the whole batch was done.
fn interruptible<T: Send>(
    py: Python<'_>,
    stop: &AtomicBool,
    work: impl FnOnce() -> T + Send,
) -> PyResult<T> {
    std::thread::scope(|scope| {
        let running = scope.spawn(work);
        let mut raised = None;
        while !running.is_finished() {
            py.allow_threads(|| std::thread::sleep(std::time::Duration::from_millis(50)));
            if raised.is_none() {
                if let Err(e) = py.check_signals() {
                    stop.store(true, Ordering::Relaxed);
                    raised = Some(e);
                }
            }
        }
        let done = py.allow_threads(|| running.join());
        match (raised, done) {
            (Some(e), _) => Err(e),
            (None, Ok(v)) => Ok(v),
            (None, Err(_)) => Err(PyException::new_err(
                "internal error: the run panicked (please report it)",
            )),
        }
    })
}

fn run_plan(
    o: &Options,
    output: &std::path::Path,
    plan: &batch::Plan,
    (overwrite, export_detections): (bool, bool),
    stop: &Arc<AtomicBool>,
) -> bystander::Result<serde_json::Value> {
    let detect = o.detect_config(&Class::ALL)?;
    let redact = o.redact_config()?;
    o.check_outputs(plan)?;
    let mut opts = o.run_options(&detect, &redact, overwrite, export_detections)?;
    opts.stop = Some(stop.clone());
    // The sessions of the last options are kept: a loop of calls loads the models once.
    let workers = photo_workers(o)?;
    let outcomes = batch::run(plan, &workers, &opts, &batch::Silent);
    Ok(batch::summary(output, plan, &outcomes))
}

/// One file into the output file `output` (a photo, or a clip when `clip`), with the same report
/// and resume rules as the command line; returns the file's report, or raises its error.
fn one_file<'py>(
    py: Python<'py>,
    input: PathBuf,
    output: PathBuf,
    clip: Option<bool>,
    overwrite: bool,
    export_detections: bool,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    let o = options(kwargs)?;
    let is_clip = batch::is_clip(&input);
    match clip {
        Some(true) if !is_clip => {
            return Err(InputError::new_err(format!(
                "{}: not a clip bystander reads (by its extension)",
                input.display()
            )))
        }
        None if !batch::is_supported(&input) => {
            return Err(InputError::new_err(format!(
                "{}: neither a photo nor a clip bystander reads (by its extension)",
                input.display()
            )))
        }
        _ => {}
    }
    // A HEIF photo's copy is a JPEG (see `image_io::written_as`): under another name it would
    // pass for what it is not.
    let jpeg_out = output
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "jpg" | "jpeg"));
    if bystander::image_io::is_heif_path(&input) && !jpeg_out {
        return Err(InputError::new_err(format!(
            "{}: a HEIF photo is written as a JPEG; name its output .jpg (such as {})",
            output.display(),
            bystander::image_io::written_as(std::path::Path::new(
                input.file_name().unwrap_or_default()
            ))
            .display()
        )));
    }
    let stop = Arc::new(AtomicBool::new(false));
    let summary = interruptible(py, &stop, || -> bystander::Result<serde_json::Value> {
        // Outputs may not be inputs or sit where the run reads, however spelled.
        batch::Inputs::new([input.as_path()]).check(&output)?;
        let job = batch::Job {
            input,
            output: output.clone(),
        };
        let plan = batch::Plan {
            jobs: vec![job],
            skipped: Vec::new(),
        };
        let dir = output.parent().unwrap_or(std::path::Path::new("."));
        run_plan(&o, dir, &plan, (overwrite, export_detections), &stop)
    })?
    .map_err(to_py)?;
    let file = &summary["files"][0];
    if let Some(e) = file["error"].as_str() {
        return Err(InputError::new_err(e.to_string()));
    }
    json(py, file)
}

/// Redacts one photo or clip into `output`; returns its report.
#[pyfunction]
#[pyo3(signature = (input, output, overwrite = false, export_detections = false, **kwargs))]
fn redact_file<'py>(
    py: Python<'py>,
    input: PathBuf,
    output: PathBuf,
    overwrite: bool,
    export_detections: bool,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    one_file(
        py,
        input,
        output,
        None,
        overwrite,
        export_detections,
        kwargs,
    )
}

/// Redacts one clip into `output` (audio copied, metadata and subtitles dropped unless kept);
/// returns its report.
#[pyfunction]
#[pyo3(signature = (input, output, overwrite = false, export_detections = false, **kwargs))]
fn redact_clip<'py>(
    py: Python<'py>,
    input: PathBuf,
    output: PathBuf,
    overwrite: bool,
    export_detections: bool,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<Bound<'py, PyAny>> {
    one_file(
        py,
        input,
        output,
        Some(true),
        overwrite,
        export_detections,
        kwargs,
    )
}

/// Lists what `redact(inputs, output)` would do: jobs as `(input, output)` and files skipped with
/// the reason, exactly as the command line lists them.
#[pyfunction]
fn plan(
    py: Python<'_>,
    inputs: Vec<PathBuf>,
    output: PathBuf,
) -> PyResult<(Vec<(PathBuf, PathBuf)>, Vec<(PathBuf, String)>)> {
    let plan = py
        .allow_threads(|| batch::plan(&inputs, &output, batch::is_supported))
        .map_err(to_py)?;
    Ok((
        plan.jobs.into_iter().map(|j| (j.input, j.output)).collect(),
        plan.skipped,
    ))
}

/// Checks options and jobs before a run is fanned out: every setting, the models, and that no
/// output lands on an input or a file the settings read. Raises what a run would.
#[pyfunction]
#[pyo3(signature = (pairs, **kwargs))]
fn check<'py>(
    py: Python<'py>,
    pairs: Vec<(PathBuf, PathBuf)>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<()> {
    let o = options(kwargs)?;
    let plan = plan_of(pairs);
    py.allow_threads(|| -> bystander::Result<()> {
        let detect = o.detect_config(&Class::ALL)?;
        let redact = o.redact_config()?;
        o.check_outputs(&plan)?;
        o.run_options(&detect, &redact, false, false).map(|_| ())
    })
    .map_err(to_py)
}

fn plan_of(jobs: Vec<(PathBuf, PathBuf)>) -> batch::Plan {
    batch::Plan {
        jobs: jobs
            .into_iter()
            .map(|(input, output)| batch::Job { input, output })
            .collect(),
        skipped: Vec::new(),
    }
}

/// A batch engine kept between runs (a scheduler's worker, a Ray actor): models are loaded once,
/// then each call redacts a list of `(input, output)` jobs with the command line's rules
/// (reports, resume, atomic writes) and returns the summary.
#[pyclass(module = "bystander._bystander")]
struct Runner {
    options: Options,
    workers: Workers,
    run: batch::RunOptions,
}

#[pymethods]
impl Runner {
    #[new]
    #[pyo3(signature = (overwrite = false, export_detections = false, **kwargs))]
    fn new(
        py: Python<'_>,
        overwrite: bool,
        export_detections: bool,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let options = options(kwargs)?;
        py.allow_threads(|| {
            let detect = options.detect_config(&Class::ALL)?;
            let redact = options.redact_config()?;
            let run = options.run_options(&detect, &redact, overwrite, export_detections)?;
            let workers = Workers::new(detect, redact)?;
            Ok(Runner {
                options,
                workers,
                run,
            })
        })
        .map_err(to_py)
    }

    /// Redacts `jobs`; a bad file is that file's failure in the summary, not an exception.
    fn run<'py>(
        &self,
        py: Python<'py>,
        jobs: Vec<(PathBuf, PathBuf)>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let plan = plan_of(jobs);
        let stop = Arc::new(AtomicBool::new(false));
        let mut run = self.run.clone();
        run.stop = Some(stop.clone());
        let summary = interruptible(py, &stop, || -> bystander::Result<serde_json::Value> {
            self.options.check_outputs(&plan)?;
            let outcomes = batch::run(&plan, &self.workers, &run, &batch::Silent);
            Ok(batch::summary(std::path::Path::new(""), &plan, &outcomes))
        })?
        .map_err(to_py)?;
        json(py, &summary)
    }
}

/// Uses the ONNX Runtime library at `path` (once per process, before any model loads).
#[pyfunction]
fn use_runtime(py: Python<'_>, path: PathBuf) -> PyResult<String> {
    let info = py
        .allow_threads(|| bystander::runtime::use_library(&path))
        .map_err(to_py)?;
    Ok(info.library.display().to_string())
}

/// Whether this process may use under 4 GiB (the machine's memory, or its control group's
/// limit when lower): where `low_memory=True` suits, the command line's default rule.
#[pyfunction]
fn memory_is_short() -> bool {
    bystander::engine::memory::memory_is_short()
}

/// A camera stream: frames in order, redacted with the video preset on a pool of detection
/// threads, with hold and back-fill across frames.
#[pyclass(module = "bystander._bystander")]
struct Redactor {
    inner: Mutex<bystander::stream::Redactor>,
    order: String,
}

impl Redactor {
    fn locked<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut bystander::stream::Redactor) -> bystander::Result<T> + Send,
    ) -> PyResult<T> {
        py.allow_threads(|| {
            let mut r = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            f(&mut r)
        })
        .map_err(to_py)
    }

    fn frames<'py>(
        &self,
        py: Python<'py>,
        out: Vec<RedactedFrame>,
    ) -> PyResult<Bound<'py, PyList>> {
        let list = PyList::empty(py);
        for f in out {
            let (w, h) = (f.layout.width as usize, f.layout.height as usize);
            let item = PyDict::new(py);
            item.set_item("pts", f.pts)?;
            item.set_item("boxes", boxes(py, &f.boxes)?)?;
            item.set_item("painted", painted(py, &f.regions, w as u32, h as u32)?)?;
            item.set_item("fault", f.fault.map(|e| e.to_string()))?;
            // In the shape it came in: height x width x channels, or 4:2:0's rows of planes.
            let shape = match f.layout.format.packed_bytes() {
                Some(channels) => vec![h, w, channels],
                None => vec![f.data.len() / w.max(1), w],
            };
            let arr = ArrayD::from_shape_vec(IxDyn(&shape), f.data)
                .map_err(|e| RuntimeFault::new_err(e.to_string()))?;
            item.set_item("frame", arr.into_pyarray(py))?;
            list.append(item)?;
        }
        Ok(list)
    }
}

#[pymethods]
impl Redactor {
    #[new]
    #[pyo3(signature = (order = "bgr", **kwargs))]
    fn new(py: Python<'_>, order: &str, kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
        pixel_format(order)?;
        let o = options(kwargs)?;
        let inner = py
            .allow_threads(|| {
                let cfg = o.stream_config()?;
                bystander::stream::Redactor::new(&cfg)
            })
            .map_err(to_py)?;
        Ok(Redactor {
            inner: Mutex::new(inner),
            order: order.to_string(),
        })
    }

    /// Frames between a push and its return (the back-fill look-ahead).
    #[getter]
    fn latency_frames(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latency_frames()
    }

    /// Live view (a redactor made with `backfill=0`): redacts `frame` in place; returns a dict
    /// with `boxes`, `painted`, `fault` and `seconds` (time spent in the library) (a frame whose detection failed is covered whole and
    /// `fault` says why).
    fn redact<'py>(
        &self,
        py: Python<'py>,
        frame: &Bound<'py, PyArrayDyn<u8>>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let mut b = borrow(frame, &self.order)?;
        let layout = b.layout;
        let data = b.bytes();
        let (res, seconds) = self.locked(py, |r| {
            let t = std::time::Instant::now();
            r.redact_in_place(data, &layout)
                .map(|res| (res, t.elapsed().as_secs_f64()))
        })?;
        let item = PyDict::new(py);
        // Time inside the library, for measuring what the binding adds around it.
        item.set_item("seconds", seconds)?;
        item.set_item("boxes", boxes(py, &res.boxes)?)?;
        item.set_item(
            "painted",
            painted(py, &res.regions, layout.width, layout.height)?,
        )?;
        item.set_item("fault", res.fault.map(|e| e.to_string()))?;
        Ok(item)
    }

    /// Pushes a copy of `frame` with its timestamp; returns the frames that are ready, oldest
    /// first, each a dict with `pts`, `frame` (a new array), `boxes`, `painted`, `fault`.
    #[pyo3(signature = (frame, pts))]
    fn push<'py>(
        &self,
        py: Python<'py>,
        frame: &Bound<'py, PyArrayDyn<u8>>,
        pts: i64,
    ) -> PyResult<Bound<'py, PyList>> {
        let mut b = borrow(frame, &self.order)?;
        let layout = b.layout;
        // The engine keeps frames for look-ahead: it takes its own packed copy (a 4:2:0 frame
        // is packed already, see `borrow_planar`).
        let packed =
            FrameLayout::packed(layout.format, layout.width, layout.height).in_range(layout.range);
        let src = b.bytes();
        let data = match layout.format.packed_bytes() {
            None => src.to_vec(),
            Some(_) => {
                let (row, stride) = (packed.strides[0], layout.strides[0]);
                let mut data = Vec::with_capacity(packed.len());
                for y in 0..layout.height as usize {
                    data.extend_from_slice(&src[y * stride..y * stride + row]);
                }
                data
            }
        };
        drop(b);
        let out = self.locked(py, |r| r.push(data, packed, pts))?;
        self.frames(py, out)
    }

    /// Releases the frames still held for look-ahead (at the end of the stream).
    fn finish<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = self.locked(py, |r| r.finish())?;
        self.frames(py, out)
    }

    /// What the engine counted so far.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner()).stats();
        let d = PyDict::new(py);
        d.set_item("frames", s.frames)?;
        d.set_item("detected_frames", s.detected_frames)?;
        d.set_item("fail_closed_frames", s.fail_closed_frames)?;
        d.set_item("combed_frames", s.combed_frames)?;
        d.set_item("faces", s.faces)?;
        d.set_item("plates", s.plates)?;
        Ok(d)
    }
}

#[pymodule]
fn _bystander(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("InputError", py.get_type::<InputError>())?;
    m.add("RuntimeFault", py.get_type::<RuntimeFault>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_function(wrap_pyfunction!(redact_frame, m)?)?;
    m.add_function(wrap_pyfunction!(read_image, m)?)?;
    m.add_function(wrap_pyfunction!(redact, m)?)?;
    m.add_function(wrap_pyfunction!(redact_file, m)?)?;
    m.add_function(wrap_pyfunction!(redact_clip, m)?)?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(check, m)?)?;
    m.add_class::<Runner>()?;
    m.add_function(wrap_pyfunction!(use_runtime, m)?)?;
    m.add_function(wrap_pyfunction!(memory_is_short, m)?)?;
    m.add_class::<Redactor>()?;
    Ok(())
}

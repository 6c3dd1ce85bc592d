//! The C ABI of bystander: a redactor handle for hosts written in C, C++, C#, Go or Node (through
//! their FFI), on the same host API as Rust's [`bystander::stream::Redactor`].
//!
//! Why handles are numbers, not pointers: a C caller can pass a handle after freeing it, or from
//! two threads at once. With a pointer that is undefined behaviour no library can catch; with a
//! number looked up in a table, a freed handle is simply unknown (`BYSTANDER_STATUS_BAD_HANDLE`)
//! and a handle in use by another thread is busy (`BYSTANDER_STATUS_BUSY`). Numbers are never
//! reused. Every function also checks its pointers and sizes, and catches panics, so no misuse a
//! caller can make through this interface reaches undefined behaviour in Rust.
//!
//! The flow: `bystander_config_default`, then `bystander_create`; per frame `bystander_push`
//! (the bytes are copied: frames stay in flight for the look-ahead), then `bystander_next` until
//! it reports no frame, which copies each redacted frame out in the format it came in, and
//! `bystander_boxes` for its boxes; at the end of the stream `bystander_flush` and the last
//! `bystander_next` calls; then `bystander_free`. For live view without look-ahead,
//! `bystander_redact_in_place` redacts the caller's buffer directly. A status other than
//! `BYSTANDER_STATUS_OK` has a message, `bystander_last_error` (per thread).

#![allow(clippy::missing_safety_doc)]

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{c_char, CStr, CString};
use std::os::unix::ffi::OsStrExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use bystander::detect::{DetectConfig, Recall};
use bystander::frame::{FrameLayout, PixelFormat, Range};
use bystander::redact::{RedactConfig, Style};
use bystander::stream::{RedactedFrame, Redactor, StreamConfig};
use bystander::{Class, Detection, ErrorKind};

/// What a call came to.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BystanderStatus {
    /// Done.
    Ok = 0,
    /// A setting was refused (the message names it and what is allowed).
    Config = 1,
    /// An input was refused: a buffer too small for its layout, an unknown format.
    Input = 2,
    /// The runtime failed: ONNX Runtime or a model could not be loaded, a thread stopped.
    Runtime = 3,
    /// The handle is not a live redactor (never created, or freed).
    BadHandle = 4,
    /// Another thread is using this redactor; a redactor serves one thread at a time.
    Busy = 5,
    /// A required pointer was NULL.
    Null = 6,
    /// A bug in bystander: the call was stopped before it could do harm.
    Internal = 7,
}

/// How a frame's bytes hold its pixels.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BystanderPixelFormat {
    /// R, G, B bytes per pixel.
    Rgb24 = 0,
    /// B, G, R bytes per pixel (OpenCV).
    Bgr24 = 1,
    /// R, G, B, A bytes per pixel.
    Rgba = 2,
    /// B, G, R, A bytes per pixel.
    Bgra = 3,
    /// YUV 4:2:0 planar.
    I420 = 4,
    /// YUV 4:2:0, interleaved chroma.
    Nv12 = 5,
    /// I420 in full range (0 to 255) instead of video range (16 to 235).
    I420Full = 6,
    /// NV12 in full range: a hardware decoder's output for a full-range camera stream, as many
    /// IP cameras send.
    Nv12Full = 7,
}

/// Where a frame's planes lie in its buffer. Packed formats use plane 0 only; I420 uses three
/// planes, NV12 two. `bystander_layout_packed` fills one for rows without padding.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BystanderLayout {
    /// Pixel format: a `BystanderPixelFormat` value (an integer, so that any value a caller
    /// sends is checked rather than trusted).
    pub format: u32,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Row stride of each plane, bytes.
    pub strides: [usize; 3],
    /// Offset of each plane's first byte.
    pub offsets: [usize; 3],
}

/// Redactor settings; `bystander_config_default` fills the defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct BystanderConfig {
    /// Detection preset: 0 fast, 1 balanced (default), 2 max.
    pub recall: u32,
    /// Classes: bit 0 faces, bit 1 plates (default 3, both).
    pub classes: u32,
    /// Thread budget: detection workers (0: one per core).
    pub threads: u32,
    /// Frames of look-ahead, masks drawn before an object's first detection (default 4; 0 for
    /// live view and `bystander_redact_in_place`).
    pub backfill: u32,
    /// Frames a mask persists after its object's last detection (default 8).
    pub hold: u32,
    /// Detect every Nth frame (0: the preset's, 2 for fast, else 1).
    pub detect_every: u32,
    /// Score threshold overriding the preset's, in (0, 1); 0 keeps the preset's.
    pub threshold: f32,
    /// Pixel replacement: 0 blur (default), 1 pixelate, 2 fill.
    pub style: u32,
    /// Colour of the fill style, R, G, B.
    pub fill_rgb: [u8; 3],
    /// Folder of bystander's model files; NULL looks where the library does
    /// (`BYSTANDER_MODEL_DIR`, or `models/` beside the program).
    pub model_dir: *const c_char,
    /// Rotations each frame is also searched in, for faces that are not upright: 0 or 1 upright
    /// only (default), 2 for a camera mounted upside down, 4 for people lying down, 8 for a
    /// ceiling-mounted fisheye. Each costs one more detection of every frame.
    pub rotations: u32,
    /// 1: fewer ONNX Runtime sessions for less memory, the same detections and pixels (one per
    /// model where the models take turns, instead of one per detection worker: about 40 MB less
    /// at 1080p on 2 cores, up to 10 % slower), as on a device with under 4 GB; 0: off
    /// (default).
    pub low_memory: u32,
    /// How many times as wide as high a frame's pixels are shown (its sample aspect ratio: 4/3
    /// for HDV's 1440 x 1080, 64/45 for a 720 x 576 frame shown 16:9), 1/4 to 4: frames are
    /// detected stretched to that shape and boxes come back in frame pixels. 1 (default) or 0:
    /// square pixels.
    pub pixel_aspect: f32,
    /// 1: the frames are interlaced (an analog camera's, 1080i): each field is detected on its
    /// own, at twice the cost; 0: progressive (default), where a frame that shows combing all
    /// the same is searched field by field as well as whole.
    pub interlaced: u32,
    /// How the frames' samples encode light: 0 SDR (default), 1 PQ (HDR10), 2 HLG. HDR frames
    /// are detected as an SDR display would show them; the frames are not changed.
    pub transfer: u32,
}

/// One redacted box.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BystanderBox {
    /// 0 face, 1 plate.
    pub class_id: u32,
    /// The detector's score.
    pub score: f32,
    /// Left, top, right, bottom, frame pixels.
    pub x1: f32,
    /// Top edge.
    pub y1: f32,
    /// Right edge.
    pub x2: f32,
    /// Bottom edge.
    pub y2: f32,
}

/// What was done to a frame.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct BystanderFrameInfo {
    /// The timestamp it was pushed with.
    pub pts: i64,
    /// Boxes redacted on it (`bystander_boxes` copies them).
    pub boxes: usize,
    /// 0, or why it was covered whole: 1 corrupt, 2 lost, 3 marked, 4 detection failed (on it,
    /// or on a recent frame whose search it leans on) or fell behind.
    pub fault: u32,
    /// Bytes of the frame (its layout's length).
    pub len: usize,
}

/// A live redactor behind a handle.
struct Handle {
    redactor: Redactor,
    ready: VecDeque<RedactedFrame>,
    boxes: Vec<Detection>,
}

type Table = Mutex<HashMap<u64, Arc<Mutex<Handle>>>>;

fn table() -> &'static Table {
    static TABLE: OnceLock<Table> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

fn fail(status: BystanderStatus, message: impl Into<String>) -> BystanderStatus {
    let text = message.into().replace('\0', " ");
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(text).unwrap_or_default());
    status
}

fn from_error(e: bystander::Error) -> BystanderStatus {
    let status = match e.kind() {
        ErrorKind::Config => BystanderStatus::Config,
        ErrorKind::Input => BystanderStatus::Input,
        _ => BystanderStatus::Runtime,
    };
    fail(status, e.to_string())
}

/// Runs `f`, turning a panic into `BYSTANDER_STATUS_INTERNAL`.
fn guard(f: impl FnOnce() -> BystanderStatus) -> BystanderStatus {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(s) => {
            if s == BystanderStatus::Ok {
                LAST_ERROR.with(|e| *e.borrow_mut() = CString::default());
            }
            s
        }
        Err(_) => fail(
            BystanderStatus::Internal,
            "internal error (a bug in bystander); the call did nothing more",
        ),
    }
}

/// Runs `f` on the redactor behind `handle`, refusing unknown and busy handles.
fn with_handle(handle: u64, f: impl FnOnce(&mut Handle) -> BystanderStatus) -> BystanderStatus {
    let entry = table()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&handle)
        .cloned();
    let Some(entry) = entry else {
        return fail(
            BystanderStatus::BadHandle,
            format!("handle {handle} is not a live redactor"),
        );
    };
    let mut h = match entry.try_lock() {
        Ok(h) => h,
        Err(std::sync::TryLockError::WouldBlock) => {
            return fail(
                BystanderStatus::Busy,
                format!("handle {handle} is in use by another thread; a redactor serves one thread at a time"),
            )
        }
        Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
    };
    f(&mut h)
}

/// The pixel format and range of a `BystanderPixelFormat` value.
fn pixel_format(code: u32) -> Result<(PixelFormat, Range), BystanderStatus> {
    Ok(match code {
        0 => (PixelFormat::Rgb24, Range::Video),
        1 => (PixelFormat::Bgr24, Range::Video),
        2 => (PixelFormat::Rgba, Range::Video),
        3 => (PixelFormat::Bgra, Range::Video),
        4 => (PixelFormat::I420, Range::Video),
        5 => (PixelFormat::Nv12, Range::Video),
        6 => (PixelFormat::I420, Range::Full),
        7 => (PixelFormat::Nv12, Range::Full),
        _ => {
            return Err(fail(
                BystanderStatus::Input,
                format!("pixel format {code} is not one of 0 to 7"),
            ))
        }
    })
}

/// The library's layout of a caller's, from a pointer the caller gives.
fn layout_at(l: *const BystanderLayout) -> Result<FrameLayout, BystanderStatus> {
    if l.is_null() {
        return Err(fail(BystanderStatus::Null, "layout is NULL"));
    }
    // SAFETY: checked non-null; the caller gives a readable BystanderLayout (plain integers, any
    // bit pattern of which is a valid value).
    let l = unsafe { l.read_unaligned() };
    let (format, range) = pixel_format(l.format)?;
    Ok(FrameLayout {
        format,
        width: l.width,
        height: l.height,
        strides: l.strides,
        offsets: l.offsets,
        range,
    })
}

fn fault_code(f: &Option<bystander::engine::Fault>) -> u32 {
    use bystander::engine::Fault;
    match f {
        None => 0,
        Some(Fault::Corrupt) => 1,
        Some(Fault::Lost) => 2,
        Some(Fault::Marked) => 3,
        Some(_) => 4,
    }
}

/// Fills `config` with the defaults: balanced preset, faces and plates, one worker per core,
/// hold 8, back-fill 4, blur.
#[no_mangle]
pub unsafe extern "C" fn bystander_config_default(config: *mut BystanderConfig) -> BystanderStatus {
    guard(|| {
        if config.is_null() {
            return fail(BystanderStatus::Null, "config is NULL");
        }
        // SAFETY: checked non-null; the caller gives a pointer to a writable BystanderConfig.
        unsafe {
            config.write(BystanderConfig {
                recall: 1,
                classes: 3,
                threads: 0,
                backfill: 4,
                hold: 8,
                detect_every: 0,
                threshold: 0.0,
                style: 0,
                fill_rgb: [0, 0, 0],
                model_dir: std::ptr::null(),
                rotations: 1,
                low_memory: 0,
                pixel_aspect: 1.0,
                interlaced: 0,
                transfer: 0,
            })
        };
        BystanderStatus::Ok
    })
}

/// 1 where this process may use under 4 GiB (the machine's memory, or its control group's limit
/// when lower, as a container sets), else 0: where `BystanderConfig.low_memory = 1` suits, as the
/// command line decides by default.
#[no_mangle]
pub extern "C" fn bystander_memory_is_short() -> u32 {
    u32::from(bystander::engine::memory::memory_is_short())
}

/// Fills `layout` for a `width` x `height` frame of `format` (a `BystanderPixelFormat` value) with
/// rows packed (no padding), planes one after another.
#[no_mangle]
pub unsafe extern "C" fn bystander_layout_packed(
    format: u32,
    width: u32,
    height: u32,
    layout: *mut BystanderLayout,
) -> BystanderStatus {
    guard(|| {
        if layout.is_null() {
            return fail(BystanderStatus::Null, "layout is NULL");
        }
        let l = match pixel_format(format) {
            Ok((f, _)) => FrameLayout::packed(f, width, height),
            Err(status) => return status,
        };
        // SAFETY: checked non-null; the caller gives a writable BystanderLayout.
        unsafe {
            layout.write(BystanderLayout {
                format,
                width,
                height,
                strides: l.strides,
                offsets: l.offsets,
            })
        };
        BystanderStatus::Ok
    })
}

/// The bytes a frame of `layout` needs (0 when the layout is invalid).
#[no_mangle]
pub unsafe extern "C" fn bystander_layout_len(layout: *const BystanderLayout) -> usize {
    catch_unwind(|| layout_at(layout).map_or(0, |l| l.len())).unwrap_or(0)
}

/// Uses the ONNX Runtime library at `path` (a `libonnxruntime.so` of version 1.31); call before
/// the first `bystander_create`. Without it, `ORT_DYLIB_PATH`, the system's library and
/// bystander's cache are tried. Loading the runtime sets `ORT_DISABLE_TELEMETRY=1` in the
/// process environment first, unless it is already `1` (ONNX Runtime's own telemetry records
/// and uploads usage events otherwise): a host with threads that read the environment sets it
/// itself before this call.
#[no_mangle]
pub unsafe extern "C" fn bystander_set_runtime_library(path: *const c_char) -> BystanderStatus {
    guard(|| {
        if path.is_null() {
            return fail(BystanderStatus::Null, "path is NULL");
        }
        // SAFETY: checked non-null; the caller gives a NUL-terminated string.
        let bytes = unsafe { CStr::from_ptr(path) }.to_bytes();
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(bytes));
        match bystander::runtime::use_library(path) {
            Ok(_) => BystanderStatus::Ok,
            Err(e) => from_error(e),
        }
    })
}

fn stream_config(c: &BystanderConfig) -> Result<StreamConfig, BystanderStatus> {
    let recall = match c.recall {
        0 => Recall::Fast,
        1 => Recall::Balanced,
        2 => Recall::Max,
        r => {
            return Err(fail(
                BystanderStatus::Config,
                format!("recall {r} is not 0 (fast), 1 (balanced) or 2 (max)"),
            ))
        }
    };
    let classes: Vec<Class> = [(1, Class::Face), (2, Class::Plate)]
        .into_iter()
        .filter(|(bit, _)| c.classes & bit != 0)
        .map(|(_, class)| class)
        .collect();
    if classes.is_empty() || c.classes > 3 {
        return Err(fail(
            BystanderStatus::Config,
            format!(
                "classes {} is not 1 (faces), 2 (plates) or 3 (both)",
                c.classes
            ),
        ));
    }
    let model_dir = if c.model_dir.is_null() {
        None
    } else {
        // SAFETY: non-null; the caller gives a NUL-terminated string.
        let bytes = unsafe { CStr::from_ptr(c.model_dir) }.to_bytes();
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
    };
    let rotations = match c.rotations {
        0 | 1 => None,
        n if bystander::detect::rotate::ALLOWED.contains(&n) => Some(n),
        n => {
            return Err(fail(
                BystanderStatus::Config,
                format!("rotations {n} is not 0 or 1 (upright only), 2, 4 or 8"),
            ))
        }
    };
    let detect = DetectConfig {
        classes,
        recall,
        threshold: (c.threshold != 0.0).then_some(c.threshold),
        model_dir,
        rotations,
        ..Default::default()
    };
    let mut redact = RedactConfig::default();
    redact.set_style(match c.style {
        0 => Style::Blur,
        1 => Style::Pixelate,
        2 => Style::Fill(c.fill_rgb),
        s => {
            return Err(fail(
                BystanderStatus::Config,
                format!("style {s} is not 0 (blur), 1 (pixelate) or 2 (fill)"),
            ))
        }
    });
    let threads = if c.threads == 0 {
        bystander::cores()
    } else {
        c.threads as usize
    };
    let mut cfg = StreamConfig::new(detect, redact, threads);
    if c.detect_every != 0 {
        cfg.detect_every = c.detect_every as usize;
    }
    cfg.track.hold = c.hold as usize;
    cfg.track.backfill = c.backfill as usize;
    cfg.low_memory = match c.low_memory {
        0 => false,
        1 => true,
        n => {
            return Err(fail(
                BystanderStatus::Config,
                format!("low_memory {n} is not 0 (off) or 1 (on)"),
            ))
        }
    };
    if c.pixel_aspect != 0.0 {
        cfg.pixel_aspect = c.pixel_aspect;
    }
    cfg.interlaced = match c.interlaced {
        0 => false,
        1 => true,
        n => {
            return Err(fail(
                BystanderStatus::Config,
                format!("interlaced {n} is not 0 (progressive) or 1 (interlaced)"),
            ))
        }
    };
    cfg.transfer = match c.transfer {
        0 => bystander::engine::hdr::Transfer::Sdr,
        1 => bystander::engine::hdr::Transfer::Pq,
        2 => bystander::engine::hdr::Transfer::Hlg,
        n => {
            return Err(fail(
                BystanderStatus::Config,
                format!("transfer {n} is not 0 (SDR), 1 (PQ) or 2 (HLG)"),
            ))
        }
    };
    let cfg = cfg.held_across_skips();
    cfg.validate().map_err(from_error)?;
    Ok(cfg)
}

/// Creates a redactor from `config` (NULL: the defaults) and writes its handle to `out`. Loads
/// the runtime and the models and starts the detection threads; an error here names what is
/// missing.
#[no_mangle]
pub unsafe extern "C" fn bystander_create(
    config: *const BystanderConfig,
    out: *mut u64,
) -> BystanderStatus {
    guard(|| {
        if out.is_null() {
            return fail(BystanderStatus::Null, "out is NULL");
        }
        let mut defaults = std::mem::MaybeUninit::<BystanderConfig>::uninit();
        let c = if config.is_null() {
            // SAFETY: writes every field of the local.
            unsafe { bystander_config_default(defaults.as_mut_ptr()) };
            // SAFETY: just initialised.
            unsafe { defaults.assume_init() }
        } else {
            // SAFETY: non-null; the caller gives a readable BystanderConfig.
            unsafe { config.read() }
        };
        let cfg = match stream_config(&c) {
            Ok(cfg) => cfg,
            Err(status) => return status,
        };
        let redactor = match Redactor::new(&cfg) {
            Ok(r) => r,
            Err(e) => return from_error(e),
        };
        let id = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
        let handle = Handle {
            redactor,
            ready: VecDeque::new(),
            boxes: Vec::new(),
        };
        table()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::new(Mutex::new(handle)));
        // SAFETY: checked non-null; the caller gives a writable u64.
        unsafe { out.write(id) };
        BystanderStatus::Ok
    })
}

/// Pushes a frame: `len` bytes at `data`, laid out as `layout`, with its timestamp. The bytes are
/// copied. Frames that become ready are taken with `bystander_next`.
#[no_mangle]
pub unsafe extern "C" fn bystander_push(
    handle: u64,
    data: *const u8,
    len: usize,
    layout: *const BystanderLayout,
    pts: i64,
) -> BystanderStatus {
    guard(|| {
        if data.is_null() {
            return fail(BystanderStatus::Null, "data is NULL");
        }
        let layout = match layout_at(layout) {
            Ok(l) => l,
            Err(status) => return status,
        };
        if let Err(e) = layout.check(len) {
            return from_error(e);
        }
        // SAFETY: non-null; the caller promises `len` readable bytes at `data`.
        let bytes = unsafe { std::slice::from_raw_parts(data, len) }.to_vec();
        with_handle(handle, |h| match h.redactor.push(bytes, layout, pts) {
            Ok(frames) => {
                h.ready.extend(frames);
                BystanderStatus::Ok
            }
            Err(e) => from_error(e),
        })
    })
}

/// Takes the next ready frame, oldest first: copies its redacted bytes (its layout's length, in
/// the format it was pushed in) to `out` (`out_len` bytes at least), fills `info`, and sets
/// `*has_frame` to 1; sets it to 0 when no frame is ready. Its boxes stay available to
/// `bystander_boxes` until the next frame is taken.
#[no_mangle]
pub unsafe extern "C" fn bystander_next(
    handle: u64,
    out: *mut u8,
    out_len: usize,
    info: *mut BystanderFrameInfo,
    has_frame: *mut i32,
) -> BystanderStatus {
    guard(|| {
        if out.is_null() || info.is_null() || has_frame.is_null() {
            return fail(BystanderStatus::Null, "out, info or has_frame is NULL");
        }
        with_handle(handle, |h| {
            let Some(front) = h.ready.front() else {
                // SAFETY: checked non-null; the caller gives a writable int.
                unsafe { has_frame.write(0) };
                return BystanderStatus::Ok;
            };
            let n = front.layout.len();
            if out_len < n {
                return fail(
                    BystanderStatus::Input,
                    format!("the output buffer holds {out_len} bytes, the frame needs {n}"),
                );
            }
            let Some(f) = h.ready.pop_front() else {
                return BystanderStatus::Internal;
            };
            // SAFETY: `out` is non-null with at least `out_len >= n` writable bytes (the caller's
            // promise), and `f.data` holds at least `n` bytes (it passed `layout.check`).
            unsafe {
                std::ptr::copy_nonoverlapping(f.data.as_ptr(), out, n);
                info.write(BystanderFrameInfo {
                    pts: f.pts,
                    boxes: f.boxes.len(),
                    fault: fault_code(&f.fault),
                    len: n,
                });
                has_frame.write(1);
            }
            h.boxes = f.boxes;
            BystanderStatus::Ok
        })
    })
}

/// Copies up to `capacity` boxes of the frame last taken (by `bystander_next` or
/// `bystander_redact_in_place`) to `out`, and their number to `*count`.
#[no_mangle]
pub unsafe extern "C" fn bystander_boxes(
    handle: u64,
    out: *mut BystanderBox,
    capacity: usize,
    count: *mut usize,
) -> BystanderStatus {
    guard(|| {
        if count.is_null() || (out.is_null() && capacity > 0) {
            return fail(
                BystanderStatus::Null,
                "count is NULL, or out is NULL with a capacity",
            );
        }
        with_handle(handle, |h| {
            let n = h.boxes.len().min(capacity);
            for (i, d) in h.boxes.iter().take(n).enumerate() {
                let b = BystanderBox {
                    class_id: match d.class {
                        Class::Face => 0,
                        Class::Plate => 1,
                    },
                    score: d.score,
                    x1: d.bbox.x1,
                    y1: d.bbox.y1,
                    x2: d.bbox.x2,
                    y2: d.bbox.y2,
                };
                // SAFETY: `i < n <= capacity`, and the caller gives `capacity` writable boxes.
                unsafe { out.add(i).write(b) };
            }
            // SAFETY: checked non-null.
            unsafe { count.write(n) };
            BystanderStatus::Ok
        })
    })
}

/// Live view: detects on the caller's frame and redacts it in place, in its own format. Only for
/// a redactor made with `backfill` 0. Fills `info` (NULL: not wanted); the boxes are then
/// available to `bystander_boxes`.
#[no_mangle]
pub unsafe extern "C" fn bystander_redact_in_place(
    handle: u64,
    data: *mut u8,
    len: usize,
    layout: *const BystanderLayout,
    info: *mut BystanderFrameInfo,
) -> BystanderStatus {
    guard(|| {
        if data.is_null() {
            return fail(BystanderStatus::Null, "data is NULL");
        }
        let layout = match layout_at(layout) {
            Ok(l) => l,
            Err(status) => return status,
        };
        // SAFETY: non-null; the caller promises `len` writable bytes at `data`, not aliased
        // during the call.
        let buffer = unsafe { std::slice::from_raw_parts_mut(data, len) };
        with_handle(handle, |h| {
            match h.redactor.redact_in_place(buffer, &layout) {
                Ok(done) => {
                    if !info.is_null() {
                        // SAFETY: checked non-null; the caller gives a writable BystanderFrameInfo.
                        unsafe {
                            info.write(BystanderFrameInfo {
                                pts: 0,
                                boxes: done.boxes.len(),
                                fault: fault_code(&done.fault),
                                len: layout.len(),
                            })
                        };
                    }
                    h.boxes = done.boxes;
                    BystanderStatus::Ok
                }
                Err(e) => from_error(e),
            }
        })
    })
}

/// Ends the stream: every frame still in flight becomes ready for `bystander_next`.
#[no_mangle]
pub unsafe extern "C" fn bystander_flush(handle: u64) -> BystanderStatus {
    guard(|| {
        with_handle(handle, |h| match h.redactor.finish() {
            Ok(frames) => {
                h.ready.extend(frames);
                BystanderStatus::Ok
            }
            Err(e) => from_error(e),
        })
    })
}

/// Frees a redactor: stops its threads and drops the frames it still holds. The handle is
/// unknown afterwards (a later call with it returns `BYSTANDER_STATUS_BAD_HANDLE`).
#[no_mangle]
pub unsafe extern "C" fn bystander_free(handle: u64) -> BystanderStatus {
    guard(|| {
        let removed = table()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&handle);
        match removed {
            Some(_) => BystanderStatus::Ok,
            None => fail(
                BystanderStatus::BadHandle,
                format!("handle {handle} is not a live redactor"),
            ),
        }
    })
}

/// The message of this thread's last failed call ("" after a call that succeeded). The string
/// stays valid until this thread's next call into bystander.
#[no_mangle]
pub extern "C" fn bystander_last_error() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_committed_header_is_what_cbindgen_makes_now() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).unwrap();
        let mut made = Vec::new();
        cbindgen::Builder::new()
            .with_crate(&dir)
            .with_config(config)
            .generate()
            .expect("the header generates")
            .write(&mut made);
        let path = dir.join("include/bystander.h");
        if std::env::var_os("BYSTANDER_WRITE_HEADER").is_some() {
            std::fs::write(&path, &made).unwrap();
        }
        let committed = std::fs::read(&path).unwrap_or_default();
        assert!(
            committed == made,
            "capi/include/bystander.h is stale: run BYSTANDER_WRITE_HEADER=1 cargo test -p bystander-capi and commit it"
        );
    }

    /// The command line's rule for `low_memory`, as the library answers it on this machine.
    #[test]
    fn memory_is_short_answers_as_the_library_does() {
        let short = bystander::engine::memory::memory_is_short();
        assert_eq!(bystander_memory_is_short(), u32::from(short));
    }

    #[test]
    fn full_range_formats_lay_out_as_their_video_range_twins() {
        unsafe {
            for (full, twin, format) in [(6, 4, PixelFormat::I420), (7, 5, PixelFormat::Nv12)] {
                let (mut a, mut b) = (
                    std::mem::zeroed::<BystanderLayout>(),
                    std::mem::zeroed::<BystanderLayout>(),
                );
                assert_eq!(
                    bystander_layout_packed(full, 64, 48, &mut a),
                    BystanderStatus::Ok
                );
                assert_eq!(
                    bystander_layout_packed(twin, 64, 48, &mut b),
                    BystanderStatus::Ok
                );
                assert_eq!(a.format, full);
                assert_eq!((a.strides, a.offsets), (b.strides, b.offsets));
                assert_eq!(bystander_layout_len(&a), 64 * 48 * 3 / 2);
                let l = layout_at(&a).unwrap();
                assert_eq!((l.format, l.range), (format, Range::Full));
                assert_eq!(layout_at(&b).unwrap().range, Range::Video);
            }
            let mut bad = std::mem::zeroed::<BystanderLayout>();
            assert_eq!(
                bystander_layout_packed(8, 4, 4, &mut bad),
                BystanderStatus::Input
            );
        }
    }

    #[test]
    fn misuse_is_an_error_never_undefined_behaviour() {
        unsafe {
            let mut info = BystanderFrameInfo::default();
            let mut has = 0;
            let mut buf = [0u8; 16];
            // Unknown and freed handles.
            assert_eq!(
                bystander_next(0, buf.as_mut_ptr(), 16, &mut info, &mut has),
                BystanderStatus::BadHandle
            );
            assert_eq!(bystander_free(12345), BystanderStatus::BadHandle);
            let msg = CStr::from_ptr(bystander_last_error())
                .to_string_lossy()
                .into_owned();
            assert!(msg.contains("12345"), "{msg}");
            // NULL pointers.
            assert_eq!(
                bystander_config_default(std::ptr::null_mut()),
                BystanderStatus::Null
            );
            assert_eq!(
                bystander_create(std::ptr::null(), std::ptr::null_mut()),
                BystanderStatus::Null
            );
            assert_eq!(
                bystander_push(1, std::ptr::null(), 0, std::ptr::null(), 0),
                BystanderStatus::Null
            );
            // A pixel format out of range.
            let mut bad = std::mem::zeroed::<BystanderLayout>();
            assert_eq!(
                bystander_layout_packed(9, 4, 4, &mut bad),
                BystanderStatus::Input
            );
            bad.format = 9;
            assert_eq!(bystander_layout_len(&bad), 0);
            assert_eq!(
                bystander_push(1, buf.as_ptr(), 16, &bad, 0),
                BystanderStatus::Input
            );
            // A buffer shorter than its layout.
            let mut l = std::mem::zeroed::<BystanderLayout>();
            assert_eq!(
                bystander_layout_packed(1, 64, 64, &mut l),
                BystanderStatus::Ok
            );
            assert_eq!(bystander_layout_len(&l), 64 * 64 * 3);
            assert_eq!(
                bystander_push(1, buf.as_ptr(), 16, &l, 0),
                BystanderStatus::Input
            );
            // A bad setting names itself, with what is allowed.
            let refused = |change: &dyn Fn(&mut BystanderConfig), says: &[&str]| {
                let mut c = std::mem::zeroed::<BystanderConfig>();
                bystander_config_default(&mut c);
                change(&mut c);
                let mut h = 0u64;
                assert_eq!(bystander_create(&c, &mut h), BystanderStatus::Config);
                let msg = CStr::from_ptr(bystander_last_error())
                    .to_string_lossy()
                    .into_owned();
                assert!(says.iter().all(|s| msg.contains(s)), "{msg}");
            };
            refused(&|c| c.recall = 7, &["recall 7"]);
            refused(&|c| c.rotations = 3, &["rotations 3", "2, 4 or 8"]);
            refused(
                &|c| c.low_memory = 2,
                &["low_memory 2", "0 (off) or 1 (on)"],
            );
            refused(&|c| c.pixel_aspect = 5.0, &["pixel aspect", "1/4 to 4"]);
            refused(
                &|c| c.transfer = 3,
                &["transfer 3", "0 (SDR), 1 (PQ) or 2 (HLG)"],
            );
            refused(
                &|c| c.pixel_aspect = f32::NAN,
                &["pixel aspect", "1/4 to 4"],
            );
            let mut c = std::mem::zeroed::<BystanderConfig>();
            bystander_config_default(&mut c);
            assert_eq!((c.rotations, c.low_memory), (1, 0));
            assert_eq!((c.pixel_aspect, c.interlaced, c.transfer), (1.0, 0, 0));
        }
    }
}

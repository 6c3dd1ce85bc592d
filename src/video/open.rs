//! Opening clips with FFmpeg by their exact bytes, within a pixel budget.
//!
//! ffmpeg-next's `format::input` and `format::output_as` turn a path into a C string through
//! `to_str().unwrap()`, which panics on a file name that is not UTF-8 (one odd name in a folder
//! would end a whole batch). Here the path's own bytes are handed to FFmpeg behind the `file:`
//! protocol prefix, which also keeps a name such as `concat:a|b.mp4` or `rtsp:x.mp4` from being
//! read as a protocol.
//!
//! The pixel budget reaches the decoders FFmpeg opens while probing the streams (their
//! `max_pixels` option): a header that claims 16000×16000 pixels is refused before a buffer of
//! that size is allocated, not after.

use std::ffi::CString;
use std::os::raw::{c_int, c_void};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr;
use std::sync::atomic::{AtomicBool, Ordering};

use ff::format::context::{Input, Output};
use ff::{ffi, Dictionary};
use ffmpeg_next as ff;

/// The `file:` URL of `path`, its bytes unchanged.
fn file_url(path: &Path) -> Result<CString, ff::Error> {
    let mut bytes = b"file:".to_vec();
    bytes.extend_from_slice(path.as_os_str().as_bytes());
    CString::new(bytes).map_err(|_| ff::Error::InvalidData)
}

/// `max_pixels` as FFmpeg's codec option (an `int` range).
fn max_pixels_option(max_pixels: u64) -> String {
    max_pixels.min(i32::MAX as u64).to_string()
}

/// Why a clip could not be opened.
pub enum OpenError {
    /// FFmpeg could not open or probe it.
    Ffmpeg(ff::Error),
    /// A video stream's header claims a picture over the budget: `(width, height)`.
    TooLarge(u32, u32),
}

impl From<ff::Error> for OpenError {
    fn from(e: ff::Error) -> Self {
        OpenError::Ffmpeg(e)
    }
}

/// Opens `path` for reading and probes its streams. A video stream whose container header
/// claims more than `max_pixels` is refused before any frame is decoded, and every decoder FFmpeg
/// opens to probe the streams refuses pictures over `max_pixels` too.
pub fn input(path: &Path, max_pixels: u64) -> Result<Input, OpenError> {
    open_input(file_url(path)?, max_pixels, Dictionary::new(), None)
}

/// Opens an FFmpeg URL of any protocol (`rtsp://`, `tcp://`, `pipe:0`, ...) as [`input`] does,
/// with protocol and demuxer `options`. FFmpeg polls `interrupt` during blocking reads and gives
/// up when it is set, so that a stop request is not stuck behind a silent camera.
pub fn input_url(
    url: &str,
    max_pixels: u64,
    options: Dictionary,
    interrupt: Option<&'static AtomicBool>,
) -> Result<Input, OpenError> {
    let url = CString::new(url).map_err(|_| ff::Error::InvalidData)?;
    open_input(url, max_pixels, options, interrupt)
}

extern "C" fn interrupted(flag: *mut c_void) -> c_int {
    // SAFETY: `flag` is the address of a `&'static AtomicBool` set by `open_input`; it lives for
    // the whole process and is only read.
    let flag = unsafe { &*(flag as *const AtomicBool) };
    c_int::from(flag.load(Ordering::Relaxed))
}

fn open_input(
    url: CString,
    max_pixels: u64,
    options: Dictionary,
    interrupt: Option<&'static AtomicBool>,
) -> Result<Input, OpenError> {
    // SAFETY: `ps` is allocated by avformat_alloc_context (or stays null, and then
    // avformat_open_input allocates it); avformat_open_input frees it itself on failure, and the
    // option dictionary it was given is owned again and freed right after the call. The interrupt
    // callback's opaque pointer is a `&'static AtomicBool`, valid for as long as the context. On success we own it: it is closed on every error path below or handed to
    // `Input::wrap`, which closes it when dropped. Its `streams` array holds `nb_streams` valid
    // streams, each with its `codecpar`, which we only read. The per-stream option dictionaries are an
    // array of `nb_streams` pointers that avformat_find_stream_info reads (and may rewrite with
    // the options it did not use); each is owned again and freed right after the call.
    unsafe {
        let mut ps = ffi::avformat_alloc_context();
        if let (Some(flag), false) = (interrupt, ps.is_null()) {
            (*ps).interrupt_callback = ffi::AVIOInterruptCB {
                callback: Some(interrupted),
                opaque: flag as *const AtomicBool as *mut c_void,
            };
        }
        let mut opts = options.disown();
        let r = ffi::avformat_open_input(&mut ps, url.as_ptr(), ptr::null(), &mut opts);
        drop(Dictionary::own(opts));
        if r < 0 {
            return Err(ff::Error::from(r).into());
        }
        let n = (*ps).nb_streams as usize;
        for i in 0..n {
            let par = (**(*ps).streams.add(i)).codecpar;
            let (w, h) = ((*par).width.max(0) as u32, (*par).height.max(0) as u32);
            if (*par).codec_type == ffi::AVMediaType::AVMEDIA_TYPE_VIDEO
                && u64::from(w) * u64::from(h) > max_pixels
            {
                ffi::avformat_close_input(&mut ps);
                return Err(OpenError::TooLarge(w, h));
            }
        }
        let mut opts: Vec<*mut ffi::AVDictionary> = (0..n)
            .map(|_| {
                let mut d = Dictionary::new();
                d.set("max_pixels", &max_pixels_option(max_pixels));
                d.disown()
            })
            .collect();
        let r = ffi::avformat_find_stream_info(
            ps,
            if n == 0 {
                ptr::null_mut()
            } else {
                opts.as_mut_ptr()
            },
        );
        for d in opts {
            drop(Dictionary::own(d));
        }
        if r < 0 {
            ffi::avformat_close_input(&mut ps);
            return Err(ff::Error::from(r).into());
        }
        Ok(Input::wrap(ps))
    }
}

/// Creates `path` for writing with the muxer named `muxer`.
pub fn output(path: &Path, muxer: &str) -> Result<Output, ff::Error> {
    open_output(file_url(path)?, muxer)
}

/// Opens an FFmpeg URL of any protocol (`pipe:1`, `rtsp://`, `srt://`, a file name pattern for the
/// segment muxer) for writing with the muxer named `muxer`.
pub fn output_url(url: &str, muxer: &str) -> Result<Output, ff::Error> {
    open_output(
        CString::new(url).map_err(|_| ff::Error::InvalidData)?,
        muxer,
    )
}

fn open_output(url: CString, muxer: &str) -> Result<Output, ff::Error> {
    let muxer = CString::new(muxer).map_err(|_| ff::Error::InvalidData)?;
    // SAFETY: avformat_alloc_output_context2 allocates `ps` (or leaves it null and returns an
    // error). We own it until `Output::wrap`, which frees it and closes its `pb` when dropped;
    // on the one error path before that, it is freed here with its `pb` still null.
    unsafe {
        let mut ps = ptr::null_mut();
        let r =
            ffi::avformat_alloc_output_context2(&mut ps, ptr::null(), muxer.as_ptr(), url.as_ptr());
        if r < 0 || ps.is_null() {
            return Err(ff::Error::from(r.min(-1)));
        }
        if (*(*ps).oformat).flags & ffi::AVFMT_NOFILE == 0 {
            let r = ffi::avio_open(&mut (*ps).pb, url.as_ptr(), ffi::AVIO_FLAG_WRITE);
            if r < 0 {
                ffi::avformat_free_context(ps);
                return Err(ff::Error::from(r));
            }
        }
        Ok(Output::wrap(ps))
    }
}

/// Sets the decoder's pixel budget (FFmpeg's `max_pixels`): frames larger than it are refused by
/// the decoder, which the clip runner then covers like any frame lost to corruption.
pub fn limit_decoder(ctx: &mut ff::codec::context::Context, max_pixels: u64) {
    // SAFETY: `ctx` is a valid codec context not yet opened; `max_pixels` is a plain int64 field
    // the decoder reads when it sets a picture size.
    unsafe {
        (*ctx.as_mut_ptr()).max_pixels = max_pixels.min(i32::MAX as u64) as i64;
    }
}

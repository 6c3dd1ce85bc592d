//! The clip runner: the calling thread demuxes, decodes and tracks, detection workers run beside
//! it, and one encoder thread redacts, encodes and muxes. See the module above for why it is built
//! this way.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::Instant;

use ff::codec::packet::Ref as _;
use ff::format::Pixel;
use ff::software::scaling;
use ff::{codec, encoder, format, frame, media, Dictionary, Packet, Rational};
use ffmpeg_next as ff;
use image::RgbImage;

use super::{
    box_from_upright, muxer_for, upright, yuv, ClipReport, ModelTime, StageTimes, VideoOptions,
};
use crate::detect::{DetectConfig, DetectorSet};
use crate::error::{Error, Result};
use crate::geometry::Detection;
use crate::image_io::temp_path_for;
use crate::redact::{self, RedactConfig, Region};
use crate::review::{Detections, DetectionsWriter, FrameBoxes};
use crate::track::{FlickerCounter, TrackedFrame, Tracker};

fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ff::init();
        ff::log::set_level(ff::log::Level::Fatal);
    });
}

type Job = (usize, Arc<RgbImage>);
type Outcome = (usize, std::result::Result<Vec<Detection>, String>);

/// Detection threads, each with its own sessions; jobs in, detections out.
struct DetectionThreads {
    jobs: Option<SyncSender<Job>>,
    results: Receiver<Outcome>,
    handles: Vec<JoinHandle<()>>,
    /// Model names and their thread-seconds, summed over workers.
    names: Vec<String>,
    seconds: Arc<Mutex<Vec<f64>>>,
}

impl DetectionThreads {
    fn start(
        detect: &DetectConfig,
        n: usize,
        budget: usize,
        rotation: u32,
        detect_every: usize,
    ) -> Result<DetectionThreads> {
        let n = n.max(1);
        let mut cfg = detect.clone();
        cfg.intra_threads = (budget / n).max(1);
        // Build every detector before starting, so a bad model or runtime fails the clip at once.
        let sets = (0..n)
            .map(|_| cfg.build())
            .collect::<Result<Vec<DetectorSet>>>()?;
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(n * 2);
        let job_rx = Arc::new(Mutex::new(job_rx));
        let (res_tx, res_rx) = mpsc::channel::<Outcome>();
        let names = sets[0].model_names();
        let seconds = Arc::new(Mutex::new(vec![0.0; names.len()]));
        let handles = sets
            .into_iter()
            .map(|mut set| {
                let (rx, tx) = (Arc::clone(&job_rx), res_tx.clone());
                let total = Arc::clone(&seconds);
                let mut took = vec![0.0; set.detectors().len()];
                std::thread::spawn(move || loop {
                    let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok((index, img)) = job else { break };
                    let (w, h) = img.dimensions();
                    // Interleaved models take turns over the frames that are detected.
                    let turn = Some(index / detect_every.max(1));
                    took.fill(0.0);
                    let found = match upright(&img, rotation) {
                        Some(up) => set.detect_frame_timed(&up, turn, &mut took).map(|ds| {
                            ds.into_iter()
                                .map(|mut d| {
                                    d.bbox = box_from_upright(&d.bbox, rotation, w, h);
                                    d.landmarks.clear();
                                    d
                                })
                                .collect()
                        }),
                        None => set.detect_frame_timed(&img, turn, &mut took),
                    };
                    // Let go of the frame before answering, so that the frame's other holder
                    // owns it alone by the time it is redacted (no copy).
                    drop(img);
                    for (t, s) in total
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter_mut()
                        .zip(&took)
                    {
                        *t += s;
                    }
                    if tx.send((index, found.map_err(|e| e.to_string()))).is_err() {
                        break;
                    }
                })
            })
            .collect();
        Ok(DetectionThreads {
            jobs: Some(job_tx),
            results: res_rx,
            handles,
            names,
            seconds,
        })
    }
}

impl Drop for DetectionThreads {
    fn drop(&mut self) {
        self.jobs.take();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

struct Slot {
    index: usize,
    pts: Option<i64>,
    duration: i64,
    image: Arc<RgbImage>,
    /// A copy of the decoded picture (see `Output::encode`).
    decoded: Option<frame::Video>,
    corrupt: bool,
    /// `None` when detection was not asked for this frame.
    awaiting: Option<Option<std::result::Result<Vec<Detection>, String>>>,
}

/// Stream display rotation, degrees clockwise, from the stream's display matrix.
fn rotation_of(stream: &format::stream::Stream) -> u32 {
    for sd in stream.side_data() {
        if sd.kind() == codec::packet::side_data::Type::DisplayMatrix && sd.data().len() >= 36 {
            // SAFETY: the display matrix side data is nine native-endian i32 values (36 bytes,
            // length checked above); av_display_rotation_get only reads them.
            let ccw = unsafe { ff::ffi::av_display_rotation_get(sd.data().as_ptr() as *const i32) };
            if ccw.is_finite() {
                let cw = (-ccw).rem_euclid(360.0);
                return ((cw / 90.0).round() as u32 % 4) * 90;
            }
        }
    }
    0
}

fn display_matrix(stream: &format::stream::Stream) -> Option<Vec<u8>> {
    stream
        .side_data()
        .find(|sd| sd.kind() == codec::packet::side_data::Type::DisplayMatrix)
        .map(|sd| sd.data().to_vec())
}

/// The frame's pixels as an RgbImage, rows copied once past the stride padding (no zero fill
/// first: this runs for every frame), into a recycled buffer when one is at hand.
fn rgb_image_of(src: &frame::Video, recycled: Option<Vec<u8>>) -> RgbImage {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (stride, data) = (src.stride(0), src.data(0));
    let mut out = recycled.unwrap_or_default();
    out.clear();
    out.reserve_exact(w * h * 3);
    for y in 0..h {
        out.extend_from_slice(&data[y * stride..y * stride + w * 3]);
    }
    RgbImage::from_raw(w as u32, h as u32, out).expect("w*h*3 bytes were copied")
}

/// Whether `f`'s buffers are ours alone to write: an encoder may keep a reference to a frame it
/// was given, and a reused frame must not change under it. (If it is shared, FFmpeg gives it
/// buffers of its own, copying the content.)
fn writable(f: &mut frame::Video) -> bool {
    // SAFETY: `f` is a valid, allocated frame we own; av_frame_make_writable only replaces its
    // buffers with unshared copies when they are shared, and reports failure as a negative code.
    unsafe { ff::ffi::av_frame_make_writable(f.as_mut_ptr()) >= 0 }
}

fn fill_rgb_frame(src: &RgbImage, dst: &mut frame::Video) {
    let w = src.width() as usize;
    let stride = dst.stride(0);
    let data = dst.data_mut(0);
    for (y, row) in src.as_raw().chunks_exact(w * 3).enumerate() {
        data[y * stride..y * stride + w * 3].copy_from_slice(row);
    }
}

/// The output side, owned by the encoder thread (it is built there: FFmpeg's scaling context
/// cannot cross threads).
struct Output {
    octx: format::context::Output,
    encoder: encoder::Video,
    to_yuv: scaling::Context,
    rgb: frame::Video,
    yuv: frame::Video,
    enc_tb: Rational,
    ost_index: usize,
    /// Input frame durations by pts: encoders do not carry them to their packets, and a muxer
    /// given a last packet without duration drops that frame from the edit list.
    durations: std::collections::HashMap<i64, i64>,
    /// The last pts given to the encoder (see [`Output::next_pts`]).
    last_pts: Option<i64>,
}

impl Output {
    /// The pts a frame is encoded with: its own, unless that does not come after the last one
    /// (a duplicated or missing timestamp), then the next tick after it. Encoders and muxers
    /// refuse timestamps that do not increase, and dropping the frame would lose it: every frame
    /// in is a frame out.
    fn next_pts(&mut self, pts: Option<i64>, duration: i64) -> i64 {
        let next = match (pts, self.last_pts) {
            (Some(p), Some(last)) if p > last => p,
            // A duplicate or a step back: the next tick.
            (Some(_), Some(last)) => last + 1,
            // None at all: a frame's duration on.
            (None, Some(last)) => last + duration.max(1),
            (Some(p), None) => p,
            (None, None) => 0,
        };
        self.last_pts = Some(next);
        next
    }

    fn receive_packets(&mut self, path: &Path) -> Result<()> {
        let mut pkt = Packet::empty();
        while self.encoder.receive_packet(&mut pkt).is_ok() {
            pkt.set_stream(self.ost_index);
            if let Some(d) = pkt.pts().and_then(|p| self.durations.remove(&p)) {
                if pkt.duration() <= 0 {
                    pkt.set_duration(d);
                }
            }
            let ost_tb = self
                .octx
                .stream(self.ost_index)
                .expect("the video stream was added")
                .time_base();
            pkt.rescale_ts(self.enc_tb, ost_tb);
            pkt.write_interleaved(&mut self.octx)
                .map_err(|e| video_err(path, "cannot write video", e))?;
        }
        Ok(())
    }

    /// Encodes `img`. With `decoded`, a copy of the frame's decoded 4:2:0 picture, only the
    /// `changed` rectangles (even coordinates, [`yuv::even`]) are converted back from `img` into
    /// it (see [`yuv`]); without, the whole of `img` is converted. Returns the decoded picture
    /// for reuse.
    fn encode(
        &mut self,
        img: &RgbImage,
        decoded: Option<frame::Video>,
        changed: &[yuv::Rect],
        pts: Option<i64>,
        duration: i64,
        path: &Path,
    ) -> Result<Option<frame::Video>> {
        let pts = self.next_pts(pts, duration);
        if duration > 0 {
            self.durations.insert(pts, duration);
        }
        let mut decoded = decoded;
        let picture = match &mut decoded {
            Some(f) => {
                let (w, h) = (img.width() as usize, img.height() as usize);
                let ys = f.stride(0);
                for &r in changed {
                    yuv::luma_rect(img.as_raw(), w, r, f.data_mut(0), ys);
                }
                for plane in [1, 2] {
                    let stride = f.stride(plane);
                    for &r in changed {
                        let out = f.data_mut(plane);
                        yuv::chroma_rect(img.as_raw(), (w, h), r, plane, out, stride);
                    }
                }
                f
            }
            None => {
                if !writable(&mut self.yuv) {
                    return Err(video_err(path, "cannot convert a frame", "out of memory"));
                }
                fill_rgb_frame(img, &mut self.rgb);
                self.to_yuv
                    .run(&self.rgb, &mut self.yuv)
                    .map_err(|e| video_err(path, "cannot convert a frame", e))?;
                &mut self.yuv
            }
        };
        picture.set_pts(Some(pts));
        picture.set_kind(ff::picture::Type::None);
        self.encoder
            .send_frame(picture)
            .map_err(|e| video_err(path, "cannot encode a frame", e))?;
        self.receive_packets(path)?;
        Ok(decoded)
    }
}

/// What the calling thread hands the encoder thread, in output order.
enum ToEncoder {
    /// A frame to redact (wholly when `whole`, else within `regions`) and encode, with a copy of
    /// its decoded picture when that can take the redacted rectangles back (4:2:0, the
    /// encoder's format and size).
    Frame {
        img: RgbImage,
        decoded: Option<frame::Video>,
        regions: Vec<Region>,
        whole: bool,
        pts: Option<i64>,
        duration: i64,
    },
    /// A copied audio or subtitle packet for output stream `stream`, timed in `from`.
    Packet {
        packet: Packet,
        from: Rational,
        stream: usize,
    },
    /// Every frame was sent: flush the encoder and write the trailer.
    Finish,
}

/// What the encoder thread needs to build its [`Output`].
struct OutputParts {
    octx: format::context::Output,
    encoder: encoder::Video,
    format: Pixel,
    width: u32,
    height: u32,
    enc_tb: Rational,
    ost_index: usize,
}

/// The encoder thread's busy seconds.
#[derive(Default)]
struct EncodeTimes {
    redact: f64,
    encode: f64,
}

/// The encoder thread: redacts each frame it is given, converts it to the encoder's format,
/// encodes and muxes it, and copies the other streams' packets in between. It ends at
/// [`ToEncoder::Finish`] with the file complete, or with an error, or, when the calling thread
/// gives up first (the channel closes without `Finish`), with the file unfinished.
///
/// Each encoded frame's buffer goes back on `spent` for the decoding side to fill again: a fresh
/// 6 MB allocation per 1080p frame costs the kernel more than the copy into it.
fn encode_frames(
    parts: OutputParts,
    rx: Receiver<ToEncoder>,
    spent: mpsc::Sender<Spent>,
    path: &Path,
) -> Result<EncodeTimes> {
    let (w, h) = (parts.width, parts.height);
    let mut out = Output {
        to_yuv: scaling::Context::get(
            Pixel::RGB24,
            w,
            h,
            parts.format,
            w,
            h,
            scaling::Flags::BILINEAR,
        )
        .map_err(|e| video_err(path, "no colour converter", e))?,
        rgb: frame::Video::new(Pixel::RGB24, w, h),
        yuv: frame::Video::new(parts.format, w, h),
        enc_tb: parts.enc_tb,
        ost_index: parts.ost_index,
        durations: Default::default(),
        last_pts: None,
        encoder: parts.encoder,
        octx: parts.octx,
    };
    let full_frame = [Region::whole_frame(w, h)];
    let mut times = EncodeTimes::default();
    for msg in rx {
        match msg {
            ToEncoder::Frame {
                mut img,
                decoded,
                regions,
                whole,
                pts,
                duration,
            } => {
                let started = Instant::now();
                let regions: &[Region] = if whole { &full_frame } else { &regions };
                redact::redact_parallel(&mut img, regions);
                let changed: Vec<yuv::Rect> = regions
                    .iter()
                    .filter_map(|r| r.area.pixel_bounds(w, h))
                    .map(|r| yuv::even(r, w, h))
                    .collect();
                times.redact += started.elapsed().as_secs_f64();
                let started = Instant::now();
                let decoded = out.encode(&img, decoded, &changed, pts, duration, path)?;
                times.encode += started.elapsed().as_secs_f64();
                let _ = spent.send((img.into_raw(), decoded));
            }
            ToEncoder::Packet {
                mut packet,
                from,
                stream,
            } => {
                let ost_tb = out
                    .octx
                    .stream(stream)
                    .expect("mapped stream exists")
                    .time_base();
                packet.rescale_ts(from, ost_tb);
                packet.set_position(-1);
                packet.set_stream(stream);
                packet
                    .write_interleaved(&mut out.octx)
                    .map_err(|e| video_err(path, "cannot write a copied packet", e))?;
            }
            ToEncoder::Finish => {
                let started = Instant::now();
                out.encoder
                    .send_eof()
                    .map_err(|e| video_err(path, "cannot finish encoding", e))?;
                out.receive_packets(path)?;
                out.octx
                    .write_trailer()
                    .map_err(|e| video_err(path, "cannot finish the file", e))?;
                times.encode += started.elapsed().as_secs_f64();
                return Ok(times);
            }
        }
    }
    Err(video_err(
        path,
        "the clip was abandoned",
        "no more frames came",
    ))
}

/// A frame's buffers the encoder thread is done with: the RGB pixels and the decoded picture's
/// copy.
type Spent = (Vec<u8>, Option<frame::Video>);

/// The calling thread's end of the encoder thread: a bounded queue (so frames in flight stay
/// few) and the thread's result.
struct EncoderLink {
    tx: Option<SyncSender<ToEncoder>>,
    handle: Option<JoinHandle<Result<EncodeTimes>>>,
    /// Seconds the calling thread waited for room in the queue.
    waited: f64,
    /// The output clip, for errors.
    path: std::path::PathBuf,
    /// Frame buffers the encoder thread is done with.
    spent: Receiver<Spent>,
}

impl EncoderLink {
    /// Frames queued for the encoder thread beyond the one it is working on.
    const QUEUE: usize = 2;

    fn start(parts: OutputParts, path: &Path) -> Result<EncoderLink> {
        let (tx, rx) = mpsc::sync_channel(Self::QUEUE);
        let (spent_tx, spent) = mpsc::channel();
        let owned = path.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("bystander-encode".into())
            .spawn(move || encode_frames(parts, rx, spent_tx, &owned))
            .map_err(|e| video_err(path, "cannot start the encoder thread", e))?;
        Ok(EncoderLink {
            tx: Some(tx),
            handle: Some(handle),
            waited: 0.0,
            path: path.to_path_buf(),
            spent,
        })
    }

    /// Frame buffers to fill again, if the encoder thread has given some back.
    fn recycled(&self) -> (Option<Vec<u8>>, Option<frame::Video>) {
        match self.spent.try_recv() {
            Ok((rgb, decoded)) => (Some(rgb), decoded),
            Err(_) => (None, None),
        }
    }

    fn send(&mut self, msg: ToEncoder) -> Result<()> {
        let started = Instant::now();
        let sent = self.tx.as_ref().map(|tx| tx.send(msg));
        self.waited += started.elapsed().as_secs_f64();
        match sent {
            Some(Ok(())) => Ok(()),
            // The thread stopped early: its error is the clip's.
            _ => Err(match self.join() {
                Err(e) => e,
                Ok(_) => video_err(&self.path, "the encoder stopped", "it took no more frames"),
            }),
        }
    }

    /// Sends [`ToEncoder::Finish`] and waits for the file to be complete.
    fn finish(mut self) -> Result<EncodeTimes> {
        self.send(ToEncoder::Finish)?;
        self.join()
    }

    fn join(&mut self) -> Result<EncodeTimes> {
        self.tx = None;
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(video_err(&self.path, "the encoder thread", "panicked")),
            None => Err(video_err(&self.path, "the encoder thread", "already ended")),
        }
    }
}

impl Drop for EncoderLink {
    /// A clip that fails on the calling thread still waits for the encoder thread, so its output
    /// file is closed before the caller removes it.
    fn drop(&mut self) {
        if self.handle.is_some() {
            let _ = self.join();
        }
    }
}

/// Whether the output container can carry codec `id` (FFmpeg does not always know: then yes, and
/// writing the header decides).
fn container_takes(octx: &format::context::Output, id: codec::Id) -> bool {
    // SAFETY: `octx` holds a valid output format; avformat_query_codec only reads it.
    let r = unsafe {
        ff::ffi::avformat_query_codec(
            octx.format().as_ptr(),
            id.into(),
            ff::ffi::FF_COMPLIANCE_NORMAL,
        )
    };
    r != 0
}

/// Whether a stream other than the redacted video stream goes into the output, and why not.
///
/// Only sound is copied by default. Subtitles are dropped: a bitmap subtitle (DVD, PGS, DVB) is
/// a picture that can show a face and is never copied; a text subtitle can carry a position (GPS
/// captions every second from dashcams and drones) and is copied only with `keep_subtitles`.
/// Data streams (GPS and telemetry tracks), attachments and further picture streams (cover art,
/// a second camera angle that is not redacted) are never copied.
fn keep_stream(
    ist: &format::stream::Stream,
    octx: &format::context::Output,
    opts: &VideoOptions,
) -> std::result::Result<(), String> {
    let params = ist.parameters();
    let id = params.id();
    let kept = match params.medium() {
        media::Type::Audio => Ok(()),
        media::Type::Subtitle => match subtitle_kind(id) {
            SubtitleKind::Bitmap => Err("a bitmap subtitle is a picture that can show a face; never copied".to_string()),
            SubtitleKind::Text if opts.keep_subtitles => Ok(()),
            SubtitleKind::Text => Err("subtitles can carry text such as GPS positions; dropped (--keep-subtitles keeps text subtitles)".to_string()),
            SubtitleKind::Unknown => Err("a subtitle FFmpeg cannot tell text from picture; never copied".to_string()),
        },
        media::Type::Video => Err("only the main picture stream is redacted and written".to_string()),
        media::Type::Data => Err("data streams can carry GPS and telemetry; never copied".to_string()),
        media::Type::Attachment => Err("attachments (fonts, cover art) are not copied".to_string()),
        _ => Err("not a stream bystander copies".to_string()),
    };
    kept?;
    if !container_takes(octx, id) {
        return Err("the output container cannot carry this codec".to_string());
    }
    Ok(())
}

/// Whether subtitles of a codec are text or pictures.
#[derive(Debug, PartialEq, Eq)]
enum SubtitleKind {
    Text,
    Bitmap,
    Unknown,
}

fn subtitle_kind(id: codec::Id) -> SubtitleKind {
    // SAFETY: avcodec_descriptor_get returns null or a pointer to a static descriptor.
    let props = unsafe {
        let d = ff::ffi::avcodec_descriptor_get(id.into());
        if d.is_null() {
            return SubtitleKind::Unknown;
        }
        (*d).props
    };
    let (bitmap, text) = (
        props & ff::ffi::AV_CODEC_PROP_BITMAP_SUB != 0,
        props & ff::ffi::AV_CODEC_PROP_TEXT_SUB != 0,
    );
    match (bitmap, text) {
        (false, true) => SubtitleKind::Text,
        (true, _) => SubtitleKind::Bitmap,
        (false, false) => SubtitleKind::Unknown,
    }
}

/// The encoder's settings: quality and speed for the encoders that take them.
fn encoder_options(name: &str, opts: &VideoOptions) -> Dictionary<'static> {
    let mut dict = Dictionary::new();
    if name.starts_with("libx26") {
        dict.set("crf", &opts.crf.to_string());
        dict.set("preset", &opts.preset);
    } else if name.starts_with("libvpx") {
        // Constant quality (bitrate 0 with a CRF), rows in parallel, and libvpx's speed for the
        // x264 preset asked: the fast presets map to real-time speed 8, the others to 4.
        dict.set("crf", &opts.crf.min(63).to_string());
        dict.set("b", "0");
        dict.set("row-mt", "1");
        let fast = matches!(
            opts.preset.as_str(),
            "ultrafast" | "superfast" | "veryfast" | "faster"
        );
        dict.set("deadline", if fast { "realtime" } else { "good" });
        dict.set("cpu-used", if fast { "8" } else { "4" });
    }
    dict
}

fn video_err(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Video {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

/// Redacts `input` into `output` (same container type as `output`'s extension), atomically:
/// the clip is written under a temporary name and renamed when complete. `progress` is called
/// with the number of frames written so far.
pub fn redact_clip(
    input: &Path,
    output: &Path,
    detect: &DetectConfig,
    redact_cfg: &RedactConfig,
    opts: &VideoOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<ClipReport> {
    render_clip(
        input,
        output,
        Boxes::Detect(detect),
        redact_cfg,
        opts,
        None,
        progress,
    )
}

/// Where a clip's boxes come from.
#[derive(Clone, Copy)]
pub enum Boxes<'a> {
    /// Run the detectors, then hold and back-fill.
    Detect(&'a DetectConfig),
    /// Take them from a (reviewed) detections file, named by the path; a frame it does not list
    /// is covered whole.
    Given(&'a Detections, &'a Path),
}

/// [`redact_clip`] with the boxes from `boxes`, and the boxes redacted on each frame written to
/// the detections file `export` (atomically, like the clip) when asked.
pub fn render_clip(
    input: &Path,
    output: &Path,
    boxes: Boxes,
    redact_cfg: &RedactConfig,
    opts: &VideoOptions,
    export: Option<&Path>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<ClipReport> {
    init();
    redact_cfg.validate()?;
    let muxer = muxer_for(output).ok_or_else(|| Error::Unsupported {
        path: output.to_path_buf(),
        reason: "the output has no clip extension (mp4, mov, mkv, webm, avi, ts)".into(),
    })?;
    let tmp = temp_path_for(output);
    let result = run(
        input, output, &tmp, muxer, boxes, redact_cfg, opts, export, progress,
    );
    match result {
        Ok((report, writer)) => {
            if let Some(w) = writer {
                if let Err(e) = w.finish() {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(e);
                }
            }
            // On disk before it gets its final name, as photos are.
            let synced = std::fs::File::open(&tmp).and_then(|f| f.sync_all());
            if let Err(e) = synced {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io(&tmp, e));
            }
            std::fs::rename(&tmp, output).map_err(|e| Error::io(output, e))?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run(
    input: &Path,
    output: &Path,
    tmp: &Path,
    muxer: &str,
    boxes: Boxes,
    redact_cfg: &RedactConfig,
    opts: &VideoOptions,
    export: Option<&Path>,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<(ClipReport, Option<DetectionsWriter>)> {
    let start = Instant::now();
    // A regular file only: FFmpeg would wait on a FIFO, or read a device for ever.
    drop(crate::files::open_regular(input, "input")?);
    let mut ictx = match super::open::input(input, opts.max_pixels) {
        Ok(i) => i,
        Err(super::open::OpenError::TooLarge(width, height)) => {
            return Err(Error::TooLarge {
                path: input.to_path_buf(),
                width,
                height,
                max_pixels: opts.max_pixels,
            })
        }
        Err(super::open::OpenError::Ffmpeg(e)) => {
            return Err(video_err(input, "cannot open as a clip", e))
        }
    };
    let ist = ictx
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| Error::Unsupported {
            path: input.to_path_buf(),
            reason: "the file has no video stream".into(),
        })?;
    let vindex = ist.index();
    let ist_tb = ist.time_base();
    let rotation = rotation_of(&ist);
    let matrix = display_matrix(&ist);
    let frame_rate = ist.avg_frame_rate();
    let mut dec_ctx = codec::context::Context::from_parameters(ist.parameters())
        .map_err(|e| video_err(input, "bad stream parameters", e))?;
    super::open::limit_decoder(&mut dec_ctx, opts.max_pixels);
    dec_ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: opts.thread_budget,
        ..Default::default()
    });
    let mut decoder = dec_ctx
        .decoder()
        .video()
        .map_err(|e| video_err(input, "no decoder for the video stream", e))?;
    let (w, h) = (decoder.width(), decoder.height());
    if w == 0 || h == 0 {
        return Err(Error::Unsupported {
            path: input.to_path_buf(),
            reason: format!(
                "the video stream has no picture size (or its first frame is larger than the limit of {:.1} megapixels, raised with --max-megapixels)",
                opts.max_pixels as f64 / 1e6
            ),
        });
    }
    crate::image_io::check_pixels(input, w, h, opts.max_pixels)?;

    // 4:2:0 needs even sides; an odd-sized picture is encoded 4:4:4 instead of being cropped or
    // padded, so the output keeps the input's exact size.
    let enc_format = if w % 2 == 0 && h % 2 == 0 {
        Pixel::YUV420P
    } else {
        Pixel::YUV444P
    };

    // Output: the video stream re-encoded, audio copied, anything else dropped and listed in the
    // report (see `keep_stream`).
    let mut octx =
        super::open::output(tmp, muxer).map_err(|e| video_err(output, "cannot create", e))?;
    let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let enc_name = opts
        .encoder
        .as_deref()
        .unwrap_or(super::default_encoder(muxer));
    let codec = encoder::find_by_name(enc_name).ok_or_else(|| Error::InvalidSetting {
        name: "encoder",
        value: enc_name.to_string(),
        allowed: "an FFmpeg video encoder this build has, such as libx264",
    })?;
    if !container_takes(&octx, codec.id()) {
        return Err(Error::Video {
            path: output.to_path_buf(),
            reason: format!(
                "the {muxer} container cannot carry what encoder {enc_name} makes; choose another with --encoder (WebM takes libvpx-vp9, libvpx or libaom-av1; MP4, MOV, MKV, AVI and TS take libx264), or leave it out to get the container's own"
            ),
        });
    }
    let mut stream_map: Vec<Option<usize>> = vec![None; ictx.nb_streams() as usize];
    let mut dropped = Vec::new();
    let mut ost_index = 0usize;
    let mut enc_out = None;
    for ist in ictx.streams() {
        let i = ist.index();
        let medium = ist.parameters().medium();
        if i != vindex {
            if let Err(reason) = keep_stream(&ist, &octx, opts) {
                dropped.push(super::DroppedStream {
                    index: i,
                    kind: format!("{medium:?}").to_lowercase(),
                    codec: format!("{:?}", ist.parameters().id()).to_lowercase(),
                    reason,
                });
                continue;
            }
        }
        if i == vindex {
            let mut ost = octx
                .add_stream(codec)
                .map_err(|e| video_err(output, "cannot add the video stream", e))?;
            let mut enc_ctx = codec::context::Context::new_with_codec(codec);
            if opts.thread_budget > 0 {
                enc_ctx.set_threading(codec::threading::Config {
                    kind: codec::threading::Type::Frame,
                    count: opts.thread_budget,
                    ..Default::default()
                });
            }
            let mut enc = enc_ctx
                .encoder()
                .video()
                .map_err(|e| video_err(output, "cannot set up the encoder", e))?;
            enc.set_width(w);
            enc.set_height(h);
            enc.set_format(enc_format);
            enc.set_aspect_ratio(decoder.aspect_ratio());
            enc.set_time_base(ist_tb);
            if frame_rate.numerator() > 0 && frame_rate.denominator() > 0 {
                enc.set_frame_rate(Some(frame_rate));
            }
            if global_header {
                enc.set_flags(codec::Flags::GLOBAL_HEADER);
            }
            let enc = enc
                .open_with(encoder_options(enc_name, opts))
                .map_err(|e| {
                    video_err(
                        output,
                        &format!("cannot open encoder {enc_name} (frame size {w}x{h})"),
                        e,
                    )
                })?;
            ost.set_parameters(&enc);
            ost.set_time_base(ist_tb);
            if let Some(m) = &matrix {
                // SAFETY: `ost` is a stream of the output context that has not written its header;
                // av_stream_new_side_data allocates `m.len()` bytes owned by the stream (or returns
                // null), and we copy exactly that many bytes into it.
                unsafe {
                    let p = ff::ffi::av_stream_new_side_data(
                        ost.as_mut_ptr(),
                        ff::ffi::AVPacketSideDataType::AV_PKT_DATA_DISPLAYMATRIX,
                        m.len() as _,
                    );
                    if !p.is_null() {
                        std::ptr::copy_nonoverlapping(m.as_ptr(), p, m.len());
                    }
                }
            }
            if opts.keep_metadata {
                ost.set_metadata(ist.metadata().to_owned());
            }
            enc_out = Some((enc, ost_index));
        } else {
            let mut ost = octx
                .add_stream(encoder::find(codec::Id::None))
                .map_err(|e| video_err(output, "cannot add a copied stream", e))?;
            ost.set_parameters(ist.parameters());
            // SAFETY: resetting the codec tag of parameters we own lets the muxer pick its own tag
            // for the copied codec instead of refusing the input container's tag.
            unsafe {
                (*ost.parameters().as_mut_ptr()).codec_tag = 0;
            }
            let mut md = Dictionary::new();
            if opts.keep_metadata {
                md = ist.metadata().to_owned();
            } else if let Some(lang) = ist.metadata().get("language") {
                md.set("language", lang);
            }
            ost.set_metadata(md);
            stream_map[i] = Some(ost_index);
        }
        ost_index += 1;
    }
    if opts.keep_metadata {
        octx.set_metadata(ictx.metadata().to_owned());
    }
    let (encoder, video_ost) = enc_out.expect("the best video stream is among the streams");
    let mut header_opts = Dictionary::new();
    if opts.keep_metadata && matches!(muxer, "mp4" | "mov") {
        // Without this the MP4 muxer keeps only the handful of tags it knows.
        header_opts.set("movflags", "use_metadata_tags");
    }
    octx.write_header_with(header_opts)
        .map_err(|e| video_err(output, "cannot write the header", e))?;
    let ist_tbs: Vec<Rational> = ictx.streams().map(|s| s.time_base()).collect();
    let mut out = EncoderLink::start(
        OutputParts {
            octx,
            encoder,
            format: enc_format,
            width: w,
            height: h,
            enc_tb: ist_tb,
            ost_index: video_ost,
        },
        output,
    )?;

    let (workers, given) = match boxes {
        Boxes::Detect(detect) => (
            Some(DetectionThreads::start(
                detect,
                opts.workers,
                opts.threads(),
                rotation,
                opts.detect_every,
            )?),
            None,
        ),
        Boxes::Given(d, path) => {
            d.check_size(path, w, h)?;
            (None, Some(d.by_frame()))
        }
    };
    let export = match export {
        Some(p) => Some(DetectionsWriter::create(p, input, w, h)?),
        None => None,
    };
    let mut state = State {
        report: ClipReport {
            rotation,
            dropped_streams: dropped,
            ..Default::default()
        },
        tracker: Tracker::new(opts.track),
        slots: VecDeque::new(),
        released: BTreeMap::new(),
        flicker: FlickerCounter::default(),
        max_in_flight: opts.workers.max(1) * 2 + 2,
        redact_cfg,
        expected: Default::default(),
        tracking_lost: true,

        stages: Default::default(),
        given,
        export,
        time_base: f64::from(ist_tb.numerator()) / f64::from(ist_tb.denominator().max(1)),
    };
    let max_frames = opts.max_frames.unwrap_or(usize::MAX);
    let mut to_rgb: Option<scaling::Context> = None;
    let mut decoded = frame::Video::empty();
    let mut rgb_frame = frame::Video::empty();
    let mut next_index = 0usize;

    let mut handle_frames = |decoder: &mut ff::decoder::Video,
                             state: &mut State,
                             out: &mut EncoderLink,
                             next_index: &mut usize|
     -> Result<()> {
        loop {
            let started = Instant::now();
            match decoder.receive_frame(&mut decoded) {
                Ok(()) => {}
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => break,
                Err(ff::Error::Eof) => break,
                Err(_) => {
                    state.report.decode_errors += 1;
                    break;
                }
            }
            let conv = match &mut to_rgb {
                Some(c)
                    if c.input().format == decoded.format()
                        && c.input().width == decoded.width()
                        && c.input().height == decoded.height() =>
                {
                    c
                }
                slot => {
                    *slot = Some(
                        scaling::Context::get(
                            decoded.format(),
                            decoded.width(),
                            decoded.height(),
                            Pixel::RGB24,
                            w,
                            h,
                            scaling::Flags::BILINEAR,
                        )
                        .map_err(|e| video_err(input, "no colour converter", e))?,
                    );
                    slot.as_mut().expect("just set")
                }
            };
            conv.run(&decoded, &mut rgb_frame)
                .map_err(|e| video_err(input, "cannot convert a frame", e))?;
            let (spare_rgb, spare_yuv) = out.recycled();
            let img = rgb_image_of(&rgb_frame, spare_rgb);
            // A copy of the decoded picture, for the encoder to take the redacted rectangles
            // back into (see `Output::encode`), when it is what the encoder takes.
            let decoded_copy = (enc_format == Pixel::YUV420P
                && decoded.format() == Pixel::YUV420P
                && (decoded.width(), decoded.height()) == (w, h))
                .then(|| {
                    let mut copy: frame::Video = spare_yuv
                        .and_then(|mut f| writable(&mut f).then_some(f))
                        .unwrap_or_else(|| frame::Video::new(Pixel::YUV420P, w, h));
                    // The pixels only: `clone_from` would also copy the frame's side data
                    // (closed captions, for one, which x264 writes into the stream), and the
                    // output carries nothing of the input but its pictures, sound and subtitles.
                    // SAFETY: both frames are allocated YUV420P frames of the same width and
                    // height (checked above; `copy` was made by `Video::new` with them), which
                    // is all av_frame_copy needs to copy the planes row by row.
                    let copied =
                        unsafe { ff::ffi::av_frame_copy(copy.as_mut_ptr(), decoded.as_ptr()) };
                    (copied >= 0).then_some(copy)
                })
                .flatten();
            state.stages.decode += started.elapsed().as_secs_f64();
            if *next_index >= max_frames {
                continue;
            }
            // SAFETY: reading a plain integer field of a frame the decoder just filled.
            let error_flags = unsafe { (*decoded.as_ptr()).decode_error_flags };
            let corrupt = decoded.is_corrupt() || error_flags != 0;
            if state.tracking_lost {
                match decoded.pts() {
                    Some(t) if state.expected.contains_key(&t) => {
                        let lost: Vec<(i64, i64)> =
                            state.expected.range(..t).map(|(p, d)| (*p, *d)).collect();
                        if lost.is_empty() || state.decoder_failed() {
                            for (p, d) in lost {
                                state.expected.remove(&p);
                                state.push_lost(p, d, next_index, w, h);
                            }
                            state.expected.remove(&t);
                        } else {
                            // Earlier times still to come with no decoding error to explain
                            // them: the frames come out of order, none is lost. Stop guessing.
                            state.tracking_lost = false;
                            state.expected.clear();
                        }
                    }
                    _ => {
                        state.tracking_lost = false;
                        state.expected.clear();
                    }
                }
            }
            let index = *next_index;
            *next_index += 1;
            let image = Arc::new(img);
            let detect_now = !corrupt && index.is_multiple_of(opts.detect_every.max(1));
            if let (true, Some(workers)) = (detect_now, &workers) {
                workers
                    .jobs
                    .as_ref()
                    .expect("open until the end")
                    .send((index, Arc::clone(&image)))
                    .map_err(|_| video_err(input, "detection workers stopped", "channel closed"))?;
                state.report.detected_frames += 1;
            }
            state.slots.push_back(Slot {
                index,
                pts: decoded.timestamp(),
                duration: decoded.packet().duration,
                image,
                decoded: decoded_copy,
                corrupt,
                awaiting: (detect_now && workers.is_some()).then_some(None),
            });
            state.drain(workers.as_ref(), out, output, false, progress)?;
        }
        Ok(())
    };

    for (stream, packet) in ictx.packets() {
        if next_index >= max_frames {
            break;
        }
        let si = stream.index();
        if si == vindex {
            // SAFETY: reading the flags field of a packet the demuxer just filled.
            let discard = unsafe { (*packet.as_ptr()).flags } & ff::ffi::AV_PKT_FLAG_DISCARD != 0;
            match packet.pts() {
                Some(p) if !discard => {
                    state.expected.insert(p, packet.duration());
                }
                Some(_) => {}
                None => {
                    state.tracking_lost = false;
                    state.expected.clear();
                }
            }
            loop {
                let started = Instant::now();
                let sent = decoder.send_packet(&packet);
                state.stages.decode += started.elapsed().as_secs_f64();
                match sent {
                    Ok(()) => break,
                    // The decoder is full: take its frames, then offer the packet again.
                    Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                        handle_frames(&mut decoder, &mut state, &mut out, &mut next_index)?;
                    }
                    Err(_) => {
                        state.report.decode_errors += 1;
                        break;
                    }
                }
            }
            handle_frames(&mut decoder, &mut state, &mut out, &mut next_index)?;
        } else if let Some(oi) = stream_map[si] {
            out.send(ToEncoder::Packet {
                packet,
                from: ist_tbs[si],
                stream: oi,
            })?;
        }
    }
    let _ = decoder.send_eof();
    handle_frames(&mut decoder, &mut state, &mut out, &mut next_index)?;
    if state.tracking_lost
        && state.decoder_failed()
        && next_index < max_frames
        && state.report.frames + state.slots.len() > 0
    {
        for (p, d) in std::mem::take(&mut state.expected) {
            state.push_lost(p, d, &mut next_index, w, h);
        }
    }
    state.drain(workers.as_ref(), &mut out, output, true, progress)?;
    for f in state.tracker.finish() {
        state.release(f, &mut out, progress)?;
    }
    if let Some(workers) = workers {
        state.stages.detect_workers = workers.handles.len();
        let detect_seconds = workers
            .seconds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        state.stages.detect = workers
            .names
            .iter()
            .zip(detect_seconds)
            .map(|(model, seconds)| ModelTime {
                model: model.clone(),
                seconds,
            })
            .collect();
    }
    if state.report.frames == 0 {
        return Err(Error::Unsupported {
            path: input.to_path_buf(),
            reason: "no frame of the video stream could be decoded".into(),
        });
    }
    state.stages.wait_for_encode = out.waited;
    let times = out.finish()?;
    state.stages.redact = times.redact;
    state.stages.encode = times.encode;
    state.report.stages = state.stages;
    state.report.flicker_frames_without_hold = state.flicker.without_hold;
    state.report.flicker_frames_with_hold = state.flicker.with_hold;
    state.report.seconds = start.elapsed().as_secs_f64();
    Ok((state.report, state.export))
}

/// A frame handed to the tracker: pts, duration, pixels, decoded picture, covered whole.
type Released = (Option<i64>, i64, Arc<RgbImage>, Option<frame::Video>, bool);

struct State<'a> {
    report: ClipReport,
    tracker: Tracker,
    slots: VecDeque<Slot>,
    /// Frames handed to the tracker and waiting for its look-ahead, by index (see [`Released`]).
    released: BTreeMap<usize, Released>,
    flicker: FlickerCounter,
    max_in_flight: usize,
    redact_cfg: &'a RedactConfig,
    /// Presentation times of video packets sent to the decoder and not yet seen as frames. Once
    /// the decoder has reported an error, a frame with a later time proves the earlier ones will
    /// never come: they are written as covered frames, so the output keeps every frame of the
    /// input. Switched off (and cleared) as soon as packet and frame times do not line up, or
    /// earlier times are missing with no error to explain them (frames out of order, duplicated
    /// timestamps), so that a clip the decoder reads cleanly never gets a frame it does not have.
    expected: BTreeMap<i64, i64>,
    tracking_lost: bool,

    stages: StageTimes,
    /// Boxes given by a detections file, by frame (render mode: no detectors, no tracker).
    given: Option<std::collections::HashMap<usize, &'a FrameBoxes>>,
    /// Where the redacted boxes are exported.
    export: Option<DetectionsWriter>,
    /// Seconds per pts unit of the video stream.
    time_base: f64,
}

impl State<'_> {
    /// Whether the decoder has reported an error: only then can a missing frame be lost rather
    /// than late.
    fn decoder_failed(&self) -> bool {
        self.report.decode_errors > 0
    }

    /// Collects detection results and moves finished frames, in order, through the tracker.
    fn drain(
        &mut self,
        workers: Option<&DetectionThreads>,
        out: &mut EncoderLink,
        path: &Path,
        all: bool,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<()> {
        loop {
            while let Some(Ok((index, result))) = workers.map(|w| w.results.try_recv()) {
                self.store(index, result);
            }
            let front_ready = self
                .slots
                .front()
                .map(|s| !matches!(s.awaiting, Some(None)));
            match front_ready {
                None => return Ok(()),
                Some(true) => {
                    let slot = self.slots.pop_front().expect("front exists");
                    if let Some(given) = &self.given {
                        // Render mode: the file's boxes as they are; a frame it lacks, or marks
                        // whole, is covered whole.
                        let entry = given.get(&slot.index);
                        let whole = slot.corrupt || entry.is_none_or(|f| f.whole_frame);
                        let boxes = entry.map(|f| f.detections()).unwrap_or_default();
                        self.report.count(&boxes);
                        self.released.insert(
                            slot.index,
                            (slot.pts, slot.duration, slot.image, slot.decoded, whole),
                        );
                        let f = TrackedFrame {
                            index: slot.index,
                            boxes,
                            detected: None,
                        };
                        self.release(f, out, progress)?;
                        continue;
                    }
                    let (detections, failed) = match slot.awaiting {
                        None if slot.corrupt => (Some(Vec::new()), true),
                        None => (None, false),
                        Some(Some(Ok(d))) => (Some(d), false),
                        Some(Some(Err(_))) => (Some(Vec::new()), true),
                        Some(None) => unreachable!("front is ready"),
                    };
                    if let Some(d) = &detections {
                        self.report.count(d);
                    }
                    self.released.insert(
                        slot.index,
                        (slot.pts, slot.duration, slot.image, slot.decoded, failed),
                    );
                    let started = Instant::now();
                    let tracked = self.tracker.push(slot.index, detections);
                    self.stages.track += started.elapsed().as_secs_f64();
                    if let Some(f) = tracked {
                        self.release(f, out, progress)?;
                    }
                }
                Some(false) => {
                    if !all && self.slots.len() <= self.max_in_flight {
                        return Ok(());
                    }
                    let Some(workers) = workers else {
                        unreachable!("frames await detection only when there are workers")
                    };
                    let started = Instant::now();
                    let received = workers.results.recv();
                    self.stages.wait_for_detect += started.elapsed().as_secs_f64();
                    match received {
                        Ok((index, result)) => self.store(index, result),
                        Err(_) => {
                            return Err(video_err(
                                path,
                                "detection workers stopped",
                                "channel closed",
                            ))
                        }
                    }
                }
            }
        }
    }

    /// Queues a covered stand-in for a frame the decoder could not produce.
    fn push_lost(&mut self, pts: i64, duration: i64, next_index: &mut usize, w: u32, h: u32) {
        self.report.lost_frames += 1;
        self.slots.push_back(Slot {
            index: *next_index,
            pts: Some(pts),
            duration,
            image: Arc::new(RgbImage::new(w, h)),
            decoded: None,
            corrupt: true,
            awaiting: None,
        });
        *next_index += 1;
    }

    fn store(&mut self, index: usize, result: std::result::Result<Vec<Detection>, String>) {
        if let Some(s) = self.slots.iter_mut().find(|s| s.index == index) {
            s.awaiting = Some(Some(result));
        }
    }

    fn release(
        &mut self,
        f: TrackedFrame,
        out: &mut EncoderLink,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<()> {
        let (pts, duration, image, decoded, whole) = self
            .released
            .remove(&f.index)
            .expect("every tracked frame was stored");
        let img = Arc::try_unwrap(image).unwrap_or_else(|shared| (*shared).clone());
        let regions = if whole {
            self.report.fail_closed_frames += 1;
            Vec::new()
        } else {
            self.redact_cfg.regions(&f.boxes, img.width(), img.height())
        };
        if let Some(w) = &mut self.export {
            let time = pts.map(|p| p as f64 * self.time_base);
            w.frame(&FrameBoxes::from_detections(f.index, time, whole, &f.boxes))?;
        }
        self.flicker.push(f.detected.as_deref(), &f.boxes);
        out.send(ToEncoder::Frame {
            img,
            decoded,
            regions,
            whole,
            pts,
            duration,
        })?;
        self.report.frames += 1;
        progress(self.report.frames);
        Ok(())
    }
}

/// The number of video frames the container announces (or duration × frame rate), for progress
/// bars; `None` when the file cannot be opened or says nothing.
pub fn frame_count_estimate(path: &Path) -> Option<u64> {
    init();
    let ictx = super::open::input(path, crate::image_io::DEFAULT_MAX_PIXELS).ok()?;
    let st = ictx.streams().best(media::Type::Video)?;
    if st.frames() > 0 {
        return Some(st.frames() as u64);
    }
    let rate = st.avg_frame_rate();
    let tb = st.time_base();
    if st.duration() > 0 && rate.denominator() > 0 && tb.denominator() > 0 {
        let secs = st.duration() as f64 * f64::from(tb.numerator()) / f64::from(tb.denominator());
        let fps = f64::from(rate.numerator()) / f64::from(rate.denominator());
        return Some((secs * fps).round() as u64);
    }
    None
}

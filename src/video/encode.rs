//! The sink side of a clip: encode the redacted frames and mux them with the copied streams.
//!
//! The calling thread paints each frame's regions as it queues it ([`EncoderLink::frame`]); one
//! encoder thread converts it to the encoder's format, encodes and muxes it, so that decoding the
//! next frames overlaps encoding the last ones. A frame that is still its decoded 4:2:0 picture is
//! painted rectangle by rectangle (see `picture`): only the redacted rectangles go to RGB and
//! back, and every other pixel is encoded exactly as it was decoded.
//!
//! Which input streams the output carries is decided here too (`keep_stream`): the redacted
//! picture and the sound, and nothing that could carry a picture or a position that was not
//! redacted.

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::Instant;

use ff::format::Pixel;
use ff::software::scaling;
use ff::{codec, encoder, format, frame, media, Dictionary, Packet, Rational};
use ffmpeg_next as ff;
use image::RgbImage;

use super::audio::Reencoder;
use super::decode::Spent;
use super::picture::ClipPicture;
use super::{video_err, DroppedStream, ReencodedStream, VideoOptions};
use crate::error::{Error, Result};
use crate::redact::Region;

/// Whether `f`'s buffers are ours alone to write: an encoder may keep a reference to a frame it
/// was given, and a reused frame must not change under it. (If it is shared, FFmpeg gives it
/// buffers of its own, copying the content.)
pub(super) fn writable(f: &mut frame::Video) -> bool {
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
    /// The RGB and YUV pictures of a whole-frame conversion, made for the first frame that comes
    /// without its decoded picture (12 MB at 1080p that most clips never need).
    whole: Option<(frame::Video, frame::Video)>,
    format: Pixel,
    enc_tb: Rational,
    ost_index: usize,
    /// Input frame durations by pts: encoders do not carry them to their packets, and a muxer
    /// given a last packet without duration drops that frame from the edit list.
    durations: std::collections::HashMap<i64, i64>,
    /// The last pts given to the encoder (see [`Output::next_pts`]).
    last_pts: Option<i64>,
    /// The first packet written is yet to set where the clip starts (see [`Output::start_from`]).
    zero_start: bool,
    /// The last duration a frame was given (see [`Output::encode`]).
    step: i64,
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

    /// With `zero_start`, the first packet written, timed in `tb`, moves every timestamp written
    /// from then on back by its own, so that the clip starts at zero: a Dahua DAV file counts
    /// milliseconds from 1970, and an MP4 that kept them would open as a clip 56 years long. (The
    /// input's start time cannot say it: FFmpeg leaves it unknown for such files.) A later packet
    /// of another stream timed earlier than the first goes below zero, which the muxer handles as
    /// it handles any negative timestamp.
    fn start_from(&mut self, pkt: &Packet, tb: Rational) {
        if !std::mem::take(&mut self.zero_start) {
            return;
        }
        use ff::Rescale;
        if let Some(t) = pkt.pts().or(pkt.dts()).filter(|t| *t > 0) {
            // SAFETY: a plain field of the output context that `self.octx` owns, set before this
            // packet is written; the muxer adds it to every packet's timestamps as it writes.
            unsafe {
                (*self.octx.as_mut_ptr()).output_ts_offset = -t.rescale(tb, ff::rescale::TIME_BASE)
            };
        }
    }

    /// Writes a copied packet of output stream `stream`, timed in `from`.
    fn copy(
        &mut self,
        mut packet: Packet,
        from: Rational,
        stream: usize,
        path: &Path,
    ) -> Result<()> {
        let ost_tb = self
            .octx
            .stream(stream)
            .ok_or_else(|| video_err(path, "cannot write a copied packet", "no such stream"))?
            .time_base();
        packet.rescale_ts(from, ost_tb);
        self.start_from(&packet, ost_tb);
        packet.set_position(-1);
        packet.set_stream(stream);
        packet
            .write_interleaved(&mut self.octx)
            .map_err(|e| video_err(path, "cannot write a copied packet", e))
    }

    /// Flushes the encoder and writes the trailer.
    fn finish(&mut self, path: &Path) -> Result<()> {
        self.encoder
            .send_eof()
            .map_err(|e| video_err(path, "cannot finish encoding", e))?;
        self.receive_packets(path)?;
        self.octx
            .write_trailer()
            .map_err(|e| video_err(path, "cannot finish the file", e))
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
                .map_or(self.enc_tb, |s| s.time_base());
            pkt.rescale_ts(self.enc_tb, ost_tb);
            self.start_from(&pkt, ost_tb);
            pkt.write_interleaved(&mut self.octx)
                .map_err(|e| video_err(path, "cannot write video", e))?;
        }
        Ok(())
    }

    /// Encodes `picture` (painted already): a decoded 4:2:0 picture as it is, RGB converted
    /// whole into the encoder's format.
    fn encode(
        &mut self,
        picture: &mut ClipPicture,
        pts: Option<i64>,
        duration: i64,
        path: &Path,
    ) -> Result<()> {
        let before = self.last_pts;
        let pts = self.next_pts(pts, duration);
        // A frame that comes without a duration (Windows Media, raw streams) lasts as long as the
        // step from the frame before it: given none, the clip's last frame would be dropped. So
        // does one whose duration is under a tenth of that step, a placeholder rather than a
        // length: FFmpeg gives every frame of a Dahua DAV file 1 ms, and the copy's last frame
        // showed for 1 ms instead of a frame's time.
        let step_in = before.filter(|b| pts > *b).map(|b| pts - b);
        let duration = match step_in {
            _ if duration > 0 && step_in.is_none_or(|s| duration.saturating_mul(10) >= s) => {
                duration
            }
            Some(s) => s,
            None => self.step,
        };
        if duration > 0 {
            self.step = duration;
            self.durations.insert(pts, duration);
        }
        let picture = match picture {
            ClipPicture::Yuv(f) => f,
            ClipPicture::Rgb(img) => {
                let (w, h, format) = (img.width(), img.height(), self.format);
                let (rgb, yuv) = self.whole.get_or_insert_with(|| {
                    (
                        frame::Video::new(Pixel::RGB24, w, h),
                        frame::Video::new(format, w, h),
                    )
                });
                if !writable(yuv) {
                    return Err(video_err(path, "cannot convert a frame", "out of memory"));
                }
                fill_rgb_frame(img, rgb);
                self.to_yuv
                    .run(rgb, yuv)
                    .map_err(|e| video_err(path, "cannot convert a frame", e))?;
                yuv
            }
        };
        picture.set_pts(Some(pts));
        picture.set_kind(ff::picture::Type::None);
        self.encoder
            .send_frame(picture)
            .map_err(|e| video_err(path, "cannot encode a frame", e))?;
        self.receive_packets(path)
    }
}

/// What the calling thread hands the encoder thread, in output order.
pub(super) enum ToEncoder {
    /// A frame to encode, painted already.
    Frame {
        picture: ClipPicture,
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
pub(super) struct OutputParts {
    octx: format::context::Output,
    encoder: encoder::Video,
    format: Pixel,
    width: u32,
    height: u32,
    enc_tb: Rational,
    ost_index: usize,
    /// Move every timestamp written back so that the clip starts at zero (see
    /// [`Output::start_from`]); set for a clip written in another container than its input's.
    pub zero_start: bool,
}

/// The encoder thread's busy seconds.
#[derive(Default)]
pub(super) struct EncodeTimes {
    /// Converting, encoding and muxing.
    pub encode: f64,
}

/// The encoder thread: takes each painted frame it is given, converts it to the encoder's format,
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
    let mut to_yuv = scaling::Context::get(
        Pixel::RGB24,
        w,
        h,
        parts.format,
        w,
        h,
        scaling::Flags::BILINEAR,
    )
    .map_err(|e| video_err(path, "no colour converter", e))?;
    // RGB pictures (stand-ins for lost frames, pictures in another format) in the range the
    // encoder writes, as the pictures kept as decoded are.
    if parts.encoder.color_range() == ff::color::Range::JPEG
        && !super::picture::writes_full_range(&mut to_yuv)
    {
        return Err(video_err(
            path,
            "no colour converter",
            "FFmpeg's scaler cannot write full range",
        ));
    }
    let mut out = Output {
        to_yuv,
        whole: None,
        format: parts.format,
        enc_tb: parts.enc_tb,
        ost_index: parts.ost_index,
        durations: Default::default(),
        step: 0,
        last_pts: None,
        zero_start: parts.zero_start,
        encoder: parts.encoder,
        octx: parts.octx,
    };
    let mut times = EncodeTimes::default();
    for msg in rx {
        match msg {
            ToEncoder::Frame {
                mut picture,
                pts,
                duration,
            } => {
                let started = Instant::now();
                out.encode(&mut picture, pts, duration, path)?;
                times.encode += started.elapsed().as_secs_f64();
                let _ = spent.send(picture);
            }
            ToEncoder::Packet {
                packet,
                from,
                stream,
            } => out.copy(packet, from, stream, path)?,
            ToEncoder::Finish => {
                let started = Instant::now();
                out.finish(path)?;
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

/// The calling thread's end of the encoder thread: a bounded queue (so frames in flight stay
/// few) and the thread's result. Frames are painted here, on the calling thread, before they are
/// queued: that thread mostly waits for the encoder, and the encoder thread is the one that
/// bounds a clip's speed when detection keeps up (the fast preset), so painting there would
/// lengthen the critical path.
pub(super) struct EncoderLink {
    tx: Option<SyncSender<ToEncoder>>,
    handle: Option<JoinHandle<Result<EncodeTimes>>>,
    /// Seconds the calling thread waited for room in the queue.
    pub waited: f64,
    /// Seconds the calling thread spent painting.
    pub painted: f64,
    /// RGB for painting on YUV pictures, one rectangle at a time (see `ClipPicture::paint`).
    scratch: Vec<u8>,
    /// The output clip, for errors.
    path: std::path::PathBuf,
}

impl EncoderLink {
    /// Frames queued for a file's encoder thread beyond the one it is working on.
    ///
    /// Why six: where detection keeps up (the fast preset), the encoder sets a clip's pace, and
    /// the calling thread feeds it in bursts: it waits for a detection, decodes, paints. With two
    /// frames queued the encoder sat idle for 1.15–1.31 s of a fast run on crowd_1080p; with six,
    /// for 0.58 s (BENCHMARKS.md, "A deeper encoder queue"). The cost is at most four more decoded
    /// frames in flight (12 MB at 1080p), paid only while the encoder is behind.
    pub const FILE_QUEUE: usize = 6;

    /// Frames queued for a live stream's encoder: a frame queued is a frame of delay.
    pub const LIVE_QUEUE: usize = 2;

    /// Starts the encoder thread on `parts`, with room for `queue` frames waiting; the receiver
    /// gets the frame buffers it is done with, for the decoding side to fill again.
    pub fn start(
        parts: OutputParts,
        path: &Path,
        queue: usize,
    ) -> Result<(EncoderLink, Receiver<Spent>)> {
        let (tx, rx) = mpsc::sync_channel(queue);
        let (spent_tx, spent) = mpsc::channel();
        let owned = path.to_path_buf();
        let handle = std::thread::Builder::new()
            .name("bystander-encode".into())
            .spawn(move || encode_frames(parts, rx, spent_tx, &owned))
            .map_err(|e| video_err(path, "cannot start the encoder thread", e))?;
        let link = EncoderLink {
            tx: Some(tx),
            handle: Some(handle),
            waited: 0.0,
            painted: 0.0,
            scratch: Vec::new(),
            path: path.to_path_buf(),
        };
        Ok((link, spent))
    }

    /// Paints `regions` on `picture` and queues it for encoding.
    pub fn frame(
        &mut self,
        mut picture: ClipPicture,
        regions: &[Region],
        pts: Option<i64>,
        duration: i64,
    ) -> Result<()> {
        let started = Instant::now();
        picture.paint(regions, &mut self.scratch);
        self.painted += started.elapsed().as_secs_f64();
        self.send(ToEncoder::Frame {
            picture,
            pts,
            duration,
        })
    }

    /// Queues a message for the encoder thread (waits while its queue is full).
    pub fn send(&mut self, msg: ToEncoder) -> Result<()> {
        let started = Instant::now();
        // Only whether it went matters; a refused message is dropped here.
        let sent = self.tx.as_ref().map(|tx| tx.send(msg).is_ok());
        self.waited += started.elapsed().as_secs_f64();
        match sent {
            Some(true) => Ok(()),
            // The thread stopped early: its error is the clip's.
            _ => Err(match self.join() {
                Err(e) => e,
                Ok(_) => video_err(&self.path, "the encoder stopped", "it took no more frames"),
            }),
        }
    }

    /// Sends [`ToEncoder::Finish`] and waits for the file to be complete.
    pub fn finish(mut self) -> Result<EncodeTimes> {
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
/// writing the header decides; but see [`TS_SOUND`]).
fn container_takes(octx: &format::context::Output, id: codec::Id) -> bool {
    if octx.format().name() == "mpegts" && id.medium() == media::Type::Audio {
        return TS_SOUND.contains(&id);
    }
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

/// The sound codecs FFmpeg's MPEG-TS muxer gives a stream type of their own. Why a list: the
/// muxer answers FFmpeg's query for no codec, and writes any other sound (the G.711 of an IP
/// camera, the default output of `live`) as a private data stream that no player plays, where
/// it is better encoded again as AAC.
const TS_SOUND: [codec::Id; 10] = [
    codec::Id::MP2,
    codec::Id::MP3,
    codec::Id::AAC,
    codec::Id::AAC_LATM,
    codec::Id::AC3,
    codec::Id::EAC3,
    codec::Id::DTS,
    codec::Id::TRUEHD,
    codec::Id::OPUS,
    codec::Id::S302M,
];

/// Whether a stream other than the redacted video stream goes into the output, and why not.
///
/// Only sound is copied by default (none with `drop_audio`). Subtitles are dropped: a bitmap
/// subtitle (DVD, PGS, DVB) is a picture that can show a face and is never copied; a text
/// subtitle can carry a position (GPS captions every second from dashcams and drones) and is
/// copied only with `keep_subtitles`.
/// Data streams (GPS and telemetry tracks), attachments and further picture streams (cover art,
/// a second camera angle that is not redacted) are never copied. Whether the output's container
/// takes the codec is for the caller.
fn keep_stream(
    ist: &format::stream::Stream,
    opts: &VideoOptions,
) -> std::result::Result<(), String> {
    let params = ist.parameters();
    let id = params.id();
    match params.medium() {
        media::Type::Audio if opts.drop_audio => Err("sound can carry voices; dropped as asked (--no-audio)".to_string()),
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
    }
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

/// The CPU flags x264 is told to use (its `asm` setting), or `None` for its own detection.
///
/// Why: on a CPU with AVX-512, x264 (Debian's libx264 164, r3095) uses code for it whose results
/// depend on memory the process used before. The same clip redacted with two detection workers
/// gave up to five different files in eight runs, all from the first frame's bytes, though the
/// frames handed to x264 were the same every time (and so were lossless encodings of them);
/// without AVX-512, twenty runs gave one file (BENCHMARKS.md, "x264 without AVX-512"). So where
/// x264 would find AVX-512, it is given the flags its own detection finds on every such CPU
/// (AVX2, which implies FMA3, BMI1, BMI2 and LZCNT, and fast SSE2), AVX-512 left out. Elsewhere
/// x264 detects as usual.
fn x264_cpu_flags() -> Option<&'static str> {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        // x264's own test for AVX-512: these five, and the operating system saving their state
        // (which the standard library's detection checks too).
        let avx512 = std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512cd")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vl");
        if avx512 {
            return Some("AVX2,SSE2Fast");
        }
    }
    None
}

/// The encoder's settings: quality and speed for the encoders that take them.
fn encoder_options(name: &str, opts: &VideoOptions) -> Dictionary<'static> {
    let mut dict = Dictionary::new();
    if let Some(frames) = opts.keyframe_interval {
        dict.set("g", &frames.max(1).to_string());
    }
    if name.starts_with("libx26") {
        dict.set("crf", &opts.crf.to_string());
        dict.set("preset", &opts.preset);
        if name == "libx264" {
            // x264's threaded look-ahead keeps its own buffer of frames (about 28 MB at 1080p
            // with two threads). Without it the same bytes come out (checked on crowd_1080p);
            // the default preset is no slower, the fast one, which waits more on the encoder,
            // about 5 % (BENCHMARKS.md, "Memory", third pass).
            let mut params = String::from("sync-lookahead=0");
            if let Some(flags) = x264_cpu_flags() {
                params.push_str(":asm=");
                params.push_str(flags);
            }
            dict.set("x264-params", &params);
        } else if name == "libx265" {
            // x265 logs to the terminal itself (FFmpeg's log level does not reach it), takes
            // every core for its pool and, on two cores, one frame thread: held to the budget
            // instead, and one frame thread per core up to the six x265 takes on a large machine
            // (on 2 cores plain ffmpeg encoded a 10-bit 1080p clip in 8.50 s instead of 10.91 s,
            // peaking 46,240 KiB higher; BENCHMARKS.md, "10-bit clips").
            let threads = opts.ffmpeg_threads();
            dict.set(
                "x265-params",
                &format!(
                    "log-level=error:pools={threads}:frame-threads={}",
                    threads.min(6)
                ),
            );
        }
        if opts.zero_latency {
            dict.set("tune", "zerolatency");
        }
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
/// The output of a clip, ready for its encoder thread: the header is written.
pub(super) struct Opened {
    pub parts: OutputParts,
    /// Output stream of each input stream that is copied or encoded again.
    pub stream_map: Vec<Option<usize>>,
    /// Input streams left out, and why.
    pub dropped: Vec<DroppedStream>,
    /// The encoders of the input's sound streams written as AAC, by input stream (see
    /// `audio`), for the source to feed.
    pub reencoders: Vec<(usize, Reencoder)>,
    /// What `reencoders` do, for the report.
    pub reencoded: Vec<ReencodedStream>,
}

/// Fills `octx` (opened on `output`, or its temporary, with the muxer `muxer`): the video
/// stream of `ictx` (stream `vindex`, decoded by `decoder`) re-encoded at its own size, time base
/// and rotation, the streams [`keep_stream`] allows copied, and the rest listed as dropped; then
/// writes the header with the muxer options `header_opts`. With `reencode_sound`, a sound stream
/// the container cannot carry is encoded again as AAC (see `audio`) instead of dropped.
#[allow(clippy::too_many_arguments)]
pub(super) fn open_output(
    ictx: &format::context::Input,
    vindex: usize,
    decoder: &ff::decoder::Video,
    mut octx: format::context::Output,
    (output, muxer): (&Path, &str),
    opts: &VideoOptions,
    mut header_opts: Dictionary,
    reencode_sound: bool,
) -> Result<Opened> {
    let codec = pick_encoder(&octx, output, muxer, opts)?;
    let mut stream_map: Vec<Option<usize>> = vec![None; ictx.nb_streams() as usize];
    let mut dropped = Vec::new();
    let (mut reencoders, mut reencoded) = (Vec::new(), Vec::new());
    let mut video = None;
    for ist in ictx.streams() {
        let i = ist.index();
        if i == vindex {
            let ost_index = octx.nb_streams() as usize;
            let enc = add_video_stream(&mut octx, &ist, decoder, codec, output, opts)?;
            video = Some((enc, ost_index));
            continue;
        }
        let params = ist.parameters();
        let codec_name = format!("{:?}", params.id()).to_lowercase();
        let mut kept = keep_stream(&ist, opts);
        if kept.is_ok() && !container_takes(&octx, params.id()) {
            kept = Err("the output container cannot carry this codec".to_string());
            if reencode_sound && params.medium() == media::Type::Audio {
                let index = octx.nb_streams() as usize;
                match Reencoder::add(&mut octx, &ist) {
                    Ok(r) => {
                        stream_map[i] = Some(index);
                        reencoders.push((i, r));
                        reencoded.push(ReencodedStream {
                            index: i,
                            codec: codec_name,
                            to: "aac".into(),
                        });
                        continue;
                    }
                    Err(why) => kept = Err(why),
                }
            }
        }
        if let Err(reason) = kept {
            dropped.push(DroppedStream {
                index: i,
                kind: format!("{:?}", params.medium()).to_lowercase(),
                codec: codec_name,
                reason,
            });
            continue;
        }
        stream_map[i] = Some(octx.nb_streams() as usize);
        add_copied_stream(&mut octx, &ist, output, opts)?;
    }
    if opts.keep_metadata {
        octx.set_metadata(ictx.metadata().to_owned());
    }
    let (encoder, ost_index) = video.ok_or_else(|| Error::Unsupported {
        path: output.to_path_buf(),
        reason: "the input has no video stream to write".into(),
    })?;
    if opts.keep_metadata && matches!(muxer, "mp4" | "mov") {
        // Without this the MP4 muxer keeps only the handful of tags it knows.
        header_opts.set("movflags", "use_metadata_tags");
    }
    octx.write_header_with(header_opts)
        .map_err(|e| video_err(output, "cannot write the header", e))?;
    let format = encoder.format();
    let (width, height) = (decoder.width(), decoder.height());
    Ok(Opened {
        parts: OutputParts {
            octx,
            encoder,
            format,
            width,
            height,
            enc_tb: ictx
                .stream(vindex)
                .map_or(Rational(1, 90_000), |s| s.time_base()),
            ost_index,
            zero_start: false,
        },
        stream_map,
        dropped,
        reencoders,
        reencoded,
    })
}

/// The pixel format a `w` x `h` clip is encoded in: 4:2:0 needs even sides, so an odd-sized
/// picture is encoded 4:4:4 instead of being cropped or padded, and the output keeps the input's
/// exact size; 10 bits a sample where `deep` ([`keeps_depth`]), else 8.
pub(super) fn encoder_format(w: u32, h: u32, deep: bool) -> Pixel {
    match (w.is_multiple_of(2) && h.is_multiple_of(2), deep) {
        (true, false) => Pixel::YUV420P,
        (false, false) => Pixel::YUV444P,
        (true, true) => Pixel::YUV420P10LE,
        (false, true) => Pixel::YUV444P10LE,
    }
}

/// Whether pictures decoded as `decoded` keep 10 bits a sample through encoder `codec` (for a
/// `w` x `h` clip): where they have more than 8 and the encoder takes 10 (libx265's HEVC Main 10,
/// libvpx-vp9's profile 2, the AV1 encoders), but not through libx264.
///
/// Why: phones record HDR as 10-bit HEVC, and 8 bits a sample band the sky and skin of a PQ or
/// HLG picture. Why not libx264, the default: H.264's High 10 profile plays on hardly any
/// phone, browser or hardware decoder, where 8-bit H.264 plays everywhere; so a 10-bit clip
/// keeps its depth when the operator asks for an encoder that phones play at 10 bits.
pub(super) fn keeps_depth(codec: ff::Codec, decoded: Pixel, (w, h): (u32, u32)) -> bool {
    let deep_input = matches!(
        decoded,
        Pixel::YUV420P10LE
            | Pixel::YUV420P10BE
            | Pixel::YUV420P12LE
            | Pixel::YUV420P12BE
            | Pixel::YUV422P10LE
            | Pixel::YUV422P10BE
            | Pixel::YUV444P10LE
            | Pixel::YUV444P10BE
            | Pixel::P010LE
            | Pixel::P010BE
    );
    let wanted = encoder_format(w, h, true);
    deep_input
        && codec.name() != "libx264"
        && codec
            .video()
            .ok()
            .and_then(|v| v.formats())
            .is_some_and(|mut f| f.any(|p| p == wanted))
}

/// The encoder asked for, or the container's own; refused when the container cannot carry it.
fn pick_encoder(
    octx: &format::context::Output,
    output: &Path,
    muxer: &str,
    opts: &VideoOptions,
) -> Result<ff::Codec> {
    let name = opts
        .encoder
        .as_deref()
        .unwrap_or(super::default_encoder(muxer));
    let codec = encoder::find_by_name(name).ok_or_else(|| Error::InvalidSetting {
        name: "encoder",
        value: name.to_string(),
        allowed: "an FFmpeg video encoder this build has, such as libx264",
    })?;
    if !container_takes(octx, codec.id()) {
        return Err(Error::Video {
            path: output.to_path_buf(),
            reason: format!(
                "the {muxer} container cannot carry what encoder {name} makes; choose another with --encoder (WebM takes libvpx-vp9, libvpx or libaom-av1; MP4, MOV, MKV, AVI and TS take libx264), or leave it out to get the container's own"
            ),
        });
    }
    Ok(codec)
}

/// Adds the re-encoded video stream and opens its encoder.
fn add_video_stream(
    octx: &mut format::context::Output,
    ist: &format::stream::Stream,
    decoder: &ff::decoder::Video,
    codec: ff::Codec,
    output: &Path,
    opts: &VideoOptions,
) -> Result<encoder::Video> {
    let global_header = octx.format().flags().contains(format::Flags::GLOBAL_HEADER);
    let (w, h) = (decoder.width(), decoder.height());
    let mut ost = octx
        .add_stream(codec)
        .map_err(|e| video_err(output, "cannot add the video stream", e))?;
    let mut enc_ctx = codec::context::Context::new_with_codec(codec);
    // The options' threads (one per core of the budget, or one where detection sets the pace),
    // not FFmpeg's choice: x264 would take 1.5 per core, and each of its frame threads holds
    // frames (20 MB more at 1080p on 2 cores, no faster).
    enc_ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: opts.ffmpeg_threads(),
        ..Default::default()
    });
    let mut enc = enc_ctx
        .encoder()
        .video()
        .map_err(|e| video_err(output, "cannot set up the encoder", e))?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(encoder_format(
        w,
        h,
        keeps_depth(codec, decoder.format(), (w, h)),
    ));
    enc.set_aspect_ratio(decoder.aspect_ratio());
    describe_colour(&mut enc, decoder, codec.name());
    enc.set_time_base(ist.time_base());
    let rate = ist.avg_frame_rate();
    if rate.numerator() > 0 && rate.denominator() > 0 {
        enc.set_frame_rate(Some(rate));
    }
    if global_header {
        enc.set_flags(codec::Flags::GLOBAL_HEADER);
    }
    let name = codec.name().to_string();
    let enc = enc.open_with(encoder_options(&name, opts)).map_err(|e| {
        video_err(
            output,
            &format!("cannot open encoder {name} (frame size {w}x{h})"),
            e,
        )
    })?;
    ost.set_parameters(&enc);
    ost.set_time_base(ist.time_base());
    if let Some(m) = super::decode::display_matrix(ist) {
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
    Ok(enc)
}

/// Tags the output's pictures with the input's colour description, so that a player shows them
/// as it showed the input: without it, a BT.709 clip came out untagged (players guess by frame
/// size), and an HDR one (HLG or PQ, as phones record) looked washed out.
///
/// What holds for the written samples: they are in the range the input's stream declares where
/// the encoder can say so ([`full_range_output`]; a picture in the range written is kept as
/// decoded, and FFmpeg's scaler writes that range for the others). Their matrix
/// is the input's: a picture kept as decoded keeps its samples, and one converted to RGB and back
/// goes through the same default matrix both ways, so that what is not painted comes back as it
/// was. Only an RGB input has no matrix of its own; its output is left untagged there. Primaries
/// and transfer are the input's in every case: nothing here changes them.
fn describe_colour(enc: &mut encoder::video::Video, decoder: &ff::decoder::Video, name: &str) {
    use ff::color::Space;
    enc.set_color_range(if full_range_output(decoder, name) {
        ff::color::Range::JPEG
    } else {
        ff::color::Range::MPEG
    });
    enc.set_color_primaries(decoder.color_primaries());
    enc.set_color_transfer_characteristic(decoder.color_transfer_characteristic());
    let space = match decoder.color_space() {
        Space::RGB => Space::Unspecified,
        space => space,
    };
    enc.set_colorspace(space);
}

/// Whether encoder `name` writes a clip decoded by `decoder` in full range: where the stream says
/// its pictures are (see `decode::full_range_stream`) and the encoder's bitstream can say so too
/// (x264, x265, VP9, AV1). Another encoder (`--encoder mpeg4`, VP8) writes video range, which
/// its player assumes.
pub(super) fn full_range_output(decoder: &ff::decoder::Video, name: &str) -> bool {
    super::decode::full_range_stream(decoder)
        && matches!(
            name,
            "libx264" | "libx265" | "libvpx-vp9" | "libaom-av1" | "libsvtav1"
        )
}

impl OutputParts {
    /// The pixel format the encoder takes (see [`encoder_format`]).
    pub fn format(&self) -> Pixel {
        self.format
    }

    /// Whether the encoder writes full range (see [`full_range_output`]).
    pub fn full_range(&self) -> bool {
        self.encoder.color_range() == ff::color::Range::JPEG
    }
}

/// Adds a stream whose packets are copied as they are.
fn add_copied_stream(
    octx: &mut format::context::Output,
    ist: &format::stream::Stream,
    output: &Path,
    opts: &VideoOptions,
) -> Result<()> {
    let mut ost = octx
        .add_stream(encoder::find(codec::Id::None))
        .map_err(|e| video_err(output, "cannot add a copied stream", e))?;
    ost.set_parameters(ist.parameters());
    // SAFETY: resetting the codec tag of parameters we own lets the muxer pick its own tag for
    // the copied codec instead of refusing the input container's tag.
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x264_runs_without_its_threaded_look_ahead_and_other_encoders_are_left_alone() {
        let opts = VideoOptions::default();
        let x264 = encoder_options("libx264", &opts);
        let want = match x264_cpu_flags() {
            Some(flags) => format!("sync-lookahead=0:asm={flags}"),
            None => "sync-lookahead=0".to_string(),
        };
        assert_eq!(x264.get("x264-params"), Some(want.as_str()));
        assert_eq!(x264.get("preset"), Some(opts.preset.as_str()));
        assert_eq!(encoder_options("libx265", &opts).get("x264-params"), None);
        assert_eq!(
            encoder_options("libvpx-vp9", &opts).get("x264-params"),
            None
        );
    }
}

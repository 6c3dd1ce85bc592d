//! The source side of a clip: demux, decode, keep a copy of each picture, and account for every
//! frame.
//!
//! A [`Source`] yields, in file order, the video frames (a copy of the decoded picture, or RGB
//! where the encoder cannot take that back; timestamps) and the packets of the other streams
//! that are copied. Frames the decoder flags as corrupt come out marked; frames it never produces
//! (corrupt packets) come out as covered stand-ins at their own timestamps, so the output keeps
//! every frame of the input.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::Instant;

use ff::codec::packet::Ref as _;
use ff::format::Pixel;
use ff::software::scaling;
use ff::{codec, format, frame, media, Packet, Rational};
use ffmpeg_next as ff;
use image::RgbImage;

use super::picture::ClipPicture;
use super::video_err;
use crate::engine::Fault;
use crate::error::{Error, Result};

/// One video frame for the engine.
pub(super) struct DecodedFrame {
    /// The pixels: a copy of the decoded 4:2:0 picture when the encoder can take redacted
    /// rectangles back into it, else RGB (black for a lost frame).
    pub picture: ClipPicture,
    /// Presentation time and duration, in the stream's time base.
    pub pts: Option<i64>,
    pub duration: i64,
    /// Why it cannot be trusted, if so.
    pub fault: Option<Fault>,
}

/// What the source gives next.
pub(super) enum Event {
    Frame(DecodedFrame),
    /// A packet of another stream, timed in `from`, for output stream `stream`.
    Packet {
        packet: Packet,
        from: Rational,
        stream: usize,
    },
}

/// Decoding times kept for frames of packets without presentation times (see `Source::untimed`):
/// far more than any decoder's reordering delay.
const MAX_UNTIMED: usize = 64;

/// Pictures the encoder thread gives back, for their buffers.
pub(super) type Spent = ClipPicture;

/// The video stream of an open input, decoding.
pub(super) struct Source<'a> {
    ictx: &'a mut format::context::Input,
    path: &'a Path,
    decoder: ff::decoder::Video,
    vindex: usize,
    stream_map: Vec<Option<usize>>,
    /// Encoders of the sound streams written again as AAC, by input stream (see `audio`).
    reencoders: Vec<(usize, super::audio::Reencoder)>,
    /// Their packets, as they come out.
    reencoded: Vec<Packet>,
    time_bases: Vec<Rational>,
    size: (u32, u32),
    encoder_format: Pixel,
    /// Whether the encoder writes full range (see [`Source::encoder_writes_full_range`]).
    encoder_full: bool,
    to_rgb: Option<scaling::Context>,
    /// Whether `to_rgb` reads its input as full range (see [`full_range`]).
    to_rgb_full: bool,
    decoded: frame::Video,
    rgb_frame: frame::Video,
    spent: Receiver<Spent>,
    ready: VecDeque<Event>,
    frames: usize,
    max_frames: usize,
    eof: bool,
    /// Presentation times of video packets sent to the decoder and not yet seen as frames (see
    /// [`Source::account`]).
    expected: BTreeMap<i64, i64>,
    /// Decoding times of video packets that carry no presentation time, in order, not yet given
    /// to a frame. An AVI file stores none, and with B-frames FFmpeg's best guess for a frame is
    /// the decoding time of the packet that let it out, one reordering delay late: the clip came
    /// out with its second frame 0.3 s after the first at 10 frames/s, and 0.2 s longer (so did
    /// FFmpeg's own command line). Frames leave the decoder in presentation order and one packet
    /// makes one frame, so the decoding times in order are the frames' times. Only for a stream
    /// none of whose packets has carried a presentation time: where some do (an MPEG program
    /// stream times some of its packets), the decoder's own guess stands.
    untimed: VecDeque<i64>,
    /// Whether a video packet has carried a presentation time.
    timed: bool,
    tracking_lost: bool,
    /// Packets or frames the decoder refused.
    pub decode_errors: usize,
    /// Frames written as stand-ins for frames the decoder never produced.
    pub lost_frames: usize,
    /// Packets the demuxer found damaged and skipped (see [`Source::read_packet`]).
    pub unreadable_packets: usize,
    /// Packets of the video stream read.
    pub video_packets: u64,
    /// Where the data read ends, in seconds: the latest end (timestamp plus duration) of any
    /// packet of any stream, to hold against the duration the container declares.
    pub data_end: Option<f64>,
    /// The error that stopped the demuxer before the end of the input, if one did.
    pub read_error: Option<ff::Error>,
    /// Seconds spent demuxing, decoding and converting.
    pub seconds: f64,
}

impl<'a> Source<'a> {
    /// Decodes stream `vindex` of `ictx` with `decoder` into `size` RGB frames; packets of
    /// stream `i` are copied to output stream `stream_map[i]`. `encoder_format` is what the
    /// encoder takes: a decoded picture in it is kept for the encoder. Stops after `max_frames`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        ictx: &'a mut format::context::Input,
        path: &'a Path,
        decoder: ff::decoder::Video,
        vindex: usize,
        stream_map: Vec<Option<usize>>,
        encoder_format: Pixel,
        spent: Receiver<Spent>,
        max_frames: Option<usize>,
    ) -> Source<'a> {
        let time_bases = ictx.streams().map(|s| s.time_base()).collect();
        let size = (decoder.width(), decoder.height());
        Source {
            ictx,
            path,
            decoder,
            vindex,
            stream_map,
            reencoders: Vec::new(),
            reencoded: Vec::new(),
            time_bases,
            size,
            encoder_format,
            encoder_full: false,
            to_rgb: None,
            to_rgb_full: false,
            decoded: frame::Video::empty(),
            rgb_frame: frame::Video::empty(),
            spent,
            ready: VecDeque::new(),
            frames: 0,
            max_frames: max_frames.unwrap_or(usize::MAX),
            eof: false,
            expected: BTreeMap::new(),
            untimed: VecDeque::new(),
            timed: false,
            tracking_lost: true,
            decode_errors: 0,
            lost_frames: 0,
            unreadable_packets: 0,
            video_packets: 0,
            data_end: None,
            read_error: None,
            seconds: 0.0,
        }
    }

    /// Has the sound streams `reencoders` name (input stream, encoder) encoded again as they are
    /// read, instead of copied (see `encode::Opened::reencoders`).
    pub fn reencode(&mut self, reencoders: Vec<(usize, super::audio::Reencoder)>) {
        self.reencoders = reencoders;
    }

    /// Takes the sound encoders back (flushed at the input's end), for a live run's next
    /// session to make its own from.
    pub fn take_reencoders(&mut self) -> Vec<(usize, super::audio::Reencoder)> {
        std::mem::take(&mut self.reencoders)
    }

    /// Packets and frames of the sound streams encoded again that their decoders refused.
    pub fn reencode_errors(&self) -> usize {
        self.reencoders.iter().map(|(_, r)| r.errors).sum()
    }

    /// Ends the source and hands back the channel of spent buffers, for the next input of a live
    /// stream that goes on into the same encoder.
    pub fn into_spent(self) -> Receiver<Spent> {
        self.spent
    }

    /// The next frame or copied packet, in file order; `None` at the end.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(Some(e));
            }
            if self.eof {
                return Ok(None);
            }
            if self.frames >= self.max_frames {
                // A run cut short on purpose: the sound encoded again up to here still comes out.
                self.eof = true;
                self.finish_sound();
                continue;
            }
            let started = Instant::now();
            let next = self.read_packet();
            self.seconds += started.elapsed().as_secs_f64();
            match next {
                Some((stream, packet)) => self.packet(stream, packet)?,
                None => self.end()?,
            }
        }
    }

    /// The next packet of any stream; `None` at the end of the input or when reading failed.
    ///
    /// Why not FFmpeg's packet iterator: it skips damaged packets and ends on any other error
    /// without a word, so a clip whose read failed half-way (an I/O error) came out shorter than
    /// its input as if it were whole. Here a damaged packet is skipped and counted, and any other
    /// error is kept in `read_error` for the caller to decide on. (An MP4 cut short ends in a
    /// plain end of file where its data does; the caller compares the video packets read with the
    /// frames the index lists.)
    fn read_packet(&mut self) -> Option<(usize, Packet)> {
        /// Damaged packets skipped before reading gives up: a demuxer that reported damage
        /// without moving on would otherwise loop for ever. A truncated hour of 30 fps video with
        /// its audio lists about 300,000 samples.
        const MAX_UNREADABLE: usize = 1 << 22;
        let mut packet = Packet::empty();
        loop {
            match packet.read(self.ictx) {
                Ok(()) => {
                    self.note_end(&packet);
                    return Some((packet.stream(), packet));
                }
                Err(ff::Error::Eof) => return None,
                Err(ff::Error::InvalidData) if self.unreadable_packets < MAX_UNREADABLE => {
                    self.unreadable_packets += 1;
                }
                Err(e) => {
                    self.read_error = Some(e);
                    return None;
                }
            }
        }
    }

    /// Moves [`Source::data_end`] to the end of `packet` if that is later.
    fn note_end(&mut self, packet: &Packet) {
        let (Some(t), Some(tb)) = (
            packet.pts().or(packet.dts()),
            self.time_bases.get(packet.stream()),
        ) else {
            return;
        };
        let end = (t as f64 + packet.duration().max(0) as f64) * f64::from(*tb);
        if end.is_finite() && self.data_end.is_none_or(|e| end > e) {
            self.data_end = Some(end);
        }
    }

    fn packet(&mut self, si: usize, packet: Packet) -> Result<()> {
        if si != self.vindex {
            let Some(stream) = self.stream_map.get(si).copied().flatten() else {
                return Ok(());
            };
            match self.reencoders.iter_mut().find(|(i, _)| *i == si) {
                Some((_, r)) => {
                    r.push(&packet, &mut self.reencoded);
                    let from = r.time_base();
                    for packet in self.reencoded.drain(..) {
                        self.ready.push_back(Event::Packet {
                            packet,
                            from,
                            stream,
                        });
                    }
                }
                None => self.ready.push_back(Event::Packet {
                    packet,
                    from: self.time_bases[si],
                    stream,
                }),
            }
            return Ok(());
        }
        self.video_packets += 1;
        // SAFETY: reading the flags field of a packet the demuxer just filled.
        // (The cast: FFmpeg's bindings type this constant `u32` or `i32` depending on the version.)
        #[allow(clippy::unnecessary_cast)]
        let discard =
            unsafe { (*packet.as_ptr()).flags } & ff::ffi::AV_PKT_FLAG_DISCARD as i32 != 0;
        if packet.pts().is_some() && !std::mem::replace(&mut self.timed, true) {
            self.untimed.clear();
        }
        match packet.pts() {
            Some(p) if !discard => {
                self.expected.insert(p, packet.duration());
            }
            Some(_) => {}
            None => {
                self.stop_accounting();
                if let (Some(d), false, false) = (packet.dts(), discard, self.timed) {
                    self.untimed.push_back(d);
                    // Bounded: a decoder that swallows packets must not grow it for ever.
                    if self.untimed.len() > MAX_UNTIMED {
                        self.untimed.pop_front();
                    }
                }
            }
        }
        loop {
            let started = Instant::now();
            let sent = self.decoder.send_packet(&packet);
            self.seconds += started.elapsed().as_secs_f64();
            match sent {
                Ok(()) => break,
                // The decoder is full: take its frames, then offer the packet again.
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    self.receive()?
                }
                Err(_) => {
                    self.decode_errors += 1;
                    break;
                }
            }
        }
        self.receive()
    }

    fn end(&mut self) -> Result<()> {
        self.eof = true;
        let _ = self.decoder.send_eof();
        self.receive()?;
        self.finish_sound();
        // Frames still expected at the end never came: stand-ins, when the decoder failed.
        if self.tracking_lost
            && self.decode_errors > 0
            && self.frames < self.max_frames
            && self.frames > 0
        {
            for (p, d) in std::mem::take(&mut self.expected) {
                self.push_lost(p, d);
            }
        }
        if self.frames == 0 {
            return Err(Error::Unsupported {
                path: self.path.to_path_buf(),
                reason: "no frame of the video stream could be decoded".into(),
            });
        }
        Ok(())
    }

    /// Takes what the decoders and encoders of the sound encoded again still hold.
    fn finish_sound(&mut self) {
        for (si, r) in &mut self.reencoders {
            r.finish(&mut self.reencoded);
            let (from, stream) = (r.time_base(), self.stream_map.get(*si).copied().flatten());
            for packet in self.reencoded.drain(..) {
                if let Some(stream) = stream {
                    self.ready.push_back(Event::Packet {
                        packet,
                        from,
                        stream,
                    });
                }
            }
        }
    }

    fn stop_accounting(&mut self) {
        self.tracking_lost = false;
        self.expected.clear();
    }

    /// Takes every frame the decoder has ready.
    fn receive(&mut self) -> Result<()> {
        loop {
            let started = Instant::now();
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {}
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => break,
                Err(ff::Error::Eof) => break,
                Err(_) => {
                    self.decode_errors += 1;
                    break;
                }
            }
            let frame = self.convert()?;
            self.seconds += started.elapsed().as_secs_f64();
            if self.frames >= self.max_frames {
                continue;
            }
            self.account(self.decoded.pts());
            self.frames += 1;
            self.ready.push_back(Event::Frame(frame));
        }
        Ok(())
    }

    /// The input's path.
    pub fn path(&self) -> &Path {
        self.path
    }

    /// Says whether the encoder writes full range (`encode::OutputParts::full_range`), so that
    /// pictures in the range it writes are kept as decoded and the others converted. Until then
    /// it is taken to write video range: a full-range picture is then converted, never handed
    /// on in a range the encoder does not write.
    pub fn encoder_writes_full_range(&mut self, full: bool) {
        self.encoder_full = full;
    }

    /// The decoded frame as a copy of its picture when the encoder takes it, else in RGB.
    fn convert(&mut self) -> Result<DecodedFrame> {
        let (w, h) = self.size;
        let d = &self.decoded;
        let (spare_rgb, spare_yuv) = match self.spent.try_recv() {
            Ok(ClipPicture::Rgb(img)) => (Some(img.into_raw()), None),
            Ok(ClipPicture::Yuv(f)) => (None, Some(f)),
            Err(_) => (None, None),
        };
        let decoded = (copy_format(d.format()) == Some(self.encoder_format)
            && full_range(d) == self.encoder_full
            && (d.width(), d.height()) == (w, h))
            .then(|| copy_picture(d, spare_yuv, w, h))
            .flatten();
        // SAFETY: reading a plain integer field of a frame the decoder just filled.
        let error_flags = unsafe { (*d.as_ptr()).decode_error_flags };
        let corrupt = d.is_corrupt() || error_flags != 0;
        let duration = d.packet().duration;
        let pts = match d.pts() {
            Some(p) => Some(p),
            None => self.untimed.pop_front().or(d.timestamp()),
        };
        let picture = match decoded {
            Some(f) => ClipPicture::Yuv(f),
            None => ClipPicture::Rgb(self.rgb(spare_rgb)?),
        };
        Ok(DecodedFrame {
            picture,
            pts,
            duration,
            fault: corrupt.then_some(Fault::Corrupt),
        })
    }

    /// The decoded frame converted to RGB in the source's size.
    fn rgb(&mut self, spare: Option<Vec<u8>>) -> Result<RgbImage> {
        let (w, h) = self.size;
        let d = &self.decoded;
        let full = full_range(d);
        let conv = match &mut self.to_rgb {
            Some(c)
                if c.input().format == d.format()
                    && c.input().width == d.width()
                    && c.input().height == d.height()
                    && self.to_rgb_full == full =>
            {
                c
            }
            slot => {
                let mut made = scaling::Context::get(
                    d.format(),
                    d.width(),
                    d.height(),
                    Pixel::RGB24,
                    w,
                    h,
                    scaling::Flags::BILINEAR,
                )
                .map_err(|e| video_err(self.path, "no colour converter", e))?;
                if full && !super::picture::reads_full_range(&mut made) {
                    return Err(crate::Error::Video {
                        path: self.path.to_path_buf(),
                        reason: "FFmpeg's scaler cannot read its full-range pictures".into(),
                    });
                }
                self.to_rgb_full = full;
                slot.insert(made)
            }
        };
        if super::picture::packs_exactly(conv) {
            // Straight into the image's buffer; through FFmpeg's frame and a copy should that
            // fail.
            let mut buf = spare.unwrap_or_default();
            if super::picture::scale_packed(conv, d, &mut buf).is_some() {
                if let Some(img) = RgbImage::from_raw(w, h, buf) {
                    return Ok(img);
                }
            }
            return self.rgb_through_frame(None);
        }
        self.rgb_through_frame(spare)
    }

    /// The decoded frame converted to RGB into FFmpeg's own frame, then copied out (`rgb` sets
    /// the converter up first).
    fn rgb_through_frame(&mut self, spare: Option<Vec<u8>>) -> Result<RgbImage> {
        let conv = self.to_rgb.as_mut().ok_or_else(|| Error::Engine {
            reason: "no colour converter".into(),
        })?;
        conv.run(&self.decoded, &mut self.rgb_frame)
            .map_err(|e| video_err(self.path, "cannot convert a frame", e))?;
        rgb_image_of(&self.rgb_frame, spare)
    }

    /// Checks a frame's time against the packets sent. Once the decoder has reported an error, a
    /// frame with a later time proves the earlier ones will never come: they go out first as
    /// covered stand-ins. Accounting stops as soon as packet and frame times do not line up, or
    /// earlier times are missing with no error to explain them (frames out of order, duplicated
    /// timestamps), so that a clip the decoder reads cleanly never gets a frame it does not have.
    fn account(&mut self, pts: Option<i64>) {
        if !self.tracking_lost {
            return;
        }
        let Some(t) = pts.filter(|t| self.expected.contains_key(t)) else {
            return self.stop_accounting();
        };
        let lost: Vec<(i64, i64)> = self.expected.range(..t).map(|(p, d)| (*p, *d)).collect();
        if !lost.is_empty() && self.decode_errors == 0 {
            return self.stop_accounting();
        }
        for (p, d) in lost {
            self.expected.remove(&p);
            self.push_lost(p, d);
        }
        self.expected.remove(&t);
    }

    /// Queues a covered stand-in for a frame the decoder could not produce.
    fn push_lost(&mut self, pts: i64, duration: i64) {
        self.lost_frames += 1;
        self.frames += 1;
        let (w, h) = self.size;
        self.ready.push_back(Event::Frame(DecodedFrame {
            picture: ClipPicture::Rgb(RgbImage::new(w, h)),
            pts: Some(pts),
            duration,
            fault: Some(Fault::Lost),
        }));
    }
}

/// Whether a decoded picture's samples span the full 0 to 255 (JPEG's range) rather than video's
/// 16 to 235. FFmpeg says so by the frame's colour range, and for some decoders (H.264, HEVC) by a
/// `yuvj` pixel format as well. VP9 and AV1 full-range streams decode as plain `yuv420p`, which
/// FFmpeg's scaler reads as video range unless told otherwise (see `picture::reads_full_range`).
/// A picture in the range the encoder writes is kept as decoded; one in the other range is
/// converted like any other format.
fn full_range(d: &frame::Video) -> bool {
    d.color_range() == ff::color::Range::JPEG || d.format() == Pixel::YUVJ420P
}

/// Whether a clip is written in full range: where its stream says its pictures are (many IP
/// cameras' H.264), so that they are kept as decoded, their levels as they were, and their frames
/// in flight stay 4:2:0 (as RGB, a 1080p frame in flight took twice the memory: 45 MB more at
/// the fast preset on a full-range copy of crowd_1080p).
pub(super) fn full_range_stream(decoder: &ff::decoder::Video) -> bool {
    decoder.color_range() == ff::color::Range::JPEG || decoder.format() == Pixel::YUVJ420P
}

/// The frame's pixels as an RgbImage, rows copied once past the stride padding (no zero fill
/// first: this runs for every frame), into a recycled buffer when one is at hand.
pub(super) fn rgb_image_of(src: &frame::Video, recycled: Option<Vec<u8>>) -> Result<RgbImage> {
    let (w, h) = (src.width() as usize, src.height() as usize);
    let (stride, data) = (src.stride(0), src.data(0));
    let mut out = recycled.unwrap_or_default();
    out.clear();
    out.reserve_exact(w * h * 3);
    for y in 0..h {
        out.extend_from_slice(&data[y * stride..y * stride + w * 3]);
    }
    RgbImage::from_raw(w as u32, h as u32, out).ok_or_else(|| Error::Engine {
        reason: "a converted frame is smaller than its size".into(),
    })
}

/// The format a decoded picture of format `decoded` is copied in ([`copy_picture`]): 8-bit
/// 4:2:0 (FFmpeg's full-range `yuvj` variant laid out alike) as YUV420P, 10-bit 4:2:0 as it is;
/// `None` for the others, which go to RGB.
pub(super) fn copy_format(decoded: Pixel) -> Option<Pixel> {
    match decoded {
        Pixel::YUV420P | Pixel::YUVJ420P => Some(Pixel::YUV420P),
        Pixel::YUV420P10LE => Some(Pixel::YUV420P10LE),
        _ => None,
    }
}

/// A copy of a decoded 4:2:0 picture's pixels (not its side data: closed captions, for one,
/// would ride along into the output through x264), in its [`copy_format`], into a recycled
/// frame when one is at hand.
pub(super) fn copy_picture(
    d: &frame::Video,
    spare: Option<frame::Video>,
    w: u32,
    h: u32,
) -> Option<frame::Video> {
    let format = copy_format(d.format())?;
    if (d.width(), d.height()) != (w, h) {
        return None;
    }
    let fits = |f: &frame::Video| (f.format(), f.width(), f.height()) == (format, w, h);
    let mut copy: frame::Video = spare
        .filter(fits)
        .and_then(|mut f| super::encode::writable(&mut f).then_some(f))
        .unwrap_or_else(|| frame::Video::new(format, w, h));
    // SAFETY: reading three pointer fields of a frame we own.
    let planes = unsafe { (*copy.as_ptr()).data };
    if !fits(&copy) || planes[..3].iter().any(|p| p.is_null()) {
        // Out of memory for the copy's planes.
        return None;
    }
    let (Ok(iw), Ok(ih)) = (std::ffi::c_int::try_from(w), std::ffi::c_int::try_from(h)) else {
        return None;
    };
    // SAFETY: both frames hold allocated 4:2:0 planes of `w` x `h` pixels in `format` (YUV420P
    // and YUVJ420P lay their planes out alike; `copy_format` pairs only those, or a format with
    // itself), and av_image_copy copies each of the three planes row by row within those sizes,
    // by each frame's own line sizes.
    unsafe {
        let (dst, src) = (copy.as_mut_ptr(), d.as_ptr());
        ff::ffi::av_image_copy(
            (*dst).data.as_mut_ptr(),
            (*dst).linesize.as_mut_ptr(),
            (*src).data.as_ptr() as *mut *const u8,
            (*src).linesize.as_ptr(),
            format.into(),
            iw,
            ih,
        );
    }
    copy.set_color_range(if full_range(d) {
        ff::color::Range::JPEG
    } else {
        ff::color::Range::MPEG
    });
    Some(copy)
}

/// How far short of its declared end an input's data may stop and still count as whole: muxers
/// round, and count the last packet's duration or not.
const END_SLACK_SECONDS: f64 = 1.0;

/// The duration of `ictx` in seconds where its header declares one (an MP4's index, Matroska's
/// segment duration), `None` where FFmpeg worked it out from the timestamps it read (MPEG-TS),
/// which says nothing about data that is not there. (FFmpeg flags a fragmented MP4's and an
/// AVI's durations as declared too, but works them out from the fragments or chunks present, so
/// a cut there shows as nothing missing.) The duration alone, not added
/// to the first timestamp: a muxer that wrote the end time instead of the length then makes a
/// cut-short file look whole, never a whole file look cut short.
pub(super) fn declared_end(ictx: &format::context::Input) -> Option<f64> {
    // SAFETY: reading a plain field of an input context that `ictx` keeps open.
    let method = unsafe { (*ictx.as_ptr()).duration_estimation_method };
    let from_header = method == ff::ffi::AVDurationEstimationMethod::AVFMT_DURATION_FROM_STREAM;
    let duration = ictx.duration();
    (from_header && duration > 0 && duration != ff::ffi::AV_NOPTS_VALUE)
        .then(|| duration as f64 / f64::from(ff::ffi::AV_TIME_BASE))
}

/// Video frames an input's index lists beyond the packets read, when they are more than
/// [`END_SLACK_SECONDS`] of video at `fps`; 0 otherwise. The slack is for AVI, whose header also
/// counts the empty chunks a muxer writes for skipped frames, which hold no packet.
pub(super) fn unread_frames(listed: u64, read: u64, fps: f64) -> u64 {
    let missing = listed.saturating_sub(read);
    let slack = if fps.is_finite() && fps > 0.0 {
        (fps * END_SLACK_SECONDS).ceil() as u64
    } else {
        1
    };
    if missing > slack {
        missing
    } else {
        0
    }
}

/// Seconds of an input's declared duration beyond the end of the data read from it (see
/// [`Source::data_end`]), in milliseconds; 0 within [`END_SLACK_SECONDS`].
pub(super) fn unread_seconds(declared: Option<f64>, data_end: Option<f64>) -> f64 {
    let missing = declared.unwrap_or(0.0) - data_end.unwrap_or(0.0);
    if missing > END_SLACK_SECONDS {
        (missing * 1000.0).round() / 1000.0
    } else {
        0.0
    }
}

/// How an input's picture stream is meant to be shown, as its file says before the first frame:
/// what detection must see (an upright picture, square pixels, one instant per field) differs
/// from what is stored.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Showing {
    /// Display rotation, degrees clockwise ([`rotation_of`]).
    pub rotation: u32,
    /// How many times as wide as high the stored pixels are shown ([`pixel_aspect_of`]).
    pub pixel_aspect: f32,
    /// Whether the frames are interlaced ([`interlaced_of`]).
    pub interlaced: bool,
    /// How the samples encode light ([`transfer_of`]).
    pub transfer: crate::engine::hdr::Transfer,
}

impl Showing {
    /// How `stream` of `ictx` is shown.
    pub(super) fn of(ictx: &format::context::Input, stream: &format::stream::Stream) -> Showing {
        Showing {
            rotation: rotation_of(stream),
            pixel_aspect: pixel_aspect_of(ictx, stream),
            interlaced: interlaced_of(stream),
            transfer: transfer_of(stream),
        }
    }
}

/// How long the container says a clip is, held against what was read to tell a clip read
/// whole from one cut short.
pub(super) struct Length {
    /// The video frames the container's index lists (0 where it keeps no count).
    listed: u64,
    /// The stream's average frame rate.
    fps: f64,
    /// The duration its header declares, for containers that keep no count ([`declared_end`]).
    declared: Option<f64>,
}

impl Length {
    /// What `ictx` says of its length, and of `stream`'s.
    pub(super) fn of(ictx: &format::context::Input, stream: &format::stream::Stream) -> Length {
        Length {
            listed: u64::try_from(stream.frames()).unwrap_or(0),
            fps: f64::from(stream.avg_frame_rate()),
            declared: declared_end(ictx),
        }
    }

    /// Frames ([`unread_frames`]) and seconds ([`unread_seconds`]) of the clip that `source`
    /// never read.
    pub(super) fn unread(&self, source: &Source) -> (u64, f64) {
        (
            unread_frames(self.listed, source.video_packets, self.fps),
            unread_seconds(self.declared, source.data_end),
        )
    }
}

/// Stream display rotation, degrees clockwise, from the stream's display matrix.
pub(super) fn rotation_of(stream: &format::stream::Stream) -> u32 {
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

/// How many times as wide as they are high the stream's stored pixels are shown: its sample
/// aspect ratio as FFmpeg reads it (the container's where it gives one, else the codec's),
/// clamped to what the engine takes; 1 where none is given.
pub(super) fn pixel_aspect_of(
    ictx: &format::context::Input,
    stream: &format::stream::Stream,
) -> f32 {
    // SAFETY: `ictx` is an open input and `stream` one of its streams, both valid for the call;
    // av_guess_sample_aspect_ratio only reads them, and takes a null frame.
    let r = unsafe {
        ff::ffi::av_guess_sample_aspect_ratio(
            ictx.as_ptr() as *mut _,
            stream.as_ptr() as *mut _,
            std::ptr::null_mut(),
        )
    };
    if r.num <= 0 || r.den <= 0 {
        return 1.0;
    }
    let most = crate::engine::pool::MAX_PIXEL_ASPECT;
    (r.num as f32 / r.den as f32).clamp(1.0 / most, most)
}

/// Whether the stream says its frames are interlaced (a field order, top or bottom first); a
/// stream that says nothing, or progressive, is not.
pub(super) fn interlaced_of(stream: &format::stream::Stream) -> bool {
    use ff::ffi::AVFieldOrder::*;
    // SAFETY: reading a plain field of the stream's codec parameters, which the stream owns and
    // keeps for as long as it is borrowed here.
    let order = unsafe { (*(*stream.as_ptr()).codecpar).field_order };
    matches!(order, AV_FIELD_TT | AV_FIELD_BB | AV_FIELD_TB | AV_FIELD_BT)
}

/// How the stream says its samples encode light: PQ and HLG are HDR, everything else (and a
/// stream that says nothing) is taken as SDR.
pub(super) fn transfer_of(stream: &format::stream::Stream) -> crate::engine::hdr::Transfer {
    use crate::engine::hdr::Transfer;
    use ff::ffi::AVColorTransferCharacteristic::*;
    // SAFETY: reading a plain field of the stream's codec parameters, which the stream owns and
    // keeps for as long as it is borrowed here.
    match unsafe { (*(*stream.as_ptr()).codecpar).color_trc } {
        AVCOL_TRC_SMPTE2084 => Transfer::Pq,
        AVCOL_TRC_ARIB_STD_B67 => Transfer::Hlg,
        _ => Transfer::Sdr,
    }
}

/// The stream's display matrix side data, to write back on the output.
pub(super) fn display_matrix(stream: &format::stream::Stream) -> Option<Vec<u8>> {
    stream
        .side_data()
        .find(|sd| sd.kind() == codec::packet::side_data::Type::DisplayMatrix)
        .map(|sd| sd.data().to_vec())
}

/// The best video stream's index, and a decoder for it within the pixel budget, with `threads`
/// frame threads (0: FFmpeg chooses).
pub(super) fn open_decoder(
    ictx: &format::context::Input,
    path: &Path,
    max_pixels: u64,
    threads: usize,
) -> Result<(usize, ff::decoder::Video)> {
    let ist = ictx
        .streams()
        .best(media::Type::Video)
        .ok_or_else(|| Error::Unsupported {
            path: path.to_path_buf(),
            reason: "the file has no video stream".into(),
        })?;
    let mut ctx = codec::context::Context::from_parameters(ist.parameters())
        .map_err(|e| video_err(path, "bad stream parameters", e))?;
    super::open::limit_decoder(&mut ctx, max_pixels);
    ctx.set_threading(codec::threading::Config {
        kind: codec::threading::Type::Frame,
        count: threads,
        ..Default::default()
    });
    let decoder = ctx
        .decoder()
        .video()
        .map_err(|e| video_err(path, "no decoder for the video stream", e))?;
    let (w, h) = (decoder.width(), decoder.height());
    if w == 0 || h == 0 {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "the video stream has no picture size (or its first frame is larger than the limit of {:.1} megapixels, raised with --max-megapixels)",
                max_pixels as f64 / 1e6
            ),
        });
    }
    crate::image_io::check_pixels(path, w, h, max_pixels)?;
    Ok((ist.index(), decoder))
}

#[cfg(test)]
mod tests {
    use super::{unread_frames, unread_seconds};

    #[test]
    fn a_shortfall_counts_only_beyond_a_second() {
        // 25 fps: up to 25 frames missing is within the slack, 26 is not.
        assert_eq!(unread_frames(101, 100, 25.0), 0);
        assert_eq!(unread_frames(125, 100, 25.0), 0);
        assert_eq!(unread_frames(126, 100, 25.0), 26);
        // More read than listed, or no frame rate known.
        assert_eq!(unread_frames(90, 100, 25.0), 0);
        assert_eq!(unread_frames(102, 100, f64::NAN), 2);
        assert_eq!(unread_frames(101, 100, 0.0), 0);
        assert_eq!(unread_seconds(Some(30.16), Some(29.5)), 0.0);
        assert_eq!(unread_seconds(Some(30.16), Some(13.52)), 16.64);
        // Nothing declared (MPEG-TS), or data past the declared end.
        assert_eq!(unread_seconds(None, Some(13.52)), 0.0);
        assert_eq!(unread_seconds(Some(10.0), Some(3610.0)), 0.0);
        assert_eq!(unread_seconds(Some(4.0), None), 4.0);
    }
}

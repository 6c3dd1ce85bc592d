//! Clips in, redacted clips out: decode → detect → hold → redact → encode.
//!
//! Why FFmpeg's libraries in-process (the `ffmpeg-next` crate against the system's libav* 5.x)
//! rather than the `ffmpeg` command as a subprocess: a raw-frame pipe carries no timestamps, so a
//! variable-frame-rate clip would come out retimed; in-process, every decoded frame keeps its
//! `pts` and is encoded with it by construction. Audio streams are copied packet by packet
//! (bit-exact, with their own timestamps; encoded again as AAC where the output's container
//! cannot carry them, see `audio`), subtitle, data and attachment streams are dropped
//! (they can carry positions or pictures that are not redacted; see `keep_stream`), rotation side
//! data is read and written back, and nothing but the pixels needs to cross a process boundary.
//! The cost is a build-time dependency on libav*-dev and clang, which `scripts/deps` installs.
//!
//! A clip goes back into its own container where FFmpeg can write one that carries the
//! encoder's output; what NVRs and DVRs export and FFmpeg only reads (Dahua DAV, raw H.264 and
//! HEVC, program streams, Windows Media) is written as MP4 under the input's name with `.mp4`
//! added ([`READ_ONLY_EXTENSIONS`]), from zero: those files time their frames from wherever the
//! recorder's clock stood.
//!
//! Stages overlap on three kinds of thread joined by bounded queues: the calling thread demuxes,
//! decodes (FFmpeg's frame threads underneath), holds/tracks and paints; `workers` detection
//! threads each run their own ONNX Runtime sessions (1 intra-op thread each: the workers own the
//! cores; at the fast preset on frames of 1080p and up, half as many workers, since x264 sets the
//! pace there: `VideoOptions::engine_for_frames`); one encoder thread encodes and muxes, so that decoding the next frames overlaps encoding
//! the last ones. Frames in flight are bounded (workers × 2, the tracker's look-ahead and the
//! encoder's queue: 6 frames for a file, 2 for a live stream), so memory stays flat however long
//! the clip is. A frame in flight is its decoded YUV picture, not an RGB copy (see `picture`): a
//! detection worker converts the frames it detects, into a buffer of its own.
//!
//! Fail closed: a frame the decoder flags as corrupt, or whose detection fails, is written fully
//! redacted and counted; a clip whose container cannot be read fails as a whole and leaves no
//! output.

mod audio;
pub mod bench;
mod decode;
mod encode;
pub mod live;
mod open;
mod picture;
mod transcode;

use std::path::Path;

use crate::detect::DetectConfig;
use crate::track::TrackConfig;

pub use transcode::{frame_count_estimate, redact_clip, render_clip, Boxes};

/// File extensions treated as clips, with the FFmpeg muxer used to write them.
pub const VIDEO_EXTENSIONS: [(&str, &str); 10] = [
    ("mp4", "mp4"),
    ("m4v", "mp4"),
    ("mov", "mov"),
    ("mkv", "matroska"),
    ("webm", "webm"),
    ("avi", "avi"),
    ("ts", "mpegts"),
    ("mts", "mpegts"),
    ("3gp", "3gp"),
    ("flv", "flv"),
];

/// Clip extensions that are read but not written as such: Dahua NVR exports (`dav`), Blu-ray
/// and camcorder transport streams (`m2ts`), MPEG program streams (`mpg`, `mpeg`), Windows Media
/// (`wmv`), the raw H.264 and HEVC streams that DVRs and NVRs export (`h264`, `264`, `h265`,
/// `265`, `hevc`), the motion JPEG that IP cameras send over HTTP, saved as it came (`mjpeg`,
/// `mjpg`), and GIFs, animated or not, which camera apps offer for sharing (`gif`: bystander
/// writes no GIF, and a still one becomes a one-frame clip). Their redacted copy is an MP4 named after the input with `.mp4` added
/// ([`written_as`]), its timestamps moved to start at zero: their own containers cannot be
/// written, cannot carry the encoder's output, or carry no timestamps.
pub const READ_ONLY_EXTENSIONS: [&str; 13] = [
    "dav", "m2ts", "mpg", "mpeg", "wmv", "h264", "264", "h265", "265", "hevc", "mjpeg", "mjpg",
    "gif",
];

/// The encoder a clip written with `muxer` gets when none is asked for: libx264, except for
/// WebM, which takes only VP8, VP9 and AV1.
pub fn default_encoder(muxer: &str) -> &'static str {
    match muxer {
        "webm" => "libvpx-vp9",
        _ => "libx264",
    }
}

/// The muxer for a clip path, by extension.
pub fn muxer_for(path: &Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    VIDEO_EXTENSIONS
        .iter()
        .find(|(e, _)| *e == ext)
        .map(|(_, m)| *m)
}

/// Whether `path` has a clip extension, written as such or read only.
pub fn is_video_path(path: &Path) -> bool {
    muxer_for(path).is_some() || is_read_only(path)
}

/// Whether `path` has one of the [`READ_ONLY_EXTENSIONS`].
fn is_read_only(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| READ_ONLY_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// The name a clip's redacted copy is written under: its own, or for a clip of the
/// [`READ_ONLY_EXTENSIONS`] its own with `.mp4` added (`cam.h264` is written as `cam.h264.mp4`,
/// which no other input's copy can be named).
pub fn written_as(path: &Path) -> std::path::PathBuf {
    if is_read_only(path) {
        let mut name = path.as_os_str().to_os_string();
        name.push(".mp4");
        name.into()
    } else {
        path.to_path_buf()
    }
}

/// How a clip is encoded and tracked.
#[derive(Clone, Debug, serde::Serialize)]
pub struct VideoOptions {
    /// FFmpeg encoder name (libx264, libx265, libvpx-vp9, ...); `None` picks the output
    /// container's own ([`default_encoder`]: libx264, or VP9 for WebM).
    pub encoder: Option<String>,
    /// Constant rate factor for encoders that take one.
    pub crf: u8,
    /// Encoder preset for encoders that take one.
    pub preset: String,
    /// Copy container and stream metadata (location, device, dates); stripped by default.
    pub keep_metadata: bool,
    /// Copy text subtitle streams (they can carry GPS positions: dashcams and drones caption
    /// their position every second); dropped by default. Bitmap subtitles (DVD, PGS, DVB) are
    /// pictures that can show a face and are dropped whatever this says.
    pub keep_subtitles: bool,
    /// Drop the sound: a doorbell's or a dashcam's microphone records passers-by talking, which
    /// redacting the picture does not hide. Copied packet for packet by default.
    pub drop_audio: bool,
    /// See [`crate::engine::EngineConfig::low_memory`].
    pub low_memory: bool,
    /// The pixel budget of a frame (see [`crate::image_io::DEFAULT_MAX_PIXELS`]): a clip whose
    /// stream is larger is refused, a frame that grows past it mid-stream is covered whole.
    pub max_pixels: u64,
    /// Temporal hold and back-fill.
    pub track: TrackConfig,
    /// Run detection on every Nth frame only; the tracker carries masks in between.
    pub detect_every: usize,
    /// Change- and track-gated detection (see [`crate::engine::gate`]; off by default, on in
    /// [`VideoOptions::for_detect`] for the fast preset).
    pub gate: crate::engine::gate::GateConfig,
    /// Detection threads (each with its own sessions).
    pub workers: usize,
    /// Threads the clip may keep busy; 0 means one per core. Each detection worker gets
    /// `budget / workers` ONNX Runtime threads, and FFmpeg's decoder and encoder get `budget`
    /// threads each unless [`VideoOptions::codec_threads`] says fewer (not FFmpeg's own choice,
    /// which for x264 is 1.5 per core: every frame thread holds frames).
    pub thread_budget: usize,
    /// FFmpeg's decoder and encoder threads; `None`: one per thread of the budget. See
    /// [`VideoOptions::codecs_paced_by`] for when one is enough.
    pub codec_threads: Option<usize>,
    /// Stop after this many frames (for benchmarks); `None` reads the whole clip.
    pub max_frames: Option<usize>,
    /// Live streams: encode without look-ahead or B-frames (x264's `zerolatency`), so the encoder
    /// adds no frames of delay. Decides bytes, but only live runs set it, and they write no report.
    #[serde(skip)]
    pub zero_latency: bool,
    /// Live streams: a key frame at least every this many frames (the encoder's GOP), so that a
    /// viewer joining the stream, or a segment starting, waits no longer for a picture; `None`:
    /// the encoder's default (x264: 250 frames). Only live runs set it.
    #[serde(skip)]
    pub keyframe_interval: Option<u32>,
    /// A stop switch: once it is on, the clip stops at its next frame and nothing is written
    /// (see [`crate::batch::RunOptions::stop`]). Not a setting of the output.
    #[serde(skip)]
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl Default for VideoOptions {
    fn default() -> Self {
        VideoOptions {
            encoder: None,
            crf: 23,
            preset: "veryfast".into(),
            keep_metadata: false,
            keep_subtitles: false,
            drop_audio: false,
            low_memory: false,
            max_pixels: crate::image_io::DEFAULT_MAX_PIXELS,
            track: TrackConfig::default(),
            detect_every: 1,
            gate: crate::engine::gate::GateConfig::default(),
            workers: crate::cores(),
            thread_budget: 0,
            codec_threads: None,
            max_frames: None,
            zero_latency: false,
            keyframe_interval: None,
            stop: None,
        }
    }
}

impl VideoOptions {
    /// The options of a clip file detected with `detect`: the preset's frame schedule (the fast
    /// preset detects every second frame, see [`crate::engine::default_detect_every`]) and gate
    /// (the fast preset gates files, see [`crate::engine::default_file_gating`], with the
    /// look-ahead that takes), everything else as [`VideoOptions::default`].
    ///
    /// ```
    /// use bystander::detect::{DetectConfig, Recall};
    /// use bystander::video::VideoOptions;
    /// let fast = VideoOptions::for_detect(&DetectConfig { recall: Recall::Fast, ..Default::default() });
    /// assert!(fast.gate.enabled && fast.detect_every == 2);
    /// assert!(fast.track.backfill >= fast.gate.sweep_every);
    /// assert!(!VideoOptions::for_detect(&DetectConfig::default()).gate.enabled);
    /// ```
    pub fn for_detect(detect: &DetectConfig) -> VideoOptions {
        let mut v = VideoOptions {
            detect_every: crate::engine::default_detect_every(detect),
            ..Default::default()
        };
        v.gate.enabled = crate::engine::default_file_gating(detect);
        v.held_across_skips().swept_back()
    }

    /// These options with the hold long enough to bridge the frames `detect_every` skips.
    pub fn held_across_skips(mut self) -> VideoOptions {
        self.track.hold = self.track.hold.max(self.detect_every.saturating_sub(1));
        self
    }

    /// These options with one FFmpeg thread for the decoder and one for the encoder where
    /// detection sets the pace: at the balanced and max presets, detecting every frame, ungated.
    /// There detection takes most of both cores (crowd_1080p: about 5 frames a second, where one
    /// x264 thread at veryfast encodes 1080p at 20 or more), so a second codec thread shortens
    /// nothing, and each of FFmpeg's frame threads holds frames of its own: about 34 MB at 1080p,
    /// at the same speed, size and quality (x264's frame threads limit its motion search slightly,
    /// so the bytes differ; BENCHMARKS.md, "Codec threads"). The fast preset, a gated run
    /// or a skipping schedule is paced by the encoder and keeps the budget. An explicit
    /// [`VideoOptions::codec_threads`] is left as it is.
    pub fn codecs_paced_by(mut self, detect: &DetectConfig) -> VideoOptions {
        if detect.recall != crate::detect::Recall::Fast
            && self.detect_every == 1
            && !self.gate.enabled
        {
            self.codec_threads.get_or_insert(1);
        }
        self
    }

    /// These options with a look-ahead of at least the gate's sweep period, so that in a file a
    /// face first found by a sweep is also covered on every frame since the previous sweep (see
    /// [`crate::engine::gate`]). Live streams, which have no look-ahead to spare, do not take it.
    pub fn swept_back(mut self) -> VideoOptions {
        if self.gate.enabled {
            self.track.backfill = self.track.backfill.max(self.gate.sweep_every);
        }
        self
    }

    /// Checks every range, naming the setting and what is allowed.
    pub fn validate(&self) -> crate::Result<()> {
        self.track.validate()?;
        self.gate.validate()?;
        crate::engine::check_range("detect-every", self.detect_every, 1, 100, "1 to 100")?;
        crate::engine::check_range("workers", self.workers, 1, 256, "1 to 256")?;
        if let Some(n) = self.codec_threads {
            crate::engine::check_range("codec threads", n, 1, 256, "1 to 256")?;
        }
        let crf_max = if self
            .encoder
            .as_deref()
            .is_some_and(|e| e.starts_with("libvpx"))
        {
            63
        } else {
            51
        };
        if u32::from(self.crf) > crf_max {
            return Err(crate::Error::InvalidSetting {
                name: "crf",
                value: self.crf.to_string(),
                allowed: "0 to 51 (0 to 63 for VP8/VP9)",
            });
        }
        Ok(())
    }

    /// The engine settings for a clip detected with `detect` and redacted with `redact`, displayed
    /// rotated `rotation` degrees.
    pub fn engine(
        &self,
        detect: &DetectConfig,
        redact: &crate::redact::RedactConfig,
        rotation: u32,
    ) -> crate::engine::EngineConfig {
        let workers = self.workers.max(1);
        crate::engine::EngineConfig {
            detect: detect.clone(),
            redact: redact.clone(),
            track: self.track,
            detect_every: self.detect_every.max(1),
            workers,
            intra_threads: (self.threads() / workers).max(1),
            rotation,
            pixel_aspect: 1.0,
            interlaced: false,
            transfer: crate::engine::hdr::Transfer::Sdr,
            gate: self.gate,
            low_memory: self.low_memory,
        }
    }

    /// [`VideoOptions::engine`] for a file whose frames are `w` x `h`, with fewer detection workers
    /// where the encoder sets the pace on large frames: at the fast preset detecting every second
    /// frame or less often, on frames of 1920 x 1080 pixels or more, half the budget's threads
    /// detect (at least one, one ONNX Runtime thread each) and the codecs keep the budget.
    ///
    /// Why half: there x264 at veryfast spends more CPU on a frame than the fast preset's
    /// detection does (crowd_1080p, sampled with `perf`: x264 46 % of the run's CPU, ONNX
    /// Runtime 30 %), so half the cores meet detection's demand, and a second worker on two cores
    /// only takes turns with x264 and holds buffers of its own. Measured on 2 cores, one worker
    /// against two (peaks in KiB as `/usr/bin/time` prints them): crowd_1080p 3 % faster and
    /// 23,508–38,584 KiB lower, at 1440p as fast and 31,340–38,536 KiB lower, at 4K 1–2.5 % faster
    /// and 63,008–63,920 KiB lower; at 720p, where detection's share is the
    /// larger, one worker was 5–8 % slower, and on cars_432p 23–30 % slower, so smaller frames
    /// keep a worker per thread (BENCHMARKS.md, "One detection worker on large frames at fast").
    /// The schedule does not change: the same frames are detected, and the gate keeps a change
    /// in view for as many frames as are in flight, which fewer workers make fewer.
    pub fn engine_for_frames(
        &self,
        detect: &DetectConfig,
        redact: &crate::redact::RedactConfig,
        rotation: u32,
        (w, h): (u32, u32),
    ) -> crate::engine::EngineConfig {
        let mut cfg = self.engine(detect, redact, rotation);
        let large = u64::from(w) * u64::from(h) >= 1920 * 1080;
        if large && detect.recall == crate::detect::Recall::Fast && self.detect_every >= 2 {
            cfg.workers = cfg.workers.min((self.threads() / 2).max(1));
            cfg.intra_threads = 1;
        }
        cfg
    }

    /// Spends a budget of `jobs` threads on a clip: one detection worker per thread, each with
    /// one ONNX Runtime thread, and `jobs` decoder and encoder threads (0 stands for a budget of
    /// every core).
    pub fn set_thread_budget(&mut self, jobs: usize) {
        let jobs = jobs.max(1);
        self.workers = jobs;
        self.thread_budget = if jobs >= crate::cores() { 0 } else { jobs };
    }

    /// FFmpeg's decoder and encoder threads: [`VideoOptions::codec_threads`], at most the
    /// budget, or the budget.
    pub fn ffmpeg_threads(&self) -> usize {
        self.codec_threads
            .unwrap_or_else(|| self.threads())
            .clamp(1, self.threads())
    }

    /// The threads the clip may keep busy: the budget, or every core when it is 0.
    pub fn threads(&self) -> usize {
        match self.thread_budget {
            0 => crate::cores(),
            b => b,
        }
    }
}

/// A stream of the input that the output does not carry, and why.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DroppedStream {
    /// Index of the stream in the input.
    pub index: usize,
    /// What it is: subtitle, data, attachment, video (a second picture stream, cover art).
    pub kind: String,
    /// FFmpeg's codec name.
    pub codec: String,
    /// Why it was dropped.
    pub reason: String,
}

/// A sound stream of the input that the output's container cannot carry as it is, encoded
/// again instead of dropped.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ReencodedStream {
    /// Index of the stream in the input.
    pub index: usize,
    /// FFmpeg's name of its codec in the input (`pcm_alaw`: G.711 A-law).
    pub codec: String,
    /// FFmpeg's name of the codec it is written in (`aac`).
    pub to: String,
}

/// What happened to one clip.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ClipReport {
    /// Streams of the input left out of the output.
    pub dropped_streams: Vec<DroppedStream>,
    /// Sound streams of the input encoded again, as the output's container cannot carry them.
    pub reencoded_streams: Vec<ReencodedStream>,
    /// Frames written (equal to frames decoded).
    pub frames: usize,
    /// Frames detection ran on.
    pub detected_frames: usize,
    /// Of those, how many the change gate let search the whole frame, or only regions of it.
    pub gate: crate::engine::gate::GateStats,
    /// Frames written fully redacted because they were corrupt or detection failed.
    pub fail_closed_frames: usize,
    /// Packets the decoders rejected: the picture's, and the sound's where it is encoded again
    /// (silence takes its place).
    pub decode_errors: usize,
    /// Frames the decoder never produced (corrupt packets); written as covered frames at their
    /// timestamps and included in `fail_closed_frames`.
    pub lost_frames: usize,
    /// Packets of any stream that the demuxer found damaged and skipped.
    pub unreadable_packets: usize,
    /// Video frames the input's index lists beyond the packets it holds, as in an MP4 cut short
    /// while it was copied (its demuxer ends where the data does); 0 where the container keeps
    /// no count, and where they are a second of video or less. They are not in the output, which
    /// is as much shorter than the input claims.
    pub unread_frames: u64,
    /// Seconds of the duration the input's header declares beyond the end of its data (more
    /// than a second), which also tells a cut-short Matroska or WebM file, whose index lists no
    /// frames; 0 where FFmpeg works the duration out from the data itself (MPEG-TS, fragmented
    /// MP4).
    pub unread_seconds: f64,
    /// Detections of faces over all frames (detector output, before hold).
    pub faces: usize,
    /// Detections of plates.
    pub plates: usize,
    /// Frames with a detection that the previous or next frame's detections lack.
    pub flicker_frames_without_hold: usize,
    /// Frames with a detection that the previous or next frame's redacted boxes (after hold and
    /// back-fill) do not cover.
    pub flicker_frames_with_hold: usize,
    /// Display rotation of the video stream in degrees clockwise (0, 90, 180, 270).
    pub rotation: u32,
    /// How many times as wide as high the stream's stored pixels are shown (its sample aspect
    /// ratio, 1 for square pixels): detection ran on frames stretched to that shape.
    pub pixel_aspect: f32,
    /// Whether the stream is interlaced: detection ran on each field.
    pub interlaced: bool,
    /// Frames of a stream not said to be interlaced that showed combing: detection ran on each
    /// field as well as on the whole frame.
    pub combed_frames: usize,
    /// How the stream's samples encode light: `pq` and `hlg` frames were detected as an SDR
    /// display shows them.
    pub transfer: crate::engine::hdr::Transfer,
    /// Seconds of wall time.
    pub seconds: f64,
    /// Where the time went.
    pub stages: StageTimes,
}

/// Seconds spent in each stage of a clip. Decode, track, redact and encode run on the calling
/// thread, so they add up to its busy time; detection runs on the worker threads, so its figures
/// are summed over workers (thread-seconds) and can exceed the wall time.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct StageTimes {
    /// Demuxing, decoding and conversion to RGB.
    pub decode: f64,
    /// Each model's inference, pre- and post-processing, summed over worker threads.
    pub detect: Vec<ModelTime>,
    /// Detection workers the clip ran with.
    pub detect_workers: usize,
    /// ONNX Runtime threads of each detection worker.
    pub intra_threads: usize,
    /// Hold and back-fill.
    pub track: f64,
    /// Drawing the masks.
    pub redact: f64,
    /// Conversion to the encoder's pixel format, encoding and muxing.
    pub encode: f64,
    /// The calling thread waiting for detection results.
    pub wait_for_detect: f64,
    /// The calling thread waiting for room in the encoder thread's queue (encoding is the
    /// bottleneck when this is large).
    pub wait_for_encode: f64,
}

/// One model's share of detection time.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct ModelTime {
    /// The model's name.
    pub model: String,
    /// Thread-seconds.
    pub seconds: f64,
}

pub use crate::engine::{box_from_upright, upright};

fn video_err(path: &Path, what: &str, e: impl std::fmt::Display) -> crate::Error {
    crate::Error::Video {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    }
}

/// Opens a clip within the pixel budget, with bystander's errors.
fn open_input(path: &Path, max_pixels: u64) -> crate::Result<ffmpeg_next::format::context::Input> {
    match open::input(path, max_pixels) {
        Ok(i) => Ok(i),
        Err(open::OpenError::TooLarge(width, height)) => Err(crate::Error::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            max_pixels,
        }),
        Err(open::OpenError::Ffmpeg(e)) => Err(video_err(path, "cannot open as a clip", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_extensions_pick_a_muxer() {
        assert_eq!(muxer_for(Path::new("a/B.MKV")), Some("matroska"));
        assert_eq!(muxer_for(Path::new("x.mp4")), Some("mp4"));
        assert!(!is_video_path(Path::new("x.jpg")));
        assert!(is_video_path(Path::new("nvr/cam1.264")));
        assert_eq!(muxer_for(Path::new("nvr/cam1.264")), None);
        assert_eq!(
            written_as(Path::new("nvr/cam1.264")),
            Path::new("nvr/cam1.264.mp4")
        );
        assert_eq!(written_as(Path::new("a/B.MKV")), Path::new("a/B.MKV"));
        let written = written_as(Path::new("x.WMV"));
        assert_eq!(muxer_for(&written), Some("mp4"));
    }

    #[test]
    fn the_fast_preset_gives_large_frames_half_the_budget_for_detection() {
        use crate::detect::Recall;
        let redact = crate::redact::RedactConfig::default();
        let detect = |recall| DetectConfig {
            recall,
            ..Default::default()
        };
        let fast = detect(Recall::Fast);
        let budget = |n| {
            let mut v = VideoOptions::for_detect(&fast);
            v.set_thread_budget(n);
            v
        };
        let split = |v: &VideoOptions, d: &DetectConfig, size| {
            let cfg = v.engine_for_frames(d, &redact, 0, size);
            (cfg.workers, cfg.intra_threads)
        };
        for n in [1, 2, 4, 8] {
            let v = budget(n);
            // Large frames (either way up): half the threads detect, one ONNX Runtime thread each.
            for size in [(1920, 1080), (1080, 1920), (3840, 2160)] {
                let half = (v.threads() / 2).max(1).min(v.workers);
                assert_eq!(split(&v, &fast, size), (half, 1), "{n} {size:?}");
                assert!(half < v.workers || v.workers == 1);
            }
            // Smaller frames, another preset, or detection on every frame: as configured.
            let whole = (v.workers, (v.threads() / v.workers).max(1));
            assert_eq!(split(&v, &fast, (1280, 720)), whole);
            assert_eq!(split(&v, &fast, (1919, 1080)), whole);
            assert_eq!(split(&v, &detect(Recall::Balanced), (1920, 1080)), whole);
            let mut every = v.clone();
            every.detect_every = 1;
            assert_eq!(split(&every, &fast, (1920, 1080)), whole);
        }
    }

    #[test]
    fn codecs_get_one_thread_only_where_detection_sets_the_pace() {
        use crate::detect::Recall;
        let detect = |recall| DetectConfig {
            recall,
            ..Default::default()
        };
        let budget = |n| VideoOptions {
            thread_budget: n,
            ..Default::default()
        };
        for recall in [Recall::Balanced, Recall::Max] {
            let v = budget(2).codecs_paced_by(&detect(recall));
            assert_eq!((v.codec_threads, v.ffmpeg_threads()), (Some(1), 1));
        }
        // Paced by the encoder: the fast preset, a skipping schedule, a gated run.
        let fast = budget(2).codecs_paced_by(&detect(Recall::Fast));
        assert_eq!((fast.codec_threads, fast.ffmpeg_threads()), (None, 2));
        let mut skipping = budget(2);
        skipping.detect_every = 3;
        let mut gated = budget(2);
        gated.gate.enabled = true;
        for v in [skipping, gated] {
            assert_eq!(
                v.codecs_paced_by(&detect(Recall::Balanced)).codec_threads,
                None
            );
        }
        // An explicit choice stays, within the budget.
        let mut chosen = budget(2);
        chosen.codec_threads = Some(8);
        let chosen = chosen.codecs_paced_by(&detect(Recall::Balanced));
        assert_eq!(
            (chosen.codec_threads, chosen.ffmpeg_threads()),
            (Some(8), 2)
        );
        chosen.validate().unwrap();
        let mut zero = budget(2);
        zero.codec_threads = Some(0);
        assert!(zero.validate().is_err());
    }
}

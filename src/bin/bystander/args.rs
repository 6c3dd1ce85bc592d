//! Command-line arguments, and their translation into the library's settings.

use std::path::PathBuf;

use bystander::detect::DetectConfig;
use bystander::options::Options;
use bystander::redact::RedactConfig;
use bystander::{Class, Result};
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bystander",
    version,
    about = "Find faces and licence plates in photos and redact them before they leave the device"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Redact image files and folders (recursively) into OUTDIR; originals are never modified.
    Redact(RedactArgs),
    /// Score coverage of labelled boxes by the masks bystander applies.
    Eval(EvalArgs),
    /// List the shipped models and verify their checksums and the ONNX Runtime library.
    Models,
    /// Redact a clip for real and report frames/s and time per stage.
    Bench(BenchArgs),
    /// Redact one photo or clip with the boxes of a (reviewed, edited) detections file, without
    /// detecting; frames the file does not list are covered whole.
    Render(RenderArgs),
    /// Redact a live camera stream in real time: any FFmpeg URL or - in, a URL, a file or - out
    /// (x264 tuned for zero latency).
    #[cfg(feature = "video")]
    Live(LiveArgs),
}

#[cfg(feature = "video")]
#[derive(Args)]
pub struct LiveArgs {
    /// The stream: an FFmpeg URL (rtsp://, rtmp://, srt://, udp://, tcp://, http(s):// HLS), a
    /// file (see --realtime), or - for standard input in any container FFmpeg probes.
    pub input: String,
    /// Where the redacted stream goes: - (standard output), an FFmpeg URL, or a file (a name
    /// pattern such as rec-%05d.mkv with -f segment).
    #[arg(short, long)]
    pub output: String,
    /// Output container: mpegts, matroska, mp4 (fragmented), flv, rtsp, hls or segment (default:
    /// by the output's scheme or extension, mpegts for -).
    #[arg(short = 'f', long)]
    pub format: Option<String>,
    /// Read a file input at its own frame rate, as a camera sends it.
    #[arg(long)]
    pub realtime: bool,
    /// RTSP transport, for an rtsp:// input and for -f rtsp output.
    #[arg(long, value_parser = ["tcp", "udp"])]
    pub rtsp_transport: Option<String>,
    /// Frames of look-ahead (masks drawn this many frames before a face is first found); each
    /// adds a frame of delay. 0 to 100.
    #[arg(long, default_value_t = 0)]
    pub lookahead: usize,
    /// Seconds the stream may fall behind the camera, or a frame be delayed, before detection is
    /// thinned out (every 2nd, then 4th frame, then the same with lighter plans), and, behind by
    /// twice this on the last rung, frames are covered whole until it catches up (0.05 to 10).
    #[arg(long, default_value_t = 0.5)]
    pub max_lag: f64,
    /// Longest wait between reconnection attempts when a network input drops, seconds
    /// (0.5 to 3600).
    #[arg(long, default_value_t = 30.0)]
    pub max_backoff: f64,
    /// Segment length for -f segment and -f hls, seconds (1 to 3600).
    #[arg(long, default_value_t = 60.0)]
    pub segment_seconds: f64,
    /// Print statistics as JSON lines on stderr (default: one plain line).
    #[arg(long)]
    pub stats: bool,
    /// Seconds between statistics lines (1 to 3600).
    #[arg(long, default_value_t = 60.0)]
    pub stats_interval: f64,
    /// Frames a mask persists after its object's last detection.
    #[arg(long, default_value_t = 8)]
    pub hold: usize,
    /// Detect on every Nth frame at most (the ladder thins out from here).
    #[arg(long)]
    pub detect_every: Option<usize>,
    /// Less memory for some speed, as `redact --low-memory`: one ONNX Runtime session per model
    /// where the models' turns allow it, instead of one per detection worker. On by default where
    /// this process may use under 4 GiB (the machine's memory or its control group's limit).
    #[arg(long, overrides_with = "no_low_memory")]
    pub low_memory: bool,
    /// Never --low-memory, however little memory there is.
    #[arg(long, overrides_with = "low_memory")]
    pub no_low_memory: bool,
    /// Drop the sound (voices of passers-by), as `redact --no-audio`; copied by default.
    #[arg(long)]
    pub no_audio: bool,
    #[command(flatten)]
    pub gating: GateArgs,
    /// The encoder (x264 is always tuned for zero latency here).
    #[command(flatten)]
    pub encoding: EncoderArgs,
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[cfg(feature = "video")]
impl LiveArgs {
    /// The live settings, every range checked.
    pub fn live_options(
        &self,
        detect: &DetectConfig,
    ) -> Result<bystander::video::live::LiveOptions> {
        let mut o = self.settings.options();
        o.max_megapixels = self.limits.max_megapixels;
        o.hold = self.hold;
        o.backfill = self.lookahead;
        o.detect_every = self.detect_every;
        o.low_memory = low_memory(self.low_memory, self.no_low_memory);
        o.no_audio = self.no_audio;
        self.gating.fill(&mut o);
        self.encoding.fill(&mut o);
        let range = |name: &'static str, v: f64, lo: f64, hi: f64, allowed: &'static str| {
            if (lo..=hi).contains(&v) {
                Ok(v)
            } else {
                Err(bystander::Error::InvalidSetting {
                    name,
                    value: v.to_string(),
                    allowed,
                })
            }
        };
        Ok(bystander::video::live::LiveOptions {
            input: self.input.clone(),
            output: self.output.clone(),
            format: self.format.clone(),
            realtime: self.realtime,
            rtsp_transport: self.rtsp_transport.clone(),
            segment_seconds: range(
                "segment-seconds",
                self.segment_seconds,
                1.0,
                3600.0,
                "1 to 3600",
            )?,
            max_lag: range("max-lag", self.max_lag, 0.05, 10.0, "0.05 to 10")?,
            max_backoff: range("max-backoff", self.max_backoff, 0.5, 3600.0, "0.5 to 3600")?,
            stats_interval: range(
                "stats-interval",
                self.stats_interval,
                1.0,
                3600.0,
                "1 to 3600",
            )?,
            video: o.video_options(detect)?,
        })
    }
}

#[derive(Args)]
pub struct RenderArgs {
    /// The original photo or clip.
    pub input: PathBuf,
    /// Detections file (written by `redact --export-detections`, then edited).
    #[arg(long)]
    pub detections: PathBuf,
    /// Output file (same kind as the input).
    #[arg(short, long)]
    pub output: PathBuf,
    /// Replace an existing output.
    #[arg(long)]
    pub overwrite: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub style: StyleArgs,
    #[command(flatten)]
    pub video: VideoArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Args)]
pub struct BenchArgs {
    /// The clip to run (redacted into a temporary folder that is removed afterwards).
    pub clip: PathBuf,
    /// Frames to redact; the clip is run again from its start when it has fewer (default: the
    /// whole clip once).
    #[arg(long)]
    pub frames: Option<usize>,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Print nothing while running.
    #[arg(short, long)]
    pub quiet: bool,
    /// What to time: `clip`, the file pipeline (decode, detect, encode, mux), or `stream`, the
    /// host API fed the clip's frames as BGR buffers (fps, latency percentiles, peak memory).
    #[arg(long, default_value = "clip", value_parser = ["clip", "stream"])]
    pub api: String,
    /// With `--api stream`: the frames' format as the host hands them over, `bgr` (OpenCV's,
    /// most camera SDKs'), `i420` or `nv12` (hardware decoders', Frigate's), made from the
    /// decoded picture without converting it where it is 4:2:0 already.
    #[arg(long, default_value = "bgr", value_parser = ["bgr", "i420", "nv12"])]
    pub host_format: String,
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub video: VideoArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Args)]
pub struct RedactArgs {
    /// Image and clip files and folders.
    #[arg(required_unless_present = "manifest")]
    pub inputs: Vec<PathBuf>,
    /// Also read the inputs from FILE, one path per line (for job arrays and long lists).
    #[arg(long, value_name = "FILE")]
    pub manifest: Option<PathBuf>,
    /// Redact only part INDEX of COUNT (counted from 0) of the sorted list of files, for job
    /// arrays: a Kubernetes Indexed Job or an AWS Batch array runs `--shard $INDEX/$COUNT` per
    /// index; the parts are disjoint and together the whole run (every part must see the same
    /// inputs).
    #[arg(long, value_name = "INDEX/COUNT")]
    pub shard: Option<bystander::batch::Shard>,
    /// Output folder; folders are mirrored under it, files land by name.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Redo outputs that already exist (by default a finished output is kept and skipped).
    #[arg(long)]
    pub overwrite: bool,
    /// Print nothing but errors.
    #[arg(short, long)]
    pub quiet: bool,
    /// List what would be done (redact, keep, skip) and write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print a machine-readable summary of every file as JSON on stdout (progress goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// Write the boxes redacted in each file, frame by frame, to NAME.detections.json beside its
    /// output, for review and `bystander render`.
    #[arg(long)]
    pub export_detections: bool,
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub video: VideoArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Limits on what is read.
#[derive(Args)]
pub struct LimitArgs {
    /// Largest picture read, photo or clip frame, in megapixels (0.1 to 2000): a larger one is
    /// refused from its header, before its pixels are decoded. The default, 100, takes 8K video
    /// (33) and 50-megapixel phone photos.
    #[arg(long, default_value_t = 100.0)]
    pub max_megapixels: f64,
}

impl LimitArgs {
    pub fn max_pixels(&self) -> Result<u64> {
        Options {
            max_megapixels: self.max_megapixels,
            ..Default::default()
        }
        .max_pixels()
    }
}

impl RedactArgs {
    /// Every flag of the command as the library's options.
    pub fn options(&self) -> Options {
        let mut o = self.settings.options();
        self.video.fill(&mut o);
        o.max_megapixels = self.limits.max_megapixels;
        o
    }
}

/// Clip settings.
#[derive(Args)]
pub struct EncoderArgs {
    /// FFmpeg video encoder (default: the output container's own, libx264, or libvpx-vp9 for
    /// WebM).
    #[arg(long)]
    pub encoder: Option<String>,
    /// Quality (constant rate factor) for x264/x265: lower is better, 0 to 51.
    #[arg(long, default_value_t = 23)]
    pub crf: u8,
    /// Encoder preset for x264/x265 (ultrafast ... veryslow). The default, veryfast, transcoded
    /// the shared 1080p and 432p clips 2.3 to 2.5x as fast as x264's own default (medium), and at
    /// the same CRF gave a smaller file on the 1080p one.
    #[arg(long, default_value = "veryfast")]
    pub preset: String,
}

impl EncoderArgs {
    /// Writes the encoder flags into `o`.
    pub fn fill(&self, o: &mut Options) {
        o.encoder = self.encoder.clone();
        o.crf = self.crf;
        o.preset = self.preset.clone();
    }
}

#[derive(Args)]
pub struct VideoArgs {
    #[command(flatten)]
    pub encoding: EncoderArgs,
    /// Keep container and stream metadata (location, device, dates); stripped by default.
    #[arg(long)]
    pub keep_metadata: bool,
    /// Keep text subtitle streams. They are dropped by default because they can carry what the
    /// picture does not show: dashcams and drones caption their GPS position every second, and
    /// captions can name people. Keeping them is your decision. Bitmap subtitles (DVD, PGS,
    /// DVB) are pictures that can show a face, and are dropped whatever this says.
    #[arg(long)]
    pub keep_subtitles: bool,
    /// Drop the sound. A doorbell's or dashcam's microphone records passers-by talking, and
    /// redacting the picture does not hide their voices. Copied as it is by default.
    #[arg(long)]
    pub no_audio: bool,
    /// Less memory for some speed: one ONNX Runtime session per model where the models' turns
    /// allow it, instead of one per detection worker (about 40 MB less at 1080p on 2 cores, up to
    /// 10 % slower; the same detections and pixels). On by default where this process may use
    /// under 4 GiB (the machine's memory or its control group's limit, as a container sets).
    #[arg(long, overrides_with = "no_low_memory")]
    pub low_memory: bool,
    /// Never --low-memory, however little memory there is.
    #[arg(long, overrides_with = "low_memory")]
    pub no_low_memory: bool,
    /// Frames a mask persists after its object's last detection.
    #[arg(long, default_value_t = 8)]
    pub hold: usize,
    /// Frames a mask is drawn before its object's first detection (adds this much look-ahead).
    #[arg(long, default_value_t = 4)]
    pub backfill: usize,
    /// Detect on every Nth frame only (speed mode); masks are carried in between. Default 1,
    /// or 2 with --recall fast.
    #[arg(long)]
    pub detect_every: Option<usize>,
    #[command(flatten)]
    pub gating: GateArgs,
}

/// `--low-memory` as asked, else whether this process's memory is short
/// (`bystander::engine::memory`).
fn low_memory(on: bool, off: bool) -> bool {
    on || (!off && bystander::engine::memory::memory_is_short())
}

/// The change gate's flags, shared by clips and live streams.
#[derive(Args)]
pub struct GateArgs {
    /// Gate detection by change (fixed cameras): look only where the picture changed and around
    /// what was found lately, and sweep the whole frame every --sweep-every frames. On by default
    /// for files at --recall fast, where it covers more and runs faster; at the other presets
    /// 1.4 to 1.8 times as fast on the shared static-camera clips, but off by default because on
    /// one of them it leaves 0.7 points more of what every model finds uncovered; off by default
    /// on live streams (BENCHMARKS.md).
    #[arg(long, overrides_with = "no_gating")]
    pub gating: bool,
    /// Never gate detection by change: search every detected frame whole.
    #[arg(long, overrides_with = "gating")]
    pub no_gating: bool,
    /// Frames between whole-frame sweeps of the change gate (1 to 100); with --gating, clips get
    /// at least this much look-ahead, so a face a sweep finds is covered back to the previous
    /// sweep.
    #[arg(long, default_value_t = 8)]
    pub sweep_every: usize,
}

impl GateArgs {
    /// Writes the gate flags into `o`.
    pub fn fill(&self, o: &mut Options) {
        o.gating = match (self.gating, self.no_gating) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        };
        o.sweep_every = self.sweep_every;
    }
}

impl VideoArgs {
    /// Writes the clip flags into `o`.
    pub fn fill(&self, o: &mut Options) {
        self.encoding.fill(o);
        o.keep_metadata = self.keep_metadata;
        o.keep_subtitles = self.keep_subtitles;
        o.no_audio = self.no_audio;
        o.low_memory = low_memory(self.low_memory, self.no_low_memory);
        o.hold = self.hold;
        o.backfill = self.backfill;
        o.detect_every = self.detect_every;
        self.gating.fill(o);
    }

    /// Clip options for a thread budget of `budget` threads (`--jobs`), clips detected with
    /// `detect`; the library supplies the preset's rules and checks the ranges.
    #[cfg(feature = "video")]
    pub fn options(
        &self,
        budget: usize,
        detect: &DetectConfig,
        max_pixels: u64,
    ) -> Result<bystander::video::VideoOptions> {
        let mut o = Options {
            jobs: Some(budget),
            max_megapixels: max_pixels as f64 / 1e6,
            ..Default::default()
        };
        self.fill(&mut o);
        o.file_options(detect)
    }
}

#[derive(Args)]
pub struct EvalArgs {
    /// Annotation JSONL: {"image": PATH, "faces"|"plates": [[x1,y1,x2,y2], ...]} per line.
    pub annotations: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Detect with the settings clips get (at the balanced preset: faces at 960 px with
    /// CenterFace's native tiles on large frames, plates at 640 px with the YOLOv8n plate
    /// model's), to see what a preset finds in a clip. Interleaved models are all run, with all
    /// their tiles, as a still scene gets them within two frames (CenterFace's tiles, which a clip
    /// spreads over two of its turns, within four).
    #[arg(long)]
    pub as_clip: bool,
    /// List each labelled box at least this many pixels high that was not covered, with its
    /// image and the share of it masked (the JSON report always lists them all).
    #[arg(long, value_name = "MIN_HEIGHT")]
    pub leaks: Option<f32>,
    #[command(flatten)]
    pub settings: Settings,
}

/// How pixels are replaced.
#[derive(Args)]
pub struct StyleArgs {
    /// Pixel replacement.
    #[arg(long, default_value = "blur", value_parser = ["blur", "pixelate", "fill"])]
    pub style: String,
    /// Colour of the fill style, RRGGBB.
    #[arg(long, default_value = "000000")]
    pub fill_color: String,
    /// Mask shape for faces (plates are always rectangles): ellipse or rect.
    #[arg(long, default_value = "ellipse", value_parser = ["ellipse", "rect"])]
    pub shape: String,
    /// Factor every box is grown by before masking (1.0 to 4.0; default 1.7 faces (ellipse), 1.2 plates).
    #[arg(long)]
    pub mask_scale: Option<f32>,
    /// Privacy-zone file (JSON polygons, always redacted).
    #[arg(long)]
    pub zones: Option<PathBuf>,
}

#[derive(Args)]
pub struct Settings {
    #[command(flatten)]
    pub style: StyleArgs,
    /// Classes to redact (eval: defaults to the classes the annotations label).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<String>>,
    /// Detection preset: fast, balanced or max (recall first: max finds the most, with more
    /// false boxes).
    #[arg(long, default_value = "balanced")]
    pub recall: String,
    /// Score threshold for every model, overriding the preset's (0 < t < 1).
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Long side in pixels of the whole-frame detection pass (64 to 4096).
    #[arg(long)]
    pub working_size: Option<u32>,
    /// Tiling of large frames: auto, off, or COLSxROWS.
    #[arg(long)]
    pub tiles: Option<String>,
    /// Also look at each frame stretched this many times in width, for faces that look narrower
    /// than natural: squeezed thumbnails, anamorphic frames, fisheye edges (1 to 3; 1 turns it
    /// off; default 1.5 for CenterFace on photos at the balanced preset and for both face models
    /// at max, off on clips at balanced and at fast).
    #[arg(long)]
    pub widen: Option<f32>,
    /// Also search every frame rotated, in this many evenly spaced rotations, for faces that are
    /// not upright: 2 for a camera mounted upside down, 4 for people lying down, 8 for a
    /// ceiling-mounted fisheye, whose faces point at the middle at every angle (1, 2, 4 or 8;
    /// default 1, upright only; each rotation costs one more detection of every frame).
    #[arg(long)]
    pub rotations: Option<u32>,
    /// Face model replacing the preset's: FAMILY:PATH with FAMILY centerface, retina, yolo or text,
    /// or a shipped model's name (repeatable).
    #[arg(long)]
    pub face_model: Vec<String>,
    /// Plate model replacing the preset's: FAMILY:PATH, or a shipped model's name; `plate-text` is
    /// the licence-clean one (Apache-2.0 weights; see models/README.md) (repeatable).
    #[arg(long)]
    pub plate_model: Vec<String>,
    /// Clips: run every model on every detected frame, instead of letting the balanced preset's
    /// two models per class take turns frame by frame (about 1.5x slower end to end), and the
    /// fast preset's two face models take turns and its plate model run on every second detected
    /// frame.
    #[arg(long)]
    pub no_interleave: bool,
    /// Files processed at once (default: one per core); cores are shared between jobs and
    /// ONNX Runtime so that they are never oversubscribed.
    #[arg(short, long)]
    pub jobs: Option<usize>,
}

impl Settings {
    /// The flags as the library's options.
    pub fn options(&self) -> Options {
        Options {
            classes: self.classes.clone(),
            recall: self.recall.clone(),
            threshold: self.threshold,
            working_size: self.working_size,
            tiles: self.tiles.clone(),
            widen: self.widen,
            rotations: self.rotations,
            face_models: self.face_model.clone(),
            plate_models: self.plate_model.clone(),
            no_interleave: self.no_interleave,
            jobs: self.jobs,
            ..self.style.options()
        }
    }

    pub fn jobs(&self) -> Result<usize> {
        self.options().jobs()
    }

    pub fn detect_config(&self, default_classes: &[Class]) -> Result<DetectConfig> {
        self.options().detect_config(default_classes)
    }

    pub fn redact_config(&self) -> Result<RedactConfig> {
        self.options().redact_config()
    }
}

impl StyleArgs {
    fn options(&self) -> Options {
        Options {
            style: self.style.clone(),
            fill_color: self.fill_color.clone(),
            shape: self.shape.clone(),
            mask_scale: self.mask_scale,
            zones: self.zones.clone(),
            ..Default::default()
        }
    }

    pub fn redact_config(&self) -> Result<RedactConfig> {
        self.options().redact_config()
    }
}

//! Command-line arguments, and their translation into the library's settings.

use std::path::PathBuf;

use bystander::detect::{DetectConfig, ModelSource, Recall, Tiles};
use bystander::redact::{parse_color, RedactConfig, Shape, Style, Zones};
use bystander::{Class, Error, Result};
use clap::{Args, Parser, Subcommand};

/// Most threads `--jobs` takes.
pub const MAX_JOBS: usize = 256;

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
    #[command(flatten)]
    pub settings: Settings,
    #[command(flatten)]
    pub video: VideoArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

#[derive(Args)]
pub struct RedactArgs {
    /// Image files and folders.
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
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
        if !(0.1..=2000.0).contains(&self.max_megapixels) {
            return Err(Error::InvalidSetting {
                name: "max-megapixels",
                value: self.max_megapixels.to_string(),
                allowed: "0.1 to 2000",
            });
        }
        Ok((self.max_megapixels * 1e6) as u64)
    }
}

/// Clip settings.
#[derive(Args)]
pub struct VideoArgs {
    /// FFmpeg video encoder for clips (default: the output container's own, libx264, or
    /// libvpx-vp9 for WebM).
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
    /// Keep container and stream metadata (location, device, dates); stripped by default.
    #[arg(long)]
    pub keep_metadata: bool,
    /// Keep text subtitle streams. They are dropped by default because they can carry what the
    /// picture does not show: dashcams and drones caption their GPS position every second, and
    /// captions can name people. Keeping them is your decision. Bitmap subtitles (DVD, PGS,
    /// DVB) are pictures that can show a face, and are dropped whatever this says.
    #[arg(long)]
    pub keep_subtitles: bool,
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
}

#[cfg(feature = "video")]
impl VideoArgs {
    /// Clip options for a thread budget of `budget` threads (`--jobs`), clips detected with
    /// `detect`; the library supplies the preset's rules and checks the ranges.
    pub fn options(
        &self,
        budget: usize,
        detect: &DetectConfig,
        max_pixels: u64,
    ) -> Result<bystander::video::VideoOptions> {
        let mut opts = bystander::video::VideoOptions::for_detect(detect);
        if let Some(n) = self.detect_every {
            opts.detect_every = n;
        }
        opts.encoder = self.encoder.clone();
        opts.crf = self.crf;
        opts.preset = self.preset.clone();
        opts.keep_metadata = self.keep_metadata;
        opts.keep_subtitles = self.keep_subtitles;
        opts.max_pixels = max_pixels;
        opts.track.hold = self.hold;
        opts.track.backfill = self.backfill;
        opts.set_thread_budget(budget);
        opts.validate()?;
        Ok(opts.held_across_skips())
    }
}

#[derive(Args)]
pub struct EvalArgs {
    /// Annotation JSONL: {"image": PATH, "faces"|"plates": [[x1,y1,x2,y2], ...]} per line.
    pub annotations: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Detect with the settings clips get (the balanced preset without tiles, faces at 960 px,
    /// plates at 640 px), to see what a preset finds in a clip. Interleaved models are all run,
    /// as a still scene gets them within two frames.
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
    /// Your own face model: FAMILY:PATH with FAMILY centerface, retina or yolo (repeatable).
    #[arg(long)]
    pub face_model: Vec<String>,
    /// Your own plate model: FAMILY:PATH (repeatable).
    #[arg(long)]
    pub plate_model: Vec<String>,
    /// Clips: run every model on every detected frame, instead of letting the balanced preset's
    /// two models per class take turns frame by frame (about 1.5x slower end to end) and the fast
    /// preset's plate model run on every second detected frame.
    #[arg(long)]
    pub no_interleave: bool,
    /// Files processed at once (default: one per core); cores are shared between jobs and
    /// ONNX Runtime so that they are never oversubscribed.
    #[arg(short, long)]
    pub jobs: Option<usize>,
}

impl Settings {
    /// The thread budget: one per core by default, at most [`MAX_JOBS`] (each job holds its own
    /// ONNX Runtime sessions, about 100 MB).
    pub fn jobs(&self) -> Result<usize> {
        match self.jobs {
            Some(j) if !(1..=MAX_JOBS).contains(&j) => Err(Error::InvalidSetting {
                name: "jobs",
                value: j.to_string(),
                allowed: "1 to 256",
            }),
            Some(j) => Ok(j),
            None => Ok(bystander::cores().min(MAX_JOBS)),
        }
    }

    /// The files the run reads besides its inputs (zones, models), which no output may replace.
    pub fn files_read(&self) -> Vec<&std::path::Path> {
        let models = self
            .face_model
            .iter()
            .chain(&self.plate_model)
            .filter_map(|spec| spec.split_once(':').map(|(_, p)| std::path::Path::new(p)));
        self.style
            .zones
            .as_deref()
            .into_iter()
            .chain(models)
            .collect()
    }

    pub fn detect_config(&self, default_classes: &[Class]) -> Result<DetectConfig> {
        let classes = match &self.classes {
            Some(list) => list
                .iter()
                .map(|c| c.parse())
                .collect::<Result<Vec<Class>>>()?,
            None => default_classes.to_vec(),
        };
        let tiles = match self.tiles.as_deref() {
            None => None,
            Some("auto") => Some(Tiles::Auto),
            Some("off") => Some(Tiles::Off),
            Some(grid) => {
                let parsed = grid
                    .split_once('x')
                    .and_then(|(c, r)| Some((c.parse().ok()?, r.parse().ok()?)));
                let (cols, rows) = parsed.ok_or(Error::InvalidSetting {
                    name: "tiles",
                    value: grid.to_string(),
                    allowed: "auto, off, or COLSxROWS such as 3x2",
                })?;
                Some(Tiles::Grid { cols, rows })
            }
        };
        let mut models = Vec::new();
        for spec in &self.face_model {
            models.push(ModelSource::parse(spec, Class::Face)?);
        }
        for spec in &self.plate_model {
            models.push(ModelSource::parse(spec, Class::Plate)?);
        }
        let cores = bystander::cores();
        Ok(DetectConfig {
            classes,
            recall: self.recall.parse::<Recall>()?,
            threshold: self.threshold,
            working_size: self.working_size,
            tiles,
            widen: self.widen,
            models,
            model_dir: None,
            // Jobs run side by side; each session gets its share of the cores.
            intra_threads: (cores / self.jobs()?).max(1),
            interleave: self.no_interleave.then_some(false),
            clip: false,
        })
    }

    pub fn redact_config(&self) -> Result<RedactConfig> {
        self.style.redact_config()
    }
}

impl StyleArgs {
    pub fn redact_config(&self) -> Result<RedactConfig> {
        let mut cfg = RedactConfig::default();
        let style = match self.style.parse::<Style>()? {
            Style::Fill(_) => Style::Fill(parse_color(&self.fill_color)?),
            s => s,
        };
        cfg.set_style(style);
        if self.shape == "rect" {
            cfg.face.shape = Shape::Rect;
        }
        if let Some(s) = self.mask_scale {
            cfg.face.mask_scale = s;
            cfg.plate.mask_scale = s;
        }
        if let Some(z) = &self.zones {
            cfg.zones = Zones::load(z)?;
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

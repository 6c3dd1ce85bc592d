//! The user-facing settings, as every front spells them (the command line's flags, the Python
//! package's keyword arguments), and their translation into the library's configurations.
//!
//! Why one place: each front would otherwise parse `--tiles 3x2` or `fill_color="FF00FF"` its own
//! way, with its own defaults and ranges, and a setting would mean different things in the CLI and
//! in Python. Fronts fill [`Options`] and call its methods; the library checks every range.
//!
//! ```
//! use bystander::options::Options;
//! let opts = Options { style: "fill".into(), fill_color: "FF00FF".into(), ..Default::default() };
//! let redact = opts.redact_config()?;
//! assert_eq!(redact.face.style, bystander::redact::Style::Fill([255, 0, 255]));
//! let detect = Options { tiles: Some("3x2".into()), ..Default::default() }.detect_config(&bystander::Class::ALL)?;
//! assert_eq!(detect.tiles, Some(bystander::detect::Tiles::Grid { cols: 3, rows: 2 }));
//! # Ok::<(), bystander::Error>(())
//! ```

use std::path::{Path, PathBuf};

use crate::detect::{DetectConfig, ModelSource, Recall, Tiles};
use crate::error::{Error, Result};
use crate::geometry::Class;
use crate::redact::{parse_color, RedactConfig, Shape, Style, Zones};

/// Most threads a run's budget takes (each job holds its own buffers, and sessions are made on
/// demand).
pub const MAX_JOBS: usize = 256;

/// Detection and redaction settings, named as the command line names them.
#[derive(Clone, Debug)]
pub struct Options {
    /// Classes to redact (`face`, `plate`); `None`: the front's default.
    pub classes: Option<Vec<String>>,
    /// Preset: `fast`, `balanced` or `max`.
    pub recall: String,
    /// Score threshold for every model, in (0, 1).
    pub threshold: Option<f32>,
    /// Long side of the whole-frame pass, 64 to 4096.
    pub working_size: Option<u32>,
    /// `auto`, `off`, or `COLSxROWS`.
    pub tiles: Option<String>,
    /// The widened pass's stretch, 1 to 3.
    pub widen: Option<f32>,
    /// Rotations the frame is also searched in: 1, 2, 4 or 8 (see [`crate::detect::rotate`]).
    pub rotations: Option<u32>,
    /// Own face models, `FAMILY:PATH` or a shipped model's name.
    pub face_models: Vec<String>,
    /// Own plate models, `FAMILY:PATH` or a shipped model's name (`plate-text`: licence-clean).
    pub plate_models: Vec<String>,
    /// Clips: every model on every frame instead of taking turns.
    pub no_interleave: bool,
    /// Thread budget; `None`: one per core.
    pub jobs: Option<usize>,
    /// `blur`, `pixelate` or `fill`.
    pub style: String,
    /// `RRGGBB` for the fill style.
    pub fill_color: String,
    /// Face mask shape: `ellipse` or `rect`.
    pub shape: String,
    /// Box growth before masking, 1 to 4; `None`: 1.7 faces, 1.2 plates.
    pub mask_scale: Option<f32>,
    /// Privacy-zone file.
    pub zones: Option<PathBuf>,
    /// The folder of the shipped models; `None`: [`crate::models::model_dir`].
    pub model_dir: Option<PathBuf>,
    /// Largest picture read, photo or clip frame, in megapixels (0.1 to 2000).
    pub max_megapixels: f64,
    /// Clips: FFmpeg video encoder; `None`: the container's own.
    pub encoder: Option<String>,
    /// Clips: constant rate factor for x264/x265, 0 to 51.
    pub crf: u8,
    /// Clips: x264/x265 preset.
    pub preset: String,
    /// Clips: keep container and stream metadata.
    pub keep_metadata: bool,
    /// Clips: keep text subtitle streams (bitmap subtitles are always dropped).
    pub keep_subtitles: bool,
    /// Clips and live streams: drop the sound (voices of passers-by); copied by default.
    pub no_audio: bool,
    /// Clips and streams: fewer ONNX Runtime sessions, for less memory (see
    /// [`crate::engine::EngineConfig::low_memory`]).
    pub low_memory: bool,
    /// Streams of frames (the host API) only: how many times as wide as high a frame's pixels
    /// are shown (see [`crate::engine::EngineConfig::pixel_aspect`]); `None` for square. Clips
    /// take their own from the file.
    pub pixel_aspect: Option<f32>,
    /// Streams of frames (the host API) only: the frames are interlaced (see
    /// [`crate::engine::EngineConfig::interlaced`]). Clips take their own from the file.
    pub interlaced: bool,
    /// Streams of frames (the host API) only: how the frames' samples encode light, `sdr`, `pq`
    /// or `hlg` (see [`crate::engine::EngineConfig::transfer`]); `None` for SDR. Clips take
    /// their own from the file.
    pub transfer: Option<String>,
    /// Clips: frames a mask persists after its object's last detection.
    pub hold: usize,
    /// Clips: frames a mask is drawn before its object's first detection.
    pub backfill: usize,
    /// Clips: detect on every Nth frame; `None`: the preset's rule.
    pub detect_every: Option<usize>,
    /// Clips and streams: gate detection by change (see [`crate::engine::gate`]); `None`: the
    /// preset's rule ([`crate::engine::default_file_gating`]: the fast preset gates files),
    /// off for live streams and the host API.
    pub gating: Option<bool>,
    /// Clips and streams: frames between whole-frame sweeps of the change gate (1 to 100).
    pub sweep_every: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            classes: None,
            recall: "balanced".into(),
            threshold: None,
            working_size: None,
            tiles: None,
            widen: None,
            rotations: None,
            face_models: Vec::new(),
            plate_models: Vec::new(),
            no_interleave: false,
            jobs: None,
            style: "blur".into(),
            fill_color: "000000".into(),
            shape: "ellipse".into(),
            mask_scale: None,
            zones: None,
            model_dir: None,
            max_megapixels: 100.0,
            encoder: None,
            crf: 23,
            preset: "veryfast".into(),
            keep_metadata: false,
            keep_subtitles: false,
            no_audio: false,
            low_memory: false,
            pixel_aspect: None,
            interlaced: false,
            transfer: None,
            hold: 8,
            backfill: 4,
            detect_every: None,
            gating: None,
            sweep_every: crate::engine::gate::GateConfig::default().sweep_every,
        }
    }
}

/// Tiling as written: `auto`, `off` or `COLSxROWS`.
pub fn parse_tiles(s: &str) -> Result<Tiles> {
    match s {
        "auto" => Ok(Tiles::Auto),
        "off" => Ok(Tiles::Off),
        grid => grid
            .split_once('x')
            .and_then(|(c, r)| Some((c.parse().ok()?, r.parse().ok()?)))
            .map(|(cols, rows)| Tiles::Grid { cols, rows })
            .ok_or(Error::InvalidSetting {
                name: "tiles",
                value: grid.to_string(),
                allowed: "auto, off, or COLSxROWS such as 3x2",
            }),
    }
}

impl Options {
    /// The thread budget: one per core by default, 1 to [`MAX_JOBS`].
    pub fn jobs(&self) -> Result<usize> {
        match self.jobs {
            Some(j) => {
                crate::engine::check_range("jobs", j, 1, MAX_JOBS, "1 to 256")?;
                Ok(j)
            }
            None => Ok(crate::cores().min(MAX_JOBS)),
        }
    }

    /// The pixel budget of a photo or a clip frame, from [`Options::max_megapixels`].
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

    /// Settings for clip files detected with `detect`: the preset's rules (the fast preset's
    /// detect-every and gate, a hold that bridges skipped frames, the codec threads, a look-ahead
    /// of at least the sweep period where gated), the thread budget, every range checked.
    #[cfg(feature = "video")]
    pub fn file_options(&self, detect: &DetectConfig) -> Result<crate::video::VideoOptions> {
        let gating = crate::engine::default_file_gating(detect);
        Ok(self.video_options_gated(detect, gating)?.swept_back())
    }

    /// Settings for live streams detected with `detect`: as [`Options::file_options`], but gated
    /// only when asked and without the sweep's look-ahead (a live stream has none to spare).
    #[cfg(feature = "video")]
    pub fn video_options(&self, detect: &DetectConfig) -> Result<crate::video::VideoOptions> {
        self.video_options_gated(detect, false)
    }

    /// The video settings, gated by default where `gating` says.
    #[cfg(feature = "video")]
    fn video_options_gated(
        &self,
        detect: &DetectConfig,
        gating: bool,
    ) -> Result<crate::video::VideoOptions> {
        let mut v = crate::video::VideoOptions::for_detect(detect);
        v.gate.enabled = gating;
        if let Some(n) = self.detect_every {
            v.detect_every = n;
        }
        v.encoder = self.encoder.clone();
        v.crf = self.crf;
        v.preset = self.preset.clone();
        v.keep_metadata = self.keep_metadata;
        v.keep_subtitles = self.keep_subtitles;
        v.drop_audio = self.no_audio;
        v.low_memory = self.low_memory;
        v.max_pixels = self.max_pixels()?;
        v.track.hold = self.hold;
        v.track.backfill = self.backfill;
        v.gate = self.gate(v.gate);
        v.set_thread_budget(self.jobs()?);
        v.validate()?;
        Ok(v.held_across_skips().codecs_paced_by(detect))
    }

    /// Everything a batch run needs besides the plan: the thread budget, the pixel budget, the
    /// clip settings and the settings record every report carries.
    pub fn run_options(
        &self,
        detect: &DetectConfig,
        redact: &RedactConfig,
        overwrite: bool,
        export_detections: bool,
    ) -> Result<crate::batch::RunOptions> {
        #[cfg(feature = "video")]
        let video = self.file_options(detect)?;
        Ok(crate::batch::RunOptions {
            overwrite,
            export_detections,
            jobs: self.jobs()?,
            max_pixels: self.max_pixels()?,
            settings: crate::batch::settings_record(
                detect,
                redact,
                #[cfg(feature = "video")]
                &video,
            )?,
            #[cfg(feature = "video")]
            video,
            stop: None,
        })
    }

    /// Settings for a stream of frames (the host API, [`crate::stream::Redactor`]): the video
    /// plan of the preset, `jobs` detection workers, the hold, back-fill, detect-every,
    /// `low_memory`, `pixel_aspect`, `interlaced` and `transfer` of these options.
    pub fn stream_config(&self) -> Result<crate::engine::EngineConfig> {
        let detect = self.detect_config(&Class::ALL)?;
        let mut cfg = crate::engine::EngineConfig::new(detect, self.redact_config()?, self.jobs()?);
        if let Some(n) = self.detect_every {
            cfg.detect_every = n;
        }
        cfg.track.hold = self.hold;
        cfg.track.backfill = self.backfill;
        cfg.low_memory = self.low_memory;
        if let Some(a) = self.pixel_aspect {
            cfg.pixel_aspect = a;
        }
        cfg.interlaced = self.interlaced;
        if let Some(t) = &self.transfer {
            cfg.transfer = t.parse()?;
        }
        cfg.gate = self.gate(cfg.gate);
        let cfg = cfg.held_across_skips();
        cfg.validate()?;
        Ok(cfg)
    }

    /// The gate `base` with these options' switch, if set, and sweep period.
    fn gate(&self, base: crate::engine::gate::GateConfig) -> crate::engine::gate::GateConfig {
        crate::engine::gate::GateConfig {
            enabled: self.gating.unwrap_or(base.enabled),
            sweep_every: self.sweep_every,
            ..base
        }
    }

    /// Refuses a plan where an output would land on a file these settings read (the zone file,
    /// an own model), however its path is spelled.
    pub fn check_outputs(&self, plan: &crate::batch::Plan) -> Result<()> {
        let read = crate::batch::Inputs::new(self.files_read());
        for job in &plan.jobs {
            read.check(&job.output)?;
        }
        Ok(())
    }

    /// The files the settings read (zones, own models), which no output may replace.
    pub fn files_read(&self) -> Vec<&Path> {
        let models = self
            .face_models
            .iter()
            .chain(&self.plate_models)
            .filter_map(|spec| spec.split_once(':').map(|(_, p)| Path::new(p)));
        self.zones.as_deref().into_iter().chain(models).collect()
    }

    /// The detection settings; `default_classes` when no classes are given.
    pub fn detect_config(&self, default_classes: &[Class]) -> Result<DetectConfig> {
        let classes = match &self.classes {
            Some(list) => list
                .iter()
                .map(|c| c.parse())
                .collect::<Result<Vec<Class>>>()?,
            None => default_classes.to_vec(),
        };
        let mut models = Vec::new();
        for spec in &self.face_models {
            models.push(ModelSource::parse(spec, Class::Face)?);
        }
        for spec in &self.plate_models {
            models.push(ModelSource::parse(spec, Class::Plate)?);
        }
        let cfg = DetectConfig {
            classes,
            recall: self.recall.parse::<Recall>()?,
            threshold: self.threshold,
            working_size: self.working_size,
            tiles: self.tiles.as_deref().map(parse_tiles).transpose()?,
            widen: self.widen,
            rotations: self.rotations,
            models,
            model_dir: self.model_dir.clone(),
            // Jobs run side by side; each session gets its share of the cores.
            intra_threads: (crate::cores() / self.jobs()?).max(1),
            interleave: self.no_interleave.then_some(false),
            clip: false,
            sessions: None,
        };
        Ok(cfg)
    }

    /// The redaction settings (reads the zone file, if any).
    pub fn redact_config(&self) -> Result<RedactConfig> {
        let mut cfg = RedactConfig::default();
        let style = match self.style.parse::<Style>()? {
            Style::Fill(_) => Style::Fill(parse_color(&self.fill_color)?),
            s => s,
        };
        cfg.set_style(style);
        cfg.face.shape = match self.shape.as_str() {
            "ellipse" => Shape::Ellipse,
            "rect" => Shape::Rect,
            s => {
                return Err(Error::InvalidSetting {
                    name: "shape",
                    value: s.to_string(),
                    allowed: "ellipse or rect",
                })
            }
        };
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

#[cfg(all(test, feature = "video"))]
mod tests {
    use super::*;

    /// The gate's switch: the preset's rule in files (the fast preset gates, with a look-ahead of
    /// a sweep period), off on live streams and the host API unless asked, and what is asked wins.
    #[test]
    fn the_fast_preset_gates_files_only_and_an_explicit_switch_wins() {
        let at = |recall: &str, gating: Option<bool>| Options {
            recall: recall.into(),
            gating,
            ..Options::default()
        };
        let gated = |o: &Options| {
            let detect = o.detect_config(&Class::ALL).unwrap();
            let file = o.file_options(&detect).unwrap();
            if file.gate.enabled {
                assert!(file.track.backfill >= file.gate.sweep_every);
            }
            (
                file.gate.enabled,
                o.video_options(&detect).unwrap().gate.enabled,
                o.stream_config().unwrap().gate.enabled,
            )
        };
        assert_eq!(gated(&at("fast", None)), (true, false, false));
        assert_eq!(gated(&at("balanced", None)), (false, false, false));
        assert_eq!(gated(&at("max", None)), (false, false, false));
        assert_eq!(gated(&at("fast", Some(false))), (false, false, false));
        assert_eq!(gated(&at("balanced", Some(true))), (true, true, true));
    }

    /// `low_memory` reaches every front's settings: files, live streams and the host API.
    #[test]
    fn low_memory_reaches_files_streams_and_the_host_api() {
        for low_memory in [false, true] {
            let o = Options {
                low_memory,
                ..Options::default()
            };
            let detect = o.detect_config(&Class::ALL).unwrap();
            assert_eq!(o.file_options(&detect).unwrap().low_memory, low_memory);
            assert_eq!(o.video_options(&detect).unwrap().low_memory, low_memory);
            assert_eq!(o.stream_config().unwrap().low_memory, low_memory);
        }
    }
}

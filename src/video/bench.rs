//! `bystander bench`: the real clip pipeline, timed stage by stage.
//!
//! Why a command and not only criterion: throughput depends on the user's clips, cores and
//! ONNX Runtime build, and the question "where does the time go" has to be answerable on their
//! machine with their settings. The clip is redacted for real (into a temporary folder that is
//! removed afterwards) and run again from the start when more frames are asked for than it has.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{muxer_for, redact_clip, VideoOptions};
use crate::detect::DetectConfig;
use crate::error::{Error, Result};
use crate::redact::RedactConfig;

/// One stage's figures.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StageFigure {
    /// The stage: decode, detect:MODEL, track, redact, encode, wait-for-detect, wait-for-encode
    /// (the last two: the decoding thread idle, as a share of wall time).
    pub stage: String,
    /// Seconds spent (thread-seconds for detection, summed over workers).
    pub seconds: f64,
    /// Frames per second this stage alone could sustain with the threads it had.
    pub fps: f64,
    /// Share of all stage time (thread-seconds), 0 to 1.
    pub share: f64,
}

/// A model as it ran.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelSetting {
    /// Name.
    pub name: String,
    /// sha256 of the file.
    pub sha256: String,
    /// Long side of the whole-frame pass; `None` for a YOLOv8 model, which letterboxes every
    /// frame into its input instead (640 x 640; the shipped ones pad only to a multiple of 32).
    pub working_size: Option<u32>,
    /// Tiling.
    pub tiles: crate::detect::Tiles,
    /// Rotations each frame is searched in (1: upright only; see [`crate::detect::rotate`]).
    pub rotations: u32,
    /// Score threshold.
    pub threshold: f32,
    /// The detected frames it runs on: `[n, k]` for the `k`-th of every `n` (interleaved
    /// models take turns); `None` for every detected frame.
    pub turn: Option<[usize; 2]>,
}

/// Settings the figures were measured with.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchSettings {
    /// Detection preset.
    pub recall: crate::detect::Recall,
    /// Models, in the order they run on each frame.
    pub models: Vec<ModelSetting>,
    /// Detection threads (each with its own sessions).
    pub detect_workers: usize,
    /// ONNX Runtime intra-op threads per session.
    pub intra_threads: usize,
    /// Cores of the machine.
    pub cores: usize,
    /// ONNX Runtime execution provider.
    pub execution_provider: String,
    /// ONNX Runtime version.
    pub onnxruntime: String,
    /// Encoding and tracking.
    pub video: VideoOptions,
}

/// What `bystander bench` reports.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchReport {
    /// The clip.
    #[serde(serialize_with = "crate::files::serialize")]
    pub clip: PathBuf,
    /// Frames redacted.
    pub frames: usize,
    /// Frames detection ran on.
    pub detected_frames: usize,
    /// Times the clip was run from its start.
    pub passes: usize,
    /// Wall time, seconds.
    pub seconds: f64,
    /// Frames per second end to end.
    pub fps: f64,
    /// Per stage.
    pub stages: Vec<StageFigure>,
    /// Peak resident memory of the process, KiB (Linux; 0 elsewhere).
    pub peak_rss_kib: u64,
    /// What the change gate did, over every pass.
    pub gate: crate::engine::gate::GateStats,
    /// Settings.
    pub settings: BenchSettings,
}

/// Peak resident set size of this process in KiB, from `/proc/self/status` (0 where absent).
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Redacts `frames` frames of `clip` (running it again from the start as often as needed; all of
/// it once when `frames` is `None`) and reports the time per stage. `progress` gets frames done.
pub fn bench_clip(
    clip: &Path,
    frames: Option<usize>,
    detect: &DetectConfig,
    redact: &RedactConfig,
    opts: &VideoOptions,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<BenchReport> {
    if frames == Some(0) {
        return Err(Error::InvalidSetting {
            name: "frames",
            value: "0".into(),
            allowed: "at least 1",
        });
    }
    let ext = clip
        .extension()
        .and_then(|e| e.to_str())
        .filter(|_| muxer_for(clip).is_some())
        .unwrap_or("mkv");
    let dir = tempfile_dir()?;
    let out = dir.join(format!("bench.{ext}"));
    let start = Instant::now();
    let (mut done, mut detected, mut passes) = (0usize, 0usize, 0usize);
    let mut totals: Option<super::StageTimes> = None;
    let mut gate = crate::engine::gate::GateStats::default();
    let result = loop {
        let mut o = opts.clone();
        o.max_frames = frames.map(|f| f - done);
        let base = done;
        let r = match redact_clip(clip, &out, detect, redact, &o, &|n| progress(base + n)) {
            Ok(r) => r,
            Err(e) => break Err(e),
        };
        passes += 1;
        done += r.frames;
        detected += r.detected_frames;
        gate.add(&r.gate);
        let s = r.stages;
        totals = Some(match totals.take() {
            None => s,
            Some(mut t) => {
                t.decode += s.decode;
                t.track += s.track;
                t.redact += s.redact;
                t.encode += s.encode;
                t.wait_for_detect += s.wait_for_detect;
                t.wait_for_encode += s.wait_for_encode;
                for (a, b) in t.detect.iter_mut().zip(&s.detect) {
                    a.seconds += b.seconds;
                }
                t
            }
        });
        if frames.is_none_or(|f| done >= f) {
            break Ok(());
        }
    };
    let _ = std::fs::remove_dir_all(&dir);
    result?;
    let seconds = start.elapsed().as_secs_f64();
    let t = totals.expect("at least one pass ran");
    let workers = t.detect_workers.max(1) as f64;
    let mut stages: Vec<(String, f64, f64)> = vec![("decode".into(), t.decode, 1.0)];
    for m in &t.detect {
        stages.push((format!("detect:{}", m.model), m.seconds, workers));
    }
    stages.push(("track".into(), t.track, 1.0));
    stages.push(("redact".into(), t.redact, 1.0));
    stages.push(("encode".into(), t.encode, 1.0));
    let busy: f64 = stages.iter().map(|s| s.1).sum::<f64>().max(1e-9);
    let mut figures: Vec<StageFigure> = stages
        .into_iter()
        .map(|(stage, secs, threads)| {
            let n = if stage.starts_with("detect:") {
                detected
            } else {
                done
            };
            StageFigure {
                fps: n as f64 / (secs / threads).max(1e-9),
                share: secs / busy,
                seconds: secs,
                stage,
            }
        })
        .collect();
    for (stage, waited) in [
        ("wait-for-detect", t.wait_for_detect),
        ("wait-for-encode", t.wait_for_encode),
    ] {
        figures.push(StageFigure {
            stage: stage.into(),
            seconds: waited,
            fps: 0.0,
            share: waited / seconds.max(1e-9),
        });
    }
    let choices = detect.resolve()?;
    let turns = detect.turns(&choices);
    Ok(BenchReport {
        clip: clip.to_path_buf(),
        frames: done,
        detected_frames: detected,
        passes,
        seconds,
        fps: done as f64 / seconds.max(1e-9),
        stages: figures,
        peak_rss_kib: peak_rss_kib(),
        gate,
        settings: BenchSettings {
            recall: detect.recall,
            models: choices
                .into_iter()
                .zip(turns)
                .map(|(c, turn)| ModelSetting {
                    name: c.model.name.clone(),
                    sha256: c.model.sha256.clone(),
                    working_size: (c.model.family != crate::models::Family::Yolo)
                        .then_some(c.plan.working_size),
                    tiles: c.plan.tiles,
                    rotations: c.plan.rotations,
                    threshold: c.threshold,
                    turn: turn.map(|(n, k)| [n, k]),
                })
                .collect(),
            detect_workers: t.detect_workers,
            intra_threads: t.intra_threads,
            cores: crate::cores(),
            execution_provider: crate::runtime::execution_provider().to_string(),
            onnxruntime: crate::runtime::ORT_VERSION.to_string(),
            video: opts.clone(),
        },
    })
}

/// A fresh private folder under the system's temporary folder.
fn tempfile_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    for n in 0..1000u32 {
        let dir = base.join(format!("bystander-bench-{}-{n}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(Error::io(&dir, e)),
        }
    }
    Err(Error::io(
        &base,
        std::io::Error::other("no free name for a benchmark folder"),
    ))
}

/// What `bystander bench --api stream` reports: the clip's frames handed to the host API
/// ([`crate::stream::Redactor`]) as BGR, the way a host's decoder gives them.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StreamBenchReport {
    /// The clip.
    #[serde(serialize_with = "crate::files::serialize")]
    pub clip: PathBuf,
    /// Always `"stream"`.
    pub api: &'static str,
    /// The frames' format as handed over (`bgr24`, `i420`, `nv12`).
    pub host_format: String,
    /// Frames redacted.
    pub frames: usize,
    /// Wall time, seconds (decoding included, as a host decodes too).
    pub seconds: f64,
    /// Frames per second end to end.
    pub fps: f64,
    /// Milliseconds from a frame's push to its return: median and 95th percentile.
    pub latency_ms_p50: f64,
    /// See `latency_ms_p50`.
    pub latency_ms_p95: f64,
    /// Peak resident memory of the process, KiB.
    pub peak_rss_kib: u64,
    /// Frames covered whole by the fail-closed rule.
    pub fail_closed_frames: usize,
    /// Detection workers and ONNX Runtime threads each.
    pub workers: usize,
    /// See `workers`.
    pub intra_threads: usize,
    /// Frames detected on, and the look-ahead.
    pub detect_every: usize,
    /// See `detect_every`.
    pub backfill: usize,
    /// Whether the sessions were capped for memory (see
    /// [`crate::engine::EngineConfig::low_memory`]).
    pub low_memory: bool,
}

/// Decodes `clip` (again from its start while more `frames` are asked for) and hands every frame
/// to a [`crate::stream::Redactor`] built from `cfg` as a packed buffer in `host_format` (I420
/// or NV12; BGR for any other: see `host_frame`), with the clip's own pixel aspect (as the clip
/// pipeline detects it).
pub fn bench_stream(
    clip: &Path,
    frames: Option<usize>,
    cfg: &crate::stream::StreamConfig,
    host_format: crate::frame::PixelFormat,
    max_pixels: u64,
    progress: &(dyn Fn(usize) + Sync),
) -> Result<StreamBenchReport> {
    use crate::frame::PixelFormat;
    // Any other format is handed over as BGR (see `host_frame`), and named so in the report.
    let host_format = match host_format {
        PixelFormat::I420 | PixelFormat::Nv12 => host_format,
        _ => PixelFormat::Bgr24,
    };
    super::transcode::init();
    let (pixel_aspect, interlaced, transfer) = {
        let ictx = super::open_input(clip, max_pixels)?;
        let (vindex, _) = super::decode::open_decoder(&ictx, clip, max_pixels, 1)?;
        ictx.stream(vindex)
            .map_or((1.0, false, Default::default()), |ist| {
                let shown = super::decode::Showing::of(&ictx, &ist);
                (shown.pixel_aspect, shown.interlaced, shown.transfer)
            })
    };
    let mut redactor = crate::stream::Redactor::new(&crate::stream::StreamConfig {
        pixel_aspect,
        interlaced,
        transfer,
        ..cfg.clone()
    })?;
    let (mut done, mut pushed) = (0usize, 0i64);
    let mut sent: std::collections::HashMap<i64, Instant> = Default::default();
    let mut latencies = Vec::new();
    let mut covered = 0;
    let mut take = |out: Vec<crate::stream::RedactedFrame>,
                    sent: &mut std::collections::HashMap<i64, Instant>| {
        for f in out {
            if let Some(t) = sent.remove(&f.pts) {
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
            }
            covered += usize::from(f.fault.is_some());
            done += 1;
            progress(done);
        }
    };
    let start = Instant::now();
    'passes: loop {
        let mut ictx = super::open_input(clip, max_pixels)?;
        let (vindex, decoder) =
            super::decode::open_decoder(&ictx, clip, max_pixels, crate::cores())?;
        let streams = vec![None; ictx.nb_streams() as usize];
        let (_keep, spent) = std::sync::mpsc::channel();
        let left = frames.map(|f| f.saturating_sub(pushed as usize));
        let mut source = super::decode::Source::new(
            &mut ictx,
            clip,
            decoder,
            vindex,
            streams,
            // Decoded 4:2:0 pictures are kept as they are for a 4:2:0 host (see `host_frame`).
            match host_format {
                PixelFormat::I420 | PixelFormat::Nv12 => ffmpeg_next::format::Pixel::YUV420P,
                _ => ffmpeg_next::format::Pixel::YUV444P,
            },
            spent,
            left,
        );
        let mut any = false;
        while let Some(event) = source.next_event()? {
            let super::decode::Event::Frame(f) = event else {
                continue;
            };
            any = true;
            let (data, layout) = host_frame(f.picture, host_format);
            sent.insert(pushed, Instant::now());
            take(redactor.push(data, layout, pushed)?, &mut sent);
            pushed += 1;
        }
        if !any || frames.is_none_or(|f| pushed as usize >= f) {
            break 'passes;
        }
    }
    take(redactor.finish()?, &mut sent);
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok(StreamBenchReport {
        clip: clip.to_path_buf(),
        api: "stream",
        host_format: format!("{host_format:?}").to_lowercase(),
        frames: done,
        seconds,
        fps: done as f64 / seconds.max(1e-9),
        latency_ms_p50: pct(0.5),
        latency_ms_p95: pct(0.95),
        peak_rss_kib: peak_rss_kib(),
        fail_closed_frames: covered,
        workers: cfg.workers,
        intra_threads: cfg.intra_threads,
        detect_every: cfg.detect_every,
        backfill: cfg.track.backfill,
        low_memory: cfg.low_memory,
    })
}

/// A host's frame made from a decoded one: BGR, as OpenCV and most camera SDKs give it; or
/// I420 or NV12, copied (NV12's chroma interleaved) from the decoded 4:2:0 picture as a host
/// copies its decoder's buffer, in its range; converted from RGB only where the decoder gave
/// another format. Rows are packed, but for NV12 of an odd width, whose rows take a byte more
/// (the interleaved chroma row is wider than the picture).
fn host_frame(
    picture: super::picture::ClipPicture,
    format: crate::frame::PixelFormat,
) -> (Vec<u8>, crate::frame::FrameLayout) {
    use super::picture::ClipPicture;
    use crate::frame::{FrameLayout, PixelFormat, Range};
    let (w, h) = crate::engine::Picture::dimensions(&picture);
    let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
    let stride = match format {
        PixelFormat::Nv12 => 2 * cw,
        _ => w as usize,
    };
    let layout = FrameLayout::with_stride(format, w, h, stride);
    match (picture, format) {
        (ClipPicture::Yuv(f), PixelFormat::I420 | PixelFormat::Nv12) => {
            let range = match super::picture::range_of(&f) {
                crate::frame::yuv::Range::Full => Range::Full,
                crate::frame::yuv::Range::Video => Range::Video,
            };
            let mut data = Vec::with_capacity(layout.len());
            for y in 0..h as usize {
                data.extend_from_slice(&f.data(0)[y * f.stride(0)..][..w as usize]);
                data.resize((y + 1) * stride, 0);
            }
            for y in 0..ch {
                let (cb, cr) = (&f.data(1)[y * f.stride(1)..], &f.data(2)[y * f.stride(2)..]);
                match format {
                    PixelFormat::I420 => data.extend_from_slice(&cb[..cw]),
                    _ => data.extend(cb[..cw].iter().zip(&cr[..cw]).flat_map(|(u, v)| [*u, *v])),
                }
            }
            if format == PixelFormat::I420 {
                for y in 0..ch {
                    data.extend_from_slice(&f.data(2)[y * f.stride(2)..][..cw]);
                }
            }
            (data, layout.in_range(range))
        }
        (picture, PixelFormat::I420 | PixelFormat::Nv12) => {
            let image = picture.into_rgb();
            let mut data = vec![0u8; layout.len()];
            // The frame was sized from the image; a refusal leaves it black, which detection
            // then finds nothing on, as a host's black frame.
            let _ = crate::frame::write_back(&image, &[(0, 0, w, h)], &mut data, &layout);
            (data, layout)
        }
        (picture, _) => {
            let mut bgr = picture.into_rgb().into_raw();
            for p in bgr.chunks_exact_mut(3) {
                p.swap(0, 2);
            }
            (bgr, FrameLayout::packed(PixelFormat::Bgr24, w, h))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::PixelFormat;
    use crate::video::picture::ClipPicture;
    use ffmpeg_next::format::Pixel;
    use ffmpeg_next::frame;

    /// The host's I420 and NV12 frames hold the decoded picture's own samples, rows packed
    /// (odd sizes too), so both read back as the same RGB; a picture that is not 4:2:0 is
    /// converted, and BGR is the RGB picture's bytes swapped.
    #[test]
    fn host_frames_carry_the_decoded_samples_in_each_format() {
        super::super::transcode::init();
        let mut rng = crate::TestRng::new(7);
        for (w, h) in [(64u32, 48u32), (37, 21)] {
            let mut f = frame::Video::new(Pixel::YUV420P, w, h);
            for plane in 0..3 {
                let stride = f.stride(plane);
                let rows = if plane == 0 { h } else { h.div_ceil(2) } as usize;
                for b in &mut f.data_mut(plane)[..stride * rows] {
                    *b = 16 + rng.below(220) as u8;
                }
            }
            let picture = ClipPicture::Yuv(f);
            let (i420, l420) = host_frame(picture.clone(), PixelFormat::I420);
            let (nv12, lnv) = host_frame(picture.clone(), PixelFormat::Nv12);
            let ClipPicture::Yuv(f) = &picture else {
                unreachable!()
            };
            let (cw, ch) = (w.div_ceil(2) as usize, h.div_ceil(2) as usize);
            assert_eq!((l420.strides[0], lnv.strides[0]), (w as usize, 2 * cw));
            for y in 0..h as usize {
                let row = &f.data(0)[y * f.stride(0)..][..w as usize];
                assert_eq!(&i420[y * w as usize..][..w as usize], row);
                assert_eq!(&nv12[y * 2 * cw..][..w as usize], row);
            }
            let luma = (w * h) as usize;
            for y in 0..ch {
                for x in 0..cw {
                    let (u, v) = (
                        f.data(1)[y * f.stride(1) + x],
                        f.data(2)[y * f.stride(2) + x],
                    );
                    assert_eq!(i420[luma + y * cw + x], u);
                    assert_eq!(i420[luma + cw * ch + y * cw + x], v);
                    assert_eq!(nv12[2 * cw * h as usize + 2 * (y * cw + x)..][..2], [u, v]);
                }
            }
            let a = crate::frame::to_rgb(&i420, &l420).unwrap();
            assert_eq!(crate::frame::to_rgb(&nv12, &lnv).unwrap(), a);
            let (bgr, lb) = host_frame(picture.clone(), PixelFormat::Bgr24);
            assert_eq!(lb.format, PixelFormat::Bgr24);
            let rgb = picture.clone().into_rgb();
            assert!(bgr
                .chunks_exact(3)
                .zip(rgb.pixels())
                .all(|(b, p)| b == [p[2], p[1], p[0]]));
            let (from_rgb, lr) = host_frame(ClipPicture::Rgb(rgb.clone()), PixelFormat::I420);
            assert_eq!(lr, l420.in_range(crate::frame::Range::Video));
            assert_eq!(from_rgb.len(), lr.len());
        }
    }
}

//! The clip runner: wiring only. A [`Source`](super::decode::Source) demuxes and decodes, the
//! [`Engine`] detects, tracks and sequences, and an encoder thread
//! ([`EncoderLink`](super::encode::EncoderLink)) paints, encodes and muxes. Written under a
//! temporary name and renamed when whole.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Once;
use std::time::Instant;

use ff::media;
use ffmpeg_next as ff;

use super::decode::{self, Event, Source};
use super::encode::{self, EncoderLink, ToEncoder};
use super::picture::ClipPicture;
use super::{muxer_for, ClipReport, ModelTime, StageTimes, VideoOptions};
use crate::detect::DetectConfig;
use crate::engine::{Engine, Fault, FrameSink, Output};
use crate::error::{Error, Result};
use crate::image_io::temp_path_for;
use crate::redact::RedactConfig;
use crate::review::{Detections, DetectionsWriter, FrameBoxes};

pub(super) fn init() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ff::init();
        ff::log::set_level(ff::log::Level::Fatal);
    });
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
        reason: format!(
            "the output has no clip extension it can be written as ({})",
            super::VIDEO_EXTENSIONS.map(|(e, _)| e).join(", ")
        ),
    })?;
    let tmp = temp_path_for(output);
    let clip = Clip {
        input,
        output,
        tmp: &tmp,
        muxer,
    };
    let result = clip.run(boxes, redact_cfg, opts, export, progress);
    let finished = result.and_then(|(report, writer)| {
        if let Some(w) = writer {
            w.finish()?;
        }
        // On disk before it gets its final name, as photos are.
        std::fs::File::open(&tmp)
            .and_then(|f| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        Ok(report)
    });
    match finished {
        Ok(report) => {
            std::fs::rename(&tmp, output).map_err(|e| Error::io(output, e))?;
            Ok(report)
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// What travels with a clip frame through the engine.
struct ClipFrame {
    pts: Option<i64>,
    duration: i64,
}

/// The engine's sink for a clip: export, progress, and the encoder thread.
struct ClipSink<'a> {
    link: EncoderLink,
    export: Option<DetectionsWriter>,
    progress: &'a (dyn Fn(usize) + Sync),
    /// Seconds per pts unit of the video stream.
    time_base: f64,
    written: usize,
}

impl FrameSink<ClipFrame, ClipPicture> for ClipSink<'_> {
    fn frame(&mut self, out: Output<ClipFrame, ClipPicture>) -> Result<()> {
        let Output {
            index,
            image,
            payload,
            boxes,
            regions,
            fault,
            ..
        } = out;
        if let Some(w) = &mut self.export {
            let time = payload.pts.map(|p| p as f64 * self.time_base);
            w.frame(&FrameBoxes::from_detections(
                index,
                time,
                fault.is_some(),
                &boxes,
            ))?;
        }
        self.link
            .frame(image, &regions, payload.pts, payload.duration)?;
        self.written += 1;
        (self.progress)(self.written);
        Ok(())
    }
}

/// The paths of one clip run.
struct Clip<'a> {
    input: &'a Path,
    output: &'a Path,
    tmp: &'a Path,
    muxer: &'a str,
}

impl Clip<'_> {
    fn run(
        &self,
        boxes: Boxes,
        redact_cfg: &RedactConfig,
        opts: &VideoOptions,
        export: Option<&Path>,
        progress: &(dyn Fn(usize) + Sync),
    ) -> Result<(ClipReport, Option<DetectionsWriter>)> {
        let start = Instant::now();
        let input = self.input;
        // A regular file only: FFmpeg would wait on a FIFO, or read a device for ever.
        drop(crate::files::open_regular(input, "input")?);
        let mut ictx = super::open_input(input, opts.max_pixels)?;
        let (vindex, decoder) =
            decode::open_decoder(&ictx, input, opts.max_pixels, opts.ffmpeg_threads())?;
        let ist = ictx
            .stream(vindex)
            .ok_or_else(|| super::video_err(input, "the video stream", "vanished"))?;
        let (shown, length, tb) = (
            decode::Showing::of(&ictx, &ist),
            decode::Length::of(&ictx, &ist),
            ist.time_base(),
        );
        let (w, h) = (decoder.width(), decoder.height());
        let octx = super::open::output(self.tmp, self.muxer)
            .map_err(|e| super::video_err(self.output, "cannot create", e))?;
        let opened = encode::open_output(
            &ictx,
            vindex,
            &decoder,
            octx,
            (self.output, self.muxer),
            opts,
            ff::Dictionary::new(),
            true,
        )?;
        let mut parts = opened.parts;
        let full_range = parts.full_range();
        let format = parts.format();
        parts.zero_start = !same_container(ictx.format().name(), self.muxer);
        let (link, spent) = EncoderLink::start(parts, self.output, EncoderLink::FILE_QUEUE)?;
        let mut engine = match boxes {
            Boxes::Detect(detect) => Engine::new(&crate::engine::EngineConfig {
                pixel_aspect: shown.pixel_aspect,
                interlaced: shown.interlaced,
                transfer: shown.transfer,
                ..opts.engine_for_frames(detect, redact_cfg, shown.rotation, (w, h))
            })?,
            Boxes::Given(d, path) => {
                d.check_size(path, w, h)?;
                Engine::given(redact_cfg.clone())
            }
        };
        let given = match boxes {
            Boxes::Given(d, _) => Some(d.by_frame()),
            Boxes::Detect(_) => None,
        };
        let mut sink = ClipSink {
            link,
            export: export
                .map(|p| DetectionsWriter::create(p, input, w, h))
                .transpose()?,
            progress,
            time_base: f64::from(tb.numerator()) / f64::from(tb.denominator().max(1)),
            written: 0,
        };
        let mut source = Source::new(
            &mut ictx,
            input,
            decoder,
            vindex,
            opened.stream_map,
            format,
            spent,
            opts.max_frames,
        );
        source.encoder_writes_full_range(full_range);
        source.reencode(opened.reencoders);
        let stop = opts.stop.as_deref();
        let index = feed(&mut source, &mut engine, &mut sink, given.as_ref(), stop)?;
        if let Some(e) = source.read_error {
            // A prefix of the clip is not the clip: fail, and leave no output.
            // FFmpeg's own words can mislead here ("Cannot allocate memory" is what a damaged
            // size field in a fragmented MP4 gives), so say where it stopped and what it may be.
            let at = format!("reading stopped after {index} frames, before the end (damaged?)");
            return Err(super::video_err(input, &at, e));
        }
        engine.finish(&mut sink)?;
        // Only a whole run can tell what is missing: `max_frames` stops early on purpose.
        let unread = match opts.max_frames {
            None => length.unread(&source),
            Some(_) => (0, 0.0),
        };
        let mut report = read_report(shown, opened.dropped, &source, unread);
        report.reencoded_streams = opened.reencoded;
        drop(source);
        let ClipSink { link, export, .. } = sink;
        let (waited, painted) = (link.waited, link.painted);
        let times = link.finish()?;
        fill_report(&mut report, &engine);
        report.stages = StageTimes {
            decode: report.stages.decode,
            redact: painted,
            encode: times.encode,
            wait_for_encode: waited,
            ..stage_times(&engine)
        };
        report.seconds = start.elapsed().as_secs_f64();
        Ok((report, export))
    }
}

/// Whether a clip read by the demuxer `demuxer` (FFmpeg's name, a comma-separated list such as
/// `mov,mp4,m4a,3gp,3g2,mj2`) is written back by the muxer `muxer` in its own container. A clip
/// written in another one (a DAV file, a raw stream, MPEG-TS or a program stream named `.mp4`, as
/// some NVRs export) starts at zero there (`OutputParts::zero_start`).
fn same_container(demuxer: &str, muxer: &str) -> bool {
    demuxer.split(',').any(|d| d == muxer)
}

/// Feeds every event of `source` on: packets of the copied streams to the encoder, frames to
/// `engine` (with their boxes where they are `given`). Returns the frames read.
fn feed(
    source: &mut Source,
    engine: &mut Engine<ClipFrame, ClipPicture>,
    sink: &mut ClipSink,
    given: Option<&HashMap<usize, &FrameBoxes>>,
    stop: Option<&std::sync::atomic::AtomicBool>,
) -> Result<usize> {
    let mut index = 0usize;
    while let Some(event) = source.next_event()? {
        if stop.is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed)) {
            return Err(Error::Video {
                path: source.path().to_path_buf(),
                reason: "stopped before its end; nothing written".into(),
            });
        }
        let f = match event {
            Event::Packet {
                packet,
                from,
                stream,
            } => {
                sink.link.send(ToEncoder::Packet {
                    packet,
                    from,
                    stream,
                })?;
                continue;
            }
            Event::Frame(f) => f,
        };
        let payload = ClipFrame {
            pts: f.pts,
            duration: f.duration,
        };
        match given {
            None => engine.push(f.picture, payload, f.fault, sink)?,
            Some(given) => {
                // The file's boxes as they are; a frame it lacks, or marks whole, or that
                // decoded corrupt, is covered whole.
                let entry = given.get(&index).filter(|e| !e.whole_frame);
                let fault = f.fault.or(entry.is_none().then_some(Fault::Marked));
                let boxes = entry.map(|e| e.detections()).unwrap_or_default();
                engine.push_given(f.picture, payload, fault, boxes, sink)?;
            }
        }
        index += 1;
    }
    Ok(index)
}

/// What reading the clip tells its report: how it is shown, the streams left out, what was
/// damaged or missing (`unread`: frames and seconds never read), and the time it took.
fn read_report(
    shown: decode::Showing,
    dropped_streams: Vec<super::DroppedStream>,
    source: &Source,
    unread: (u64, f64),
) -> ClipReport {
    ClipReport {
        rotation: shown.rotation,
        pixel_aspect: shown.pixel_aspect,
        interlaced: shown.interlaced,
        transfer: shown.transfer,
        dropped_streams,
        decode_errors: source.decode_errors + source.reencode_errors(),
        lost_frames: source.lost_frames,
        unreadable_packets: source.unreadable_packets,
        unread_frames: unread.0,
        unread_seconds: unread.1,
        stages: StageTimes {
            decode: source.seconds,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn fill_report<T: Send>(report: &mut ClipReport, engine: &Engine<T, ClipPicture>) {
    let s = engine.stats();
    report.frames = s.frames;
    report.detected_frames = s.detected_frames;
    report.gate = s.gate;
    report.fail_closed_frames = s.fail_closed_frames;
    report.combed_frames = s.combed_frames;
    report.faces = s.faces;
    report.plates = s.plates;
    report.flicker_frames_without_hold = s.flicker_frames_without_hold;
    report.flicker_frames_with_hold = s.flicker_frames_with_hold;
}

/// The engine's share of a clip's stage times (detection, tracking, waiting for detection).
fn stage_times<T: Send>(engine: &Engine<T, ClipPicture>) -> StageTimes {
    StageTimes {
        detect: engine
            .model_seconds()
            .into_iter()
            .map(|(model, seconds)| ModelTime { model, seconds })
            .collect(),
        detect_workers: engine.workers(),
        intra_threads: engine.intra_threads(),
        track: engine.stats().track_seconds,
        wait_for_detect: engine.stats().wait_for_detect_seconds,
        ..StageTimes::default()
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

#[cfg(test)]
mod tests {
    use super::same_container;

    #[test]
    fn a_clip_is_in_its_own_container_where_the_demuxer_names_the_muxer() {
        let mp4 = "mov,mp4,m4a,3gp,3g2,mj2";
        for muxer in ["mp4", "mov", "3gp"] {
            assert!(same_container(mp4, muxer), "{muxer}");
        }
        assert!(same_container("matroska,webm", "webm"));
        assert!(same_container("matroska,webm", "matroska"));
        assert!(same_container("mpegts", "mpegts"));
        for (demuxer, muxer) in [
            ("dhav", "mp4"),
            ("h264", "mp4"),
            ("mpegts", "mp4"),
            ("mpeg", "mp4"),
            (mp4, "matroska"),
        ] {
            assert!(!same_container(demuxer, muxer), "{demuxer} -> {muxer}");
        }
    }
}

//! The live runner: a camera stream in, the same stream redacted out, in real time. Wiring like
//! the clip runner (source → engine → encoder), with what a stream needs that a file does not:
//!
//! * **Any FFmpeg URL** in and out (`rtsp://`, `tcp://`, `srt://`, `udp://`, HLS, `-` for a
//!   pipe), an explicit muxer for outputs that have no extension (`pipe:1`, `rtsp://`).
//! * **Bounded delay.** No look-ahead by default (`lookahead` frames when asked), frames in
//!   detection bounded by the engine, the encoder without look-ahead (x264 `zerolatency`).
//! * **A degradation ladder instead of a growing queue.** The runner measures how far the frames
//!   it pushes lag behind the stream's own clock. Behind by more than [`LiveOptions::max_lag`],
//!   it first detects fewer frames (every 2nd, 4th, 8th frame, masks held across the gaps; the
//!   balanced preset's models already take turns), and if it is still behind it covers whole
//!   frames without detecting them until it has caught up ([`Fault::Behind`]). A frame is never
//!   passed clear and never queued without bound; every rung and covered frame is counted.
//! * **Reconnects.** When a network input ends or fails after it has streamed, the runner
//!   reconnects with back-off (0.5 s doubling to [`LiveOptions::max_backoff`]); no frame is made
//!   up for the gap, and output timestamps go on from where they stopped, so players and muxers
//!   see one continuous, monotonic stream. The first connection failing is an error.
//! * **Stopping.** [`stop_flag`] (set by the command line's SIGINT/SIGTERM handler) ends the
//!   input, even in a blocking read; frames in flight are finished and the trailer is written, so
//!   the output is playable.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ff::{frame, Dictionary, Rational};
use ffmpeg_next as ff;

use super::decode::{self, Event, Source};
use super::encode::{self, EncoderLink, ToEncoder};
use super::VideoOptions;
use crate::detect::DetectConfig;
use crate::engine::{Engine, Fault, FrameSink, Output};
use crate::error::{Error, Result};
use crate::redact::RedactConfig;

/// Set to stop a live run (from a signal handler: storing to an atomic is async-signal-safe).
pub fn stop_flag() -> &'static AtomicBool {
    static STOP: AtomicBool = AtomicBool::new(false);
    &STOP
}

/// What to read, what to write, and how to keep up.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    /// An FFmpeg URL, a file, or `-` for standard input.
    pub input: String,
    /// An FFmpeg URL, a file, or `-` for standard output.
    pub output: String,
    /// The output muxer (`mpegts`, `matroska`, `mp4`, `flv`, `rtsp`, `hls`, `segment`); `None`:
    /// by the output's scheme or extension, MPEG-TS for `-`.
    pub format: Option<String>,
    /// Read a file input at its own frame rate, as a camera would send it.
    pub realtime: bool,
    /// RTSP transport, `tcp` or `udp`; `None`: FFmpeg's default.
    pub rtsp_transport: Option<String>,
    /// Seconds of a segment (`segment` and `hls` muxers).
    pub segment_seconds: f64,
    /// Seconds the pushed frames may lag behind the stream's clock before the runner degrades.
    pub max_lag: f64,
    /// Longest wait between reconnection attempts, in seconds.
    pub max_backoff: f64,
    /// Seconds between statistics (for the callback).
    pub stats_interval: f64,
    /// Encoder, tracking and thread settings (`track.backfill` is the look-ahead).
    pub video: VideoOptions,
}

/// What a live run counted.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LiveStats {
    /// Seconds since the start.
    pub seconds: f64,
    /// Video frames read from the input.
    pub frames_in: usize,
    /// Frames written.
    pub frames_out: usize,
    /// Frames detection ran on.
    pub detected_frames: usize,
    /// Frames covered whole because detection was behind.
    pub covered_behind: usize,
    /// Frames covered whole for any fault (behind included).
    pub fail_closed_frames: usize,
    /// Faces and plates detected.
    pub faces: usize,
    /// Plates detected.
    pub plates: usize,
    /// Current rung: 0 as configured, 1 to 3 detecting every 2nd, 4th, 8th frame.
    pub degrade_level: usize,
    /// Times the ladder stepped down.
    pub degradations: usize,
    /// Reconnections after the input ended or failed.
    pub reconnects: usize,
    /// Delay added between a frame's arrival and its hand-over to the encoder, milliseconds
    /// (median of the latest 4096 frames).
    pub latency_ms_p50: f64,
    /// 95th percentile of the same.
    pub latency_ms_p95: f64,
    /// Copied packets of other streams dropped because a reconnected input's streams differ.
    pub dropped_packets: usize,
}

/// Rungs of the ladder: detect every `DETECT_EVERY[level]`-times the configured schedule.
const DETECT_FACTOR: [usize; 4] = [1, 2, 4, 8];

struct LiveFrame {
    pts: Option<i64>,
    duration: i64,
    decoded: Option<frame::Video>,
    arrived: Instant,
}

struct LiveSink {
    link: EncoderLink,
    written: usize,
    /// The latest latencies (a window, so that a run of days keeps a bounded memory).
    latencies: std::collections::VecDeque<f64>,
}

/// Latencies kept for the percentiles: the last minute and more at 60 fps.
const LATENCY_WINDOW: usize = 4096;

impl FrameSink<LiveFrame> for LiveSink {
    fn frame(&mut self, out: Output<LiveFrame>) -> Result<()> {
        let Output {
            image,
            payload,
            regions,
            ..
        } = out;
        if self.latencies.len() == LATENCY_WINDOW {
            self.latencies.pop_front();
        }
        self.latencies
            .push_back(payload.arrived.elapsed().as_secs_f64() * 1e3);
        self.link.send(ToEncoder::Frame {
            img: image,
            decoded: payload.decoded,
            regions,
            pts: payload.pts,
            duration: payload.duration,
        })?;
        self.written += 1;
        Ok(())
    }
}

fn live_err(what: &str, url: &str, why: impl std::fmt::Display) -> Error {
    Error::Video {
        path: url.into(),
        reason: format!("{what}: {why}"),
    }
}

fn input_url(input: &str) -> String {
    if input == "-" {
        "pipe:0".into()
    } else if input.contains("://") || input.starts_with("pipe:") {
        input.into()
    } else {
        format!("file:{input}")
    }
}

fn is_network(input: &str) -> bool {
    input.contains("://") && !input.starts_with("file:")
}

/// The muxer for `output`: given, by scheme, or by extension.
pub fn live_muxer(output: &str, format: Option<&str>) -> Result<String> {
    if let Some(f) = format {
        return Ok(f.to_string());
    }
    let by_scheme = [
        ("rtsp://", "rtsp"),
        ("rtmp://", "flv"),
        ("srt://", "mpegts"),
        ("udp://", "mpegts"),
        ("tcp://", "mpegts"),
    ];
    if output == "-" {
        return Ok("mpegts".into());
    }
    if let Some((_, m)) = by_scheme.iter().find(|(s, _)| output.starts_with(s)) {
        return Ok(m.to_string());
    }
    super::muxer_for(Path::new(output))
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidSetting {
            name: "format",
            value: output.to_string(),
            allowed: "an output with a clip extension or scheme, or -f mpegts|matroska|mp4|flv|rtsp|hls|segment",
        })
}

/// Opens the input, with the options a stream needs.
fn open_input(o: &LiveOptions, url: &str) -> Result<ff::format::context::Input> {
    let mut d = Dictionary::new();
    if let Some(t) = &o.rtsp_transport {
        d.set("rtsp_transport", t);
    }
    if is_network(url) {
        // A silent camera is an ended input after 10 s (then reconnected), not a hang.
        d.set("rw_timeout", "10000000");
        if url.starts_with("rtsp://") {
            d.set("timeout", "10000000");
        }
    }
    super::open::input_url(url, o.video.max_pixels, d, Some(stop_flag())).map_err(|e| match e {
        super::open::OpenError::Ffmpeg(e) => live_err("cannot open the input", url, e),
        super::open::OpenError::TooLarge(w, h) => Error::TooLarge {
            path: url.into(),
            width: w,
            height: h,
            max_pixels: o.video.max_pixels,
        },
    })
}

/// Runs a live stream until the input ends (a file or a pipe), a stop is requested, or a fault
/// stops it; `stats` is called every `stats_interval` seconds and once at the end.
pub fn run_live(
    o: &LiveOptions,
    detect: &DetectConfig,
    redact: &RedactConfig,
    stats: &mut dyn FnMut(&LiveStats),
) -> Result<LiveStats> {
    super::transcode::init();
    redact.validate()?;
    let url = input_url(&o.input);
    let out_url = if o.output == "-" {
        "pipe:1".to_string()
    } else {
        o.output.clone()
    };
    let muxer = live_muxer(&o.output, o.format.as_deref())?;
    let mut video = o.video.clone();
    video.zero_latency = true;
    video.max_frames = None;
    let shown = Path::new(&o.output);

    let mut ictx = open_input(o, &url)?;
    let (vindex, decoder) = decode::open_decoder(&ictx, Path::new(&o.input), video.max_pixels, 1)?;
    let ist = ictx
        .stream(vindex)
        .ok_or_else(|| live_err("the video stream", &url, "vanished"))?;
    let (rotation, tb) = (decode::rotation_of(&ist), ist.time_base());
    let (w, h) = (decoder.width(), decoder.height());
    let octx = super::open::output_url(&out_url, &muxer)
        .map_err(|e| live_err("cannot open the output", &o.output, e))?;
    let mut header = Dictionary::new();
    match muxer.as_str() {
        "mp4" | "mov" => header.set("movflags", "frag_keyframe+empty_moov+default_base_moof"),
        "segment" => {
            header.set("segment_time", &o.segment_seconds.to_string());
            header.set("reset_timestamps", "1");
        }
        "hls" => {
            header.set("hls_time", &o.segment_seconds.to_string());
            header.set("hls_list_size", "10");
            header.set("hls_flags", "delete_segments");
        }
        _ => {}
    }
    let opened = encode::open_output(
        &ictx,
        vindex,
        &decoder,
        octx,
        (shown, &muxer),
        &video,
        header,
    )?;
    let kinds = stream_kinds(&ictx);
    let (link, spent) = EncoderLink::start(opened.parts, shown)?;
    let mut engine: Engine<LiveFrame> = Engine::new(&video.engine(detect, redact, rotation))?;
    let base_every = engine.detect_every();
    let mut sink = LiveSink {
        link,
        written: 0,
        latencies: std::collections::VecDeque::new(),
    };
    let mut s = LiveStats::default();
    let started = Instant::now();
    let mut last_stats = Instant::now();
    // Output time goes on across reconnects: `next_out` seconds is where the next input starts.
    let mut next_out = 0.0f64;
    let mut spent = Some(spent);
    let mut stream_map = opened.stream_map;
    let mut decoder = Some(decoder);
    let mut backoff = 0.5f64;
    let mut calm_since: Option<f64> = None;
    loop {
        let session_start = Instant::now();
        let dec = decoder.take().expect("a decoder for every session");
        let mut source = Source::new(
            &mut ictx,
            Path::new(&o.input),
            dec,
            vindex,
            stream_map.clone(),
            encode::encoder_format(w, h),
            spent
                .take()
                .expect("the spent channel goes from session to session"),
            None,
        );
        // The session's first time (seconds) and the wall clock it arrived at.
        let mut origin: Option<(f64, Instant)> = None;
        let mut min_lag = f64::INFINITY;
        let mut end_of_session = 0.0f64;
        let tbs = |r: Rational| f64::from(r.numerator()) / f64::from(r.denominator().max(1));
        let vtb = tbs(tb);
        let session: Result<()> = (|| {
            while !stop_flag().load(Ordering::Relaxed) {
                let Some(event) = source.next_event()? else {
                    break;
                };
                match event {
                    Event::Packet {
                        mut packet,
                        from,
                        stream,
                    } => {
                        let Some(t) = packet.pts().or(packet.dts()) else {
                            continue;
                        };
                        let secs = t as f64 * tbs(from);
                        let (first, _) = *origin.get_or_insert((secs, Instant::now()));
                        let shift = ((next_out - first) / tbs(from)).round() as i64;
                        packet.set_pts(packet.pts().map(|p| p + shift));
                        packet.set_dts(packet.dts().map(|p| p + shift));
                        end_of_session = end_of_session
                            .max((t + packet.duration()) as f64 * tbs(from) - first + next_out);
                        sink.link.send(ToEncoder::Packet {
                            packet,
                            from,
                            stream,
                        })?;
                    }
                    Event::Frame(f) => {
                        let now = Instant::now();
                        s.frames_in += 1;
                        let secs = f.pts.map_or(0.0, |p| p as f64 * vtb);
                        let (first, wall0) = *origin.get_or_insert((secs, now));
                        let media = secs - first;
                        if o.realtime {
                            let due = wall0 + Duration::from_secs_f64(media.max(0.0));
                            if due > now {
                                std::thread::sleep(due - now);
                            }
                        }
                        let lag = wall0.elapsed().as_secs_f64() - media;
                        min_lag = min_lag.min(lag);
                        let behind = lag - min_lag;
                        let pts = f.pts.map(|p| p + ((next_out - first) / vtb).round() as i64);
                        end_of_session =
                            end_of_session.max(next_out + media + f.duration.max(0) as f64 * vtb);
                        // The ladder: down a rung while behind, up one after 2 s of calm.
                        if behind > o.max_lag {
                            calm_since = None;
                            if s.degrade_level + 1 < DETECT_FACTOR.len()
                                && engine.detect_every()
                                    < base_every * DETECT_FACTOR[s.degrade_level + 1]
                            {
                                s.degrade_level += 1;
                                s.degradations += 1;
                                engine
                                    .set_detect_every(base_every * DETECT_FACTOR[s.degrade_level]);
                            }
                        } else if behind < o.max_lag / 4.0 && s.degrade_level > 0 {
                            let since = *calm_since.get_or_insert(media);
                            if media - since > 2.0 {
                                s.degrade_level -= 1;
                                engine
                                    .set_detect_every(base_every * DETECT_FACTOR[s.degrade_level]);
                                calm_since = Some(media);
                            }
                        }
                        let top = s.degrade_level + 1 == DETECT_FACTOR.len();
                        let fault = if f.fault.is_none() && top && behind > 2.0 * o.max_lag {
                            s.covered_behind += 1;
                            Some(Fault::Behind)
                        } else {
                            f.fault
                        };
                        let payload = LiveFrame {
                            pts,
                            duration: f.duration,
                            decoded: f.decoded,
                            arrived: now,
                        };
                        engine.push(f.image, payload, fault, &mut sink)?;
                    }
                }
                if last_stats.elapsed().as_secs_f64() >= o.stats_interval {
                    last_stats = Instant::now();
                    fill(&mut s, &engine, &sink, started);
                    stats(&s);
                }
            }
            Ok(())
        })();
        spent = Some(source.into_spent());
        next_out = next_out.max(end_of_session);
        let streamed = s.frames_in > 0;
        let stop = stop_flag().load(Ordering::Relaxed);
        match session {
            Err(e) if !streamed || !is_network(&url) => {
                let _ = engine.finish(&mut sink);
                let _ = finish_link(sink);
                return Err(e);
            }
            _ if stop || !is_network(&url) => break,
            _ => {}
        }
        // The input ended or failed after streaming: reconnect, with back-off, until stopped.
        if session_start.elapsed().as_secs_f64() > 10.0 {
            backoff = 0.5;
        }
        // Frames in flight are finished now: nothing waits in the engine across the gap.
        engine.wait(&mut sink)?;
        let reopened = loop {
            if stop_flag().load(Ordering::Relaxed) {
                break None;
            }
            sleep_unless_stopped(backoff);
            backoff = (backoff * 2.0).min(o.max_backoff.max(0.5));
            if let Ok(ctx) = open_input(o, &url) {
                break Some(ctx);
            }
        };
        let Some(ctx) = reopened else { break };
        let (vi, dec) = decode::open_decoder(&ctx, Path::new(&o.input), video.max_pixels, 1)?;
        if (dec.width(), dec.height()) != (w, h) || vi != vindex {
            let _ = engine.finish(&mut sink);
            let _ = finish_link(sink);
            return Err(live_err(
                "the reconnected input",
                &url,
                format!(
                    "its picture is {}x{} (stream {vi}), the output's {w}x{h} (stream {vindex})",
                    dec.width(),
                    dec.height()
                ),
            ));
        }
        // Copied streams go on only where the new input has the same kinds of streams.
        if stream_kinds(&ctx) != kinds {
            stream_map = vec![None; ctx.nb_streams() as usize];
            s.dropped_packets += 1;
        }
        ictx = ctx;
        decoder = Some(dec);
        s.reconnects += 1;
    }
    engine.finish(&mut sink)?;
    fill(&mut s, &engine, &sink, started);
    finish_link(sink)?;
    stats(&s);
    Ok(s)
}

fn stream_kinds(ictx: &ff::format::context::Input) -> Vec<String> {
    ictx.streams()
        .map(|s| format!("{:?}", s.parameters().medium()))
        .collect()
}

fn sleep_unless_stopped(seconds: f64) {
    let until = Instant::now() + Duration::from_secs_f64(seconds);
    while Instant::now() < until && !stop_flag().load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finish_link(sink: LiveSink) -> Result<()> {
    sink.link.finish().map(|_| ())
}

fn fill(s: &mut LiveStats, engine: &Engine<LiveFrame>, sink: &LiveSink, started: Instant) {
    let e = engine.stats();
    s.seconds = started.elapsed().as_secs_f64();
    s.frames_out = sink.written;
    s.detected_frames = e.detected_frames;
    s.fail_closed_frames = e.fail_closed_frames;
    s.faces = e.faces;
    s.plates = e.plates;
    let mut l: Vec<f64> = sink.latencies.iter().copied().collect();
    l.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        l.get(((l.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    s.latency_ms_p50 = pct(0.5);
    s.latency_ms_p95 = pct(0.95);
}

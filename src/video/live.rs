//! The live runner: a camera stream in, the same stream redacted out, in real time. Wiring like
//! the clip runner (source → engine → encoder), with what a stream needs that a file does not:
//!
//! * **Any FFmpeg URL** in and out (`rtsp://`, `tcp://`, `srt://`, `udp://`, HLS, `-` for a
//!   pipe), an explicit muxer for outputs that have no extension (`pipe:1`, `rtsp://`).
//! * **Bounded delay.** No look-ahead by default (`lookahead` frames when asked), frames in
//!   detection bounded by the engine, the encoder without look-ahead (x264 `zerolatency`).
//! * **A degradation ladder instead of a growing queue.** The runner measures how far the frames
//!   it pushes lag behind the stream's own clock, and the delay it adds to the latest frames out.
//!   When either passes [`LiveOptions::max_lag`], it first detects fewer frames (every 2nd, then
//!   4th frame, masks held across the gaps; the balanced preset's models already take turns),
//!   then detects with lighter plans (a smaller working size, no tiles:
//!   [`crate::detect::PassPlan::light`]), and if it is still behind it covers whole frames
//!   without detecting them until it has caught up ([`Fault::Behind`]). A frame is never passed
//!   clear and never queued without bound; every rung and covered frame is counted.
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

use ff::{Dictionary, Rational};
use ffmpeg_next as ff;

use super::decode::{self, Event, Source};
use super::encode::{self, EncoderLink, ToEncoder};
use super::picture::ClipPicture;
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
    /// RTSP transport, `tcp` or `udp`, for an RTSP input and an RTSP output; `None`: FFmpeg's
    /// default.
    pub rtsp_transport: Option<String>,
    /// Seconds of a segment (`segment` and `hls` muxers).
    pub segment_seconds: f64,
    /// Seconds the pushed frames may lag behind the stream's clock, or the frames out be delayed,
    /// before the runner degrades; frames lagging twice this on the last rung are covered whole.
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
    /// Of the detected frames, those detected with the light plans (ladder rungs 3 and 4).
    pub light_frames: usize,
    /// Current rung: 0 as configured, 1 and 2 detecting every 2nd and 4th frame, 3 and 4 every
    /// 2nd and 4th with the light plans (a smaller working size, no tiles). (Every 8th was tried
    /// and dropped: under load a walking face outran its held mask between detections.)
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
    /// Reconnections after which copied or re-encoded streams (audio) were dropped, because the
    /// new input's streams differ from the first's (their kinds, or a re-encoded one's rate or
    /// channels).
    pub copy_dropped_reconnects: usize,
}

/// One rung of the ladder: detect every `every`-times the configured schedule, with the light
/// plans when `light`.
#[derive(Clone, Copy)]
struct Rung {
    every: usize,
    light: bool,
}

/// The ladder's rungs, each cheaper than the one before: the configured schedule, every 2nd and
/// 4th of its frames, then the light plans ([`crate::detect::PassPlan::light`], about a third of
/// the pixels on a 720p or 1080p frame) on every 2nd and 4th. Beyond the last, frames are covered
/// whole. Thinning comes before the light plans because a held mask still covers a face between
/// detected frames, while the light plans can miss a small face on every frame they look at.
const RUNGS: [Rung; 5] = [
    Rung {
        every: 1,
        light: false,
    },
    Rung {
        every: 2,
        light: false,
    },
    Rung {
        every: 4,
        light: false,
    },
    Rung {
        every: 2,
        light: true,
    },
    Rung {
        every: 4,
        light: true,
    },
];

struct LiveFrame {
    pts: Option<i64>,
    duration: i64,
    arrived: Instant,
}

struct LiveSink {
    link: EncoderLink,
    written: usize,
    /// The latest latencies (a window, so that a run of days keeps a bounded memory).
    latencies: std::collections::VecDeque<f64>,
}

/// Longest time between two key frames of a live output, seconds.
const KEYFRAME_SECONDS: f64 = 2.0;

/// Latencies kept for the percentiles: the last minute and more at 60 fps.
const LATENCY_WINDOW: usize = 4096;

/// Frames out over which [`LiveSink::recent_delay`] looks: a detected frame and the frames held
/// behind it on the ladder's thinnest rung.
const RECENT: usize = 4;

impl LiveSink {
    /// The longest delay of the latest frames out, seconds.
    fn recent_delay(&self) -> f64 {
        self.latencies
            .iter()
            .rev()
            .take(RECENT)
            .fold(0.0f64, |a, &b| a.max(b))
            / 1e3
    }
}

impl FrameSink<LiveFrame, ClipPicture> for LiveSink {
    fn frame(&mut self, out: Output<LiveFrame, ClipPicture>) -> Result<()> {
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
        self.link
            .frame(image, &regions, payload.pts, payload.duration)?;
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

/// The ladder: how many frames are detected, and whether a frame is covered whole, from how far
/// the frames pushed lag behind the stream's clock. One rung per second of stream time at most
/// (per quarter second when frames are late enough to be covered), down while behind, back up
/// after calm seconds: two at first, twice as many each time a climb
/// is followed by a fall within [`CLIMB_TRIAL`] seconds (up to [`MAX_CLIMB_WAIT`]), and half as
/// many again after a climb that held. Without that memory the ladder swings: a scene that only
/// the light rungs keep up with climbs back to the full plans after every calm spell, falls
/// behind there, and covers frames on its way down (crowd at 720p: 28 % of frames covered with
/// the memory but a one-second descent, 34 % with neither; 4–6 % with the memory and the quick
/// descent; see BENCHMARKS.md).
struct Ladder {
    base_every: usize,
    max_lag: f64,
    level: usize,
    degradations: usize,
    covered: usize,
    last_change: f64,
    calm_since: Option<f64>,
    /// Calm seconds needed before the next climb.
    climb_wait: f64,
    /// When the last climb was, while it is on trial.
    climbed_at: Option<f64>,
}

/// Seconds after a climb within which a fall doubles the calm needed for the next climb.
const CLIMB_TRIAL: f64 = 10.0;
/// Most calm seconds a climb waits for.
const MAX_CLIMB_WAIT: f64 = 32.0;

impl Ladder {
    fn new(base_every: usize, max_lag: f64) -> Ladder {
        Ladder {
            base_every,
            max_lag,
            level: 0,
            degradations: 0,
            covered: 0,
            last_change: f64::NEG_INFINITY,
            calm_since: None,
            climb_wait: 2.0,
            climbed_at: None,
        }
    }

    /// For a frame `behind` seconds late at stream time `media` (of a session that began at
    /// `media` 0), while the latest frames out were delayed up to `delay` seconds: moves along the
    /// ladder (the caller applies [`Ladder::rung`] when the level changed); returns whether to
    /// cover the frame. A delay above the bound steps down like a lag (a rung whose detection
    /// alone takes longer than the bound never keeps the delay in it, however few frames it
    /// detects), and a climb waits for a delay under half the bound, but only a lag covers frames.
    fn step(&mut self, behind: f64, delay: f64, media: f64) -> bool {
        if media < self.last_change {
            // A new session's clock starts again at 0.
            self.last_change = media;
            self.calm_since = None;
            self.climbed_at = None;
        }
        if self.climbed_at.is_some_and(|at| media - at >= CLIMB_TRIAL) {
            // The climb held: climbing gets easier again.
            self.climb_wait = (self.climb_wait / 2.0).max(2.0);
            self.climbed_at = None;
        }
        // A rung is given a second to show what it does, a quarter of one when the frames are
        // already late enough to be covered: waiting the full second there costs covered frames.
        let trial = if behind > 2.0 * self.max_lag {
            0.25
        } else {
            1.0
        };
        let settled = media - self.last_change >= trial;
        if behind > self.max_lag || delay > self.max_lag {
            self.calm_since = None;
            if settled && self.level + 1 < RUNGS.len() {
                if self.climbed_at.take().is_some() {
                    self.climb_wait = (self.climb_wait * 2.0).min(MAX_CLIMB_WAIT);
                }
                self.level += 1;
                self.degradations += 1;
                self.last_change = media;
            }
        } else if behind < self.max_lag / 4.0 && delay < self.max_lag / 2.0 && self.level > 0 {
            let since = *self.calm_since.get_or_insert(media);
            if media - since >= self.climb_wait {
                self.level -= 1;
                self.last_change = media;
                self.calm_since = Some(media);
                self.climbed_at = Some(media);
            }
        }
        let cover = self.level + 1 == RUNGS.len() && behind > 2.0 * self.max_lag;
        self.covered += usize::from(cover);
        cover
    }

    /// The current rung's schedule (every how many frames one is detected) and plans.
    fn rung(&self) -> (usize, bool) {
        let rung = RUNGS[self.level];
        (self.base_every * rung.every, rung.light)
    }
}

/// One input session's clock: its timestamps mapped onto the output's, which start at `offset`
/// seconds (where the previous session ended) so that time runs on across reconnects.
struct Clock {
    offset: f64,
    /// The session's first timestamp, seconds, and the wall clock when it arrived.
    origin: Option<(f64, Instant)>,
    /// Where the session's output ends, seconds.
    end: f64,
    min_lag: f64,
}

fn seconds(r: Rational) -> f64 {
    f64::from(r.numerator()) / f64::from(r.denominator().max(1))
}

impl Clock {
    fn new(offset: f64) -> Clock {
        Clock {
            offset,
            origin: None,
            end: offset,
            min_lag: f64::INFINITY,
        }
    }

    /// The shift (in units of `tb`) that moves a timestamp of this session, whose value is `t`
    /// in `tb`, onto the output's time; the first timestamp seen starts the session's clock.
    fn shift(&mut self, t: i64, tb: Rational, duration: i64) -> i64 {
        let secs = t as f64 * seconds(tb);
        let (first, _) = *self.origin.get_or_insert((secs, Instant::now()));
        self.end = self
            .end
            .max(self.offset + secs - first + duration.max(0) as f64 * seconds(tb));
        ((self.offset - first) / seconds(tb)).round() as i64
    }

    /// Seconds of stream time since the session's start, and how far behind the wall clock the
    /// frame at `secs` is, above the least lag seen (the network's own delay).
    fn lag(&mut self, secs: f64, realtime: bool) -> (f64, f64) {
        let (first, wall0) = *self.origin.get_or_insert((secs, Instant::now()));
        let media = secs - first;
        if realtime {
            let due = wall0 + Duration::from_secs_f64(media.max(0.0));
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let lag = wall0.elapsed().as_secs_f64() - media;
        self.min_lag = self.min_lag.min(lag);
        (media, lag - self.min_lag)
    }
}

/// A session's source, lent to its reader thread for the session.
struct Lent<'s, 'a>(&'s mut Source<'a>);

// SAFETY: `Source` is not `Send` only because it holds FFmpeg contexts (the demuxer's, the
// decoder's, the scaler's) behind raw pointers. FFmpeg lets a context be used from any thread as
// long as one thread at a time uses it. The `&mut` is moved into the reader thread, which is then
// the only user of the source; the thread is scoped and joined before `session` returns and its
// caller touches the source again.
unsafe impl Send for Lent<'_, '_> {}

/// A live run's state between sessions: the engine, the encoder, the ladder, the counts.
struct Live<'a> {
    o: &'a LiveOptions,
    engine: Engine<LiveFrame, ClipPicture>,
    sink: LiveSink,
    ladder: Ladder,
    stats: LiveStats,
    started: Instant,
    last_stats: Instant,
    report: &'a mut dyn FnMut(&LiveStats),
}

impl Live<'_> {
    /// Reads one input session to its end (or a stop), pushing its frames and copied packets.
    /// Runs one input session. The input is read on its own thread, so that a frame whose
    /// detection has finished leaves for the encoder at once, not when the next frame arrives
    /// (frames can reach it in bursts: on cars_432p served over TCP, a pause of about half a
    /// second every 20 frames, which tripled the delay of the frames waiting then).
    fn session(
        &mut self,
        source: &mut Source<'_>,
        clock: &mut Clock,
        video_tb: Rational,
    ) -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(Event, Instant)>(2);
        let lent = Lent(source);
        std::thread::scope(|scope| {
            let reader = scope.spawn(move || -> Result<()> {
                // Moved whole (a closure would otherwise capture only the field, which is not Send).
                let lent = lent;
                let source = lent.0;
                while !stop_flag().load(Ordering::Relaxed) {
                    let Some(event) = source.next_event()? else {
                        break;
                    };
                    if tx.send((event, Instant::now())).is_err() {
                        break;
                    }
                }
                Ok(())
            });
            let handled = self.handle_events(&rx, clock, video_tb);
            drop(rx); // a reader blocked on a full channel stops
            let read = reader.join().unwrap_or_else(|_| {
                Err(Error::Engine {
                    reason: "the input reader panicked".into(),
                })
            });
            handled.and(read)
        })
    }

    /// Handles what the reader sends until it stops; between events, releases the frames whose
    /// detection has finished.
    fn handle_events(
        &mut self,
        rx: &std::sync::mpsc::Receiver<(Event, Instant)>,
        clock: &mut Clock,
        video_tb: Rational,
    ) -> Result<()> {
        use std::sync::mpsc::RecvTimeoutError;
        loop {
            // Statistics keep their rhythm while the camera is silent, too.
            if self.last_stats.elapsed().as_secs_f64() >= self.o.stats_interval {
                self.last_stats = Instant::now();
                self.report_now();
            }
            let (event, arrived) = match rx.recv_timeout(Duration::from_millis(5)) {
                Ok(e) => e,
                Err(RecvTimeoutError::Timeout) => {
                    self.engine.poll(&mut self.sink)?;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
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
                    let shift = clock.shift(t, from, packet.duration());
                    packet.set_pts(packet.pts().map(|p| p + shift));
                    packet.set_dts(packet.dts().map(|p| p + shift));
                    self.sink.link.send(ToEncoder::Packet {
                        packet,
                        from,
                        stream,
                    })?;
                }
                Event::Frame(f) => self.frame(f, arrived, clock, video_tb)?,
            }
        }
    }

    fn frame(
        &mut self,
        f: decode::DecodedFrame,
        arrived: Instant,
        clock: &mut Clock,
        tb: Rational,
    ) -> Result<()> {
        self.stats.frames_in += 1;
        let t = f.pts.unwrap_or(0);
        let (media, behind) = clock.lag(t as f64 * seconds(tb), self.o.realtime);
        let shift = clock.shift(t, tb, f.duration);
        let level = self.ladder.level;
        let cover = self.ladder.step(behind, self.sink.recent_delay(), media);
        if self.ladder.level != level {
            let (every, light) = self.ladder.rung();
            self.engine.set_detect_every(every);
            self.engine.set_light(light);
        }
        let fault = match f.fault {
            None if cover => Some(Fault::Behind),
            fault => fault,
        };
        let payload = LiveFrame {
            pts: f.pts.map(|p| p + shift),
            duration: f.duration,
            arrived,
        };
        self.engine.push(f.picture, payload, fault, &mut self.sink)
    }

    fn report_now(&mut self) {
        fill(&mut self.stats, &self.engine, &self.sink, self.started);
        self.stats.degrade_level = self.ladder.level;
        self.stats.degradations = self.ladder.degradations;
        self.stats.covered_behind = self.ladder.covered;
        (self.report)(&self.stats);
    }

    /// Finishes the frames in flight and the output (trailer written).
    fn close(mut self) -> Result<LiveStats> {
        self.engine.finish(&mut self.sink)?;
        self.report_now();
        let Live { sink, stats, .. } = self;
        sink.link.finish()?;
        Ok(stats)
    }
}

/// The output opened for `ictx`'s video stream, with the muxer options a stream needs.
fn open_live_output(
    o: &LiveOptions,
    ictx: &ff::format::context::Input,
    vindex: usize,
    decoder: &ff::decoder::Video,
    video: &VideoOptions,
) -> Result<encode::Opened> {
    let muxer = live_muxer(&o.output, o.format.as_deref())?;
    let url = if o.output == "-" { "pipe:1" } else { &o.output };
    let octx = super::open::output_url(url, &muxer)
        .map_err(|e| live_err("cannot open the output", &o.output, e))?;
    let mut header = Dictionary::new();
    let segment = o.segment_seconds.to_string();
    match muxer.as_str() {
        "mp4" | "mov" => header.set("movflags", "frag_keyframe+empty_moov+default_base_moof"),
        "rtsp" => {
            if let Some(t) = &o.rtsp_transport {
                header.set("rtsp_transport", t);
            }
        }
        "segment" => {
            header.set("segment_time", &segment);
            header.set("reset_timestamps", "1");
        }
        "hls" => {
            header.set("hls_time", &segment);
            header.set("hls_list_size", "10");
            header.set("hls_flags", "delete_segments");
        }
        _ => {}
    }
    let shown = Path::new(&o.output);
    // Sound the output cannot carry (the G.711 most cameras send, in MP4, Matroska or MPEG-TS)
    // is encoded again as AAC, as in a clip; each reconnection gets coders of its own.
    encode::open_output(
        ictx,
        vindex,
        decoder,
        octx,
        (shown, &muxer),
        video,
        header,
        true,
    )
}

/// Opens the input again after it dropped, waiting `backoff` seconds (doubling, up to the
/// options' most) between attempts; `None` when a stop is requested first.
fn reconnect(o: &LiveOptions, url: &str, backoff: &mut f64) -> Option<ff::format::context::Input> {
    loop {
        if stop_flag().load(Ordering::Relaxed) {
            return None;
        }
        sleep_unless_stopped(*backoff);
        *backoff = (*backoff * 2.0).min(o.max_backoff.max(0.5));
        if let Ok(ctx) = open_input(o, url) {
            return Some(ctx);
        }
    }
}

/// Runs a live stream until the input ends (a file or a pipe), a stop is requested, or a fault
/// stops it; `report` is called every `stats_interval` seconds and once at the end.
pub fn run_live(
    o: &LiveOptions,
    detect: &DetectConfig,
    redact: &RedactConfig,
    report: &mut dyn FnMut(&LiveStats),
) -> Result<LiveStats> {
    super::transcode::init();
    redact.validate()?;
    let url = input_url(&o.input);
    let mut video = o.video.clone();
    video.zero_latency = true;
    video.max_frames = None;
    // A live stream is encoded in real time whatever detection does (it falls back to lighter
    // plans instead of falling behind): the encoder keeps the budget.
    video.codec_threads = None;
    let name = Path::new(&o.input);
    let mut ictx = open_input(o, &url)?;
    let (vindex, first_decoder) = decode::open_decoder(&ictx, name, video.max_pixels, 1)?;
    let ist = ictx
        .stream(vindex)
        .ok_or_else(|| live_err("the video stream", &url, "vanished"))?;
    let (shown, tb) = (decode::Showing::of(&ictx, &ist), ist.time_base());
    // A key frame every KEYFRAME_SECONDS (or every segment, when segments are shorter): x264's
    // default of 250 frames kept a viewer joining at 25 fps waiting up to 10 s for a picture, and
    // made segments as long as that whatever `--segment-seconds` asked.
    let rate = ist.avg_frame_rate();
    let fps = if rate.numerator() > 0 && rate.denominator() > 0 {
        seconds(rate)
    } else {
        25.0
    };
    let gop_seconds = KEYFRAME_SECONDS.min(o.segment_seconds);
    video.keyframe_interval = Some((fps * gop_seconds).round().clamp(1.0, 600.0) as u32);
    let (w, h) = (first_decoder.width(), first_decoder.height());
    let opened = open_live_output(o, &ictx, vindex, &first_decoder, &video)?;
    // Fixed for the whole run: a reconnected stream in the other range is converted.
    let full_range = opened.parts.full_range();
    let format = opened.parts.format();
    let kinds = stream_kinds(&ictx);
    let (link, spent) =
        EncoderLink::start(opened.parts, Path::new(&o.output), EncoderLink::LIVE_QUEUE)?;
    let mut engine: Engine<LiveFrame, ClipPicture> = Engine::new(&crate::engine::EngineConfig {
        pixel_aspect: shown.pixel_aspect,
        interlaced: shown.interlaced,
        transfer: shown.transfer,
        ..video.engine(detect, redact, shown.rotation)
    })?;
    // One frame waiting beyond those in detection: a frame's delay is its own detection and the
    // wait for one more, and a backlog shows as lag (in the input), where the ladder acts on it.
    engine.set_max_waiting(engine.workers() + 1);
    let mut live = Live {
        o,
        ladder: Ladder::new(engine.detect_every(), o.max_lag),
        engine,
        sink: LiveSink {
            link,
            written: 0,
            latencies: std::collections::VecDeque::new(),
        },
        stats: LiveStats::default(),
        started: Instant::now(),
        last_stats: Instant::now(),
        report,
    };
    let (mut spent, mut stream_map, mut decoder) = (spent, opened.stream_map, first_decoder);
    let mut sound = opened.reencoders;
    let mut offset = 0.0f64;
    let mut backoff = 0.5f64;
    loop {
        let session_start = Instant::now();
        let map = stream_map.clone();
        let mut source = Source::new(&mut ictx, name, decoder, vindex, map, format, spent, None);
        source.encoder_writes_full_range(full_range);
        source.reencode(std::mem::take(&mut sound));
        let mut clock = Clock::new(offset);
        let ended = live.session(&mut source, &mut clock, tb);
        sound = source.take_reencoders();
        spent = source.into_spent();
        offset = clock.end;
        let network = is_network(&url);
        match ended {
            Err(e) if live.stats.frames_in == 0 || !network => {
                let _ = live.close();
                return Err(e);
            }
            _ if stop_flag().load(Ordering::Relaxed) || !network => break,
            _ => {}
        }
        // The input ended or failed after streaming: reconnect, with back-off, until stopped.
        // Frames in flight are finished first: nothing waits in the engine across the gap.
        live.engine.wait(&mut live.sink)?;
        if session_start.elapsed().as_secs_f64() > 10.0 {
            backoff = 0.5;
        }
        let Some(ctx) = reconnect(o, &url, &mut backoff) else {
            break;
        };
        let (vi, dec) = decode::open_decoder(&ctx, name, video.max_pixels, 1)?;
        if (dec.width(), dec.height()) != (w, h) || vi != vindex {
            let _ = live.close();
            let why = format!(
                "its picture is {}x{} (stream {vi}), the output's {w}x{h} (stream {vindex})",
                dec.width(),
                dec.height()
            );
            return Err(live_err("the reconnected input", &url, why));
        }
        // Copied streams go on only where the new input has the same kinds of streams.
        if stream_kinds(&ctx) != kinds {
            stream_map = vec![None; ctx.nb_streams() as usize];
            sound.clear();
            live.stats.copy_dropped_reconnects += 1;
        } else if !again(&mut sound, &mut stream_map, &ctx) {
            live.stats.copy_dropped_reconnects += 1;
        }
        (ictx, decoder) = (ctx, dec);
        live.stats.reconnects += 1;
    }
    live.close()
}

/// Fresh coders for the sound `sound` encoded again, from the reconnected input `ctx`'s streams;
/// a stream whose rate or channels changed is dropped from `stream_map`. Says whether every one
/// goes on.
fn again(
    sound: &mut Vec<(usize, super::audio::Reencoder)>,
    stream_map: &mut [Option<usize>],
    ctx: &ff::format::context::Input,
) -> bool {
    let mut all = true;
    *sound = std::mem::take(sound)
        .into_iter()
        .filter_map(|(si, r)| {
            let fresh = ctx.stream(si).and_then(|ist| r.again(&ist));
            if fresh.is_none() {
                stream_map[si] = None;
                all = false;
            }
            fresh.map(|f| (si, f))
        })
        .collect();
    all
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

fn fill(
    s: &mut LiveStats,
    engine: &Engine<LiveFrame, ClipPicture>,
    sink: &LiveSink,
    started: Instant,
) {
    let e = engine.stats();
    s.seconds = started.elapsed().as_secs_f64();
    s.frames_out = sink.written;
    s.detected_frames = e.detected_frames;
    s.light_frames = e.light_frames;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a ladder with `behind(t)` at 25 frames a second for `seconds`; returns the level
    /// and whether the frame was covered, frame by frame.
    fn drive(ladder: &mut Ladder, seconds: f64, behind: impl Fn(f64) -> f64) -> Vec<(usize, bool)> {
        (0..(seconds * 25.0) as usize)
            .map(|k| {
                let t = k as f64 / 25.0;
                let cover = ladder.step(behind(t), 0.0, t);
                (ladder.level, cover)
            })
            .collect()
    }

    #[test]
    fn the_ladder_thins_then_lightens_then_covers_and_climbs_back_when_calm() {
        // Each rung is cheaper than the one before: detected share of frames times the plan's
        // relative cost (light: a third) falls.
        let cost = |r: &Rung| if r.light { 1.0 / 3.0 } else { 1.0 } / r.every as f64;
        assert!(RUNGS.windows(2).all(|w| cost(&w[1]) < cost(&w[0])));
        assert!(!RUNGS[0].light && RUNGS[0].every == 1);
        for base in [1, 2, 3] {
            let mut ladder = Ladder::new(base, 0.5);
            // Far behind for 6 s: one rung a second down to the last, frames covered only there.
            let run = drive(&mut ladder, 6.0, |_| 2.0);
            let first_cover = run.iter().position(|&(_, c)| c).unwrap();
            assert!(run[..first_cover].iter().all(|&(l, _)| l + 1 < RUNGS.len()));
            assert!(run[first_cover..]
                .iter()
                .all(|&(l, c)| c && l + 1 == RUNGS.len()));
            for (k, w) in run.windows(2).enumerate() {
                assert!(w[1].0 <= w[0].0 + 1, "frame {k}: two rungs at once");
            }
            assert_eq!(ladder.degradations, RUNGS.len() - 1);
            assert_eq!(ladder.rung(), (base * 4, true));
            // Behind, but within twice the allowed lag: the last rung detects, covers nothing.
            let run = drive(&mut ladder, 1.0, |_| 0.8);
            assert!(run.iter().all(|&(_, c)| !c));
            // Calm for 2 s per rung: back up to the configured schedule, nothing covered.
            let run = drive(&mut ladder, 2.5 * RUNGS.len() as f64, |_| 0.0);
            assert!(run.iter().all(|&(_, c)| !c));
            assert_eq!(ladder.level, 0);
            assert_eq!(ladder.rung(), (base, false));
        }
    }

    #[test]
    fn a_scene_only_the_light_rungs_keep_up_with_does_not_swing_the_ladder() {
        // Behind on every rung above the light ones, calm on those: after each calm spell the
        // ladder tries the heavier rung again, falls, and waits longer before the next try.
        let mut ladder = Ladder::new(1, 0.5);
        let mut tries = 0;
        let mut prev = 0;
        for k in 0..(600.0 * 25.0) as usize {
            let t = k as f64 / 25.0;
            let behind = if RUNGS[ladder.level].light { 0.0 } else { 2.0 };
            ladder.step(behind, 0.0, t);
            tries += usize::from(ladder.level < prev);
            prev = ladder.level;
        }
        // Waits of 2, 4, 8, 16, then 32 s: about 20 tries in ten minutes, against some 100
        // without the memory.
        assert!(tries <= 25, "{tries} climbs in 10 minutes");
        assert!(tries >= 10, "{tries}: the ladder must still try to climb");
        assert_eq!(ladder.climb_wait, MAX_CLIMB_WAIT);
        // After a climb that holds, climbing gets easier again.
        let mut rest = ladder.level;
        for k in 0..(120.0 * 25.0) as usize {
            ladder.step(0.0, 0.0, 600.0 + k as f64 / 25.0);
            rest = rest.min(ladder.level);
        }
        assert_eq!(rest, 0);
        assert!(ladder.climb_wait < MAX_CLIMB_WAIT);
    }

    #[test]
    fn a_delay_over_the_bound_steps_down_without_covering_and_a_climb_waits_for_half_of_it() {
        let mut ladder = Ladder::new(1, 0.5);
        // The frames keep pace (no lag) but each leaves 0.8 s after it came: down, one rung a
        // second, to the last, where nothing is covered for a delay alone.
        for k in 0..(8.0 * 25.0) as usize {
            assert!(!ladder.step(0.0, 0.8, k as f64 / 25.0));
        }
        assert_eq!(ladder.level, RUNGS.len() - 1);
        // A delay of 0.3 s (under the bound, over half of it): no step either way.
        for k in 0..(10.0 * 25.0) as usize {
            assert!(!ladder.step(0.0, 0.3, 8.0 + k as f64 / 25.0));
        }
        assert_eq!(ladder.level, RUNGS.len() - 1);
        // Under half the bound: the climb.
        for k in 0..(3.0 * 25.0) as usize {
            ladder.step(0.0, 0.2, 18.0 + k as f64 / 25.0);
        }
        assert_eq!(ladder.level, RUNGS.len() - 2);
    }

    #[test]
    fn a_ladder_never_covers_a_frame_while_it_keeps_up() {
        let mut rng = crate::TestRng::new(16);
        for _ in 0..50 {
            let mut ladder = Ladder::new(1, 0.5);
            // Lag anywhere within the allowed lag: never a covered frame, never a rung down.
            let lags: Vec<f64> = (0..500).map(|_| rng.unit() as f64 * 0.5).collect();
            let run = drive(&mut ladder, 20.0, |t| lags[(t * 25.0) as usize]);
            assert!(run.iter().all(|&(l, c)| l == 0 && !c));
        }
    }
}

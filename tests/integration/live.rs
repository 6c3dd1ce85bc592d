//! `bystander live` on real streams over loopback: ffmpeg serves a clip as MPEG-TS on
//! `tcp://127.0.0.1:PORT?listen` at its own rate (`-re`), bystander reads it and writes MPEG-TS to
//! stdout. The clip is generated: the astronaut's face (tests/fixtures) moving across a grey
//! frame, so its place is known in every frame. Checked: every frame comes out, with monotonic
//! timestamps; the moving face is covered in every frame (or the frame is covered whole); the
//! stream survives its server being killed and restarted; an RTSP camera (tests/rtsp_camera.py)
//! is read over TCP and over UDP, and reconnected when it restarts; an RTSP output reaches its
//! receiver whole; memory stays flat over two minutes.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use crate::video::{ffmpeg, frame_times};

const W: usize = 640;
const H: usize = 360;

/// 30 s at 10 fps: the astronaut (scaled to 256 px, face at about (113, 59) in it) moving 4 px a
/// frame, back and forth between x = 360 and 0 (a face walks; it does not jump: one appearing
/// from nowhere between two detected frames is what `--lookahead` is for, see SECURITY.md).
fn moving_face_clip(dir: &Path) -> PathBuf {
    let out = dir.join("moving_face.mp4");
    let face = fixture("astronaut.jpg");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:s=640x360:r=10:d=30",
        "-i",
        face.to_str().unwrap(),
        "-filter_complex",
        "[1]scale=256:256[a];[0][a]overlay=x='abs(mod(4*n,720)-360)':y=50",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-g",
        "20",
        out.to_str().unwrap(),
    ]);
    out
}

fn face_centre(frame: usize) -> (usize, usize) {
    (((4 * frame) % 720).abs_diff(360) + 113, 50 + 59)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// ffmpeg serving `clip` once (or for ever with `looped`) at its own rate on `port`.
fn serve(clip: &Path, port: u16, looped: bool) -> Child {
    serve_as(clip, port, looped, "mpegts")
}

/// [`serve`] in the container `format`.
fn serve_as(clip: &Path, port: u16, looped: bool, format: &str) -> Child {
    let mut c = Command::new("ffmpeg");
    c.args(["-v", "error", "-re"]);
    if looped {
        c.args(["-stream_loop", "-1"]);
    }
    c.arg("-i")
        .arg(clip)
        .args(["-c", "copy", "-f", format])
        .arg(format!("tcp://127.0.0.1:{port}?listen=1"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed (scripts/deps)")
}

/// `bystander live` reading `port`, writing MPEG-TS to `out`, stats every second on stderr.
fn live(port: u16, out: &Path, extra: &[&str]) -> Child {
    live_to("-", port, out, extra)
}

/// `bystander live` reading `port`, writing to `target` (stdout into the file `out` for `-`).
fn live_to(target: &str, port: u16, out: &Path, extra: &[&str]) -> Child {
    live_from(&format!("tcp://127.0.0.1:{port}"), target, out, extra)
}

/// `bystander live` reading the URL `input`, writing to `target` (stdout into `out` for `-`).
fn live_from(input: &str, target: &str, out: &Path, extra: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_bystander"))
        .args(["live", input, "-o", target])
        .args(["--stats", "--stats-interval", "1"])
        .args([
            "--style",
            "fill",
            "--fill-color",
            "FF00FF",
            "--classes",
            "face",
        ])
        .args(extra)
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn interrupt(child: &Child) {
    // SAFETY: sending a signal to a child process we started and have not reaped.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGINT);
    }
}

/// Waits for the run to end; returns its last statistics line.
fn finish(mut child: Child) -> serde_json::Value {
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "live failed: {err}");
    let last = err
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no statistics: {err}"));
    serde_json::from_str(last).unwrap()
}

fn rgb_frames(path: &Path) -> Vec<Vec<u8>> {
    let o = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(path)
        .args([
            "-fps_mode",
            "passthrough",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    o.stdout
        .chunks_exact(W * H * 3)
        .map(|c| c.to_vec())
        .collect()
}

fn magenta(p: &[u8]) -> bool {
    p[0] > 200 && p[1] < 70 && p[2] > 200
}

/// The share of the 16x16 patch around (x, y) that is the fill colour.
fn covered_at(frame: &[u8], (x, y): (usize, usize)) -> f64 {
    let mut n = 0;
    for yy in y - 8..y + 8 {
        for xx in x - 8..x + 8 {
            n += usize::from(magenta(&frame[(yy * W + xx) * 3..]));
        }
    }
    n as f64 / 256.0
}

fn whole_frame_black(frame: &[u8]) -> bool {
    frame.iter().all(|&v| v < 24)
}

fn assert_monotonic(times: &[f64]) {
    for w in times.windows(2) {
        assert!(
            w[1] > w[0],
            "timestamps not increasing: {} then {}",
            w[0],
            w[1]
        );
    }
}

/// A run of 12 s at 10 fps written to `out`: every frame read came out (80 at least), with
/// monotonic timestamps, and the moving face is covered in every frame (or the frame whole).
fn assert_whole_and_covered(out: &Path, stats: &serde_json::Value) {
    let frames = rgb_frames(out);
    let times = frame_times(out);
    assert!(
        frames.len() >= 80,
        "{} frames in 12 s at 10 fps",
        frames.len()
    );
    assert_eq!(frames.len() as u64, stats["frames_out"].as_u64().unwrap());
    assert_eq!(stats["frames_in"], stats["frames_out"], "{stats}");
    assert_eq!(times.len(), frames.len());
    assert_monotonic(&times);
    for (k, f) in frames.iter().enumerate() {
        assert!(
            covered_at(f, face_centre(k)) > 0.9 || whole_frame_black(f),
            "frame {k}: the face at {:?} is not covered",
            face_centre(k)
        );
    }
}

/// A run across a reconnection written to `out`: it reconnected, wrote more than `min_frames`
/// frames with monotonic timestamps and no gap of `max_gap` seconds or more, and every frame
/// shows the fill colour on the face (wherever the restarted clip put it) or is covered whole.
fn assert_runs_on_across_a_reconnection(
    out: &Path,
    stats: &serde_json::Value,
    min_frames: usize,
    max_gap: f64,
) {
    assert!(stats["reconnects"].as_u64().unwrap() >= 1, "{stats}");
    let frames = rgb_frames(out);
    let times = frame_times(out);
    assert_eq!(frames.len() as u64, stats["frames_out"].as_u64().unwrap());
    assert!(frames.len() > min_frames, "{} frames", frames.len());
    assert_monotonic(&times);
    let worst = times.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(worst < max_gap, "a gap of {worst} s");
    for (k, f) in frames.iter().enumerate() {
        let fill = f.chunks_exact(3).filter(|p| magenta(p)).count();
        assert!(
            fill > 1500 || whole_frame_black(f),
            "frame {k}: {fill} px of fill"
        );
    }
}

#[test]
fn a_tcp_stream_comes_out_whole_in_order_and_covered_in_every_frame() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let clip = moving_face_clip(d.path());
    let port = free_port();
    let mut server = serve(&clip, port, false);
    std::thread::sleep(Duration::from_millis(500));
    let out = d.path().join("out.ts");
    let run = live(port, &out, &[]);
    std::thread::sleep(Duration::from_secs(12));
    interrupt(&run);
    let stats = finish(run);
    let _ = server.kill();
    let _ = server.wait();
    assert_whole_and_covered(&out, &stats);
    // The ladder was not needed for long on a 360p stream at 10 fps.
    assert!(stats["covered_behind"].as_u64().unwrap() < 10, "{stats}");
}

#[test]
fn a_dropped_camera_is_reconnected_and_the_output_runs_on() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let clip = moving_face_clip(d.path());
    let port = free_port();
    let mut first = serve(&clip, port, false);
    std::thread::sleep(Duration::from_millis(500));
    let out = d.path().join("out.ts");
    let run = live(port, &out, &["--max-backoff", "1"]);
    std::thread::sleep(Duration::from_secs(5));
    first.kill().unwrap();
    first.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = serve(&clip, port, false);
    std::thread::sleep(Duration::from_secs(6));
    interrupt(&run);
    let stats = finish(run);
    let _ = second.kill();
    let _ = second.wait();
    // No gap is written: time runs on at the frame rate across the reconnection.
    assert_runs_on_across_a_reconnection(&out, &stats, 60, 0.25);
}

/// `ffprobe`'s `entries` of every stream of `path`, as CSV without names.
fn stream_entries(path: &Path, entries: &str) -> String {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-show_entries", entries, "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// Times of every packet of the first sound stream of `path`, in seconds.
fn sound_times(path: &Path) -> Vec<f64> {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "a:0"])
        .args(["-show_entries", "packet=pts_time", "-of", "csv=p=0"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect()
}

/// A camera that sends G.711 (most IP cameras and doorbells do) keeps its sound in the default
/// MPEG-TS output, encoded again as AAC (MPEG-TS has no stream type for G.711: copied, it came
/// out as a data stream no player plays), and across a reconnection, in time with the picture.
#[test]
fn a_cameras_g711_sound_goes_on_as_aac_across_a_reconnection() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let picture = moving_face_clip(d.path());
    let clip = d.path().join("camera.mkv");
    ffmpeg(&[
        "-i",
        picture.to_str().unwrap(),
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=8000:duration=30",
        "-c:v",
        "copy",
        "-c:a",
        "pcm_alaw",
        clip.to_str().unwrap(),
    ]);
    let port = free_port();
    let mut first = serve_as(&clip, port, false, "matroska");
    std::thread::sleep(Duration::from_millis(500));
    let out = d.path().join("out.ts");
    let run = live(port, &out, &["--max-backoff", "1"]);
    std::thread::sleep(Duration::from_secs(5));
    first.kill().unwrap();
    first.wait().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let mut second = serve_as(&clip, port, false, "matroska");
    std::thread::sleep(Duration::from_secs(6));
    interrupt(&run);
    let stats = finish(run);
    let _ = second.kill();
    let _ = second.wait();
    assert_runs_on_across_a_reconnection(&out, &stats, 60, 0.25);
    assert_eq!(stats["copy_dropped_reconnects"], 0, "{stats}");
    let kinds = stream_entries(&out, "stream=codec_name");
    assert!(kinds.contains("aac"), "{kinds}");
    // Sound from both sessions, without a hole, over the picture's span.
    let (sound, picture) = (sound_times(&out), frame_times(&out));
    let span = |t: &[f64]| t.last().unwrap() - t.first().unwrap();
    assert!(
        span(&sound) > 0.8 * span(&picture),
        "sound over {} s, picture over {} s",
        span(&sound),
        span(&picture)
    );
    let worst = sound.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
    assert!(worst < 0.5, "a hole of {worst} s in the sound");
    assert!(
        (sound[0] - picture[0]).abs() < 0.5,
        "sound starts at {} s, picture at {} s",
        sound[0],
        picture[0]
    );
}

/// RTSP out: ffmpeg listens as an RTSP receiver (Debian's ffmpeg can receive a published RTSP
/// stream, though not serve one to a player), bystander publishes to it over TCP.
#[test]
fn an_rtsp_output_reaches_its_receiver_whole_and_covered() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let clip = moving_face_clip(d.path());
    let (port, rtsp_port) = (free_port(), free_port());
    let mut server = serve(&clip, port, false);
    let received = d.path().join("received.ts");
    let url = format!("rtsp://127.0.0.1:{rtsp_port}/door");
    let mut receiver = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-rtsp_flags",
            "listen",
            "-rtsp_transport",
            "tcp",
            "-i",
        ])
        .arg(&url)
        .args(["-c", "copy", "-f", "mpegts"])
        .arg(&received)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let run = live_to(
        &url,
        port,
        &d.path().join("unused"),
        &["-f", "rtsp", "--rtsp-transport", "tcp"],
    );
    std::thread::sleep(Duration::from_secs(8));
    interrupt(&run);
    let stats = finish(run);
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = receiver.kill();
    let _ = receiver.wait();
    let _ = server.kill();
    let _ = server.wait();
    let frames = rgb_frames(&received);
    assert!(frames.len() >= 50, "{} frames", frames.len());
    assert_eq!(frames.len() as u64, stats["frames_out"].as_u64().unwrap());
    assert_monotonic(&frame_times(&received));
    for (k, f) in frames.iter().enumerate() {
        assert!(
            covered_at(f, face_centre(k)) > 0.9 || whole_frame_black(f),
            "frame {k}: the face at {:?} is not covered",
            face_centre(k)
        );
    }
}

/// A camera serving `clip` over RTSP on `port` (tests/rtsp_camera.py; each PLAY starts the clip
/// from its first frame), in its own process group so that [`kill_group`] stops its ffmpeg too.
/// Returns once it listens.
fn serve_rtsp(clip: &Path, port: u16) -> Child {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let mut child = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rtsp_camera.py"))
        .arg(clip)
        .arg(port.to_string())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is installed");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "listening", "the RTSP camera did not start");
    child
}

/// Kills `child` and every process of its group (the RTSP camera and the ffmpeg it started).
fn kill_group(mut child: Child) {
    // SAFETY: signalling the process group of a child we started (its pid is the group's id)
    // and have not reaped yet.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.wait();
}

/// RTSP in, as an NVR reads a camera: the clip is served by an RTSP server and read with RTP
/// over the RTSP connection (TCP).
#[test]
fn an_rtsp_camera_read_over_tcp_comes_out_whole_in_order_and_covered() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let clip = moving_face_clip(d.path());
    let port = free_port();
    let camera = serve_rtsp(&clip, port);
    let out = d.path().join("out.ts");
    let url = format!("rtsp://127.0.0.1:{port}/door");
    let run = live_from(&url, "-", &out, &["--rtsp-transport", "tcp"]);
    std::thread::sleep(Duration::from_secs(12));
    interrupt(&run);
    let stats = finish(run);
    kill_group(camera);
    assert_whole_and_covered(&out, &stats);
}

/// RTSP in over UDP, the camera killed and restarted: the run reconnects and the output runs on,
/// continuous, with the face covered in every frame.
#[test]
fn an_rtsp_camera_over_udp_that_restarts_is_reconnected() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let clip = moving_face_clip(d.path());
    let port = free_port();
    let first = serve_rtsp(&clip, port);
    let out = d.path().join("out.ts");
    let url = format!("rtsp://127.0.0.1:{port}/door");
    let run = live_from(
        &url,
        "-",
        &out,
        &["--rtsp-transport", "udp", "--max-backoff", "1"],
    );
    std::thread::sleep(Duration::from_secs(6));
    kill_group(first);
    std::thread::sleep(Duration::from_millis(1500));
    let second = serve_rtsp(&clip, port);
    std::thread::sleep(Duration::from_secs(8));
    interrupt(&run);
    let stats = finish(run);
    kill_group(second);
    // The 1.5 s the camera was away are not written as a gap: time runs on. (UDP itself may lose
    // a frame or two, at the start of a session above all, and the stream's own timestamps keep
    // such a hole: 0.3 s was seen.)
    assert_runs_on_across_a_reconnection(&out, &stats, 70, 1.0);
}

/// A camera that is not there, and an output that cannot be written: each a clear error that
/// names what was wrong, at once, with nothing left behind.
#[test]
fn a_missing_camera_or_an_unwritable_output_is_a_clear_error() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let url = format!("tcp://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_bystander"))
        .args(["live", &url, "-o", "-"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains(&url), "the error names the input: {err}");
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        o.stdout.is_empty(),
        "nothing was written for a camera that is not there"
    );

    let clip = moving_face_clip(d.path());
    let out = d.path().join("no-such-folder").join("out.ts");
    let o = Command::new(env!("CARGO_BIN_EXE_bystander"))
        .arg("live")
        .arg(&clip)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(err.contains("out.ts"), "the error names the output: {err}");
    assert!(!out.exists());
}

/// Standard input in a container FFmpeg probes (Matroska here), segmented recording out, audio
/// copied into every segment, every frame kept.
#[test]
fn standard_input_goes_to_segments_with_its_audio_and_every_frame() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let clip = d.path().join("in.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=s=320x240:r=10:d=4",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000:duration=4",
        "-c:v",
        "libx264",
        "-g",
        "10",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        clip.to_str().unwrap(),
    ]);
    let pattern = d.path().join("rec-%03d.mkv");
    let o = Command::new(env!("CARGO_BIN_EXE_bystander"))
        .args(["live", "-", "-o"])
        .arg(&pattern)
        .args(["-f", "segment", "--segment-seconds", "1"])
        .stdin(std::fs::File::open(&clip).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut segments: Vec<PathBuf> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("rec-"))
        .collect();
    segments.sort();
    assert!(segments.len() >= 3, "{segments:?}");
    let mut frames = 0;
    for seg in &segments {
        let kinds = stream_entries(seg, "stream=codec_type");
        assert!(
            kinds.contains("video") && kinds.contains("audio"),
            "{seg:?}: {kinds}"
        );
        frames += frame_times(seg).len();
    }
    assert_eq!(
        frames, 40,
        "every frame of the 4 s at 10 fps, across the segments"
    );
}

fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[test]
fn two_minutes_of_stream_keep_memory_flat_and_every_frame() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let clip = moving_face_clip(d.path());
    let port = free_port();
    let mut server = serve(&clip, port, true);
    std::thread::sleep(Duration::from_millis(500));
    let out = d.path().join("out.ts");
    let run = live(port, &out, &[]);
    let start = Instant::now();
    let mut samples = Vec::new();
    while start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_secs(2));
        if let Some(r) = rss_kib(run.id()) {
            samples.push((start.elapsed().as_secs_f64(), r));
        }
    }
    interrupt(&run);
    let stats = finish(run);
    let _ = server.kill();
    let _ = server.wait();
    let peak = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(t, _)| (from..to).contains(t))
            .map(|s| s.1)
            .max()
            .unwrap()
    };
    let (early, late) = (peak(20.0, 60.0), peak(60.0, 121.0));
    assert!(
        (late as f64) < early as f64 * 1.10 + 20_000.0,
        "memory grew: peak {early} KiB in 20-60 s, {late} KiB in 60-120 s"
    );
    assert_eq!(stats["frames_in"], stats["frames_out"], "{stats}");
    assert!(stats["frames_out"].as_u64().unwrap() > 1000, "{stats}");
    assert_eq!(
        frame_times(&out).len() as u64,
        stats["frames_out"].as_u64().unwrap()
    );
}

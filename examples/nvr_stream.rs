//! A host loop as an NVR runs it: BGR frames arrive from a camera, redacted frames leave for the
//! recording or share path, in order; the loop prints throughput, the latency each frame spent
//! in the redactor (push to return), and peak memory.
//!
//! Frames come from a clip decoded by the `ffmpeg` command (as a camera's decoder would hand
//! them over), or as raw BGR on stdin:
//!
//! ```sh
//! cargo run --release --example nvr_stream -- ../shared/data/clips/crowd_1080p.mp4
//! ffmpeg -i cam.mp4 -f rawvideo -pix_fmt bgr24 - | cargo run --release --example nvr_stream -- - 1920x1080
//! ```
//!
//! Options after the input: `--recall fast|balanced|max`, `--threads N`, `--backfill N`,
//! `--low-memory` (fewer sessions, the same pixels; on by itself where this process may use
//! under 4 GiB, as an NVR box decides for itself: see `bystander::engine::memory`).

use std::collections::HashMap;
use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use bystander::detect::{DetectConfig, Recall};
use bystander::engine::memory;
use bystander::frame::{FrameLayout, PixelFormat};
use bystander::redact::RedactConfig;
use bystander::stream::{RedactedFrame, Redactor, StreamConfig};

fn usage() -> ! {
    eprintln!(
        "usage: nvr_stream CLIP | - WIDTHxHEIGHT [--recall R] [--threads N] [--backfill N] [--low-memory]"
    );
    std::process::exit(2)
}

/// Width and height of a clip's first video stream, from ffprobe.
fn probe_size(clip: &str) -> (u32, u32) {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries"])
        .args(["stream=width,height", "-of", "csv=p=0", clip])
        .output()
        .unwrap_or_else(|e| panic!("ffprobe: {e}"));
    parse_size(
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .replace(',', "x")
            .as_str(),
    )
}

fn parse_size(s: &str) -> (u32, u32) {
    let (w, h) = s.split_once('x').unwrap_or_else(|| usage());
    (
        w.parse().unwrap_or_else(|_| usage()),
        h.parse().unwrap_or_else(|_| usage()),
    )
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn main() -> bystander::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(input) = args.first().cloned() else {
        usage()
    };
    let option = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    // The decoding ffmpeg, when reading a clip: waited for at the end, so that its failure is seen.
    let mut decoder: Option<Child> = None;
    let (w, h, mut reader): (u32, u32, Box<dyn Read>) = if input == "-" {
        let (w, h) = parse_size(args.get(1).map(String::as_str).unwrap_or_else(|| usage()));
        (w, h, Box::new(std::io::stdin()))
    } else {
        let (w, h) = probe_size(&input);
        let child = decoder.insert(
            Command::new("ffmpeg")
                .args([
                    "-v", "error", "-i", &input, "-f", "rawvideo", "-pix_fmt", "bgr24", "-",
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("ffmpeg: {e}")),
        );
        (w, h, Box::new(child.stdout.take().expect("piped")))
    };
    let recall: Recall = option("--recall")
        .as_deref()
        .unwrap_or("balanced")
        .parse()?;
    let threads = option("--threads").map_or(bystander::cores(), |t| t.parse().unwrap_or(1));
    let detect = DetectConfig {
        recall,
        ..Default::default()
    };
    // The video preset (what a clip gets), on the host's thread budget.
    let mut cfg = StreamConfig::new(detect, RedactConfig::default(), threads);
    cfg.track.backfill = option("--backfill").map_or(4, |b| b.parse().unwrap_or(4));
    // A box with little memory for this process (a Pi, a NAS, a container's limit): fewer ONNX
    // Runtime sessions, the same boxes and pixels.
    cfg.low_memory = args.iter().any(|a| a == "--low-memory") || memory::memory_is_short();
    let mut redactor = Redactor::new(&cfg)?;

    let layout = FrameLayout::packed(PixelFormat::Bgr24, w, h);
    let mut pushed: HashMap<i64, Instant> = HashMap::new();
    let mut latencies_ms = Vec::new();
    let (mut frames, mut covered) = (0usize, 0usize);
    let mut take = |out: Vec<RedactedFrame>, pushed: &mut HashMap<i64, Instant>| {
        for f in out {
            if let Some(t) = pushed.remove(&f.pts) {
                latencies_ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            frames += 1;
            covered += usize::from(f.fault.is_some());
            // A real host would write f.data (BGR, redacted) to its recorder here.
        }
    };
    let start = Instant::now();
    for n in 0i64.. {
        let mut buf = vec![0u8; layout.len()];
        if reader.read_exact(&mut buf).is_err() {
            break;
        }
        pushed.insert(n, Instant::now());
        take(redactor.push(buf, layout, n)?, &mut pushed);
    }
    take(redactor.finish()?, &mut pushed);
    let secs = start.elapsed().as_secs_f64();
    if let Some(mut child) = decoder {
        match child.wait() {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("ffmpeg decoding {input} ended with {status}"),
            Err(e) => eprintln!("ffmpeg decoding {input}: {e}"),
        }
    }
    latencies_ms.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies_ms
            .get(((latencies_ms.len() as f64 - 1.0) * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "{frames} frames {w}x{h} in {secs:.2} s: {:.2} fps; latency p50 {:.0} ms, p95 {:.0} ms; {covered} covered whole; peak RSS {} MiB{}",
        frames as f64 / secs.max(1e-9),
        pct(0.5),
        pct(0.95),
        peak_rss_kib() / 1024,
        if cfg.low_memory { " (low memory)" } else { "" }
    );
    Ok(())
}

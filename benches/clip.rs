//! The clip pipeline end to end (decode → detect → hold → redact → encode) on a short clip
//! generated with the `ffmpeg` command: the fast preset and the default one.
//!
//! `cargo bench --bench clip`; under `cargo test --all-targets` each runs once. For figures on
//! real clips, per stage, use `bystander bench CLIP`.

use std::path::Path;
use std::process::Command;

use bystander::detect::{DetectConfig, Recall};
use bystander::redact::RedactConfig;
use bystander::video::{redact_clip, VideoOptions};
use criterion::{criterion_group, criterion_main, Criterion};

fn generated_clip(dir: &Path) -> std::path::PathBuf {
    let clip = dir.join("street.mp4");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=640x360:rate=25",
        ])
        .args(["-frames:v", "25", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        .arg(&clip)
        .status()
        .expect("ffmpeg is installed (scripts/deps)");
    assert!(status.success());
    clip
}

fn bench(c: &mut Criterion) {
    // The library never fetches ONNX Runtime itself; fill the cache as the command line would.
    bystander::runtime::fetch::fetch().expect("ONNX Runtime in the cache");
    let dir = tempfile::tempdir().unwrap();
    let clip = generated_clip(dir.path());
    let out = dir.path().join("out.mp4");
    let redact = RedactConfig::default();
    let mut g = c.benchmark_group("clip");
    g.sample_size(10);
    for (name, recall, every) in [
        ("25_frames_360p_fast", Recall::Fast, 2),
        ("25_frames_360p_default", Recall::Balanced, 1),
    ] {
        let detect = DetectConfig {
            recall,
            ..Default::default()
        }
        .for_clips();
        let opts = VideoOptions {
            detect_every: every,
            ..Default::default()
        };
        g.bench_function(name, |b| {
            b.iter(|| redact_clip(&clip, &out, &detect, &redact, &opts, &|_| {}).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

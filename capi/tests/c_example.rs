//! The C ABI end to end: `scripts/build-c` makes the four files, the C example is compiled with
//! AddressSanitizer (which also checks for leaks at exit) and redacts real frames piped from
//! ffmpeg, and its frames and boxes are compared with the Rust host API's on the same frames.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use bystander::frame::{FrameLayout, PixelFormat};
use bystander::stream::{Redactor, StreamConfig};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The test clip: the first frames of the shared crowd_1080p clip (faces walking at the camera),
/// or, where the shared data is absent, a clip made here from the shippable portrait fixture.
fn clip(dir: &Path) -> (PathBuf, u32, u32) {
    let shared = root().join("../shared/data/clips/crowd_1080p.mp4");
    if shared.is_file() {
        return (shared, 1920, 1080);
    }
    let made = dir.join("portrait.mp4");
    let fixture = root().join("tests/fixtures/astronaut.jpg");
    let ok = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-loop", "1", "-i"])
        .arg(&fixture)
        .args([
            "-vf",
            "pad=1280:720:(ow-iw)*t/2:100,format=yuv420p",
            "-t",
            "2",
            "-r",
            "10",
        ])
        .arg(&made)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ffmpeg made the fallback clip");
    (made, 1280, 720)
}

/// The first `frames` frames of `clip` as packed BGR.
fn bgr_frames(clip: &Path, frames: usize) -> Vec<u8> {
    let out = Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(clip)
        .args([
            "-frames:v",
            &frames.to_string(),
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    out.stdout
}

/// One JSON line of the C example: pts, fault and boxes.
fn parse_line(line: &str) -> (i64, u64, Vec<[f64; 6]>) {
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let boxes = v["boxes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let a = b.as_array().unwrap();
            std::array::from_fn(|i| a[i].as_f64().unwrap())
        })
        .collect();
    (
        v["pts"].as_i64().unwrap(),
        v["fault"].as_u64().unwrap(),
        boxes,
    )
}

#[test]
fn the_c_example_redacts_real_frames_exactly_as_the_rust_host_api_does() {
    let lib = bystander::runtime::fetch::fetch().expect("ONNX Runtime in the cache");
    let build = Command::new(root().join("scripts/build-c"))
        .status()
        .unwrap();
    assert!(build.success(), "scripts/build-c");
    let c = root().join("target/c");
    for f in [
        "libbystander.so",
        "libbystander.a",
        "bystander.h",
        "bystander.pc",
    ] {
        assert!(c.join(f).is_file(), "target/c/{f}");
    }
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("redact_frames");
    let cc = Command::new("cc")
        .args([
            "-O1",
            "-g",
            "-Wall",
            "-Werror",
            "-fsanitize=address",
            "-fno-omit-frame-pointer",
        ])
        .arg(root().join("examples/c/redact_frames.c"))
        .arg(format!("-I{}", c.display()))
        .arg(format!("-L{}", c.display()))
        .arg(format!("-Wl,-rpath,{}", c.display()))
        .arg("-lbystander")
        .arg("-o")
        .arg(&exe)
        .status()
        .unwrap();
    assert!(cc.success(), "the C example compiles against target/c");

    let (clip, w, h) = clip(dir.path());
    let frames = 24;
    let input = bgr_frames(&clip, frames);
    let len = (w * h * 3) as usize;
    assert_eq!(input.len(), len * frames);

    let mut child = Command::new(&exe)
        .args([&w.to_string(), &h.to_string(), "2", "4", "1"])
        .env("ORT_DYLIB_PATH", &lib)
        .env("BYSTANDER_MODEL_DIR", root().join("models"))
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=0:exitcode=86",
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feed = std::thread::spawn({
        let input = input.clone();
        move || stdin.write_all(&input)
    });
    let out = child.wait_with_output().unwrap();
    feed.join().unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("Sanitizer"), "AddressSanitizer: {stderr}");
    assert!(out.status.success(), "{stderr}");
    let c_boxes: Vec<_> = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(parse_line)
        .collect();
    assert_eq!(out.stdout.len(), input.len(), "every frame came back");
    assert_eq!(c_boxes.len(), frames);

    // The Rust host API, same settings as the example (defaults, 2 threads, back-fill 4) but
    // for `low_memory`, which the example turns on: fewer sessions, the same boxes and bytes.
    let cfg = StreamConfig::new(Default::default(), Default::default(), 2);
    let mut r = Redactor::new(&cfg).unwrap();
    let layout = FrameLayout::packed(PixelFormat::Bgr24, w, h);
    let mut rust = Vec::new();
    for (i, f) in input.chunks_exact(len).enumerate() {
        rust.extend(r.push(f.to_vec(), layout, i as i64).unwrap());
    }
    rust.extend(r.finish().unwrap());
    assert_eq!(rust.len(), frames);
    let mut found = 0;
    for (i, (f, (pts, fault, boxes))) in rust.iter().zip(&c_boxes).enumerate() {
        assert_eq!((f.pts, *pts), (i as i64, i as i64));
        assert_eq!(*fault, 0);
        assert!(
            f.data == out.stdout[i * len..(i + 1) * len],
            "frame {i}: the C example's bytes differ from the Rust host API's"
        );
        let want: Vec<[f64; 6]> = f
            .boxes
            .iter()
            .map(|d| {
                let class = if d.class == bystander::Class::Face {
                    0.0
                } else {
                    1.0
                };
                [class, d.score, d.bbox.x1, d.bbox.y1, d.bbox.x2, d.bbox.y2].map(f64::from)
            })
            .collect();
        let got: Vec<[f64; 6]> = boxes.iter().map(|b| b.map(|v| v as f32 as f64)).collect();
        assert_eq!(got, want, "frame {i}: boxes");
        found += boxes.len();
    }
    assert!(found > 0, "the clip's faces were found");
    assert!(out.stdout != input, "frames were redacted");
}

//! Batch runs of the binary on a generated tree: nested folders, photos and clips, names with
//! spaces and non-ASCII letters, and files that must fail alone (zero bytes, a truncated mp4, a
//! text file named .mp4). Checks the mirrored outputs, the reports, exit codes, resumption after
//! kill -9, untouched inputs, and the review workflow (export, edit, render).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use bystander::models::sha256_file;

use crate::support::*;
use crate::video::{ffmpeg, frame_times};

fn bystander() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bystander"))
}

/// Builds the tree; returns the inputs expected to succeed and to fail (relative paths).
fn generated_tree(root: &Path) -> (Vec<&'static str>, Vec<&'static str>) {
    for dir in ["cam 1/2026-11-28", "straße/ñandú", "clips/sub"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::copy(
        fixture("astronaut.jpg"),
        root.join("cam 1/2026-11-28/front door.jpg"),
    )
    .unwrap();
    std::fs::copy(
        fixture("plate_scene.jpg"),
        root.join("straße/ñandú/Ünïcode car.jpg"),
    )
    .unwrap();
    let s = |p: &str| root.join(p).to_str().unwrap().to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:a",
        "aac",
        &s("clips/door bell.mp4"),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=256x144:rate=15",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        &s("clips/sub/garage.mkv"),
    ]);
    // Failures: an empty photo, an mp4 cut in half (its index is at the end), text named .mp4.
    std::fs::write(root.join("empty.jpg"), b"").unwrap();
    let whole = std::fs::read(root.join("clips/door bell.mp4")).unwrap();
    std::fs::write(root.join("clips/truncated.mp4"), &whole[..whole.len() / 2]).unwrap();
    std::fs::write(root.join("clips/notes.mp4"), "this is not a video\n").unwrap();
    std::fs::write(root.join("README.txt"), "skipped: not a photo or clip\n").unwrap();
    (
        vec![
            "cam 1/2026-11-28/front door.jpg",
            "clips/door bell.mp4",
            "clips/sub/garage.mkv",
            "straße/ñandú/Ünïcode car.jpg",
        ],
        vec!["clips/notes.mp4", "clips/truncated.mp4", "empty.jpg"],
    )
}

/// Bytes and modification time of every file under `root`.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (Vec<u8>, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let meta = std::fs::metadata(&p).unwrap();
                out.insert(
                    p.clone(),
                    (std::fs::read(&p).unwrap(), meta.modified().unwrap()),
                );
            }
        }
    }
    out
}

fn temporaries(root: &Path) -> Vec<PathBuf> {
    snapshot(root)
        .into_keys()
        .filter(|p| p.to_string_lossy().ends_with(".bystander-tmp"))
        .collect()
}

fn run_json(src: &Path, out: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let o = bystander()
        .arg("redact")
        .arg(src)
        .arg("-o")
        .arg(out)
        .args(["--json", "--recall", "fast"])
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {stderr}"));
    (o.status.code(), v, stderr)
}

#[test]
fn a_generated_tree_is_mirrored_reported_and_resumed_with_inputs_untouched() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    let (good, bad) = generated_tree(&src);
    let before = snapshot(&src);

    let (code, first, stderr) = run_json(&src, &out, &["--export-detections"]);
    assert_eq!(code, Some(2), "a failed file makes exit code 2: {stderr}");
    assert_eq!(first["redacted"], good.len());
    assert_eq!(first["failed"], bad.len());
    assert_eq!(first["skipped"].as_array().unwrap().len(), 1);
    // One line per failed file on stderr, naming it.
    for b in &bad {
        let lines = stderr
            .lines()
            .filter(|l| l.contains(&src.join(b).display().to_string()));
        assert_eq!(lines.count(), 1, "{b}: {stderr}");
        assert!(!out.join(b).exists(), "nothing is written for {b}");
    }
    let shipped: BTreeMap<String, String> = bystander::models::SHIPPED
        .iter()
        .map(|m| (m.name.to_string(), m.sha256.to_string()))
        .collect();
    for g in &good {
        let (input, output) = (src.join(g), out.join(g));
        assert!(output.is_file(), "{g} mirrored");
        let report_path = bystander::batch::report_path_for(&output);
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
        assert_eq!(report["input_sha256"], sha256_file(&input).unwrap(), "{g}");
        assert_eq!(
            report["output_sha256"],
            sha256_file(&output).unwrap(),
            "{g}"
        );
        assert_ne!(report["input_sha256"], report["output_sha256"]);
        let models = report["models"].as_array().unwrap();
        assert!(!models.is_empty());
        for m in models {
            assert_eq!(
                m["sha256"].as_str(),
                shipped.get(m["name"].as_str().unwrap()).map(|s| s.as_str())
            );
        }
        assert_eq!(report["settings"]["recall"], "fast");
        assert_eq!(report["fail_closed_frames"], 0, "{g}");
        assert!(report["seconds"].as_f64().unwrap() > 0.0);
        for class in ["faces", "plates"] {
            assert!(report[class].is_u64(), "{g}: {class}");
        }
        // The exported detections parse and describe every frame.
        let det_path = bystander::review::detections_path_for(&output);
        let det = bystander::review::Detections::load(&det_path).unwrap();
        let frames = report["frames"].as_u64().unwrap_or(1) as usize;
        assert_eq!(det.frames.len(), frames, "{g}");
        if g.ends_with(".mp4") || g.ends_with(".mkv") {
            assert_eq!(frame_times(&output).len(), frame_times(&input).len(), "{g}");
        }
    }
    let face = &first["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["input"].as_str().unwrap().ends_with("front door.jpg"))
        .unwrap()["report"];
    assert_eq!(face["faces"], 1);
    let car = &first["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["input"].as_str().unwrap().ends_with("car.jpg"))
        .unwrap()["report"];
    assert_eq!(car["plates"], 1);

    // A rerun keeps every finished output and retries only the failures.
    let outputs_before = snapshot(&out);
    let (code, second, progress) = run_json(&src, &out, &[]);
    assert_eq!(code, Some(2));
    // Not on a terminal: no bars, one plain line per file (on stderr, as stdout has the JSON).
    let total = good.len() + bad.len();
    let kept_lines = progress
        .lines()
        .filter(|l| l.starts_with('[') && l.contains(&format!("/{total}] kept ")))
        .count();
    assert_eq!(kept_lines, good.len(), "{progress}");
    assert!(
        !progress.contains('\r'),
        "no bar redraws in a log: {progress:?}"
    );
    assert_eq!(
        (
            second["redacted"].as_u64(),
            second["kept"].as_u64(),
            second["failed"].as_u64()
        ),
        (Some(0), Some(good.len() as u64), Some(bad.len() as u64))
    );
    assert_eq!(
        snapshot(&out),
        outputs_before,
        "kept outputs are not rewritten"
    );

    // An output whose report is missing (a run killed between the two renames) is redone.
    std::fs::remove_file(bystander::batch::report_path_for(&out.join(good[0]))).unwrap();
    let (_, third, _) = run_json(&src, &out, &[]);
    assert_eq!(third["redacted"], 1);

    // --overwrite redoes everything.
    let (_, fourth, _) = run_json(&src, &out, &["--overwrite"]);
    assert_eq!(fourth["redacted"], good.len());

    // --quiet prints nothing but the failures, one line each.
    let o = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("--quiet")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty());
    assert_eq!(
        String::from_utf8_lossy(&o.stderr).lines().count(),
        bad.len()
    );

    assert!(temporaries(&out).is_empty(), "{:?}", temporaries(&out));
    assert_eq!(
        snapshot(&src),
        before,
        "inputs byte-identical, mtimes unchanged"
    );
}

#[test]
fn kill_9_during_a_batch_then_a_rerun_finishes_every_file() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    std::fs::create_dir_all(src.join("day")).unwrap();
    for (i, name) in ["a.mp4", "day/b.mp4", "day/c.mp4"].iter().enumerate() {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc=size=480x270:rate=25:decimals={i}"),
            "-t",
            "4",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            src.join(name).to_str().unwrap(),
        ]);
    }
    let before = snapshot(&src);
    let mut child = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--quiet", "--jobs", "1", "--recall", "fast"])
        .spawn()
        .unwrap();
    // Kill it once the first clip is finished and the next one is being written.
    let start = std::time::Instant::now();
    let mid_run = || {
        bystander::batch::report_path_for(&out.join("a.mp4")).exists()
            && !temporaries(&out).is_empty()
    };
    while !mid_run() && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(mid_run(), "the run never reached its second clip");
    child.kill().unwrap();
    child.wait().unwrap();
    let (code, v, stderr) = run_json(&src, &out, &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(v["kept"], 1);
    assert_eq!(v["redacted"], 2);
    for name in ["a.mp4", "day/b.mp4", "day/c.mp4"] {
        assert_eq!(
            frame_times(&out.join(name)),
            frame_times(&src.join(name)),
            "{name} complete"
        );
    }
    assert!(temporaries(&out).is_empty(), "{:?}", temporaries(&out));
    assert_eq!(snapshot(&src), before);
}

#[test]
fn an_edited_detections_file_is_rendered_without_detecting() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    // PNG so that unredacted pixels come back exactly.
    let photo = src.join("portrait.png");
    rgb("astronaut.jpg").save(&photo).unwrap();
    let out = d.path().join("out");
    let (code, _, stderr) = run_json(&src, &out, &["--export-detections"]);
    assert_eq!(code, Some(0), "{stderr}");
    let det_path = bystander::review::detections_path_for(&out.join("portrait.png"));
    let mut det: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&det_path).unwrap()).unwrap();
    let face = bbox(ASTRONAUT_CENTERFACE);
    assert_eq!(
        det["frames"][0]["boxes"].as_array().unwrap().len(),
        1,
        "{det}"
    );
    // The reviewer drops the face (say it is the person the footage is about) and adds a box on
    // the flag at the top left.
    let added = bbox([10.0, 10.0, 110.0, 80.0]);
    det["frames"][0]["boxes"] =
        serde_json::json!([{"class": "plate", "box": [added.x1, added.y1, added.x2, added.y2]}]);
    let edited = d.path().join("edited.json");
    std::fs::write(&edited, det.to_string()).unwrap();
    let rendered = d.path().join("rendered.png");
    let o = render(&photo, &edited, &rendered, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (orig, after) = (rgb_of(&photo), rgb_of(&rendered));
    assert_eq!(
        region(&orig, face),
        region(&after, face),
        "the dropped face is left as it was"
    );
    assert_ne!(
        region(&orig, added),
        region(&after, added),
        "the added box is redacted"
    );

    // A detections file without the frame covers the whole picture (fail closed).
    det["frames"] = serde_json::json!([]);
    std::fs::write(&edited, det.to_string()).unwrap();
    let whole = d.path().join("whole.png");
    let o = render(&photo, &edited, &whole, &[]);
    assert!(o.status.success());
    let after = rgb_of(&whole);
    let corner = bbox([400.0, 400.0, 500.0, 500.0]);
    assert_ne!(region(&orig, corner), region(&after, corner));

    // A file for another picture size is refused with its name.
    det["width"] = 99.into();
    std::fs::write(&edited, det.to_string()).unwrap();
    let o = render(&photo, &edited, &d.path().join("x.png"), &[]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("edited.json") && e.contains("99x512"), "{e}");
}

#[test]
fn a_clip_renders_from_its_detections_and_unlisted_frames_are_covered() {
    let d = tempfile::tempdir().unwrap();
    let clip = d.path().join("clip.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-t",
        "1",
        "-c:v",
        "ffv1",
        clip.to_str().unwrap(),
    ]);
    let det = d.path().join("clip.json");
    // Frames 0-4 have a box on the top-left quarter; frames 5-9 are not listed.
    let frames: Vec<_> = (0..5)
        .map(|i| serde_json::json!({"frame": i, "boxes": [{"class": "face", "box": [0, 0, 160, 120]}]}))
        .collect();
    let doc = serde_json::json!({"bystander_detections": 1, "width": 320, "height": 240, "frames": frames});
    std::fs::write(&det, doc.to_string()).unwrap();
    let out = d.path().join("out.mkv");
    let o = render(
        &clip,
        &det,
        &out,
        &[
            "--style",
            "fill",
            "--shape",
            "rect",
            "--mask-scale",
            "1.0",
            "--encoder",
            "ffv1",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("5 frames covered whole"));
    let (orig, frames) = (
        crate::video::rgb_frames(&clip, 320, 240),
        crate::video::rgb_frames(&out, 320, 240),
    );
    assert_eq!(frames.len(), 10);
    let px = |f: &[u8], x: usize, y: usize| -> [u8; 3] {
        let i = (y * 320 + x) * 3;
        [f[i], f[i + 1], f[i + 2]]
    };
    let dark = |p: [u8; 3]| p.iter().all(|&v| v < 8);
    for (i, (a, f)) in orig.iter().zip(&frames).enumerate() {
        // The listed box is filled on every frame; outside it, a listed frame keeps its
        // picture and an unlisted one is covered.
        assert!(dark(px(f, 50, 50)), "frame {i}");
        let (before, after) = (px(a, 240, 180), px(f, 240, 180));
        assert!(!dark(before));
        if i < 5 {
            let diff = before
                .iter()
                .zip(after)
                .map(|(x, y)| x.abs_diff(y))
                .max()
                .unwrap();
            // 4:2:0 chroma moves saturated colours a little.
            assert!(diff < 48, "frame {i}: {before:?} became {after:?}");
        } else {
            assert!(dark(after), "frame {i}: {after:?}");
        }
    }
}

/// Runs `bystander render INPUT --detections DETECTIONS -o OUTPUT EXTRA...`.
fn render(input: &Path, detections: &Path, output: &Path, extra: &[&str]) -> std::process::Output {
    bystander()
        .arg("render")
        .arg(input)
        .arg("--detections")
        .arg(detections)
        .arg("-o")
        .arg(output)
        .args(extra)
        .output()
        .unwrap()
}

fn rgb_of(p: &Path) -> image::RgbImage {
    image::open(p).unwrap().to_rgb8()
}

fn region(img: &image::RgbImage, b: bystander::BBox) -> Vec<u8> {
    image::imageops::crop_imm(
        img,
        b.x1 as u32,
        b.y1 as u32,
        (b.x2 - b.x1) as u32,
        (b.y2 - b.y1) as u32,
    )
    .to_image()
    .into_raw()
}

/// Job arrays: `--shard I/N` parts of one listing are disjoint, together the whole run, with the
/// same outputs; `--manifest` reads inputs one per line (names with spaces included).
#[test]
fn shards_are_disjoint_and_add_up_to_the_whole_run_and_manifests_list_inputs() {
    runtime();
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("in");
    std::fs::create_dir_all(root.join("sub dir")).unwrap();
    for i in 0..7u8 {
        let img = image::RgbImage::from_fn(48 + i as u32, 40, |x, y| {
            image::Rgb([i * 30, (x * 5) as u8, (y * 6) as u8])
        });
        let dir = if i % 2 == 0 { "" } else { "sub dir" };
        img.save(root.join(dir).join(format!("p{i}.png"))).unwrap();
    }
    std::fs::write(root.join("notes.txt"), "x").unwrap();
    let summary = |args: &[&str], out: &Path| -> serde_json::Value {
        let o = bystander()
            .arg("redact")
            .args(args)
            .arg("-o")
            .arg(out)
            .args(["--json", "--jobs", "1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        serde_json::from_slice(&o.stdout).unwrap()
    };
    let inputs = |s: &serde_json::Value| -> Vec<String> {
        let mut v: Vec<String> = s["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["input"].as_str().unwrap().to_string())
            .collect();
        v.sort();
        v
    };
    let root_s = root.to_str().unwrap();
    let whole = summary(&[root_s], &d.path().join("whole"));
    assert_eq!(whole["redacted"], 7);
    let mut union = Vec::new();
    let mut skipped = 0;
    for i in 0..3 {
        let part = summary(
            &[root_s, "--shard", &format!("{i}/3")],
            &d.path().join("sharded"),
        );
        let mine = inputs(&part);
        assert!(mine.len() == 2 || mine.len() == 3, "shard {i}: {mine:?}");
        skipped += part["skipped"].as_array().unwrap().len();
        union.extend(mine);
    }
    let n = union.len();
    union.sort();
    union.dedup();
    assert_eq!(union.len(), n, "shards overlap");
    assert_eq!(union, inputs(&whole));
    assert_eq!(skipped, 1, "the passed-over file is listed by one shard");
    for f in inputs(&whole) {
        let rel = Path::new(&f).strip_prefix(&root).unwrap();
        assert_eq!(
            std::fs::read(d.path().join("whole").join(rel)).unwrap(),
            std::fs::read(d.path().join("sharded").join(rel)).unwrap()
        );
    }
    for bad in ["3/3", "a/b", "1"] {
        let o = bystander()
            .args(["redact", root_s, "-o"])
            .arg(d.path().join("x"))
            .args(["--shard", bad])
            .output()
            .unwrap();
        assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("INDEX/COUNT"));
    }
    // A manifest: two files (one with a space in its folder) and CRLF line ends, no positional input.
    let manifest = d.path().join("list.txt");
    std::fs::write(
        &manifest,
        format!("{0}/p0.png\r\n\n{0}/sub dir/p1.png\n", root_s),
    )
    .unwrap();
    let m = summary(
        &["--manifest", manifest.to_str().unwrap()],
        &d.path().join("listed"),
    );
    assert_eq!(m["redacted"], 2);
    assert!(d.path().join("listed/p0.png").exists() && d.path().join("listed/p1.png").exists());
}

//! Regression tests for the second round of privacy leaks and hostile inputs: one test (or two)
//! per fault, each on inputs generated here, each failing on the code before the fix. The item
//! numbers are those of the issue that reported them.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::hostile::{png_claiming, run_with_limit};
use crate::support::*;
use crate::video::{ffmpeg, frame_times};

fn bystander() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bystander"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Runs `bystander ARGS... --json` and returns the exit code, the summary and stderr.
fn run_json(args: &[&OsStr]) -> (Option<i32>, serde_json::Value, String) {
    let o = bystander().args(args).arg("--json").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    let v = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("stdout is JSON ({e}): {stderr}"));
    (o.status.code(), v, stderr)
}

/// `bystander redact SRC -o OUT --recall fast EXTRA... --json`, as [`run_json`].
fn redact_fast(src: &Path, out: &Path, extra: &[&str]) -> (Option<i32>, serde_json::Value, String) {
    let mut args = vec![os("redact"), src.as_os_str(), os("-o"), out.as_os_str()];
    args.extend(["--recall", "fast"].iter().chain(extra).map(|a| os(a)));
    run_json(&args)
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// `codec_type:codec_name` of every stream of a file.
fn streams(p: &Path) -> Vec<String> {
    let o = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_type,codec_name",
        ])
        .args(["-of", "csv=p=0"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let mut f = l.split(',');
            let (name, kind) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
            format!("{kind}:{name}")
        })
        .collect()
}

/// Frames of the first video stream, as ffprobe decodes them (AVI keeps no presentation times).
fn frame_count(p: &Path) -> usize {
    let o = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(p)
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
}

/// A PGS (Blu-ray bitmap) subtitle stream of two display sets, as a `.sup` file: the
/// presentation segments say "a picture is shown here", which is all a muxer needs.
fn pgs_sup() -> Vec<u8> {
    let mut out = Vec::new();
    let mut seg = |pts: u32, kind: u8, data: &[u8]| {
        out.extend(b"PG");
        out.extend(pts.to_be_bytes());
        out.extend(pts.to_be_bytes());
        out.push(kind);
        out.extend((data.len() as u16).to_be_bytes());
        out.extend(data);
    };
    for (i, pts) in [0u32, 90_000].into_iter().enumerate() {
        // Presentation composition: 320x240, frame rate code, composition number, state "epoch
        // start", no palette update, palette 0, no objects.
        let mut pcs = Vec::new();
        pcs.extend(320u16.to_be_bytes());
        pcs.extend(240u16.to_be_bytes());
        pcs.push(0x10);
        pcs.extend((i as u16).to_be_bytes());
        pcs.extend([0x80, 0, 0, 0]);
        seg(pts, 0x16, &pcs);
        seg(pts, 0x80, &[]);
    }
    out
}

// 1. Subtitles are dropped by default; text ones kept only when asked; bitmap ones never.
#[test]
fn item1_subtitles_are_dropped_by_default_and_bitmap_subtitles_always() {
    let d = tempfile::tempdir().unwrap();
    let (src, out, kept) = (
        d.path().join("in"),
        d.path().join("out"),
        d.path().join("kept"),
    );
    std::fs::create_dir_all(&src).unwrap();
    let srt = d.path().join("gps.srt");
    std::fs::write(
        &srt,
        "1\n00:00:00,000 --> 00:00:01,000\nN 51.50070 W 0.12460 42 km/h\n\n\
         2\n00:00:01,000 --> 00:00:02,000\nN 51.50071 W 0.12461 42 km/h\n\n",
    )
    .unwrap();
    let sup = d.path().join("faces.sup");
    std::fs::write(&sup, pgs_sup()).unwrap();
    let mkv = src.join("dashcam.mkv");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-i",
        s(&srt),
        "-i",
        s(&sup),
        "-t",
        "2",
        "-map",
        "0",
        "-map",
        "1",
        "-map",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:s:0",
        "srt",
        "-c:s:1",
        "copy",
        s(&mkv),
    ]);
    let mp4 = src.join("drone.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-i",
        s(&srt),
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        "-c:s",
        "mov_text",
        s(&mp4),
    ]);
    assert!(streams(&mkv).contains(&"subtitle:hdmv_pgs_subtitle".to_string()));

    let (code, v, e) = redact_fast(&src, &out, &[]);
    assert_eq!(code, Some(0), "{e}");
    for name in ["dashcam.mkv", "drone.mp4"] {
        assert_eq!(
            streams(&out.join(name)),
            ["video:h264"],
            "{name}: only the picture"
        );
        let f = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["output"].as_str().unwrap().ends_with(name))
            .unwrap();
        let dropped = f["report"]["dropped_streams"].as_array().unwrap();
        assert!(
            dropped.iter().all(|s| s["kind"] == "subtitle"),
            "{dropped:?}"
        );
        assert_eq!(
            dropped.len(),
            if name == "dashcam.mkv" { 2 } else { 1 },
            "{dropped:?}"
        );
        // The report from disk says so too.
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(bystander::batch::report_path_for(&out.join(name))).unwrap(),
        )
        .unwrap();
        assert_eq!(report["dropped_streams"], f["report"]["dropped_streams"]);
    }
    // No position text anywhere in the output bytes.
    for name in ["dashcam.mkv", "drone.mp4"] {
        let bytes = std::fs::read(out.join(name)).unwrap();
        assert!(
            !bytes.windows(8).any(|w| w == b"51.50070"),
            "{name} carries the GPS caption"
        );
    }

    let (code, v, e) = redact_fast(&src, &kept, &["--keep-subtitles"]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(
        streams(&kept.join("dashcam.mkv")),
        ["video:h264", "subtitle:subrip"]
    );
    assert_eq!(
        streams(&kept.join("drone.mp4")),
        ["video:h264", "subtitle:mov_text"]
    );
    let f = &v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["output"].as_str().unwrap().ends_with("dashcam.mkv"))
        .unwrap()["report"];
    let dropped = f["dropped_streams"].as_array().unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0]["codec"], "hdmv_pgs_subtitle");
    assert!(dropped[0]["reason"]
        .as_str()
        .unwrap()
        .contains("never copied"));
}

/// Two seconds of a test picture at 10 frames/s with a tone, the picture coded with `video`
/// (an encoder and its options) and the tone with the encoder `audio`.
fn clip_with_sound(path: &Path, video: &[&str], audio: &str) {
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300",
        "-t",
        "2",
        "-c:v",
    ];
    args.extend_from_slice(video);
    args.extend_from_slice(&["-c:a", audio, s(path)]);
    ffmpeg(&args);
}

/// A doorbell's microphone records passers-by talking. `--no-audio` drops the sound from a clip
/// and from a live stream, and the clip's report says why; without it the sound is copied (the
/// default is checked in `item9_a_webm_clip_gets_an_encoder_its_container_takes`).
#[test]
fn no_audio_drops_the_sound_from_clips_and_live_streams() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("src");
    std::fs::create_dir(&src).unwrap();
    let clip = src.join("porch.mkv");
    clip_with_sound(&clip, &["libx264", "-pix_fmt", "yuv420p"], "aac");
    assert_eq!(streams(&clip), ["video:h264", "audio:aac"]);
    let out = d.path().join("out");
    let (code, v, e) = redact_fast(&src, &out, &["--no-audio"]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(streams(&out.join("porch.mkv")), ["video:h264"]);
    assert_eq!(frame_times(&out.join("porch.mkv")).len(), 20);
    let dropped = v["files"][0]["report"]["dropped_streams"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(dropped.len(), 1, "{dropped:?}");
    assert_eq!(dropped[0]["kind"], "audio");
    assert!(
        dropped[0]["reason"]
            .as_str()
            .unwrap()
            .contains("--no-audio"),
        "{dropped:?}"
    );
    // The choice is part of the settings a rerun compares: asked the other way, the clip is
    // made again rather than kept.
    let (code, v, e) = redact_fast(&src, &out, &[]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(v["redacted"], 1, "{v}");
    assert_eq!(streams(&out.join("porch.mkv")), ["video:h264", "audio:aac"]);
    // A file's line says when its output holds less than the input.
    let o = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(d.path().join("plain"))
        .args(["--recall", "fast", "--no-audio"])
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(
        log.contains("streams left out (why: its report): 1 audio"),
        "{log}"
    );

    let live = d.path().join("live.mkv");
    let o = bystander()
        .args(["live", "-", "-o"])
        .arg(&live)
        .arg("--no-audio")
        .stdin(std::fs::File::open(&clip).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(streams(&live), ["video:h264"]);
    assert_eq!(frame_times(&live).len(), 20);
}

/// A PNG photo of `w` x `h` pixels, noise so that every style changes it.
fn noise_png(path: &Path, w: u32, h: u32, seed: u32) {
    let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    image::RgbImage::from_fn(w, h, |_, _| {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        image::Rgb([
            (s >> 8) as u8 | 0x20,
            (s >> 16) as u8 | 0x20,
            (s >> 24) as u8 | 0x20,
        ])
    })
    .save(path)
    .unwrap();
}

fn status_of(v: &serde_json::Value, name: &str) -> (String, String) {
    let f = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["input"].as_str().unwrap().ends_with(name))
        .unwrap_or_else(|| panic!("{name} in {v}"));
    (
        f["status"].as_str().unwrap().to_string(),
        f["redone"].as_str().unwrap_or("").to_string(),
    )
}

// 2. A rerun keeps an output only when it was made for this very request.
#[test]
fn item2_a_rerun_keeps_only_outputs_made_from_this_input_with_these_settings() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    std::fs::create_dir_all(&src).unwrap();
    let photo = src.join("street.png");
    rgb("astronaut.jpg").save(&photo).unwrap();
    noise_png(&src.join("wall.png"), 64, 48, 1);
    let zones = d.path().join("zones.json");
    std::fs::write(&zones, r#"{"zones": [[[0,0],[10,0],[10,10]]]}"#).unwrap();
    let run = |extra: &[&str]| {
        let mut args = vec![
            os("redact"),
            src.as_os_str(),
            os("-o"),
            out.as_os_str(),
            os("--recall"),
            os("fast"),
        ];
        args.extend(extra.iter().map(|a| os(a)));
        let (code, v, e) = run_json(&args);
        assert_eq!(code, Some(0), "{e}");
        v
    };
    let v = run(&[]);
    assert_eq!(v["redacted"], 2);
    // The same request again, on another thread budget: kept.
    let v = run(&["--jobs", "1"]);
    assert_eq!(v["kept"], 2, "{v}");
    // Another style, another class set, zones, another preset: each redone, and says why.
    for (extra, why) in [
        (vec!["--style", "fill"], "redact"),
        (vec!["--style", "fill", "--classes", "plate"], "classes"),
        (
            vec![
                "--style",
                "fill",
                "--classes",
                "plate",
                "--zones",
                s(&zones),
            ],
            "privacy_zones",
        ),
    ] {
        let v = run(&extra);
        assert_eq!(v["redacted"], 2, "{extra:?}: {v}");
        let (status, redone) = status_of(&v, "street.png");
        assert_eq!(status, "redacted");
        assert!(redone.contains(why), "{extra:?}: {redone}");
        assert_eq!(run(&extra)["kept"], 2, "{extra:?} again is kept");
    }
    let same = [
        "--style",
        "fill",
        "--classes",
        "plate",
        "--zones",
        s(&zones),
    ];
    // The zone file edited in place: redone.
    std::fs::write(&zones, r#"{"zones": [[[0,0],[20,0],[20,20]]]}"#).unwrap();
    let (_, redone) = status_of(&run(&same), "wall.png");
    assert!(redone.contains("privacy_zones"), "{redone}");
    // The input replaced by another picture: redone.
    noise_png(&src.join("wall.png"), 64, 48, 2);
    let (status, redone) = status_of(&run(&same), "wall.png");
    assert_eq!(
        (status.as_str(), redone.contains("input changed")),
        ("redacted", true),
        "{redone}"
    );
    // The output altered: redone.
    noise_png(&out.join("wall.png"), 64, 48, 3);
    let (_, redone) = status_of(&run(&same), "wall.png");
    assert!(redone.contains("output was changed"), "{redone}");
    // A run killed between an output's rename and its report's write, seen from the files it
    // leaves: this request's output beside the report of an earlier request (or no report at
    // all). Neither is kept.
    let report = bystander::batch::report_path_for(&out.join("wall.png"));
    let old_report = std::fs::read(&report).unwrap();
    let (_, _) = status_of(&run(&["--style", "pixelate"]), "wall.png");
    std::fs::write(&report, &old_report).unwrap();
    let (status, redone) = status_of(&run(&same), "wall.png");
    assert_eq!(
        status, "redacted",
        "an output with another request's report is redone"
    );
    assert!(
        redone.contains("output was changed") || redone.contains("settings"),
        "{redone}"
    );
    std::fs::remove_file(&report).unwrap();
    let (status, redone) = status_of(&run(&same), "wall.png");
    assert_eq!(status, "redacted");
    assert!(redone.contains("no readable report"), "{redone}");
    // The log line says why too.
    noise_png(&src.join("wall.png"), 64, 48, 4);
    let o = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--recall", "fast"])
        .args(same)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.lines()
            .any(|l| l.contains("wall.png") && l.contains("redone: the input changed")),
        "{text}"
    );
}

/// Every pixel of a PNG is `rgb`.
fn all_pixels_are(p: &Path, rgb: [u8; 3]) -> bool {
    image::open(p)
        .unwrap()
        .to_rgb8()
        .pixels()
        .all(|px| px.0 == rgb)
}

// 3. Huge finite coordinates cover the frame to its edges instead of switching redaction off.
#[test]
fn item3_boxes_and_zones_far_past_the_frame_cover_it_to_its_edges() {
    let d = tempfile::tempdir().unwrap();
    let photo = d.path().join("p.png");
    noise_png(&photo, 80, 60, 7);
    let magenta = ["--style", "fill", "--fill-color", "FF00FF"];
    // A review box of ±3e38.
    let det = d.path().join("p.json");
    std::fs::write(
        &det,
        r#"{"bystander_detections": 1, "width": 80, "height": 60, "frames": [
            {"frame": 0, "boxes": [{"class": "face", "box": [-3e38, -3e38, 3e38, 3e38]}]}]}"#,
    )
    .unwrap();
    for (i, shape) in ["ellipse", "rect"].iter().enumerate() {
        let out = d.path().join(format!("render{i}.png"));
        let o = bystander()
            .arg("render")
            .arg(&photo)
            .arg("--detections")
            .arg(&det)
            .arg("-o")
            .arg(&out)
            .args(magenta)
            .args(["--shape", shape])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            all_pixels_are(&out, [255, 0, 255]),
            "{shape}: the frame is covered"
        );
    }
    // Zones of 1e38 fractions and of ±3e38 pixels, through the batch command.
    for (i, zone) in [
        r#"{"units": "fraction", "zones": [[[-1e38, -1e38], [1e38, -1e38], [1e38, 1e38], [-1e38, 1e38]]]}"#,
        r#"{"zones": [[[-3e38, -3e38], [3e38, -3e38], [3e38, 3e38], [-3e38, 3e38]]]}"#,
        r#"{"zones": [[[-3e38, 30], [3e38, 30], [3e38, 3e38], [-3e38, 3e38]]]}"#,
    ]
    .iter()
    .enumerate()
    {
        let zf = d.path().join(format!("z{i}.json"));
        std::fs::write(&zf, zone).unwrap();
        let out = d.path().join(format!("out{i}"));
        let o = bystander().arg("redact").arg(&photo).arg("-o").arg(&out).args(magenta).args(["--classes", "plate", "--recall", "fast", "--zones"]).arg(&zf).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let img = image::open(out.join("p.png")).unwrap().to_rgb8();
        for (x, y, px) in img.enumerate_pixels() {
            // The third zone is the lower half, rows 30 and below.
            if i < 2 || y >= 30 {
                assert_eq!(px.0, [255, 0, 255], "zone {i}: ({x},{y})");
            }
        }
    }
}

// 4. A self-crossing zone is everything inside its outline: no hole.
#[test]
fn item4_a_star_shaped_zone_leaves_no_hole() {
    let d = tempfile::tempdir().unwrap();
    let photo = d.path().join("p.png");
    noise_png(&photo, 100, 100, 9);
    // A five-pointed star drawn in one stroke; its centre pentagon is crossed twice.
    let pts: Vec<[f32; 2]> = (0..5)
        .map(|i| {
            let a = std::f32::consts::PI * (0.5 + 0.8 * i as f32);
            [50.0 + 45.0 * a.cos(), 50.0 - 45.0 * a.sin()]
        })
        .collect();
    let zf = d.path().join("star.json");
    std::fs::write(&zf, serde_json::json!({"zones": [pts]}).to_string()).unwrap();
    let out = d.path().join("out");
    let o = bystander()
        .arg("redact")
        .arg(&photo)
        .arg("-o")
        .arg(&out)
        .args([
            "--style",
            "fill",
            "--fill-color",
            "FF00FF",
            "--classes",
            "plate",
            "--recall",
            "fast",
            "--zones",
        ])
        .arg(&zf)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(out.join("p.png")).unwrap().to_rgb8();
    let filled = |x: u32, y: u32| img.get_pixel(x, y).0 == [255, 0, 255];
    for (x, y) in [(50, 50), (45, 55), (55, 48), (50, 10), (50, 60)] {
        assert!(filled(x, y), "({x},{y}) inside the star");
    }
    assert!(!filled(2, 2) && !filled(97, 97), "outside the star");
}

// 5. Outputs are compared with inputs as the file system resolves them.
#[test]
fn item5_an_output_spelled_into_an_input_is_refused_and_the_input_never_written() {
    let d = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(d.path()).unwrap();
    let src = root.join("in");
    std::fs::create_dir_all(&src).unwrap();
    let photo = src.join("p.png");
    noise_png(&photo, 32, 24, 5);
    let original = std::fs::read(&photo).unwrap();
    std::os::unix::fs::symlink(&src, root.join("link")).unwrap();
    for out in [
        src.join("../in/out"),
        root.join("link/out"),
        root.join("link"),
    ] {
        let o = bystander()
            .arg("redact")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .args(["--recall", "fast"])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {e}", out.display());
        assert!(e.contains("outside every input"), "{e}");
    }
    assert!(!src.join("out").exists());
    // render --overwrite cannot replace the input, however the output is spelled.
    let det = root.join("p.json");
    std::fs::write(&det, r#"{"bystander_detections": 1, "width": 32, "height": 24, "frames": [{"frame": 0, "boxes": []}]}"#).unwrap();
    std::os::unix::fs::symlink(&photo, root.join("alias.png")).unwrap();
    std::fs::hard_link(&photo, root.join("hard.png")).unwrap();
    for out in [
        src.join("../in/p.png"),
        root.join("link/p.png"),
        root.join("alias.png"),
        root.join("hard.png"),
        root.join("link/../p.json"),
    ] {
        let o = bystander()
            .arg("render")
            .arg(&photo)
            .arg("--detections")
            .arg(&det)
            .arg("-o")
            .arg(&out)
            .args(["--overwrite", "--style", "fill"])
            .output()
            .unwrap();
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {e}", out.display());
        assert!(e.contains("not one of the inputs"), "{e}");
    }
    assert_eq!(
        std::fs::read(&photo).unwrap(),
        original,
        "the input is untouched"
    );
    assert!(det.is_file());
    // A zone file inside the output folder under an output's name is not overwritten either.
    let out = root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("p.png"), b"{\"zones\": []}").unwrap();
    let o = bystander()
        .arg("redact")
        .arg(&photo)
        .arg("-o")
        .arg(&out)
        .arg("--zones")
        .arg(out.join("p.png"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

// 6. File names are bytes: a name that is not UTF-8, or holds a newline, neither panics nor
// splits a log line, and the batch goes on.
#[test]
fn item6_odd_file_names_are_redacted_and_printed_on_one_line() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    std::fs::create_dir_all(&src).unwrap();
    let latin1 = src.join(OsStr::from_bytes(b"caf\xe9.png"));
    let newline = src.join("two\nlines.png");
    let clip = src.join(OsStr::from_bytes(b"clip\xff.mp4"));
    noise_png(&latin1, 40, 30, 1);
    noise_png(&newline, 40, 30, 2);
    noise_png(&src.join("plain.png"), 40, 30, 3);
    let tmp = d.path().join("c.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        s(&tmp),
    ]);
    std::fs::rename(&tmp, &clip).unwrap();
    let (code, v, e) = redact_fast(&src, &out, &[]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(v["redacted"], 4, "{v}");
    for p in [&latin1, &newline, &clip] {
        let o = out.join(p.file_name().unwrap());
        assert!(o.is_file(), "{} written under its own bytes", o.display());
        assert!(bystander::batch::report_path_for(&o).is_file());
    }
    assert_eq!(frame_times(&out.join(clip.file_name().unwrap())).len(), 10);
    // The plain log: one line per file, names escaped.
    let o = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--recall", "fast", "--overwrite"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).expect("the log is UTF-8");
    assert_eq!(text.lines().count(), 5, "{text}");
    assert!(
        text.contains("caf\\xE9.png")
            && text.contains("two\\nlines.png")
            && text.contains("clip\\xFF.mp4"),
        "{text}"
    );
    // A rerun keeps them all.
    let (code, v, _) = redact_fast(&src, &out, &[]);
    assert_eq!((code, v["kept"].as_u64()), (Some(0), Some(4)));
    // An error on such a file names it the same way.
    std::fs::write(&latin1, b"not a picture").unwrap();
    let o = bystander()
        .arg("redact")
        .arg(&latin1)
        .arg("-o")
        .arg(d.path().join("o2"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.contains("caf\\xE9.png"), "{e}");
}

/// Host code that panics on one file (a progress callback, say).
struct PanicsOn(&'static str);

impl bystander::batch::Observer for PanicsOn {
    fn started(&self, job: &bystander::batch::Job, _: Option<u64>) {
        if job.input.ends_with(self.0) {
            panic!("observer fault on {}", self.0);
        }
    }
}

// 6, second half: a panic in one file's work is that file's failure; the batch goes on.
#[test]
fn item6_a_panic_in_one_files_work_fails_that_file_only() {
    runtime();
    use bystander::{batch, detect::DetectConfig, pipeline::Workers, redact::RedactConfig};
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    std::fs::create_dir_all(&src).unwrap();
    for (i, n) in ["a.png", "b.png", "c.png"].iter().enumerate() {
        noise_png(&src.join(n), 40, 30, i as u32);
    }
    let plan = batch::plan(std::slice::from_ref(&src), &out, batch::is_supported).unwrap();
    let (detect, redact) = (DetectConfig::default(), RedactConfig::default());
    let opts = batch::RunOptions {
        overwrite: false,
        export_detections: false,
        jobs: 2,
        max_pixels: bystander::image_io::DEFAULT_MAX_PIXELS,
        settings: serde_json::json!({}),
        video: Default::default(),
        stop: None,
    };
    let workers = Workers::new(detect, redact).unwrap();
    let outcomes = batch::run(&plan, &workers, &opts, &PanicsOn("b.png"));
    let statuses: Vec<_> = outcomes.iter().map(|o| o.status).collect();
    assert_eq!(
        statuses,
        [
            batch::Status::Redacted,
            batch::Status::Failed,
            batch::Status::Redacted
        ]
    );
    let e = outcomes[1].error.as_deref().unwrap();
    assert!(
        e.contains("b.png") && e.contains("internal error") && e.contains("observer fault"),
        "{e}"
    );
    assert!(!out.join("b.png").exists());
}

// Every session allocates from one arena, in one first region: a key ONNX Runtime refused would
// leave each session its own arena, silently (see `runtime::register_shared_arena`).
#[test]
fn onnx_runtime_takes_the_shared_arena_configuration() {
    runtime();
    assert_eq!(bystander::runtime::shared_arena().ok(), Some(true));
}

// A batch drops its photo redactors before its clips (`Workers::release`); a job after that gets
// a redactor built again, which finds what the first one found.
#[test]
fn a_released_pool_builds_its_redactor_again_with_the_same_detections() {
    runtime();
    use bystander::{detect::DetectConfig, pipeline::Workers, redact::RedactConfig};
    let workers = Workers::new(DetectConfig::default(), RedactConfig::default()).unwrap();
    let photo = rgb("astronaut.jpg");
    let before = workers.with(|r| r.detect(&photo)).unwrap();
    assert!(!before.is_empty(), "the fixture has a face");
    workers.release();
    let after = workers.with(|r| r.detect(&photo)).unwrap();
    assert_eq!(before, after);
}

// A running detector holds its sessions, not its model files' bytes: a pool that needs one more
// session reads the file again. One whose file was replaced or removed meanwhile makes none from
// it, and its workers take turns with the sessions it has, never failing a frame for it, even
// after a worker panicked holding one. Bytes handed over in memory are kept, as there is nothing to
// read them from.
#[test]
fn a_session_pool_reads_its_model_file_again_and_never_uses_a_replaced_one() {
    runtime();
    use bystander::detect::session_pool_probe;
    use bystander::models::{ModelData, CENTERFACE, RETINAFACE};
    let d = tempfile::tempdir().unwrap();
    let copy = d.path().join("faces.onnx");
    let shipped = |m: &bystander::models::ShippedModel| bystander::models::model_dir().join(m.file);
    std::fs::copy(shipped(&RETINAFACE), &copy).unwrap();
    let from_file = || RETINAFACE.load_from(&copy).unwrap();
    // Three workers at once: three sessions, made from the file.
    let probe = |then: &dyn Fn(), first_panics| {
        session_pool_probe(from_file(), then, 3, first_panics, None).map_err(|e| e.to_string())
    };
    assert_eq!(probe(&|| (), false), Ok((false, 3)));
    // Capped (low memory): the workers take turns with one session, or share two.
    for cap in [1, 2] {
        let capped = session_pool_probe(from_file(), || (), 3, false, Some(cap));
        assert_eq!(capped.map_err(|e| e.to_string()), Ok((false, cap)));
    }
    // Replaced by another model that loads as well (it would run through the wrong decoder).
    let replace = || {
        std::fs::copy(shipped(&CENTERFACE), &copy).unwrap();
    };
    assert_eq!(probe(&replace, false), Ok((false, 1)));
    std::fs::copy(shipped(&RETINAFACE), &copy).unwrap();
    let remove = || std::fs::remove_file(&copy).unwrap();
    assert_eq!(probe(&remove, false), Ok((false, 1)));
    // A worker that panics while holding the only session gives it back; a waiting one would
    // otherwise wait for ever, so the probe runs on a thread of its own, under a time limit.
    std::fs::copy(shipped(&RETINAFACE), &copy).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let model = from_file();
    let gone = copy.clone();
    std::thread::spawn(move || {
        let remove = || std::fs::remove_file(&gone).unwrap();
        let _ =
            tx.send(session_pool_probe(model, remove, 3, true, None).map_err(|e| e.to_string()));
    });
    let after_panic = rx.recv_timeout(Duration::from_secs(30));
    assert_eq!(after_panic, Ok(Ok((false, 1))), "the workers after a panic");

    let bytes = std::fs::read(shipped(&RETINAFACE)).unwrap();
    let held = ModelData::from_bytes("faces", bytes, RETINAFACE.family, RETINAFACE.class);
    assert_eq!(
        session_pool_probe(held, || (), 2, false, None).map_err(|e| e.to_string()),
        Ok((true, 2))
    );
}

/// The command line in an environment of its own: no CI variable (ONNX Runtime's telemetry is
/// silent under CI), no telemetry switch, and a cache folder `home` of its own, with the ONNX
/// Runtime library the tests use.
fn cli_in_a_clean_environment(home: &Path) -> Command {
    runtime();
    let library = bystander::runtime::info().unwrap().library;
    let mut cmd = bystander();
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CACHE_HOME", home)
        .env("BYSTANDER_CACHE_DIR", bystander::runtime::cache_dir());
    if library.is_absolute() {
        cmd.env("ORT_DYLIB_PATH", &library);
    }
    cmd
}

// ONNX Runtime's Linux build records a device id and usage events (the executable's path among
// them) under $XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime and uploads them, unless
// ORT_DISABLE_TELEMETRY=1 is set before it starts; the library sets it, overriding a 0.
#[test]
fn onnx_runtime_telemetry_is_off_before_the_runtime_starts() {
    for inherited in [None, Some("0")] {
        let d = tempfile::tempdir().unwrap();
        let mut cmd = cli_in_a_clean_environment(d.path());
        if let Some(v) = inherited {
            cmd.env(bystander::runtime::TELEMETRY_SWITCH, v);
        }
        let out = d.path().join("out");
        let o = cmd
            .arg("redact")
            .arg(fixture("astronaut.jpg"))
            .arg("-o")
            .arg(&out)
            .arg("-q")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(out.join("astronaut.jpg").is_file());
        let telemetry = d.path().join("Microsoft");
        assert!(
            !telemetry.exists(),
            "ONNX Runtime wrote {telemetry:?} ({inherited:?})"
        );
    }
}

// Redacting files opens no network connection: the run is killed (SIGSYS) by the kernel the
// moment anything in the process, bystander or a library it loads, asks for a socket. ONNX
// Runtime's telemetry did, a second into a clip, to look up its collector's address.
#[test]
fn redacting_photos_and_clips_opens_no_socket() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(fixture("astronaut.jpg"), src.join("astronaut.jpg")).unwrap();
    let clip = src.join("street.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25:duration=6",
        "-pix_fmt",
        "yuv420p",
        s(&clip),
    ]);
    let mut cmd = cli_in_a_clean_environment(d.path());
    let filter = no_socket_filter();
    // SAFETY: the closure runs in the forked child before exec and only makes two `prctl` system
    // calls on memory prepared before the fork (`filter` outlives the spawn); it allocates
    // nothing, as a child of a threaded parent must not.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = d.path().join("out");
    let o = cmd
        .args([OsStr::new("redact"), src.as_os_str(), OsStr::new("-o")])
        .arg(&out)
        .arg("-q")
        .output()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_ne!(
        o.status.signal(),
        Some(libc::SIGSYS),
        "something in the run asked for a socket"
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("astronaut.jpg").is_file() && out.join("street.mp4").is_file());
}

/// A seccomp program that kills the process on `socket(2)` and allows every other call.
fn no_socket_filter() -> Vec<libc::sock_filter> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const KILL_PROCESS: u32 = 0x8000_0000;
    const ALLOW: u32 = 0x7fff_0000;
    let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    vec![
        op(LD_W_ABS, 0, 0, 0), // the system call's number (seccomp_data.nr)
        op(JEQ_K, 0, 1, libc::SYS_socket as u32),
        op(RET_K, 0, 0, KILL_PROCESS),
        op(RET_K, 0, 0, ALLOW),
    ]
}

// 7. One pixel budget for photos and clip frames, checked before allocation.
#[test]
fn item7_photos_and_clips_over_the_pixel_budget_are_refused_from_their_headers() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    // 23000x23000 greyscale: 504 MiB decoded, under the old 512 MiB byte limit.
    std::fs::write(src.join("bomb.png"), png_claiming(23_000, 23_000, 0)).unwrap();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "color=c=gray:size=16000x16000:rate=1",
        "-frames:v",
        "1",
        "-c:v",
        "mjpeg",
        "-q:v",
        "31",
        s(&src.join("huge_mjpeg.avi")),
    ]);
    // A clip whose frames grow mid-stream: 160x120, then 1280x960 (MJPEG in AVI takes both).
    let (small, big) = (d.path().join("s.avi"), d.path().join("b.avi"));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-t",
        "1",
        "-c:v",
        "mjpeg",
        s(&small),
    ]);
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=1280x960:rate=10",
        "-t",
        "1",
        "-c:v",
        "mjpeg",
        s(&big),
    ]);
    let list = d.path().join("list.txt");
    std::fs::write(&list, format!("file '{}'\nfile '{}'\n", s(&small), s(&big))).unwrap();
    let grows = src.join("grows.avi");
    ffmpeg(&[
        "-f",
        "concat",
        "-safe",
        "0",
        "-i",
        s(&list),
        "-c",
        "copy",
        s(&grows),
    ]);
    let out = d.path().join("out");
    let mut cmd = bystander();
    cmd.arg("redact").arg(&src).arg("-o").arg(&out).args([
        "--recall",
        "fast",
        "--json",
        "--max-megapixels",
        "0.5",
    ]);
    let started = std::time::Instant::now();
    let o = run_with_limit(cmd, Duration::from_secs(120));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let err = |name: &str| {
        let f = v["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["input"].as_str().unwrap().ends_with(name))
            .unwrap();
        (
            f["status"].as_str().unwrap().to_string(),
            f["error"].as_str().unwrap_or("").to_string(),
            f["report"].clone(),
        )
    };
    for (name, size) in [
        ("bomb.png", "23000x23000"),
        ("huge_mjpeg.avi", "16000x16000"),
    ] {
        let (status, e, _) = err(name);
        assert_eq!(status, "failed", "{name}");
        assert!(
            e.contains(name)
                && e.contains(size)
                && e.contains("0.5 megapixels")
                && e.contains("--max-megapixels"),
            "{e}"
        );
    }
    // The frames past the budget are covered whole; every frame is written.
    let (status, e, report) = err("grows.avi");
    assert_eq!(status, "redacted", "{e}");
    assert_eq!(report["frames"], 20, "{report}");
    assert!(
        report["fail_closed_frames"].as_u64().unwrap() >= 10,
        "{report}"
    );
    assert_eq!(frame_count(&out.join("grows.avi")), 20);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "refused at the header, not decoded"
    );
    // The default budget (100 megapixels) refuses both bombs too, naming it.
    let (_, v, _) = run_json(&[
        os("redact"),
        src.join("bomb.png").as_os_str(),
        os("-o"),
        d.path().join("o2").as_os_str(),
    ]);
    assert!(
        v["files"][0]["error"]
            .as_str()
            .unwrap()
            .contains("limit of 100.0 megapixels"),
        "{v}"
    );
}

// 8. The files the tool reads are regular files within a size cap; --jobs is bounded.
#[test]
fn item8_files_read_must_be_regular_and_small_enough_and_jobs_bounded() {
    let d = tempfile::tempdir().unwrap();
    let photo = d.path().join("p.png");
    noise_png(&photo, 32, 24, 1);
    let fifo = d.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let sparse = d.path().join("sparse.json");
    std::fs::File::create(&sparse)
        .unwrap()
        .set_len(2 << 30)
        .unwrap();
    let out = d.path().join("out");
    let model = |p: &Path| {
        let mut spec = std::ffi::OsString::from("centerface:");
        spec.push(p);
        spec
    };
    let render = d.path().join("r.png");
    let (o, p) = (out.as_os_str(), photo.as_os_str());
    let (zero_model, fifo_model) = (model(Path::new("/dev/zero")), model(&fifo));
    let cases: Vec<(Vec<&OsStr>, &str)> = vec![
        (
            vec![os("redact"), p, os("-o"), o, os("--zones"), os("/dev/zero")],
            "character device",
        ),
        (
            vec![
                os("redact"),
                p,
                os("-o"),
                o,
                os("--zones"),
                fifo.as_os_str(),
            ],
            "FIFO",
        ),
        (
            vec![
                os("redact"),
                p,
                os("-o"),
                o,
                os("--zones"),
                sparse.as_os_str(),
            ],
            "limit",
        ),
        (
            vec![
                os("redact"),
                p,
                os("-o"),
                o,
                os("--face-model"),
                &zero_model,
            ],
            "character device",
        ),
        (
            vec![
                os("redact"),
                p,
                os("-o"),
                o,
                os("--face-model"),
                &fifo_model,
            ],
            "FIFO",
        ),
        (
            vec![
                os("render"),
                p,
                os("--detections"),
                os("/dev/zero"),
                os("-o"),
                render.as_os_str(),
            ],
            "character device",
        ),
        (
            vec![
                os("render"),
                p,
                os("--detections"),
                fifo.as_os_str(),
                os("-o"),
                render.as_os_str(),
            ],
            "FIFO",
        ),
        (
            vec![
                os("render"),
                p,
                os("--detections"),
                sparse.as_os_str(),
                os("-o"),
                render.as_os_str(),
            ],
            "limit",
        ),
        (vec![os("eval"), sparse.as_os_str()], "limit"),
        (
            vec![os("redact"), p, os("-o"), o, os("--jobs"), os("100000")],
            "1 to 256",
        ),
        (
            vec![os("redact"), p, os("-o"), o, os("--backfill"), os("100000")],
            "0 to 100",
        ),
    ];
    for (args, want) in cases {
        let mut cmd = bystander();
        cmd.args(&args);
        let o = run_with_limit(cmd, Duration::from_secs(30));
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {e}");
        assert!(e.contains(want), "{args:?}: {e}");
    }
    assert!(!out.exists(), "nothing written");
    // A FIFO or a device among the inputs is skipped with the reason, not read.
    let src = d.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    assert!(Command::new("mkfifo")
        .arg(src.join("cam.jpg"))
        .status()
        .unwrap()
        .success());
    std::fs::copy(&photo, src.join("ok.png")).unwrap();
    let mut cmd = bystander();
    cmd.arg("redact")
        .arg(&src)
        .arg(src.join("cam.jpg"))
        .arg("-o")
        .arg(&out)
        .args(["--recall", "fast"]);
    let o = run_with_limit(cmd, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}");
    assert_eq!(
        text.matches("cam.jpg: a FIFO (named pipe), not a regular file")
            .count(),
        2,
        "{text}"
    );
}

// 9. Smaller faults: a duplicated timestamp, a VP9 WebM at default settings, symlinks.
#[test]
fn item9_duplicated_timestamps_keep_the_frame_count() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    let base = d.path().join("base.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-t",
        "2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        s(&base),
    ]);
    for (n, ext) in [(1, "mkv"), (5, "mp4"), (3, "ts"), (10, "mkv")] {
        let p = src.join(format!("dup{n}.{ext}"));
        ffmpeg(&[
            "-i",
            s(&base),
            "-c",
            "copy",
            "-bsf:v",
            &format!("setts=ts=if(eq(N\\,{n})\\,PREV_INPTS\\,PTS)"),
            s(&p),
        ]);
    }
    let out = d.path().join("out");
    let (code, v, e) = redact_fast(&src, &out, &[]);
    assert_eq!(code, Some(0), "{e}: {v}");
    for f in v["files"].as_array().unwrap() {
        let input = PathBuf::from(f["input"].as_str().unwrap());
        let output = PathBuf::from(f["output"].as_str().unwrap());
        let (a, b) = (frame_times(&input), frame_times(&output));
        assert_eq!(a.len(), 20, "{}", input.display());
        assert_eq!(
            b.len(),
            a.len(),
            "{}: frames out equal frames in",
            output.display()
        );
        assert!(
            b.windows(2).all(|w| w[1] > w[0]),
            "{}: increasing times {b:?}",
            output.display()
        );
    }
}

#[test]
fn item9_a_webm_clip_gets_an_encoder_its_container_takes() {
    let d = tempfile::tempdir().unwrap();
    let clip = d.path().join("cam.webm");
    clip_with_sound(&clip, &["libvpx-vp9", "-deadline", "realtime"], "libopus");
    let out = d.path().join("out");
    let o = bystander()
        .arg("redact")
        .arg(&clip)
        .arg("-o")
        .arg(&out)
        .args(["--recall", "fast"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(streams(&out.join("cam.webm")), ["video:vp9", "audio:opus"]);
    assert_eq!(frame_times(&out.join("cam.webm")).len(), 20);
    // An encoder the container cannot take is a clear error naming the file and the option.
    let o = bystander()
        .arg("redact")
        .arg(&clip)
        .arg("-o")
        .arg(d.path().join("o2"))
        .args(["--recall", "fast", "--encoder", "libx264"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("cam.webm") && e.contains("--encoder") && e.contains("libx264"),
        "{e}"
    );
}

#[test]
fn item9_symlinks_in_a_folder_are_listed_as_skipped_with_the_reason() {
    let d = tempfile::tempdir().unwrap();
    let root = std::fs::canonicalize(d.path()).unwrap();
    let src = root.join("in");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    noise_png(&src.join("sub/a.png"), 32, 24, 1);
    noise_png(&root.join("outside.png"), 32, 24, 2);
    let link =
        |target: &Path, name: &str| std::os::unix::fs::symlink(target, src.join(name)).unwrap();
    link(&src.join("loop_b"), "loop_a");
    link(&src.join("loop_a"), "loop_b");
    link(&root.join("outside.png"), "out_of_tree.png");
    link(&src.join("sub/a.png"), "inside.png");
    link(&root.join("missing.png"), "dangling.png");
    link(&root, "up");
    let out = root.join("out");
    let (code, v, e) = redact_fast(&src, &out, &[]);
    assert_eq!(code, Some(0), "{e}");
    assert_eq!(v["redacted"], 1);
    let skipped: Vec<(String, String)> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"]
                    .as_str()
                    .unwrap()
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_string(),
                s["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let reason = |n: &str| {
        skipped
            .iter()
            .find(|(p, _)| p == n)
            .map(|(_, r)| r.clone())
            .unwrap_or_else(|| panic!("{n} not listed: {skipped:?}"))
    };
    assert!(reason("loop_a").contains("loops"), "{skipped:?}");
    assert!(reason("loop_b").contains("loops"));
    assert!(reason("out_of_tree.png").contains("outside the input folder"));
    assert!(reason("up").contains("outside the input folder"));
    assert!(reason("dangling.png").contains("does not exist"));
    assert!(reason("inside.png").contains("not followed"));
    assert!(!out.join("out_of_tree.png").exists() && !out.join("inside.png").exists());
}

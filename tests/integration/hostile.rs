//! Hostile and odd inputs, generated here, run through the binary in one batch: each must end as
//! a typed error naming the file or as a correct output, never a panic or a hang, and the batch
//! must go on. Then the faults: a full disk (an injected write limit), a model file missing or
//! altered, and no ONNX Runtime library.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use crate::video::{ffmpeg, frame_times};

fn bystander() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bystander"))
}

/// Runs `cmd` to completion, failing the test if it takes longer than `limit` (a hang).
pub fn run_with_limit(mut cmd: Command, limit: Duration) -> std::process::Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut out, &mut v).unwrap();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut err, &mut v).unwrap();
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("the run did not finish within {limit:?} (hang)");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::process::Output {
        status,
        stdout: t_out.join().unwrap(),
        stderr: t_err.join().unwrap(),
    }
}

/// The CRC of PNG chunks (CRC-32, polynomial 0xEDB88320).
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = !0u32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG whose header claims `w` x `h` pixels of 8-bit `colour` (PNG colour type: 0 greyscale,
/// 2 RGB), with no pixel data behind it.
pub fn png_claiming(w: u32, h: u32, colour: u8) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend((data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend(data);
        out.extend(&body);
        out.extend(crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend(w.to_be_bytes());
    ihdr.extend(h.to_be_bytes());
    ihdr.extend([8, colour, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01]);
    chunk(b"IEND", &[]);
    out
}

/// What an input must come to.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// A typed error naming the file, with this in its reason.
    Fails(&'static str),
    /// A redacted copy of the same size (and, for clips, the same frames).
    Redacted,
    /// Either, but nothing else (a damaged file some decoders can partly read).
    Either,
}

/// Makes the corpus under `dir`; returns each file with its expectation.
fn hostile_corpus(dir: &Path) -> Vec<(PathBuf, Expect)> {
    use Expect::*;
    let mut list = Vec::new();
    let put = |name: &str, bytes: &[u8]| -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let jpeg = std::fs::read(fixture("astronaut.jpg")).unwrap();
    let mut png = Vec::new();
    rgb("plate_scene.jpg")
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    for (name, e) in [
        ("zero.jpg", Fails("")),
        ("zero.png", Fails("")),
        ("zero.mp4", Fails("")),
    ] {
        list.push((put(name, b""), e));
    }
    for cut in [10, 200, jpeg.len() / 2, jpeg.len() - 10] {
        let e = if cut <= 200 { Fails("") } else { Either };
        list.push((put(&format!("truncated_at_{cut}.jpg"), &jpeg[..cut]), e));
    }
    for cut in [10, 100, png.len() / 2, png.len() - 5] {
        let e = if cut <= 100 { Fails("") } else { Either };
        list.push((put(&format!("truncated_at_{cut}.png"), &png[..cut]), e));
    }
    list.push((
        put("text.jpg", b"hello, I am not a photo\n"),
        Fails("cannot read image"),
    ));
    list.push((put("png_named.jpg", &png), Redacted));
    list.push((
        put(
            "header_claims_100000x100000.png",
            &png_claiming(100_000, 100_000, 2),
        ),
        Fails("limit"),
    ));
    let save = |name: &str, img: image::DynamicImage| {
        img.save(dir.join(name)).unwrap();
    };
    save("one_by_one.png", image::DynamicImage::new_rgb8(1, 1));
    save("one_by_many.png", image::DynamicImage::new_rgb8(1, 777));
    save("many_by_one.jpg", image::DynamicImage::new_rgb8(777, 1));
    let astro = image::DynamicImage::ImageRgb8(rgb("astronaut.jpg"));
    save(
        "grayscale.jpg",
        image::DynamicImage::ImageLuma8(astro.to_luma8()),
    );
    save(
        "sixteen_bit.png",
        image::DynamicImage::ImageRgb16(astro.to_rgb16()),
    );
    save(
        "alpha.png",
        image::DynamicImage::ImageRgba8(astro.to_rgba8()),
    );
    for name in [
        "one_by_one.png",
        "one_by_many.png",
        "many_by_one.jpg",
        "grayscale.jpg",
        "sixteen_bit.png",
        "alpha.png",
    ] {
        list.push((dir.join(name), Redacted));
    }
    std::fs::copy(fixture("cmyk.jpg"), dir.join("cmyk.jpg")).unwrap();
    list.push((dir.join("cmyk.jpg"), Redacted));
    std::fs::copy(
        fixture("astronaut_exif_rot6.jpg"),
        dir.join("exif_rotated.jpg"),
    )
    .unwrap();
    list.push((dir.join("exif_rotated.jpg"), Redacted));
    // Files of several pictures are refused by name (only the first would be written); a
    // single picture in the same formats is redacted.
    let astro_rgb = astro.to_rgb8();
    save("still.webp", astro.clone());
    save("one_page.tif", astro.clone());
    list.push((dir.join("still.webp"), Redacted));
    list.push((dir.join("one_page.tif"), Redacted));
    let mut bytes = std::io::Cursor::new(Vec::new());
    {
        let mut tif = tiff::encoder::TiffEncoder::new(&mut bytes).unwrap();
        for _ in 0..2 {
            tif.write_image::<tiff::encoder::colortype::RGB8>(
                astro_rgb.width(),
                astro_rgb.height(),
                astro_rgb.as_raw(),
            )
            .unwrap();
        }
    }
    let pages = put("two_pages.tif", bytes.get_ref());
    list.push((pages, Fails("a TIFF of several pages")));

    // Clips.
    let s = |name: &str| dir.join(name).to_str().unwrap().to_string();
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
        &s("good.mp4"),
    ]);
    let good = std::fs::read(dir.join("good.mp4")).unwrap();
    list.push((dir.join("good.mp4"), Redacted));
    for cut in [10, good.len() / 2, good.len() - 64] {
        let e = if cut == 10 { Fails("") } else { Either };
        list.push((put(&format!("truncated_at_{cut}.mp4"), &good[..cut]), e));
    }
    list.push((put("text.mp4", b"not a clip at all\n"), Fails("")));
    let mut damaged = good.clone();
    let mid = damaged.len() / 2;
    for i in (mid..mid + 3000).step_by(5) {
        damaged[i] ^= 0xa5;
    }
    list.push((put("corrupt_middle.mp4", &damaged), Redacted));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=1919x1079:rate=5",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv444p",
        &s("odd_1919x1079.mp4"),
    ]);
    list.push((dir.join("odd_1919x1079.mp4"), Redacted));
    for (name, codec, muxer) in [
        ("animated.png", "apng", "apng"),
        ("animated.webp", "libwebp", "webp"),
    ] {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "testsrc=size=160x120:rate=5",
            "-frames:v",
            "3",
            "-c:v",
            codec,
            "-f",
            muxer,
            &s(name),
        ]);
        list.push((dir.join(name), Fails("an animated")));
    }
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=300:sample_rate=8000",
        "-t",
        "1",
        "-c:a",
        "aac",
        &s("audio_only.mp4"),
    ]);
    list.push((dir.join("audio_only.mp4"), Fails("no video stream")));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-frames:v",
        "0",
        "-c:v",
        "libx264",
        &s("zero_frames.mp4"),
    ]);
    list.push((dir.join("zero_frames.mp4"), Fails("")));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-t",
        "1",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p10le",
        &s("ten_bit.mkv"),
    ]);
    list.push((dir.join("ten_bit.mkv"), Redacted));
    // Rotation side data as phones write it: set on a stream copy (ffmpeg 5.1 drops it when
    // encoding).
    ffmpeg(&[
        "-i",
        &s("good.mp4"),
        "-c",
        "copy",
        "-metadata:s:v:0",
        "rotate=90",
        &s("phone_rotated.mp4"),
    ]);
    list.push((dir.join("phone_rotated.mp4"), Redacted));
    // Second round: a greyscale PNG bomb under the old byte limit, a duplicated timestamp, a VP9
    // WebM, a clip with a text subtitle track, a name with a newline in it.
    list.push((
        put("bomb_grey_23000.png", &png_claiming(23_000, 23_000, 0)),
        Fails("--max-megapixels"),
    ));
    ffmpeg(&[
        "-i",
        &s("good.mp4"),
        "-c",
        "copy",
        "-bsf:v",
        "setts=ts=if(eq(N\\,3)\\,PREV_INPTS\\,PTS)",
        &s("duplicated_timestamp.ts"),
    ]);
    list.push((dir.join("duplicated_timestamp.ts"), Redacted));
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=320x240:rate=10",
        "-t",
        "1",
        "-c:v",
        "libvpx-vp9",
        "-deadline",
        "realtime",
        &s("vp9.webm"),
    ]);
    list.push((dir.join("vp9.webm"), Redacted));
    let srt = dir.with_extension("srt");
    std::fs::write(&srt, "1\n00:00:00,000 --> 00:00:01,000\nN 51.5 W 0.12\n\n").unwrap();
    ffmpeg(&[
        "-i",
        &s("good.mp4"),
        "-i",
        srt.to_str().unwrap(),
        "-c:v",
        "copy",
        "-c:s",
        "srt",
        &s("subtitled.mkv"),
    ]);
    list.push((dir.join("subtitled.mkv"), Redacted));
    // A fragmented MP4 (as cameras record, so that a power cut loses only the last fragment)
    // whose second fragment claims a 4 GB sample: FFmpeg's read fails there, for good, with
    // "Cannot allocate memory". The first fragment's frames are no clip: the file fails.
    ffmpeg(&[
        "-i",
        &s("good.mp4"),
        "-c",
        "copy",
        "-movflags",
        "empty_moov",
        "-frag_duration",
        "500000",
        &s("fragmented.mp4"),
    ]);
    list.push((dir.join("fragmented.mp4"), Redacted));
    let mut fragmented = std::fs::read(dir.join("fragmented.mp4")).unwrap();
    claim_huge_sample(&mut fragmented, 2);
    list.push((
        put("fragment_claims_4gb.mp4", &fragmented),
        Fails("reading stopped after"),
    ));
    std::fs::copy(dir.join("alpha.png"), dir.join("new\nline.png")).unwrap();
    list.push((dir.join("new\nline.png"), Redacted));
    list
}

/// Sets the size of the first sample of the `nth` track run (`trun` box, ISO 14496-12 8.8.8) of a
/// fragmented MP4 to 0xFFFF_FF00 bytes.
fn claim_huge_sample(mp4: &mut [u8], nth: usize) {
    let at = mp4
        .windows(4)
        .enumerate()
        .filter(|(_, w)| w == b"trun")
        .nth(nth - 1)
        .map(|(i, _)| i)
        .expect("a trun box");
    // Full box: version (1 byte) and flags (3), then the sample count.
    let flags = u32::from_be_bytes([0, mp4[at + 5], mp4[at + 6], mp4[at + 7]]);
    assert!(flags & 0x200 != 0, "the run lists sample sizes");
    let mut field = at + 12;
    for (present, bytes) in [(0x1, 4), (0x4, 4), (0x100, 4)] {
        // data offset, first sample's flags, then the first sample's duration
        if flags & present != 0 {
            field += bytes;
        }
    }
    mp4[field..field + 4].copy_from_slice(&0xFFFF_FF00u32.to_be_bytes());
}

fn dims(p: &Path) -> (u32, u32) {
    image::ImageReader::open(p)
        .unwrap()
        .with_guessed_format()
        .unwrap()
        .into_dimensions()
        .unwrap()
}

#[test]
fn every_hostile_input_ends_as_a_named_error_or_a_correct_output() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    std::fs::create_dir_all(&src).unwrap();
    let corpus = hostile_corpus(&src);
    let before: BTreeMap<PathBuf, Vec<u8>> = corpus
        .iter()
        .map(|(p, _)| (p.clone(), std::fs::read(p).unwrap()))
        .collect();
    let mut cmd = bystander();
    cmd.arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--json", "--recall", "fast"]);
    let o = run_with_limit(cmd, Duration::from_secs(600));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let files = summary["files"].as_array().unwrap();
    assert_eq!(files.len(), corpus.len(), "every file was tried");
    let mut table = String::new();
    for (path, expect) in &corpus {
        let f = files
            .iter()
            .find(|f| f["input"].as_str() == path.to_str())
            .unwrap_or_else(|| panic!("{} missing from the summary", path.display()));
        let name = path.file_name().unwrap().to_string_lossy();
        let output = out.join(path.file_name().unwrap());
        match f["status"].as_str().unwrap() {
            "failed" => {
                let e = f["error"].as_str().unwrap();
                table += &format!("{name}: error: {e}\n");
                assert!(
                    e.contains(&bystander::files::Shown(path).to_string()),
                    "{name}: error names the file: {e}"
                );
                assert!(!output.exists(), "{name}: nothing under the final name");
                match expect {
                    Expect::Fails(why) => assert!(e.contains(why), "{name}: {e}"),
                    Expect::Either => {}
                    Expect::Redacted => panic!("{name} should have been redacted: {e}"),
                }
            }
            "redacted" => {
                let r = &f["report"];
                table += &format!(
                    "{name}: redacted, {} faces, {} plates, {} fail-closed frames\n",
                    r["faces"], r["plates"], r["fail_closed_frames"]
                );
                assert!(
                    !matches!(expect, Expect::Fails(_)),
                    "{name} should have failed: {r}"
                );
                if r["frames"].is_u64() {
                    assert_eq!(
                        frame_times(&output).len() as u64,
                        r["frames"].as_u64().unwrap(),
                        "{name}"
                    );
                    if *expect == Expect::Redacted {
                        let probe = |p: &Path| {
                            let o = Command::new("ffprobe")
                                .args([
                                    "-v",
                                    "error",
                                    "-select_streams",
                                    "v:0",
                                    "-show_entries",
                                    "stream=width,height",
                                    "-of",
                                    "csv=p=0",
                                ])
                                .arg(p)
                                .output()
                                .unwrap();
                            String::from_utf8_lossy(&o.stdout).into_owned()
                        };
                        assert_eq!(probe(&output), probe(path), "{name}: same size");
                    }
                } else {
                    let (w, h) = dims(&output);
                    if name == "exif_rotated.jpg" {
                        let (sw, sh) = dims(path);
                        assert_eq!((w, h), (sh, sw), "{name}: written upright");
                    } else if *expect == Expect::Redacted {
                        assert_eq!((w, h), dims(path), "{name}: same size");
                    }
                }
            }
            s => panic!("{name}: unexpected status {s}"),
        }
    }
    // The rotated clip was detected upright; the corrupt one had frames covered.
    let report = |n: &str| {
        &files
            .iter()
            .find(|f| f["input"].as_str().unwrap().ends_with(n))
            .unwrap()["report"]
    };
    assert!(matches!(
        report("phone_rotated.mp4")["rotation"].as_u64(),
        Some(90 | 270)
    ));
    assert!(
        report("corrupt_middle.mp4")["fail_closed_frames"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(report("alpha.png").is_object());
    assert_eq!(
        report("subtitled.mkv")["dropped_streams"][0]["kind"],
        "subtitle"
    );
    assert_eq!(report("duplicated_timestamp.ts")["frames"], 20);
    assert!(
        image::open(out.join("alpha.png"))
            .unwrap()
            .color()
            .has_alpha(),
        "alpha kept"
    );
    for (p, bytes) in &before {
        assert_eq!(
            &std::fs::read(p).unwrap(),
            bytes,
            "{} unchanged",
            p.display()
        );
    }
    eprintln!("{table}");
}

/// Runs the binary with writes limited to `kib` KiB per file (RLIMIT_FSIZE, with SIGXFSZ ignored
/// so a write past it fails with EFBIG, as on a full disk).
fn redact_with_write_limit(kib: u32, input: &Path, out: &Path) -> std::process::Output {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!("trap '' XFSZ; ulimit -f {kib}; exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_bystander"))
        .arg("redact")
        .arg(input)
        .arg("-o")
        .arg(out)
        .args(["--recall", "fast"]);
    run_with_limit(cmd, Duration::from_secs(300))
}

#[test]
fn a_full_disk_mid_write_leaves_no_partial_output_and_the_inputs_intact() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    let photo = src.join("portrait.png");
    rgb("astronaut.jpg").save(&photo).unwrap();
    let clip = src.join("street.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=25",
        "-t",
        "3",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        clip.to_str().unwrap(),
    ]);
    let before: Vec<Vec<u8>> = [&photo, &clip]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    let out = d.path().join("out");
    // 64 KiB: less than either redacted file needs.
    let o = redact_with_write_limit(64, &src, &out);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for name in ["portrait.png", "street.mp4"] {
        assert!(
            stderr.lines().any(|l| l.contains(name)),
            "{name} named: {stderr}"
        );
        assert!(
            !out.join(name).exists(),
            "{name}: no partial file under the final name"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing left behind: {left:?}");
    let after: Vec<Vec<u8>> = [&photo, &clip]
        .iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect();
    assert_eq!(before, after, "inputs intact");
    // With room again, the same command finishes both.
    let o = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--recall", "fast"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(frame_times(&out.join("street.mp4")).len(), 75);
}

#[test]
fn a_missing_or_altered_model_is_refused_at_start_with_its_path_and_expected_sha256() {
    let d = tempfile::tempdir().unwrap();
    let models = d.path().join("models");
    std::fs::create_dir_all(&models).unwrap();
    let shipped = bystander::models::model_dir();
    for m in bystander::models::SHIPPED {
        std::fs::copy(shipped.join(m.file), models.join(m.file)).unwrap();
    }
    let photo = d.path().join("p.jpg");
    std::fs::copy(fixture("astronaut.jpg"), &photo).unwrap();
    // A batch of clips only builds no photo redactor up front (`Workers::deferred`): its models
    // must be refused at start all the same.
    let clip = d.path().join("c.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc=size=160x120:rate=10",
        "-t",
        "0.5",
        "-pix_fmt",
        "yuv420p",
        clip.to_str().unwrap(),
    ]);
    let cf = bystander::models::CENTERFACE;
    let run = |input: &Path| {
        bystander()
            .arg("redact")
            .arg(input)
            .arg("-o")
            .arg(d.path().join("out"))
            .env("BYSTANDER_MODEL_DIR", &models)
            .output()
            .unwrap()
    };
    // Altered: one byte flipped.
    let path = models.join(cf.file);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    for input in [&photo, &clip] {
        let o = run(input);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {e}", input.display());
        assert!(
            e.contains(&path.display().to_string()) && e.contains(cf.sha256),
            "{e}"
        );
    }
    // Missing.
    std::fs::remove_file(&path).unwrap();
    for input in [&photo, &clip] {
        let o = run(input);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{}: {e}", input.display());
        assert!(e.contains(&path.display().to_string()), "{e}");
    }
    assert!(!d.path().join("out/p.jpg").exists(), "nothing written");
    assert!(!d.path().join("out/c.mp4").exists(), "nothing written");
}

#[test]
fn without_onnx_runtime_the_error_names_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let photo = d.path().join("p.jpg");
    std::fs::copy(fixture("astronaut.jpg"), &photo).unwrap();
    let o = bystander()
        .arg("redact")
        .arg(&photo)
        .arg("-o")
        .arg(d.path().join("out"))
        .env("ORT_DYLIB_PATH", d.path().join("no/libonnxruntime.so"))
        .output()
        .unwrap();
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("ORT_DYLIB_PATH") && e.contains("no/libonnxruntime.so"),
        "{e}"
    );
    // The message says what to do, not only what failed.
    assert!(e.contains("fix: set ORT_DYLIB_PATH"), "{e}");
    assert!(!d.path().join("out/p.jpg").exists());
}

//! The `bystander` binary on folders of fixtures.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn bystander() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bystander"))
}

fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage, r: bystander::BBox) -> f64 {
    let mut sum = 0u64;
    let mut n = 0u64;
    for y in r.y1 as u32..r.y2 as u32 {
        for x in r.x1 as u32..r.x2 as u32 {
            for c in 0..3 {
                sum +=
                    (a.get_pixel(x, y).0[c] as i64 - b.get_pixel(x, y).0[c] as i64).unsigned_abs();
            }
            n += 3;
        }
    }
    sum as f64 / n as f64
}

fn tree_with_fixtures(root: &Path) {
    std::fs::create_dir_all(root.join("cam 1/2026-11-28")).unwrap();
    std::fs::copy(
        fixture("astronaut_exif_rot6.jpg"),
        root.join("cam 1/2026-11-28/portrait.jpg"),
    )
    .unwrap();
    std::fs::copy(fixture("plate_scene.jpg"), root.join("car.jpg")).unwrap();
}

#[test]
fn redact_mirrors_a_folder_strips_metadata_and_hides_face_and_plate() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    tree_with_fixtures(&src);
    let before = std::fs::read(src.join("car.jpg")).unwrap();
    let status = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("--quiet")
        .status()
        .unwrap();
    assert!(status.success());
    // Mirrored tree, inputs untouched.
    let portrait = out.join("cam 1/2026-11-28/portrait.jpg");
    assert!(portrait.is_file() && out.join("car.jpg").is_file());
    assert_eq!(std::fs::read(src.join("car.jpg")).unwrap(), before);
    // The EXIF-rotated portrait comes out upright (orientation applied, metadata gone).
    let bytes = std::fs::read(&portrait).unwrap();
    assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"));
    let red = bystander::image_io::load(&portrait)
        .unwrap()
        .image
        .to_rgb8();
    let orig = rgb("astronaut.jpg");
    assert_eq!(red.dimensions(), orig.dimensions());
    // Face region changed a lot, a far corner barely (JPEG re-encoding only).
    let face = bbox(ASTRONAUT_CENTERFACE);
    assert!(mean_abs_diff(&red, &orig, face) > 20.0);
    assert!(
        mean_abs_diff(
            &red,
            &orig,
            bystander::BBox::new(400.0, 400.0, 500.0, 500.0)
        ) < 4.0
    );
    let car = bystander::image_io::load(&out.join("car.jpg"))
        .unwrap()
        .image
        .to_rgb8();
    assert!(mean_abs_diff(&car, &rgb("plate_scene.jpg"), bbox(PLATE_DRAWN)) > 20.0);
}

#[test]
fn a_photos_colour_space_is_carried_over_in_bystanders_own_profile_and_nothing_else() {
    use image::ImageEncoder;
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    std::fs::create_dir_all(&src).unwrap();
    use bystander::image_io::icc::{profile_of, ColourSpace};
    let p3 = camera_icc_profile(b"RGB ");
    // A phone's portrait: EXIF (rotation, camera name) and a colour profile naming the camera.
    let portrait = jpeg_with_icc_profile(
        &std::fs::read(fixture("astronaut_exif_rot6.jpg")).unwrap(),
        &p3,
    );
    std::fs::write(src.join("portrait.jpg"), &portrait).unwrap();
    // A grey profile does not describe the RGB copy written, so it is dropped; sRGB is what
    // viewers assume without a profile.
    let astronaut = std::fs::read(fixture("astronaut.jpg")).unwrap();
    let grey = jpeg_with_icc_profile(&astronaut, &camera_icc_profile(b"GRAY"));
    std::fs::write(src.join("grey_profile.jpg"), grey).unwrap();
    let srgb = jpeg_with_icc_profile(&astronaut, &profile_of(ColourSpace::Srgb));
    std::fs::write(src.join("srgb.jpg"), srgb).unwrap();
    // The other formats that carry profiles, written by their own encoders.
    let img = rgb("astronaut.jpg");
    let (w, h) = img.dimensions();
    let rgb8 = image::ExtendedColorType::Rgb8;
    let write = |name: &str, f: &dyn Fn(&mut std::io::Cursor<Vec<u8>>)| {
        let mut c = std::io::Cursor::new(Vec::new());
        f(&mut c);
        std::fs::write(src.join(name), c.into_inner()).unwrap();
    };
    write("a.png", &|c| {
        let mut e = image::codecs::png::PngEncoder::new(c);
        e.set_icc_profile(p3.clone()).unwrap();
        e.write_image(img.as_raw(), w, h, rgb8).unwrap();
    });
    write("a.webp", &|c| {
        let mut e = image::codecs::webp::WebPEncoder::new_lossless(c);
        e.set_icc_profile(p3.clone()).unwrap();
        e.write_image(img.as_raw(), w, h, rgb8).unwrap();
    });
    write("a.tif", &|c| {
        let mut e = image::codecs::tiff::TiffEncoder::new(c);
        e.set_icc_profile(p3.clone()).unwrap();
        e.write_image(img.as_raw(), w, h, rgb8).unwrap();
    });
    let status = bystander()
        .args(["redact", "--quiet"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let copy_profile = |name: &str| {
        bystander::image_io::load(&out.join(name))
            .unwrap()
            .icc_profile
    };
    let own = profile_of(ColourSpace::DisplayP3);
    for name in ["portrait.jpg", "a.png", "a.webp", "a.tif"] {
        assert_eq!(copy_profile(name).as_ref(), Some(&own), "{name}");
        let bytes = std::fs::read(out.join(name)).unwrap();
        assert!(
            !bytes.windows(4).any(|w| w == b"ACME"),
            "{name} names the camera"
        );
        let redacted = bystander::image_io::load(&out.join(name))
            .unwrap()
            .image
            .to_rgb8();
        let face = bbox(ASTRONAUT_CENTERFACE);
        assert!(
            mean_abs_diff(&redacted, &img, face) > 20.0,
            "{name}: face hidden"
        );
    }
    assert_eq!(copy_profile("grey_profile.jpg"), None);
    assert_eq!(copy_profile("srgb.jpg"), None);
    let bytes = std::fs::read(out.join("portrait.jpg")).unwrap();
    assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"));
    assert!(!bytes.windows(21).any(|w| w == b"bystander-test-camera"));
    assert_eq!(std::fs::read(src.join("portrait.jpg")).unwrap(), portrait);
}

#[test]
fn heif_photos_are_redacted_into_jpegs_and_nothing_else_they_hold_is_copied() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    std::fs::create_dir_all(&src).unwrap();
    for (fixture_name, name) in [
        ("astronaut.heic", "IMG_0001.HEIC"),
        ("astronaut_10bit_icc.heic", "ten_bit.heic"),
        ("astronaut_small.avif", "small.avif"),
        ("two_pictures.heic", "two_pictures.heic"),
    ] {
        std::fs::copy(fixture(fixture_name), src.join(name)).unwrap();
    }
    // A HEIF header and then nothing a decoder can read.
    let mut junk = std::fs::read(fixture("astronaut.heic")).unwrap();
    junk.truncate(40);
    junk.extend([0x5a; 300]);
    std::fs::write(src.join("cut.heic"), &junk).unwrap();
    let before = std::fs::read(src.join("IMG_0001.HEIC")).unwrap();
    let run = bystander()
        .args(["redact", "--quiet"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("two_pictures.heic") && stderr.contains("2 pictures"),
        "{stderr}"
    );
    assert!(stderr.contains("cut.heic"), "{stderr}");
    assert!(!out.join("two_pictures.heic.jpg").exists() && !out.join("cut.heic.jpg").exists());
    assert_eq!(std::fs::read(src.join("IMG_0001.HEIC")).unwrap(), before);

    // The phone photo: a JPEG of the primary picture, the face hidden, the rest as it was; its
    // thumbnail (a picture of the same face) is not in the copy.
    let photo = out.join("IMG_0001.HEIC.jpg");
    let bytes = std::fs::read(&photo).unwrap();
    assert!(bytes.starts_with(&[0xFF, 0xD8, 0xFF]));
    assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"));
    let redacted = bystander::image_io::load(&photo).unwrap();
    assert_eq!(redacted.format, image::ImageFormat::Jpeg);
    let (redacted, astronaut) = (redacted.image.to_rgb8(), rgb("astronaut.jpg"));
    assert_eq!(redacted.dimensions(), (512, 512));
    let face = bbox(ASTRONAUT_CENTERFACE);
    assert!(mean_abs_diff(&redacted, &astronaut, face) > 20.0);
    let corner = bystander::BBox::new(400.0, 400.0, 500.0, 500.0);
    assert!(mean_abs_diff(&redacted, &astronaut, corner) < 8.0);
    let decoded_jpegs = std::fs::read_dir(&out)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "jpg")
        })
        .count();
    assert_eq!(decoded_jpegs, 3);

    // 10-bit HEVC comes out as 8-bit JPEG with its colour profile; AVIF is read the same way.
    let ten_bit = bystander::image_io::load(&out.join("ten_bit.heic.jpg")).unwrap();
    assert_eq!(ten_bit.image.to_rgb8().dimensions(), (256, 256));
    let profile = ten_bit
        .icc_profile
        .expect("the colour profile carried over");
    assert_eq!(
        Some(profile),
        bystander::image_io::load(&src.join("ten_bit.heic"))
            .unwrap()
            .icc_profile
    );
    let small = bystander::image_io::load(&out.join("small.avif.jpg")).unwrap();
    assert_eq!(small.image.to_rgb8().dimensions(), (256, 256));
    let small_src = rgb("astronaut.jpg");
    let small_src = image::imageops::resize(&small_src, 256, 256, image::imageops::Lanczos3);
    let half = |v: [f32; 4]| bbox([v[0] / 2.0, v[1] / 2.0, v[2] / 2.0, v[3] / 2.0]);
    assert!(
        mean_abs_diff(
            &small.image.to_rgb8(),
            &small_src,
            half(ASTRONAUT_CENTERFACE)
        ) > 20.0
    );

    // The pixel budget holds before decoding: 0.26 megapixels against 0.1.
    let tight = bystander()
        .args(["redact", "--quiet", "--max-megapixels", "0.1"])
        .arg(src.join("IMG_0001.HEIC"))
        .arg("-o")
        .arg(d.path().join("tight"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&tight.stderr);
    assert_eq!(tight.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("IMG_0001.HEIC") && stderr.contains("512"),
        "{stderr}"
    );
}

#[test]
fn a_bad_file_is_reported_by_name_and_the_rest_still_done_with_exit_2() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    tree_with_fixtures(&src);
    std::fs::write(src.join("notes.jpg"), "not a photo").unwrap();
    std::fs::write(src.join("empty.png"), "").unwrap();
    let o = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("notes.jpg") && err.contains("empty.png"),
        "{err}"
    );
    assert_eq!(
        err.lines().filter(|l| l.starts_with("bystander:")).count(),
        2,
        "{err}"
    );
    assert!(out.join("car.jpg").is_file() && out.join("cam 1/2026-11-28/portrait.jpg").is_file());
    assert!(!out.join("notes.jpg").exists() && !out.join("empty.png").exists());
}

#[test]
fn fill_style_with_colour_and_zones_are_applied() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let zones = d.path().join("zones.json");
    // Bottom-right quarter of the frame as a zone, in fractions.
    std::fs::write(
        &zones,
        r#"{"units": "fraction", "zones": [[[0.5,0.5],[1,0.5],[1,1],[0.5,1]]]}"#,
    )
    .unwrap();
    let status = bystander()
        .args([
            "redact",
            "--quiet",
            "--style",
            "fill",
            "--fill-color",
            "00ff00",
            "--classes",
            "face",
            "--zones",
        ])
        .arg(&zones)
        .arg(fixture("astronaut.jpg"))
        .arg("-o")
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let img = bystander::image_io::load(&out.join("astronaut.jpg"))
        .unwrap()
        .image
        .to_rgb8();
    let green = |x, y| {
        let p: &image::Rgb<u8> = img.get_pixel(x, y);
        p.0[1] > 200 && p.0[0] < 60 && p.0[2] < 60
    };
    assert!(green(225, 118), "face centre filled");
    assert!(green(400, 400), "zone filled");
    assert!(
        !green(100, 450) && !green(400, 100),
        "outside face and zone untouched"
    );
}

#[test]
fn refuses_an_output_folder_inside_the_input_and_bad_settings() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("in");
    tree_with_fixtures(&src);
    let o = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(src.join("redacted"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("outside every input"));
    let o = bystander()
        .arg("redact")
        .arg(&src)
        .args(["-o", "x", "--threshold", "2"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("between 0 and 1"));
    assert!(!d.path().join("in/redacted").exists());
}

#[test]
fn eval_scores_coverage_of_labelled_boxes() {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("astronaut.jpg"), d.path().join("a.jpg")).unwrap();
    std::fs::copy(fixture("plate_scene.jpg"), d.path().join("p.jpg")).unwrap();
    let ann = d.path().join("ann.jsonl");
    // The face as a person would box it, a plate, and a "face" on the blank wall nobody could find.
    std::fs::write(
        &ann,
        "{\"image\": \"a.jpg\", \"faces\": [[185, 62, 266, 175], [20, 20, 50, 60]]}\n{\"image\": \"p.jpg\", \"plates\": [[390, 420, 570, 462]]}\n",
    )
    .unwrap();
    let o = bystander()
        .args(["eval", "--json"])
        .arg(&ann)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["images"], 2);
    assert_eq!(r["overall"]["total"], 3);
    assert_eq!(r["overall"]["covered"], 2);
    // The 113-px face and the 42-px plate land in their height buckets.
    assert_eq!(r["by_height"][4]["covered"], 1);
    assert_eq!(r["by_height"][3]["covered"], 1);
    assert_eq!(r["by_height"][3]["total"], 2);
    let masked = r["mean_masked_fraction"].as_f64().unwrap();
    assert!(masked > 0.01 && masked < 0.2, "{masked}");
    // The one uncovered box is listed, with where it is and how little of it was masked.
    let leaks = r["leaks"].as_array().unwrap();
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(leaks[0]["image"], "a.jpg");
    assert_eq!(leaks[0]["class"], "face");
    assert_eq!(
        leaks[0]["bbox"],
        serde_json::json!([20.0, 20.0, 50.0, 60.0])
    );
    assert!(leaks[0]["masked"].as_f64().unwrap() < 0.8);
    // In the text report, `--leaks` lists the boxes at least that high.
    let text = |min: &str| {
        let o = bystander()
            .args(["eval", "--leaks", min])
            .arg(&ann)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    assert!(text("30").contains("a.jpg face [20, 20, 50, 60] 40 px high"));
    assert!(text("41").contains("at least 41 px high: 0"));
}

#[test]
fn dry_run_lists_and_writes_nothing_and_json_summarises_a_rerun() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("in"), d.path().join("out"));
    tree_with_fixtures(&src);
    std::fs::write(src.join("notes.jpg"), "not a photo").unwrap();
    let o = bystander()
        .arg("redact")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("--dry-run")
        .output()
        .unwrap();
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("would redact"))
            .count(),
        3,
        "{text}"
    );
    assert!(!out.exists(), "a dry run creates nothing");

    let run = || {
        let o = bystander()
            .arg("redact")
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .arg("--json")
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        serde_json::from_slice::<serde_json::Value>(&o.stdout).expect("stdout is one JSON document")
    };
    let first = run();
    assert_eq!(
        (
            first["redacted"].as_u64(),
            first["kept"].as_u64(),
            first["failed"].as_u64()
        ),
        (Some(2), Some(0), Some(1))
    );
    let files = first["files"].as_array().unwrap();
    let bad = files.iter().find(|f| f["status"] == "failed").unwrap();
    assert!(bad["input"].as_str().unwrap().ends_with("notes.jpg"));
    assert!(bad["error"].as_str().unwrap().contains("notes.jpg"));
    let car = files
        .iter()
        .find(|f| f["input"].as_str().unwrap().ends_with("car.jpg"))
        .unwrap();
    assert_eq!(car["report"]["plates"], 1);
    // Finished outputs are kept on a rerun; the bad file fails again.
    let second = run();
    assert_eq!(
        (
            second["redacted"].as_u64(),
            second["kept"].as_u64(),
            second["failed"].as_u64()
        ),
        (Some(0), Some(2), Some(1))
    );
}

/// The licence-clean plate path by its shipped name: the plate is redacted by the text detector
/// alone, the report names that model, and naming it for the wrong class is refused.
#[test]
fn the_licence_clean_plate_model_is_named_on_the_command_line_and_hides_the_plate() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("car.jpg"), d.path().join("out"));
    std::fs::copy(fixture("plate_scene.jpg"), &src).unwrap();
    let o = bystander()
        .args(["redact", "--quiet", "--json", "--classes", "plate"])
        .args(["--plate-model", "plate-text", "-o"])
        .arg(&out)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("plate-text"), "{summary}");
    let car = bystander::image_io::load(&out.join("car.jpg"))
        .unwrap()
        .image
        .to_rgb8();
    assert!(mean_abs_diff(&car, &rgb("plate_scene.jpg"), bbox(PLATE_DRAWN)) > 20.0);

    let o = bystander()
        .args(["redact", "--face-model", "plate-text", "-o"])
        .arg(d.path().join("out2"))
        .arg(&src)
        .output()
        .unwrap();
    // A setting error stops the run before any file (exit 1), unlike a bad file (exit 2).
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("plate-text") && err.contains("FAMILY:PATH"),
        "{err}"
    );
}

/// Rotated passes are part of what an output was made with: an output made upright is redone when
/// the rerun asks for rotations (and its report records them), then kept on the same request.
#[test]
fn a_rerun_with_rotations_redoes_what_was_made_upright() {
    let d = tempfile::tempdir().unwrap();
    let (src, out) = (d.path().join("a.jpg"), d.path().join("out"));
    std::fs::copy(fixture("astronaut.jpg"), &src).unwrap();
    let run = |extra: &[&str]| {
        let o = bystander()
            .args(["redact", "--json", "--classes", "face"])
            .args(extra)
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        (
            v["redacted"].as_u64().unwrap(),
            v["kept"].as_u64().unwrap(),
            v,
        )
    };
    assert_eq!(run(&[]).0, 1);
    assert_eq!(run(&[]).1, 1, "the same request keeps the output");
    let (redacted, _, v) = run(&["--rotations", "4"]);
    assert_eq!(redacted, 1, "rotations were asked for: redone");
    let plans = &v["files"][0]["report"]["settings"]["photo_models"];
    assert!(
        plans
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["plan"]["rotations"] == 4),
        "{plans}"
    );
    assert_eq!(run(&["--rotations", "4"]).1, 1);
    // A count the detectors do not take is refused, naming what is allowed.
    let o = bystander()
        .args(["redact", "--rotations", "3"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("rotations") && err.contains("1 (upright only), 2, 4 or 8"),
        "{err}"
    );
}

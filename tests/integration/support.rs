//! Shared helpers for the integration tests.

use std::path::PathBuf;

use bystander::BBox;

/// ONNX Runtime for tests that use the library directly: the library never fetches it by itself
/// (the command line does), so these tests fill the cache the way the command line would.
pub fn runtime() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if bystander::runtime::info().is_err() {
            bystander::runtime::fetch::fetch().expect("ONNX Runtime fetched into the cache");
        }
    });
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

pub fn rgb(name: &str) -> image::RgbImage {
    bystander::image_io::load(&fixture(name))
        .unwrap()
        .image
        .to_rgb8()
}

pub fn bbox(v: [f32; 4]) -> BBox {
    BBox::new(v[0], v[1], v[2], v[3])
}

/// Boxes found by the Python reference (scripts/reference_boxes.py) on the fixtures.
pub const ASTRONAUT_CENTERFACE: [f32; 4] = [181.5, 58.0, 269.9, 178.0];
pub const ASTRONAUT_RETINAFACE: [f32; 4] = [178.1, 56.7, 273.2, 177.1];
pub const PLATE_RETINA: [f32; 4] = [402.6, 420.9, 562.5, 464.2];
pub const PLATE_YOLO: [f32; 4] = [393.3, 413.0, 576.6, 476.3];
pub const PLATE_TEXT: [f32; 4] = [402.5, 412.5, 583.5, 471.5];
/// Where make_plate_scene.py drew the plate.
pub const PLATE_DRAWN: [f32; 4] = [390.0, 420.0, 570.0, 462.0];

/// The drawn plate shrunk by `factor` and pasted, at (`at`, `at`), into a 640 x 640 grey frame; and
/// its box there.
pub fn small_plate(factor: f32, at: u32) -> (image::RgbImage, bystander::BBox) {
    let scene = rgb("plate_scene.jpg");
    let (w, h) = scene.dimensions();
    let (sw, sh) = ((w as f32 * factor) as u32, (h as f32 * factor) as u32);
    let small = image::imageops::resize(&scene, sw, sh, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::from_pixel(640, 640, image::Rgb([120, 120, 120]));
    image::imageops::replace(&mut frame, &small, at as i64, at as i64);
    let [x1, y1, x2, y2] = PLATE_DRAWN;
    let (kx, ky) = (sw as f32 / w as f32, sh as f32 / h as f32);
    let at = at as f32;
    let b = bystander::BBox::new(at + x1 * kx, at + y1 * ky, at + x2 * kx, at + y2 * ky);
    (frame, b)
}

/// The drawn plate scene shrunk by `factor`, placed at `(x, y)` on a grey 1920 x 1080 frame, and
/// the plate's box there.
pub fn small_plate_on_1080p(factor: f32, x: u32, y: u32) -> (image::RgbImage, bystander::BBox) {
    let (small, plate) = small_plate(factor, 0);
    let (sw, sh) = (
        (plate.x2.ceil() as u32 + 40).min(640),
        (plate.y2.ceil() as u32 + 40).min(640),
    );
    let mut frame = image::RgbImage::from_pixel(1920, 1080, image::Rgb([120, 120, 120]));
    let piece = image::imageops::crop_imm(&small, 0, 0, sw, sh).to_image();
    image::imageops::replace(&mut frame, &piece, x as i64, y as i64);
    let (dx, dy) = (x as f32, y as f32);
    let b = bystander::BBox::new(plate.x1 + dx, plate.y1 + dy, plate.x2 + dx, plate.y2 + dy);
    (frame, b)
}

/// The largest share of `plate` that one plate mask (a box grown 1.2 times, the default) covers.
pub fn under_plate_masks(found: &[bystander::Detection], plate: &bystander::BBox) -> f32 {
    found
        .iter()
        .map(|d| d.bbox.scaled(1.2).intersection(plate) / plate.area())
        .fold(0.0f32, f32::max)
}

/// A camera's Display P3 ICC profile: bystander's own, with the maker, model, date and
/// description of a made-up camera written in, as a device's profile can name them; its data
/// colour space is `colour_space` (`b"RGB "`, or `b"GRAY"` for one that does not describe RGB).
pub fn camera_icc_profile(colour_space: &[u8; 4]) -> Vec<u8> {
    use bystander::image_io::icc::{profile_of, ColourSpace};
    let mut p = profile_of(ColourSpace::DisplayP3);
    p[4..8].copy_from_slice(b"ACME");
    p[16..20].copy_from_slice(colour_space);
    p[24..36].copy_from_slice(&[7, 234, 0, 12, 0, 7, 0, 9, 0, 41, 0, 3]);
    p[48..56].copy_from_slice(b"ACMECAM1");
    // The description's text, the first tag's data after its 12-byte head.
    let desc = 132 + 12 * 9 + 12;
    p[desc..desc + 21].copy_from_slice(b"ACME CAM1 SN 12345678");
    p
}

/// `jpeg` with `profile` spliced in after its start marker as one APP2 `ICC_PROFILE` segment,
/// the rest (EXIF included) kept.
pub fn jpeg_with_icc_profile(jpeg: &[u8], profile: &[u8]) -> Vec<u8> {
    assert!(jpeg.starts_with(&[0xFF, 0xD8]) && profile.len() < 65_000);
    let mut segment = b"ICC_PROFILE\0\x01\x01".to_vec();
    segment.extend(profile);
    let mut out = jpeg[..2].to_vec();
    out.extend([0xFF, 0xE2]);
    out.extend(((segment.len() + 2) as u16).to_be_bytes());
    out.extend(segment);
    out.extend(&jpeg[2..]);
    out
}

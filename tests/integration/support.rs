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

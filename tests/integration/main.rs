//! Integration tests: real models on real (shippable) photos, and the CLI end to end.
//!
//! Fixtures in `tests/fixtures`: `astronaut.jpg` (NASA portrait of Eileen Collins, public
//! domain, as shipped in scikit-image's data), an EXIF-rotated copy of it, and `plate_scene.jpg`,
//! a generated car with an EU-style plate (`make_plate_scene.py`). The expected boxes were
//! computed independently with Python onnxruntime and numpy (`scripts/reference_boxes.py`), not
//! by this crate.

#[cfg(feature = "video")]
mod batch;
mod cli;
mod detectors;
mod fuzz_replay;
#[cfg(feature = "video")]
mod hostile;
#[cfg(feature = "video")]
mod leaks;
#[cfg(feature = "video")]
mod live;
mod stream;
mod support;
#[cfg(feature = "video")]
mod video;

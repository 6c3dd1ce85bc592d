//! A host loop as an NVR would run it: frames arrive from a camera, redacted frames leave for the
//! share/export path, in order, with a fixed latency.
//!
//! The "camera" here is synthetic: the astronaut portrait sliding across a 1280x720 frame at 25
//! frames per second. Run with `cargo run --release --example nvr_stream`.

use bystander::detect::{DetectConfig, Recall};
use bystander::redact::RedactConfig;
use bystander::stream::{PixelLayout, Redactor};
use bystander::track::TrackConfig;
use bystander::Class;

fn camera_frame(portrait: &image::RgbImage, n: u32) -> image::RgbImage {
    let mut frame = image::RgbImage::from_pixel(1280, 720, image::Rgb([70, 80, 90]));
    image::imageops::overlay(&mut frame, portrait, (40 + 12 * n) as i64, 150);
    frame
}

fn main() -> bystander::Result<()> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/astronaut.jpg");
    let portrait = bystander::image_io::load(std::path::Path::new(path))?
        .image
        .to_rgb8();
    // The host decides how many threads detection may use; the redactor starts none of its own.
    let detect = DetectConfig {
        classes: vec![Class::Face, Class::Plate],
        recall: Recall::Fast,
        intra_threads: 2,
        ..Default::default()
    };

    // Recording/export path: 4 frames of look-ahead so a face is masked before it is first seen.
    let mut export = Redactor::new(
        &detect,
        RedactConfig::default(),
        TrackConfig {
            backfill: 4,
            ..Default::default()
        },
    )?;
    println!("export latency: {} frames", export.latency_frames());
    for n in 0..30u32 {
        let pts = n as i64 * 40; // milliseconds at 25 fps
        for out in export.push(camera_frame(&portrait, n), pts) {
            println!(
                "export pts {:>5}: {} boxes{}",
                out.pts,
                out.boxes.len(),
                if out.fail_closed {
                    " (fail-closed)"
                } else {
                    ""
                }
            );
        }
    }
    for out in export.finish() {
        println!(
            "export pts {:>5}: {} boxes (flushed)",
            out.pts,
            out.boxes.len()
        );
    }

    // Live view: no look-ahead, redaction written straight into the host's BGR buffer.
    let mut live = Redactor::new(
        &detect,
        RedactConfig::default(),
        TrackConfig {
            backfill: 0,
            ..Default::default()
        },
    )?;
    let stride = 1280 * 3 + 64; // rows padded, as many capture APIs do
    let mut buffer = vec![0u8; stride * 720];
    for n in 0..5u32 {
        let frame = camera_frame(&portrait, n);
        for (y, row) in frame.as_raw().chunks_exact(1280 * 3).enumerate() {
            for (x, p) in row.chunks_exact(3).enumerate() {
                buffer[y * stride + x * 3..y * stride + x * 3 + 3]
                    .copy_from_slice(&[p[2], p[1], p[0]]);
            }
        }
        let boxes = live.redact_in_place(&mut buffer, 1280, 720, stride, PixelLayout::Bgr)?;
        println!("live frame {n}: {} boxes redacted in place", boxes.len());
    }
    Ok(())
}

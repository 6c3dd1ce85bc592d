//! The streaming API as a host uses it.

use bystander::detect::{DetectConfig, Recall};
use bystander::redact::RedactConfig;
use bystander::stream::{PixelLayout, Redactor};
use bystander::track::TrackConfig;
use bystander::Class;

use crate::support::*;

/// The portrait pasted at (x, 60) on a grey 800x450 frame, and the inner face box there.
fn frame(x: u32) -> (image::RgbImage, [u32; 4]) {
    let portrait = rgb("astronaut.jpg");
    let mut f = image::RgbImage::from_pixel(800, 450, image::Rgb([70, 80, 90]));
    image::imageops::overlay(
        &mut f,
        &image::imageops::resize(&portrait, 256, 256, image::imageops::FilterType::Triangle),
        x as i64,
        60,
    );
    (f, [x + 100, 60 + 40, x + 125, 60 + 80])
}

fn region_diff(a: &image::RgbImage, b: &image::RgbImage, [x1, y1, x2, y2]: [u32; 4]) -> f64 {
    let mut sum = 0u64;
    for y in y1..y2 {
        for x in x1..x2 {
            for c in 0..3 {
                sum +=
                    (a.get_pixel(x, y).0[c] as i64 - b.get_pixel(x, y).0[c] as i64).unsigned_abs();
            }
        }
    }
    sum as f64 / ((x2 - x1) * (y2 - y1) * 3) as f64
}

fn faces_fast() -> DetectConfig {
    DetectConfig {
        classes: vec![Class::Face],
        recall: Recall::Fast,
        intra_threads: 2,
        ..Default::default()
    }
}

#[test]
fn frames_come_back_in_order_after_the_look_ahead_with_faces_hidden() {
    let mut r = Redactor::new(
        &faces_fast(),
        RedactConfig::default(),
        TrackConfig {
            backfill: 3,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.latency_frames(), 3);
    let mut out = Vec::new();
    for n in 0..8u32 {
        let (f, _) = frame(20 + 40 * n);
        let ready = r.push(f, 1000 + 33 * n as i64);
        // Nothing comes back until the look-ahead is full, then one frame per push.
        assert_eq!(ready.len(), usize::from(n >= 3), "push {n}");
        out.extend(ready);
    }
    out.extend(r.finish());
    assert_eq!(
        out.iter().map(|f| f.pts).collect::<Vec<_>>(),
        (0..8).map(|n| 1000 + 33 * n).collect::<Vec<_>>()
    );
    for (n, f) in out.iter().enumerate() {
        let (orig, face) = frame(20 + 40 * n as u32);
        assert!(!f.fail_closed);
        assert!(
            region_diff(&orig, &f.image, face) > 15.0,
            "frame {n} face not hidden"
        );
        assert!(
            region_diff(&orig, &f.image, [700, 400, 780, 440]) < 1.0,
            "frame {n} background changed"
        );
    }
}

#[test]
fn live_view_redacts_a_strided_bgr_buffer_in_place() {
    let mut r = Redactor::new(
        &faces_fast(),
        RedactConfig::default(),
        TrackConfig {
            backfill: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let (f, face) = frame(300);
    let stride = 800 * 3 + 16;
    let mut buf = vec![0xAB; stride * 450];
    for (y, row) in f.as_raw().chunks_exact(800 * 3).enumerate() {
        for (x, p) in row.chunks_exact(3).enumerate() {
            buf[y * stride + x * 3..y * stride + x * 3 + 3].copy_from_slice(&[p[2], p[1], p[0]]);
        }
    }
    let before = buf.clone();
    let boxes = r
        .redact_in_place(&mut buf, 800, 450, stride, PixelLayout::Bgr)
        .unwrap();
    assert_eq!(boxes.len(), 1);
    // Back to RGB to compare.
    let back = image::RgbImage::from_fn(800, 450, |x, y| {
        let i = y as usize * stride + x as usize * 3;
        image::Rgb([buf[i + 2], buf[i + 1], buf[i]])
    });
    assert!(region_diff(&f, &back, face) > 15.0);
    assert!(region_diff(&f, &back, [700, 400, 780, 440]) < 1.0);
    // Row padding is never written.
    for y in 0..450 {
        assert_eq!(
            &buf[y * stride + 2400..y * stride + stride],
            &before[y * stride + 2400..y * stride + stride]
        );
    }
    // A redactor with look-ahead refuses in-place redaction.
    let mut delayed = Redactor::new(
        &faces_fast(),
        RedactConfig::default(),
        TrackConfig::default(),
    )
    .unwrap();
    assert!(delayed
        .redact_in_place(&mut buf, 800, 450, stride, PixelLayout::Bgr)
        .is_err());
}

//! Per-frame costs at 1920x1080: preprocessing, NMS, detection per class at the default preset,
//! and each redaction style with 10 and 100 boxes.
//!
//! `cargo bench --bench frame`; under `cargo test --all-targets` each benchmark runs once, so the
//! benches cannot rot.

use bystander::detect::preprocess::{Normalize, Rect, TensorBuilder};
use bystander::detect::{nms, DetectConfig, Detector, Recall};
use bystander::redact::{self, RedactConfig, Style};
use bystander::{BBox, Class, Detection};
use criterion::{criterion_group, criterion_main, Criterion};
use image::RgbImage;

fn fixture(name: &str) -> RgbImage {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    bystander::image_io::load(&p).unwrap().image.to_rgb8()
}

/// A 1080p frame holding the astronaut portrait and the plate scene.
fn frame() -> RgbImage {
    let mut f = RgbImage::from_pixel(1920, 1080, image::Rgb([90, 95, 100]));
    image::imageops::overlay(&mut f, &fixture("astronaut.jpg"), 100, 300);
    image::imageops::overlay(&mut f, &fixture("plate_scene.jpg"), 900, 200);
    f
}

fn boxes(n: usize) -> Vec<Detection> {
    (0..n)
        .map(|i| {
            let (x, y) = ((i * 173 % 1800) as f32, (i * 97 % 1000) as f32);
            let s = 20.0 + (i % 7) as f32 * 15.0;
            Detection {
                class: if i % 4 == 0 {
                    Class::Plate
                } else {
                    Class::Face
                },
                score: 0.5 + (i % 10) as f32 / 20.0,
                bbox: BBox::new(x, y, x + s, y + s * 1.2),
                landmarks: vec![],
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let f = frame();
    let mut tb = TensorBuilder::default();
    let norm = Normalize {
        bgr: false,
        mean: [0.0; 3],
        scale: 1.0,
    };
    c.bench_function("preprocess/1080p_to_832x480_tensor", |b| {
        b.iter(|| {
            tb.build(
                &f,
                Rect::full(1920, 1080),
                (832, 480),
                (832, 480),
                (0, 0),
                0,
                norm,
            )
        })
    });
    c.bench_function("preprocess/1080p_letterbox_640", |b| {
        b.iter(|| {
            tb.build(
                &f,
                Rect::full(1920, 1080),
                (640, 360),
                (640, 640),
                (0, 140),
                114,
                norm,
            )
        })
    });
    let many = boxes(1000);
    c.bench_function("nms/1000_boxes", |b| b.iter(|| nms::nms(many.clone(), 0.4)));
    c.bench_function("nms/merge_enclosing_1000_boxes", |b| {
        b.iter(|| nms::merge_enclosing(many.clone(), 0.4))
    });

    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    for (name, class, recall) in [
        ("detect/faces_balanced_1080p", Class::Face, Recall::Balanced),
        (
            "detect/plates_balanced_1080p",
            Class::Plate,
            Recall::Balanced,
        ),
        ("detect/faces_fast_1080p", Class::Face, Recall::Fast),
        ("detect/plates_fast_1080p", Class::Plate, Recall::Fast),
    ] {
        let cfg = DetectConfig {
            classes: vec![class],
            recall,
            intra_threads: threads,
            ..Default::default()
        };
        let mut det = cfg.build().unwrap();
        let mut g = c.benchmark_group("detect");
        g.sample_size(10);
        g.bench_function(name.trim_start_matches("detect/"), |b| {
            b.iter(|| det.detect(&f).unwrap())
        });
        g.finish();
    }

    for n in [10, 100] {
        let dets = boxes(n);
        for (label, style) in [
            ("blur", Style::Blur),
            ("pixelate", Style::Pixelate),
            ("fill", Style::Fill([0, 0, 0])),
        ] {
            let mut cfg = RedactConfig::default();
            cfg.set_style(style);
            let regions = cfg.regions(&dets, 1920, 1080);
            let mut img = f.clone();
            c.bench_function(&format!("redact/{label}_{n}_boxes"), |b| {
                b.iter(|| redact::redact(&mut img, &regions))
            });
            c.bench_function(&format!("redact/{label}_{n}_boxes_parallel"), |b| {
                b.iter(|| redact::redact_parallel(&mut img, &regions))
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! Per-frame costs: preprocessing at 1080p, NMS and merging at 100 and 1000 boxes, detection for
//! each preset and class (and the clip settings at 1080p and 432p), and each redaction style
//! with 10 and 100 boxes on a 1080p frame. The whole clip pipeline is in `benches/clip.rs`.
//!
//! `cargo bench --bench frame`; under `cargo test --all-targets` each benchmark runs once, so the
//! benches cannot rot.

use bystander::detect::preprocess::{Normalize, Rect, TensorBuilder};
use bystander::detect::{nms, DetectConfig, Detector, Recall};
use bystander::frame::{FrameLayout, PixelFormat};
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
    // The library never fetches ONNX Runtime itself; fill the cache as the command line would.
    bystander::runtime::fetch::fetch().expect("ONNX Runtime in the cache");
    let f = frame();
    let mut tb = TensorBuilder::default();
    let norm = Normalize {
        bgr: false,
        mean: [0.0; 3],
        scale: 1.0,
    };
    // A host's frame to RGB for detection (the host API's `frame::to_rgb`).
    for (name, format) in [
        ("i420", PixelFormat::I420),
        ("nv12", PixelFormat::Nv12),
        ("bgr", PixelFormat::Bgr24),
        ("bgra", PixelFormat::Bgra),
    ] {
        let layout = FrameLayout::packed(format, f.width(), f.height());
        let mut data = vec![0u8; layout.len()];
        let whole = (0, 0, f.width(), f.height());
        bystander::frame::write_back(&f, &[whole], &mut data, &layout).unwrap();
        c.bench_function(&format!("frame/{name}_1080p_to_rgb"), |b| {
            b.iter(|| bystander::frame::to_rgb(&data, &layout).unwrap())
        });
        // Into a picture kept from frame to frame, as a detection thread converts a host's frame.
        let mut rgb = RgbImage::new(f.width(), f.height());
        c.bench_function(&format!("frame/{name}_1080p_into_rgb"), |b| {
            b.iter(|| bystander::frame::read_rects(&data, &layout, &[whole], &mut rgb).unwrap())
        });
    }
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
    // Raw candidates per model pass before NMS: about 100 on a quiet frame, 1000 or more on a
    // crowd at a low threshold.
    for n in [100, 1000] {
        let many = boxes(n);
        c.bench_function(&format!("nms/{n}_boxes"), |b| {
            b.iter(|| nms::nms(many.clone(), 0.4))
        });
        c.bench_function(&format!("nms/merge_enclosing_{n}_boxes"), |b| {
            b.iter(|| nms::merge_enclosing(many.clone(), 0.4))
        });
    }

    // Each preset per class on a photo-sized frame, and the clip settings (every model of the
    // preset, as `bystander redact` runs them on each frame of a clip) at 1080p and 432p.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let small = image::imageops::resize(&f, 768, 432, image::imageops::FilterType::Triangle);
    let mut runs: Vec<(String, DetectConfig, &RgbImage)> = Vec::new();
    for recall in [Recall::Fast, Recall::Balanced, Recall::Max] {
        for class in [Class::Face, Class::Plate] {
            let cfg = DetectConfig {
                classes: vec![class],
                recall,
                intra_threads: threads,
                ..Default::default()
            };
            runs.push((
                format!("{}s_{recall:?}_1080p", class.name()).to_lowercase(),
                cfg,
                &f,
            ));
        }
        let clip = DetectConfig {
            recall,
            intra_threads: threads,
            ..Default::default()
        }
        .for_clips();
        runs.push((
            format!("clip_{recall:?}_1080p").to_lowercase(),
            clip.clone(),
            &f,
        ));
        runs.push((format!("clip_{recall:?}_432p").to_lowercase(), clip, &small));
    }
    // What the widened pass costs the balanced photo plan.
    runs.push((
        "faces_balanced_1080p_unwidened".into(),
        DetectConfig {
            classes: vec![Class::Face],
            widen: Some(1.0),
            intra_threads: threads,
            ..Default::default()
        },
        &f,
    ));
    let mut g = c.benchmark_group("detect");
    g.sample_size(10);
    for (name, cfg, img) in runs {
        let mut det = cfg.build().unwrap();
        g.bench_function(&name, |b| b.iter(|| det.detect(img).unwrap()));
    }
    g.finish();

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

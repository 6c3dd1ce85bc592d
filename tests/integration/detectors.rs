//! Each model family against boxes verified with Python onnxruntime, tiling, and model checks.

use bystander::detect::{
    DetectConfig, Detector, ModelDetector, ModelSource, PassPlan, Recall, Rect, Tiles,
};
use bystander::models::{self, Family, ModelData};
use bystander::{Class, Detection, Error};

use crate::support::*;

/// One model at the image's native size, as the Python reference ran it.
fn native(model: models::ShippedModel, threshold: f32, long_side: u32) -> ModelDetector {
    let plan = PassPlan {
        working_size: long_side,
        ..plain_640()
    };
    ModelDetector::new(model.load().unwrap(), threshold, plan, 2).unwrap()
}

fn single(found: &[Detection], class: Class) -> &Detection {
    let of_class: Vec<&Detection> = found.iter().filter(|d| d.class == class).collect();
    assert_eq!(of_class.len(), 1, "expected one {class}, found {found:?}");
    of_class[0]
}

fn assert_matches(d: &Detection, expected: [f32; 4], min_iou: f32) {
    let iou = d.bbox.iou(&bbox(expected));
    assert!(
        iou >= min_iou,
        "IoU {iou:.3} of {:?} with reference {expected:?}",
        d.bbox
    );
}

#[test]
fn centerface_finds_the_astronaut_where_the_reference_did() {
    runtime();
    let found = native(models::CENTERFACE, 0.5, 512)
        .detect(&rgb("astronaut.jpg"))
        .unwrap();
    let d = single(&found, Class::Face);
    assert_matches(d, ASTRONAUT_CENTERFACE, 0.97);
    assert!((d.score - 0.929).abs() < 0.02, "score {}", d.score);
    // Five landmarks, all inside the face box: eyes above the mouth corners.
    assert_eq!(d.landmarks.len(), 5);
    let b = d.bbox;
    assert!(d
        .landmarks
        .iter()
        .all(|[x, y]| *x > b.x1 && *x < b.x2 && *y > b.y1 && *y < b.y2));
    assert!(d.landmarks[0][1] < d.landmarks[3][1] && d.landmarks[0][0] < d.landmarks[1][0]);
}

#[test]
fn retinaface_finds_the_astronaut_where_the_reference_did() {
    runtime();
    let found = native(models::RETINAFACE, 0.5, 512)
        .detect(&rgb("astronaut.jpg"))
        .unwrap();
    let d = single(&found, Class::Face);
    assert_matches(d, ASTRONAUT_RETINAFACE, 0.97);
    assert!(d.score > 0.99);
    assert_eq!(d.landmarks.len(), 5);
}

#[test]
fn retina_plate_model_finds_the_drawn_plate() {
    runtime();
    let found = native(models::PLATE_RETINA, 0.3, 960)
        .detect(&rgb("plate_scene.jpg"))
        .unwrap();
    let d = single(&found, Class::Plate);
    assert_matches(d, PLATE_RETINA, 0.95);
    assert!((d.score - 0.462).abs() < 0.03, "score {}", d.score);
    assert_eq!(d.landmarks.len(), 4, "four plate corners");
    assert!(d.bbox.iou(&bbox(PLATE_DRAWN)) > 0.7);
}

#[test]
fn yolo_plate_model_finds_the_drawn_plate() {
    runtime();
    let found = native(models::PLATE_YOLO, 0.3, 960)
        .detect(&rgb("plate_scene.jpg"))
        .unwrap();
    let d = single(&found, Class::Plate);
    assert_matches(d, PLATE_YOLO, 0.95);
    assert!((d.score - 0.744).abs() < 0.03, "score {}", d.score);
    assert!(d.bbox.iou(&bbox(PLATE_DRAWN)) > 0.6);
}

/// One whole-frame look at 640 px, nothing more.
fn plain_640() -> PassPlan {
    PassPlan {
        working_size: 640,
        max_upscale: 1.0,
        tiles: Tiles::Off,
        widen: 1.0,
        tile_zoom: 1.0,
        rotations: 1,
        second_look: 1.0,
        roving: 1.0,
        tile_rounds: 1,
    }
}

/// The int8 plate YOLO at its preset threshold, one whole-frame look at 640 px, with a second
/// look magnified `second_look` times (1: none).
fn plate_yolo(second_look: f32) -> ModelDetector {
    let plan = PassPlan {
        second_look,
        ..plain_640()
    };
    ModelDetector::new(models::PLATE_YOLO_INT8.load().unwrap(), 0.3, plan, 2).unwrap()
}

/// The second look at near misses finds plates too small for YOLOv8n at native resolution. The
/// drawn plate shrunk to 7 to 8 px high on a 640 x 640 frame: the int8 plate model's one native pass
/// finds nothing there, and a second look at twice the size, where the native pass saw something
/// like a plate under the threshold, finds it and boxes it so that the plate mask covers it.
#[test]
fn a_second_look_at_near_misses_finds_plates_too_small_for_the_native_pass() {
    runtime();
    let (mut once, mut twice) = (plate_yolo(1.0), plate_yolo(2.0));
    for factor in [0.17, 0.18, 0.19] {
        let (frame, plate) = small_plate(factor, 150);
        let under = |found: &[Detection]| under_plate_masks(found, &plate);
        let native = once.detect(&frame).unwrap();
        assert!(
            under(&native) < 0.5,
            "{factor}: native pass found {native:?}"
        );
        let found = twice.detect(&frame).unwrap();
        assert!(
            under(&found) >= 0.8,
            "{factor}: plate {plate:?}, second look found {found:?}"
        );
        assert!(found.iter().all(|d| d.score > 0.3));
    }
}

/// The int8 copy finds the drawn plate where the float model does: the same box within a few
/// pixels and about the same score.
#[test]
fn int8_yolo_plate_model_finds_the_drawn_plate_like_the_float_one() {
    runtime();
    let found = native(models::PLATE_YOLO_INT8, 0.3, 960)
        .detect(&rgb("plate_scene.jpg"))
        .unwrap();
    let d = single(&found, Class::Plate);
    assert_matches(d, PLATE_YOLO, 0.9);
    assert!((d.score - 0.744).abs() < 0.1, "score {}", d.score);
    assert!(d.bbox.iou(&bbox(PLATE_DRAWN)) > 0.6);
}

/// The permissively licensed plate path: PP-OCRv4's text detector finds the plate's characters
/// as one text region, and its grown box covers the drawn plate under the plate mask (1.2x), as the
/// Python reference (`scripts/reference_boxes.py`, its own flood fill and resize) found.
#[test]
fn text_plate_model_finds_the_drawn_plate() {
    runtime();
    let found = native(models::PLATE_TEXT, 0.3, 960)
        .detect(&rgb("plate_scene.jpg"))
        .unwrap();
    let d = single(&found, Class::Plate);
    assert_matches(d, PLATE_TEXT, 0.95);
    assert!(d.score > 0.9, "score {}", d.score);
    let drawn = bbox(PLATE_DRAWN);
    let inside = d.bbox.scaled(1.2).intersection(&drawn) / drawn.area();
    assert!(
        inside >= 0.8,
        "{inside:.3} of the drawn plate under the mask"
    );
}

/// A photo without text gives the text plate model nothing to mask (the astronaut's face and
/// suit, the flag behind her), at the photo's own size and magnified.
#[test]
fn text_plate_model_finds_nothing_on_a_photo_without_text() {
    runtime();
    for long_side in [512, 1024] {
        let found = native(models::PLATE_TEXT, 0.3, long_side)
            .detect(&rgb("astronaut.jpg"))
            .unwrap();
        assert!(found.is_empty(), "at {long_side} px: {found:?}");
    }
}

/// The shipped YOLOv8 files take any input size (`scripts/yolo_any_size.py`): the 960 x 640 scene
/// runs as 640 x 448, and the same scene pasted into a square grey frame as 640 x 640. If the
/// rewritten head placed its anchors wrong on a non-square input, the two boxes would not agree.
#[test]
fn yolo_finds_the_same_plate_on_a_wide_input_as_on_a_square_one() {
    runtime();
    let scene = rgb("plate_scene.jpg");
    let (w, h) = scene.dimensions();
    let mut square = image::RgbImage::from_pixel(w, w, image::Rgb([114, 114, 114]));
    let top = (w - h) / 2;
    image::imageops::replace(&mut square, &scene, 0, top as i64);
    let mut detector = native(models::PLATE_YOLO_INT8, 0.3, 960);
    let wide = detector.detect(&scene).unwrap();
    let padded = detector.detect(&square).unwrap();
    let (a, b) = (single(&wide, Class::Plate), single(&padded, Class::Plate));
    let moved = bystander::BBox {
        y1: b.bbox.y1 - top as f32,
        y2: b.bbox.y2 - top as f32,
        ..b.bbox
    };
    assert!(a.bbox.iou(&moved) > 0.9, "{:?} against {moved:?}", a.bbox);
    assert!(
        (a.score - b.score).abs() < 0.1,
        "{} against {}",
        a.score,
        b.score
    );
    assert!(a.bbox.iou(&bbox(PLATE_DRAWN)) > 0.6);
}

/// Under gating, YOLOv8n (planned whole on this frame) looks at a crop around the plate at the
/// whole-frame pass's scale: the same plate, at nearly the same score. A crop away from
/// the plate finds nothing, so the crop, not the whole frame, was run.
#[test]
fn gated_yolo_sees_a_crop_as_the_whole_frame_pass_does() {
    runtime();
    let scene = rgb("plate_scene.jpg");
    let mut detector = native(models::PLATE_YOLO_INT8, 0.3, 960);
    let whole = detector.detect(&scene).unwrap();
    let around = Rect {
        x: 300,
        y: 340,
        w: 360,
        h: 180,
    };
    let cropped = detector.detect_in(&scene, &[around]).unwrap();
    let (a, b) = (single(&whole, Class::Plate), single(&cropped, Class::Plate));
    // The crop's scaled pixel grid is offset from the frame's by a fraction of a pixel, so the
    // box moves by a few pixels.
    assert!(
        a.bbox.iou(&b.bbox) > 0.8,
        "{:?} against {:?}",
        a.bbox,
        b.bbox
    );
    assert!(
        (a.score - b.score).abs() < 0.1,
        "{} against {}",
        a.score,
        b.score
    );
    let away = Rect {
        x: 0,
        y: 0,
        w: 240,
        h: 160,
    };
    assert!(detector.detect_in(&scene, &[away]).unwrap().is_empty());
}

/// The gate hands the face models the rectangle that changed, which for a talking or turning
/// head is the middle of the face: the crop is grown by `CROP_CONTEXT` so that the detector sees
/// the whole head, and finds the face the whole-frame pass finds.
#[test]
fn a_gated_face_crop_holding_part_of_a_face_finds_all_of_it() {
    runtime();
    let photo = rgb("astronaut.jpg");
    // Eyes to mouth of the astronaut's face (about 181..270 x 58..178).
    let middle = Rect {
        x: 195,
        y: 90,
        w: 60,
        h: 70,
    };
    for model in [models::CENTERFACE, models::RETINAFACE] {
        let mut detector = native(model, 0.5, 512);
        let whole = detector.detect(&photo).unwrap();
        let cropped = detector.detect_in(&photo, &[middle]).unwrap();
        let (a, b) = (single(&whole, Class::Face), single(&cropped, Class::Face));
        assert!(
            a.bbox.iou(&b.bbox) > 0.8,
            "{}: {:?} against {:?}",
            model.name,
            a.bbox,
            b.bbox
        );
    }
}

/// A gated crop is never a larger run than the plan's own passes: on a frame the plan shrinks
/// whole and tiles at native resolution, a region covering most of the frame would be a native
/// crop several times the input of any pass (its activations took a second region of ONNX
/// Runtime's arena on crowd_1080p), so the frame runs the plan instead, box for box. A small
/// region is still searched as a crop.
#[test]
fn a_gated_crop_larger_than_any_pass_of_the_plan_runs_the_plan() {
    runtime();
    let photo = rgb("astronaut.jpg");
    let (w, h) = photo.dimensions();
    let plan = PassPlan {
        working_size: (w.max(h) / 2).max(64),
        tiles: Tiles::Auto,
        ..plain_640()
    };
    let mut detector =
        ModelDetector::new(models::CENTERFACE.load().unwrap(), 0.5, plan, 2).unwrap();
    let planned = detector.detect(&photo).unwrap();
    assert!(!planned.is_empty());
    let most = Rect {
        x: 4,
        y: 4,
        w: w - 8,
        h: h - 8,
    };
    assert_eq!(detector.detect_in(&photo, &[most]).unwrap(), planned);
    // Eyes to mouth: a crop, which still finds the face.
    let middle = Rect {
        x: 195,
        y: 90,
        w: 60,
        h: 70,
    };
    let cropped = detector.detect_in(&photo, &[middle]).unwrap();
    assert!(
        single(&cropped, Class::Face)
            .bbox
            .iou(&single(&planned, Class::Face).bbox)
            > 0.6
    );
    let away = Rect {
        x: 0,
        y: h - 40,
        w: 40,
        h: 40,
    };
    assert!(detector.detect_in(&photo, &[away]).unwrap().is_empty());
}

#[test]
fn default_set_finds_face_and_plate_and_nothing_else_on_the_fixtures() {
    runtime();
    let cfg = DetectConfig::default();
    let mut set = cfg.build().unwrap();
    let face = set.detect(&rgb("astronaut.jpg")).unwrap();
    let d = single(&face, Class::Face);
    assert_matches(d, ASTRONAUT_RETINAFACE, 0.85);
    // Merging by enclosure: the merged box holds each face model's own box.
    for choice in cfg
        .resolve()
        .unwrap()
        .into_iter()
        .filter(|c| c.model.class == Class::Face)
    {
        let mut one = ModelDetector::new(choice.model, choice.threshold, choice.plan, 2).unwrap();
        let own = one.detect(&rgb("astronaut.jpg")).unwrap();
        let b = single(&own, Class::Face).bbox;
        assert_eq!(
            d.bbox.enclose(&b),
            d.bbox,
            "{:?} does not enclose {b:?}",
            d.bbox
        );
    }
    let plate = set.detect(&rgb("plate_scene.jpg")).unwrap();
    single(&plate, Class::Plate);
    assert!(plate.iter().all(|d| d.class == Class::Plate), "{plate:?}");
}

#[test]
fn the_default_widened_pass_finds_a_face_squeezed_too_narrow_for_the_plain_passes() {
    runtime();
    // The astronaut squeezed to 1/3.5 of its width: a face far narrower than any the models were
    // trained on. The reference box squeezes with it.
    const SQUEEZE: f32 = 3.5;
    let src = rgb("astronaut.jpg");
    let w = (src.width() as f32 / SQUEEZE).round() as u32;
    let squeezed = image::imageops::resize(&src, w, src.height(), image::imageops::Triangle);
    let [x1, y1, x2, y2] = ASTRONAUT_RETINAFACE;
    let expected = [x1 / SQUEEZE, y1, x2 / SQUEEZE, y2];
    let faces = |widen| {
        let cfg = DetectConfig {
            classes: vec![Class::Face],
            widen,
            ..Default::default()
        };
        cfg.build().unwrap().detect(&squeezed).unwrap()
    };
    let plain = faces(Some(1.0));
    assert!(plain.is_empty(), "the plain passes found {plain:?}");
    let default = faces(None);
    assert_matches(single(&default, Class::Face), expected, 0.5);
}

/// A `w` x `h` frame with the astronaut's head shrunk so that its face is `face_h` px high, its
/// crop's top-left corner at each of `places`, and where each face is.
fn heads_frame(
    w: u32,
    h: u32,
    face_h: f32,
    places: &[(u32, u32)],
) -> (image::RgbImage, Vec<bystander::BBox>) {
    let src = rgb("astronaut.jpg");
    let crop = image::imageops::crop_imm(&src, 150, 30, 150, 180).to_image();
    // The face inside the crop is at about (31..120, 28..148): (181..270, 58..178) of the source.
    let s = face_h / 120.0;
    let (cw, ch) = ((150.0 * s).round() as u32, (180.0 * s).round() as u32);
    let small = image::imageops::resize(&crop, cw, ch, image::imageops::FilterType::Triangle);
    let mut frame = image::RgbImage::from_pixel(w, h, image::Rgb([96, 100, 104]));
    let faces = places
        .iter()
        .map(|&(x, y)| {
            image::imageops::overlay(&mut frame, &small, x as i64, y as i64);
            let (x, y) = (x as f32, y as f32);
            bystander::BBox::new(x + 31.0 * s, y + 28.0 * s, x + 120.0 * s, y + 148.0 * s)
        })
        .collect();
    (frame, faces)
}

/// A 1920x1080 frame with the astronaut's face shrunk to 20 px high near a tile corner.
fn small_face_frame() -> (image::RgbImage, bystander::BBox) {
    let (frame, faces) = heads_frame(1920, 1080, 20.0, &[(1400, 700)]);
    (frame, faces[0])
}

#[test]
fn tiles_find_a_small_face_that_the_shrunk_whole_frame_misses() {
    runtime();
    let (frame, face) = small_face_frame();
    let plan = |tiles| PassPlan {
        working_size: 832,
        max_upscale: 2.0,
        tiles,
        widen: 1.0,
        tile_zoom: 1.0,
        rotations: 1,
        second_look: 1.0,
        roving: 1.0,
        tile_rounds: 1,
    };
    let cf = || models::CENTERFACE.load().unwrap();
    let mut whole = ModelDetector::new(cf(), 0.3, plan(Tiles::Off), 2).unwrap();
    let mut tiled = ModelDetector::new(cf(), 0.3, plan(Tiles::Auto), 2).unwrap();
    assert_eq!(tiled.passes(1920, 1080).len(), 7);
    let hits = |found: Vec<Detection>| found.iter().filter(|d| d.bbox.iou(&face) > 0.3).count();
    assert_eq!(
        hits(whole.detect(&frame).unwrap()),
        0,
        "the 832-px pass alone should not see a 22-px face"
    );
    assert_eq!(hits(tiled.detect(&frame).unwrap()), 1);
}

/// A 3840x2160 frame with six faces 28 px high spread over it, and where they are.
fn small_faces_in_4k() -> (image::RgbImage, Vec<bystander::BBox>) {
    let (w, h) = (3840, 2160);
    let places: Vec<(u32, u32)> = (0..6)
        .map(|i| {
            let x = ((i % 3) as f32 + 0.3) * w as f32 / 3.2;
            let y = ((i / 3) as f32 + 0.3) * h as f32 / 2.4;
            (x as u32, y as u32)
        })
        .collect();
    heads_frame(w, h, 28.0, &places)
}

#[test]
fn the_clip_plan_finds_small_faces_in_a_4k_frame_on_centerface_turns() {
    runtime();
    // Faces 28 px high in a 3840x2160 frame: the 960-px whole-frame pass sees them 7 px high and
    // finds none of them; CenterFace's native tiles find each, half the tiles on each of its turns
    // (frames 0 and 2), so two turns find them all, and one turn finds them all where they were
    // found lately (hints).
    let (frame, faces) = small_faces_in_4k();
    let mut set = DetectConfig {
        intra_threads: 2,
        ..Default::default()
    }
    .for_clips()
    .build()
    .unwrap();
    let names = set.model_names();
    let cf = names.iter().position(|n| n == "centerface").unwrap();
    let on_turn = |set: &mut bystander::detect::DetectorSet, index| {
        // Timed afresh on each call, so each turn shows that CenterFace ran on it.
        let mut took = vec![0.0; names.len()];
        let found = set
            .detect_frame_timed(&frame, Some(index), &mut took)
            .unwrap();
        assert!(
            took[cf] > 0.0,
            "frame {index} is CenterFace's turn: {names:?}"
        );
        found
    };
    let boxed = |found: &[Detection]| -> Vec<bool> {
        faces
            .iter()
            .map(|face| {
                found
                    .iter()
                    .filter(|d| d.class == Class::Face)
                    .any(|d| d.bbox.iou(face) >= 0.5)
            })
            .collect()
    };
    let first = on_turn(&mut set, 0);
    let mut both = first.clone();
    both.extend(on_turn(&mut set, 2));
    assert!(
        boxed(&both).iter().all(|&b| b),
        "{:?} in {both:?}",
        boxed(&both)
    );
    // Turn 0 alone searches half the tiles (three of these faces lie in the others' only)...
    assert!(boxed(&first).contains(&false), "{first:?}");
    // ...and those of the other half too where faces were found lately.
    let hints: Vec<(Class, bystander::BBox)> = faces.iter().map(|f| (Class::Face, *f)).collect();
    set.set_hints(&hints);
    let hinted = on_turn(&mut set, 0);
    assert!(boxed(&hinted).iter().all(|&b| b), "{:?}", boxed(&hinted));
}

/// A still 4K view without faces, the same with `small_faces_in_4k`'s faces, where they are, and
/// the default preset for faces alone.
fn faces_appearing_in_4k() -> (
    image::RgbImage,
    image::RgbImage,
    Vec<bystander::BBox>,
    DetectConfig,
) {
    let (with_faces, faces) = small_faces_in_4k();
    let (empty, _) = heads_frame(with_faces.width(), with_faces.height(), 28.0, &[]);
    let detect = DetectConfig {
        classes: vec![Class::Face],
        ..Default::default()
    };
    (empty, with_faces, faces, detect)
}

#[test]
fn faces_that_appear_in_a_tile_off_its_turn_are_searched_on_the_frame_they_appear() {
    runtime();
    // The engine with the clip preset, CenterFace on frames 0 and 2 (its turns 0 and 1), half
    // its tiles on each. Six small faces appear on frame 2 in a still 4K view: those whose tiles
    // are not of turn 1's round have no hint yet (nothing was found before), and are searched on
    // frame 2 because the picture under them changed. Without hold or back-fill, each frame's
    // boxes are its own detections.
    let (empty, with_faces, faces, detect) = faces_appearing_in_4k();
    let cf = detect
        .for_clips()
        .resolve()
        .unwrap()
        .into_iter()
        .find(|c| c.model.family == Family::CenterFace)
        .unwrap();
    assert!(cf.plan.tile_rounds > 1);
    // At least one face lies in no tile of turn 1's round: only the change rule searches it.
    let turn1: Vec<_> = cf
        .plan
        .passes_on_turn(3840, 2160, None, Some(1))
        .into_iter()
        .filter(|p| p.tile)
        .collect();
    let inside = |r: &Rect, b: &bystander::BBox| {
        b.x1 >= r.x as f32
            && b.y1 >= r.y as f32
            && b.x2 <= (r.x + r.w) as f32
            && b.y2 <= (r.y + r.h) as f32
    };
    assert!(faces
        .iter()
        .any(|f| !turn1.iter().any(|p| inside(&p.region, f))));
    let mut cfg =
        bystander::stream::StreamConfig::new(detect, bystander::redact::RedactConfig::default(), 2);
    cfg.workers = 1;
    cfg.intra_threads = 2;
    cfg.track.hold = 0;
    cfg.track.backfill = 0;
    let mut r = bystander::stream::Redactor::new(&cfg).unwrap();
    let mut out = Vec::new();
    for (n, f) in [&empty, &empty, &with_faces].into_iter().enumerate() {
        out.extend(r.push_image(f.clone(), n as i64).unwrap());
    }
    out.extend(r.finish().unwrap());
    assert_eq!(out.len(), 3);
    assert!(out[0].boxes.is_empty() && out[1].boxes.is_empty());
    let boxed: Vec<bool> = faces
        .iter()
        .map(|face| out[2].boxes.iter().any(|d| d.bbox.iou(face) >= 0.5))
        .collect();
    assert!(boxed.iter().all(|&b| b), "{boxed:?} in {:?}", out[2].boxes);
}

/// A frame whose pixels never reach detection when `broken` (a host's picture that fails, as a
/// failed model run would), and that panics instead when `panics` too: its detection fails. Its
/// brightness is read as any frame's.
#[derive(Clone)]
struct Flaky {
    image: image::RgbImage,
    broken: bool,
    panics: bool,
}

impl bystander::engine::Picture for Flaky {
    fn dimensions(&self) -> (u32, u32) {
        self.image.dimensions()
    }

    fn with_rgb(&self, f: &mut dyn FnMut(&image::RgbImage)) {
        assert!(!(self.broken && self.panics), "a host picture that panics");
        if !self.broken {
            f(&self.image)
        }
    }

    fn with_luma(&self, f: &mut dyn FnMut(bystander::engine::Luma<'_>)) {
        self.image.with_luma(f)
    }
}

#[test]
fn frames_that_lean_on_a_failed_search_are_covered_whole_until_every_model_searched_again() {
    use bystander::engine::{Engine, EngineConfig, Fault, Output};
    runtime();
    // Six small faces appear on frame 2 of a still 4K view, CenterFace's turn (frames 0, 2, 4:
    // half its tiles on each), and its detection fails. Frame 3 is RetinaFace's turn (its
    // whole-frame pass does not see 28-px faces), and leans on frame 2's search through the
    // hold; frame 4 compares the tiles of frame 2's round with frame 2's cells. As on a stream
    // there is no back-fill: a frame shows its faces unless its own boxes or a fault cover them.
    let (empty, with_faces, faces, detect) = faces_appearing_in_4k();
    let mut cfg = EngineConfig::new(detect, bystander::redact::RedactConfig::default(), 2);
    cfg.workers = 1;
    cfg.intra_threads = 2;
    cfg.track.backfill = 0;
    // Once with the frames piling up (those after frame 2 are in flight when its failure comes
    // in), once with the host waiting for each frame's detection (the failure is known before
    // frame 3 is pushed), and once more so with the schedule slowed to every fourth frame from
    // frame 3 on, as a live stream's ladder does when it falls behind (frames 4 and 8 are then
    // the next two searches); that time frame 2's picture panics instead.
    for (wait, slow) in [(false, false), (true, false), (true, true)] {
        let mut engine: Engine<usize, Flaky> = Engine::new(&cfg).unwrap();
        let mut out: Vec<Output<usize, Flaky>> = Vec::new();
        let mut sink = |o: Output<usize, Flaky>| {
            out.push(o);
            Ok(())
        };
        let frames = 14;
        for n in 0..frames {
            if slow && n == 3 {
                engine.set_detect_every(4);
            }
            let image = if n < 2 { &empty } else { &with_faces };
            let picture = Flaky {
                image: image.clone(),
                broken: n == 2,
                panics: slow,
            };
            engine.push(picture, n, None, &mut sink).unwrap();
            if wait {
                engine.wait(&mut sink).unwrap();
            }
        }
        engine.finish(&mut sink).unwrap();
        assert_eq!(out.len(), frames);
        match &out[2].fault {
            Some(Fault::Detection(e)) => {
                assert_eq!(e.to_string().contains("panicked"), slow, "{e}")
            }
            other => panic!("frame 2: {other:?}"),
        }
        let boxed = |o: &Output<usize, Flaky>| {
            faces
                .iter()
                .all(|face| o.boxes.iter().any(|d| d.bbox.iou(face) >= 0.5))
        };
        for o in &out[3..] {
            match &o.fault {
                Some(Fault::Unsearched { frame: 2, .. }) => {}
                None => assert!(
                    boxed(o),
                    "frame {} shows a face ({wait}, {slow}): {:?}",
                    o.index,
                    o.boxes
                ),
                other => panic!("frame {}: {other:?}", o.index),
            }
        }
        // The cover ends: the last frames are searched and boxed on their own.
        assert!(out[frames - 2..].iter().all(|o| o.fault.is_none()));
        assert_eq!(
            engine.stats().fail_closed_frames,
            out.iter().filter(|o| o.fault.is_some()).count()
        );
    }
}

/// A host's picture that says it is smaller than the pixels it hands over.
#[derive(Clone)]
struct Misreported(image::RgbImage);

impl bystander::engine::Picture for Misreported {
    fn dimensions(&self) -> (u32, u32) {
        (self.0.width() - 16, self.0.height() - 12)
    }

    fn with_rgb(&self, f: &mut dyn FnMut(&image::RgbImage)) {
        f(&self.0)
    }
}

#[test]
fn pixels_of_another_size_than_the_picture_says_are_covered_not_detected() {
    use bystander::engine::{Engine, EngineConfig, Fault, Output};
    runtime();
    // Boxes found on the pixels would be painted in the picture's own size, in the wrong place.
    let cfg = EngineConfig::new(
        DetectConfig::default(),
        bystander::redact::RedactConfig::default(),
        1,
    );
    let mut engine: Engine<usize, Misreported> = Engine::new(&cfg).unwrap();
    let mut out: Vec<Output<usize, Misreported>> = Vec::new();
    let mut sink = |o: Output<usize, Misreported>| {
        out.push(o);
        Ok(())
    };
    let face = rgb("astronaut.jpg");
    let small = image::imageops::resize(&face, 80, 60, image::imageops::FilterType::Triangle);
    for n in 0..3 {
        engine
            .push(Misreported(small.clone()), n, None, &mut sink)
            .unwrap();
    }
    engine.finish(&mut sink).unwrap();
    assert_eq!(out.len(), 3);
    for o in &out {
        match &o.fault {
            Some(Fault::Detection(e)) => assert!(
                e.to_string()
                    .contains("the frame's pixels are 80x60, its picture says 64x48"),
                "{e}"
            ),
            other => panic!("frame {}: {other:?}", o.index),
        }
        let covered = bystander::redact::coverage(&o.regions, 64, 48).fraction();
        assert_eq!(covered, 1.0, "frame {}", o.index);
    }
}

#[test]
fn a_model_of_the_wrong_family_is_refused_with_its_path() {
    runtime();
    let path = models::model_dir().join(models::RETINAFACE.file);
    for family in [Family::CenterFace, Family::Yolo, Family::Text] {
        let data = ModelData::from_path(&path, family, Class::Face).unwrap();
        match ModelDetector::new(data, 0.5, plain_640(), 1) {
            Err(Error::Model { path: p, reason }) => {
                assert_eq!(p, path);
                assert!(
                    reason.contains("does not look like") || reason.contains("not a"),
                    "{reason}"
                );
            }
            Err(e) => panic!("expected a model error, got {e}"),
            Ok(_) => panic!("a RetinaFace file was accepted as {family:?}"),
        }
    }
}

#[test]
fn a_users_own_model_file_is_loaded_by_path() {
    runtime();
    let path = models::model_dir().join(models::CENTERFACE.file);
    let cfg = DetectConfig {
        classes: vec![Class::Face],
        recall: Recall::Fast,
        models: vec![ModelSource::File {
            path: path.clone(),
            family: Family::CenterFace,
            class: Class::Face,
        }],
        ..Default::default()
    };
    let mut set = cfg.build().unwrap();
    assert_eq!(set.models()[0].path, path);
    single(&set.detect(&rgb("astronaut.jpg")).unwrap(), Class::Face);
}

#[test]
fn interleaved_models_take_turns_and_each_turn_still_finds_the_object() {
    runtime();
    let cfg = DetectConfig {
        intra_threads: 2,
        ..Default::default()
    }
    .for_clips();
    assert_eq!(
        cfg.interleave,
        Some(true),
        "the balanced preset interleaves on clips"
    );
    let mut set = cfg.build().unwrap();
    let names = set.model_names();
    let position = |name: &str| names.iter().position(|n| n == name).unwrap();
    let (cf, rf) = (position("centerface"), position("retinaface"));
    let (yolo, pr) = (position("plate-yolo-int8"), position("plate-retina"));
    let face = rgb("astronaut.jpg");
    let plate = rgb("plate_scene.jpg");
    for turn in 0..4 {
        let mut took = vec![0.0; names.len()];
        let faces = set
            .detect_frame_timed(&face, Some(turn), &mut took)
            .unwrap();
        let found = set
            .detect_frame_timed(&plate, Some(turn), &mut took)
            .unwrap();
        // One face model and one plate model per frame, alternating, never the same pair twice
        // in a row: the most expensive of each class (CenterFace, YOLOv8) do not share a frame.
        let ran: Vec<bool> = took.iter().map(|s| *s > 0.0).collect();
        let even = turn % 2 == 0;
        assert_eq!(
            (ran[cf], ran[rf], ran[yolo], ran[pr]),
            (even, !even, !even, even),
            "turn {turn}: {names:?} ran {ran:?}"
        );
        let reference = if even {
            ASTRONAUT_CENTERFACE
        } else {
            ASTRONAUT_RETINAFACE
        };
        // The clip plan magnifies this 512-px photo 1.875x, so the box is the reference's
        // (taken at native size) only roughly.
        assert_matches(single(&faces, Class::Face), reference, 0.7);
        assert_matches(single(&found, Class::Plate), PLATE_DRAWN, 0.5);
    }
    // Without a frame index (photos, `eval --as-clip`) every model runs.
    let mut took = vec![0.0; names.len()];
    set.detect_frame_timed(&face, None, &mut took).unwrap();
    assert!(took.iter().all(|s| *s > 0.0), "{took:?}");
    // --no-interleave: every model on every frame.
    let mut every = DetectConfig {
        interleave: Some(false),
        intra_threads: 2,
        ..Default::default()
    }
    .for_clips()
    .build()
    .unwrap();
    let mut took = vec![0.0; names.len()];
    every.detect_frame_timed(&face, Some(1), &mut took).unwrap();
    assert!(took.iter().all(|s| *s > 0.0), "{took:?}");
}

/// The astronaut at `scale`, turned `quarters` quarter turns counter-clockwise, and where its
/// face (the reference box) went.
fn turned_astronaut(scale: f32, quarters: u32) -> (image::RgbImage, [f32; 4]) {
    let src = rgb("astronaut.jpg");
    let (w, h) = (
        (src.width() as f32 * scale).round() as u32,
        (src.height() as f32 * scale).round() as u32,
    );
    let small = image::imageops::resize(&src, w, h, image::imageops::FilterType::Triangle);
    let [x1, y1, x2, y2] = ASTRONAUT_RETINAFACE.map(|v| v * scale);
    let (w, h) = (w as f32, h as f32);
    match quarters % 4 {
        0 => (small, [x1, y1, x2, y2]),
        1 => (image::imageops::rotate270(&small), [y1, w - x2, y2, w - x1]),
        2 => (
            image::imageops::rotate180(&small),
            [w - x2, h - y2, w - x1, h - y1],
        ),
        _ => (image::imageops::rotate90(&small), [h - y2, x1, h - y1, x2]),
    }
}

/// Gating and rotations together: the gate's regions are searched in each rotation of the frame,
/// and only the regions. The frame holds the astronaut upright, then upside down twice; the region
/// is the middle face.
#[test]
fn gated_regions_are_searched_in_every_rotation_and_nowhere_else() {
    runtime();
    let (upright, first) = turned_astronaut(1.0, 0);
    let (flipped, flipped_face) = turned_astronaut(1.0, 2);
    let (w, h) = upright.dimensions();
    let mut frame = image::RgbImage::new(3 * w, h);
    image::imageops::replace(&mut frame, &upright, 0, 0);
    image::imageops::replace(&mut frame, &flipped, w as i64, 0);
    image::imageops::replace(&mut frame, &flipped, 2 * w as i64, 0);
    let shifted = |panel: u32| {
        let dx = (panel * w) as f32;
        let [x1, y1, x2, y2] = flipped_face;
        [x1 + dx, y1, x2 + dx, y2]
    };
    let faces = [first, shifted(1), shifted(2)];
    let [x1, y1, x2, y2] = faces[1];
    let region = Rect {
        x: x1 as u32,
        y: y1 as u32,
        w: (x2 - x1) as u32,
        h: (y2 - y1) as u32,
    };
    // CenterFace at 0.8 at native size finds the upright face (0.929) and not the upside-down
    // ones (0.571).
    let found_in = |turns| {
        let mut d = native(models::CENTERFACE, 0.8, 3 * w);
        d.set_rotations(turns);
        let whole = d.detect(&frame).unwrap();
        (whole, d.detect_in(&frame, &[region]).unwrap())
    };
    let on = |found: &[Detection]| {
        faces.map(|face| {
            found
                .iter()
                .filter(|d| d.bbox.iou(&bbox(face)) > 0.5)
                .count()
        })
    };
    let (whole, gated) = found_in(1);
    assert_eq!(on(&whole), [1, 0, 0], "upright, whole frame: {whole:?}");
    assert!(gated.is_empty(), "upright, the region: {gated:?}");
    let (whole, gated) = found_in(4);
    assert_eq!(on(&whole), [1, 1, 1], "four turns, whole frame: {whole:?}");
    // The half turn finds the upside-down face in the region; the faces outside it, upright or
    // not, are seen by no pass.
    assert_eq!(
        (on(&gated), gated.len()),
        ([0, 1, 0], 1),
        "four turns, the region: {gated:?}"
    );
}

#[test]
fn rotated_passes_find_the_astronaut_whichever_way_up_as_they_find_it_upright() {
    runtime();
    // CenterFace scores the upright astronaut 0.929, upside down 0.571 and turned a quarter
    // clockwise 0.752: at 0.8 the upright passes miss it two ways up out of four.
    // Long side 1100: the canvas of a frame turned 45 degrees, turned back, is twice the frame.
    let detector = |turns| {
        let mut d = native(models::CENTERFACE, 0.8, 1100);
        d.set_rotations(turns);
        d
    };
    let best = |found: &[Detection], want: [f32; 4]| {
        found
            .iter()
            .map(|d| (d.bbox.iou(&bbox(want)), d.score))
            .fold((0.0f32, 0.0f32), |a, b| if b.0 > a.0 { b } else { a })
    };
    let mut upright_misses = 0;
    for q in 0..4 {
        let (img, want) = turned_astronaut(1.0, q);
        let (iou, _) = best(&detector(1).detect(&img).unwrap(), want);
        upright_misses += (iou < 0.5) as u32;
        // A quarter turn of the picture turned back is the upright picture, pixel for pixel: the
        // turned pass finds the upright face, and its box comes back where the face is.
        let (iou, score) = best(&detector(4).detect(&img).unwrap(), want);
        assert!(
            iou > 0.85 && (score - 0.929).abs() < 0.02,
            "{q} quarters: IoU {iou}, score {score}"
        );
    }
    assert_eq!(
        upright_misses, 2,
        "the upright passes were to miss two of the four"
    );
    // Turned 45 degrees (resampled onto a larger canvas): the eighth turns look at it from eight
    // sides, and what each finds comes back onto the face.
    let src = rgb("astronaut.jpg");
    let turn = bystander::detect::rotate::Rotation::new(45.0, src.width(), src.height());
    let turned = turn.apply(&src);
    let [x1, y1, x2, y2] = ASTRONAUT_CENTERFACE;
    let found_at = |turns| detector(turns).detect(&turned).unwrap();
    let face = Detection {
        class: Class::Face,
        score: 1.0,
        bbox: bystander::BBox::new(x1, y1, x2, y2),
        landmarks: Vec::new(),
    };
    // Where the face went: its box's inscribed ellipse, turned forward.
    let want = turn.inverse().detection_back(face).bbox;
    let want = [want.x1, want.y1, want.x2, want.y2];
    // Every box of the eight turns (each turned back from its own canvas) lands on the face.
    let found = found_at(8);
    assert!(!found.is_empty());
    for d in &found {
        let iou = d.bbox.iou(&bbox(want));
        assert!(
            iou > 0.6 && d.score > 0.8,
            "45 degrees, eight turns: {d:?} against {want:?}"
        );
    }
}

// A batch's clips build their detectors through one cache: the next build makes no session, the
// boxes are those of a build without it, and a model whose file changed, or another thread count,
// gets sessions of its own (a session is never run for bytes other than those it was made from).
#[test]
fn a_session_cache_serves_the_next_build_and_never_a_changed_model_file() {
    runtime();
    use bystander::detect::SessionCache;
    let cache = SessionCache::new();
    let cfg = DetectConfig {
        recall: Recall::Fast,
        intra_threads: 1,
        sessions: Some(cache.clone()),
        ..Default::default()
    };
    let photos = [rgb("astronaut.jpg"), rgb("plate_scene.jpg")];
    let boxes = |cfg: &DetectConfig| {
        let mut set = cfg.build().unwrap();
        let found: Vec<Vec<Detection>> = photos.iter().map(|p| set.detect(p).unwrap()).collect();
        assert!(found.iter().all(|f| !f.is_empty()), "{found:?}");
        format!("{found:?}")
    };
    let first = boxes(&cfg);
    let models = cfg.build().unwrap().models().len();
    assert!(models >= 2, "the fast preset has a face and a plate model");
    assert_eq!(cache.len(), models);
    assert_eq!(boxes(&cfg), first, "the same boxes from the kept sessions");
    assert_eq!(cache.len(), models, "the second build made no session");
    let uncached = DetectConfig {
        sessions: None,
        ..cfg.clone()
    };
    assert_eq!(boxes(&uncached), first);
    assert_eq!(
        cache.len(),
        models,
        "a build without the cache leaves it alone"
    );
    let two = DetectConfig {
        intra_threads: 2,
        ..cfg.clone()
    };
    two.build().unwrap();
    assert_eq!(
        cache.len(),
        2 * models,
        "two threads a session: sessions of their own"
    );

    // A user's face model file, then the same path with another model of the family in it.
    let d = tempfile::tempdir().unwrap();
    let file = d.path().join("faces.onnx");
    let shipped = |m: &models::ShippedModel| models::model_dir().join(m.file);
    std::fs::copy(shipped(&models::RETINAFACE), &file).unwrap();
    let own = DetectConfig {
        classes: vec![Class::Face],
        models: vec![ModelSource::File {
            path: file.clone(),
            family: Family::Retina,
            class: Class::Face,
        }],
        ..cfg.clone()
    };
    let before = own.build().unwrap().models()[0].sha256.clone();
    assert_eq!(cache.len(), 2 * models + 1);
    own.build().unwrap();
    assert_eq!(
        cache.len(),
        2 * models + 1,
        "the file, unchanged: its kept session"
    );
    std::fs::copy(shipped(&models::PLATE_RETINA), &file).unwrap();
    let after = own.build().unwrap();
    assert_ne!(after.models()[0].sha256, before);
    assert_eq!(
        cache.len(),
        2 * models + 2,
        "the changed file got a session of its own"
    );
}

/// A second look around a hint (where the plate was found on an earlier frame) finds a plate that
/// the search of the frame alone misses, near misses and all: the drawn plate shrunk to 4 to 6 px
/// high, the hint a few pixels off where the plate now is (it moved). A hint over plain grey
/// finds nothing: only what the model scores over the threshold is kept.
#[test]
fn a_second_look_around_a_hint_finds_a_plate_the_search_alone_misses() {
    runtime();
    let mut d = plate_yolo(2.0);
    for factor in [0.10, 0.12, 0.13] {
        let (frame, plate) = small_plate(factor, 150);
        let under = |found: &[Detection]| under_plate_masks(found, &plate);
        d.set_hints(&[]);
        let alone = d.detect(&frame).unwrap();
        assert!(under(&alone) < 0.5, "{factor}: found alone {alone:?}");
        let moved = bystander::BBox::new(
            plate.x1 - 6.0,
            plate.y1 - 2.0,
            plate.x2 - 6.0,
            plate.y2 - 2.0,
        );
        d.set_hints(&[(Class::Plate, moved)]);
        let found = d.detect(&frame).unwrap();
        assert!(
            under(&found) >= 0.8,
            "{factor}: plate {plate:?}, hinted look found {found:?}"
        );
        assert!(found.iter().all(|d| d.score > 0.3));
        // A face hint is not this detector's business; a plate hint over grey finds nothing.
        d.set_hints(&[(Class::Face, moved)]);
        assert!(
            under(&d.detect(&frame).unwrap()) < 0.5,
            "{factor}: a face hint was used"
        );
        d.set_hints(&[(Class::Plate, bystander::BBox::new(500.0, 40.0, 523.0, 46.0))]);
        assert!(
            d.detect(&frame).unwrap().is_empty(),
            "{factor}: a box over grey"
        );
    }
}

/// The roving tile ([`PassPlan::roving`]) finds a plate too small for the plate YOLO's native
/// tiles when it passes over it: the drawn plate shrunk to 7.5 and 9 px high on a grey 1080p frame.
/// Searched without a turn (a photo) or on the light plan, nothing covers it; over one round of
/// the roving tile, every turn whose tile holds the plate covers it, and no other turn does.
#[test]
fn the_roving_tile_finds_a_plate_too_small_for_the_native_tiles_where_it_passes() {
    runtime();
    let plan = PassPlan {
        tiles: Tiles::Auto,
        roving: bystander::detect::ROVING_ZOOM,
        ..plain_640()
    };
    let mut d = ModelDetector::new(models::PLATE_YOLO_INT8.load().unwrap(), 0.3, plan, 2).unwrap();
    for (factor, x, y) in [(0.18, 1000, 600), (0.22, 1000, 600), (0.18, 360, 140)] {
        let (frame, plate) = small_plate_on_1080p(factor, x, y);
        let under = |found: &[Detection]| under_plate_masks(found, &plate);
        d.set_turn(None);
        let alone = d.detect(&frame).unwrap();
        assert!(
            under(&alone) < 0.5,
            "{factor}: found without a turn {alone:?}"
        );
        let mut holding = 0;
        // 6 x 3 tiles of at most 426 px on a 1080p frame.
        for turn in 0..18 {
            let tile = plan
                .roving_tile(1920, 1080, Some((640, 640)), turn)
                .unwrap();
            let r = tile.region;
            let (x, y) = (r.x as f32, r.y as f32);
            let shared =
                bystander::BBox::new(x, y, x + r.w as f32, y + r.h as f32).intersection(&plate);
            let (holds, apart) = (shared >= plate.area(), shared <= 0.0);
            d.set_turn(Some(turn));
            let found = d.detect(&frame).unwrap();
            if holds {
                holding += 1;
                assert!(
                    under(&found) >= 0.8,
                    "{factor}, turn {turn}: tile {r:?} holds {plate:?}, found {found:?}"
                );
                // The light plan has no roving tile.
                d.set_light(true);
                assert!(
                    under(&d.detect(&frame).unwrap()) < 0.5,
                    "{factor}: light plan"
                );
                d.set_light(false);
            } else if apart {
                assert!(
                    under(&found) < 0.5,
                    "{factor}, turn {turn}: found {found:?}"
                );
            }
        }
        assert!(holding >= 1, "{factor}: no tile holds {plate:?}");
        assert_eq!(
            plan.roving_tile(1920, 1080, Some((640, 640)), 18),
            plan.roving_tile(1920, 1080, Some((640, 640)), 0)
        );
    }
}

// A clip's pool makes, before the first frame, the second session that a model tiling the frame
// would otherwise make while frames are in flight: only for such a model, only with two workers
// or more, and never past the cap a low-memory pool sets.
#[test]
fn models_that_tile_the_frame_get_their_second_session_before_the_first_frame() {
    runtime();
    use bystander::detect::spare_sessions_probe;
    let clips = DetectConfig::default().for_clips();
    let probe = |size, workers, low_memory| {
        spare_sessions_probe(&clips, size, workers, low_memory).unwrap()
    };
    let large = probe((1920, 1080), 2, false);
    assert!(
        large
            .iter()
            .any(|(n, tiles, _)| *tiles && n == "centerface"),
        "{large:?}"
    );
    for (name, tiles, sessions) in &large {
        assert_eq!(*sessions, if *tiles { 2 } else { 1 }, "{name}: {large:?}");
    }
    let small = probe((768, 432), 2, false);
    assert!(
        small.iter().all(|(_, tiles, s)| !tiles && *s == 1),
        "{small:?}"
    );
    let one_worker = probe((1920, 1080), 1, false);
    assert!(one_worker.iter().all(|(_, _, s)| *s == 1), "{one_worker:?}");
    let capped = probe((1920, 1080), 2, true);
    assert!(capped.iter().all(|(_, _, s)| *s == 1), "{capped:?}");
}

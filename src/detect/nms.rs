//! Non-maximum suppression, and the enclosing merge used across passes and models.
//!
//! Within one model pass, plain NMS keeps the best-scoring box of each cluster. Across passes
//! (whole frame + tiles, several scales) and across models, the kept box instead *encloses* every
//! box it suppressed: one detector's tight box must never shrink another's looser box over the
//! same object, because a mask that is too small leaks the edge of a face.

use crate::geometry::Detection;

fn by_score_desc(dets: &mut [Detection]) {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
}

/// Greedy NMS per class: keeps the highest-scoring box and drops boxes of the same class whose IoU
/// with it exceeds `iou`. Output is sorted by descending score.
pub fn nms(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    by_score_desc(&mut dets);
    let mut keep: Vec<Detection> = Vec::with_capacity(dets.len());
    for d in dets {
        if !keep
            .iter()
            .any(|k| k.class == d.class && k.bbox.iou(&d.bbox) > iou)
        {
            keep.push(d);
        }
    }
    keep
}

/// Like [`nms`], but each kept detection's box grows to enclose every box it suppressed. Score and
/// landmarks stay those of the best box.
pub fn merge_enclosing(mut dets: Vec<Detection>, iou: f32) -> Vec<Detection> {
    by_score_desc(&mut dets);
    let mut keep: Vec<(Detection, crate::geometry::BBox)> = Vec::with_capacity(dets.len());
    for d in dets {
        // Suppression is judged against the representative (best) box, not the growing
        // enclosure, so clusters cannot creep across a crowd.
        match keep
            .iter_mut()
            .find(|(k, _)| k.class == d.class && k.bbox.iou(&d.bbox) > iou)
        {
            Some((_, enclosure)) => *enclosure = enclosure.enclose(&d.bbox),
            None => {
                let b = d.bbox;
                keep.push((d, b));
            }
        }
    }
    keep.into_iter()
        .map(|(mut d, enclosure)| {
            d.bbox = enclosure;
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::{BBox, Class};

    fn det(class: Class, score: f32, x1: f32, y1: f32, x2: f32, y2: f32) -> Detection {
        Detection {
            class,
            score,
            bbox: BBox::new(x1, y1, x2, y2),
            landmarks: vec![],
        }
    }

    #[test]
    fn nms_keeps_best_of_each_cluster_and_other_classes() {
        let out = nms(
            vec![
                det(Class::Face, 0.5, 0.0, 0.0, 10.0, 10.0),
                det(Class::Face, 0.9, 1.0, 1.0, 11.0, 11.0),
                det(Class::Face, 0.7, 50.0, 50.0, 60.0, 60.0),
                det(Class::Plate, 0.3, 1.0, 1.0, 11.0, 11.0),
            ],
            0.4,
        );
        let scores: Vec<f32> = out.iter().map(|d| d.score).collect();
        assert_eq!(scores, vec![0.9, 0.7, 0.3]);
        assert_eq!(out[0].bbox, BBox::new(1.0, 1.0, 11.0, 11.0));
    }

    #[test]
    fn merge_encloses_suppressed_boxes_but_keeps_best_score() {
        let out = merge_enclosing(
            vec![
                det(Class::Face, 0.9, 10.0, 10.0, 20.0, 20.0),
                det(Class::Face, 0.4, 8.0, 9.0, 21.0, 22.0),
                det(Class::Face, 0.8, 100.0, 100.0, 110.0, 110.0),
            ],
            0.4,
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].score, 0.9);
        assert_eq!(out[0].bbox, BBox::new(8.0, 9.0, 21.0, 22.0));
        assert_eq!(out[1].bbox, BBox::new(100.0, 100.0, 110.0, 110.0));
    }

    #[test]
    fn merge_does_not_chain_across_neighbours() {
        // a overlaps b, b overlaps c, but a and c are apart: c must not join a's cluster through b's
        // enclosure.
        let out = merge_enclosing(
            vec![
                det(Class::Face, 0.9, 0.0, 0.0, 10.0, 10.0),
                det(Class::Face, 0.8, 3.0, 0.0, 13.0, 10.0),
                det(Class::Face, 0.7, 9.0, 0.0, 19.0, 10.0),
            ],
            0.4,
        );
        assert_eq!(out.len(), 2);
    }
}

//! Combing: interlaced frames that nothing says are interlaced.
//!
//! Why: an interlaced frame woven from two fields a field's time apart shows whatever moved in
//! between as combed, which the detectors were not trained on: on crowd_1080p's frames woven two
//! to a frame, whole-frame detection covered 0.834 of the faces and field-by-field detection
//! 0.934 (BENCHMARKS.md, "Interlaced frames"). A stream that declares a field order is detected
//! field by field already (`pool::Shown::interlaced`). But analog cameras' DVRs, and anyone who
//! re-encoded such footage without saying so (FFmpeg does not carry the field order into an
//! encoder that was not told to code fields), write woven frames into streams marked progressive
//! or marked nothing. So every detected frame of such a stream is also measured, and a frame
//! that shows combing is searched field by field as well as whole: the whole pass stays, so
//! nothing found before is lost, and a frame mistaken for combed only costs more detection.
//!
//! The measure: in a combed block, neighbouring rows (one from each field) differ much more than
//! rows two apart (the same field); in a progressive picture, nearer rows are the more alike. On
//! the eleven shared clips (every frame up to 300 each, progressive), no 16 x 16 block passed the
//! test even at a laxer setting (neighbours 1.3 times as different, 1 level over); woven two frames
//! to one, every woven crowd_1080p frame had 734 blocks or more, the smaller clips' woven frames
//! a median of 9 to 41 where people walk, and frames where little moved none (their fields agree,
//! and whole-frame detection sees them as they are). Measured with a throwaway numpy script on
//! luma (BENCHMARKS.md, "Combing in streams that do not say they are interlaced").

use super::picture::{Luma, Picture};

/// Rows and columns of a measured block.
const BLOCK: usize = 16;
/// Columns sampled: every `STEP`th (combing runs along rows, so sparse columns see it).
const STEP: usize = 4;
/// Samples a block row.
const PER: usize = BLOCK / STEP;
/// A block is combed where its neighbouring rows differ more than `RATIO` times as much as its
/// rows two apart, plus [`FLOOR`].
const RATIO: u32 = 2;
/// Luma levels a sample that neighbouring rows must differ by beyond `RATIO` times the rows two
/// apart, so that noise and compression in flat areas never count.
const FLOOR: usize = 3;
/// Combed blocks that make a frame combed: more than one, so that a lone striped patch does not.
const MIN_BLOCKS: usize = 2;

/// Whether `image` shows combing (see the module's doc). A picture that does not hand its luma
/// over, or is too small to hold one block, does not.
pub(crate) fn combed(image: &dyn Picture) -> bool {
    let (w, h) = image.dimensions();
    let mut found = false;
    image.with_luma(&mut |luma| found = combed_blocks(&luma, w as usize, h as usize) >= MIN_BLOCKS);
    found
}

/// Combed blocks of the `w` x `h` picture `luma`, counted up to [`MIN_BLOCKS`]; 0 where a row it
/// reads is missing or the channels lie outside the pixels.
fn combed_blocks(luma: &Luma<'_>, w: usize, h: usize) -> usize {
    let (cols, block_rows) = (w / BLOCK, h.saturating_sub(2) / BLOCK);
    if cols == 0 || block_rows == 0 {
        return 0;
    }
    let samples = cols * PER;
    let mut rows = [vec![0u8; samples], vec![0u8; samples], vec![0u8; samples]];
    let (mut inter, mut intra) = (vec![0u32; cols], vec![0u32; cols]);
    for (i, row) in rows.iter_mut().take(2).enumerate() {
        if read_row(luma, i, row).is_none() {
            return 0;
        }
    }
    let floor = (FLOOR * BLOCK * PER) as u32;
    let mut found = 0;
    for y in 0..block_rows * BLOCK {
        if read_row(luma, y + 2, &mut rows[(y + 2) % 3]).is_none() {
            return 0;
        }
        let (a, b, c) = (&rows[y % 3], &rows[(y + 1) % 3], &rows[(y + 2) % 3]);
        let blocks = a
            .chunks_exact(PER)
            .zip(b.chunks_exact(PER))
            .zip(c.chunks_exact(PER));
        for (((a, b), c), (e, s)) in blocks.zip(inter.iter_mut().zip(intra.iter_mut())) {
            for k in 0..PER {
                *e += u32::from(a[k].abs_diff(b[k]));
                *s += u32::from(a[k].abs_diff(c[k]));
            }
        }
        if y % BLOCK == BLOCK - 1 {
            for (e, s) in inter.iter_mut().zip(intra.iter_mut()) {
                if *e > RATIO * *s + floor {
                    found += 1;
                }
                (*e, *s) = (0, 0);
            }
            if found >= MIN_BLOCKS {
                return found;
            }
        }
    }
    found
}

/// Every [`STEP`]th sample of row `y` of `luma` into `out` (as many as it holds); `None` where
/// the row is missing or the channels lie outside the pixels.
fn read_row(luma: &Luma<'_>, y: usize, out: &mut [u8]) -> Option<()> {
    luma.row_samples(y, out.len() * STEP, STEP, |x, v| out[x / STEP] = v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    /// A picture of soft diagonal bands with a disc, which moves `moved` pixels between the
    /// fields: woven, its top field shows the disc at `x`, its bottom field at `x + moved`.
    fn scene(w: u32, h: u32, x: i64, moved: i64, seed: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |px, py| {
            let at = if py % 2 == 0 { x } else { x + moved };
            let (dx, dy) = (i64::from(px) - at, i64::from(py) - i64::from(h / 2));
            let band = ((px + py + seed) % 64) as u8 * 2 + 40;
            // A little noise, as a camera's.
            let noise = ((px.wrapping_mul(7919) ^ py.wrapping_mul(104_729) ^ seed) % 5) as u8;
            let v = if dx * dx + dy * dy < 30 * 30 {
                230
            } else {
                band
            };
            let v = v.saturating_add(noise);
            image::Rgb([v, v, v])
        })
    }

    #[test]
    fn moving_woven_frames_are_combed_and_progressive_or_still_ones_are_not() {
        for (i, (w, h)) in [(720u32, 576u32), (352, 288), (1920, 1080), (101, 67)]
            .into_iter()
            .enumerate()
        {
            let seed = i as u32 * 13;
            let x = i64::from(w / 3);
            // Still (the fields agree): not combed, however the scene looks.
            assert!(!combed(&scene(w, h, x, 0, seed)), "{w}x{h} still");
            // The disc moved 6 px between the fields: combed (where a block fits around it).
            let woven = scene(w, h, x, 6, seed);
            assert_eq!(combed(&woven), h >= 64, "{w}x{h} woven");
            // A progressive frame of a moving disc (both fields at the same instant).
            assert!(!combed(&scene(w, h, x + 6, 0, seed)), "{w}x{h} progressive");
        }
    }

    /// Generated cases: discs anywhere in frames of many sizes, moving 4 to 20 px between the
    /// fields, are combed; the same scenes still, or progressive, never are.
    #[test]
    fn generated_scenes_are_combed_exactly_when_they_move_between_fields() {
        let mut rng = crate::TestRng::new(0x2545_f491);
        let mut next = |n: u32| rng.below(n);
        for case in 0..60 {
            let (w, h) = (96 + next(500), 80 + next(400));
            let x = i64::from(20 + next(w - 40));
            let moved = 4 + i64::from(next(17));
            let seed = next(1000);
            assert!(
                !combed(&scene(w, h, x, 0, seed)),
                "case {case}: {w}x{h} still"
            );
            assert!(
                !combed(&scene(w, h, x + moved, 0, seed)),
                "case {case}: progressive"
            );
            assert!(
                combed(&scene(w, h, x, moved, seed)),
                "case {case}: {w}x{h} moved {moved}"
            );
        }
    }

    #[test]
    fn pictures_too_small_or_unreadable_are_not_combed() {
        for (w, h) in [(0, 0), (15, 400), (400, 17), (1, 1)] {
            assert!(!combed(&RgbImage::new(w, h)), "{w}x{h}");
        }
        let data = vec![0u8; 64 * 64];
        let short = Luma::Plane {
            data: &data,
            stride: 64,
            full_range: true,
        };
        // Asked for more rows than the plane has: nothing is measured.
        assert_eq!(combed_blocks(&short, 64, 200), 0);
        let outside = Luma::Packed {
            data: &data,
            stride: 64,
            bytes: 1,
            rgb: [0, 1, 2],
        };
        assert_eq!(combed_blocks(&outside, 64, 64), 0);
    }
}

//! The pixel operations behind each style, on a small RGB patch cut from the frame.
//!
//! Blur is made irreversible by design: the patch is first averaged onto a coarse grid (many
//! input images map to the same grid, so the detail is gone, not merely hidden) and then smoothed
//! with three box-blur passes (close to a Gaussian) whose radius grows with the object, so a large
//! face is blurred as hard as a small one. Box blurs run with running sums, so their cost does not
//! grow with the radius.

/// Averages `block` x `block` cells (the last ones may be smaller), in place.
pub fn pixelate(buf: &mut [u8], w: usize, h: usize, block: usize) {
    let block = block.max(1);
    for by in (0..h).step_by(block) {
        for bx in (0..w).step_by(block) {
            let (ey, ex) = ((by + block).min(h), (bx + block).min(w));
            let mut sum = [0u32; 3];
            for y in by..ey {
                for px in buf[(y * w + bx) * 3..(y * w + ex) * 3].chunks_exact(3) {
                    sum[0] += px[0] as u32;
                    sum[1] += px[1] as u32;
                    sum[2] += px[2] as u32;
                }
            }
            let n = ((ey - by) * (ex - bx)) as u32;
            let avg = [
                (sum[0] + n / 2) / n,
                (sum[1] + n / 2) / n,
                (sum[2] + n / 2) / n,
            ]
            .map(|v| v as u8);
            for y in by..ey {
                for px in buf[(y * w + bx) * 3..(y * w + ex) * 3].chunks_exact_mut(3) {
                    px.copy_from_slice(&avg);
                }
            }
        }
    }
}

/// One box-blur pass along a line of `n` pixels `step` bytes apart, edges clamped.
fn box_line(
    buf: &mut [u8],
    start: usize,
    n: usize,
    step: usize,
    r: usize,
    tmp: &mut Vec<[u32; 3]>,
) {
    tmp.clear();
    tmp.extend((0..n).map(|i| {
        let p = start + i * step;
        [buf[p] as u32, buf[p + 1] as u32, buf[p + 2] as u32]
    }));
    let at = |i: isize| tmp[i.clamp(0, n as isize - 1) as usize];
    let win = (2 * r + 1) as u32;
    let mut sum = [0u32; 3];
    for i in -(r as isize)..=(r as isize) {
        let v = at(i);
        for c in 0..3 {
            sum[c] += v[c];
        }
    }
    for i in 0..n {
        let p = start + i * step;
        for c in 0..3 {
            buf[p + c] = ((sum[c] + win / 2) / win) as u8;
        }
        let (add, sub) = (at(i as isize + r as isize + 1), at(i as isize - r as isize));
        for c in 0..3 {
            sum[c] = sum[c] + add[c] - sub[c];
        }
    }
}

/// Three horizontal and three vertical box-blur passes of radius `r`, in place.
pub fn box_blur(buf: &mut [u8], w: usize, h: usize, r: usize) {
    if r == 0 || w == 0 || h == 0 {
        return;
    }
    let mut tmp = Vec::with_capacity(w.max(h));
    for _ in 0..3 {
        for y in 0..h {
            box_line(buf, y * w * 3, w, 3, r, &mut tmp);
        }
        for x in 0..w {
            box_line(buf, x * 3, h, w * 3, r, &mut tmp);
        }
    }
}

/// The blur style for an object whose longer side is `size` pixels: a coarse grid of about 12
/// cells across, then smoothing over about a sixth of the object.
pub fn strong_blur(buf: &mut [u8], w: usize, h: usize, size: f32) {
    pixelate(buf, w, h, (size / 12.0).round().max(2.0) as usize);
    box_blur(buf, w, h, (size / 6.0).round().max(2.0) as usize);
}

/// Cell size of the pixelate style for an object whose longer side is `size` pixels: about 8
/// cells across, at least 3 px.
pub fn pixelate_block(size: f32) -> usize {
    (size / 8.0).ceil().max(3.0) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixelate_makes_uniform_blocks_with_the_mean() {
        let mut buf: Vec<u8> = (0..4 * 4 * 3).map(|i| (i * 5) as u8).collect();
        pixelate(&mut buf, 4, 4, 2);
        // Top-left block: pixels (0,0),(1,0),(0,1),(1,1); red values 0,15,60,75 -> 37.5 -> 38.
        assert_eq!(&buf[0..3], &buf[3..6]);
        assert_eq!(buf[0], 38);
        assert_eq!(&buf[0..3], &buf[12..15]);
        assert_ne!(&buf[0..3], &buf[6..9]);
    }

    #[test]
    fn box_blur_keeps_flat_regions_and_spreads_an_impulse() {
        let mut flat = vec![100u8; 8 * 8 * 3];
        box_blur(&mut flat, 8, 8, 3);
        assert!(flat.iter().all(|&v| v == 100));
        let mut imp = vec![0u8; 21 * 21 * 3];
        let c = (10 * 21 + 10) * 3;
        imp[c] = 255;
        imp[c + 1] = 255;
        imp[c + 2] = 255;
        box_blur(&mut imp, 21, 21, 2);
        assert!(imp[c] < 255);
        assert!(imp[(10 * 21 + 12) * 3] > 0, "energy reached a neighbour");
    }

    #[test]
    fn strong_blur_destroys_detail() {
        // A fine checkerboard must come out close to flat grey.
        let (w, h) = (64, 64);
        let mut buf: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let v = if (i % w + i / w) % 2 == 0 { 0 } else { 255 };
                [v, v, v]
            })
            .collect();
        strong_blur(&mut buf, w, h, 64.0);
        let (min, max) = buf
            .iter()
            .fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        assert!(max - min <= 4, "range {min}..{max}");
    }
}

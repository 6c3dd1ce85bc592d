//! The pixel operations behind each style, on a small RGB patch cut from the frame.
//!
//! Blur is made irreversible by design: the patch is first averaged onto a coarse grid of about 12
//! cells across the object (many input images map to the same grid, so the detail is gone, not
//! merely hidden), the grid is smoothed with three box-blur passes (close to a Gaussian) two cells
//! wide, and the smooth grid is stretched back over the patch with bilinear interpolation. The
//! output is a function of the cell means alone, and the cell grows with the object, so a large
//! face is blurred as hard as a small one. The smoothing runs on the grid, not on the pixels, so
//! the cost is one read and one write of the patch whatever the object's size.

/// Averages `block` x `block` cells (the last ones may be smaller), in place.
pub fn pixelate(buf: &mut [u8], w: usize, h: usize, block: usize) {
    if w == 0 || h == 0 {
        return;
    }
    let block = block.max(1);
    let (grid, gw, _) = cell_means(buf, w, h, block);
    for (y, row) in buf[..w * h * 3].chunks_exact_mut(w * 3).enumerate() {
        let cells = grid[(y / block) * gw * 3..(y / block + 1) * gw * 3].chunks_exact(3);
        for (mean, run) in cells.zip(row.chunks_mut(block * 3)) {
            for px in run.chunks_exact_mut(3) {
                px.copy_from_slice(mean);
            }
        }
    }
}

/// One box-blur pass of radius `r` over every row (or, `vertical`, every column) of the `w` x
/// `h` RGB picture `src`, into `dst`; edges clamped. Each line keeps a running sum, so the cost
/// does not grow with the radius.
fn box_pass(src: &[u8], dst: &mut [u8], (w, h): (usize, usize), r: usize, vertical: bool) {
    let win = (2 * r + 1) as u32;
    let (lines, n) = if vertical { (w, h) } else { (h, w) };
    let at = |line: usize, i: usize| {
        let i = i.min(n - 1);
        if vertical {
            (i * w + line) * 3
        } else {
            (line * w + i) * 3
        }
    };
    for line in 0..lines {
        for c in 0..3 {
            let mut sum = (r as u32 + 1) * src[at(line, 0) + c] as u32;
            for i in 1..=r {
                sum += src[at(line, i) + c] as u32;
            }
            for i in 0..n {
                dst[at(line, i) + c] = ((sum + win / 2) / win) as u8;
                sum = sum + src[at(line, i + r + 1) + c] as u32
                    - src[at(line, i.saturating_sub(r)) + c] as u32;
            }
        }
    }
}

/// Three horizontal and three vertical box-blur passes of radius `r`, in place.
pub fn box_blur(buf: &mut [u8], w: usize, h: usize, r: usize) {
    if r == 0 || w == 0 || h == 0 {
        return;
    }
    let buf = &mut buf[..w * h * 3];
    let mut src = vec![0u8; buf.len()];
    for _ in 0..3 {
        for vertical in [false, true] {
            src.copy_from_slice(buf);
            box_pass(&src, buf, (w, h), r, vertical);
        }
    }
}

/// The mean of each `cell` x `cell` block (the last ones may be smaller), as a `gw` x `gh` RGB
/// grid.
fn cell_means(buf: &[u8], w: usize, h: usize, cell: usize) -> (Vec<u8>, usize, usize) {
    let (gw, gh) = (w.div_ceil(cell), h.div_ceil(cell));
    let mut sums = vec![0u32; gw * gh * 3];
    for y in 0..h {
        let row = &mut sums[(y / cell) * gw * 3..(y / cell + 1) * gw * 3];
        let pixels = buf[y * w * 3..(y + 1) * w * 3].chunks(cell * 3);
        for (g, run) in row.chunks_exact_mut(3).zip(pixels) {
            for px in run.chunks_exact(3) {
                g[0] += px[0] as u32;
                g[1] += px[1] as u32;
                g[2] += px[2] as u32;
            }
        }
    }
    let mut grid = vec![0u8; gw * gh * 3];
    for gy in 0..gh {
        let ch = cell.min(h - gy * cell);
        for gx in 0..gw {
            let n = (ch * cell.min(w - gx * cell)) as u32;
            for c in 0..3 {
                let i = (gy * gw + gx) * 3 + c;
                grid[i] = ((sums[i] + n / 2) / n) as u8;
            }
        }
    }
    (grid, gw, gh)
}

/// For each of `n` pixels along an axis, the two grid cells around it and the second one's
/// weight out of 256, sampling the grid at cell centres (edges clamped).
fn bilinear_taps(n: usize, cells: usize, cell: usize) -> Vec<(usize, usize, u32)> {
    (0..n)
        .map(|x| {
            let g = ((x as f32 + 0.5) / cell as f32 - 0.5).max(0.0);
            let g0 = (g as usize).min(cells - 1);
            let g1 = (g0 + 1).min(cells - 1);
            (g0, g1, ((g - g0 as f32).min(1.0) * 256.0).round() as u32)
        })
        .collect()
}

/// Fills the `w` x `h` patch `buf` from the `gw` x `gh` grid by bilinear interpolation.
fn stretch(grid: &[u8], gw: usize, gh: usize, cell: usize, buf: &mut [u8], w: usize, h: usize) {
    let (xs, ys) = (bilinear_taps(w, gw, cell), bilinear_taps(h, gh, cell));
    // Each grid row interpolated across the patch's width, scaled by 256.
    let mut rows = vec![0u32; gh * w * 3];
    for gy in 0..gh {
        let g = &grid[gy * gw * 3..(gy + 1) * gw * 3];
        let row = &mut rows[gy * w * 3..(gy + 1) * w * 3];
        for (x, &(a, b, t)) in xs.iter().enumerate() {
            for c in 0..3 {
                row[x * 3 + c] = g[a * 3 + c] as u32 * (256 - t) + g[b * 3 + c] as u32 * t;
            }
        }
    }
    for (y, &(a, b, t)) in ys.iter().enumerate() {
        let (ra, rb) = (
            &rows[a * w * 3..(a + 1) * w * 3],
            &rows[b * w * 3..(b + 1) * w * 3],
        );
        for ((o, &p), &q) in buf[y * w * 3..(y + 1) * w * 3].iter_mut().zip(ra).zip(rb) {
            *o = ((p * (256 - t) + q * t + 32768) >> 16) as u8;
        }
    }
}

/// The blur style for an object whose longer side is `size` pixels: cell means on a grid of
/// about 12 cells across (at least 2 px), smoothed over about a sixth of the object (two cells),
/// stretched back over the patch.
pub fn strong_blur(buf: &mut [u8], w: usize, h: usize, size: f32) {
    if w == 0 || h == 0 {
        return;
    }
    let cell = (size / 12.0).round().max(2.0) as usize;
    let radius = ((size / 6.0).round().max(2.0) / cell as f32)
        .round()
        .max(1.0) as usize;
    let (mut grid, gw, gh) = cell_means(buf, w, h, cell);
    box_blur(&mut grid, gw, gh, radius);
    stretch(&grid, gw, gh, cell, buf, w, h);
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

    /// The definition: each pass averages the 2r+1 neighbours along a line, edges clamped.
    fn box_blur_reference(buf: &mut [u8], w: usize, h: usize, r: usize) {
        let win = (2 * r + 1) as u32;
        let at = |b: &[u8], x: isize, y: isize, c: usize| {
            let (x, y) = (x.clamp(0, w as isize - 1), y.clamp(0, h as isize - 1));
            b[(y as usize * w + x as usize) * 3 + c] as u32
        };
        for _ in 0..3 {
            for vertical in [false, true] {
                let src = buf.to_vec();
                for y in 0..h as isize {
                    for x in 0..w as isize {
                        for c in 0..3 {
                            let sum: u32 = (-(r as isize)..=r as isize)
                                .map(|k| match vertical {
                                    false => at(&src, x + k, y, c),
                                    true => at(&src, x, y + k, c),
                                })
                                .sum();
                            buf[(y as usize * w + x as usize) * 3 + c] =
                                ((sum + win / 2) / win) as u8;
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn box_blur_equals_the_windowed_average() {
        let mut seed = 12345u32;
        for (w, h, r) in [
            (1, 1, 1),
            (7, 5, 2),
            (5, 9, 6),
            (33, 17, 4),
            (40, 3, 20),
            (3, 40, 1),
        ] {
            let buf: Vec<u8> = (0..w * h * 3)
                .map(|_| {
                    seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    (seed >> 24) as u8
                })
                .collect();
            let (mut fast, mut slow) = (buf.clone(), buf);
            box_blur(&mut fast, w, h, r);
            box_blur_reference(&mut slow, w, h, r);
            assert_eq!(fast, slow, "{w}x{h} radius {r}");
        }
    }

    #[test]
    fn strong_blur_depends_only_on_the_cell_means() {
        // Two patches whose 8x8 cells have the same means but different pixels inside (a face
        // and a rearrangement of it) blur to the same output: the detail is gone, not hidden.
        let (w, h, size) = (40usize, 48usize, 96.0);
        let a: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let mut b = a.clone();
        for y in (0..h).step_by(8) {
            for x in (0..w).step_by(8) {
                // Swap the first two pixels of the cell's first row: same mean, other picture.
                let (p, q) = ((y * w + x) * 3, (y * w + x + 1) * 3);
                for c in 0..3 {
                    b.swap(p + c, q + c);
                }
            }
        }
        assert_ne!(a, b);
        let (mut ba, mut bb) = (a.clone(), b);
        strong_blur(&mut ba, w, h, size);
        strong_blur(&mut bb, w, h, size);
        assert_eq!(ba, bb);
        assert_ne!(ba, a);
    }

    #[test]
    fn strong_blur_keeps_flat_colour_and_varies_smoothly() {
        let (w, h) = (50usize, 30usize);
        let mut flat = [10u8, 200, 77].repeat(w * h);
        strong_blur(&mut flat, w, h, 50.0);
        assert!(flat.chunks_exact(3).all(|p| p == [10, 200, 77]));
        // A hard vertical edge becomes a ramp: no step between neighbours larger than a fraction
        // of the edge's height.
        let mut edge: Vec<u8> = (0..w * h)
            .flat_map(|i| if i % w < w / 2 { [0u8; 3] } else { [240u8; 3] })
            .collect();
        strong_blur(&mut edge, w, h, 50.0);
        let row = &edge[10 * w * 3..11 * w * 3];
        for x in 1..w {
            let step = (row[x * 3] as i32 - row[(x - 1) * 3] as i32).abs();
            assert!(step <= 40, "step {step} at x = {x}");
        }
        assert!(row[0] < 60 && row[(w - 1) * 3] > 180);
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

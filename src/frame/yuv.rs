//! YUV 4:2:0 to RGB for detection, and redacted pixels back into the YUV picture, rectangle by
//! rectangle.
//!
//! Why rectangles: a clip's frames (and many cameras' frames) are YUV 4:2:0, turned into RGB for
//! detection and redaction, and the encoder or the host wants YUV again. Converting the whole
//! frame back costs as much as converting it to RGB and sends every pixel through a second lossy
//! conversion, yet only the redacted rectangles changed. So only those are converted back: every
//! other pixel stays exactly as it was.
//!
//! The matrix is BT.601, the one FFmpeg's scaler uses by default, which is also what turns a
//! decoded clip's picture into RGB: a redacted patch meets its surroundings without a colour
//! step. Samples are in video range (16 to 235) or full range (0 to 255, JPEG's, which many IP
//! cameras send): [`Range`]. Chroma is either planar (I420: a Cb and a Cr plane) or interleaved
//! (NV12: one plane of Cb, Cr pairs); the functions take the plane and the step between samples.

/// A rectangle of pixels: `x0..x1` by `y0..y1`.
pub type Rect = (u32, u32, u32, u32);

/// Where a picture's samples lie.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Range {
    /// Video range: luma 16 to 235, chroma 16 to 240 (broadcast's, most clips').
    #[default]
    Video,
    /// Full range: 0 to 255 (JPEG's; many IP cameras' H.264, FFmpeg's `yuvj` formats).
    Full,
}

/// A range's conversions in 16.16 fixed point.
struct Coefficients {
    /// Rows Y, Cb, Cr; columns R, G, B.
    to_yuv: [[i32; 3]; 3],
    /// Luma of black.
    black: i32,
    /// R, G, B from Y - black, Cb - 128, Cr - 128.
    y_gain: i32,
    cr_r: i32,
    cb_g: i32,
    cr_g: i32,
    cb_b: i32,
}

const VIDEO: Coefficients = Coefficients {
    to_yuv: [
        [16829, 33039, 6416],
        [-9714, -19070, 28784],
        [28784, -24103, -4681],
    ],
    black: 16,
    y_gain: 76309, // 255 / 219
    cr_r: 104597,
    cb_g: -25675,
    cr_g: -53279,
    cb_b: 132201,
};

const FULL: Coefficients = Coefficients {
    to_yuv: [
        [19595, 38470, 7471],
        [-11059, -21709, 32768],
        [32768, -27439, -5329],
    ],
    black: 0,
    y_gain: 65536,
    cr_r: 91881,
    cb_g: -22554,
    cr_g: -46802,
    cb_b: 116130,
};

impl Range {
    fn coefficients(self) -> &'static Coefficients {
        match self {
            Range::Video => &VIDEO,
            Range::Full => &FULL,
        }
    }
}

const HALF: i32 = 1 << 15;

/// One pixel's RGB from its Y, Cb and Cr samples in video range.
#[inline]
pub fn rgb_of(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    rgb_of_in(Range::Video, y, cb, cr)
}

/// One pixel's RGB from its Y, Cb and Cr samples in `range`.
#[inline]
pub fn rgb_of_in(range: Range, y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let k = range.coefficients();
    let (y, cb, cr) = (
        (y as i32 - k.black) * k.y_gain,
        cb as i32 - 128,
        cr as i32 - 128,
    );
    let c = |v: i32| ((v + HALF) >> 16).clamp(0, 255) as u8;
    [
        c(y + k.cr_r * cr),
        c(y + k.cb_g * cb + k.cr_g * cr),
        c(y + k.cb_b * cb),
    ]
}

#[inline]
fn luma(k: &Coefficients, p: &[u8]) -> u8 {
    let m = &k.to_yuv;
    let v = m[0][0] * p[0] as i32 + m[0][1] * p[1] as i32 + m[0][2] * p[2] as i32;
    (k.black + ((v + HALF) >> 16)).clamp(0, 255) as u8
}

#[inline]
fn chroma(k: &Coefficients, row: usize, sum: [i32; 3], n: i32) -> u8 {
    let m = &k.to_yuv;
    let v = m[row][0] * sum[0] + m[row][1] * sum[1] + m[row][2] * sum[2];
    // The mean over `n` pixels, rounded: floor((v / n + 0.5) / 2^16).
    (128 + (v + HALF * n).div_euclid(n << 16)).clamp(0, 255) as u8
}

/// [`chroma`] of four pixels: `floor(v / 4 / 2^16 + 0.5)` as one shift.
#[inline]
fn chroma4(k: &Coefficients, row: usize, sum: [i32; 3]) -> u8 {
    let m = &k.to_yuv;
    let v = m[row][0] * sum[0] + m[row][1] * sum[1] + m[row][2] * sum[2];
    (128 + ((v + HALF * 4) >> 18)).clamp(0, 255) as u8
}

/// `rect` widened to even coordinates (a 4:2:0 chroma sample covers a 2x2 block) and clipped to
/// the `w` x `h` picture.
pub fn even(rect: Rect, w: u32, h: u32) -> Rect {
    let (x0, y0, x1, y1) = rect;
    (
        (x0 & !1).min(w),
        (y0 & !1).min(h),
        (x1 + (x1 & 1)).min(w),
        (y1 + (y1 & 1)).min(h),
    )
}

/// The planes of a 4:2:0 picture, to read from: luma, then each chroma plane with its stride,
/// and `step`, the bytes between two samples of one chroma plane (1 for I420's separate planes, 2
/// for NV12's interleaved pairs, with `cr` starting one byte after `cb`).
pub struct Planes<'a> {
    /// Luma and its stride.
    pub y: (&'a [u8], usize),
    /// Cb from its first sample, and its stride.
    pub cb: (&'a [u8], usize),
    /// Cr from its first sample, and its stride.
    pub cr: (&'a [u8], usize),
    /// Bytes from one chroma sample to the next in a row.
    pub step: usize,
    /// Where the samples lie.
    pub range: Range,
}

/// Writes the RGB pixels of `rect` of the 4:2:0 picture `p` into the `w`-wide, row-packed `rgb`
/// (each chroma sample used for its 2x2 block, as FFmpeg's scaler does on an unscaled
/// conversion). Nothing outside `rect` is written.
pub fn rgb_rect(p: &Planes, rect: Rect, rgb: &mut [u8], w: usize) {
    rgb_rect_at(p, rect, rgb, w, (0, 0));
}

/// [`rgb_rect`] into a `w`-wide buffer that holds the picture from pixel `origin` on: pixel
/// `(x, y)` goes to `((y - origin.1) * w + x - origin.0) * 3`.
pub fn rgb_rect_at(p: &Planes, rect: Rect, rgb: &mut [u8], w: usize, (ox, oy): (usize, usize)) {
    let (x0, x1) = (rect.0 as usize, rect.2 as usize);
    for row in rect.1 as usize..rect.3 as usize {
        rgb_row(p, row, (x0, x1), &mut rgb[((row - oy) * w + x0 - ox) * 3..]);
    }
}

/// Appends the RGB pixels of `rect` of the 4:2:0 picture `p` to `out`, row after row, the
/// rectangle's width a row: the pixels [`rgb_rect`] writes.
pub fn append_rgb_rect(p: &Planes, (x0, y0, x1, y1): Rect, out: &mut Vec<u8>) {
    let start = out.len();
    let w = (x1 - x0) as usize;
    out.resize(start + w * (y1 - y0) as usize * 3, 0);
    let origin = (x0 as usize, y0 as usize);
    rgb_rect_at(p, (x0, y0, x1, y1), &mut out[start..], w, origin);
}

/// Pixels a block of [`rgb_blocks`] holds: sixteen, two steps of eight 32-bit lanes.
const BLOCK: usize = 16;

/// Pixels `x0..x1` of row `row` of `p` in RGB, into the start of `rgb`.
fn rgb_row(p: &Planes, row: usize, (x0, x1): (usize, usize), rgb: &mut [u8]) {
    if x0 >= x1 {
        return;
    }
    let ((yp, ys), (cb, cbs), (cr, crs)) = (p.y, p.cb, p.cr);
    let k = p.range.coefficients();
    let luma = &yp[row * ys..][..x1];
    let (cb, cr) = (&cb[row / 2 * cbs..], &cr[row / 2 * crs..]);
    // The chroma terms once for the (one or two) pixels sharing a sample: the same arithmetic
    // as `rgb_of`.
    let terms = |cx: usize| {
        let i = cx * p.step;
        let (u, v) = (cb[i] as i32 - 128, cr[i] as i32 - 128);
        (k.cr_r * v, k.cb_g * u + k.cr_g * v, k.cb_b * u)
    };
    let pixel = |out: &mut [u8], y: u8, (r, g, b): (i32, i32, i32)| {
        let y = (y as i32 - k.black) * k.y_gain;
        out.copy_from_slice(&[clip8(y + r), clip8(y + g), clip8(y + b)]);
    };
    let out = &mut rgb[..(x1 - x0) * 3];
    // An odd first pixel shares its sample with the pixel before it, outside the row.
    let (mut x, mut o) = (x0, 0);
    if x % 2 == 1 {
        pixel(&mut out[..3], luma[x], terms(x / 2));
        (x, o) = (x + 1, 3);
    }
    // Whole blocks, then whole pairs, then an odd last pixel.
    let blocks = (x1 - x) / BLOCK;
    if blocks > 0 {
        let row = RowBlocks {
            k,
            luma: &luma[x..x + blocks * BLOCK],
            cb: &cb[x / 2 * p.step..],
            cr: &cr[x / 2 * p.step..],
            step: p.step,
        };
        let done = rgb_blocks(&row, &mut out[o..o + blocks * BLOCK * 3]);
        (x, o) = (x + done, o + done * 3);
    }
    let pairs = (x1 - x) / 2;
    for (k, (pair, ys)) in out[o..o + pairs * 6]
        .chunks_exact_mut(6)
        .zip(luma[x..x + pairs * 2].chunks_exact(2))
        .enumerate()
    {
        let t = terms(x / 2 + k);
        pixel(&mut pair[..3], ys[0], t);
        pixel(&mut pair[3..], ys[1], t);
    }
    (x, o) = (x + pairs * 2, o + pairs * 6);
    if x < x1 {
        pixel(&mut out[o..o + 3], luma[x], terms(x / 2));
    }
}

/// A 16.16 fixed-point value rounded to a byte, as `rgb_of` does.
#[inline(always)]
fn clip8(v: i32) -> u8 {
    ((v + HALF) >> 16).clamp(0, 255) as u8
}

/// The whole blocks of a row to convert: `luma` from an even pixel, a multiple of [`BLOCK`]
/// long, and the chroma samples from the matching ones, `step` bytes apart.
struct RowBlocks<'a> {
    k: &'a Coefficients,
    luma: &'a [u8],
    cb: &'a [u8],
    cr: &'a [u8],
    step: usize,
}

/// Converts `row`'s blocks into `out` and says how many pixels it converted: all of them, or
/// none for a chroma step other than I420's 1 and NV12's 2. The arithmetic is
/// [`rgb_of_in`]'s, pixel for pixel.
///
/// Why blocks: pixel by pixel the loop stayed scalar, and a 1080p I420 frame took 5 ms (the host
/// API's conversion for detection; BENCHMARKS.md, "A host's 4:2:0 frames to RGB"). On
/// fixed-size blocks the compiler computes eight or sixteen pixels at once, with AVX2 where the
/// processor has it.
fn rgb_blocks(row: &RowBlocks, out: &mut [u8]) -> usize {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: `rgb_blocks_avx2` is safe code compiled with AVX2 enabled; calling it is
        // sound on a processor that has AVX2, which was just checked.
        return unsafe { rgb_blocks_avx2(row, out) };
    }
    rgb_blocks_portable(row, out)
}

/// [`rgb_blocks`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn rgb_blocks_avx2(row: &RowBlocks, out: &mut [u8]) -> usize {
    rgb_blocks_portable(row, out)
}

/// [`rgb_blocks`] for any processor (inlined into the AVX2 copy): I420's chroma samples side by
/// side or NV12's every other byte, each a copy of its own so that the loads are fixed.
#[inline(always)]
fn rgb_blocks_portable(row: &RowBlocks, out: &mut [u8]) -> usize {
    match row.step {
        1 => rgb_blocks_stepped::<1>(row, out),
        2 => rgb_blocks_stepped::<2>(row, out),
        _ => 0,
    }
}

/// [`rgb_blocks`] with chroma samples `STEP` bytes apart.
#[inline(always)]
fn rgb_blocks_stepped<const STEP: usize>(row: &RowBlocks, out: &mut [u8]) -> usize {
    let RowBlocks {
        k, luma, cb, cr, ..
    } = *row;
    // The chroma bytes a block reads: its eight samples, `STEP` apart.
    let span = (BLOCK / 2 - 1) * STEP + 1;
    let blocks = luma.len() / BLOCK;
    for b in 0..blocks {
        let ys = &luma[b * BLOCK..][..BLOCK];
        let at = b * BLOCK / 2 * STEP;
        let (cbs, crs) = (&cb[at..at + span], &cr[at..at + span]);
        let (mut u, mut v) = ([0i32; BLOCK], [0i32; BLOCK]);
        // Each chroma sample twice, for the two pixels it covers.
        for i in 0..BLOCK {
            u[i] = cbs[i / 2 * STEP] as i32 - 128;
            v[i] = crs[i / 2 * STEP] as i32 - 128;
        }
        let mut rgb = [[0u8; 3]; BLOCK];
        for i in 0..BLOCK {
            let y = (ys[i] as i32 - k.black) * k.y_gain;
            rgb[i] = [
                clip8(y + k.cr_r * v[i]),
                clip8(y + k.cb_g * u[i] + k.cr_g * v[i]),
                clip8(y + k.cb_b * u[i]),
            ];
        }
        out[b * BLOCK * 3..][..BLOCK * 3].copy_from_slice(rgb.as_flattened());
    }
    blocks * BLOCK
}

/// Writes the RGB pixels of `rect` (of the `w`-wide, row-packed `rgb`) into the luma plane
/// `y` (`stride` bytes a row), in `range`.
pub fn luma_rect(rgb: &[u8], w: usize, rect: Rect, y: &mut [u8], stride: usize, range: Range) {
    let k = range.coefficients();
    let (x0, y0, x1, y1) = (
        rect.0 as usize,
        rect.1 as usize,
        rect.2 as usize,
        rect.3 as usize,
    );
    for row in y0..y1 {
        let src = &rgb[(row * w + x0) * 3..(row * w + x1) * 3];
        let dst = &mut y[row * stride + x0..row * stride + x1];
        for (o, p) in dst.iter_mut().zip(src.chunks_exact(3)) {
            *o = luma(k, p);
        }
    }
}

/// Writes one chroma component of `rect` (even coordinates, see [`even`]) into its 4:2:0 plane:
/// `plane` 1 is Cb, 2 is Cr (FFmpeg's plane numbers), each sample from the mean colour of its
/// 2x2 block. Sample `(cx, cy)` goes to `out[cy * stride + cx * step]`: `step` 1 for a planar
/// format, 2 for NV12's interleaved pairs (with `out` starting at the pair's Cb or Cr byte).
/// Samples are written in `range`.
pub fn chroma_rect(
    rgb: &[u8],
    (w, h): (usize, usize),
    rect: Rect,
    (plane, step): (usize, usize),
    (out, stride): (&mut [u8], usize),
    range: Range,
) {
    let k = range.coefficients();
    let (x0, y0, x1, y1) = (
        rect.0 as usize,
        rect.1 as usize,
        rect.2 as usize,
        rect.3 as usize,
    );
    for cy in y0 / 2..y1.div_ceil(2) {
        // Whole 2x2 blocks (every sample but those on an odd edge) first: their four pixels are
        // two adjacent pairs of two rows, and the mean's division is a shift.
        let (cx0, cx1) = (x0 / 2, x1.div_ceil(2));
        let whole_end = if 2 * cy + 1 < h { cx1.min(w / 2) } else { cx0 };
        let whole_end = whole_end.max(cx0);
        if whole_end > cx0 {
            let top = &rgb[(2 * cy * w + 2 * cx0) * 3..(2 * cy * w + 2 * whole_end) * 3];
            let bottom =
                &rgb[((2 * cy + 1) * w + 2 * cx0) * 3..((2 * cy + 1) * w + 2 * whole_end) * 3];
            let row = &mut out[cy * stride..];
            for (i, (t, b)) in top.chunks_exact(6).zip(bottom.chunks_exact(6)).enumerate() {
                let sum = |c: usize| t[c] as i32 + t[c + 3] as i32 + b[c] as i32 + b[c + 3] as i32;
                row[(cx0 + i) * step] = chroma4(k, plane, [sum(0), sum(1), sum(2)]);
            }
        }
        for cx in whole_end..cx1 {
            let (mut sum, mut n) = ([0i32; 3], 0);
            for yy in 2 * cy..(2 * cy + 2).min(h) {
                for xx in 2 * cx..(2 * cx + 2).min(w) {
                    let p = &rgb[(yy * w + xx) * 3..(yy * w + xx) * 3 + 3];
                    for c in 0..3 {
                        sum[c] += p[c] as i32;
                    }
                    n += 1;
                }
            }
            out[cy * stride + cx * step] = chroma(k, plane, sum, n.max(1));
        }
    }
}

#[cfg(all(test, feature = "video"))]
mod tests {
    use super::*;
    use ff::format::Pixel;
    use ff::software::scaling;
    use ff::util::frame::Video;
    use ffmpeg_next as ff;

    /// A smooth, colourful test picture (row-packed RGB).
    fn picture(w: usize, h: usize) -> Vec<u8> {
        (0..w * h)
            .flat_map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                [
                    (128.0 + 120.0 * (x / 9.0).sin()) as u8,
                    (128.0 + 120.0 * (y / 7.0).cos()) as u8,
                    ((x + y) * 2.0).min(255.0) as u8,
                ]
            })
            .collect()
    }

    #[test]
    fn rectangles_match_ffmpegs_own_conversion_and_nothing_else_changes() {
        // FFmpeg's `yuvj420p` is its full-range 4:2:0.
        for (range, format) in [
            (Range::Video, Pixel::YUV420P),
            (Range::Full, Pixel::YUVJ420P),
        ] {
            matches_ffmpeg(range, format);
        }
    }

    fn matches_ffmpeg(range: Range, format: Pixel) {
        let _ = ff::init();
        let (w, h) = (64usize, 48usize);
        let rgb = picture(w, h);
        // FFmpeg's conversion of the whole picture: the reference.
        let mut src = Video::new(Pixel::RGB24, w as u32, h as u32);
        let stride = src.stride(0);
        for y in 0..h {
            src.data_mut(0)[y * stride..y * stride + w * 3]
                .copy_from_slice(&rgb[y * w * 3..(y + 1) * w * 3]);
        }
        let mut want = Video::empty();
        scaling::Context::get(
            Pixel::RGB24,
            w as u32,
            h as u32,
            format,
            w as u32,
            h as u32,
            scaling::Flags::BILINEAR,
        )
        .unwrap()
        .run(&src, &mut want)
        .unwrap();
        // Ours, into planes that start grey, over an odd rectangle widened to even.
        let rect = even((5, 7, 41, 33), w as u32, h as u32);
        assert_eq!(rect, (4, 6, 42, 34));
        let (mut y, mut u, mut v) = (
            vec![7u8; w * h],
            vec![9u8; w * h / 4],
            vec![11u8; w * h / 4],
        );
        luma_rect(&rgb, w, rect, &mut y, w, range);
        chroma_rect(&rgb, (w, h), rect, (1, 1), (&mut u, w / 2), range);
        chroma_rect(&rgb, (w, h), rect, (2, 1), (&mut v, w / 2), range);
        let mut worst = [0i32; 3];
        for (plane, (ours, sub, fill)) in [(&y, 1usize, 7u8), (&u, 2, 9), (&v, 2, 11)]
            .into_iter()
            .enumerate()
        {
            let (pw, ph) = (w / sub, h / sub);
            let (ws, theirs) = (want.stride(plane), want.data(plane));
            for py in 0..ph {
                for px in 0..pw {
                    let inside = px * sub >= rect.0 as usize
                        && px * sub < rect.2 as usize
                        && py * sub >= rect.1 as usize
                        && py * sub < rect.3 as usize;
                    let got = ours[py * pw + px];
                    if inside {
                        let d = (got as i32 - theirs[py * ws + px] as i32).abs();
                        worst[plane] = worst[plane].max(d);
                    } else {
                        assert_eq!(got, fill, "plane {plane} ({px}, {py}) outside was written");
                    }
                }
            }
        }
        // Luma to the rounding; chroma within the scaler's own filtering of the 2x2 block.
        assert!(worst[0] <= 1, "{range:?}: luma off by {}", worst[0]);
        assert!(
            worst[1] <= 3 && worst[2] <= 3,
            "{range:?}: chroma off by {worst:?}"
        );
    }

    #[test]
    fn known_colours_land_on_their_codes_in_either_range() {
        let (mut y, mut u, mut v) = (vec![0u8; 4], vec![0u8; 1], vec![0u8; 1]);
        for (range, rgb, want) in [
            (Range::Video, [0u8, 0, 0], [16u8, 128, 128]),
            (Range::Video, [255, 255, 255], [235, 128, 128]),
            (Range::Video, [255, 0, 0], [81, 90, 240]),
            (Range::Video, [0, 0, 255], [41, 240, 110]),
            (Range::Full, [0, 0, 0], [0, 128, 128]),
            (Range::Full, [255, 255, 255], [255, 128, 128]),
            (Range::Full, [255, 0, 0], [76, 85, 255]),
            (Range::Full, [0, 0, 255], [29, 255, 107]),
        ] {
            let px = rgb.repeat(4);
            luma_rect(&px, 2, (0, 0, 2, 2), &mut y, 2, range);
            chroma_rect(&px, (2, 2), (0, 0, 2, 2), (1, 1), (&mut u, 1), range);
            chroma_rect(&px, (2, 2), (0, 0, 2, 2), (2, 1), (&mut v, 1), range);
            assert_eq!([y[0], u[0], v[0]], want, "{range:?} {rgb:?}");
            assert!(y.iter().all(|&l| l == want[0]));
        }
    }
}

#[cfg(test)]
mod round_trip {
    use super::*;

    #[test]
    fn colours_survive_the_round_trip_within_the_quantisation() {
        let colours = [
            [0u8, 0, 0],
            [255, 255, 255],
            [255, 0, 0],
            [0, 0, 255],
            [30, 140, 200],
        ];
        for (range, rgb) in [Range::Video, Range::Full]
            .into_iter()
            .flat_map(|r| colours.map(|c| (r, c)))
        {
            let px = rgb.repeat(4);
            let (mut y, mut u, mut v) = ([0u8; 4], [0u8; 1], [0u8; 1]);
            luma_rect(&px, 2, (0, 0, 2, 2), &mut y, 2, range);
            chroma_rect(&px, (2, 2), (0, 0, 2, 2), (1, 1), (&mut u, 1), range);
            chroma_rect(&px, (2, 2), (0, 0, 2, 2), (2, 1), (&mut v, 1), range);
            let back = rgb_of_in(range, y[0], u[0], v[0]);
            for c in 0..3 {
                assert!(
                    (back[c] as i32 - rgb[c] as i32).abs() <= 3,
                    "{range:?} {rgb:?} -> {back:?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod rect_tests {
    use super::*;

    /// The block conversion (whole rows of wide pictures) gives `rgb_of_in`'s pixel for every
    /// pixel, in either range, planar or interleaved chroma, on generated pictures and
    /// rectangles: odd edges, rectangles shorter and longer than a block, rows whose blocks start
    /// at odd pixels; and writes nothing outside the rectangle.
    #[test]
    fn blocks_give_rgb_of_in_exactly_on_generated_cases() {
        let mut rng = crate::TestRng::new(20261207);
        for case in 0..200 {
            let (w, h) = (1 + rng.below(90) as usize, 1 + rng.below(6) as usize);
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let mut bytes =
                |n: usize| -> Vec<u8> { (0..n).map(|_| rng.below(256) as u8).collect() };
            let (luma, cb, cr) = (bytes(w * h), bytes(cw * ch), bytes(cw * ch));
            let nv: Vec<u8> = cb.iter().zip(&cr).flat_map(|(a, b)| [*a, *b]).collect();
            let range = if case % 2 == 0 {
                Range::Video
            } else {
                Range::Full
            };
            let planar = Planes {
                y: (&luma, w),
                cb: (&cb, cw),
                cr: (&cr, cw),
                step: 1,
                range,
            };
            let interleaved = Planes {
                y: (&luma, w),
                cb: (&nv, cw * 2),
                cr: (&nv[1..], cw * 2),
                step: 2,
                range,
            };
            let x0 = rng.below(w as u32);
            let x1 = x0 + 1 + rng.below(w as u32 - x0);
            let y0 = rng.below(h as u32);
            let y1 = y0 + 1 + rng.below(h as u32 - y0);
            let rect = (x0, y0, x1, y1);
            for p in [&planar, &interleaved] {
                let mut out = vec![7u8; w * h * 3];
                rgb_rect(p, rect, &mut out, w);
                for y in 0..h {
                    for x in 0..w {
                        let inside = (x0 as usize..x1 as usize).contains(&x)
                            && (y0 as usize..y1 as usize).contains(&y);
                        let c = (y / 2) * cw + x / 2;
                        let want = if inside {
                            rgb_of_in(range, luma[y * w + x], cb[c], cr[c])
                        } else {
                            [7; 3]
                        };
                        let got = &out[(y * w + x) * 3..][..3];
                        assert_eq!(got, want, "case {case}: {w}x{h} {rect:?} ({x}, {y})");
                    }
                }
            }
        }
    }

    /// `rgb_rect` on any rectangle (odd edges, NV12's interleaved chroma) writes exactly what
    /// `rgb_of` gives each pixel inside it, and nothing outside.
    #[test]
    fn rgb_rect_is_rgb_of_pixel_by_pixel_and_writes_only_the_rectangle() {
        let (w, h) = (13usize, 9usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let luma: Vec<u8> = (0..w * h).map(|i| (i * 37 % 256) as u8).collect();
        let cb: Vec<u8> = (0..cw * ch).map(|i| (i * 53 % 256) as u8).collect();
        let cr: Vec<u8> = (0..cw * ch).map(|i| (i * 91 % 256) as u8).collect();
        let nv: Vec<u8> = cb.iter().zip(&cr).flat_map(|(a, b)| [*a, *b]).collect();
        let planar = Planes {
            y: (&luma, w),
            cb: (&cb, cw),
            cr: (&cr, cw),
            step: 1,
            range: Range::Video,
        };
        let interleaved = Planes {
            y: (&luma, w),
            cb: (&nv, cw * 2),
            cr: (&nv[1..], cw * 2),
            step: 2,
            range: Range::Video,
        };
        for p in [&planar, &interleaved] {
            for rect in [
                (0, 0, 13, 9),
                (1, 1, 12, 8),
                (3, 2, 4, 7),
                (5, 0, 5, 9),
                (12, 8, 13, 9),
            ] {
                let mut out = vec![7u8; w * h * 3];
                rgb_rect(p, rect, &mut out, w);
                for y in 0..h {
                    for x in 0..w {
                        let got = &out[(y * w + x) * 3..][..3];
                        let inside = (rect.0 as usize..rect.2 as usize).contains(&x)
                            && (rect.1 as usize..rect.3 as usize).contains(&y);
                        let (c, r) = ((y / 2) * cw + x / 2, luma[y * w + x]);
                        let want = if inside {
                            rgb_of(r, cb[c], cr[c])
                        } else {
                            [7; 3]
                        };
                        assert_eq!(got, want, "{rect:?} ({x}, {y})");
                    }
                }
            }
        }
    }
}

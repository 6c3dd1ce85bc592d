//! A clip frame in flight: the decoded 4:2:0 picture itself wherever the encoder can take it
//! back, RGB only where it cannot.
//!
//! Why: a clip frame waits in the engine for a detection worker, for the tracker's look-ahead and
//! for the encoder; with an RGB copy beside the decoded picture each 1080p frame in flight was
//! 9.3 MB, and only detection reads the RGB. Kept as YUV, a frame is 3.1 MB; the detection worker
//! converts it to RGB into a scratch buffer of its own thread (FFmpeg's scaler, the same
//! conversion the decoding side made before, so detection sees the same pixels), and a frame
//! that is not detected is never converted. The encoder paints on RGB made from the YUV picture
//! only inside the redacted rectangles, and writes those rectangles back (see `frame::yuv`).

use std::cell::RefCell;

use ff::format::Pixel;
use ff::frame;
use ff::software::scaling;
use ffmpeg_next as ff;
use image::RgbImage;

use crate::engine::{narrow10, Luma, Picture};
use crate::frame::yuv;
use crate::redact::{self, Region};

/// A clip frame's pixels.
pub(crate) enum ClipPicture {
    /// A copy of the decoded picture, YUV 4:2:0 at 8 or 10 bits a sample, in the encoder's
    /// size and format (see `decode::copy_picture`).
    Yuv(frame::Video),
    /// RGB: a lost frame's stand-in, or a decoded picture the encoder cannot take back (another
    /// pixel format or size).
    Rgb(RgbImage),
}

impl Clone for ClipPicture {
    fn clone(&self) -> ClipPicture {
        match self {
            ClipPicture::Rgb(img) => ClipPicture::Rgb(img.clone()),
            ClipPicture::Yuv(f) => {
                match super::decode::copy_picture(f, None, f.width(), f.height()) {
                    Some(copy) => ClipPicture::Yuv(copy),
                    // Out of memory for the copy: RGB instead, which the encoder takes whole.
                    None => ClipPicture::Rgb(rgb_of_yuv(f).unwrap_or_default()),
                }
            }
        }
    }
}

impl Picture for ClipPicture {
    fn dimensions(&self) -> (u32, u32) {
        match self {
            ClipPicture::Rgb(img) => img.dimensions(),
            ClipPicture::Yuv(f) => (f.width(), f.height()),
        }
    }

    fn with_rgb(&self, f: &mut dyn FnMut(&RgbImage)) {
        match self {
            ClipPicture::Rgb(img) => f(img),
            ClipPicture::Yuv(yuv) => SCRATCH.with(|s| {
                let mut s = s.borrow_mut();
                if let Some(img) = s.convert(yuv) {
                    f(img);
                }
            }),
        }
    }

    fn with_luma(&self, f: &mut dyn FnMut(Luma<'_>)) {
        match self {
            ClipPicture::Rgb(img) => f(Luma::rgb(img)),
            // A copy is YUV420P or YUV420P10LE (`decode::copy_format`) in the range its colour
            // range says.
            ClipPicture::Yuv(yuv) if yuv.format() == Pixel::YUV420P10LE => f(Luma::Plane10 {
                data: yuv.data(0),
                stride: yuv.stride(0),
                full_range: range_of(yuv) == yuv::Range::Full,
            }),
            ClipPicture::Yuv(yuv) => f(Luma::Plane {
                data: yuv.data(0),
                stride: yuv.stride(0),
                full_range: range_of(yuv) == yuv::Range::Full,
            }),
        }
    }
}

impl ClipPicture {
    /// The frame as an RGB image of its own (a copy when it is YUV; an empty image when FFmpeg
    /// cannot convert it, which a host-API push then refuses).
    pub fn into_rgb(self) -> RgbImage {
        match self {
            ClipPicture::Rgb(img) => img,
            ClipPicture::Yuv(f) => rgb_of_yuv(&f).unwrap_or_default(),
        }
    }

    /// Paints `regions`: on RGB directly; on YUV rectangle by rectangle through `scratch`, RGB
    /// of one rectangle at a time (see [`paint_yuv`]).
    pub fn paint(&mut self, regions: &[Region], scratch: &mut Vec<u8>) {
        match self {
            ClipPicture::Rgb(img) => redact::redact_parallel(img, regions),
            ClipPicture::Yuv(f) => paint_yuv(f, regions, scratch),
        }
    }
}

/// The planes of a 4:2:0 picture.
fn planes_of(f: &frame::Video) -> yuv::Planes<'_> {
    yuv::Planes {
        y: (f.data(0), f.stride(0)),
        cb: (f.data(1), f.stride(1)),
        cr: (f.data(2), f.stride(2)),
        step: 1,
        range: range_of(f),
    }
}

/// Where a 4:2:0 copy's samples lie: its colour range says (`decode::copy_picture` keeps the
/// decoded picture's).
pub(super) fn range_of(f: &frame::Video) -> yuv::Range {
    if f.color_range() == ff::color::Range::JPEG {
        yuv::Range::Full
    } else {
        yuv::Range::Video
    }
}

/// A 4:2:0 clip picture, for `frame::paint_rects`.
struct YuvPixels<'a>(&'a mut frame::Video);

impl crate::frame::RectPixels for YuvPixels<'_> {
    fn size(&self) -> (u32, u32) {
        (self.0.width(), self.0.height())
    }

    fn is_yuv(&self) -> bool {
        true
    }

    fn read_within(&self, rect: yuv::Rect, out: &mut [u8], (wx0, wy0, wx1, _): yuv::Rect) {
        let (width, origin) = ((wx1 - wx0) as usize, (wx0 as usize, wy0 as usize));
        yuv::rgb_rect_at(&planes_of(self.0), rect, out, width, origin);
    }

    fn write(&mut self, (x0, y0, x1, y1): yuv::Rect, rgb: &[u8]) {
        let f = &mut *self.0;
        let (rw, rh) = ((x1 - x0) as usize, (y1 - y0) as usize);
        let (x0, y0) = (x0 as usize, y0 as usize);
        let whole = (0, 0, rw as u32, rh as u32);
        let (ys, range) = (f.stride(0), range_of(f));
        yuv::luma_rect(
            rgb,
            rw,
            whole,
            &mut f.data_mut(0)[y0 * ys + x0..],
            ys,
            range,
        );
        for plane in [1, 2] {
            let stride = f.stride(plane);
            let out = &mut f.data_mut(plane)[y0 / 2 * stride + x0 / 2..];
            yuv::chroma_rect(rgb, (rw, rh), whole, (plane, 1), (out, stride), range);
        }
    }
}

/// Paints `regions` on a 4:2:0 picture, one changed rectangle at a time through `scratch`: the
/// same pixels as painting its RGB picture whole and converting the changed rectangles back
/// (see `frame::paint_rects`).
fn paint_yuv(f: &mut frame::Video, regions: &[Region], scratch: &mut Vec<u8>) {
    if f.format() == Pixel::YUV420P10LE {
        crate::frame::paint_rects(&mut Yuv10Pixels(f), regions, scratch, true);
    } else {
        crate::frame::paint_rects(&mut YuvPixels(f), regions, scratch, true);
    }
}

/// A 10-bit 4:2:0 clip picture (`yuv420p10le`), for `frame::paint_rects`: its samples are read
/// as 8-bit ones (rounded), and what is painted is written back as 8-bit samples widened to 10
/// bits, where it changed a sample's 8-bit value.
///
/// Why 8 bits inside the rectangles: painting replaces a face with a blur, mosaic or fill, so
/// their depth carries nothing; the point of a 10-bit output is every pixel outside them, which
/// keeps its samples exactly. A sample inside a rectangle but outside the painted area (a
/// rectangle's corners around an ellipse) keeps its own 10 bits where the round trip through RGB
/// gives back its 8-bit value, as it mostly does.
struct Yuv10Pixels<'a>(&'a mut frame::Video);

impl Yuv10Pixels<'_> {
    /// Sample `(x, y)` of `plane`.
    fn sample(&self, plane: usize, x: usize, y: usize) -> u16 {
        let at = y * self.0.stride(plane) + 2 * x;
        let d = self.0.data(plane);
        u16::from_le_bytes([d[at], d[at + 1]])
    }

    /// Writes the 8-bit samples `new` (`w` a row) into `plane` from sample `(x0, y0)` on,
    /// widened to 10 bits, but where a sample's own 10 bits round to the same 8-bit value.
    fn widen_into(&mut self, plane: usize, (x0, y0): (usize, usize), new: &[u8], w: usize) {
        let stride = self.0.stride(plane);
        let data = self.0.data_mut(plane);
        for (j, row) in new.chunks_exact(w).enumerate() {
            let line = &mut data[(y0 + j) * stride + 2 * x0..][..2 * w];
            for (s, &v) in line.chunks_exact_mut(2).zip(row) {
                if narrow10(u16::from_le_bytes([s[0], s[1]])) != v {
                    s.copy_from_slice(&(u16::from(v) << 2).to_le_bytes());
                }
            }
        }
    }
}

impl crate::frame::RectPixels for Yuv10Pixels<'_> {
    fn size(&self) -> (u32, u32) {
        (self.0.width(), self.0.height())
    }

    fn is_yuv(&self) -> bool {
        true
    }

    fn read_within(&self, (x0, y0, x1, y1): yuv::Rect, out: &mut [u8], window: yuv::Rect) {
        let (wx0, wy0, wx1, _) = window;
        let width = (wx1 - wx0) as usize;
        let range = range_of(self.0);
        for y in y0 as usize..y1 as usize {
            for x in x0 as usize..x1 as usize {
                let (cx, cy) = (x / 2, y / 2);
                let px = yuv::rgb_of_in(
                    range,
                    narrow10(self.sample(0, x, y)),
                    narrow10(self.sample(1, cx, cy)),
                    narrow10(self.sample(2, cx, cy)),
                );
                let at = ((y - wy0 as usize) * width + x - wx0 as usize) * 3;
                out[at..at + 3].copy_from_slice(&px);
            }
        }
    }

    fn write(&mut self, (x0, y0, x1, y1): yuv::Rect, rgb: &[u8]) {
        let (rw, rh) = ((x1 - x0) as usize, (y1 - y0) as usize);
        let (x0, y0) = (x0 as usize, y0 as usize);
        let whole = (0, 0, rw as u32, rh as u32);
        let range = range_of(self.0);
        let mut luma = vec![0u8; rw * rh];
        yuv::luma_rect(rgb, rw, whole, &mut luma, rw, range);
        self.widen_into(0, (x0, y0), &luma, rw);
        let (cw, ch) = (rw.div_ceil(2), rh.div_ceil(2));
        for plane in [1, 2] {
            let mut chroma = vec![0u8; cw * ch];
            yuv::chroma_rect(rgb, (rw, rh), whole, (plane, 1), (&mut chroma, cw), range);
            self.widen_into(plane, (x0 / 2, y0 / 2), &chroma, cw);
        }
    }
}

/// A detection thread's conversion to RGB: FFmpeg's scaler and its buffers, kept for the next
/// frame of the same size.
#[derive(Default)]
struct Scratch {
    scaler: Option<scaling::Context>,
    /// Whether `scaler` reads full range (see [`reads_full_range`]).
    full: bool,
    /// The scaler's own output, for widths it cannot write packed (see [`Scratch::convert`]).
    rgb_frame: Option<frame::Video>,
    image: RgbImage,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Bytes kept past the end of a directly converted picture, so that a scaler writing a few bytes
/// beyond the last row (SIMD code works in blocks of pixels) stays inside the buffer.
const SLACK: usize = 64;

impl Scratch {
    /// `yuv` in RGB, or `None` when FFmpeg refuses (the frame then fails detection, and is
    /// covered whole).
    ///
    /// Straight into the image's buffer where that gives FFmpeg's bytes ([`packs_exactly`]):
    /// that saves a frame-sized RGB copy per converting thread (6.2 MB at 1080p, 25 MB at 4K)
    /// and a copy of every frame. Otherwise through a frame of FFmpeg's own, and copied.
    fn convert(&mut self, yuv: &frame::Video) -> Option<&RgbImage> {
        let (w, h, format) = (yuv.width(), yuv.height(), yuv.format());
        let full = range_of(yuv) == yuv::Range::Full;
        let fits = |c: &scaling::Context| {
            (c.input().format, c.input().width, c.input().height) == (format, w, h)
        };
        if !(self.scaler.as_ref().is_some_and(fits) && self.full == full) {
            (self.scaler, self.rgb_frame) = (None, None);
            let mut made =
                scaling::Context::get(format, w, h, Pixel::RGB24, w, h, scaling::Flags::BILINEAR)
                    .ok()?;
            if full && !reads_full_range(&mut made) {
                return None;
            }
            (self.scaler, self.full) = (Some(made), full);
        }
        let scaler = self.scaler.as_mut()?;
        let mut buf = std::mem::take(&mut self.image).into_raw();
        if !packs_exactly(scaler) {
            let rgb = self.rgb_frame.get_or_insert_with(frame::Video::empty);
            scaler.run(yuv, rgb).ok()?;
            self.image = super::decode::rgb_image_of(rgb, Some(buf)).ok()?;
            return Some(&self.image);
        }
        scale_packed(scaler, yuv, &mut buf)?;
        self.image = RgbImage::from_raw(w, h, buf)?;
        Some(&self.image)
    }
}

/// Has `scaler` read its input as full range (0 to 255, JPEG's) rather than video range, its
/// colour matrices left as they are; false where FFmpeg refuses. Its output, RGB, is full range
/// either way.
pub(super) fn reads_full_range(scaler: &mut scaling::Context) -> bool {
    full_range_on(scaler, Side::Input)
}

/// Has `scaler` write its output (4:2:0) in full range, as [`reads_full_range`] for the input.
pub(super) fn writes_full_range(scaler: &mut scaling::Context) -> bool {
    full_range_on(scaler, Side::Output)
}

enum Side {
    Input,
    Output,
}

fn full_range_on(scaler: &mut scaling::Context, side: Side) -> bool {
    let (mut inv_table, mut table) = (std::ptr::null_mut(), std::ptr::null_mut());
    let (mut src_range, mut dst_range) = (0, 0);
    let (mut brightness, mut contrast, mut saturation) = (0, 0, 0);
    // SAFETY: `scaler` is an initialised scaling context of FFmpeg's, valid while borrowed. The
    // getter writes plain integers and two pointers to the context's own four-entry coefficient
    // tables; the setter copies four integers from each of those tables back (FFmpeg's own
    // filters pass them the same way) and rebuilds its tables from them and the ranges.
    unsafe {
        let c = scaler.as_mut_ptr();
        if ff::ffi::sws_getColorspaceDetails(
            c,
            &mut inv_table,
            &mut src_range,
            &mut table,
            &mut dst_range,
            &mut brightness,
            &mut contrast,
            &mut saturation,
        ) < 0
            || inv_table.is_null()
            || table.is_null()
        {
            return false;
        }
        match side {
            Side::Input => src_range = 1,
            Side::Output => dst_range = 1,
        }
        ff::ffi::sws_setColorspaceDetails(
            c, inv_table, src_range, table, dst_range, brightness, contrast, saturation,
        ) >= 0
    }
}

/// Whether [`scale_packed`] gives the same bytes as a conversion into FFmpeg's own frame (rows
/// padded) for this scaler: where its output width is a multiple of 8 pixels, every common video
/// size. At a width of 98 the packed rows came out different (the scaler's SIMD code converts
/// rows in blocks of 8 pixels); the unit test checks the widths that pack.
pub(super) fn packs_exactly(scaler: &scaling::Context) -> bool {
    scaler.output().width.is_multiple_of(8)
}

/// Converts `yuv` with `scaler` (made for exactly its format and size, to RGB24) straight into
/// `buf`, rows packed: `buf` ends up holding exactly 3 × width × height bytes of the scaler's
/// output size. `None` where the scaler was made for another input or output, or FFmpeg fails.
pub(super) fn scale_packed(
    scaler: &mut scaling::Context,
    yuv: &frame::Video,
    buf: &mut Vec<u8>,
) -> Option<()> {
    let input = (
        scaler.input().format,
        scaler.input().width,
        scaler.input().height,
    );
    let (ow, oh) = (scaler.output().width, scaler.output().height);
    if input != (yuv.format(), yuv.width(), yuv.height()) || scaler.output().format != Pixel::RGB24
    {
        return None;
    }
    let row = (ow as usize).checked_mul(3)?;
    let len = row.checked_mul(oh as usize)?;
    let stride = std::ffi::c_int::try_from(row).ok()?;
    let (in_rows, out_rows) = (
        std::ffi::c_int::try_from(yuv.height()).ok()?,
        std::ffi::c_int::try_from(oh).ok()?,
    );
    // Only the slack is zero-filled when the buffer is reused at the same size.
    buf.resize(len + SLACK, 0);
    let null = std::ptr::null_mut();
    let dst: [*mut u8; 4] = [buf.as_mut_ptr(), null, null, null];
    let dst_stride: [std::ffi::c_int; 4] = [stride, 0, 0, 0];
    // SAFETY: the scaler was made for exactly this input (format, width and height, checked
    // above) and for RGB24 output; `yuv`'s data and linesize arrays are its own, valid while it
    // is borrowed, and `in_rows` is its height. The destination is one plane of `out_rows` rows
    // of `stride` = 3 × output width bytes in `buf`, which holds `len` bytes plus `SLACK`, and
    // RGB24 has no other plane. The call writes only into that buffer and returns the rows it
    // wrote.
    let written = unsafe {
        ff::ffi::sws_scale(
            scaler.as_mut_ptr(),
            (*yuv.as_ptr()).data.as_ptr() as *const *const u8,
            (*yuv.as_ptr()).linesize.as_ptr(),
            0,
            in_rows,
            dst.as_ptr(),
            dst_stride.as_ptr(),
        )
    };
    buf.truncate(len);
    (written == out_rows).then_some(())
}

fn rgb_of_yuv(f: &frame::Video) -> Option<RgbImage> {
    SCRATCH.with(|s| s.borrow_mut().convert(f).cloned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::BBox;
    use crate::redact::{Area, Style};

    /// A YUV picture with a gradient, and the same frame as RGB through FFmpeg's scaler.
    fn pictures(w: u32, h: u32) -> (frame::Video, RgbImage) {
        super::super::transcode::init();
        let mut f = frame::Video::new(Pixel::YUV420P, w, h);
        for plane in 0..3 {
            let stride = f.stride(plane);
            let (pw, ph) = if plane == 0 {
                (w, h)
            } else {
                (w.div_ceil(2), h.div_ceil(2))
            };
            let data = f.data_mut(plane);
            for y in 0..ph as usize {
                for x in 0..pw as usize {
                    // Luma across most of its range; chroma near grey, so that no colour
                    // clips in RGB.
                    data[y * stride + x] = match plane {
                        0 => 40 + (x * 5 + y * 3) % 180,
                        _ => 108 + (x * 3 + y + plane * 7) % 40,
                    } as u8;
                }
            }
        }
        let rgb = rgb_of_yuv(&f).expect("conversion");
        (f, rgb)
    }

    /// Converting straight into a packed buffer gives the same bytes as FFmpeg's own frame with
    /// its padded rows, where the output width is a multiple of 8 (the conversions that take that
    /// path): from the formats decoders give, at the same size and scaled. At any width the
    /// buffer is exactly the picture's size.
    #[test]
    fn packed_conversion_equals_the_scalers_own_frame() {
        let cases = [
            (Pixel::YUV420P, (96u32, 64u32), (96u32, 64u32)),
            (Pixel::YUV420P, (64, 2), (64, 2)),
            (Pixel::YUV420P, (1280, 8), (1280, 8)),
            (Pixel::YUV420P, (97, 63), (97, 63)),
            (Pixel::YUV420P, (98, 10), (98, 10)),
            (Pixel::YUV420P, (96, 64), (48, 32)),
            (Pixel::YUV420P, (97, 63), (64, 40)),
            (Pixel::YUVJ420P, (96, 64), (96, 64)),
            (Pixel::YUV422P, (96, 64), (96, 64)),
            (Pixel::YUV444P, (104, 30), (104, 30)),
            (Pixel::YUV420P10LE, (96, 64), (96, 64)),
            (Pixel::NV12, (96, 64), (96, 64)),
            (Pixel::NV12, (96, 64), (200, 100)),
        ];
        for (format, (w, h), (ow, oh)) in cases {
            let (yuv420, _) = pictures(w, h);
            let mut to_format =
                scaling::Context::get(Pixel::YUV420P, w, h, format, w, h, scaling::Flags::BILINEAR)
                    .unwrap();
            let mut f = frame::Video::empty();
            to_format.run(&yuv420, &mut f).unwrap();
            let mut scaler =
                scaling::Context::get(format, w, h, Pixel::RGB24, ow, oh, scaling::Flags::BILINEAR)
                    .unwrap();
            let mut own = frame::Video::empty();
            scaler.run(&f, &mut own).unwrap();
            let expected = super::super::decode::rgb_image_of(&own, None).unwrap();
            let mut buf = vec![7u8; 5];
            scale_packed(&mut scaler, &f, &mut buf).unwrap();
            assert_eq!(
                buf.len(),
                (ow * oh * 3) as usize,
                "{format:?} {w}x{h} to {ow}x{oh}"
            );
            // Other widths are converted through the frame; at 98 the rows differ.
            if packs_exactly(&scaler) {
                assert!(
                    buf == expected.as_raw().as_slice(),
                    "{format:?} {w}x{h} to {ow}x{oh}"
                );
            }
        }
        // A scaler made for another input is refused.
        let (other, _) = pictures(64, 64);
        let mut scaler = scaling::Context::get(
            Pixel::YUV420P,
            96,
            64,
            Pixel::RGB24,
            96,
            64,
            scaling::Flags::BILINEAR,
        )
        .unwrap();
        assert!(scale_packed(&mut scaler, &other, &mut Vec::new()).is_none());
    }

    #[test]
    fn a_yuv_frame_detects_on_the_same_pixels_as_the_decoders_rgb() {
        let (f, rgb) = pictures(96, 64);
        let picture = ClipPicture::Yuv(f);
        let mut seen = None;
        picture.with_rgb(&mut |img| seen = Some(img.clone()));
        assert_eq!(seen.as_ref(), Some(&rgb));
        assert_eq!(picture.dimensions(), (96, 64));
    }

    /// Painting on YUV through the scratch changes only the regions' rectangles, and paints what
    /// painting the RGB frame and converting it back gives, within the conversions' rounding.
    #[test]
    fn painting_on_yuv_matches_painting_on_rgb_inside_and_leaves_the_rest() {
        for (w, h, boxes) in [
            (96u32, 64u32, vec![(10.0, 8.0, 41.0, 37.0)]),
            (
                97,
                63,
                vec![(0.0, 0.0, 20.0, 30.0), (50.0, 20.0, 97.0, 63.0)],
            ),
            (64, 64, vec![(-10.0, -10.0, 200.0, 200.0)]),
        ] {
            for blur in [true, false] {
                let (f, rgb) = pictures(w, h);
                let regions: Vec<Region> = boxes
                    .iter()
                    .map(|&(x1, y1, x2, y2)| Region {
                        area: Area::Ellipse(BBox::new(x1, y1, x2, y2)),
                        style: Style::Fill([250, 10, 10]),
                    })
                    .chain(blur.then_some(Region {
                        area: Area::Rect(BBox::new(30.0, 30.0, 50.0, 50.0)),
                        style: Style::Blur,
                    }))
                    .collect();
                let before = f.clone();
                let mut picture = ClipPicture::Yuv(f);
                // A scratch holding another frame's pixels must not leak into this one.
                let mut scratch = vec![7u8; (w * h * 3) as usize];
                picture.paint(&regions, &mut scratch);
                let ClipPicture::Yuv(painted) = &picture else {
                    panic!("the picture changed kind");
                };
                let mut expected = rgb.clone();
                redact::redact(&mut expected, &regions);
                let rects = crate::frame::changed_rects(&regions, w, h, true);
                let inside = |x: u32, y: u32| {
                    rects
                        .iter()
                        .any(|&(x0, y0, x1, y1)| x >= x0 && x < x1 && y >= y0 && y < y1)
                };
                let ys = painted.stride(0);
                for y in 0..h {
                    for x in 0..w {
                        let i = y as usize * ys + x as usize;
                        let (got, was) = (painted.data(0)[i], before.data(0)[i]);
                        if inside(x, y) {
                            let p = expected.get_pixel(x, y).0;
                            let want = yuv_luma(p);
                            assert!(got.abs_diff(want) <= 3, "({x}, {y}): {got} against {want}");
                        } else {
                            assert_eq!(got, was, "({x}, {y}) outside every rectangle changed");
                        }
                    }
                }
            }
        }
    }

    /// Samples across and down plane `plane` of a `w` x `h` 4:2:0 picture.
    fn plane_size(plane: usize, w: u32, h: u32) -> (usize, usize) {
        match plane {
            0 => (w as usize, h as usize),
            _ => (w.div_ceil(2) as usize, h.div_ceil(2) as usize),
        }
    }

    /// One to seven regions over a `w` x `h` picture, drawn with `next`: boxes, ellipses and
    /// polygons of every style, overlapping, partly or wholly outside the frame, a NaN box.
    fn generated_regions(next: &mut impl FnMut(u32) -> u32, w: u32, h: u32) -> Vec<Region> {
        let coord = |v: u32, n: u32| v as f32 - n as f32 * 0.2 + 0.37 * (v % 3) as f32;
        (0..1 + next(7))
            .map(|_| {
                let (ax, ay) = (coord(next(w + w / 2), w), coord(next(h + h / 2), h));
                let (bw, bh) = (1.0 + next(w) as f32 * 0.7, 1.0 + next(h) as f32 * 0.7);
                let b = BBox::new(ax, ay, ax + bw, ay + bh);
                let area = match next(8) {
                    0..=2 => Area::Ellipse(b),
                    3..=5 => Area::Rect(b),
                    6 => Area::Polygon(crate::geometry::Polygon {
                        points: vec![[ax, ay], [ax + bw, ay + bh / 3.0], [ax + bw / 2.0, ay + bh]],
                    }),
                    _ => Area::Rect(BBox::new(f32::NAN, ay, ax + bw, ay + bh)),
                };
                let style = match next(3) {
                    0 => Style::Blur,
                    1 => Style::Pixelate,
                    _ => Style::Fill([next(256) as u8, 10, 200]),
                };
                Region { area, style }
            })
            .collect()
    }

    /// Painting a 4:2:0 picture one rectangle at a time gives exactly the bytes of painting
    /// its RGB picture whole and writing the changed rectangles back, on generated pictures
    /// (odd and even sizes) and regions (boxes, ellipses, polygons, every style, overlapping,
    /// partly or wholly outside the frame, a NaN box).
    #[test]
    fn painting_rectangle_by_rectangle_equals_painting_the_whole_picture() {
        let mut rng = crate::TestRng::new(31);
        let mut next = move |n: u32| rng.below(n);
        for case in 0..300 {
            let (w, h) = (2 + next(120), 2 + next(90));
            let regions = generated_regions(&mut next, w, h);
            let (mut f, _) = pictures(w, h);
            // Every other case in full range, as many IP cameras' pictures are.
            if case % 2 == 1 {
                f.set_color_range(ff::color::Range::JPEG);
            }
            let range = range_of(&f);
            // The whole-picture way: the changed rectangles in a frame-sized RGB picture,
            // painted, and written back.
            let mut expected = f.clone();
            assert_eq!(range_of(&expected), range, "a clone keeps its range");
            let rects = crate::frame::changed_rects(&regions, w, h, true);
            let mut rgb = RgbImage::new(w, h);
            let planes = planes_of(&f);
            for &r in &rects {
                yuv::rgb_rect(&planes, r, &mut rgb, w as usize);
            }
            redact::redact(&mut rgb, &regions);
            for plane in 0..3 {
                let stride = expected.stride(plane);
                for &r in &rects {
                    match plane {
                        0 => {
                            let y = expected.data_mut(0);
                            yuv::luma_rect(&rgb, w as usize, r, y, stride, range)
                        }
                        _ => yuv::chroma_rect(
                            &rgb,
                            (w as usize, h as usize),
                            r,
                            (plane, 1),
                            (expected.data_mut(plane), stride),
                            range,
                        ),
                    }
                }
            }
            let mut picture = ClipPicture::Yuv(f);
            picture.paint(&regions, &mut vec![9u8; 5]);
            let ClipPicture::Yuv(painted) = &picture else {
                panic!("the picture changed kind");
            };
            for plane in 0..3 {
                let (pw, ph) = plane_size(plane, w, h);
                let (a, b) = (painted.stride(plane), expected.stride(plane));
                for y in 0..ph {
                    assert_eq!(
                        &painted.data(plane)[y * a..y * a + pw],
                        &expected.data(plane)[y * b..y * b + pw],
                        "case {case}, {w}x{h}, plane {plane}, row {y}, regions {regions:?}"
                    );
                }
            }
        }
    }

    fn yuv_luma(p: [u8; 3]) -> u8 {
        let v = 16829 * p[0] as i32 + 33039 * p[1] as i32 + 6416 * p[2] as i32;
        (16 + ((v + (1 << 15)) >> 16)).clamp(0, 255) as u8
    }

    /// Painting a 10-bit picture paints what painting its 8-bit rounding paints: every sample
    /// that painting changed at 8 bits holds the new value widened to 10 bits, every other keeps
    /// its own 10 bits, inside the changed rectangles and outside alike; on generated pictures
    /// and regions. Its luma is measured rounded to 8 bits, and a copy of it stays 10-bit.
    #[test]
    fn a_ten_bit_picture_is_painted_as_its_eight_bit_rounding_and_keeps_the_rest() {
        super::super::transcode::init();
        let mut rng = crate::TestRng::new(44);
        let mut next = move |n: u32| rng.below(n);
        for case in 0..150 {
            let (w, h) = (2 + next(120), 2 + next(90));
            let regions = generated_regions(&mut next, w, h);
            let mut deep = frame::Video::new(Pixel::YUV420P10LE, w, h);
            let mut shallow = frame::Video::new(Pixel::YUV420P, w, h);
            if case % 2 == 1 {
                deep.set_color_range(ff::color::Range::JPEG);
                shallow.set_color_range(ff::color::Range::JPEG);
            }
            for plane in 0..3 {
                let (pw, ph) = plane_size(plane, w, h);
                let (ds, ss) = (deep.stride(plane), shallow.stride(plane));
                for y in 0..ph {
                    for x in 0..pw {
                        let v = next(1024) as u16;
                        deep.data_mut(plane)[y * ds + 2 * x..][..2]
                            .copy_from_slice(&v.to_le_bytes());
                        shallow.data_mut(plane)[y * ss + x] = narrow10(v);
                    }
                }
            }
            let before = ClipPicture::Yuv(deep);
            let ClipPicture::Yuv(copy) = before.clone() else {
                panic!("a 10-bit copy went to RGB");
            };
            let mut first_row = Vec::new();
            before.with_luma(&mut |l| {
                assert!(matches!(l, Luma::Plane10 { .. }), "{l:?}");
                l.row_samples(0, w as usize, 1, |_, v| first_row.push(v));
            });
            let ClipPicture::Yuv(before) = before else {
                unreachable!()
            };
            let sample = |f: &frame::Video, plane: usize, x: usize, y: usize| {
                let at = y * f.stride(plane) + 2 * x;
                u16::from_le_bytes([f.data(plane)[at], f.data(plane)[at + 1]])
            };
            assert_eq!(copy.format(), Pixel::YUV420P10LE);
            let row: Vec<u8> = (0..w as usize)
                .map(|x| narrow10(sample(&before, 0, x, 0)))
                .collect();
            assert_eq!(first_row, row, "case {case}: luma measured");
            let (mut painted, mut painted8) = (ClipPicture::Yuv(copy), ClipPicture::Yuv(shallow));
            painted.paint(&regions, &mut Vec::new());
            painted8.paint(&regions, &mut Vec::new());
            let (ClipPicture::Yuv(p10), ClipPicture::Yuv(p8)) = (&painted, &painted8) else {
                panic!("a picture changed kind");
            };
            for plane in 0..3 {
                let (pw, ph) = plane_size(plane, w, h);
                for y in 0..ph {
                    for x in 0..pw {
                        let (was, got) = (sample(&before, plane, x, y), sample(p10, plane, x, y));
                        let new8 = p8.data(plane)[y * p8.stride(plane) + x];
                        let want = if new8 != narrow10(was) {
                            u16::from(new8) << 2
                        } else {
                            was
                        };
                        assert_eq!(got, want, "case {case} plane {plane} ({x}, {y})");
                    }
                }
            }
        }
    }
}

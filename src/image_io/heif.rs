//! HEIF photos (an iPhone's HEIC, AVIF) read through libheif.
//!
//! Why: iPhones save their photos as HEIC unless told otherwise, so a folder of phone photos was
//! mostly skipped. The image crate reads no HEIC, and FFmpeg 5 no HEIF container.
//!
//! Only the primary picture's pixels are read, turned as the file's own rotation and mirroring
//! say (HEIF's orientation; an EXIF orientation inside a HEIF file is not the one that counts).
//! A HEIF file also holds pictures of the same scene that are never read and never written: a
//! thumbnail, a depth map (a face's shape), an HDR gain map. The redacted copy is a JPEG
//! (`NAME.heic.jpg`, see [`super::written_as`]), made from the redacted pixels alone, which
//! every viewer, app and police portal takes.

use std::path::Path;
use std::sync::OnceLock;

use image::{DynamicImage, RgbImage, RgbaImage};
use libheif_rs::{ColorSpace, HeifContext, LibHeif, RgbChroma};

use crate::error::{Error, Result};

/// libheif, set up once for the process (setting it up and down around every photo would
/// load and unload its plugins each time).
fn libheif() -> &'static LibHeif {
    static LIB: OnceLock<LibHeif> = OnceLock::new();
    LIB.get_or_init(LibHeif::new)
}

/// Decodes the primary picture of the HEIF file `bytes` (read from `path`) as 8-bit RGB, or RGBA
/// where it has an alpha channel, turned upright, refusing one over `max_pixels` before its
/// pixels are decoded; with the profile its copy carries for its colour space, where it needs
/// one (see `icc::profile_for_copy`).
pub fn decode(
    path: &Path,
    bytes: &[u8],
    max_pixels: u64,
) -> Result<(DynamicImage, Option<Vec<u8>>)> {
    let bad = |what: &str, e: &dyn std::fmt::Display| Error::Image {
        path: path.to_path_buf(),
        reason: format!("{what}: {e}"),
    };
    let lib = libheif();
    let ctx =
        HeifContext::read_from_bytes(bytes).map_err(|e| bad("not a readable HEIF file", &e))?;
    let pictures = ctx.number_of_top_level_images();
    if pictures > 1 {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "a HEIF file of {pictures} pictures: only single pictures are redacted, and all \
                 but the first would be lost; save each picture as a file of its own"
            ),
        });
    }
    let handle = ctx
        .primary_image_handle()
        .map_err(|e| bad("no primary picture", &e))?;
    // The size after the file's rotation, checked before any pixel is decoded.
    super::check_pixels(path, handle.width(), handle.height(), max_pixels)?;
    let alpha = handle.has_alpha_channel();
    let chroma = if alpha {
        RgbChroma::Rgba
    } else {
        RgbChroma::Rgb
    };
    // No decoding options: libheif's defaults apply the rotation and mirroring, and the 8-bit
    // chroma asked for brings a 10-bit picture down to 8 bits. (libheif-rs 0.20 frees options
    // passed to `decode` before libheif reads them.)
    let image = lib
        .decode(&handle, ColorSpace::Rgb(chroma), None)
        .map_err(|e| bad("cannot decode", &e))?;
    let planes = image.planes();
    let plane = planes
        .interleaved
        .ok_or_else(|| bad("cannot decode", &"no interleaved picture"))?;
    let channels = if alpha { 4 } else { 3 };
    let (w, h) = (plane.width, plane.height);
    let row = w as usize * channels;
    if plane.storage_bits_per_pixel as usize != 8 * channels || plane.stride < row {
        return Err(bad("cannot decode", &"an unexpected pixel layout"));
    }
    super::check_pixels(path, w, h, max_pixels)?;
    let mut pixels = Vec::with_capacity(row * h as usize);
    for r in plane.data.chunks(plane.stride).take(h as usize) {
        pixels.extend_from_slice(r.get(..row).unwrap_or_default());
    }
    let short = || bad("cannot decode", &"fewer rows than its size");
    let picture = if alpha {
        DynamicImage::ImageRgba8(RgbaImage::from_raw(w, h, pixels).ok_or_else(short)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(w, h, pixels).ok_or_else(short)?)
    };
    let icc = handle
        .color_profile_raw()
        .and_then(|p| super::icc::profile_for_copy(&p.data));
    Ok((picture, icc))
}

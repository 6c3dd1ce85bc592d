//! Reading photos upright and writing redacted copies whole or not at all.
//!
//! Reading applies the EXIF orientation before anything else sees the pixels: a phone photo
//! stored on its side must be detected upright, or its faces are missed. Decoding runs under
//! memory limits, so a header that claims a gigantic image is refused instead of allocated. A
//! file of several pictures (an animated PNG or WebP, a TIFF of several pages) is refused too:
//! one picture in, one picture out, or the others would be lost without a word.
//!
//! Writing encodes from pixels only, so no EXIF, GPS or maker metadata of the input reaches the
//! output. The one thing carried over is the colour space of an ICC profile, in a profile
//! bystander writes itself (see [`icc`]): a phone's Display P3 photo written without one shows
//! washed out, and the input's own profile can name the device that made it. The bytes go to a
//! temporary file beside the destination, are flushed to disk, and are renamed over the final
//! name only when complete: a crash leaves either nothing or a whole file.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::error::{Error, Result};

#[cfg(feature = "heif")]
mod heif;
pub mod icc;

/// The default pixel budget of one picture, photo or clip frame: 100 megapixels (an 8K frame is
/// 33, a 108-megapixel phone photo needs `--max-megapixels 110`). A picture over the budget is
/// refused from its header, before any pixel buffer exists; it also bounds what detection costs
/// (tiles grow with the pixel count). A greyscale 23000×23000 PNG bomb of 560 KB, or a
/// 16000×16000 MJPEG clip, is refused at the header.
pub const DEFAULT_MAX_PIXELS: u64 = 100_000_000;
/// JPEG quality of redacted copies.
pub const JPEG_QUALITY: u8 = 92;

/// File extensions treated as images, written back in their own format.
pub const IMAGE_EXTENSIONS: [&str; 7] = ["jpg", "jpeg", "png", "webp", "tif", "tiff", "bmp"];

/// Extensions of HEIF photos (an iPhone's HEIC, Fujifilm's HIF, AVIF): read through libheif
/// (the `heif` feature; without it such a file is refused by name), and written as a JPEG named
/// after the input with `.jpg` added ([`written_as`]): bystander writes no HEIF, and a JPEG is
/// what every viewer and upload form takes.
pub const HEIF_EXTENSIONS: [&str; 4] = ["heic", "heif", "hif", "avif"];

fn has_extension(path: &Path, list: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| list.contains(&e.to_ascii_lowercase().as_str()))
}

/// Whether `path` has an image extension, HEIF's included.
pub fn is_image_path(path: &Path) -> bool {
    has_extension(path, &IMAGE_EXTENSIONS) || is_heif_path(path)
}

/// Whether `path` has one of the [`HEIF_EXTENSIONS`]: its copy is a JPEG.
pub fn is_heif_path(path: &Path) -> bool {
    has_extension(path, &HEIF_EXTENSIONS)
}

/// The name a photo's redacted copy is written under: its own, or for one of the
/// [`HEIF_EXTENSIONS`] its own with `.jpg` added (`IMG_0042.HEIC` is written as
/// `IMG_0042.HEIC.jpg`, which no other input's copy can be named).
pub fn written_as(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    if is_heif_path(path) {
        name.push(".jpg");
    }
    name.into()
}

/// A decoded, upright image and the format it was stored in.
pub struct LoadedImage {
    /// The pixels, EXIF orientation applied.
    pub image: DynamicImage,
    /// The format the copy is written in: the input's own, JPEG for a HEIF photo.
    pub format: ImageFormat,
    /// The ICC profile the redacted copy carries: bystander's own profile of the picture's
    /// colour space, where its profile describes one the copy needs a profile for
    /// ([`icc::profile_for_copy`]).
    pub icc_profile: Option<Vec<u8>>,
}

/// Refuses a `w` x `h` picture over `max_pixels`, naming the limit and how to raise it.
pub fn check_pixels(path: &Path, w: u32, h: u32, max_pixels: u64) -> Result<()> {
    if u64::from(w) * u64::from(h) <= max_pixels {
        return Ok(());
    }
    Err(Error::TooLarge {
        path: path.to_path_buf(),
        width: w,
        height: h,
        max_pixels,
    })
}

/// Decodes an image file (format from its content, not its name) and turns it upright, within
/// the default pixel budget ([`DEFAULT_MAX_PIXELS`]).
pub fn load(path: &Path) -> Result<LoadedImage> {
    load_within(path, DEFAULT_MAX_PIXELS)
}

/// [`load`] with a pixel budget of `max_pixels`.
pub fn load_within(path: &Path, max_pixels: u64) -> Result<LoadedImage> {
    let bad = |reason: String| Error::Image {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = crate::files::open_regular(path, "input")?;
    let mut head = Vec::with_capacity(64);
    (&mut file)
        .take(64)
        .read_to_end(&mut head)
        .and_then(|_| file.rewind())
        .map_err(|e| Error::io(path, e))?;
    if is_heif(&head) {
        return load_heif(path, file, max_pixels);
    }
    let mut reader = ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| Error::io(path, e))?;
    if reader.format().is_none() {
        // Unknown content: the name's format, whose decoder then says what is wrong.
        if let Ok(f) = ImageFormat::from_path(path) {
            reader.set_format(f);
        }
    }
    let format = reader.format().ok_or_else(|| Error::Unsupported {
        path: path.to_path_buf(),
        reason: "not a recognised image format".into(),
    })?;
    refuse_many_pictures(path, format)?;
    // The decoder's own allocations stay within the budget at the widest pixel type (16-bit
    // RGBA, 8 bytes a pixel) plus room for its working buffers.
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_pixels.saturating_mul(8).saturating_add(64 << 20));
    let mut reader = reader;
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| bad(e.to_string()))?;
    // Checked here, before any pixel buffer exists: a header can claim any size.
    let (w, h) = decoder.dimensions();
    check_pixels(path, w, h, max_pixels)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    // A profile that cannot be read costs only its colours, never the photo.
    let icc_profile = decoder
        .icc_profile()
        .ok()
        .flatten()
        .and_then(|p| icc::profile_for_copy(&p));
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| bad(e.to_string()))?;
    image.apply_orientation(orientation);
    Ok(LoadedImage {
        image,
        format,
        icc_profile,
    })
}

/// Whether `head`, a file's first bytes, starts a HEIF photo (see [`HEIF_EXTENSIONS`]): an ISO
/// media file (`ftyp`) whose major or compatible brands name HEIF still pictures (HEVC's `heic`,
/// `heix`, `mif1`; AVIF's `avif`). An MP4 or MOV clip names none of them.
pub fn is_heif(head: &[u8]) -> bool {
    const BRANDS: [&[u8; 4]; 6] = [b"heic", b"heix", b"heim", b"heis", b"mif1", b"avif"];
    if head.len() < 16 || &head[4..8] != b"ftyp" {
        return false;
    }
    let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let end = size.clamp(16, head.len());
    // The major brand, then (after the minor version) the compatible brands.
    std::iter::once(&head[8..12])
        .chain(head[16..end].chunks_exact(4))
        .any(|b| BRANDS.iter().any(|brand| b == *brand))
}

/// Reads the HEIF photo `file` (from `path`) whole, within the pixel budget's bytes, and decodes
/// it (see `heif::decode`).
fn load_heif(path: &Path, file: File, max_pixels: u64) -> Result<LoadedImage> {
    #[cfg(feature = "heif")]
    {
        // Compressed, a picture within the budget is far smaller than its pixels.
        let limit = max_pixels.saturating_mul(8).saturating_add(64 << 20);
        let mut bytes = Vec::new();
        file.take(limit.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(path, e))?;
        if bytes.len() as u64 > limit {
            return Err(Error::Image {
                path: path.to_path_buf(),
                reason: format!(
                    "a HEIF file over {limit} bytes, more than its pixel budget allows"
                ),
            });
        }
        let (image, icc_profile) = heif::decode(path, &bytes, max_pixels)?;
        Ok(LoadedImage {
            image,
            format: ImageFormat::Jpeg,
            icc_profile,
        })
    }
    #[cfg(not(feature = "heif"))]
    {
        let _ = (file, max_pixels);
        Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: "a HEIF photo (HEIC or AVIF), and this build of bystander reads none (it was \
                     built without the `heif` feature)"
                .into(),
        })
    }
}

/// Refuses a file that holds more than one picture: an animated PNG or WebP, a TIFF of several
/// pages. Only its first picture would be redacted and written and the others lost without a
/// word, so the file is refused by name, saying how to redact all of it. A file whose header
/// these checks cannot read is left to the decoder, which says what is wrong with it.
fn refuse_many_pictures(path: &Path, format: ImageFormat) -> Result<()> {
    let reader = || crate::files::open_regular(path, "input").map(std::io::BufReader::new);
    const ANIMATED: &str = "make it a clip (ffmpeg -i IN OUT.mp4) to redact every frame";
    let found = match format {
        ImageFormat::Png => image::codecs::png::PngDecoder::new(reader()?)
            .and_then(|d| d.is_apng())
            .unwrap_or(false)
            .then_some(("an animated PNG", ANIMATED)),
        ImageFormat::WebP => image::codecs::webp::WebPDecoder::new(reader()?)
            .is_ok_and(|d| d.has_animation())
            .then_some(("an animated WebP", ANIMATED)),
        ImageFormat::Tiff => tiff::decoder::Decoder::new(reader()?)
            .is_ok_and(|d| d.more_images())
            .then_some((
                "a TIFF of several pages",
                "split it into one picture a page (tiffsplit) to redact every page",
            )),
        _ => None,
    };
    match found {
        None => Ok(()),
        Some((what, how)) => Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!(
                "{what}: only single pictures are redacted, and all but the first would be \
                 lost; {how}"
            ),
        }),
    }
}

/// A temporary path beside `dest`, unique to this process.
pub fn temp_path_for(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.{}.bystander-tmp", std::process::id()))
}

/// Removes temporaries left beside `dest` by a run that was killed (kill -9, power loss): those
/// whose process is gone. A temporary of a process still running is left alone. Returns how
/// many were removed.
pub fn remove_stale_temporaries(dest: &Path) -> usize {
    let (Some(dir), Some(name)) = (dest.parent(), dest.file_name()) else {
        return 0;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    }) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|rest| rest.strip_suffix(".bystander-tmp"))
        else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let alive = pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists();
        if !alive && std::fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// Writes through `write` into a temporary file beside `dest`, syncs it and renames it to `dest`.
/// On any error the temporary file is removed and `dest` is untouched.
pub fn write_atomic<F>(dest: &Path, write: F) -> Result<()>
where
    F: FnOnce(&mut BufWriter<File>) -> Result<()>,
{
    let tmp = temp_path_for(dest);
    let result = (|| {
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut w = BufWriter::new(file);
        write(&mut w)?;
        let file = w
            .into_inner()
            .map_err(|e| Error::io(&tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, dest).map_err(|e| Error::io(dest, e))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Encodes `image` as `format` at `dest`, atomically, without metadata but for `icc_profile`
/// where the format carries one (JPEG, PNG, WebP and TIFF; a BMP is written without it).
pub fn save(
    image: &DynamicImage,
    format: ImageFormat,
    icc_profile: Option<&[u8]>,
    dest: &Path,
) -> Result<()> {
    use image::codecs::{png::PngEncoder, tiff::TiffEncoder, webp::WebPEncoder};
    use image::ImageEncoder;
    let encode_err = |e: image::ImageError| match e {
        image::ImageError::IoError(io) => Error::io(dest, io),
        other => Error::Image {
            path: dest.to_path_buf(),
            reason: format!("cannot encode: {other}"),
        },
    };
    // Every encoder here takes a profile; one that refused it would write the pixels alone.
    fn with_profile<E: ImageEncoder>(mut encoder: E, icc_profile: Option<&[u8]>) -> E {
        if let Some(p) = icc_profile {
            let _ = encoder.set_icc_profile(p.to_vec());
        }
        encoder
    }
    write_atomic(dest, |w| {
        match format {
            ImageFormat::Jpeg => {
                let encoder = JpegEncoder::new_with_quality(&mut *w, JPEG_QUALITY);
                image
                    .to_rgb8()
                    .write_with_encoder(with_profile(encoder, icc_profile))
                    .map_err(encode_err)?;
            }
            ImageFormat::WebP => {
                // image's WebP encoder is lossless and takes 8-bit RGB(A) only.
                let img = if image.color().has_alpha() {
                    DynamicImage::ImageRgba8(image.to_rgba8())
                } else {
                    DynamicImage::ImageRgb8(image.to_rgb8())
                };
                let encoder = WebPEncoder::new_lossless(&mut *w);
                img.write_with_encoder(with_profile(encoder, icc_profile))
                    .map_err(encode_err)?;
            }
            ImageFormat::Png => image
                .write_with_encoder(with_profile(PngEncoder::new(&mut *w), icc_profile))
                .map_err(encode_err)?,
            ImageFormat::Tiff => image
                .write_with_encoder(with_profile(TiffEncoder::new(&mut *w), icc_profile))
                .map_err(encode_err)?,
            _ => image.write_to(&mut *w, format).map_err(encode_err)?,
        }
        w.flush().map_err(|e| Error::io(dest, e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exif_rotated_photo_is_loaded_upright() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let upright = load(&dir.join("astronaut.jpg")).unwrap().image;
        let rotated = load(&dir.join("astronaut_exif_rot6.jpg")).unwrap().image;
        assert_eq!(upright.width(), rotated.width());
        // Same picture within JPEG noise: compare a coarse thumbnail.
        let a = upright.thumbnail_exact(8, 8).to_luma8();
        let b = rotated.thumbnail_exact(8, 8).to_luma8();
        let diff: i32 = a
            .pixels()
            .zip(b.pixels())
            .map(|(p, q)| (p.0[0] as i32 - q.0[0] as i32).abs())
            .max()
            .unwrap();
        assert!(diff < 20, "max thumbnail difference {diff}");
    }

    #[test]
    fn saved_copy_has_no_exif_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let src =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/astronaut_exif_rot6.jpg");
        assert!(std::fs::read(&src)
            .unwrap()
            .windows(6)
            .any(|w| w == b"Exif\0\0"));
        let img = load(&src).unwrap();
        let out = dir.path().join("out.jpg");
        save(&img.image, img.format, None, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert!(!bytes.windows(6).any(|w| w == b"Exif\0\0"));
        assert!(!bytes.windows(21).any(|w| w == b"bystander-test-camera"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("clip.mp4");
        // PID 4194304 is above Linux's largest PID, so no process has it.
        let dead = dir.path().join(".clip.mp4.4194304.bystander-tmp");
        let live = temp_path_for(&dest);
        let other = dir.path().join(".other.mp4.4194304.bystander-tmp");
        for p in [&dead, &live, &other] {
            std::fs::write(p, b"partial").unwrap();
        }
        assert_eq!(remove_stale_temporaries(&dest), 1);
        assert!(!dead.exists() && live.exists() && other.exists());
    }

    #[test]
    fn a_failed_write_leaves_nothing_under_the_final_name() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.png");
        let r = write_atomic(&out, |w| {
            w.write_all(b"partial").unwrap();
            Err(Error::io(&out, std::io::Error::other("disk full")))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_header_claiming_a_gigantic_image_is_refused_before_allocation() {
        // A valid PNG signature and IHDR claiming 100000 x 100000 RGB pixels (30 GB).
        fn chunk(kind: &[u8], data: &[u8]) -> Vec<u8> {
            let mut crc_input = kind.to_vec();
            crc_input.extend_from_slice(data);
            let mut out = (data.len() as u32).to_be_bytes().to_vec();
            out.extend_from_slice(&crc_input);
            out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
            out
        }
        fn crc32(bytes: &[u8]) -> u32 {
            let mut c = 0xffff_ffffu32;
            for &b in bytes {
                c ^= b as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        0xedb8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
            }
            !c
        }
        let mut ihdr = 100_000u32.to_be_bytes().to_vec();
        ihdr.extend_from_slice(&100_000u32.to_be_bytes());
        ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend(chunk(b"IHDR", &ihdr));
        // A zlib stream holding one stored block of 10 zero bytes (the decoder wants an IDAT).
        let mut idat = vec![0x78, 0x01, 0x01, 0x0a, 0x00, 0xf5, 0xff];
        idat.extend_from_slice(&[0; 10]);
        idat.extend_from_slice(&0x000a_0001u32.to_be_bytes());
        png.extend(chunk(b"IDAT", &idat));
        png.extend(chunk(b"IEND", b""));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("huge.png");
        std::fs::write(&p, &png).unwrap();
        let e = load(&p).err().expect("refused").to_string();
        assert!(
            e.contains("huge.png") && e.contains("100000x100000") && e.contains("--max-megapixels"),
            "{e}"
        );
    }

    #[test]
    fn non_images_and_truncated_images_are_typed_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.jpg");
        std::fs::write(&text, "this is not a photo").unwrap();
        let e = load(&text).err().unwrap().to_string();
        assert!(e.contains("notes.jpg"), "{e}");
        let src = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/astronaut.jpg"),
        )
        .unwrap();
        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &src[..src.len() / 3]).unwrap();
        // A truncated JPEG either decodes what is there or fails with an error naming the file.
        if let Err(e) = load(&cut) {
            assert!(e.to_string().contains("cut.jpg"), "{e}");
        }
    }

    fn ftyp(major: &[u8; 4], compatible: &[&[u8; 4]]) -> Vec<u8> {
        let size = 16 + 4 * compatible.len() as u32;
        let mut b = size.to_be_bytes().to_vec();
        b.extend(b"ftyp");
        b.extend(major);
        b.extend([0, 0, 0, 0]);
        compatible.iter().for_each(|c| b.extend(*c));
        b.extend(b"\0\0\0\x08meta");
        b
    }

    #[test]
    fn heif_photos_are_written_as_jpegs_beside_their_own_name_and_the_rest_keep_theirs() {
        for (input, output) in [
            ("cam/IMG_0042.HEIC", "cam/IMG_0042.HEIC.jpg"),
            ("x.heif", "x.heif.jpg"),
            ("DSCF0001.HIF", "DSCF0001.HIF.jpg"),
            ("pixel.avif", "pixel.avif.jpg"),
            ("photo.jpg", "photo.jpg"),
            ("scan.TIFF", "scan.TIFF"),
        ] {
            assert!(is_image_path(Path::new(input)), "{input}");
            assert_eq!(written_as(Path::new(input)), Path::new(output));
        }
        assert!(!is_image_path(Path::new("clip.mov")));
    }

    #[test]
    fn heif_files_are_told_from_clips_by_their_brands() {
        assert!(is_heif(&ftyp(b"heic", &[b"mif1", b"heic"])));
        assert!(is_heif(&ftyp(b"mif1", &[b"heic"])));
        assert!(is_heif(&ftyp(b"avif", &[b"avif", b"mif1", b"miaf"])));
        // An iPhone's clip, an MP4, a brand named only past the ftyp box, a short header.
        assert!(!is_heif(&ftyp(b"qt  ", &[b"qt  "])));
        assert!(!is_heif(&ftyp(
            b"isom",
            &[b"isom", b"iso2", b"avc1", b"mp41"]
        )));
        let mut late = ftyp(b"isom", &[b"mp41"]);
        late.extend(b"heic");
        assert!(!is_heif(&late));
        assert!(!is_heif(&ftyp(b"heic", &[])[..12]));
        assert!(!is_heif(b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0"));
    }
}

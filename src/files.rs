//! Paths and files that come from outside the process: naming them safely, reading them within
//! bounds, and telling where they really are.
//!
//! File names are bytes on Linux, not text. A name that is not UTF-8, or that holds a newline or
//! an escape sequence, must neither stop a batch nor forge a log line or a terminal's state, so
//! names are printed through [`Shown`] (invalid bytes as `\xNN`, control characters escaped) and
//! written to JSON lossily (`serialize`), and never converted with `to_str().unwrap()`.
//!
//! The files bystander reads besides its inputs (models, zones, detections files, annotations)
//! are read with [`read_capped`]: regular files only (a FIFO would hang, `/dev/zero` never ends)
//! and no larger than a cap that fits each kind (a 2 GB sparse file is refused unread).
//!
//! Whether an output would land inside an input is decided on [`resolve`]d paths: the part of a
//! path that exists has its symlinks and `..` resolved by the file system, so `in/../in/out`, or an
//! output reached through a link into the input tree, is recognised for what it is.

use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// A path for people: lossy where it is not UTF-8 (invalid bytes as `\xNN`), control characters
/// escaped (`\n`, `\t`, `\u{1b}`), so a name always prints as one line of plain text.
pub struct Shown<'a>(pub &'a Path);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_escaped(self.0.as_os_str(), f)
    }
}

fn write_escaped(s: &OsStr, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for chunk in s.as_encoded_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                write!(f, "{c}")?;
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02X}")?;
        }
    }
    Ok(())
}

/// Serialises a path as a JSON string, lossily where it is not UTF-8 (serde refuses such paths,
/// which would fail a whole report for one odd name). For `#[serde(serialize_with)]`.
pub fn serialize<S: serde::Serializer>(path: &Path, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

/// The JSON value of a path ([`serialize`]'s lossy string).
pub fn json(path: &Path) -> serde_json::Value {
    path.to_string_lossy().into_owned().into()
}

/// Largest privacy-zone file read (a zone file is a few polygons).
pub const MAX_ZONES_BYTES: u64 = 1 << 20;
/// Largest detections file read (about 100 bytes a box: hours of footage with many boxes).
pub const MAX_DETECTIONS_BYTES: u64 = 256 << 20;
/// Largest annotation file read.
pub const MAX_ANNOTATIONS_BYTES: u64 = 64 << 20;
/// Largest report (`NAME.bystander.json`) read back when a run resumes.
pub const MAX_REPORT_BYTES: u64 = 16 << 20;
/// Largest model file read (the shipped ones are 2 to 12 MB; large detectors stay under this).
pub const MAX_MODEL_BYTES: u64 = 512 << 20;

/// Reads `path` whole, refusing anything but a regular file of at most `cap` bytes. `kind`
/// names the file in errors ("zone file"). The open does not block (a FIFO is refused, not
/// waited on), and no more than `cap` bytes are read even if the file grows meanwhile.
pub fn read_capped(path: &Path, cap: u64, kind: &str) -> Result<Vec<u8>> {
    let file = open_regular(path, kind)?;
    let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
    let refuse = |size: String| Error::Unsupported {
        path: path.to_path_buf(),
        reason: format!(
            "the {kind} is {size}, more than the {} limit for it",
            bytes(cap)
        ),
    };
    if len > cap {
        return Err(refuse(bytes(len)));
    }
    let mut out = Vec::with_capacity(len as usize);
    file.take(cap + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > cap {
        return Err(refuse("growing".into()));
    }
    Ok(out)
}

/// [`read_capped`] as UTF-8 text.
pub fn read_text_capped(path: &Path, cap: u64, kind: &str) -> Result<String> {
    String::from_utf8(read_capped(path, cap, kind)?).map_err(|_| Error::Parse {
        path: path.to_path_buf(),
        line: 1,
        reason: format!("the {kind} is not UTF-8 text"),
    })
}

/// Opens `path` for reading if it is a regular file, without blocking on a FIFO.
pub fn open_regular(path: &Path, kind: &str) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if !meta.is_file() {
        return Err(Error::Unsupported {
            path: path.to_path_buf(),
            reason: format!("the {kind} is {}, not a regular file", file_kind(&meta)),
        });
    }
    Ok(file)
}

/// What a non-regular file is, in words.
pub fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a folder"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

fn bytes(n: u64) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else {
        format!("{n} bytes")
    }
}

/// Where `path` really is: absolute, with the longest part of it that exists resolved by the file
/// system (symlinks and `..` included), and the rest (which does not exist yet, so holds no link)
/// appended with `.` and `..` applied by name.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let parts: Vec<Component> = abs.components().collect();
    for k in (0..=parts.len()).rev() {
        let prefix: PathBuf = parts[..k].iter().collect();
        let Ok(mut out) = std::fs::canonicalize(&prefix) else {
            continue;
        };
        for part in &parts[k..] {
            match part {
                Component::ParentDir => {
                    out.pop();
                }
                Component::CurDir => {}
                other => out.push(other),
            }
        }
        return Ok(out);
    }
    Ok(abs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    #[test]
    fn odd_names_print_on_one_line() {
        let p = Path::new(OsStr::from_bytes(b"a\nb\xff\x1b[31mc.jpg"));
        assert_eq!(Shown(p).to_string(), "a\\nb\\xFF\\u{1b}[31mc.jpg");
        assert_eq!(Shown(Path::new("plain/é.mp4")).to_string(), "plain/é.mp4");
    }

    #[test]
    fn only_regular_files_within_the_cap_are_read() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("z.json");
        std::fs::write(&f, b"12345").unwrap();
        assert_eq!(read_capped(&f, 5, "zone file").unwrap(), b"12345");
        let e = read_capped(&f, 4, "zone file").unwrap_err().to_string();
        assert!(e.contains("z.json") && e.contains("4 bytes limit"), "{e}");
        let e = read_capped(Path::new("/dev/zero"), 4, "zone file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("character device"), "{e}");
        let e = read_capped(d.path(), 4, "zone file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("folder"), "{e}");
    }

    #[test]
    fn resolve_sees_through_dot_dot_and_links() {
        let d = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(d.path()).unwrap();
        std::fs::create_dir_all(root.join("in/sub")).unwrap();
        std::os::unix::fs::symlink(root.join("in"), root.join("link")).unwrap();
        assert_eq!(
            resolve(&root.join("in/../in/out/x")).unwrap(),
            root.join("in/out/x")
        );
        assert_eq!(
            resolve(&root.join("link/sub/new/../y")).unwrap(),
            root.join("in/sub/y")
        );
    }
}

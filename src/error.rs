//! One error type for the whole library.
//!
//! Every variant carries what a person needs to act on it: the file at fault, the value that was
//! refused and the range that would have been accepted. The CLI prints `Display` as one line per
//! failed file, so messages are single sentences without trailing punctuation noise.

use std::path::{Path, PathBuf};

/// Result alias used throughout bystander.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in bystander.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// ONNX Runtime could not be found, fetched or loaded.
    #[error("ONNX Runtime 1.31 is not available ({reason}); fix: set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31 (or call bystander::runtime::use_library), or run `bystander models` with `python3 -m pip` able to reach PyPI, which fetches it into the cache")]
    RuntimeUnavailable {
        /// What was tried and how it failed.
        reason: String,
    },

    /// ONNX Runtime reported an error while creating a session or running a model.
    #[error("model {model}: ONNX Runtime error: {message}")]
    Inference {
        /// The model's name or path.
        model: String,
        /// ONNX Runtime's message.
        message: String,
    },

    /// A model file is missing, unreadable, altered or of the wrong family.
    #[error("model file {}: {reason}", crate::files::Shown(path))]
    Model {
        /// The model file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A model file's bytes do not match the checksum recorded for it.
    #[error("model file {} has sha256 {actual}, expected {expected} (the file was altered or replaced; restore it from the bystander repository)", crate::files::Shown(path))]
    ModelChecksum {
        /// The model file.
        path: PathBuf,
        /// The checksum bystander ships for it.
        expected: String,
        /// The checksum of the bytes on disk.
        actual: String,
    },

    /// Reading or writing a file failed.
    #[error("{}: {source}", crate::files::Shown(path))]
    Io {
        /// The file at fault.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// An input image could not be decoded, or is too large to decode safely.
    #[error("{}: cannot read image: {reason}", crate::files::Shown(path))]
    Image {
        /// The image file.
        path: PathBuf,
        /// Why it could not be decoded.
        reason: String,
    },

    /// A picture (photo or clip frame) is larger than the pixel budget.
    #[error("{}: the picture is {width}x{height} ({:.1} megapixels), more than the limit of {:.1} megapixels (raise it with --max-megapixels, or `max_pixels` in the library)", crate::files::Shown(path), f64::from(*width) * f64::from(*height) / 1e6, *max_pixels as f64 / 1e6)]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Width its header claims.
        width: u32,
        /// Height its header claims.
        height: u32,
        /// The budget in pixels.
        max_pixels: u64,
    },

    /// An input file has a format bystander does not handle.
    #[error("{}: unsupported input ({reason})", crate::files::Shown(path))]
    Unsupported {
        /// The input file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },

    /// A setting is out of its allowed range.
    #[error("invalid {name} `{value}`: {allowed}")]
    InvalidSetting {
        /// The setting's name as the user wrote it.
        name: &'static str,
        /// The refused value.
        value: String,
        /// What would have been accepted.
        allowed: &'static str,
    },

    /// A structured input file (zones, annotations) could not be parsed.
    #[error("{}: line {line}: {reason}", crate::files::Shown(path))]
    Parse {
        /// The file being parsed.
        path: PathBuf,
        /// 1-based line number (1 for whole-file formats).
        line: usize,
        /// What was wrong.
        reason: String,
    },

    /// A clip could not be read, decoded, encoded or written.
    #[error("{}: video: {reason}", crate::files::Shown(path))]
    Video {
        /// The clip (input or output) at fault.
        path: PathBuf,
        /// What failed.
        reason: String,
    },

    /// The frame engine's threads stopped or broke an internal rule (a bug, or a thread that
    /// could not start).
    #[error("frame engine: {reason}")]
    Engine {
        /// What went wrong.
        reason: String,
    },

    /// A frame buffer handed to the library does not match its declared size.
    #[error("frame buffer of {len} bytes is too small for {width}x{height} with stride {stride}")]
    FrameBuffer {
        /// Declared width in pixels.
        width: u32,
        /// Declared height in pixels.
        height: u32,
        /// Declared bytes per row.
        stride: usize,
        /// Actual buffer length.
        len: usize,
    },
}

/// What kind of fault an [`Error`] is, for a front that maps errors to its own (exit codes,
/// exception classes, C error codes).
///
/// ```
/// use bystander::{ErrorKind, frame::FrameLayout, frame::PixelFormat};
/// let layout = FrameLayout::packed(PixelFormat::Rgb24, 4, 4);
/// let e = bystander::frame::to_rgb(&[0u8; 3], &layout).unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::Input);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A setting or argument was refused: fix the call, not the machine.
    Config,
    /// An input (a file, a frame buffer, a structured file) is unreadable, too large or wrong.
    Input,
    /// The runtime environment failed: ONNX Runtime, a model file, a thread, the disk.
    Runtime,
}

impl Error {
    /// Which kind of fault this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidSetting { .. } => ErrorKind::Config,
            Error::Image { .. }
            | Error::Unsupported { .. }
            | Error::Parse { .. }
            | Error::Video { .. }
            | Error::FrameBuffer { .. }
            | Error::TooLarge { .. } => ErrorKind::Input,
            Error::RuntimeUnavailable { .. }
            | Error::Inference { .. }
            | Error::Model { .. }
            | Error::ModelChecksum { .. }
            | Error::Io { .. }
            | Error::Engine { .. } => ErrorKind::Runtime,
        }
    }

    pub(crate) fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }

    pub(crate) fn model(path: impl AsRef<Path>, reason: impl Into<String>) -> Self {
        Error::Model {
            path: path.as_ref().to_path_buf(),
            reason: reason.into(),
        }
    }

    pub(crate) fn inference(model: &str, err: impl std::fmt::Display) -> Self {
        Error::Inference {
            model: model.to_string(),
            message: err.to_string(),
        }
    }
}

//! The detector files bystander ships, and loading any model file safely.
//!
//! A shipped model is named by its preset and verified by sha256 before a session is made from
//! it: a file that was truncated, swapped or tampered with is refused at start, with its path and
//! the checksum that was expected, rather than silently finding fewer faces. A user's own ONNX
//! file is loaded by path; it has no recorded checksum, so its family is checked instead (the
//! input and output layout has to match what that family's decoder reads).

use crate::files::Shown;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::geometry::Class;

impl std::str::FromStr for Family {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "centerface" => Ok(Family::CenterFace),
            "retina" | "retinaface" => Ok(Family::Retina),
            "yolo" | "yolov8" => Ok(Family::Yolo),
            "text" | "dbnet" => Ok(Family::Text),
            _ => Err(Error::InvalidSetting {
                name: "model family",
                value: s.to_string(),
                allowed: "one of centerface, retina, yolo, text",
            }),
        }
    }
}

/// The decoder a model file needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// CenterFace: heatmap + scale + offset + landmarks at stride 4, RGB 0..255 input.
    CenterFace,
    /// RetinaFace-style SSD head over priors at strides 8/16/32, BGR minus mean input.
    Retina,
    /// YOLOv8 detect head `[1, 4 + classes, anchors]`, RGB/255 letterboxed input.
    Yolo,
    /// A DBNet text detector: one probability map `[1, 1, H, W]`, BGR `(x / 255 - 0.5) / 0.5`
    /// input; each text region is one box (finds plates as text, see `detect::text`).
    Text,
}

/// A detector bystander ships in `models/`.
#[derive(Clone, Copy, Debug)]
pub struct ShippedModel {
    /// Short name used on the command line and in reports.
    pub name: &'static str,
    /// File name in the models folder.
    pub file: &'static str,
    /// sha256 of the file's bytes.
    pub sha256: &'static str,
    /// Which decoder it needs.
    pub family: Family,
    /// What it finds.
    pub class: Class,
}

/// CenterFace (MIT), the default face detector. Its widest layers are computed in channel groups
/// (`scripts/split_wide_layers.py`): the same weights and the same function, a run at 960 x 544
/// holding 33 MB of activations instead of 82 MB (models/README.md).
pub const CENTERFACE: ShippedModel = ShippedModel {
    name: "centerface",
    file: "centerface_split.onnx",
    sha256: "b909f572c133f001c0ffa960c60a3ff34f4116c190509881a0d43948985b5fa9",
    family: Family::CenterFace,
    class: Class::Face,
};

/// RetinaFace with a MobileNet-0.25 backbone (MIT): the second face detector.
pub const RETINAFACE: ShippedModel = ShippedModel {
    name: "retinaface",
    file: "retinaface_mnet025.onnx",
    sha256: "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5",
    family: Family::Retina,
    class: Class::Face,
};

/// A RetinaFace-style plate detector with four corner points.
pub const PLATE_RETINA: ShippedModel = ShippedModel {
    name: "plate-retina",
    file: "plate_retina_clp.onnx",
    sha256: "1bb07d364ba3b1cca8c27176d3ea6b5997b6264dea8c9304e092c618b112d5f0",
    family: Family::Retina,
    class: Class::Plate,
};

/// A YOLOv8n single-class plate detector (see models/README.md for its licence caveat), its detect
/// head rewritten by `scripts/yolo_any_size.py` to take any input size that is a multiple of 32
/// (the same output as the exported file on 640 x 640), so that a wide frame is not padded square.
pub const PLATE_YOLO: ShippedModel = ShippedModel {
    name: "plate-yolo",
    file: "plate_yolov8n_pyplatex_anysize.onnx",
    sha256: "1354519fa03154d56f0bb96de2d4623775c6d7b2d8f0189a37be16d877a1428f",
    family: Family::Yolo,
    class: Class::Plate,
};

/// [`PLATE_YOLO`] quantized to int8 (QDQ) by `scripts/quantize.py`, its detect head kept in
/// float: about 1.5 times as fast on this machine's AVX2 cores, and the same plates found on the dev
/// photos (models/README.md). The balanced and fast presets use it; max keeps the float model.
/// Rewritten to take any input size as [`PLATE_YOLO`] is.
pub const PLATE_YOLO_INT8: ShippedModel = ShippedModel {
    name: "plate-yolo-int8",
    file: "plate_yolov8n_pyplatex_int8_anysize.onnx",
    sha256: "11207cc6b16c272f597e2ff554ef5b3e11f5683aeb8b9aaee7daaf979b04aaa5",
    family: Family::Yolo,
    class: Class::Plate,
};

/// PaddleOCR's PP-OCRv4 text detector (Apache-2.0), used as a plate detector with permissively
/// licensed weights only: a plate is a line of text (see `detect::text` and models/README.md).
pub const PLATE_TEXT: ShippedModel = ShippedModel {
    name: "plate-text",
    file: "plate_text_ppocrv4_det.onnx",
    sha256: "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    family: Family::Text,
    class: Class::Plate,
};

/// Every shipped model.
pub const SHIPPED: [ShippedModel; 6] = [
    CENTERFACE,
    RETINAFACE,
    PLATE_RETINA,
    PLATE_YOLO,
    PLATE_YOLO_INT8,
    PLATE_TEXT,
];

/// A model's bytes, verified, with what bystander needs to know of them. Made with
/// [`ShippedModel::load`], [`ModelData::from_path`] or [`ModelData::from_bytes`].
#[derive(Clone, Debug)]
pub struct ModelData {
    /// A name for messages: the shipped name, or the file name.
    pub name: String,
    /// Where the bytes came from.
    pub path: PathBuf,
    /// sha256 of the bytes.
    pub sha256: String,
    /// The decoder these bytes need.
    pub family: Family,
    /// What the model finds.
    pub class: Class,
    /// The file's contents. A running detector keeps its model without them when they came from
    /// a file: it reads the file again, and checks its sha256, if it ever needs one more session.
    pub bytes: Arc<Vec<u8>>,
    /// Whether `path` is the file the bytes were read from, so that they can be read again
    /// rather than held; false for bytes handed over in memory.
    from_file: bool,
}

/// The folder shipped models are read from when no folder is given
/// ([`crate::detect::DetectConfig::model_dir`]): `$BYSTANDER_MODEL_DIR` if set, else `models/`
/// next to the executable or one of its parent folders (an installed layout, or a build tree's
/// `target/release/`), else `models/` in the current folder. No path of the build machine is
/// compiled in.
pub fn model_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BYSTANDER_MODEL_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Ok(exe) = std::env::current_exe() {
        for dir in exe.ancestors().skip(1).take(4) {
            let candidate = dir.join("models");
            if candidate.join(CENTERFACE.file).is_file() {
                return candidate;
            }
        }
    }
    PathBuf::from("models")
}

/// sha256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// sha256 of `bytes`, as lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl ShippedModel {
    /// Reads and verifies this model from [`model_dir`].
    pub fn load(&self) -> Result<ModelData> {
        self.load_in(&model_dir())
    }

    /// Reads and verifies this model from the folder `dir`. The bytes are not kept for the life
    /// of the process: a running detector holds its sessions, not the file's bytes.
    pub fn load_in(&self, dir: &Path) -> Result<ModelData> {
        self.load_from(&dir.join(self.file))
    }

    /// Reads this model from `path`, refusing bytes whose sha256 differs from the shipped one.
    pub fn load_from(&self, path: &Path) -> Result<ModelData> {
        let before = FileStamp::of(path);
        let bytes = read_model(path)?;
        let actual = hex(&Sha256::digest(&bytes));
        if actual != self.sha256 {
            return Err(Error::ModelChecksum {
                path: path.to_path_buf(),
                expected: self.sha256.to_string(),
                actual,
            });
        }
        // Remembered only when the file did not change while it was read.
        if let Some(stamp) = before.filter(|b| FileStamp::of(path).as_ref() == Some(b)) {
            checked_files().record(path, stamp, self.sha256);
        }
        Ok(self.data(path, Arc::new(bytes)))
    }

    /// This model from the folder `dir`, checked as [`ShippedModel::load_in`] checks it, but
    /// without its bytes (see [`ModelData::without_bytes`]) when this process already read the
    /// file with the shipped sha256 and it has not changed since (the same file, length and
    /// modification and change times): a session made from it reads the file again and checks
    /// its sha256 then ([`ModelData::session_bytes`]).
    ///
    /// Why: a run resolves its models several times before it makes a session (the photo plan
    /// and the clip plan, the report's settings, each clip of a batch), and each time read and
    /// hashed every file: 12.4 MB three or four times over at the fast clip preset, on the one
    /// core that starts the run (BENCHMARKS.md, "Model files checked once").
    pub(crate) fn checked_in(&self, dir: &Path) -> Result<ModelData> {
        let path = dir.join(self.file);
        match FileStamp::of(&path) {
            Some(stamp) if checked_files().holds(&path, &stamp, self.sha256) => {
                Ok(self.data(&path, Arc::new(Vec::new())))
            }
            _ => self.load_from(&path),
        }
    }

    fn data(&self, path: &Path, bytes: Arc<Vec<u8>>) -> ModelData {
        ModelData {
            name: self.name.to_string(),
            path: path.to_path_buf(),
            sha256: self.sha256.to_string(),
            family: self.family,
            class: self.class,
            bytes,
            from_file: true,
        }
    }
}

/// What identifies a file's contents without reading them: its device and inode, length, and
/// modification and change times. A write changes the change time, which no user can set back,
/// so a file replaced or rewritten since it was stamped has another stamp.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    #[cfg(unix)]
    unix: (u64, u64, i64, i64),
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok().filter(|m| m.is_file())?;
        #[cfg(unix)]
        let unix = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec())
        };
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            #[cfg(unix)]
            unix,
        })
    }
}

/// Shipped model files this process read and found with their shipped sha256, as they were then.
#[derive(Default)]
struct CheckedFiles(std::sync::Mutex<Vec<(PathBuf, FileStamp, &'static str)>>);

fn checked_files() -> &'static CheckedFiles {
    static CHECKED: std::sync::OnceLock<CheckedFiles> = std::sync::OnceLock::new();
    CHECKED.get_or_init(CheckedFiles::default)
}

impl CheckedFiles {
    fn record(&self, path: &Path, stamp: FileStamp, sha256: &'static str) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.retain(|(p, _, _)| p != path);
        seen.push((path.to_path_buf(), stamp, sha256));
    }

    fn holds(&self, path: &Path, stamp: &FileStamp, sha256: &str) -> bool {
        let seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        seen.iter()
            .any(|(p, s, sum)| p == path && s == stamp && *sum == sha256)
    }
}

impl ModelData {
    /// A model held in memory (a host that embeds its models, or reads them its own way),
    /// named `name` in messages; its layout is checked when a session is made.
    pub fn from_bytes(name: &str, bytes: Vec<u8>, family: Family, class: Class) -> ModelData {
        ModelData {
            name: name.to_string(),
            path: PathBuf::from(name),
            sha256: hex(&Sha256::digest(&bytes)),
            family,
            class,
            bytes: Arc::new(bytes),
            from_file: false,
        }
    }

    /// A user's own model file of a known family; its layout is checked when a session is made.
    pub fn from_path(path: &Path, family: Family, class: Class) -> Result<ModelData> {
        let bytes = read_model(path)?;
        Ok(ModelData {
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| Shown(path).to_string()),
            path: path.to_path_buf(),
            sha256: hex(&Sha256::digest(&bytes)),
            family,
            class,
            bytes: Arc::new(bytes),
            from_file: true,
        })
    }

    /// This model for a session pool or a detector to keep: without its bytes when they came
    /// from a file, as every session they are needed for is then made from
    /// [`ModelData::session_bytes`]; with them (shared, not copied) when they were handed over in
    /// memory.
    ///
    /// Why: ONNX Runtime copies what it needs into each session, so the file's bytes are only
    /// needed again when a pool makes one more session. Held for the life of the process they
    /// were 12.4 MB resident at the default clip preset (CenterFace, RetinaFace and the int8 plate
    /// model), for a second session that only the plate model ever gets.
    pub(crate) fn without_bytes(&self) -> ModelData {
        let mut kept = self.clone();
        if self.from_file {
            kept.bytes = Arc::new(Vec::new());
        }
        kept
    }

    /// The bytes to make a session from: those held, or the file read again, refused when its
    /// sha256 is no longer the one it had when it was loaded (it was replaced while running).
    pub(crate) fn session_bytes(&self) -> Result<Arc<Vec<u8>>> {
        if !self.bytes.is_empty() || !self.from_file {
            return Ok(Arc::clone(&self.bytes));
        }
        let bytes = read_model(&self.path)?;
        let actual = hex(&Sha256::digest(&bytes));
        if actual != self.sha256 {
            let reason = format!(
                "changed since it was loaded (sha256 {actual}, loaded with {}); load it again",
                self.sha256
            );
            return Err(Error::model(&self.path, reason));
        }
        Ok(Arc::new(bytes))
    }
}

/// A model file's bytes: a regular file of at most [`crate::files::MAX_MODEL_BYTES`].
fn read_model(path: &Path) -> Result<Vec<u8>> {
    if !path.exists() {
        return Err(Error::model(
            path,
            "not found (set BYSTANDER_MODEL_DIR to the folder holding bystander's models/)",
        ));
    }
    match crate::files::read_capped(path, crate::files::MAX_MODEL_BYTES, "model file") {
        Ok(b) if b.is_empty() => Err(Error::model(path, "the file is empty")),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_models_verify_and_an_altered_copy_is_refused() {
        for m in SHIPPED {
            let data = m.load().unwrap();
            assert_eq!(data.sha256, m.sha256);
        }
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("retina.onnx");
        let mut bytes = std::fs::read(model_dir().join(RETINAFACE.file)).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&copy, &bytes).unwrap();
        match RETINAFACE.load_from(&copy) {
            Err(Error::ModelChecksum { path, expected, .. }) => {
                assert_eq!(path, copy);
                assert_eq!(expected, RETINAFACE.sha256);
            }
            other => panic!("expected a checksum error, got {other:?}"),
        }
        let err = RETINAFACE
            .load_from(&dir.path().join("missing.onnx"))
            .unwrap_err();
        assert!(err.to_string().contains("missing.onnx"), "{err}");
    }

    #[test]
    fn a_file_checked_once_is_not_read_again_until_it_changes_and_sessions_still_check_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RETINAFACE.file);
        let good = std::fs::read(model_dir().join(RETINAFACE.file)).unwrap();
        std::fs::write(&path, &good).unwrap();
        // Not read yet in this process: read and checked, with its bytes.
        let first = RETINAFACE.checked_in(dir.path()).unwrap();
        assert_eq!(first.bytes.len(), good.len());
        // Unchanged since: without its bytes, which a session reads and checks again.
        let again = RETINAFACE.checked_in(dir.path()).unwrap();
        assert!(again.bytes.is_empty());
        assert_eq!(again.sha256, RETINAFACE.sha256);
        assert_eq!(*again.session_bytes().unwrap(), good);
        // Replaced by a file of the same length (a new file renamed over it): read again, refused.
        let mut bad = good.clone();
        bad[100] ^= 1;
        let staged = dir.path().join("staged");
        std::fs::write(&staged, &bad).unwrap();
        std::fs::rename(&staged, &path).unwrap();
        assert!(matches!(
            RETINAFACE.checked_in(dir.path()),
            Err(Error::ModelChecksum { .. })
        ));
        // And the model kept without bytes no longer makes a session from that file.
        let err = again.session_bytes().unwrap_err().to_string();
        assert!(err.contains("changed since it was loaded"), "{err}");
        // Put back (another new file): read and checked again, then remembered again.
        std::fs::write(&staged, &good).unwrap();
        std::fs::rename(&staged, &path).unwrap();
        assert_eq!(
            RETINAFACE.checked_in(dir.path()).unwrap().bytes.len(),
            good.len()
        );
        assert!(RETINAFACE.checked_in(dir.path()).unwrap().bytes.is_empty());
    }
}

//! Filling bystander's cache with ONNX Runtime from PyPI, for the command line and installers.
//!
//! Not called by the library itself (a host's process must not start pip behind its back): the
//! `bystander` command calls [`fetch`] when no runtime is found, so that a fresh machine needs no
//! manual step. The official `onnxruntime==1.31.1` wheel (manylinux_2_28, x86-64) is fetched with
//! `python3 -m pip download`, and the wheel and the library inside it are checked against pinned
//! sha256 sums before the library is placed in the cache, atomically.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{cached_library, ORT_VERSION};
use crate::error::{Error, Result};
use crate::files::Shown;

const LIB_NAME: &str = "libonnxruntime.so.1.31.1";
const WHEEL_SHA256: &str = "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f";
const LIB_SHA256: &str = "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3";

/// Fetches the pinned ONNX Runtime library into the cache unless it is there already; returns
/// its path.
pub fn fetch() -> Result<PathBuf> {
    let dest = cached_library();
    if dest.is_file() {
        return Ok(dest);
    }
    fetch_from_pypi(&dest).map_err(|e| Error::RuntimeUnavailable {
        reason: format!("fetching from PyPI: {e}"),
    })?;
    Ok(dest)
}

/// Downloads the pinned onnxruntime wheel with pip, checks it, and places the library at `dest`
/// atomically (a concurrent process doing the same ends with the same bytes).
fn fetch_from_pypi(dest: &Path) -> std::result::Result<(), String> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        return Err("automatic fetching is only set up for x86-64 Linux".into());
    }
    let dir = dest.parent().ok_or("cache path has no parent")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", Shown(dir)))?;
    let work =
        tempdir_in(dir).map_err(|e| format!("cannot create a folder in {}: {e}", Shown(dir)))?;
    let result = (|| {
        eprintln!(
            "note: fetching ONNX Runtime {ORT_VERSION} from PyPI into {} (first run only)",
            Shown(dir)
        );
        let out = Command::new("python3")
            .args([
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
            ])
            .args([
                "--platform",
                "manylinux_2_28_x86_64",
                "--python-version",
                "3.11",
            ])
            .args(["--implementation", "cp", "--abi", "cp311", "--dest"])
            .arg(&work)
            .arg(format!("onnxruntime=={ORT_VERSION}"))
            .output()
            .map_err(|e| format!("cannot run `python3 -m pip`: {e}"))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            let last = err
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message");
            return Err(format!("pip download failed: {last}"));
        }
        let wheel = std::fs::read_dir(&work)
            .map_err(|e| e.to_string())?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find(|p| p.extension().is_some_and(|x| x == "whl"))
            .ok_or("pip reported success but left no wheel")?;
        let sum = crate::models::sha256_file(&wheel).map_err(|e| e.to_string())?;
        if sum != WHEEL_SHA256 {
            return Err(format!(
                "the downloaded wheel has sha256 {sum}, expected {WHEEL_SHA256}"
            ));
        }
        let staged = work.join(LIB_NAME);
        let out = Command::new("python3")
            .args(["-c", "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], 'wb') as f:\n    f.write(z.read(sys.argv[3]))"])
            .arg(&wheel)
            .arg(&staged)
            .arg(format!("onnxruntime/capi/{LIB_NAME}"))
            .output()
            .map_err(|e| format!("cannot run python3 to unpack the wheel: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "unpacking the wheel failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let sum = crate::models::sha256_file(&staged).map_err(|e| e.to_string())?;
        if sum != LIB_SHA256 {
            return Err(format!(
                "the unpacked library has sha256 {sum}, expected {LIB_SHA256}"
            ));
        }
        std::fs::rename(&staged, dest)
            .map_err(|e| format!("cannot move the library into {}: {e}", Shown(dest)))
    })();
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn tempdir_in(dir: &Path) -> std::io::Result<PathBuf> {
    for attempt in 0..100u32 {
        let p = dir.join(format!(".fetch-{}-{attempt}", std::process::id()));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other("no free temporary name"))
}

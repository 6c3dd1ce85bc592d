//! Finding ONNX Runtime and making sessions from it.
//!
//! bystander loads ONNX Runtime at run time (ort's `load-dynamic`) so that building the crate needs
//! no native library and no network. The library is looked for, in order:
//!
//! 1. `ORT_DYLIB_PATH`, when set: the user's choice wins, and a failure there is reported as is;
//! 2. a system-wide `libonnxruntime.so` of version 1.31 or newer on the loader's search path;
//! 3. bystander's cache (`$BYSTANDER_CACHE_DIR`, else `$XDG_CACHE_HOME/bystander`, else
//!    `~/.cache/bystander`);
//! 4. on x86-64 Linux, the official `onnxruntime==1.31.1` wheel fetched from PyPI with
//!    `python3 -m pip download`; the wheel and the library inside it are checked against pinned
//!    sha256 sums before the library is placed in the cache.
//!
//! A fresh machine therefore needs no manual step, and when nothing works the error says which
//! one sentence fixes it.
//!
//! ONNX Runtime allows one environment per process; it lives in a `OnceLock` here. Sessions are
//! cheap to create from bytes already in memory and each worker thread owns its own (rc.15's
//! `Session::run` takes `&mut self`).

use crate::files::Shown;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::error::{Error, Result};

/// The ONNX Runtime release bystander is built against (ort 2.0.0-rc.15, API 31).
pub const ORT_VERSION: &str = "1.31.1";
const LIB_NAME: &str = "libonnxruntime.so.1.31.1";
const WHEEL_SHA256: &str = "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f";
const LIB_SHA256: &str = "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3";

/// Where ONNX Runtime was loaded from, for reports and `bystander bench`.
#[derive(Clone, Debug)]
pub struct RuntimeInfo {
    /// The library file (or the bare name the system loader resolved).
    pub library: PathBuf,
    /// How it was found: `ORT_DYLIB_PATH`, `system`, `cache` or `fetched`.
    pub source: &'static str,
}

struct Runtime {
    env: Environment,
    /// Whether the shared CPU arena was registered (see `register_shared_arena`).
    shared_arena: bool,
    info: RuntimeInfo,
}

static RUNTIME: OnceLock<std::result::Result<Runtime, String>> = OnceLock::new();

fn runtime() -> Result<&'static Runtime> {
    RUNTIME
        .get_or_init(load)
        .as_ref()
        .map_err(|reason| Error::RuntimeUnavailable {
            reason: reason.clone(),
        })
}

/// Loads ONNX Runtime (once per process) and tells where it came from.
pub fn info() -> Result<RuntimeInfo> {
    runtime().map(|r| r.info.clone())
}

/// The shared ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static Environment> {
    runtime().map(|r| &r.env)
}

fn load() -> std::result::Result<Runtime, String> {
    let mut tried = Vec::new();
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        return init(&path, "ORT_DYLIB_PATH")
            .map_err(|e| format!("ORT_DYLIB_PATH={}: {e}", Shown(&path)));
    }
    for name in [LIB_NAME, "libonnxruntime.so.1", "libonnxruntime.so"] {
        match init(Path::new(name), "system") {
            Ok(rt) => return Ok(rt),
            Err(e) => tried.push(format!("system {name}: {e}")),
        }
    }
    let cached = cache_dir()
        .join(format!("onnxruntime-{ORT_VERSION}"))
        .join(LIB_NAME);
    if cached.is_file() {
        match init(&cached, "cache") {
            Ok(rt) => return Ok(rt),
            Err(e) => tried.push(format!("{}: {e}", Shown(&cached))),
        }
    }
    match fetch_from_pypi(&cached) {
        Ok(()) => init(&cached, "fetched").map_err(|e| format!("{}: {e}", Shown(&cached))),
        Err(e) => {
            tried.push(format!("fetching from PyPI: {e}"));
            Err(tried.join("; "))
        }
    }
}

fn init(path: &Path, source: &'static str) -> std::result::Result<Runtime, String> {
    let builder = ort::init_from(path).map_err(|e| e.to_string())?;
    let env = builder
        .with_name("bystander")
        .with_telemetry(false)
        .build()
        .map_err(|e| e.to_string())?;
    let shared_arena = register_shared_arena(&env).is_ok();
    Ok(Runtime {
        env,
        shared_arena,
        info: RuntimeInfo {
            library: path.to_path_buf(),
            source,
        },
    })
}

/// Registers one arena allocator for CPU memory in the environment, for every session to use
/// (`session.use_env_allocators`).
///
/// Why: by default each session has its own arena, which keeps the peak of that session's
/// activations for the life of the process, so memory is the sum of every model's peak times
/// every worker (1.18 GB on a 1080p clip with 2 workers and 4 models). With one arena, memory is
/// the peak of what runs at the same time (the arena grows by exactly what is asked, not to the
/// next power of two). Measured on crowd_1080p at the default preset, with memory patterns off as
/// well: 757 MB, at the same speed.
fn register_shared_arena(env: &Environment) -> std::result::Result<(), String> {
    use ort::sys::{OrtAllocatorType, OrtArenaCfg, OrtMemType, OrtMemoryInfo};
    use ort::AsPointer;
    let api = ort::api();
    let check = |status: ort::sys::OrtStatusPtr| {
        // SAFETY: `status` was just returned by an ONNX Runtime API call.
        unsafe { ort::Error::result_from_status(status) }.map_err(|e| e.to_string())
    };
    // SAFETY: the memory info and arena configuration are created here, used by
    // CreateAndRegisterAllocator (which copies what it keeps) and released before returning; the
    // environment pointer is valid for the life of `env`, which lives for the process.
    unsafe {
        let mut info: *mut OrtMemoryInfo = std::ptr::null_mut();
        check((api.CreateCpuMemoryInfo)(
            OrtAllocatorType::OrtArenaAllocator,
            OrtMemType::OrtMemTypeDefault,
            &mut info,
        ))?;
        let mut cfg: *mut OrtArenaCfg = std::ptr::null_mut();
        let keys = [c"arena_extend_strategy".as_ptr()];
        let values = [1usize];
        let made = check((api.CreateArenaCfgV2)(
            keys.as_ptr(),
            values.as_ptr(),
            1,
            &mut cfg,
        ));
        let registered = made.and_then(|()| {
            check((api.CreateAndRegisterAllocator)(
                env.ptr().cast_mut(),
                info,
                cfg,
            ))
        });
        if !cfg.is_null() {
            (api.ReleaseArenaCfg)(cfg);
        }
        (api.ReleaseMemoryInfo)(info);
        registered
    }
}

/// bystander's cache folder (not created here).
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BYSTANDER_CACHE_DIR").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(dir).join("bystander");
    }
    match std::env::var_os("HOME").filter(|p| !p.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("bystander"),
        None => std::env::temp_dir().join("bystander-cache"),
    }
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

/// How a session uses the cores: ONNX Runtime's own intra-op pool of `intra_threads` threads.
/// Callers that run several sessions side by side give each 1 thread so that ONNX Runtime and
/// rayon never both try to use every core.
pub(crate) fn session(model_name: &str, bytes: &[u8], intra_threads: usize) -> Result<Session> {
    let env = environment()?;
    let err = |e: ort::Error<_>| Error::inference(model_name, e);
    let mut builder = Session::builder(env)
        .map_err(|e| Error::inference(model_name, e))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(err)?
        .with_intra_threads(intra_threads.max(1))
        .map_err(err)?
        .with_inter_threads(1)
        .map_err(err)?;
    if intra_threads <= 1 {
        // A one-thread pool has nothing to spin for; spinning only steals time from rayon.
        builder = builder.with_intra_op_spinning(false).map_err(err)?;
    }
    // Memory (see `register_shared_arena`): every session allocates from the one arena, and
    // without memory patterns, which would keep one more block per session and input size.
    builder = builder.with_memory_pattern(false).map_err(err)?;
    if runtime()?.shared_arena {
        builder = builder.with_env_allocators().map_err(err)?;
    }
    #[cfg(feature = "cuda")]
    {
        builder = builder
            .with_execution_providers([ort::ep::CUDA::default().build()])
            .map_err(err)?;
    }
    builder
        .commit_from_memory(bytes)
        .map_err(|e| Error::inference(model_name, e))
}

/// The execution provider sessions are created with, for reports.
pub fn execution_provider() -> &'static str {
    if cfg!(feature = "cuda") {
        "CUDA (falls back to CPU when unavailable)"
    } else {
        "CPU"
    }
}

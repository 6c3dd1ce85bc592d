//! Finding ONNX Runtime and making sessions from it.
//!
//! bystander loads ONNX Runtime at run time (ort's `load-dynamic`) so that building the crate needs
//! no native library and no network. The library is looked for, in order:
//!
//! 1. the path a host gave [`use_library`];
//! 2. `ORT_DYLIB_PATH`, when set: the user's choice wins, and a failure there is reported as is;
//! 3. a system-wide `libonnxruntime.so` of version 1.31 or newer on the loader's search path;
//! 4. bystander's cache (`$BYSTANDER_CACHE_DIR`, else `$XDG_CACHE_HOME/bystander`, else
//!    `~/.cache/bystander`).
//!
//! The library never opens a network connection or starts a process by itself: filling the cache
//! from PyPI is [`fetch`]'s job (feature `fetch-runtime`, which the command line turns on), and the
//! command line calls it on a fresh machine, so that needs no manual step. A failed load is not
//! remembered: a host that fixes the path (or calls [`use_library`]) tries again without a
//! restart. When nothing works, the error says which one sentence fixes it.
//!
//! ONNX Runtime allows one environment per process; once loaded it lives for the process.

#[cfg(feature = "fetch-runtime")]
pub mod fetch;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::files::Shown;

use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;

use crate::error::{Error, Result};

/// The ONNX Runtime release bystander is built against (ort 2.0.0-rc.15, API 31).
pub const ORT_VERSION: &str = "1.31.1";
const LIB_NAME: &str = "libonnxruntime.so.1.31.1";

/// Where ONNX Runtime was loaded from, for reports and `bystander bench`.
#[derive(Clone, Debug)]
pub struct RuntimeInfo {
    /// The library file (or the bare name the system loader resolved).
    pub library: PathBuf,
    /// How it was found: `given` ([`use_library`]), `ORT_DYLIB_PATH`, `system` or `cache`.
    pub source: &'static str,
}

struct Runtime {
    env: Environment,
    /// Whether the shared CPU arena was registered (see `register_shared_arena`).
    shared_arena: bool,
    info: RuntimeInfo,
}

/// The loaded runtime (leaked: it lives as long as the process, as ONNX Runtime's environment
/// must) and the library a host asked for.
static RUNTIME: Mutex<(Option<&'static Runtime>, Option<PathBuf>)> = Mutex::new((None, None));

fn runtime() -> Result<&'static Runtime> {
    let mut state = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(rt) = state.0 {
        return Ok(rt);
    }
    let rt = load(state.1.as_deref()).map_err(|reason| Error::RuntimeUnavailable { reason })?;
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    state.0 = Some(rt);
    Ok(rt)
}

/// Uses the ONNX Runtime library at `path` (a `libonnxruntime.so` of version 1.31), loading it
/// now. For hosts that ship their own copy: it takes precedence over `ORT_DYLIB_PATH` and the
/// search. Refused once a runtime is loaded (one per process).
pub fn use_library(path: &Path) -> Result<RuntimeInfo> {
    {
        let mut state = RUNTIME.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(rt) = state.0 {
            if rt.info.library == path {
                return Ok(rt.info.clone());
            }
            return Err(Error::InvalidSetting {
                name: "ONNX Runtime library",
                value: Shown(path).to_string(),
                allowed:
                    "a library given before the first model is loaded (one runtime per process)",
            });
        }
        state.1 = Some(path.to_path_buf());
    }
    info()
}

/// Loads ONNX Runtime (once per process) and tells where it came from.
pub fn info() -> Result<RuntimeInfo> {
    runtime().map(|r| r.info.clone())
}

/// Whether every session allocates from the one shared arena (see `register_shared_arena`);
/// for the tests, which check that ONNX Runtime took its configuration.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub fn shared_arena() -> Result<bool> {
    runtime().map(|r| r.shared_arena)
}

/// The shared ONNX Runtime environment, loading the library on first use.
pub fn environment() -> Result<&'static Environment> {
    runtime().map(|r| &r.env)
}

/// The environment variable that turns ONNX Runtime's own telemetry off; bystander sets it to
/// `1` before it loads the library.
///
/// Why: the Linux and macOS builds of ONNX Runtime 1.31 (the PyPI wheel's library among them)
/// carry Microsoft's 1DS telemetry. Unless told otherwise, every process that starts ONNX Runtime
/// keeps a device id and a queue of events (the executable's path, the OS, the CPU model, whether
/// it runs in a container) under `$XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime`, and
/// uploads the queue over HTTPS whenever Microsoft's collector can be reached. A redaction tool
/// on a camera's network must neither record that nor open a connection. ONNX Runtime reads
/// `ORT_DISABLE_TELEMETRY` when it starts, so it is set here, once, before the first library is
/// loaded: to `1`, whatever it held. A host whose other threads read the environment meanwhile
/// can set it to `1` itself before its first call into bystander (the Python package does, on
/// import); bystander then leaves the environment untouched. A host that started ONNX Runtime on
/// its own earlier has started its telemetry too, which no later setting stops.
pub const TELEMETRY_SWITCH: &str = "ORT_DISABLE_TELEMETRY";

/// Sets [`TELEMETRY_SWITCH`] to `1` unless it already is.
fn telemetry_off() {
    if std::env::var_os(TELEMETRY_SWITCH).is_some_and(|v| v == "1") {
        return;
    }
    // Not `unsafe` in this edition, but racy in the way the Rust documentation describes: C code
    // on another thread reading the environment at this moment could see it change. This runs once,
    // in the runtime's initialisation under its lock, before ONNX Runtime (whose threads would
    // read it) exists; the command line gets here before it starts any thread.
    std::env::set_var(TELEMETRY_SWITCH, "1");
}

fn load(given: Option<&Path>) -> std::result::Result<Runtime, String> {
    telemetry_off();
    let mut tried = Vec::new();
    if let Some(path) = given {
        return init(path, "given").map_err(|e| format!("{}: {e}", Shown(path)));
    }
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
    let cached = cached_library();
    if cached.is_file() {
        match init(&cached, "cache") {
            Ok(rt) => return Ok(rt),
            Err(e) => tried.push(format!("{}: {e}", Shown(&cached))),
        }
    } else {
        tried.push(format!("{}: not there", Shown(&cached)));
    }
    Err(tried.join("; "))
}

/// Where the cache keeps the library ([`fetch`] puts it there).
pub fn cached_library() -> PathBuf {
    cache_dir()
        .join(format!("onnxruntime-{ORT_VERSION}"))
        .join(LIB_NAME)
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

/// The size of the shared arena's first region, in bytes: twice what two workers' largest runs
/// hold at once on a 1080p clip at the default (about 120 MB). It is address space reserved, not
/// memory: pages become resident only as tensors reach them (under Linux's strict overcommit,
/// `vm.overcommit_memory = 2`, it does count against the commit limit). Runs that need more get
/// a second region, twice as large.
pub(crate) const ARENA_FIRST_REGION: usize = 256 << 20;

/// Registers one arena allocator for CPU memory in the environment, for every session to use
/// (`session.use_env_allocators`).
///
/// Why: by default each session has its own arena, which keeps the peak of that session's
/// activations for the life of the process, so memory is the sum of every model's peak times
/// every worker (1.18 GB on a 1080p clip with 2 workers and 4 models). With one arena, memory is
/// the peak of what runs at the same time. Measured on crowd_1080p at the default preset, with
/// memory patterns off as well: 757 MB, at the same speed.
///
/// The arena starts as one region of [`ARENA_FIRST_REGION`] bytes. Before, it grew by exactly
/// what each allocation asked (`kSameAsRequested`), one region per growth, and chunks of two
/// regions never merge: when two workers' runs interleaved so that a model's largest tensor
/// (about 50 MB for CenterFace at 960 px) found no free run of that size, the arena took a new region
/// and kept it. About one clip run in two peaked 50 MB higher for that alone (crowd_1080p:
/// 487,556–488,840 or 536,524–539,328 KiB). In one region, freed chunks merge with their
/// neighbours and the region's pages are touched only as far as its high-water mark, so resident
/// memory follows what the runs really hold at once (BENCHMARKS.md, "One arena region").
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
        // `kNextPowerOfTwo` (0): the strategy under which ONNX Runtime honours the first
        // region's size; were the runs ever to need more, the next region doubles.
        let keys = [
            c"arena_extend_strategy".as_ptr(),
            c"initial_chunk_size_bytes".as_ptr(),
        ];
        let values = [0usize, ARENA_FIRST_REGION];
        let made = check((api.CreateArenaCfgV2)(
            keys.as_ptr(),
            values.as_ptr(),
            keys.len(),
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

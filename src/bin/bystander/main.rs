//! The `bystander` command: parse arguments, call the library, print. Nothing else lives here.
//!
//! Exit codes: 0 when every file succeeded, 1 when the run could not start (bad settings, no
//! runtime, a model refused), 2 when some files failed; each failed file gets one line naming it.

mod args;
mod progress;

use bystander::files::Shown;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use bystander::eval::{self, BUCKET_LABELS};
use bystander::pipeline::{FileReport, Workers};
use bystander::{batch, models, runtime, Class, Result};
use clap::Parser;

use args::{BenchArgs, Cli, Command, EvalArgs, RedactArgs, RenderArgs};
use bystander::review::Detections;
use progress::{Lines, Progress};

fn main() -> ExitCode {
    one_malloc_arena();
    no_huge_pages();
    let cli = Cli::parse();
    let needs_runtime = !matches!(cli.command, Command::Render(_));
    if let (true, Err(e)) = (needs_runtime, ensure_runtime()) {
        eprintln!("bystander: {e}");
        return ExitCode::from(1);
    }
    let result = match cli.command {
        Command::Redact(a) => redact(a),
        Command::Eval(a) => evaluate(a),
        Command::Models => list_models(),
        Command::Bench(a) => bench(a),
        Command::Render(a) => render(a),
        #[cfg(feature = "video")]
        Command::Live(a) => live(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bystander: {e}");
            match STOPPED_BY.load(Ordering::Relaxed) {
                0 => ExitCode::from(1),
                // Stopped by a signal (see `stop_on_signals`): 128 + its number.
                signal => ExitCode::from(128 + signal as u8),
            }
        }
    }
}

/// Has glibc's `malloc` keep one arena for every thread, before any thread starts.
///
/// Why: by default each thread that allocates gets an arena of its own (up to eight per core),
/// and memory freed into one is not reused by the others: the decoder, the detection workers and
/// the encoder each kept their own free memory. With one arena, crowd_1080p at the default peaks
/// at 461,232–463,104 KiB against 483,200–491,292 KiB, at the same speed (BENCHMARKS.md, "One
/// arena region"). This is the command line's choice for its own process; the library leaves a
/// host's allocator alone.
fn one_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets a tuning parameter of glibc's allocator; it is called before
    // this process starts any thread, and a refusal (a zero return) leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Asks Linux not to back this process's memory with transparent huge pages.
///
/// Why: x264 asks for huge pages (`madvise`) for its frame buffers, and rounds each one up to a
/// whole 2 MiB page; where the kernel grants them on request, every frame x264 holds takes that
/// rounding and is resident whole. Without them crowd_1080p peaked 6.5–8 MB lower at the default
/// and 13 MB lower at fast (medians), at the same speed and with byte-identical output
/// (BENCHMARKS.md, "Model bytes and huge pages"). Like [`one_malloc_arena`], this is the command
/// line's choice for its own process only.
fn no_huge_pages() {
    #[cfg(target_os = "linux")]
    // SAFETY: `PR_SET_THP_DISABLE` takes plain integer arguments and only sets a flag of this
    // process; a refusal (an older kernel) leaves huge pages as they were, which is harmless.
    unsafe {
        libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
    }
}

/// Loads ONNX Runtime, first fetching it from PyPI into the cache on a fresh machine: that is
/// the command line's business, never the library's. A library the user named (`ORT_DYLIB_PATH`)
/// is not second-guessed: its error is reported as is.
fn ensure_runtime() -> Result<()> {
    if runtime::info().is_ok() {
        return Ok(());
    }
    if std::env::var_os("ORT_DYLIB_PATH").is_some_and(|p| !p.is_empty()) {
        return runtime::info().map(|_| ());
    }
    runtime::fetch::fetch()?;
    runtime::info().map(|_| ())
}

fn pool(jobs: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .expect("a thread pool of a few threads can be built")
}

fn redact(a: RedactArgs) -> Result<ExitCode> {
    let options = a.options();
    let detect = options.detect_config(&Class::ALL)?;
    let redact = options.redact_config()?;
    let lines = match (a.quiet, a.json) {
        (true, _) => Lines::Quiet,
        (false, true) => Lines::Stderr,
        (false, false) => Lines::Stdout,
    };
    let mut inputs = a.inputs.clone();
    if let Some(m) = &a.manifest {
        inputs.extend(batch::read_manifest(m)?);
    }
    let mut plan = batch::plan(&inputs, &a.output, batch::is_supported)?;
    if let Some(shard) = a.shard {
        plan = plan.shard(shard);
    }
    // Nor may an output land on a file the run reads besides its inputs.
    options.check_outputs(&plan)?;
    let opts = options.run_options(&detect, &redact, a.overwrite, a.export_detections)?;
    let progress = Progress::new(
        if a.dry_run { Lines::Quiet } else { lines },
        plan.jobs.len(),
    );
    let plain = |line: String| match lines {
        Lines::Quiet => {}
        Lines::Stdout => println!("{line}"),
        Lines::Stderr => eprintln!("{line}"),
    };
    for (path, why) in &plan.skipped {
        plain(format!("skipped {}: {why}", Shown(path)));
    }
    if a.dry_run {
        for job in &plan.jobs {
            let (what, note) = match batch::resume_state(job, &opts) {
                batch::Resume::Keep(_) if !a.overwrite => ("keep", " (finished)".to_string()),
                batch::Resume::Redo(why) => ("redo", format!(" ({why})")),
                _ => ("redact", String::new()),
            };
            plain(format!(
                "would {what} {} -> {}{note}",
                Shown(&job.input),
                Shown(&job.output)
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }
    // A batch of clips needs no photo redactor: each clip's engine builds its own detectors.
    let workers = if plan.jobs.iter().all(|j| batch::is_clip(&j.input)) {
        Workers::deferred(detect, redact)?
    } else {
        Workers::new(detect, redact)?
    };
    let mut opts = opts;
    opts.stop = Some(stop_on_signals());
    let outcomes = batch::run(&plan, &workers, &opts, &progress);
    progress.finish();
    let summary = batch::summary(&a.output, &plan, &outcomes);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).unwrap_or_else(|e| e.to_string())
        );
    }
    let count = |key: &str| summary[key].as_u64().unwrap_or(0);
    let (redacted, kept, failed) = (count("redacted"), count("kept"), count("failed"));
    let signal = STOPPED_BY.load(Ordering::Relaxed);
    let stopped = match signal {
        0 => String::new(),
        _ => format!(
            ", {} stopped by {} (a rerun redacts them and keeps the finished ones)",
            count("stopped"),
            if signal == libc::SIGINT {
                "SIGINT"
            } else {
                "SIGTERM"
            }
        ),
    };
    plain(format!(
        "{redacted} redacted, {kept} kept, {failed} failed{stopped} of {} files into {}",
        outcomes.len(),
        Shown(&a.output)
    ));
    if signal != 0 {
        // What a shell expects of a command a signal ended: 128 + its number.
        return Ok(ExitCode::from(128 + signal as u8));
    }
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

/// The batch's stop switch, for the signal handler.
static STOP: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
/// The signal that stopped the batch, 0 while none has.
static STOPPED_BY: AtomicI32 = AtomicI32::new(0);

extern "C" fn stop_batch(signal: libc::c_int) {
    STOPPED_BY.store(signal, Ordering::Relaxed);
    if let Some(stop) = STOP.get() {
        stop.store(true, Ordering::Relaxed);
    }
    // SAFETY: `signal` is async-signal-safe, and SIG_DFL is a valid disposition: a second
    // Ctrl-C ends the process at once, as an operator who presses it twice means.
    unsafe {
        libc::signal(signal, libc::SIG_DFL);
    }
}

/// SIGINT (Ctrl-C) and SIGTERM (`docker stop`, `systemctl stop`, a job scheduler) stop a batch
/// cleanly: no file is started after them, the clip under way is abandoned with its temporary
/// file removed, and every output on disk is whole; the run ends with what it did and exits with
/// 128 + the signal's number. Without this, a Ctrl-C left the clip's hidden temporary file
/// beside the outputs until the next run cleared it. A second signal ends the process at once.
fn stop_on_signals() -> Arc<AtomicBool> {
    let stop = STOP
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    // The handler only stores to atomics and calls `signal`, all async-signal-safe (the switch
    // was made above, so `OnceLock::get` is a load).
    handle_signals(stop_batch);
    stop
}

/// Has `handler` take SIGINT and SIGTERM, each unless it is ignored: a shell starts background
/// jobs and `nohup` starts commands with SIGINT ignored, so that a Ctrl-C meant for the terminal's
/// foreground does not end them.
fn handle_signals(handler: extern "C" fn(libc::c_int)) {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `sigaction` with a null new action only reads the current one into `old`, a
        // zeroed `sigaction` struct of ours; `signal` is given a valid function pointer of the
        // type it expects.
        unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            let read = libc::sigaction(signal, std::ptr::null(), &mut old);
            if read == 0 && old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            libc::signal(signal, handler as libc::sighandler_t);
        }
    }
}

/// SIGINT and SIGTERM end a live run cleanly: the input stops, frames in flight are finished, and
/// the output gets its trailer.
#[cfg(feature = "video")]
extern "C" fn request_stop(_: libc::c_int) {
    bystander::video::live::stop_flag().store(true, std::sync::atomic::Ordering::Relaxed);
}

#[cfg(feature = "video")]
fn live(a: args::LiveArgs) -> Result<ExitCode> {
    let detect = a.settings.detect_config(&Class::ALL)?;
    let redact = a.settings.redact_config()?;
    let opts = a.live_options(&detect)?;
    // The handler only stores to an atomic, which is async-signal-safe.
    handle_signals(request_stop);
    let json = a.stats;
    let mut print = |s: &bystander::video::live::LiveStats| {
        if json {
            eprintln!("{}", serde_json::to_string(s).unwrap_or_default());
        } else {
            eprintln!(
                "live {:.0} s: {} frames in, {} out, {} detected ({} light), {} covered ({} behind), rung {}, {} reconnects, latency p50 {:.0} ms p95 {:.0} ms",
                s.seconds, s.frames_in, s.frames_out, s.detected_frames, s.light_frames, s.fail_closed_frames,
                s.covered_behind, s.degrade_level, s.reconnects, s.latency_ms_p50, s.latency_ms_p95
            );
        }
    };
    bystander::video::live::run_live(&opts, &detect, &redact, &mut print)?;
    Ok(ExitCode::SUCCESS)
}

fn render(a: RenderArgs) -> Result<ExitCode> {
    let redact = a.style.redact_config()?;
    let detections = Detections::load(&a.detections)?;
    // The input, the detections file and the zone file are only read, however the output is
    // spelled (`..`, a symlink, a hard link).
    let mut read = vec![a.input.as_path(), a.detections.as_path()];
    read.extend(a.style.zones.as_deref());
    batch::Inputs::new(read).check(&a.output)?;
    let max_pixels = a.limits.max_pixels()?;
    if !a.overwrite && a.output.exists() {
        return Err(bystander::Error::InvalidSetting {
            name: "output",
            value: Shown(&a.output).to_string(),
            allowed: "a path that does not exist yet (or pass --overwrite)",
        });
    }
    let report = if batch::is_clip(&a.input) {
        render_clip(&a, &redact, &detections, max_pixels)?
    } else {
        bystander::pipeline::render_image_file(
            &redact,
            &detections,
            &a.detections,
            &a.input,
            &a.output,
            max_pixels,
        )?
    };
    if !a.quiet {
        println!(
            "{} -> {}: {} faces, {} plates from {}{}",
            Shown(&a.input),
            Shown(&a.output),
            report.faces,
            report.plates,
            Shown(&a.detections),
            report
                .fail_closed_frames
                .filter(|n| *n > 0)
                .map_or(String::new(), |n| format!(
                    ", {n} frames covered whole (marked whole or not listed)"
                ))
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(feature = "video")]
fn render_clip(
    a: &RenderArgs,
    redact: &bystander::redact::RedactConfig,
    d: &Detections,
    max_pixels: u64,
) -> Result<FileReport> {
    let mut opts = a
        .video
        .options(bystander::cores(), &Default::default(), max_pixels)?;
    // Ctrl-C and SIGTERM abandon the clip with its temporary removed, as in a batch.
    opts.stop = Some(stop_on_signals());
    let r = bystander::video::render_clip(
        &a.input,
        &a.output,
        bystander::video::Boxes::Given(d, &a.detections),
        redact,
        &opts,
        None,
        &|_| {},
    )?;
    Ok(FileReport {
        detections: Vec::new(),
        seconds: r.seconds,
        faces: r.faces,
        plates: r.plates,
        frames: Some(r.frames),
        fail_closed_frames: Some(r.fail_closed_frames),
    })
}

#[cfg(not(feature = "video"))]
fn render_clip(
    a: &RenderArgs,
    _: &bystander::redact::RedactConfig,
    _: &Detections,
    _: u64,
) -> Result<FileReport> {
    Err(bystander::Error::Unsupported {
        path: a.input.clone(),
        reason: "this build has no video support (feature `video`)".into(),
    })
}

fn evaluate(a: EvalArgs) -> Result<ExitCode> {
    let labelled = eval::labelled_classes(&a.annotations)?;
    let mut detect = a.settings.detect_config(&labelled)?;
    if a.as_clip {
        detect = detect.for_clips();
    }
    let classes = detect.classes.clone();
    let workers = Workers::new(detect, a.settings.redact_config()?)?;
    let report = pool(a.settings.jobs()?).install(|| eval::evaluate(&a.annotations, &workers))?;
    for reason in &report.unreadable {
        eprintln!("bystander: {reason}");
    }
    let code = if report.unreadable.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report is plain data")
        );
        return Ok(code);
    }
    let pct = |t: &eval::Tally| t.fraction().map_or("-".to_string(), |f| format!("{f:.3}"));
    let names: Vec<&str> = classes.iter().map(|c| c.name()).collect();
    println!(
        "{}: {} images, classes {}, recall preset {}{}",
        Shown(&a.annotations),
        report.images,
        names.join(","),
        a.settings.recall,
        if a.as_clip { " (clip settings)" } else { "" }
    );
    println!(
        "{:<8} {:>8} {:>8} {:>8}",
        "height", "boxes", "covered", "fraction"
    );
    for (label, t) in BUCKET_LABELS.iter().zip(&report.by_height) {
        println!("{:<8} {:>8} {:>8} {:>8}", label, t.total, t.covered, pct(t));
    }
    println!(
        "{:<8} {:>8} {:>8} {:>8}",
        "all",
        report.overall.total,
        report.overall.covered,
        pct(&report.overall)
    );
    println!(
        "mean masked fraction of the image: {:.3}",
        report.mean_masked_fraction
    );
    println!(
        "detections: {}, {:.1} s ({:.0} ms per image)",
        report.detections,
        report.seconds,
        1000.0 * report.seconds / report.images.max(1) as f64
    );
    if let Some(min) = a.leaks {
        let shown: Vec<_> = report
            .leaks
            .iter()
            .filter(|l| l.bbox[3] - l.bbox[1] >= min)
            .collect();
        println!("uncovered boxes at least {min} px high: {}", shown.len());
        for l in shown {
            let [x1, y1, x2, y2] = l.bbox;
            println!(
                "  {} {} [{x1:.0}, {y1:.0}, {x2:.0}, {y2:.0}] {:.0} px high, {:.2} masked",
                Shown(&l.image),
                l.class.name(),
                y2 - y1,
                l.masked
            );
        }
    }
    if !report.unreadable.is_empty() {
        println!(
            "NOT SCORED: {} unreadable images with {} labelled boxes (listed above)",
            report.unreadable.len(),
            report.unscored_boxes
        );
    }
    Ok(code)
}

fn list_models() -> Result<ExitCode> {
    let dir = models::model_dir();
    println!("models in {}", Shown(&dir));
    let mut bad = 0;
    for m in models::SHIPPED {
        match m.load() {
            Ok(_) => println!(
                "  {:<13} {:<6} {:?}  {}  ok",
                m.name,
                m.class.name(),
                m.family,
                m.file
            ),
            Err(e) => {
                bad += 1;
                println!("  {:<13} {e}", m.name);
            }
        }
    }
    let info = runtime::info()?;
    println!(
        "ONNX Runtime {} from {} ({}), execution provider {}",
        runtime::ORT_VERSION,
        Shown(&info.library),
        info.source,
        runtime::execution_provider()
    );
    Ok(if bad > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(feature = "video")]
fn bench(a: BenchArgs) -> Result<ExitCode> {
    use std::io::Write;
    let detect = a.settings.detect_config(&Class::ALL)?.for_clips();
    let redact = a.settings.redact_config()?;
    let opts = a
        .video
        .options(a.settings.jobs()?, &detect, a.limits.max_pixels()?)?;
    let start = std::time::Instant::now();
    let last = std::sync::Mutex::new(std::time::Instant::now());
    let target = a.frames;
    let progress = |n: usize| {
        let mut last = last.lock().unwrap_or_else(|e| e.into_inner());
        if a.quiet || last.elapsed().as_millis() < 500 {
            return;
        }
        *last = std::time::Instant::now();
        let fps = n as f64 / start.elapsed().as_secs_f64().max(1e-9);
        let of = target.map_or(String::new(), |t| format!("/{t}"));
        eprint!("\r{n}{of} frames, {fps:.2} fps   ");
        let _ = std::io::stderr().flush();
    };
    if a.api == "stream" {
        let cfg = opts.engine(&detect, &redact, 0);
        let host_format = a.host_format.parse()?;
        let r = bystander::video::bench::bench_stream(
            &a.clip,
            a.frames,
            &cfg,
            host_format,
            opts.max_pixels,
            &progress,
        )?;
        if !a.quiet {
            eprintln!();
        }
        if a.json {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
        } else {
            println!(
                "{} through the host API ({} frames): {} frames in {:.2} s = {:.2} fps; latency p50 {:.0} ms, p95 {:.0} ms; peak memory {:.1} MiB; {} workers x {} threads, detect every {}, back-fill {}{}",
                Shown(&r.clip), r.host_format, r.frames, r.seconds, r.fps, r.latency_ms_p50, r.latency_ms_p95,
                r.peak_rss_kib as f64 / 1024.0, r.workers, r.intra_threads, r.detect_every, r.backfill,
                if r.low_memory { ", low memory" } else { "" }
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let r =
        bystander::video::bench::bench_clip(&a.clip, a.frames, &detect, &redact, &opts, &progress)?;
    if !a.quiet {
        eprintln!();
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&r).expect("plain data"));
        return Ok(ExitCode::SUCCESS);
    }
    let s = &r.settings;
    println!(
        "{}: {} frames ({} detected, {} pass{}) in {:.2} s = {:.2} fps end to end",
        Shown(&r.clip),
        r.frames,
        r.detected_frames,
        r.passes,
        if r.passes == 1 { "" } else { "es" },
        r.seconds,
        r.fps
    );
    println!(
        "{:<26} {:>10} {:>10} {:>7}",
        "stage", "seconds", "fps", "share"
    );
    for st in &r.stages {
        if st.stage.starts_with("wait-for-") {
            println!(
                "{:<26} {:>10.2} {:>10} {:>6.1}%  (of wall time, the decoding thread idle)",
                st.stage,
                st.seconds,
                "-",
                100.0 * st.share
            );
        } else {
            println!(
                "{:<26} {:>10.2} {:>10.2} {:>6.1}%",
                st.stage,
                st.seconds,
                st.fps,
                100.0 * st.share
            );
        }
    }
    println!("peak memory: {:.1} MiB", r.peak_rss_kib as f64 / 1024.0);
    println!(
        "settings: recall {:?}, {} detection workers x {} ONNX Runtime threads on {} cores, {} provider, ONNX Runtime {}",
        s.recall, s.detect_workers, s.intra_threads, s.cores, s.execution_provider, s.onnxruntime
    );
    for m in &s.models {
        println!(
            "  model {} (sha256 {}): {}, tiles {:?}{}, threshold {}, runs on {}",
            m.name,
            m.sha256,
            m.working_size.map_or(
                "letterboxed into the model's input".to_string(),
                |s| format!("working size {s}")
            ),
            m.tiles,
            if m.rotations > 1 {
                format!(", {} rotations", m.rotations)
            } else {
                String::new()
            },
            m.threshold,
            m.turn
                .map_or("every detected frame".to_string(), |[n, k]| format!(
                    "detected frames i with i mod {n} = {k} (interleaved)"
                )),
        );
    }
    println!(
        "  encoder {} crf {} preset {}, detect every {} frame(s), hold {} back-fill {}",
        s.video.encoder.as_deref().unwrap_or("the container's own"),
        s.video.crf,
        s.video.preset,
        s.video.detect_every,
        s.video.track.hold,
        s.video.track.backfill
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "video"))]
fn bench(_: BenchArgs) -> Result<ExitCode> {
    Err(bystander::Error::InvalidSetting {
        name: "bench",
        value: "clip".into(),
        allowed: "a build with the `video` feature",
    })
}

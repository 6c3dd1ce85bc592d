//! The `bystander` command: parse arguments, call the library, print. Nothing else lives here.
//!
//! Exit codes: 0 when every file succeeded, 1 when the run could not start (bad settings, no
//! runtime, a model refused), 2 when some files failed; each failed file gets one line naming it.

mod args;

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use bystander::eval::{self, BUCKET_LABELS};
use bystander::pipeline::{redact_image_file, FileReport, Workers};
use bystander::{batch, models, runtime, Class, Result};
use clap::Parser;
use rayon::prelude::*;

use args::{BenchArgs, Cli, Command, EvalArgs, RedactArgs};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Redact(a) => redact(a),
        Command::Eval(a) => evaluate(a),
        Command::Models => list_models(),
        Command::Bench(a) => bench(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bystander: {e}");
            ExitCode::from(1)
        }
    }
}

fn pool(jobs: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build()
        .expect("a thread pool of a few threads can be built")
}

/// Prints a progress line: on stdout, or on stderr when stdout carries JSON; not at all with
/// --quiet.
fn say(a: &RedactArgs, line: std::fmt::Arguments) {
    if a.quiet {
        return;
    }
    if a.json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

fn redact(a: RedactArgs) -> Result<ExitCode> {
    let detect = a.settings.detect_config(&Class::ALL)?;
    let redact = a.settings.redact_config()?;
    let plan = batch::plan(&a.inputs, &a.output, batch::is_supported)?;
    for (path, why) in &plan.skipped {
        say(&a, format_args!("skipped {}: {why}", path.display()));
    }
    if a.dry_run {
        for job in &plan.jobs {
            let (what, note) = if !a.overwrite && job.output.is_file() {
                ("keep", " (exists)")
            } else {
                ("redact", "")
            };
            say(
                &a,
                format_args!(
                    "would {what} {} -> {}{note}",
                    job.input.display(),
                    job.output.display()
                ),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let workers = Workers::new(detect, redact)?;
    let failed = AtomicUsize::new(0);
    let done = AtomicUsize::new(0);
    let records = std::sync::Mutex::new(Vec::new());
    let record =
        |job: &batch::Job, status: &str, report: Option<&FileReport>, error: Option<String>| {
            let mut r = serde_json::json!({
                "input": job.input, "output": job.output, "status": status,
            });
            if let Some(rep) = report {
                r["faces"] = rep.faces.into();
                r["plates"] = rep.plates.into();
                r["seconds"] = rep.seconds.into();
                if let Some(f) = rep.frames {
                    r["frames"] = f.into();
                }
                if let Some(f) = rep.fail_closed_frames {
                    r["fail_closed_frames"] = f.into();
                }
            }
            if let Some(e) = error {
                r["error"] = e.into();
            }
            records.lock().unwrap_or_else(|e| e.into_inner()).push(r);
        };
    let total = plan.jobs.len();
    // Photos run side by side, one per job; a clip brings one detection thread per core, so
    // clips run one after another.
    let (clips, photos): (Vec<_>, Vec<_>) = plan.jobs.iter().partition(|j| is_clip(&j.input));
    let jobs = a.settings.jobs()?;
    let run_job = |job: &&batch::Job| {
        bystander::image_io::remove_stale_temporaries(&job.output);
        if !a.overwrite && job.output.is_file() {
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            say(
                &a,
                format_args!(
                    "[{n}/{total}] kept {} (exists; --overwrite redoes it)",
                    job.output.display()
                ),
            );
            record(job, "kept", None, None);
            return;
        }
        let result = (|| {
            if let Some(parent) = job.output.parent() {
                std::fs::create_dir_all(parent).map_err(|e| bystander::Error::Io {
                    path: parent.to_path_buf(),
                    source: e,
                })?;
            }
            if is_clip(&job.input) {
                return redact_clip_job(&a, job, &workers);
            }
            workers.with(|r| redact_image_file(r, &job.input, &job.output))
        })();
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        match result {
            Ok(rep) => {
                say(
                    &a,
                    format_args!(
                        "[{n}/{total}] {} -> {}: {} faces, {} plates ({:.2} s)",
                        job.input.display(),
                        job.output.display(),
                        rep.faces,
                        rep.plates,
                        rep.seconds
                    ),
                );
                record(job, "redacted", Some(&rep), None);
            }
            Err(e) => {
                failed.fetch_add(1, Ordering::Relaxed);
                eprintln!("bystander: {e}");
                record(job, "failed", None, Some(e.to_string()));
            }
        }
    };
    pool(jobs).install(|| photos.par_iter().for_each(run_job));
    clips.iter().for_each(run_job);
    let failed = failed.into_inner();
    let mut records = records.into_inner().unwrap_or_else(|e| e.into_inner());
    records.sort_by(|x, y| x["input"].as_str().cmp(&y["input"].as_str()));
    let count = |s: &str| records.iter().filter(|r| r["status"] == s).count();
    let (redacted, kept) = (count("redacted"), count("kept"));
    if a.json {
        let skipped: Vec<_> = plan
            .skipped
            .iter()
            .map(|(p, why)| serde_json::json!({"path": p, "reason": why}))
            .collect();
        let summary = serde_json::json!({
            "output": a.output, "redacted": redacted, "kept": kept, "failed": failed,
            "skipped": skipped, "files": records,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).expect("plain data")
        );
    }
    say(
        &a,
        format_args!(
            "{redacted} redacted, {kept} kept, {failed} failed of {total} files into {}",
            a.output.display()
        ),
    );
    Ok(if failed > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}

fn is_clip(path: &std::path::Path) -> bool {
    #[cfg(feature = "video")]
    if bystander::video::is_video_path(path) {
        return true;
    }
    let _ = path;
    false
}

#[cfg(feature = "video")]
fn redact_clip_job(a: &RedactArgs, job: &batch::Job, workers: &Workers) -> Result<FileReport> {
    // A clip uses the whole thread budget itself: one detection worker per thread.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = a
        .video
        .options(a.settings.jobs()?, cores, &a.settings.recall)?;
    let (detect, redact) = workers.configs();
    let detect = detect.for_clips();
    let r =
        bystander::video::redact_clip(&job.input, &job.output, &detect, redact, &opts, &|_| {})?;
    say(
        a,
        format_args!(
            "    {} frames ({:.1} fps), {} fail-closed frames, {} decode errors, rotation {}, flicker frames {} without hold / {} with hold",
            r.frames,
            r.frames as f64 / r.seconds.max(1e-9),
            r.fail_closed_frames,
            r.decode_errors,
            r.rotation,
            r.flicker_frames_without_hold,
            r.flicker_frames_with_hold
        ),
    );
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
fn redact_clip_job(_: &RedactArgs, job: &batch::Job, _: &Workers) -> Result<FileReport> {
    Err(bystander::Error::Unsupported {
        path: job.input.clone(),
        reason: "this build has no video support (feature `video`)".into(),
    })
}

fn evaluate(a: EvalArgs) -> Result<ExitCode> {
    let labelled = eval::labelled_classes(&a.annotations)?;
    let detect = a.settings.detect_config(&labelled)?;
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
        "{}: {} images, classes {}, recall preset {}",
        a.annotations.display(),
        report.images,
        names.join(","),
        a.settings.recall
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
    println!("models in {}", dir.display());
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
        info.library.display(),
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = a
        .video
        .options(a.settings.jobs()?, cores, &a.settings.recall)?;
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
        r.clip.display(),
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
        if st.stage == "wait-for-detect" {
            println!(
                "{:<26} {:>10.2} {:>10} {:>6.1}%  (of wall time, the main thread idle)",
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
        "settings: recall {:?}, {} detection workers x {} ONNX Runtime threads on {} cores, {} {}, ONNX Runtime {}",
        s.recall, s.detect_workers, s.intra_threads, s.cores, s.execution_provider, "provider", s.onnxruntime
    );
    for m in &s.models {
        println!(
            "  model {} (sha256 {}): working size {}, tiles {:?}, threshold {}",
            m.name, m.sha256, m.working_size, m.tiles, m.threshold
        );
    }
    println!(
        "  encoder {} crf {} preset {}, detect every {} frame(s), hold {} back-fill {}",
        s.video.encoder,
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

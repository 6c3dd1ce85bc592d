//! Batch runs: the command line's inputs turned into (input, output) jobs, and the jobs run with
//! one thread budget, each output finished with a report beside it.
//!
//! A folder's contents are mirrored under the output folder (`DIR/a/b.jpg` → `OUT/a/b.jpg`); a
//! file named on the command line lands at `OUT/<its name>`. Inputs are sacred: an output folder
//! inside an input folder (which the walk would then read back) and an output path equal to an
//! input are refused before anything runs.
//!
//! Resumable by construction: an output is written under a temporary name and renamed when whole,
//! and its report (`NAME.bystander.json`, input and output sha256, models, settings, counts) is
//! written after it. A rerun keeps every output whose report exists and redoes the rest; a run
//! killed at any point leaves no partial file under a final name.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::image_io::is_image_path;

/// One file to redact.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// The original, never modified.
    pub input: PathBuf,
    /// Where the redacted copy goes.
    pub output: PathBuf,
}

/// The jobs for a run, and the files that were passed over.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Files to redact, in a stable order.
    pub jobs: Vec<Job>,
    /// Files found in folders that bystander does not handle, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<Vec<_>>>()?;
    entries.sort();
    for p in entries {
        // Symlinks are not followed: a link cycle or a link out of the tree is not walked.
        let meta = std::fs::symlink_metadata(&p).map_err(|e| Error::io(&p, e))?;
        if meta.is_dir() {
            walk(&p, out)?;
        } else if meta.is_file() {
            out.push(p);
        }
    }
    Ok(())
}

fn absolute(p: &Path) -> Result<PathBuf> {
    std::path::absolute(p).map_err(|e| Error::io(p, e))
}

/// Plans the jobs for `inputs` (files and folders) into `out_dir`. `accept` says whether a file
/// found in a folder is handled.
pub fn plan(inputs: &[PathBuf], out_dir: &Path, accept: impl Fn(&Path) -> bool) -> Result<Plan> {
    let out_abs = absolute(out_dir)?;
    let out_real = std::fs::canonicalize(out_dir).unwrap_or_else(|_| out_abs.clone());
    let mut plan = Plan::default();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
        if meta.is_dir() {
            let real = std::fs::canonicalize(input).map_err(|e| Error::io(input, e))?;
            if out_real.starts_with(&real) || out_abs.starts_with(absolute(input)?) {
                return Err(Error::InvalidSetting {
                    name: "output folder",
                    value: out_dir.display().to_string(),
                    allowed: "a folder outside every input folder (inputs are never written to, and an output inside an input would be read back)",
                });
            }
            let mut files = Vec::new();
            walk(input, &mut files)?;
            for f in files {
                if accept(&f) {
                    let rel = f
                        .strip_prefix(input)
                        .expect("walked paths start with their root");
                    plan.jobs.push(Job {
                        output: out_dir.join(rel),
                        input: f,
                    });
                } else {
                    plan.skipped
                        .push((f, "not an image or clip bystander handles".into()));
                }
            }
        } else {
            let name = input.file_name().ok_or_else(|| Error::Unsupported {
                path: input.clone(),
                reason: "no file name".into(),
            })?;
            plan.jobs.push(Job {
                input: input.clone(),
                output: out_dir.join(name),
            });
        }
    }
    // Two inputs mapping to one output, or an output overwriting an input, are refused.
    let mut seen = std::collections::HashSet::new();
    for job in &plan.jobs {
        let out = absolute(&job.output)?;
        if out == absolute(&job.input)?
            || std::fs::canonicalize(&job.input)
                .is_ok_and(|i| Some(i) == std::fs::canonicalize(&job.output).ok())
        {
            return Err(Error::InvalidSetting {
                name: "output",
                value: job.output.display().to_string(),
                allowed: "a path that is not one of the inputs",
            });
        }
        if !seen.insert(out) {
            return Err(Error::InvalidSetting {
                name: "output",
                value: job.output.display().to_string(),
                allowed: "one input per output path (two inputs have the same name)",
            });
        }
    }
    Ok(plan)
}

/// The default filter: image files, and clips when the `video` feature is on.
pub fn is_supported(path: &Path) -> bool {
    is_clip(path) || is_image_path(path)
}

/// What a batch run does besides redacting.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Redo outputs that are already finished.
    pub overwrite: bool,
    /// Write `NAME.detections.json` beside each output (see [`crate::review`]).
    pub export_detections: bool,
    /// The thread budget: photos run this many at a time, and a clip gets this many detection
    /// workers (clips run one after another).
    pub jobs: usize,
    /// Clip settings (their `workers` and `thread_budget` are set from `jobs`).
    #[cfg(feature = "video")]
    pub video: crate::video::VideoOptions,
    /// The settings as recorded in every report (see [`settings_record`]).
    pub settings: serde_json::Value,
}

/// How one file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written now.
    Redacted,
    /// Finished by an earlier run and left alone.
    Kept,
    /// Not written; see the error.
    Failed,
}

/// One file of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    /// The original.
    pub input: PathBuf,
    /// The redacted copy.
    pub output: PathBuf,
    /// How it ended.
    pub status: Status,
    /// The file's report (for kept files, the one written when it was made).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<serde_json::Value>,
    /// Why it failed: one line naming the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Watches a run (progress bars, log lines). Every method is called from worker threads.
pub trait Observer: Sync {
    /// A file is about to be processed; `frames` is a clip's announced frame count.
    fn started(&self, _job: &Job, _frames: Option<u64>) {}
    /// Frames of a clip written so far.
    fn frames(&self, _job: &Job, _done: usize) {}
    /// A file is done.
    fn finished(&self, _job: &Job, _outcome: &Outcome) {}
}

/// An observer that says nothing.
pub struct Silent;
impl Observer for Silent {}

/// Where a file's report goes: beside the output, `NAME.bystander.json`. An output counts as
/// finished only when its report exists too (the report is written last, so a run killed between
/// the two redoes the file).
pub fn report_path_for(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".bystander.json");
    output.with_file_name(name)
}

/// The settings and models of a run as recorded in each file's report.
pub fn settings_record(
    detect: &crate::detect::DetectConfig,
    redact: &crate::redact::RedactConfig,
    #[cfg(feature = "video")] video: &crate::video::VideoOptions,
) -> Result<serde_json::Value> {
    let models = |cfg: &crate::detect::DetectConfig| -> Result<serde_json::Value> {
        let choices = cfg.resolve()?;
        let turns = cfg.turns(&choices);
        Ok(choices
            .into_iter()
            .zip(turns)
            .map(|(c, turn)| {
                serde_json::json!({
                    "name": c.model.name, "file": c.model.path, "sha256": c.model.sha256,
                    "class": c.model.class, "threshold": c.threshold, "plan": c.plan,
                    "turn": turn.map(|(n, k)| [n, k]),
                })
            })
            .collect())
    };
    #[allow(unused_mut)]
    let mut v = serde_json::json!({
        "recall": detect.recall,
        "classes": detect.classes,
        "photo_models": models(detect)?,
        "redact": redact,
        "privacy_zones": {
            "units": if redact.zones.is_fractional() { "fraction" } else { "pixels" },
            "zones": redact.zones.as_given(),
        },
        "onnxruntime": crate::runtime::ORT_VERSION,
        "execution_provider": crate::runtime::execution_provider(),
    });
    #[cfg(feature = "video")]
    {
        v["clip_models"] = models(&detect.for_clips())?;
        v["video"] = serde_json::to_value(video).expect("plain data");
    }
    Ok(v)
}

/// Whether `path` is handled as a clip (by extension).
pub fn is_clip(path: &Path) -> bool {
    #[cfg(feature = "video")]
    if crate::video::is_video_path(path) {
        return true;
    }
    let _ = path;
    false
}

/// The report of `job`'s output when a run finished it (output and report both present).
pub fn finished_report(job: &Job) -> Option<serde_json::Value> {
    if !job.output.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(report_path_for(&job.output)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Redacts every job of `plan`: photos `opts.jobs` at a time, then clips one at a time with
/// `opts.jobs` threads each, so the budget holds throughout. A failed file is recorded and the
/// run goes on; a finished output (output and report present) is kept unless `overwrite`.
/// Outcomes come back in the plan's order.
pub fn run(
    plan: &Plan,
    workers: &crate::pipeline::Workers,
    opts: &RunOptions,
    observer: &dyn Observer,
) -> Vec<Outcome> {
    use rayon::prelude::*;
    let run_one = |job: &Job| -> Outcome {
        crate::image_io::remove_stale_temporaries(&job.output);
        crate::image_io::remove_stale_temporaries(&report_path_for(&job.output));
        crate::image_io::remove_stale_temporaries(&crate::review::detections_path_for(&job.output));
        if !opts.overwrite {
            if let Some(report) = finished_report(job) {
                let o = Outcome {
                    input: job.input.clone(),
                    output: job.output.clone(),
                    status: Status::Kept,
                    report: Some(report),
                    error: None,
                };
                observer.finished(job, &o);
                return o;
            }
        }
        let o = match redact_one(job, workers, opts, observer) {
            Ok(report) => Outcome {
                input: job.input.clone(),
                output: job.output.clone(),
                status: Status::Redacted,
                report: Some(report),
                error: None,
            },
            Err(e) => Outcome {
                input: job.input.clone(),
                output: job.output.clone(),
                status: Status::Failed,
                report: None,
                error: Some(one_line(&e.to_string())),
            },
        };
        observer.finished(job, &o);
        o
    };
    let (clips, photos): (Vec<_>, Vec<_>) = plan
        .jobs
        .iter()
        .enumerate()
        .partition(|(_, j)| is_clip(&j.input));
    // Clips run inside the pool too, so that the rayon work of their redaction stage stays
    // within the budget.
    let run_all = || {
        let mut out: Vec<(usize, Outcome)> =
            photos.par_iter().map(|(i, j)| (*i, run_one(j))).collect();
        out.extend(clips.iter().map(|(i, j)| (*i, run_one(j))));
        out
    };
    let mut out = match rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.max(1))
        .build()
    {
        Ok(pool) => pool.install(run_all),
        Err(_) => run_all(),
    };
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, o)| o).collect()
}

/// An error message on one line (some decoders end theirs with a newline or spread them over
/// several), so that each failed file gets exactly one line.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn redact_one(
    job: &Job,
    workers: &crate::pipeline::Workers,
    opts: &RunOptions,
    observer: &dyn Observer,
) -> Result<serde_json::Value> {
    if let Some(parent) = job.output.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let export = opts
        .export_detections
        .then(|| crate::review::detections_path_for(&job.output));
    let clip = is_clip(&job.input);
    let mut record = serde_json::json!({ "input": job.input, "output": job.output });
    if clip {
        #[cfg(feature = "video")]
        {
            observer.started(job, crate::video::frame_count_estimate(&job.input));
            let (detect, redact) = workers.configs();
            let detect = detect.for_clips();
            let mut v = opts.video.clone();
            v.set_thread_budget(opts.jobs);
            let r = crate::video::render_clip(
                &job.input,
                &job.output,
                crate::video::Boxes::Detect(&detect),
                redact,
                &v,
                export.as_deref(),
                &|n| observer.frames(job, n),
            )?;
            record["faces"] = r.faces.into();
            record["plates"] = r.plates.into();
            record["frames"] = r.frames.into();
            record["detected_frames"] = r.detected_frames.into();
            record["fail_closed_frames"] = r.fail_closed_frames.into();
            record["lost_frames"] = r.lost_frames.into();
            record["decode_errors"] = r.decode_errors.into();
            record["rotation"] = r.rotation.into();
            // Frames with a detection the previous or next frame lacks: what the hold covers.
            record["flicker_frames"] = serde_json::json!({
                "without_hold": r.flicker_frames_without_hold,
                "with_hold": r.flicker_frames_with_hold,
            });
            record["seconds"] = r.seconds.into();
            record["models"] = opts.settings["clip_models"].clone();
        }
        #[cfg(not(feature = "video"))]
        return Err(Error::Unsupported {
            path: job.input.clone(),
            reason: "this build has no video support (feature `video`)".into(),
        });
    } else {
        observer.started(job, None);
        let r = workers.with(|r| {
            crate::pipeline::redact_image_file_exporting(
                r,
                &job.input,
                &job.output,
                export.as_deref(),
            )
        })?;
        record["faces"] = r.faces.into();
        record["plates"] = r.plates.into();
        record["fail_closed_frames"] = 0.into();
        record["seconds"] = r.seconds.into();
        record["models"] = opts.settings["photo_models"].clone();
    }
    record["input_sha256"] = crate::models::sha256_file(&job.input)?.into();
    record["output_sha256"] = crate::models::sha256_file(&job.output)?.into();
    if let Some(e) = &export {
        record["detections_file"] = serde_json::to_value(e).expect("a path");
    }
    record["settings"] = opts.settings.clone();
    record["bystander"] = env!("CARGO_PKG_VERSION").into();
    let report = report_path_for(&job.output);
    crate::image_io::write_atomic(&report, |w| {
        serde_json::to_writer_pretty(&mut *w, &record).map_err(|e| Error::io(&report, e.into()))?;
        std::io::Write::write_all(w, b"\n").map_err(|e| Error::io(&report, e))
    })?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folders_are_mirrored_and_files_land_by_name() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("in");
        std::fs::create_dir_all(src.join("a/b")).unwrap();
        std::fs::write(src.join("a/b/x.jpg"), b"").unwrap();
        std::fs::write(src.join("top.png"), b"").unwrap();
        std::fs::write(src.join("notes.txt"), b"").unwrap();
        let single = d.path().join("single.jpg");
        std::fs::write(&single, b"").unwrap();
        let out = d.path().join("out");
        let p = plan(&[src.clone(), single.clone()], &out, is_supported).unwrap();
        let outs: Vec<_> = p
            .jobs
            .iter()
            .map(|j| j.output.strip_prefix(&out).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            outs,
            vec![
                PathBuf::from("a/b/x.jpg"),
                PathBuf::from("top.png"),
                PathBuf::from("single.jpg")
            ]
        );
        assert_eq!(p.skipped.len(), 1);
    }

    #[test]
    fn an_output_inside_an_input_or_equal_to_it_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("in");
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("x.jpg"), b"").unwrap();
        let e = plan(
            std::slice::from_ref(&src),
            &src.join("redacted"),
            is_supported,
        )
        .unwrap_err();
        assert!(e.to_string().contains("outside every input"), "{e}");
        let e = plan(&[src.join("x.jpg")], &src, is_supported).unwrap_err();
        assert!(e.to_string().contains("not one of the inputs"), "{e}");
    }
}

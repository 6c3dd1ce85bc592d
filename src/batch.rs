//! Batch runs: the command line's inputs turned into (input, output) jobs, and the jobs run with
//! one thread budget, each output finished with a report beside it.
//!
//! A folder's contents are mirrored under the output folder (`DIR/a/b.jpg` → `OUT/a/b.jpg`); a
//! file named on the command line lands at `OUT/<its name>`. Inputs are sacred: an output folder
//! inside an input folder (which the walk would then read back) and an output path that is an
//! input are refused before anything runs, judged on resolved paths (symlinks, `..`, hard links)
//! however either is spelled. Symbolic links in a folder are not followed, and are listed as
//! skipped with the reason, as are FIFOs, devices and sockets.
//!
//! Resumable, but only for the same request: an output is written under a temporary name and
//! renamed when whole, and its report (`NAME.bystander.json`, input and output sha256, models,
//! settings, counts) is written after it. A rerun keeps an output only when its report says it was
//! made from this very input (sha256) with every setting that affects the pixels unchanged (style,
//! classes, preset, models and their sha256, zones, clip settings, bystander version) and the
//! output is still the one the report describes (sha256); anything else is redone, with the reason
//! on its log line. A redo removes the old report before the new output exists, so a run killed
//! between an output and its report leaves an output with no report, which the next run redoes.
//!
//! A panic in one file's work (a bug, a decoder fault) is that file's failure; the batch goes on.
//!
//! Clips run one after another, each with the whole budget, and share their detectors' ONNX
//! Runtime sessions ([`crate::detect::SessionCache`]): building a clip's engine took 159–200 ms of one core
//! per clip at the fast preset, much of a short event clip's run.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::files::{self, Shown};
use crate::image_io::is_image_path;

/// One file to redact.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Job {
    /// The original, never modified.
    #[serde(serialize_with = "files::serialize")]
    pub input: PathBuf,
    /// Where the redacted copy goes.
    #[serde(serialize_with = "files::serialize")]
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

/// Walks `dir` (the input folder `root` or one below it): regular files go to `out`, anything
/// else that is not a folder to `skipped` with the reason. Symbolic links are not followed: a link
/// cycle or a link out of the tree is never walked, and a link to a file in the tree would redact
/// that file twice.
fn walk(
    root: &Path,
    dir: &Path,
    out: &mut Vec<PathBuf>,
    skipped: &mut Vec<(PathBuf, String)>,
) -> Result<()> {
    let mut entries = std::fs::read_dir(dir)
        .map_err(|e| Error::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| Error::io(dir, e)))
        .collect::<Result<Vec<_>>>()?;
    entries.sort();
    for p in entries {
        let meta = std::fs::symlink_metadata(&p).map_err(|e| Error::io(&p, e))?;
        if meta.is_dir() {
            walk(root, &p, out, skipped)?;
        } else if meta.is_file() {
            out.push(p);
        } else if meta.file_type().is_symlink() {
            let why = symlink_reason(root, &p);
            skipped.push((p, why));
        } else {
            let why = format!("{}, not a regular file", files::file_kind(&meta));
            skipped.push((p, why));
        }
    }
    Ok(())
}

/// Why a symbolic link found in an input folder is skipped.
fn symlink_reason(root: &Path, link: &Path) -> String {
    let target = std::fs::read_link(link)
        .map(|t| Shown(&t).to_string())
        .unwrap_or_default();
    match (std::fs::canonicalize(link), std::fs::canonicalize(root)) {
        (Err(e), _) if e.raw_os_error() == Some(40) => {
            format!("symbolic link to {target} that loops back on itself, not followed")
        }
        (Err(_), _) => format!("symbolic link to {target}, which does not exist, not followed"),
        (Ok(real), Ok(root)) if !real.starts_with(&root) => {
            format!("symbolic link to {target}, outside the input folder, not followed")
        }
        _ => format!(
            "symbolic link to {target}, not followed (files are redacted under their own names)"
        ),
    }
}

fn refuse_output(value: &Path, allowed: &'static str) -> Error {
    Error::InvalidSetting {
        name: "output",
        value: Shown(value).to_string(),
        allowed,
    }
}

/// Plans the jobs for `inputs` (files and folders) into `out_dir`. `accept` says whether a file
/// found in a folder is handled.
pub fn plan(inputs: &[PathBuf], out_dir: &Path, accept: impl Fn(&Path) -> bool) -> Result<Plan> {
    let out_real = files::resolve(out_dir)?;
    let mut plan = Plan::default();
    for input in inputs {
        let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
        if meta.is_dir() {
            let real = std::fs::canonicalize(input).map_err(|e| Error::io(input, e))?;
            if out_real.starts_with(&real) {
                return Err(refuse_output(
                    out_dir,
                    "a folder outside every input folder, however it is spelled (inputs are never written to, and an output inside an input would be read back)",
                ));
            }
            let mut found = Vec::new();
            walk(input, input, &mut found, &mut plan.skipped)?;
            for f in found {
                let Ok(rel) = f.strip_prefix(input) else {
                    continue;
                };
                if accept(&f) {
                    plan.jobs.push(Job {
                        output: out_dir.join(written_as(rel)),
                        input: f,
                    });
                } else {
                    plan.skipped
                        .push((f, "not an image or clip bystander handles".into()));
                }
            }
        } else if !meta.is_file() {
            plan.skipped.push((
                input.clone(),
                format!("{}, not a regular file", files::file_kind(&meta)),
            ));
        } else {
            let name = input.file_name().ok_or_else(|| Error::Unsupported {
                path: input.clone(),
                reason: "no file name".into(),
            })?;
            plan.jobs.push(Job {
                input: input.clone(),
                output: out_dir.join(written_as(Path::new(name))),
            });
        }
    }
    skip_renamed_clashes(&mut plan);
    // Two inputs mapping to one output, or an output that is an input, are refused.
    let inputs = Inputs::new(plan.jobs.iter().map(|j| j.input.as_path()));
    let mut seen = std::collections::HashSet::new();
    for job in &plan.jobs {
        let out = inputs.check(&job.output)?;
        if !seen.insert(out) {
            return Err(refuse_output(
                &job.output,
                "one input per output path (two inputs have the same name)",
            ));
        }
    }
    Ok(plan)
}

/// A clip whose copy is renamed (`cam.264` is written as `cam.264.mp4`, see `written_as`) and
/// would take the name of another input's copy (a `cam.264.mp4` beside it) is skipped with the
/// reason, so that one file does not stop the batch; the other input keeps its name.
fn skip_renamed_clashes(plan: &mut Plan) {
    let renamed = |j: &Job| j.output.file_name() != j.input.file_name();
    let kept: std::collections::HashSet<PathBuf> = plan
        .jobs
        .iter()
        .filter(|j| !renamed(j))
        .map(|j| j.output.clone())
        .collect();
    let (clash, jobs): (Vec<Job>, Vec<Job>) = std::mem::take(&mut plan.jobs)
        .into_iter()
        .partition(|j| renamed(j) && kept.contains(&j.output));
    plan.jobs = jobs;
    for j in clash {
        let reason = format!(
            "its copy would be named {}, as another input's is; rename one of them",
            Shown(&j.output)
        );
        plan.skipped.push((j.input, reason));
    }
}

/// One part of a run split for a job array (a Kubernetes Indexed Job, an AWS Batch array): shard
/// `index` of `count`, counted from 0, as `--shard INDEX/COUNT` writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// Which part, 0 to `count - 1` (`JOB_COMPLETION_INDEX`, `AWS_BATCH_JOB_ARRAY_INDEX`).
    pub index: usize,
    /// Into how many parts, 1 to 100000.
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = Error;
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || Error::InvalidSetting {
            name: "shard",
            value: s.to_string(),
            allowed: "INDEX/COUNT with 0 <= INDEX < COUNT <= 100000, such as 0/4",
        };
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if count == 0 || count > 100_000 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl Plan {
    /// The part of this plan that `shard` takes: the jobs (and the files passed over) sorted by
    /// input path, dealt round-robin, so that the shards of one listing are disjoint, together
    /// make the whole plan, and differ in size by one at most. Every shard must list the same
    /// inputs (the same tree, the same arguments or manifest) for this to hold.
    pub fn shard(self, shard: Shard) -> Plan {
        fn deal<T>(items: Vec<T>, key: impl Fn(&T) -> &Path, shard: Shard) -> Vec<T> {
            let mut order: Vec<usize> = (0..items.len()).collect();
            order.sort_by(|&a, &b| key(&items[a]).cmp(key(&items[b])));
            let mut mine = vec![false; items.len()];
            for (rank, &i) in order.iter().enumerate() {
                mine[i] = rank % shard.count == shard.index;
            }
            items
                .into_iter()
                .zip(mine)
                .filter_map(|(item, m)| m.then_some(item))
                .collect()
        }
        Plan {
            jobs: deal(self.jobs, |j| j.input.as_path(), shard),
            skipped: deal(self.skipped, |s| s.0.as_path(), shard),
        }
    }
}

/// Largest manifest read: 256 MiB, some million paths.
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;

/// Reads a manifest for `--manifest`: one input path per line (files or folders, as on the
/// command line; relative paths from the current directory), empty lines ignored. Any bytes but
/// newline can be in a name; a trailing carriage return is dropped.
pub fn read_manifest(path: &Path) -> Result<Vec<PathBuf>> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = files::read_capped(path, MAX_MANIFEST_BYTES, "manifest")?;
    Ok(bytes
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(|line| PathBuf::from(std::ffi::OsStr::from_bytes(line)))
        .collect())
}

/// The inputs of a run as the file system knows them: resolved paths and (device, inode) pairs,
/// so that an output can be told apart from every input however either is spelled.
pub struct Inputs {
    paths: std::collections::HashSet<PathBuf>,
    inodes: std::collections::HashSet<(u64, u64)>,
}

impl Inputs {
    /// The inputs `paths`.
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Inputs {
        use std::os::unix::fs::MetadataExt;
        let mut set = Inputs {
            paths: Default::default(),
            inodes: Default::default(),
        };
        for p in paths {
            set.paths.extend(files::resolve(p));
            if let Ok(m) = std::fs::metadata(p) {
                set.inodes.insert((m.dev(), m.ino()));
            }
        }
        set
    }

    /// Refuses `output` when it is one of the inputs under another spelling: the same resolved
    /// path (symlinks and `..` seen through), or the same file (a hard link). Returns the resolved
    /// output path.
    pub fn check(&self, output: &Path) -> Result<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let out = files::resolve(output)?;
        let same_inode =
            std::fs::metadata(output).is_ok_and(|m| self.inodes.contains(&(m.dev(), m.ino())));
        if self.paths.contains(&out) || same_inode {
            return Err(refuse_output(
                output,
                "a path that is not one of the inputs, however it is spelled",
            ));
        }
        Ok(out)
    }
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
    /// The pixel budget of a photo or a clip frame (see [`crate::image_io::DEFAULT_MAX_PIXELS`]).
    pub max_pixels: u64,
    /// Clip settings (their `workers`, `thread_budget` and `max_pixels` are set from `jobs` and
    /// `max_pixels`).
    #[cfg(feature = "video")]
    pub video: crate::video::VideoOptions,
    /// The settings as recorded in every report (see [`settings_record`]).
    pub settings: serde_json::Value,
    /// A host's stop switch (the command line sets it on SIGINT and SIGTERM). Once it is on, no
    /// file is started; a clip under way stops at its next frame and writes nothing; photos under
    /// way finish. Every output on disk is whole, and a rerun picks up where this run stopped.
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl RunOptions {
    /// Whether the stop switch ([`RunOptions::stop`]) is on.
    pub fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// What a file the run stopped before finishing says (see [`RunOptions::stop`]).
const STOPPED: &str = "not written: the run was stopped before this file was finished; run it \
                       again to redact it (finished files are kept)";

/// How one file ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Written now.
    Redacted,
    /// Finished by an earlier run for the same request and left alone.
    Kept,
    /// Not written; see the error.
    Failed,
    /// Not written: the run was stopped first (see [`RunOptions::stop`]); a rerun redacts it.
    Stopped,
}

/// One file of a run.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Outcome {
    /// The original.
    #[serde(serialize_with = "files::serialize")]
    pub input: PathBuf,
    /// The redacted copy.
    #[serde(serialize_with = "files::serialize")]
    pub output: PathBuf,
    /// How it ended.
    pub status: Status,
    /// Why an existing output was not kept (it was made for another request), when it was redone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redone: Option<String>,
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
/// finished only when its report exists too and matches the request (see [`resume_state`]).
pub fn report_path_for(output: &Path) -> PathBuf {
    let mut name = output.file_name().unwrap_or_default().to_os_string();
    name.push(".bystander.json");
    output.with_file_name(name)
}

/// The settings and models of a run as recorded in each file's report. `zones_sha256` is the
/// sha256 of the zone file the privacy zones were read from, if any.
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
                    "name": c.model.name, "file": files::json(&c.model.path),
                    "sha256": c.model.sha256, "class": c.model.class, "threshold": c.threshold,
                    "plan": c.plan, "turn": turn.map(|(n, k)| [n, k]),
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
            "file_sha256": redact.zones.source_sha256(),
        },
        "onnxruntime": crate::runtime::ORT_VERSION,
        "execution_provider": crate::runtime::execution_provider(),
    });
    #[cfg(feature = "video")]
    {
        v["clip_models"] = models(&detect.for_clips())?;
        v["video"] = serde_json::to_value(video).map_err(|e| Error::InvalidSetting {
            name: "video options",
            value: e.to_string(),
            allowed: "options that can be recorded as JSON",
        })?;
    }
    Ok(v)
}

/// The part of a settings record that decides an output's bytes: the record without what only
/// decides how fast or whether a file is made (threads, the pixel budget, a frame cap).
fn request(settings: &serde_json::Value) -> serde_json::Value {
    let mut r = settings.clone();
    if let Some(video) = r.get_mut("video").and_then(|v| v.as_object_mut()) {
        for k in [
            "workers",
            "thread_budget",
            "codec_threads",
            "max_pixels",
            "max_frames",
            "low_memory",
        ] {
            video.remove(k);
        }
    }
    r
}

/// The name an input's redacted copy is written under (see `video::written_as` and
/// `image_io::written_as`): its own, but for clips whose container is read and not written and
/// for HEIF photos.
fn written_as(path: &Path) -> PathBuf {
    if is_image_path(path) {
        return crate::image_io::written_as(path);
    }
    #[cfg(feature = "video")]
    return crate::video::written_as(path);
    #[cfg(not(feature = "video"))]
    path.to_path_buf()
}

/// Whether `path` has a clip extension handled as a clip.
pub fn is_clip(path: &Path) -> bool {
    #[cfg(feature = "video")]
    if crate::video::is_video_path(path) {
        return true;
    }
    let _ = path;
    false
}

/// What a rerun finds at a job's output.
#[derive(Clone, Debug, PartialEq)]
pub enum Resume {
    /// Nothing: the job has not been done.
    Fresh,
    /// An output made from this input for this request, still as its report describes it.
    Keep(serde_json::Value),
    /// Something is there but it is not this request's finished output; the reason says why.
    Redo(String),
}

/// What is at `job`'s output, judged against this run's `opts`: see [`Resume`]. Reads and hashes
/// the input and the output (a kept file is one whose bytes were checked).
pub fn resume_state(job: &Job, opts: &RunOptions) -> Resume {
    let report_path = report_path_for(&job.output);
    let output_there = job.output.exists();
    if !output_there && !report_path.exists() {
        return Resume::Fresh;
    }
    if !output_there {
        return Resume::Redo("its report is there but the output is not".into());
    }
    let report: Option<serde_json::Value> =
        files::read_text_capped(&report_path, files::MAX_REPORT_BYTES, "report")
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok());
    let Some(report) = report else {
        return Resume::Redo(
            "the output has no readable report (a run stopped before writing it)".into(),
        );
    };
    let version = env!("CARGO_PKG_VERSION");
    if report["bystander"] != version {
        return Resume::Redo(format!(
            "it was made by bystander {}, this is {version}",
            report["bystander"]
        ));
    }
    let (then, now) = (request(&report["settings"]), request(&opts.settings));
    if then != now {
        return Resume::Redo(format!("settings changed ({})", changed_keys(&then, &now)));
    }
    let sha = |p: &Path| crate::models::sha256_file(p).ok();
    if sha(&job.input).as_deref() != report["input_sha256"].as_str() {
        return Resume::Redo("the input changed since it was made".into());
    }
    if sha(&job.output).as_deref() != report["output_sha256"].as_str() {
        return Resume::Redo("the output was changed or replaced since it was made".into());
    }
    if opts.export_detections && !crate::review::detections_path_for(&job.output).is_file() {
        return Resume::Redo("its detections file was asked for and is missing".into());
    }
    Resume::Keep(report)
}

/// The names of the settings that differ between two records, for a log line.
fn changed_keys(a: &serde_json::Value, b: &serde_json::Value) -> String {
    let (Some(a), Some(b)) = (a.as_object(), b.as_object()) else {
        return "all".into();
    };
    let mut keys: Vec<&str> = a
        .keys()
        .chain(b.keys())
        .map(String::as_str)
        .filter(|k| a.get(*k) != b.get(*k))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.join(", ")
}

/// Redacts every job of `plan`: photos `opts.jobs` at a time, then clips one at a time with
/// `opts.jobs` threads each, so the budget holds throughout. A failed file is recorded and the
/// run goes on, and so is a file whose work panicked; a finished output for this same request is
/// kept unless `overwrite` (see [`resume_state`]). Outcomes come back in the plan's order.
pub fn run(
    plan: &Plan,
    workers: &crate::pipeline::Workers,
    opts: &RunOptions,
    observer: &dyn Observer,
) -> Vec<Outcome> {
    use rayon::prelude::*;
    // The clips, which run one after another, share their detectors' sessions.
    let sessions = crate::detect::SessionCache::new();
    let run_one = |job: &Job| -> Outcome {
        let outcome = |status, redone, report, error| Outcome {
            input: job.input.clone(),
            output: job.output.clone(),
            status,
            redone,
            report,
            error,
        };
        let work = std::panic::AssertUnwindSafe(|| {
            if opts.stopped() {
                return outcome(Status::Stopped, None, None, Some(STOPPED.to_string()));
            }
            let report_path = report_path_for(&job.output);
            crate::image_io::remove_stale_temporaries(&job.output);
            crate::image_io::remove_stale_temporaries(&report_path);
            crate::image_io::remove_stale_temporaries(&crate::review::detections_path_for(
                &job.output,
            ));
            let redone = match (opts.overwrite, resume_state(job, opts)) {
                (false, Resume::Keep(report)) => {
                    return outcome(Status::Kept, None, Some(report), None)
                }
                (_, Resume::Fresh) => None,
                (true, _) => Some("--overwrite".to_string()),
                (false, Resume::Redo(why)) => Some(why),
            };
            // The old report goes before the new output exists: a report on disk is always
            // younger than its output.
            if let Err(e) = remove_if_there(&report_path) {
                return outcome(Status::Failed, redone, None, Some(one_line(&e.to_string())));
            }
            match redact_one(job, workers, opts, observer, &sessions) {
                Ok(report) => outcome(Status::Redacted, redone, Some(report), None),
                // A clip stopped half way fails with the stop as its error.
                Err(_) if opts.stopped() => {
                    outcome(Status::Stopped, redone, None, Some(STOPPED.to_string()))
                }
                Err(e) => outcome(Status::Failed, redone, None, Some(one_line(&e.to_string()))),
            }
        });
        let o = std::panic::catch_unwind(work).unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            let _ = std::fs::remove_file(crate::image_io::temp_path_for(&job.output));
            let e = format!(
                "{}: internal error, nothing written for this file (please report it): {what}",
                Shown(&job.input)
            );
            outcome(Status::Failed, None, None, Some(one_line(&e)))
        });
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
        if !clips.is_empty() {
            workers.release();
        }
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

/// The summary of a run, as `bystander redact --json` prints it and the Python package returns it:
/// the output folder, counts, the files passed over and every file's outcome.
pub fn summary(output: &Path, plan: &Plan, outcomes: &[Outcome]) -> serde_json::Value {
    let count = |s: Status| outcomes.iter().filter(|o| o.status == s).count();
    let skipped: Vec<_> = plan
        .skipped
        .iter()
        .map(|(p, why)| serde_json::json!({"path": files::json(p), "reason": why}))
        .collect();
    serde_json::json!({
        "output": files::json(output), "redacted": count(Status::Redacted),
        "kept": count(Status::Kept), "failed": count(Status::Failed),
        "stopped": count(Status::Stopped), "skipped": skipped,
        "files": outcomes,
    })
}

fn remove_if_there(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
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
    sessions: &crate::detect::SessionCache,
) -> Result<serde_json::Value> {
    if let Some(parent) = job.output.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    let export = opts
        .export_detections
        .then(|| crate::review::detections_path_for(&job.output));
    let clip = is_clip(&job.input);
    // Hashed before it is read for redaction: the report describes what the output was made from.
    let input_sha256 = crate::models::sha256_file(&job.input)?;
    let mut record =
        serde_json::json!({ "input": files::json(&job.input), "output": files::json(&job.output) });
    if clip {
        #[cfg(feature = "video")]
        {
            observer.started(job, crate::video::frame_count_estimate(&job.input));
            let (detect, redact) = workers.configs();
            let mut detect = detect.for_clips();
            detect.sessions.get_or_insert_with(|| sessions.clone());
            let mut v = opts.video.clone();
            v.set_thread_budget(opts.jobs);
            v.max_pixels = opts.max_pixels;
            v.stop = opts.stop.clone();
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
            // How many detected frames the change gate searched whole, and in regions only.
            record["gate"] = serde_json::to_value(r.gate).unwrap_or_else(|e| e.to_string().into());
            record["fail_closed_frames"] = r.fail_closed_frames.into();
            record["lost_frames"] = r.lost_frames.into();
            record["decode_errors"] = r.decode_errors.into();
            record["unreadable_packets"] = r.unreadable_packets.into();
            record["unread_frames"] = r.unread_frames.into();
            record["unread_seconds"] = r.unread_seconds.into();
            record["rotation"] = r.rotation.into();
            // As the detection used it (an f32), to four places rather than its binary digits.
            record["pixel_aspect"] = ((f64::from(r.pixel_aspect) * 1e4).round() / 1e4).into();
            record["interlaced"] = r.interlaced.into();
            // Frames that looked interlaced all the same, searched field by field too.
            record["combed_frames"] = r.combed_frames.into();
            // HDR frames (`pq`, `hlg`) were detected as an SDR display shows them.
            record["transfer"] =
                serde_json::to_value(r.transfer).unwrap_or_else(|e| e.to_string().into());
            record["dropped_streams"] =
                serde_json::to_value(&r.dropped_streams).unwrap_or_else(|e| e.to_string().into());
            record["reencoded_streams"] =
                serde_json::to_value(&r.reencoded_streams).unwrap_or_else(|e| e.to_string().into());
            // Frames with a detection the previous or next frame lacks: what the hold covers.
            record["flicker_frames"] = serde_json::json!({
                "without_hold": r.flicker_frames_without_hold,
                "with_hold": r.flicker_frames_with_hold,
            });
            record["seconds"] = r.seconds.into();
            record["models"] = opts.settings["clip_models"].clone();
        }
        #[cfg(not(feature = "video"))]
        {
            let _ = sessions;
            return Err(Error::Unsupported {
                path: job.input.clone(),
                reason: "this build has no video support (feature `video`)".into(),
            });
        }
    } else {
        observer.started(job, None);
        let r = workers.with(|r| {
            crate::pipeline::redact_image_file_exporting(
                r,
                &job.input,
                &job.output,
                export.as_deref(),
                opts.max_pixels,
            )
        })?;
        record["faces"] = r.faces.into();
        record["plates"] = r.plates.into();
        record["fail_closed_frames"] = 0.into();
        record["seconds"] = r.seconds.into();
        record["models"] = opts.settings["photo_models"].clone();
    }
    record["input_sha256"] = input_sha256.into();
    record["output_sha256"] = crate::models::sha256_file(&job.output)?.into();
    if let Some(e) = &export {
        record["detections_file"] = files::json(e);
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
    fn shards_are_disjoint_and_together_the_whole_plan() {
        let jobs: Vec<Job> = (0..23)
            .map(|i| Job {
                input: PathBuf::from(format!("in/{:02}.jpg", (i * 7) % 23)),
                output: PathBuf::from(format!("out/{i}")),
            })
            .collect();
        let plan = Plan {
            jobs: jobs.clone(),
            skipped: vec![(PathBuf::from("in/a.txt"), "x".into())],
        };
        for count in [1, 2, 3, 5, 23, 40] {
            let mut seen = Vec::new();
            for index in 0..count {
                let part = plan.clone().shard(Shard { index, count });
                let n = part.jobs.len();
                assert!(
                    n == 23 / count || n == 23 / count + 1,
                    "{index}/{count}: {n}"
                );
                seen.extend(part.jobs);
            }
            seen.sort_by(|a, b| a.input.cmp(&b.input));
            let mut all = jobs.clone();
            all.sort_by(|a, b| a.input.cmp(&b.input));
            assert_eq!(seen, all, "count {count}");
        }
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        for bad in ["4/4", "1/0", "x/2", "1", "-1/3", "0/100001"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[cfg(feature = "video")]
    #[test]
    fn a_renamed_clip_whose_copy_takes_another_inputs_name_is_skipped() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("in");
        std::fs::create_dir_all(&src).unwrap();
        for name in ["cam.264", "cam.264.mp4", "yard.264"] {
            std::fs::write(src.join(name), b"").unwrap();
        }
        let out = d.path().join("out");
        let plan = plan(std::slice::from_ref(&src), &out, is_supported).unwrap();
        let jobs: Vec<_> = plan
            .jobs
            .iter()
            .map(|j| (j.input.clone(), j.output.clone()))
            .collect();
        assert_eq!(
            jobs,
            [
                (src.join("cam.264.mp4"), out.join("cam.264.mp4")),
                (src.join("yard.264"), out.join("yard.264.mp4")),
            ]
        );
        assert_eq!(plan.skipped.len(), 1, "{:?}", plan.skipped);
        assert_eq!(plan.skipped[0].0, src.join("cam.264"));
        assert!(plan.skipped[0].1.contains("rename one"));
    }

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

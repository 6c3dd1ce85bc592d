//! Turning the command line's inputs into (input, output) jobs.
//!
//! A folder's contents are mirrored under the output folder (`DIR/a/b.jpg` → `OUT/a/b.jpg`); a
//! file named on the command line lands at `OUT/<its name>`. Inputs are sacred: an output folder
//! inside an input folder (which the walk would then read back) and an output path equal to an
//! input are refused before anything runs.

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
    #[cfg(feature = "video")]
    if crate::video::is_video_path(path) {
        return true;
    }
    is_image_path(path)
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

//! What the operator sees while a batch runs: bars on a terminal, plain lines otherwise.
//!
//! Why two forms: a bar with an ETA is what a person at a terminal wants, but in a log file or a
//! pipe the same redraws are noise, so there each finished file gets one line instead. Errors
//! always go to stderr, one line each, naming the file.

use bystander::files::Shown;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bystander::batch::{Job, Observer, Outcome, Status};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where progress lines go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Nothing but errors.
    Quiet,
    /// Lines on stdout.
    Stdout,
    /// Lines on stderr (stdout carries JSON).
    Stderr,
}

pub struct Progress {
    lines: Lines,
    total: usize,
    done: AtomicUsize,
    bars: Option<(MultiProgress, ProgressBar)>,
    clip_bars: Mutex<Vec<(std::path::PathBuf, ProgressBar)>>,
}

impl Progress {
    /// Bars when stderr is a terminal (and not quiet), lines otherwise.
    pub fn new(lines: Lines, total: usize) -> Progress {
        let bars = (lines != Lines::Quiet && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
            let overall = multi.add(ProgressBar::new(total as u64));
            overall.set_style(
                ProgressStyle::with_template(
                    "{elapsed_precise} [{wide_bar}] {pos}/{len} files, ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            overall.enable_steady_tick(Duration::from_millis(250));
            (multi, overall)
        });
        Progress {
            lines,
            total,
            done: AtomicUsize::new(0),
            bars,
            clip_bars: Mutex::new(Vec::new()),
        }
    }

    /// Prints a line above the bars, or plainly.
    pub fn say(&self, line: &str) {
        match (&self.bars, self.lines) {
            (_, Lines::Quiet) => {}
            (Some((multi, _)), _) => {
                let _ = multi.println(line);
            }
            (None, Lines::Stdout) => println!("{line}"),
            (None, Lines::Stderr) => eprintln!("{line}"),
        }
    }

    /// Prints an error line on stderr (even when quiet).
    pub fn error(&self, line: &str) {
        match &self.bars {
            Some((multi, _)) => multi.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    /// Removes the bars.
    pub fn finish(&self) {
        if let Some((multi, overall)) = &self.bars {
            overall.finish_and_clear();
            let _ = multi.clear();
        }
    }

    fn clip_bar(&self, path: &Path) -> Option<ProgressBar> {
        self.clip_bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, b)| b.clone())
    }
}

fn name(p: &Path) -> String {
    p.file_name().map_or_else(
        || Shown(p).to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

impl Observer for Progress {
    fn started(&self, job: &Job, frames: Option<u64>) {
        let Some((multi, _)) = &self.bars else {
            return;
        };
        if !bystander::batch::is_clip(&job.input) {
            return;
        }
        let bar = multi.add(match frames {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        });
        bar.set_style(
            ProgressStyle::with_template(
                "  {msg} [{bar:30}] {pos}/{len} frames, {per_sec}, ETA {eta}",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar.set_message(name(&job.input));
        self.clip_bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((job.input.clone(), bar));
    }

    fn frames(&self, job: &Job, done: usize) {
        if let Some(bar) = self.clip_bar(&job.input) {
            bar.set_position(done as u64);
        }
    }

    fn finished(&self, job: &Job, o: &Outcome) {
        let n = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = self.clip_bar(&job.input) {
            bar.finish_and_clear();
            self.clip_bars
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|(p, _)| p != &job.input);
        }
        if let Some((_, overall)) = &self.bars {
            overall.set_position(n as u64);
        }
        let total = self.total;
        let get = |k: &str| o.report.as_ref().and_then(|r| r[k].as_u64()).unwrap_or(0);
        match o.status {
            Status::Kept => self.say(&format!(
                "[{n}/{total}] kept {} (finished earlier from the same input and settings; --overwrite redoes it)",
                Shown(&o.output)
            )),
            Status::Redacted => {
                let mut line = format!(
                    "[{n}/{total}] {} -> {}: {} faces, {} plates",
                    Shown(&o.input),
                    Shown(&o.output),
                    get("faces"),
                    get("plates"),
                );
                if let Some(r) = &o.report {
                    if let Some(frames) = r["frames"].as_u64() {
                        let secs = r["seconds"].as_f64().unwrap_or(0.0).max(1e-9);
                        line += &format!(
                            " in {frames} frames ({:.1} fps), {} fail-closed frames",
                            frames as f64 / secs,
                            get("fail_closed_frames")
                        );
                        let unread = get("unread_frames");
                        let unread_s = r["unread_seconds"].as_f64().unwrap_or(0.0);
                        if unread > 0 {
                            line += &format!(
                                ", {unread} frames the input lists but does not hold (cut short?) left out"
                            );
                        } else if unread_s > 0.0 {
                            line += &format!(
                                ", {unread_s:.1} s the input declares but does not hold (cut short?) left out"
                            );
                        }
                        let damaged = get("unreadable_packets");
                        if damaged > 0 {
                            line += &format!(", {damaged} damaged packets of the input skipped");
                        }
                        if let Some(left) = left_out(&r["dropped_streams"]) {
                            line += &format!(", streams left out (why: its report): {left}");
                        }
                        let again = r["reencoded_streams"].as_array().map_or(0, Vec::len);
                        if again > 0 {
                            line += &format!(
                                ", {again} sound stream{} encoded again as AAC (the output's container cannot carry it as it is)",
                                if again == 1 { "" } else { "s" }
                            );
                        }
                    }
                    line += &format!(" ({:.2} s)", r["seconds"].as_f64().unwrap_or(0.0));
                }
                if let Some(why) = &o.redone {
                    line += &format!(", redone: {why}");
                }
                self.say(&line);
            }
            Status::Failed => self.error(&format!(
                "bystander: {}",
                o.error.as_deref().unwrap_or("failed")
            )),
            // Counted on the run's last line, not one line per file left.
            Status::Stopped => {}
        }
    }
}

/// The streams a clip's report lists as not copied, counted by kind in the order first listed
/// ("1 video, 2 subtitle"): an operator sees on the file's line that the output holds less than
/// the input (a second camera's picture, sound, subtitles, GPS tracks); `None` where none was.
fn left_out(dropped: &serde_json::Value) -> Option<String> {
    let mut kinds: Vec<(&str, usize)> = Vec::new();
    for kind in dropped
        .as_array()?
        .iter()
        .filter_map(|d| d["kind"].as_str())
    {
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    (!kinds.is_empty()).then(|| {
        kinds
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    })
}

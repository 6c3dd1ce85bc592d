//! Change- and track-gated detection: on a fixed camera, look only where the picture changed or
//! where an object was just found, and sweep the whole frame every few frames.
//!
//! Doorbells and NVR cameras do not move. Most of each frame is the background of the frame
//! before, and searching it again costs most of the time on long, empty stretches. The gate keeps
//! a small luma map of the frame (the mean of each [`CELL`] x [`CELL`] block) and, per cell, the
//! value it had when detection last looked at it. On a detected frame it hands the detectors
//! ([`Look::Regions`]) the rectangles around
//!
//! * cells whose luma moved by more than [`GateConfig::threshold`] since they were last looked at
//!   (a reference that is only updated where detection looked, so slow drift adds up until it
//!   counts), kept in view for as many detected frames as the interleaved models need for each of
//!   them to see the change once, and
//! * every object detected in the last `hold` frames plus the frames in flight, grown by its size:
//!   a face that stops moving is still looked at on every detected frame, so its mask never
//!   lapses for want of a look.
//!
//! On by default only for files at the fast preset ([`crate::engine::default_file_gating`] says
//! why); off at the other presets ([`GateConfig::default`] says why) and on live streams and the
//! host API, which have no look-ahead to back-fill with. `--gating` / `--no-gating` (CLI),
//! `gating=True` / `False` (Python) or [`GateConfig::on`] decide it either way.
//!
//! The whole frame is searched as without gating ([`Look::Full`]) on the first frame, every
//! [`GateConfig::sweep_every`] frames, when more than half the cells changed at once (a scene
//! cut, the camera moved, an exposure jump), when the regions would be many, and where looking at
//! the regions would cost a model more than the whole frame (decided per model, see
//! `detect::ModelDetector::detect_in`).
//!
//! **The privacy argument.** Detection is a function of the pixels. A face the gate does not look
//! at on a frame lies in cells whose picture has not changed by more than the threshold since
//! every model last looked at them, away from anything found lately: the same face, in the same
//! place, was in front of the detectors then, and they did not find it. Looking again at nearly
//! the same pixels is what ungated detection does on every frame, and it mostly gives the same
//! answer; what gating gives up is the chance that compression noise tips a score over the
//! threshold on a later frame. The sweeps bound that: a face any sweep finds is tracked from then
//! on (looked at every frame), and in files its mask is back-filled over the look-ahead, which is
//! at least the sweep period (see [`GateConfig::sweep_every`]), so every frame since the previous
//! sweep is covered too. On a live stream (no look-ahead) the exposure is bounded by the sweep
//! period. A face that *appears*, or moves, changes the cells it covers and is looked at on that
//! frame, at native resolution (crops are magnified at least as much as the whole-frame pass, and
//! never shrunk), which finds small faces the whole-frame pass at 960 px misses. The reference
//! coverage check (`scripts/interleave_check.py`) measures what gating costs on real clips.

use super::picture::Luma;
use super::Picture;

use crate::detect::Rect;
use crate::error::{Error, Result};
use crate::geometry::{BBox, Class, Detection};

/// Side, in pixels, of the square blocks whose mean luma the change map compares.
pub const CELL: u32 = 8;
/// Share of cells that must change at once for the frame to be swept whole (a scene cut, the
/// camera moved, the exposure jumped): looking at regions that cover most of the frame costs more
/// than the frame.
const GLOBAL_CHANGE: f32 = 0.5;
/// More separate regions than this and the frame is swept whole instead (each crop is a model run
/// with its own overhead).
const MAX_REGIONS: usize = 12;
/// Least margin, in pixels, around changed cells: the part of a head that moved may be its edge.
const MIN_MARGIN: f32 = 16.0;
/// Least side of a region, in pixels: a detector needs some context around a small face.
const MIN_SIDE: u32 = 64;

/// Whether and how detection is gated by change (see the module doc).
///
/// ```
/// use bystander::engine::gate::GateConfig;
/// assert!(!GateConfig::default().enabled); // off unless asked for (`--gating`)
/// let g = GateConfig::on();
/// assert!(g.enabled && g.sweep_every == 8);
/// assert!(GateConfig { sweep_every: 0, ..g }.validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
pub struct GateConfig {
    /// Gate detection at all; off, every detected frame is searched whole.
    pub enabled: bool,
    /// Frames between whole-frame sweeps (1 to 100). Clips get at least this much look-ahead,
    /// so a face a sweep finds is back-filled to the previous sweep.
    pub sweep_every: usize,
    /// Change in a cell's mean luma (0 to 255) that counts as the picture changing there (1 to
    /// 255).
    pub threshold: u8,
}

/// Off: at the balanced preset, on room_432p_long, the gate leaves 0.7 points more of the
/// reference boxes uncovered than searching every frame whole (BENCHMARKS.md, "Change-gated
/// detection" and "Context around gated face crops"), so it is not yet safe to be the default
/// there. The fast preset turns it on for files ([`crate::engine::default_file_gating`]).
impl Default for GateConfig {
    fn default() -> Self {
        GateConfig {
            enabled: false,
            sweep_every: 8,
            threshold: 8,
        }
    }
}

impl GateConfig {
    /// The gate on, with the default sweep period and threshold.
    pub fn on() -> GateConfig {
        GateConfig {
            enabled: true,
            ..GateConfig::default()
        }
    }

    /// Checks the ranges, naming the setting and what is allowed.
    pub fn validate(&self) -> Result<()> {
        crate::engine::check_range("sweep-every", self.sweep_every, 1, 100, "1 to 100 frames")?;
        if self.threshold == 0 {
            return Err(Error::InvalidSetting {
                name: "gate threshold",
                value: "0".into(),
                allowed: "1 to 255 luma levels",
            });
        }
        Ok(())
    }
}

/// Where detection looks on one frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Look {
    /// The whole frame, with every pass of the plan (as without gating).
    Full,
    /// Only these rectangles, at native resolution or more; none when nothing changed and
    /// nothing is tracked.
    Regions(Vec<Rect>),
}

/// What the gate did, for the engine's statistics.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct GateStats {
    /// Detected frames searched whole.
    pub swept_frames: usize,
    /// Detected frames searched in regions only.
    pub gated_frames: usize,
    /// Of those, frames with nothing to look at.
    pub idle_frames: usize,
    /// Sum over gated frames of the share of the frame the regions cover.
    pub region_share: f64,
}

impl GateStats {
    /// Adds another run's counts to these.
    pub fn add(&mut self, o: &GateStats) {
        self.swept_frames += o.swept_frames;
        self.gated_frames += o.gated_frames;
        self.idle_frames += o.idle_frames;
        self.region_share += o.region_share;
    }
}

/// The gate's state across the frames of one sequence.
pub(crate) struct Gate {
    cfg: GateConfig,
    /// Detected frames a changed cell stays in view (each interleaved model sees it once).
    persist: u8,
    /// Frames a detection stays in view.
    watch_for: usize,
    /// Frames between a detection's frame and the first frame whose look it may shape: the
    /// frames in flight, so that what the gate sees does not depend on when answers arrive.
    lag: usize,
    size: (u32, u32),
    cols: usize,
    rows: usize,
    reference: Vec<u8>,
    current: Vec<u8>,
    /// Detected frames each cell stays in view.
    hot: Vec<u8>,
    last_sweep: Option<usize>,
    watched: Vec<(Class, BBox, usize)>,
    stats: GateStats,
}

impl Gate {
    /// A gate with `cfg`, keeping changes in view for `persist` detected frames and detections
    /// for `watch_for` frames, from `lag` frames after theirs on (the engine's frames in flight:
    /// the answer for frame `i` is always in by the time frame `i + lag` is pushed).
    pub fn new(cfg: GateConfig, persist: usize, watch_for: usize, lag: usize) -> Gate {
        Gate {
            cfg,
            persist: persist.clamp(1, 255) as u8,
            watch_for,
            lag,
            size: (0, 0),
            cols: 0,
            rows: 0,
            reference: Vec::new(),
            current: Vec::new(),
            hot: Vec::new(),
            last_sweep: None,
            watched: Vec::new(),
            stats: GateStats::default(),
        }
    }

    pub fn stats(&self) -> GateStats {
        self.stats
    }

    /// Whether [`Gate::look_at`] needs the frame's [`LumaCells`].
    pub fn enabled(&self) -> bool {
        self.cfg.enabled
    }

    /// Decides where detection looks on frame `index` (a frame that is detected).
    #[cfg(test)]
    pub fn look(&mut self, index: usize, image: &dyn super::Picture) -> Look {
        let cells = self.cfg.enabled.then(|| LumaCells::of(image));
        self.look_at(index, cells.as_ref())
    }

    /// [`Gate::look`] with the frame's cells measured already (`None` only when the gate is
    /// off). A gate on with no cells, or cells the picture could not give in full, sweeps: what
    /// cannot be measured counts as changed. The reference stays as it was, so the next frame
    /// is compared with the last one measured.
    pub fn look_at(&mut self, index: usize, cells: Option<&LumaCells>) -> Look {
        let Some(cells) = cells.filter(|c| self.cfg.enabled && c.measured()) else {
            self.stats.swept_frames += 1;
            return Look::Full;
        };
        let (w, h) = cells.size;
        if (w, h) != self.size {
            self.size = (w, h);
            self.cols = w.div_ceil(CELL) as usize;
            self.rows = h.div_ceil(CELL) as usize;
            self.reference.clear();
            self.hot = vec![0; self.cols * self.rows];
            self.last_sweep = None;
        }
        self.current.clone_from(&cells.means);
        let t = self.cfg.threshold;
        let changed = if self.reference.len() == self.current.len() {
            self.current
                .iter()
                .zip(&self.reference)
                .filter(|(c, r)| c.abs_diff(**r) > t)
                .count()
        } else {
            self.current.len()
        };
        let due = self
            .last_sweep
            .is_none_or(|s| index >= s + self.cfg.sweep_every);
        if self.reference.len() != self.current.len() {
            // The first frame: every cell is new to every model.
            self.reference.clone_from(&self.current);
            self.hot.fill(self.persist);
        } else {
            for ((c, r), hot) in self
                .current
                .iter()
                .zip(self.reference.iter_mut())
                .zip(self.hot.iter_mut())
            {
                if c.abs_diff(*r) > t {
                    *r = *c;
                    *hot = self.persist;
                }
            }
        }
        if due || changed as f32 > GLOBAL_CHANGE * self.current.len() as f32 {
            return self.sweep(index);
        }
        let mut rects = self.changed_regions();
        for hot in self.hot.iter_mut() {
            *hot = hot.saturating_sub(1);
        }
        self.watched
            .retain(|(_, _, seen)| index <= seen + self.watch_for);
        // Sightings of one object on several frames make one region.
        let objects = self.objects(index, |o, b| *o = o.enclose(b));
        rects.extend(objects.iter().map(|(_, b)| watch_rect(b, w, h)));
        let rects = Rect::merge_overlapping(rects);
        if rects.len() > MAX_REGIONS {
            return self.sweep(index);
        }
        let area: u64 = rects.iter().map(|r| u64::from(r.w) * u64::from(r.h)).sum();
        self.stats.gated_frames += 1;
        self.stats.idle_frames += usize::from(rects.is_empty());
        self.stats.region_share += area as f64 / (f64::from(w) * f64::from(h)).max(1.0);
        Look::Regions(rects)
    }

    /// Looks at the whole frame. Where models take turns, only those whose turn it is look: the
    /// cells that changed stay in view (`hot`) for the others' turns, as on a gated frame, and the
    /// reference takes the whole frame (every cell was looked at).
    fn sweep(&mut self, index: usize) -> Look {
        self.reference.clone_from(&self.current);
        for hot in self.hot.iter_mut() {
            *hot = hot.saturating_sub(1);
        }
        self.last_sweep = Some(index);
        self.stats.swept_frames += 1;
        Look::Full
    }

    /// The objects found lately that frame `index` may know of (found on a frame at least
    /// `lag` before it and at most `watch_for`), latest first: the sightings of one object on
    /// several frames (same class, IoU over 0.3 with a later one) folded into one box by `fold`.
    fn objects(&self, index: usize, fold: impl Fn(&mut BBox, &BBox)) -> Vec<(Class, BBox)> {
        let mut visible: Vec<&(Class, BBox, usize)> = self
            .watched
            .iter()
            .filter(|(_, _, seen)| seen + self.lag < index && index <= seen + self.watch_for)
            .collect();
        visible.sort_by_key(|(_, _, seen)| std::cmp::Reverse(*seen));
        let mut objects: Vec<(Class, BBox)> = Vec::new();
        for (c, b, _) in visible {
            match objects
                .iter_mut()
                .find(|(oc, ob)| oc == c && ob.iou(b) > 0.3)
            {
                Some(o) => fold(&mut o.1, b),
                None => objects.push((*c, *b)),
            }
        }
        objects
    }

    /// Where each object found lately was last seen, latest first, for frame `index` (gate on
    /// or off): the places a detector with a second look looks at again, magnified, when its
    /// search of the frame finds nothing there (see `detect::ModelDetector::set_hints`). A
    /// small plate that the model finds at native resolution only now and then (on the hard
    /// plate clip of seed 19, one 16-px plate on 11 of 55 frames, the plate model on every
    /// frame) is then followed from frame to frame, and its mask does not lapse between the
    /// lucky ones.
    pub fn hints(&self, index: usize) -> Vec<(Class, BBox)> {
        self.objects(index, |_, _| {})
    }

    /// Forgets what detection was taken to have seen (a frame's detection failed): the next
    /// frame is swept whole, and the reference starts again from it.
    pub fn forget(&mut self) {
        self.reference.clear();
        self.last_sweep = None;
    }

    /// Keeps the objects detected on frame `index` in view (gate on), and as hints (on or off).
    pub fn watch(&mut self, index: usize, found: &[Detection]) {
        self.watched
            .extend(found.iter().map(|d| (d.class, d.bbox, index)));
        // Pruned here too, not only on gated frames: a stream of sweeps must not grow the list.
        let keep = self.watch_for + self.lag;
        self.watched.retain(|(_, _, seen)| seen + keep >= index);
    }

    /// Rectangles, in pixels, around the groups of cells in view (8-connected after growing each
    /// by a cell, so the fragments of one moving outline make one group), each grown by a margin.
    fn changed_regions(&self) -> Vec<Rect> {
        let (cols, rows) = (self.cols, self.rows);
        let near = |i: usize| -> bool {
            let (x, y) = ((i % cols) as isize, (i / cols) as isize);
            (-1..=1).any(|dy| {
                (-1..=1).any(|dx| {
                    let (nx, ny) = (x + dx, y + dy);
                    nx >= 0
                        && ny >= 0
                        && (nx as usize) < cols
                        && (ny as usize) < rows
                        && self.hot[ny as usize * cols + nx as usize] > 0
                })
            })
        };
        let mut grown: Vec<bool> = (0..cols * rows).map(near).collect();
        let mut out = Vec::new();
        let mut stack = Vec::new();
        for start in 0..grown.len() {
            if !grown[start] {
                continue;
            }
            grown[start] = false;
            stack.push(start);
            let (mut x1, mut y1, mut x2, mut y2) = (cols, rows, 0, 0);
            while let Some(i) = stack.pop() {
                let (x, y) = (i % cols, i / cols);
                (x1, y1, x2, y2) = (x1.min(x), y1.min(y), x2.max(x), y2.max(y));
                for ny in y.saturating_sub(1)..=(y + 1).min(rows - 1) {
                    for nx in x.saturating_sub(1)..=(x + 1).min(cols - 1) {
                        let j = ny * cols + nx;
                        if grown[j] {
                            grown[j] = false;
                            stack.push(j);
                        }
                    }
                }
            }
            let c = CELL as f32;
            let b = BBox::new(
                x1 as f32 * c,
                y1 as f32 * c,
                (x2 + 1) as f32 * c,
                (y2 + 1) as f32 * c,
            );
            let margin = (0.25 * b.width().max(b.height())).max(MIN_MARGIN);
            out.push(to_rect(
                &BBox::new(b.x1 - margin, b.y1 - margin, b.x2 + margin, b.y2 + margin),
                self.size.0,
                self.size.1,
            ));
        }
        out
    }
}

/// The region kept in view around an object found lately: its box grown by its own size on every
/// side (it may have moved that far while the frames in flight were detected).
fn watch_rect(b: &BBox, w: u32, h: u32) -> Rect {
    let gx = b.width().max(MIN_MARGIN);
    let gy = b.height().max(MIN_MARGIN);
    to_rect(&BBox::new(b.x1 - gx, b.y1 - gy, b.x2 + gx, b.y2 + gy), w, h)
}

/// The whole-pixel rectangle enclosing `b`, clipped to the frame, at least [`MIN_SIDE`] on each
/// side where the frame allows.
fn to_rect(b: &BBox, w: u32, h: u32) -> Rect {
    let span = |lo: f32, hi: f32, len: u32| -> (u32, u32) {
        let lo = if lo.is_finite() {
            lo.floor().max(0.0)
        } else {
            0.0
        };
        let hi = if hi.is_finite() {
            hi.ceil()
        } else {
            len as f32
        };
        let (mut a, mut b) = ((lo as u32).min(len), (hi.max(0.0) as u32).min(len));
        let need = MIN_SIDE.min(len);
        if b - a.min(b) < need {
            let mid = (a + b) / 2;
            a = mid.saturating_sub(need / 2).min(len - need);
            b = a + need;
        }
        (a, b - a)
    };
    let (x, rw) = span(b.x1, b.x2, w);
    let (y, rh) = span(b.y1, b.y2, h);
    Rect { x, y, w: rw, h: rh }
}

/// A frame's mean luma per [`CELL`] x [`CELL`] block (full range, 0 to 255), sampled on every
/// second pixel of every second row: what the gate compares from frame to frame, and what a
/// detector compares to skip a tile whose picture has not changed since it last looked (see
/// `detect::ModelDetector::set_changes`). Taken from the luma plane where the frame is YUV, so
/// that measuring it costs no conversion.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LumaCells {
    size: (u32, u32),
    cols: usize,
    means: Vec<u8>,
}

impl LumaCells {
    /// Measures `image`. A picture that does not hand its brightness over, lacks a row that is
    /// sampled (every second one), or lays its channels outside its pixels gives cells that are
    /// not [`measured`](Self::measured).
    pub(crate) fn of(image: &dyn Picture) -> LumaCells {
        let (w, h) = image.dimensions();
        let mut out = LumaCells {
            size: (w, h),
            cols: w.div_ceil(CELL) as usize,
            means: Vec::new(),
        };
        image.with_luma(&mut |luma| out.means = cell_means(&luma, w, h).unwrap_or_default());
        out
    }

    /// Whether every cell of the frame was measured (a frame with no pixels has none to measure,
    /// and counts as not measured).
    pub(crate) fn measured(&self) -> bool {
        let rows = self.size.1.div_ceil(CELL) as usize;
        !self.means.is_empty() && self.means.len() == self.cols * rows
    }

    /// Whether a cell that overlaps `r` differs by more than `threshold` between these cells and
    /// `earlier`'s (also when the two are of different frame sizes, either was not measured in
    /// full, or `r` reaches past the cells: what cannot be compared counts as changed).
    pub(crate) fn changed_in(&self, earlier: &LumaCells, r: Rect, threshold: u8) -> bool {
        if self.size != earlier.size || !self.measured() || !earlier.measured() {
            return true;
        }
        if r.w == 0 || r.h == 0 {
            return false;
        }
        let rows = self.means.len() / self.cols.max(1);
        let (c0, r0) = ((r.x / CELL) as usize, (r.y / CELL) as usize);
        let c1 = ((r.x + r.w).div_ceil(CELL) as usize).min(self.cols);
        let r1 = ((r.y + r.h).div_ceil(CELL) as usize).min(rows);
        if c0 >= c1 || r0 >= r1 {
            return true;
        }
        (r0..r1).any(|row| {
            let at = row * self.cols;
            self.means[at + c0..at + c1]
                .iter()
                .zip(&earlier.means[at + c0..at + c1])
                .any(|(a, b)| a.abs_diff(*b) > threshold)
        })
    }
}

#[cfg(test)]
impl LumaCells {
    /// Cells of a `w` x `h` frame with these means, row by row.
    pub(crate) fn from_means(w: u32, h: u32, means: Vec<u8>) -> LumaCells {
        LumaCells {
            size: (w, h),
            cols: w.div_ceil(CELL) as usize,
            means,
        }
    }
}

/// The cell means of a `w` x `h` frame (see [`LumaCells`]); `None` when the data lacks a row it
/// samples or lays its channels outside its pixels.
fn cell_means(luma: &Luma<'_>, w: u32, h: u32) -> Option<Vec<u8>> {
    let (cols, rows) = (w.div_ceil(CELL) as usize, h.div_ceil(CELL) as usize);
    let mut sums = vec![(0u32, 0u32); cols * rows];
    let (w, h) = (w as usize, h as usize);
    for y in (0..h).step_by(2) {
        let base = (y / CELL as usize) * cols;
        let mut add = |x: usize, v: u32| {
            let s = &mut sums[base + x / CELL as usize];
            s.0 += v;
            s.1 += 1;
        };
        luma.row_samples(y, w, 2, |x, v| add(x, u32::from(v)))?;
    }
    let video_range = luma.video_range();
    if sums.iter().any(|&(_, n)| n == 0) {
        return None;
    }
    let means = sums
        .iter()
        .map(|&(s, n)| {
            let n = u64::from(n);
            if video_range {
                // 16 to 235 stretched to 0 to 255, as the RGB a detector sees is (rounded once,
                // from the sum).
                let s = u64::from(s).saturating_sub(16 * n);
                ((s * 255 + 219 * n / 2) / (219 * n)).min(255) as u8
            } else {
                (u64::from(s) / n) as u8
            }
        })
        .collect();
    Some(means)
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::RgbImage;

    /// A frame held as a luma plane only, as a YUV picture hands it over.
    struct Plane {
        w: u32,
        h: u32,
        stride: usize,
        data: Vec<u8>,
        full_range: bool,
    }

    impl Picture for Plane {
        fn dimensions(&self) -> (u32, u32) {
            (self.w, self.h)
        }
        fn with_rgb(&self, _: &mut dyn FnMut(&RgbImage)) {
            panic!("the luma plane must be read as it is, not converted");
        }
        fn with_luma(&self, f: &mut dyn FnMut(Luma<'_>)) {
            f(Luma::Plane {
                data: &self.data,
                stride: self.stride,
                full_range: self.full_range,
            })
        }
    }

    /// Generated grey frames of every shape: the cells measured on a luma plane (full range, or
    /// video range with padded rows) are those measured on the same picture as RGB, to one level,
    /// without converting it.
    #[test]
    fn cells_from_a_luma_plane_are_those_from_its_rgb() {
        let mut rng = crate::TestRng::new(7);
        for case in 0..200 {
            let (w, h) = (1 + rng.below(90), 1 + rng.below(70));
            let levels: Vec<u8> = (0..w * h).map(|_| rng.below(256) as u8).collect();
            let rgb = RgbImage::from_fn(w, h, |x, y| {
                let v = levels[(y * w + x) as usize];
                image::Rgb([v, v, v])
            });
            let from_rgb = LumaCells::of(&rgb);
            for full_range in [true, false] {
                let stride = w as usize + rng.below(40) as usize;
                let mut data = vec![255u8; stride * h as usize];
                for y in 0..h as usize {
                    for x in 0..w as usize {
                        let v = u32::from(levels[y * w as usize + x]);
                        data[y * stride + x] = if full_range {
                            v as u8
                        } else {
                            (16 + (v * 219 + 127) / 255) as u8
                        };
                    }
                }
                let plane = Plane {
                    w,
                    h,
                    stride,
                    data,
                    full_range,
                };
                let from_plane = LumaCells::of(&plane);
                assert_eq!(from_plane.size, from_rgb.size, "case {case}");
                assert_eq!(from_plane.means.len(), from_rgb.means.len(), "case {case}");
                for (a, b) in from_plane.means.iter().zip(&from_rgb.means) {
                    assert!(
                        a.abs_diff(*b) <= 1,
                        "case {case} {w}x{h} full range {full_range}: {a} against {b}"
                    );
                }
            }
        }
    }

    /// A picture that hands over less brightness than its size asks for.
    enum Unreadable {
        /// Never calls back.
        Silent(u32, u32),
        /// A luma plane without its last rows.
        Cut(Plane),
        /// Packed pixels whose red lies outside the pixel.
        Misplaced(RgbImage),
    }

    impl Picture for Unreadable {
        fn dimensions(&self) -> (u32, u32) {
            match self {
                Unreadable::Silent(w, h) => (*w, *h),
                Unreadable::Cut(p) => (p.w, p.h),
                Unreadable::Misplaced(i) => i.dimensions(),
            }
        }
        fn with_rgb(&self, _: &mut dyn FnMut(&RgbImage)) {}
        fn with_luma(&self, f: &mut dyn FnMut(Luma<'_>)) {
            match self {
                Unreadable::Silent(..) => {}
                Unreadable::Cut(p) => p.with_luma(f),
                Unreadable::Misplaced(i) => f(Luma::Packed {
                    data: i.as_raw(),
                    stride: i.width() as usize * 3,
                    bytes: 3,
                    rgb: [3, 1, 2],
                }),
            }
        }
    }

    /// What cannot be measured counts as changed: on generated sizes, a picture that gives no
    /// brightness, too few rows of it, or channels outside its pixels is swept whole by a gate
    /// that has seen the same frame size still for a while, and every rectangle of it counts as
    /// changed against measured cells, at any threshold.
    #[test]
    fn a_frame_whose_brightness_cannot_be_read_is_looked_at_whole() {
        let mut rng = crate::TestRng::new(23);
        for case in 0..150 {
            let (w, h) = (1 + rng.below(200), 2 + rng.below(150));
            let still = frame(w, h, None);
            let known = LumaCells::of(&still);
            assert!(known.measured(), "case {case}");
            // Short of the last row sampled (every second one from the first).
            let rows = rng.below(((h - 1) & !1) + 1) as usize;
            let unreadable = match case % 3 {
                0 => Unreadable::Silent(w, h),
                1 => Unreadable::Cut(Plane {
                    w,
                    h,
                    stride: w as usize,
                    data: vec![90; w as usize * rows],
                    full_range: true,
                }),
                _ => Unreadable::Misplaced(still.clone()),
            };
            let cells = LumaCells::of(&unreadable);
            assert!(!cells.measured(), "case {case}");
            let mut g = Gate::new(
                GateConfig {
                    sweep_every: 1000,
                    ..GateConfig::on()
                },
                2,
                10,
                0,
            );
            for i in 0..4 {
                g.look(i, &still);
            }
            assert_eq!(g.look_at(4, Some(&cells)), Look::Full, "case {case}");
            let (x, y) = (rng.below(w), rng.below(h));
            let r = Rect {
                x,
                y,
                w: 1 + rng.below(w - x),
                h: 1 + rng.below(h - y),
            };
            assert!(cells.changed_in(&known, r, 255), "case {case}");
            assert!(known.changed_in(&cells, r, 255), "case {case}");
        }
    }

    /// `changed_in` says a rectangle changed exactly when a cell it overlaps moved by more than
    /// the threshold, on generated cells and rectangles; frames of another size always count as
    /// changed.
    #[test]
    fn a_rectangle_changed_exactly_where_a_cell_under_it_did() {
        let mut rng = crate::TestRng::new(11);
        for case in 0..300 {
            let (w, h) = (8 + rng.below(300), 8 + rng.below(200));
            let (cols, rows) = (w.div_ceil(CELL), h.div_ceil(CELL));
            let before: Vec<u8> = (0..cols * rows).map(|_| rng.below(256) as u8).collect();
            let mut after = before.clone();
            for _ in 0..rng.below(4) {
                let i = rng.below(cols * rows) as usize;
                after[i] = after[i].wrapping_add(rng.below(40) as u8);
            }
            let (a, b) = (
                LumaCells::from_means(w, h, after.clone()),
                LumaCells::from_means(w, h, before.clone()),
            );
            let threshold = 1 + rng.below(20) as u8;
            for _ in 0..20 {
                let (x, y) = (rng.below(w), rng.below(h));
                let r = Rect {
                    x,
                    y,
                    w: 1 + rng.below(w - x),
                    h: 1 + rng.below(h - y),
                };
                let expected = (0..cols * rows).any(|i| {
                    let (cx, cy) = ((i % cols) * CELL, (i / cols) * CELL);
                    let overlaps =
                        cx < r.x + r.w && r.x < cx + CELL && cy < r.y + r.h && r.y < cy + CELL;
                    overlaps && after[i as usize].abs_diff(before[i as usize]) > threshold
                });
                assert_eq!(
                    a.changed_in(&b, r, threshold),
                    expected,
                    "case {case} {r:?}"
                );
            }
            let other = LumaCells::from_means(w + CELL, h, vec![0; ((cols + 1) * rows) as usize]);
            assert!(a.changed_in(&other, Rect::full(w, h), 255), "case {case}");
        }
    }

    fn frame(w: u32, h: u32, square: Option<(u32, u32, u32)>) -> RgbImage {
        let mut img = RgbImage::from_pixel(w, h, image::Rgb([90, 90, 90]));
        if let Some((x, y, s)) = square {
            for yy in y..(y + s).min(h) {
                for xx in x..(x + s).min(w) {
                    img.put_pixel(xx, yy, image::Rgb([230, 200, 180]));
                }
            }
        }
        img
    }

    fn inside(r: &Rect, x: u32, y: u32, s: u32) -> bool {
        r.x <= x && r.y <= y && x + s <= r.x + r.w && y + s <= r.y + r.h
    }

    #[test]
    fn first_frame_and_every_sweep_period_look_at_the_whole_frame() {
        let cfg = GateConfig::on();
        let mut g = Gate::new(cfg, 2, 10, 0);
        let still = frame(320, 240, None);
        for i in 0..20 {
            let look = g.look(i, &still);
            assert_eq!(
                look == Look::Full,
                i % cfg.sweep_every == 0,
                "frame {i}: {look:?}"
            );
            if i == 1 {
                // The first frame is new to the model whose turn comes next, too.
                assert_eq!(look, Look::Regions(vec![Rect::full(320, 240)]));
            } else if look != Look::Full {
                assert_eq!(look, Look::Regions(vec![]), "frame {i}");
            }
        }
    }

    /// A sweep is looked at by the models whose turn it is: what changed on it stays in view for
    /// the others (two turns here), and is then dropped.
    #[test]
    fn a_change_on_a_sweep_stays_in_view_for_the_next_turns() {
        let cfg = GateConfig::on();
        let mut g = Gate::new(cfg, 2, 10, 0);
        for i in 0..cfg.sweep_every {
            g.look(i, &frame(320, 240, None));
        }
        let appeared = frame(320, 240, Some((200, 100, 30)));
        assert_eq!(g.look(cfg.sweep_every, &appeared), Look::Full);
        match g.look(cfg.sweep_every + 1, &appeared) {
            Look::Regions(rs) => assert!(
                rs.iter().any(|r| inside(r, 200, 100, 30)) && rs.len() == 1,
                "{rs:?}"
            ),
            Look::Full => panic!("not a sweep frame"),
        }
        assert_eq!(
            g.look(cfg.sweep_every + 2, &appeared),
            Look::Regions(vec![])
        );
    }

    /// Generated cases: an object of random size appears at a random place (and then moves) on an
    /// otherwise still picture; every frame it changes is looked at in a region that holds it
    /// whole, and once it is found it stays in view when it stops.
    #[test]
    fn every_change_lies_whole_inside_a_region_and_found_objects_stay_in_view() {
        let mut rng = crate::TestRng::new(0x2545_f491_4f6c_dd1d);
        let mut next = |n: u32| rng.below(n);
        for case in 0..200 {
            let (w, h) = (200 + next(600), 150 + next(450));
            let s = 10 + next(60).min(w.min(h) - 12);
            let (mut x, mut y) = (next(w - s), next(h - s));
            let mut g = Gate::new(GateConfig::on(), 2, 12, 0);
            g.look(0, &frame(w, h, None));
            for i in 1..7 {
                let img = frame(w, h, Some((x, y, s)));
                let look = g.look(i, &img);
                match &look {
                    Look::Full => {}
                    Look::Regions(rs) => assert!(
                        rs.iter().any(|r| inside(r, x, y, s)),
                        "case {case} frame {i}: square {s} at ({x},{y}) outside {rs:?}"
                    ),
                }
                // The detector finds it; then it stops moving after frame 3.
                let found = Detection {
                    bbox: BBox::new(x as f32, y as f32, (x + s) as f32, (y + s) as f32),
                    score: 0.9,
                    class: Class::Face,
                    landmarks: Vec::new(),
                };
                g.watch(i, &[found]);
                if i < 3 {
                    x = (x + next(5)).min(w - s);
                    y = (y + next(5)).min(h - s);
                }
            }
        }
    }

    #[test]
    fn a_global_change_sweeps_the_frame() {
        let mut g = Gate::new(GateConfig::on(), 2, 10, 0);
        g.look(0, &frame(320, 240, None));
        let brighter = RgbImage::from_pixel(320, 240, image::Rgb([140, 140, 140]));
        assert_eq!(g.look(1, &brighter), Look::Full);
        // Every cell changed: the next model's turn sees the whole frame as well.
        assert_eq!(
            g.look(2, &brighter),
            Look::Regions(vec![Rect::full(320, 240)])
        );
        assert_eq!(g.look(3, &brighter), Look::Regions(vec![]));
    }

    /// After a failed detection nothing may be taken as seen: the next frame is swept and every
    /// cell stays in view for the other models' turns, as on a first frame.
    #[test]
    fn a_forgotten_gate_looks_at_everything_again_for_every_model() {
        let cfg = GateConfig::on();
        let still = frame(320, 240, None);
        for failed in 1..cfg.sweep_every {
            let mut g = Gate::new(cfg, 2, 10, 0);
            for i in 0..=failed {
                g.look(i, &still);
            }
            g.forget();
            assert_eq!(g.look(failed + 1, &still), Look::Full, "after {failed}");
            assert_eq!(
                g.look(failed + 2, &still),
                Look::Regions(vec![Rect::full(320, 240)])
            );
            assert_eq!(g.look(failed + 3, &still), Look::Regions(vec![]));
        }
    }

    #[test]
    fn slow_drift_adds_up_until_it_is_looked_at() {
        let mut g = Gate::new(
            GateConfig {
                sweep_every: 100,
                ..GateConfig::on()
            },
            1,
            10,
            0,
        );
        g.look(0, &frame(320, 240, None));
        // A patch brightening by 3 levels a frame: under the threshold frame to frame.
        let mut seen = false;
        for i in 1..10u8 {
            let mut img = frame(320, 240, None);
            for y in 100..140 {
                for x in 100..140 {
                    img.put_pixel(x, y, image::Rgb([90 + 3 * i; 3]));
                }
            }
            if let Look::Regions(rs) = g.look(usize::from(i), &img) {
                seen |= rs.iter().any(|r| inside(r, 100, 100, 40));
            }
        }
        assert!(seen, "the drift was never looked at");
    }

    #[test]
    fn sightings_are_forgotten_even_when_every_frame_is_swept() {
        let mut g = Gate::new(GateConfig::on(), 2, 10, 6);
        let d = Detection {
            bbox: BBox::new(10.0, 10.0, 30.0, 30.0),
            score: 0.9,
            class: Class::Face,
            landmarks: Vec::new(),
        };
        for i in 0..10_000 {
            g.watch(i, std::slice::from_ref(&d));
        }
        assert!(g.watched.len() <= 17, "{} sightings kept", g.watched.len());
    }

    #[test]
    fn hints_come_after_the_frames_in_flight_latest_first_gate_on_or_off() {
        // Generated sightings: frame `index` gets as hints exactly the objects found on frames
        // from `index - watch_for` to `index - lag - 1`, one per object (sightings of a moving
        // object fold into its latest box), the latest first; the gate off changes nothing.
        let (watch_for, lag) = (12, 4);
        let mut rng = crate::TestRng::new(5);
        for enabled in [true, false] {
            let cfg = GateConfig {
                enabled,
                ..GateConfig::on()
            };
            let mut g = Gate::new(cfg, 2, watch_for, lag);
            let mut found: Vec<(usize, BBox)> = Vec::new();
            for index in 0..300 {
                let hints = g.hints(index);
                let want: Vec<BBox> = found
                    .iter()
                    .rev()
                    .filter(|(seen, _)| seen + lag < index && index <= seen + watch_for)
                    .map(|(_, b)| *b)
                    .take(1)
                    .collect();
                let got: Vec<BBox> = hints.iter().map(|(_, b)| *b).collect();
                assert_eq!(got, want, "frame {index}, gate {enabled}");
                assert!(hints.iter().all(|(c, _)| *c == Class::Plate));
                if rng.below(3) == 0 {
                    // One plate, drifting 2 px a frame: every sighting overlaps the last.
                    let x = 100.0 + 2.0 * index as f32;
                    let b = BBox::new(x, 50.0, x + 60.0, 70.0);
                    let d = Detection {
                        bbox: b,
                        score: 0.9,
                        class: Class::Plate,
                        landmarks: Vec::new(),
                    };
                    g.watch(index, std::slice::from_ref(&d));
                    found.push((index, b));
                }
            }
        }
    }

    #[test]
    fn the_gate_off_looks_at_every_frame_whole() {
        let mut g = Gate::new(GateConfig::default(), 2, 10, 0);
        for i in 0..5 {
            assert_eq!(g.look(i, &frame(64, 64, None)), Look::Full);
        }
    }

    #[test]
    fn rectangles_are_clipped_and_at_least_the_least_side() {
        let r = to_rect(&BBox::new(-50.0, 10.0, 5.0, f32::NAN), 100, 40);
        assert_eq!((r.x, r.w), (0, 64));
        assert_eq!((r.y, r.h), (0, 40));
        let r = to_rect(&BBox::new(95.0, 0.0, 99.0, 2.0), 100, 100);
        assert!(r.x + r.w <= 100 && r.w == 64, "{r:?}");
    }
}

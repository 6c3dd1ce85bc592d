#!/usr/bin/env python3
"""How much of what every model finds on every frame the cheaper clip schedules still cover.

The balanced preset interleaves its two models per class on clips (each frame runs one face and
one plate model) and relies on the temporal hold to bridge the frame a model skips. This script
measures what that costs, on real clips, against the most thorough schedule bystander has:

* reference: every model on every frame, no hold, no back-fill: the raw detections;
* `interleave`: the default (models take turns, hold 8, back-fill 4);
* `every-2`: every model on every second frame (`--detect-every 2 --no-interleave`), the same
  inference cost as interleaving, for comparison.

(Every model on every frame with hold, `--no-interleave`, covers all of the reference by
construction: the hold only adds boxes.)

A reference box counts as covered on its frame when at least 80 % of it lies under the masks the
schedule drew on that frame (faces: ellipses grown 1.7x, plates: rectangles grown 1.2x, the
defaults). Prints, per clip and in total, the reference boxes and the share each schedule covers,
then the reference boxes that the default misses (by score and whether a box of the same class lies
within reach on a neighbouring reference frame), and the flicker counts of each schedule: frames
with a detection that the previous or next frame lacks, comparing detections with the neighbours'
detections (without hold) and with the neighbours' masks (with hold).

`--schedules` picks what to compare (default `interleave,every-2`; also `fast`, the fast preset,
whose plate model runs on every second detected frame, and `fast-no-interleave`, the fast preset
with its plate model on every detected frame). Coverage is also printed per class.

`--misses NAME[,NAME...]` lists each reference box that those schedules leave uncovered.

`--min-score F` leaves reference boxes scoring under F out (issue 17's own measure kept those
scoring at least 0.3); by default every box the reference's thresholds let through counts.

`--base-bin OLD` with a schedule named `base-NAME` runs NAME with another binary (the build before a
change), against the same reference.

Usage: scripts/interleave_check.py [--clips a.mp4,b.mp4] [--schedules interleave,fast] [--bin B]
(default clips: every clip in ../shared/data/clips)
"""
import argparse, glob, json, os, subprocess, sys, tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "clips")
BIN = os.path.join(ROOT, "target", "release", "bystander")
SCHEDULES = {
    "reference": ["--no-interleave", "--hold", "0", "--backfill", "0"],
    "interleave": [],
    "gating": ["--gating"],
    "gating-sweep-4": ["--gating", "--sweep-every", "4"],
    "fast-gating": ["--recall", "fast", "--gating"],
    "every-2": ["--detect-every", "2", "--no-interleave"],
    "fast": ["--recall", "fast"],
    "fast-no-interleave": ["--recall", "fast", "--no-interleave"],
}
SCALE = {"face": (1.7, True), "plate": (1.2, False)}


def frames_of(path):
    d = json.load(open(path))
    return {f["frame"]: f for f in d["frames"]}


def covered(ref_box, masks):
    """Fraction of ref_box (x1, y1, x2, y2) under the union of masks [(class, box)]."""
    x1, y1, x2, y2 = ref_box
    xs = np.arange(np.floor(x1), np.ceil(x2)) + 0.5
    ys = np.arange(np.floor(y1), np.ceil(y2)) + 0.5
    if len(xs) == 0 or len(ys) == 0:
        return 1.0
    gx, gy = np.meshgrid(xs, ys)
    under = np.zeros(gx.shape, bool)
    for cls, (a, b, c, d) in masks:
        s, ellipse = SCALE[cls]
        cx, cy, rx, ry = (a + c) / 2, (b + d) / 2, max((c - a) / 2 * s, 1e-3), max((d - b) / 2 * s, 1e-3)
        if ellipse:
            under |= ((gx - cx) / rx) ** 2 + ((gy - cy) / ry) ** 2 <= 1
        else:
            under |= (abs(gx - cx) <= rx) & (abs(gy - cy) <= ry)
    return under.mean()


def near(box, frame):
    """Whether frame (or None) has a box of the same class within one and a half of the larger
    long side of box's centre: the same object, even if it moved."""
    if frame is None:
        return False
    (a, b, c, d), cls = box["box"], box["class"]
    for o in frame["boxes"]:
        if o["class"] != cls:
            continue
        p, q, r, s = o["box"]
        size = max(c - a, d - b, r - p, s - q)
        if ((a + c - p - r) ** 2 + (b + d - q - s) ** 2) ** 0.5 / 2 <= 1.5 * size:
            return True
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", default="")
    ap.add_argument("--schedules", default="interleave,every-2")
    ap.add_argument("--bin", default=BIN, help="the bystander binary (default: this checkout's, built first)")
    ap.add_argument("--base-bin", default="", help="another binary (an older build): schedules named base-NAME run NAME with it")
    ap.add_argument("--misses", default="", help="schedules (comma-separated) whose uncovered reference boxes are listed one by one")
    ap.add_argument("--min-score", type=float, default=0.0,
                    help="leave reference boxes scoring under this out (issue 17 measured against >= 0.3)")
    a = ap.parse_args()
    clips = [os.path.join(DATA, c) for c in a.clips.split(",")] if a.clips else sorted(glob.glob(os.path.join(DATA, "*.mp4")))
    if a.bin == BIN:
        subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(ROOT, "Cargo.toml")],
                       check=True)
    names = a.schedules.split(",")
    unknown = [n for n in names if n.removeprefix("base-") not in SCHEDULES or n == "reference"
               or (n.startswith("base-") and not a.base_bin)]
    if unknown:
        sys.exit(f"unknown schedules {unknown}; known: {[s for s in SCHEDULES if s != 'reference']}")
    by_class = {n: {"face": [0, 0], "plate": [0, 0]} for n in names}
    print("| clip | frames | reference boxes | " + " | ".join(f"{n} covered" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    total = {n: 0 for n in names}
    total_ref = 0
    missed = {"isolated, score < 0.3": 0, "isolated, score >= 0.3": 0, "with a neighbour": 0}
    flicker = {n: [0, 0] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            base = os.path.basename(clip)
            got = {}
            for s in ["reference"] + names:
                flags = SCHEDULES[s.removeprefix("base-")]
                out = os.path.join(tmp, s)
                binary = a.base_bin if s.startswith("base-") else a.bin
                p = subprocess.run([binary, "redact", clip, "-o", out, "--export-detections", "--quiet", "--overwrite"]
                                   + flags, capture_output=True, text=True)
                if p.returncode != 0:
                    sys.exit(f"{s} failed on {base}: {p.stderr}")
                got[s] = frames_of(os.path.join(out, base + ".detections.json"))
                if s in flicker:
                    rep = json.load(open(os.path.join(out, base + ".bystander.json")))["flicker_frames"]
                    flicker[s][0] += rep["without_hold"]
                    flicker[s][1] += rep["with_hold"]
            ref = got["reference"]
            for f in ref.values():
                f["boxes"] = [b for b in f["boxes"] if b["score"] >= a.min_score]
            n_ref = sum(len(f["boxes"]) for f in ref.values())
            row = []
            for n in names:
                ok = 0
                for i, f in ref.items():
                    cand = got[n].get(i)
                    if cand is None:
                        continue
                    masks = [(b["class"], b["box"]) for b in cand["boxes"]]
                    for b in f["boxes"]:
                        by_class[n][b["class"]][1] += 1
                        share = 1.0 if cand["whole_frame"] else covered(b["box"], [m for m in masks if m[0] == b["class"]])
                        if share >= 0.8:
                            ok += 1
                            by_class[n][b["class"]][0] += 1
                            continue
                        if n in a.misses.split(","):
                            x1, y1, x2, y2 = b["box"]
                            neighbour = near(b, ref.get(i - 1)) or near(b, ref.get(i + 1))
                            print(f"  {n} misses {base} frame {i}: {b['class']} {x2 - x1:.0f}x{y2 - y1:.0f} px at "
                                  f"({x1:.0f}, {y1:.0f}), score {b['score']:.2f}, {share:.2f} of it masked, "
                                  f"{'with' if neighbour else 'no'} reference neighbour", flush=True)
                        if n == "interleave":
                            if near(b, ref.get(i - 1)) or near(b, ref.get(i + 1)):
                                missed["with a neighbour"] += 1
                            else:
                                missed["isolated, score < 0.3" if b["score"] < 0.3 else "isolated, score >= 0.3"] += 1
                total[n] += ok
                row.append(f"{ok} ({ok / n_ref:.3f})" if n_ref else "-")
            total_ref += n_ref
            print(f"| {base} | {len(ref)} | {n_ref} | " + " | ".join(row) + " |", flush=True)
    print(f"| all | | {total_ref} | " + " | ".join(f"{total[n]} ({total[n] / max(total_ref, 1):.3f})" for n in names) + " |")
    for cls in ("face", "plate"):
        print(f"| all {cls}s | | {by_class[names[0]][cls][1]} | " + " | ".join(
            f"{by_class[n][cls][0]} ({by_class[n][cls][0] / max(by_class[n][cls][1], 1):.3f})" for n in names) + " |")
    print()
    print("Reference boxes the default (interleave) leaves uncovered: " +
          ", ".join(f"{v} {k}" for k, v in missed.items()))
    print()
    print("Flicker frames over these clips, without hold / with hold: " +
          ", ".join(f"{n} {flicker[n][0]} / {flicker[n][1]}" for n in names))


if __name__ == "__main__":
    main()

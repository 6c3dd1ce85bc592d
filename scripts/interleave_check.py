#!/usr/bin/env python3
"""How much of what every model finds on every frame the cheaper clip schedules still cover.

The balanced preset interleaves its two models per class on clips (each frame runs one face and
one plate model) and relies on the temporal hold to bridge the frame a model skips. This script
measures what that costs, on real clips, against the most thorough schedule bystander has:

* reference: every model on every frame, no hold, no back-fill: the raw detections;
* `interleave`: the default (models take turns, hold 8, back-fill 4);
* `every-2`: every model on every second frame (`--detect-every 2 --no-interleave`), the same
  inference cost as interleaving, for comparison;
* `every-frame`: every model on every frame with hold (`--no-interleave`), twice the cost.

A reference box counts as covered on its frame when at least 80 % of it lies under the masks the
schedule drew on that frame (faces: ellipses grown 1.7x, plates: rectangles grown 1.2x, the
defaults). Prints, per clip and in total, the reference boxes and the share each schedule covers.

Usage: scripts/interleave_check.py [--clips a.mp4,b.mp4] (default: every clip in ../shared/data/clips)
"""
import argparse, glob, json, os, subprocess, sys, tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "clips")
BIN = os.path.join(ROOT, "target", "release", "bystander")
SCHEDULES = {
    "reference": ["--no-interleave", "--hold", "0", "--backfill", "0"],
    "interleave": [],
    "every-2": ["--detect-every", "2", "--no-interleave"],
    "every-frame": ["--no-interleave"],
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", default="")
    a = ap.parse_args()
    clips = [os.path.join(DATA, c) for c in a.clips.split(",")] if a.clips else sorted(glob.glob(os.path.join(DATA, "*.mp4")))
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(ROOT, "Cargo.toml")],
                   check=True)
    names = [s for s in SCHEDULES if s != "reference"]
    print("| clip | frames | reference boxes | " + " | ".join(f"{n} covered" for n in names) + " |")
    print("|---|---|---|" + "---|" * len(names))
    total = {n: 0 for n in names}
    total_ref = 0
    with tempfile.TemporaryDirectory() as tmp:
        for clip in clips:
            base = os.path.basename(clip)
            got = {}
            for s, flags in SCHEDULES.items():
                out = os.path.join(tmp, s)
                p = subprocess.run([BIN, "redact", clip, "-o", out, "--export-detections", "--quiet", "--overwrite"]
                                   + flags, capture_output=True, text=True)
                if p.returncode != 0:
                    sys.exit(f"{s} failed on {base}: {p.stderr}")
                got[s] = frames_of(os.path.join(out, base + ".detections.json"))
            ref = got["reference"]
            n_ref = sum(len(f["boxes"]) for f in ref.values())
            row = []
            for n in names:
                ok = 0
                for i, f in ref.items():
                    cand = got[n].get(i)
                    if cand is None:
                        continue
                    if cand["whole_frame"]:
                        ok += len(f["boxes"])
                        continue
                    masks = [(b["class"], b["box"]) for b in cand["boxes"]]
                    ok += sum(covered(b["box"], [m for m in masks if m[0] == b["class"]]) >= 0.8 for b in f["boxes"])
                total[n] += ok
                row.append(f"{ok} ({ok / n_ref:.3f})" if n_ref else "-")
            total_ref += n_ref
            print(f"| {base} | {len(ref)} | {n_ref} | " + " | ".join(row) + " |", flush=True)
    print(f"| all | | {total_ref} | " + " | ".join(f"{total[n]} ({total[n] / max(total_ref, 1):.3f})" for n in names) + " |")


if __name__ == "__main__":
    main()

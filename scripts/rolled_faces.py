#!/usr/bin/env python3
"""Rolled faces: the shared face photos turned in the picture plane, and their coverage by angle.

Face detectors learn mostly upright faces. Cameras show faces rolled: a head tilted, a person
lying down, the edge of a doorbell's fisheye, and on a ceiling-mounted fisheye (the 360-degree
"top-down" cameras NVRs sell) every angle at once, since each face points at the middle of the
picture. This script turns each shared face photo by each angle about its middle (the same
canvas, corners filled grey) and writes, per angle, an annotations file whose boxes are where the
faces went: the bounding box of the ellipse inscribed in the labelled box, turned with the photo
(the face itself, not the corners of its box, which would ask for the background around a turned
face to be covered too). Faces whose turned box leaves the photo are dropped, so the counts change
with the angle. The canvas is not grown, so that the detectors see the faces at the same scale at
every angle.

    scripts/rolled_faces.py make OUT [--set dlib|wider_dev] [--angles 0,30,...]
    scripts/rolled_faces.py score OUT [--bin B] [--flags="..."]   # coverage per angle

`score` runs `bystander eval OUT/ANGLE/annotations.jsonl --json` per angle and prints the covered
share of faces at least 20 px high (after turning), of all faces, and the mean masked share. Needs
pillow (a venv: `pip install pillow`). Nothing generated is committed (the photos keep their own
licences).
"""
import argparse, json, math, os, shlex, subprocess, sys

from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data", "faces")
BIN = os.path.join(ROOT, "target", "release", "bystander")
ANGLES = [0, 15, 30, 45, 60, 90, 135, 180]
MIN_HEIGHT = 20


def turned_box(box, angle, w, h, nw, nh):
    """The axis-aligned box of the ellipse inscribed in `box` after turning the photo (w x h) by
    `angle` degrees counter-clockwise about its middle onto a canvas nw x nh."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2 - w / 2, (y1 + y2) / 2 - h / 2
    a, b = (x2 - x1) / 2, (y2 - y1) / 2
    t = math.radians(angle)
    c, s = math.cos(t), math.sin(t)
    # Image y points down, so a counter-clockwise turn on screen is (x, y) -> (x c + y s, -x s + y c).
    ncx, ncy = cx * c + cy * s + nw / 2, -cx * s + cy * c + nh / 2
    hw = math.sqrt((a * c) ** 2 + (b * s) ** 2)
    hh = math.sqrt((a * s) ** 2 + (b * c) ** 2)
    return [round(ncx - hw, 1), round(ncy - hh, 1), round(ncx + hw, 1), round(ncy + hh, 1)]


def make(out, which, angles):
    src = os.path.join(SHARED, which)
    rows = [json.loads(l) for l in open(os.path.join(src, "annotations.jsonl")) if l.strip()]
    for angle in angles:
        d = os.path.join(out, str(angle))
        os.makedirs(os.path.join(d, "images"), exist_ok=True)
        with open(os.path.join(d, "annotations.jsonl"), "w") as f:
            for row in rows:
                img = Image.open(os.path.join(src, row["image"])).convert("RGB")
                w, h = img.size
                turned = img.rotate(angle, resample=Image.BICUBIC, fillcolor=(128, 128, 128))
                nw, nh = turned.size
                name = os.path.splitext(os.path.basename(row["image"]))[0] + ".png"
                turned.save(os.path.join(d, "images", name))
                faces = [turned_box(b, angle, w, h, nw, nh) for b in row["faces"]]
                faces = [b for b in faces if b[0] >= 0 and b[1] >= 0 and b[2] <= nw and b[3] <= nh]
                f.write(json.dumps({"image": "images/" + name, "faces": faces}) + "\n")
        print(f"{d}: {len(rows)} photos", file=sys.stderr)


def score(out, binary, flags):
    angles = sorted(int(a) for a in os.listdir(out) if a.isdigit())
    print(f"angle  faces >= {MIN_HEIGHT} px  covered  share   all faces  covered  masked share  seconds")
    for angle in angles:
        ann = os.path.join(out, str(angle), "annotations.jsonl")
        cmd = [binary, "eval", ann, "--json"] + shlex.split(flags)
        r = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        # eval's height buckets: < 10, 10-20, 20-40, 40-80, >= 80 px.
        big = r["by_height"][2:]
        n, c = sum(b["total"] for b in big), sum(b["covered"] for b in big)
        o = r["overall"]
        print(f"{angle:>5}  {n:>13}  {c:>7}  {c / max(1, n):.3f}   {o['total']:>9}  {o['covered']:>7}"
              f"  {r['mean_masked_fraction']:>12.3f}  {r['seconds']:>7.1f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--set", default="dlib", choices=["dlib", "wider_dev"])
    m.add_argument("--angles", default=",".join(map(str, ANGLES)))
    s = sub.add_parser("score")
    s.add_argument("out")
    s.add_argument("--bin", default=BIN)
    s.add_argument("--flags", default="")
    a = p.parse_args()
    if a.cmd == "make":
        make(a.out, a.set, [int(x) for x in a.angles.split(",")])
    else:
        score(a.out, a.bin, a.flags)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Small faces in large frames: the WIDER dev photos laid out on 1080p to 4K canvases.

Why: the labelled face photos are 416 x 416, so every plan sees their faces at full size or
magnified. Camera footage is 1080p to 4K with the faces of passers-by 20 to 80 px high, and a clip
plan that shrinks the frame loses them. Laying the photos out side by side on a large canvas, at
their own size or scaled, keeps their labels and gives a frame of the size cameras record, so
`bystander eval --as-clip` shows what the clip plan finds there, by face height.

Generated on demand from ../shared/data/faces/wider_dev (which may not be committed): nothing
here is data.

Usage:
  scripts/face_mosaic.py OUT [--size 3840x2160] [--scale 2.0] [--faces DIR] [--barrel K]
  bystander eval OUT/annotations.jsonl --as-clip      # the clip plan
  bystander eval OUT/annotations.jsonl                # the photo plan, for comparison
  bystander eval OUT/annotations.jsonl --as-clip --json > REPORT.json
  scripts/face_mosaic.py OUT --split REPORT.json      # coverage in the middle and the outer half

Each canvas holds as many photos as fit whole (scaled by --scale, grey around them); photos left
over at the end are not used.

`--barrel K` then bends each canvas as a wide-angle lens does (`hard_plates.distort`: the pixel at
normalised radius r shows the canvas at r (1 + K r^2); 0.12 mild, 0.25 strong, as in the hard
plate set) and moves each face's label with it. Doorbells and NVR cameras see 110 to 160 degrees:
faces away from the middle are squeezed towards it, up to 1 + 3K times along the radius at the
corners, and tilted. `--split REPORT` reads an eval report (`--json`, whose `leaks` list every face
left uncovered) and gives coverage by height for the faces in the middle of the frame (their
middle within half the half diagonal of the frame's) and in the outer half apart, where the bend
is.
"""
import argparse, json, os, sys

import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hard_plates import distort, undistorted_to_distorted  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FACES = os.path.join(HERE, "..", "..", "shared", "data", "faces", "wider_dev")


def make(out, faces_dir, size, scale, barrel=0.0):
    width, height = size
    rows = [json.loads(line) for line in open(os.path.join(faces_dir, "annotations.jsonl"))]
    os.makedirs(os.path.join(out, "images"), exist_ok=True)
    lines, boxes = [], 0
    canvas = None
    for n, row in enumerate(rows):
        photo = Image.open(os.path.join(faces_dir, row["image"])).convert("RGB")
        pw, ph = round(photo.width * scale), round(photo.height * scale)
        across, down = width // pw, height // ph
        if across * down == 0:
            raise SystemExit(f"a {pw}x{ph} photo does not fit a {width}x{height} canvas")
        slot = n % (across * down)
        if slot == 0:
            if n + across * down > len(rows):
                break
            canvas, placed = Image.new("RGB", (width, height), (110, 110, 110)), []
        x0 = (width - across * pw) // 2 + (slot % across) * pw
        y0 = (height - down * ph) // 2 + (slot // across) * ph
        canvas.paste(photo.resize((pw, ph), Image.BILINEAR), (x0, y0))
        sx, sy = pw / photo.width, ph / photo.height
        placed += [[x0 + a * sx, y0 + b * sy, x0 + c * sx, y0 + d * sy] for a, b, c, d in row["faces"]]
        if slot == across * down - 1:
            name = f"images/canvas{len(lines):03d}.png"
            if barrel:
                # Bent at three times the size and brought back with an area filter, as a lens
                # blurs what it squeezes: bilinear sampling at the frame's own size would alias
                # the corners, squeezed up to 1 + 3K times, which no lens does.
                big = canvas.resize((width * 3, height * 3), Image.BICUBIC)
                bent_big = Image.fromarray(distort(np.array(big), barrel))
                canvas = bent_big.resize((width, height), Image.BOX)
                placed = [bent(b, width, height, barrel) for b in placed]
            canvas.save(os.path.join(out, name))
            lines.append(json.dumps({"image": name, "faces": placed}))
            boxes += len(placed)
    with open(os.path.join(out, "annotations.jsonl"), "w") as f:
        f.write("".join(line + "\n" for line in lines))
    bend = f", bent with K = {barrel}" if barrel else ""
    print(f"{out}: {len(lines)} canvases of {width}x{height}{bend}, {boxes} faces")


def bent(box, w, h, k):
    """A face's label after the lens: the bounds of the ellipse inscribed in its box, bent (the
    face, not the corners of its box, which a tilt would swing out)."""
    x1, y1, x2, y2 = box
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    pts = np.stack([(x1 + x2) / 2 + (x2 - x1) / 2 * np.cos(t), (y1 + y2) / 2 + (y2 - y1) / 2 * np.sin(t)], 1)
    d = undistorted_to_distorted(pts, w, h, k)
    return [max(0.0, d[:, 0].min()), max(0.0, d[:, 1].min()), min(float(w), d[:, 0].max()), min(float(h), d[:, 1].max())]


def split(out, report):
    """Coverage by face height, in the middle of the frame and in its outer half apart."""
    rep = json.load(open(report))
    left = {(leak["image"], tuple(round(v, 2) for v in leak["bbox"])) for leak in rep["leaks"]}
    buckets = [(0, 10, "<10"), (10, 20, "10-20"), (20, 40, "20-40"), (40, 80, "40-80"), (80, 1e9, ">=80")]
    counts = {}
    for line in open(os.path.join(out, "annotations.jsonl")):
        row = json.loads(line)
        width, height = Image.open(os.path.join(out, row["image"])).size
        half_diagonal = (width * width + height * height) ** 0.5 / 2
        for box in row["faces"]:
            x1, y1, x2, y2 = box
            r = (((x1 + x2 - width) / 2) ** 2 + ((y1 + y2 - height) / 2) ** 2) ** 0.5 / half_diagonal
            name = next(n for lo, hi, n in buckets if lo <= y2 - y1 < hi)
            c = counts.setdefault((name, "outer" if r >= 0.5 else "inner"), [0, 0])
            c[0] += (row["image"], tuple(round(v, 2) for v in box)) not in left
            c[1] += 1
    print("height  where  covered / faces")
    for _, _, name in buckets:
        for where in ("inner", "outer"):
            if (name, where) in counts:
                got, of = counts[(name, where)]
                print(f"{name:6}  {where}  {got} / {of} = {got / of:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--size", default="3840x2160", help="canvas WIDTHxHEIGHT")
    ap.add_argument("--scale", type=float, default=1.0, help="how much each photo is scaled")
    ap.add_argument("--faces", default=FACES, help="a labelled face folder (annotations.jsonl)")
    ap.add_argument("--barrel", type=float, default=0.0, help="wide-angle bend K (0: none)")
    ap.add_argument("--split", metavar="REPORT", help="read an eval --json report of OUT instead")
    a = ap.parse_args()
    if a.split:
        return split(a.out, a.split)
    w, h = (int(v) for v in a.size.lower().split("x"))
    make(a.out, a.faces, (w, h), a.scale, a.barrel)


if __name__ == "__main__":
    main()

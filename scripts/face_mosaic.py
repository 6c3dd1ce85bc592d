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
  scripts/face_mosaic.py OUT [--size 3840x2160] [--scale 2.0] [--faces DIR]
  bystander eval OUT/annotations.jsonl --as-clip      # the clip plan
  bystander eval OUT/annotations.jsonl                # the photo plan, for comparison

Each canvas holds as many photos as fit whole (scaled by --scale, grey around them); photos left
over at the end are not used.
"""
import argparse, json, os

from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
FACES = os.path.join(HERE, "..", "..", "shared", "data", "faces", "wider_dev")


def make(out, faces_dir, size, scale):
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
            canvas.save(os.path.join(out, name))
            lines.append(json.dumps({"image": name, "faces": placed}))
            boxes += len(placed)
    with open(os.path.join(out, "annotations.jsonl"), "w") as f:
        f.write("".join(line + "\n" for line in lines))
    print(f"{out}: {len(lines)} canvases of {width}x{height}, {boxes} faces")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--size", default="3840x2160", help="canvas WIDTHxHEIGHT")
    ap.add_argument("--scale", type=float, default=1.0, help="how much each photo is scaled")
    ap.add_argument("--faces", default=FACES, help="a labelled face folder (annotations.jsonl)")
    a = ap.parse_args()
    w, h = (int(v) for v in a.size.lower().split("x"))
    make(a.out, a.faces, (w, h), a.scale)


if __name__ == "__main__":
    main()

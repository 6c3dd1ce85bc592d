#!/usr/bin/env python3
"""Writes a copy of the shared WIDER dev set at each photo's original aspect ratio.

The shared copies were stretched to 416 x 416 from 4:3 and 16:9 originals, so their faces are 1.4
to 1.8 times narrower than natural. This copy resamples each image back to its original aspect
(from `orig_size` in annotations_full.jsonl) at the same pixel count, and scales the boxes with
it, to see how much of a coverage figure is due to the squeeze:

    scripts/unsqueeze_wider.py /tmp/wider_unsqueezed
    bystander eval /tmp/wider_unsqueezed/annotations.jsonl

The copy is evaluation data under the set's licence (CC BY-NC-ND 4.0): keep it out of the
repository. Needs Pillow.
"""

import argparse
import json
import pathlib

from PIL import Image

SHARED = pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "faces" / "wider_dev"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=pathlib.Path, help="folder to write (outside the repository)")
    ap.add_argument("--wider", type=pathlib.Path, default=SHARED, help="the wider_dev folder")
    args = ap.parse_args()
    full = {}
    for line in (args.wider / "annotations_full.jsonl").read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            full[d["image"]] = d
    (args.out / "images").mkdir(parents=True, exist_ok=True)
    lines = []
    for line in (args.wider / "annotations.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        ow, oh = full[d["image"]]["orig_size"]
        img = Image.open(args.wider / d["image"])
        k = (img.width * img.height / (ow * oh)) ** 0.5
        nw, nh = round(ow * k), round(oh * k)
        img.resize((nw, nh), Image.BICUBIC).save(args.out / d["image"], quality=95)
        fx, fy = nw / img.width, nh / img.height
        faces = [[b[0] * fx, b[1] * fy, b[2] * fx, b[3] * fy] for b in d["faces"]]
        lines.append(json.dumps({"image": d["image"], "faces": faces}))
    (args.out / "annotations.jsonl").write_text("\n".join(lines) + "\n")
    print(f"{len(lines)} images written to {args.out}")


if __name__ == "__main__":
    main()

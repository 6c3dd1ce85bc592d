#!/usr/bin/env python3
"""The shared plate photos shrunk to one long side, with their labels scaled: a small-frame plate set.

The openalpr photos are 480 to 1600 px across, so every plan sees their plates at or above their
own size. Thumbnails, SD clips and a host's preview stream are smaller than the plate model's
640-px input, and how a plan treats such a frame (magnified to the input, or run at its own size)
decides how small their plates reach the model. This set shows what that choice costs:

    scripts/small_plates.py 416 OUT     # OUT/annotations.jsonl, OUT/<same paths>.jpg
    bystander eval OUT/annotations.jsonl --classes plate --recall fast

Needs Pillow. Nothing generated is committed (the photos are AGPL); the set is rebuilt from the
shared photos (`BYSTANDER_PLATES`, default ../shared/data/plates).
"""

import json
import os
import sys

from PIL import Image


def main():
    if len(sys.argv) != 3 or not sys.argv[1].isdigit() or int(sys.argv[1]) < 32:
        sys.exit("usage: small_plates.py LONG_SIDE(>=32) OUT")
    long_side, out = int(sys.argv[1]), sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.environ.get(
        "BYSTANDER_PLATES", os.path.join(here, "..", "..", "shared", "data", "plates")
    )
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(src, "annotations.jsonl")) as labels, open(
        os.path.join(out, "annotations.jsonl"), "w"
    ) as written:
        for line in labels:
            entry = json.loads(line)
            photo = Image.open(os.path.join(src, entry["image"])).convert("RGB")
            s = long_side / max(photo.size)
            size = (max(1, round(photo.width * s)), max(1, round(photo.height * s)))
            target = os.path.join(out, entry["image"])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            photo.resize(size, Image.LANCZOS).save(target, quality=95)
            plates = [[round(v * s, 1) for v in box] for box in entry["plates"]]
            written.write(json.dumps({"image": entry["image"], "plates": plates}) + "\n")


if __name__ == "__main__":
    main()

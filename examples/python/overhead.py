"""What the Python binding adds to each frame, against the Rust API doing the same work.

Feeds 1080p BGR frames (a clip decoded by ffmpeg) to `bystander.Redactor(backfill=0).redact`, the
live in-place call, and compares the wall time of each Python call with the time the library
spent inside it (measured in Rust around `stream::Redactor::redact_in_place`, returned as
`seconds`). The difference is the binding: option and array checks, the borrow, releasing and
retaking the GIL, building the result.

    python examples/python/overhead.py ../shared/data/clips/crowd_1080p.mp4 [FRAMES]
"""

import subprocess
import sys
import time

import numpy as np

import bystander


def main():
    clip = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 40
    w, h = 1920, 1080
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", clip, "-frames:v", str(count), "-vf", f"scale={w}:{h}",
         "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
        check=True, capture_output=True,
    ).stdout
    frames = np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).copy()
    r = bystander.Redactor(backfill=0)
    r.redact(frames[0].copy())  # sessions warm
    walls, inside = [], []
    for f in frames:
        t = time.perf_counter()
        res = r.redact(f)
        walls.append(time.perf_counter() - t)
        inside.append(res["seconds"])
    walls, inside = np.array(walls) * 1e3, np.array(inside) * 1e3
    added = walls - inside
    print(f"{len(frames)} frames {w}x{h} BGR, Redactor(backfill=0).redact, in place")
    print(f"  per frame in Python: p50 {np.median(walls):.1f} ms, in the library: p50 {np.median(inside):.1f} ms")
    print(f"  added by the binding: p50 {np.median(added):.3f} ms, p95 {np.percentile(added, 95):.3f} ms, "
          f"max {added.max():.3f} ms")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A hard plate dev set: licence plates as doorbell and NVR cameras see them, and its coverage.

The shared openalpr plate photos are easy: one frontal, prominent plate per photo, so every
preset covers all of them. Cameras see plates small (12-60 px high), turned away (up to 60
degrees), through wide-angle lenses that bend straight lines, in frames from 1080p to 2560 x 1920.
This script builds such frames from the shared photos, so that what a plan misses shows by plate
height and angle:

* each plate, with some of its car around it, is turned about the vertical axis by a yaw angle
  (0, 15, 30, 45 or 60 degrees, seen through a pinhole six plate widths away, so the near edge is
  a little taller), shrunk so its near edge is 12 to 48 px high (the plate height reported), rolled
  up to 8 degrees, and pasted with a feathered edge into a frame
  from the shared clips, magnified to 1920 x 1080, 2560 x 1440 or 2560 x 1920;
* the whole frame then goes through barrel distortion (none, mild or strong: a doorbell's fisheye
  bends a plate near the frame's edge), and the plate's box is where its outline lands;
* every (height, angle) pair occurs equally often, shuffled over the frame sizes and distortions.

Nothing generated is committed (the photos are AGPL, the clips have their own licences): the
script rebuilds the same set from the same seed.

    scripts/hard_plates.py make OUT          # OUT/photos (annotations.jsonl, meta.jsonl) and OUT/clip
    scripts/hard_plates.py score OUT [--bin B] [--label NAME] [--only photos|as-clip|clip] [--flags "..."]
    scripts/hard_plates.py masked CLIP [--bin B] [--flags "..."]   # false masks on face-free footage

`masked` redacts a clip and prints, per class, the boxes per frame and the mean share of the
frame their masks cover (faces: ellipses grown 1.7x, plates: rectangles grown 1.2x, the defaults),
and the mean share all masks cover: on footage without faces (cars_432p), every face mask is false.

`score` runs `bystander eval` on the photos with the photo plan and with the clip plan
(`--as-clip`), and `bystander redact --export-detections` on the clip (a real H.264 file, where
plates drift across the frame as cars do), and prints coverage by plate height and by angle. A plate
counts as covered when 80 % of its box lies under the masks (plates: rectangles grown 1.2x), the
measure `bystander eval` uses. For the clip it also prints that share counting only masks at most
four times the plate's height, so that a plate covered by accident (under a held box grown
along a wrong motion, or a false box over a whole car) shows. Needs numpy and pillow (a venv: `pip install numpy pillow`).
"""
import argparse, json, math, os, random, shlex, shutil, subprocess, sys, tempfile

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from interleave_check import covered  # share of a box under masks grown as bystander grows them

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
BIN = os.path.join(ROOT, "target", "release", "bystander")

HEIGHTS = [12, 16, 24, 32, 48]
ANGLES = [0, 15, 30, 45, 60]
SIZES = [(1920, 1080), (2560, 1440), (2560, 1920)]
# Barrel strength k in r_u = r_d (1 + k r_d^2), r normalised by the half diagonal.
DISTORTIONS = [0.0, 0.12, 0.25]
BACKGROUNDS = ["cars_432p.mp4", "bikes_272p.mp4", "room_432p_long.mp4", "crowd_1080p.mp4"]
PLATES_PER_FRAME = 5
REPEATS = 8  # photos: each (height, angle) pair this many times
CLIP_SIZE = (1920, 1080)
CLIP_FRAMES = 60
CLIP_FPS = 10


def homography(src, dst):
    """The 3x3 matrix taking the four points src to dst."""
    a, b = [], []
    for (x, y), (u, v) in zip(src, dst):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    h = np.linalg.solve(np.array(a, float), np.array(b, float))
    return np.append(h, 1).reshape(3, 3)


def plate_patch(photo, box, yaw, roll, height):
    """The plate with its car around it, turned by `yaw`, shrunk so its near edge is `height` px
    high, and rolled by `roll` degrees. Returns (RGBA patch, plate outline in patch pixels)."""
    x1, y1, x2, y2 = box
    pw, ph = x2 - x1, y2 - y1
    cx1, cy1 = max(0, x1 - 0.6 * pw), max(0, y1 - 1.5 * ph)
    cx2, cy2 = min(photo.width, x2 + 0.6 * pw), min(photo.height, y2 + 1.5 * ph)
    crop = photo.crop((int(cx1), int(cy1), int(math.ceil(cx2)), int(math.ceil(cy2))))
    cw, ch = crop.size
    corners = [(0, 0), (cw, 0), (cw, ch), (0, ch)]
    # The crop's centre turns about the plate's centre, so plate and car stay together.
    pcx, pcy = (x1 + x2) / 2 - int(cx1), (y1 + y2) / 2 - int(cy1)
    local = [(x - pcx, y - pcy) for x, y in corners]
    plate_local = [(x1 - (x1 + x2) / 2, y1 - (y1 + y2) / 2), (pw / 2, -ph / 2), (pw / 2, ph / 2), (-pw / 2, ph / 2)]

    def project(pts, roll=roll):
        # A pinhole six plate widths away: a plate seen from a few metres, so the turn mostly
        # narrows it (cos yaw) and makes its near edge slightly taller than its far edge.
        f = 6 * pw
        t, r = math.radians(yaw), math.radians(roll)
        res = []
        for x, y in pts:
            z = f + x * math.sin(t)
            u, v = x * math.cos(t) * f / z, y * f / z
            res.append((u * math.cos(r) - v * math.sin(r), u * math.sin(r) + v * math.cos(r)))
        return np.array(res)

    # The plate's height is its near edge's, before the roll: what a viewer would call its size.
    upright = project(plate_local, roll=0)
    scale = height / (upright[:, 1].max() - upright[:, 1].min())
    dst = project(local) * scale
    plate_out = project(plate_local) * scale
    off = -dst.min(axis=0) + 2
    dst, plate_out = dst + off, plate_out + off
    size = tuple(int(math.ceil(v)) + 2 for v in dst.max(axis=0))
    inv = homography(dst, corners)  # output pixel -> crop pixel
    rgba = crop.convert("RGBA")
    # Shrink in steps first, so the warp samples an image near the final size (no aliasing).
    if scale < 0.5:
        rgba = rgba.resize((max(1, int(cw * scale * 2)), max(1, int(ch * scale * 2))), Image.LANCZOS)
        inv = np.diag([rgba.width / cw, rgba.height / ch, 1]) @ inv
    warped = rgba.transform(size, Image.PERSPECTIVE, tuple((inv / inv[2, 2]).flatten()[:8]), Image.BILINEAR)
    alpha = warped.getchannel("A").filter(ImageFilter.GaussianBlur(1.2 + height / 24))
    # Keep the plate itself opaque: the feather belongs to the car's edge.
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in plate_out], fill=255)
    alpha = Image.fromarray(np.maximum(np.array(alpha), np.array(mask)) * (np.array(warped.getchannel("A")) > 0))
    warped.putalpha(alpha)
    return warped, plate_out


def distort(frame, k):
    """Barrel distortion of an RGB array: output pixel at normalised radius r_d shows the source
    at r_d (1 + k r_d^2)."""
    if k == 0:
        return frame
    h, w = frame.shape[:2]
    cx, cy, norm = (w - 1) / 2, (h - 1) / 2, math.hypot(w, h) / 2
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = (xs - cx) / norm, (ys - cy) / norm
    f = 1 + k * (dx * dx + dy * dy)
    sx, sy = cx + dx * f * norm, cy + dy * f * norm
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    fx, fy = (sx - x0)[..., None], (sy - y0)[..., None]
    x0c, x1c = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    y0c, y1c = np.clip(y0, 0, h - 1), np.clip(y0 + 1, 0, h - 1)
    img = frame.astype(np.float32)
    top = img[y0c, x0c] * (1 - fx) + img[y0c, x1c] * fx
    bot = img[y1c, x0c] * (1 - fx) + img[y1c, x1c] * fx
    out = top * (1 - fy) + bot * fy
    outside = (sx < 0) | (sx > w - 1) | (sy < 0) | (sy > h - 1)
    out[outside] = 0
    return out.round().astype(np.uint8)


def undistorted_to_distorted(pts, w, h, k):
    """Where source points land after `distort` (Newton on r_u = r_d (1 + k r_d^2))."""
    pts = np.asarray(pts, float)
    if k == 0:
        return pts
    cx, cy, norm = (w - 1) / 2, (h - 1) / 2, math.hypot(w, h) / 2
    d = (pts - [cx, cy]) / norm
    ru = np.hypot(d[:, 0], d[:, 1])
    rd = ru.copy()
    for _ in range(30):
        rd -= (rd * (1 + k * rd * rd) - ru) / (1 + 3 * k * rd * rd)
    s = np.where(ru > 0, rd / np.maximum(ru, 1e-12), 1.0)
    return d * s[:, None] * norm + [cx, cy]


def outline_box(quad, w, h, k):
    """The box of a plate outline after distortion (its edges bend: sample them)."""
    quad = np.asarray(quad, float)
    pts = np.concatenate([quad[i] + np.linspace(0, 1, 16)[:, None] * (quad[(i + 1) % 4] - quad[i]) for i in range(4)])
    d = undistorted_to_distorted(pts, w, h, k)
    x1, y1 = d.min(axis=0)
    x2, y2 = d.max(axis=0)
    return [max(0.0, x1), max(0.0, y1), min(float(w), x2), min(float(h), y2)]


def background(clip, size, t, tmp):
    out = os.path.join(tmp, f"bg_{os.path.basename(clip)}_{t:.1f}.png")
    if not os.path.exists(out):
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-ss", f"{t}", "-i", clip, "-frames:v", "1", out], check=True)
    img = Image.open(out).convert("RGB")
    s = max(size[0] / img.width, size[1] / img.height)
    img = img.resize((math.ceil(img.width * s), math.ceil(img.height * s)), Image.BICUBIC)
    return img.crop((0, 0, size[0], size[1]))


def slots(size, n, rng):
    """n cell centres on a grid over the frame, at least 12 % of the frame from its edges (where
    strong distortion pushes content out of the frame)."""
    w, h = size
    cols, rows = 4, 3
    cells = [(c, r) for c in range(cols) for r in range(rows)]
    rng.shuffle(cells)
    out = []
    for c, r in cells[:n]:
        x = (0.12 + (c + 0.5) / cols * 0.76) * w + rng.uniform(-0.04, 0.04) * w
        y = (0.12 + (r + 0.5) / rows * 0.76) * h + rng.uniform(-0.04, 0.04) * h
        out.append((x, y))
    return out


def load_plates(plates_dir):
    out = []
    for line in open(os.path.join(plates_dir, "annotations.jsonl")):
        a = json.loads(line)
        for b in a["plates"]:
            if b[3] - b[1] >= 20:  # shrink plates, never magnify them much
                out.append((os.path.join(plates_dir, a["image"]), b))
    return out


def paste(canvas, patch, outline, centre):
    ox = int(round(centre[0] - patch.width / 2))
    oy = int(round(centre[1] - patch.height / 2))
    canvas.paste(patch, (ox, oy), patch)
    return [(x + ox, y + oy) for x, y in outline]


def make(out, plates_dir, clips_dir, seed, clip_size=CLIP_SIZE):
    rng = random.Random(seed)
    plates = load_plates(plates_dir)
    rng.shuffle(plates)
    photos = os.path.join(out, "photos")
    os.makedirs(os.path.join(photos, "images"), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="hard_plates_")
    combos = [(h, a) for h in HEIGHTS for a in ANGLES] * REPEATS
    rng.shuffle(combos)
    ann, meta = open(os.path.join(photos, "annotations.jsonl"), "w"), open(os.path.join(photos, "meta.jsonl"), "w")
    pi = 0
    for fi in range(0, len(combos), PLATES_PER_FRAME):
        size = SIZES[(fi // PLATES_PER_FRAME) % len(SIZES)]
        k = DISTORTIONS[(fi // PLATES_PER_FRAME // len(SIZES)) % len(DISTORTIONS)]
        bg = BACKGROUNDS[(fi // PLATES_PER_FRAME) % len(BACKGROUNDS)]
        canvas = background(os.path.join(clips_dir, bg), size, rng.uniform(0.5, 3.5), tmp)
        quads, infos = [], []
        for (height, angle), centre in zip(combos[fi:fi + PLATES_PER_FRAME], slots(size, PLATES_PER_FRAME, rng)):
            path, box = plates[pi % len(plates)]
            pi += 1
            yaw = angle * rng.choice([-1, 1])
            patch, outline = plate_patch(Image.open(path).convert("RGB"), box, yaw, rng.uniform(-8, 8), height)
            quads.append(paste(canvas, patch, outline, centre))
            infos.append({"height": height, "angle": angle, "source": os.path.relpath(path, plates_dir)})
        frame = distort(np.array(canvas), k)
        name = f"images/hard{fi // PLATES_PER_FRAME:03d}.jpg"
        Image.fromarray(frame).save(os.path.join(photos, name), quality=90)
        boxes = [outline_box(q, size[0], size[1], k) for q in quads]
        ann.write(json.dumps({"image": name, "plates": [[round(v, 1) for v in b] for b in boxes]}) + "\n")
        for b, info in zip(boxes, infos):
            meta.write(json.dumps({"image": name, "plate": [round(v, 1) for v in b], "box_height": round(b[3] - b[1], 1),
                                   "size": list(size), "distortion": k, **info}) + "\n")
    ann.close()
    meta.close()
    make_clip(os.path.join(out, "clip"), plates, clips_dir, rng, tmp, clip_size)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {fi // PLATES_PER_FRAME + 1} frames, {len(combos)} plates to {photos}; clip to {out}/clip")


def make_clip(out, plates, clips_dir, rng, tmp, size=CLIP_SIZE):
    """A static camera (mild barrel distortion) over a road: every (height, angle) pair once,
    five plates to a lane, each lane at its own car speed, wrapping round at the frame's sides (a car
    leaving, another entering)."""
    os.makedirs(out, exist_ok=True)
    w, h = size
    k = DISTORTIONS[1]
    bg = background(os.path.join(clips_dir, "cars_432p.mp4"), size, 1.0, tmp)
    combos = [(hh, a) for hh in HEIGHTS for a in ANGLES]
    rng.shuffle(combos)
    speeds = [rng.choice([-1, 1]) * rng.uniform(2, 9) for _ in range(5)]  # px per frame
    movers = []
    for i, (height, angle) in enumerate(combos):
        path, box = plates[(i * 7) % len(plates)]
        yaw = angle * rng.choice([-1, 1])
        patch, outline = plate_patch(Image.open(path).convert("RGB"), box, yaw, rng.uniform(-8, 8), height)
        lane, slot = i % 5, i // 5
        y = (0.16 + 0.68 * lane / 4) * h
        movers.append((patch, outline, slot * 0.16 * w, y, speeds[lane], height, angle))
    truth = []
    sink = subprocess.Popen(["ffmpeg", "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                             "-r", str(CLIP_FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
                             "-pix_fmt", "yuv420p", os.path.join(out, "hard_plates.mp4")], stdin=subprocess.PIPE)
    for f in range(CLIP_FRAMES):
        canvas = bg.copy()
        boxes = []
        for patch, outline, x0, y, speed, height, angle in movers:
            x = 0.1 * w + (x0 + speed * f) % (0.8 * w)
            quad = paste(canvas, patch, outline, (x, y))
            boxes.append({"plate": [round(v, 1) for v in outline_box(quad, w, h, k)], "height": height, "angle": angle})
        sink.stdin.write(distort(np.array(canvas), k).tobytes())
        truth.append({"frame": f, "plates": boxes})
    sink.stdin.close()
    if sink.wait() != 0:
        sys.exit("ffmpeg failed writing the clip")
    json.dump(truth, open(os.path.join(out, "truth.json"), "w"))


def table(title, rows):
    """rows: (plate height, angle, covered) -> coverage by plate height x angle."""
    buckets = [(h, h + 1, f"{h} px") for h in HEIGHTS]
    print(f"\n{title}")
    print("| plate height | " + " | ".join(f"{a}°" for a in ANGLES) + " | all | ≤45° |")
    print("|---|" + "---|" * (len(ANGLES) + 2))
    for lo, hi, label in buckets:
        cells = []
        for a in ANGLES + ["all", "le45"]:
            sel = [c for hh, aa, c in rows if lo <= hh < hi and (a == "all" or (a == "le45" and aa <= 45) or aa == a)]
            cells.append(f"{sum(sel) / len(sel):.3f} ({len(sel)})" if sel else "-")
        print(f"| {label} | " + " | ".join(cells) + " |")
    key = [c for hh, aa, c in rows if hh >= 16 and aa <= 45]
    print(f"plates >= 16 px at <= 45°: {sum(key)}/{len(key)} = {sum(key) / max(1, len(key)):.3f}")


def score(out, binary, label, extra, only):
    photos = os.path.join(out, "photos")
    meta = [json.loads(l) for l in open(os.path.join(photos, "meta.jsonl"))]
    plans = [("photos", "photo plan", []), ("as-clip", "clip plan (--as-clip)", ["--as-clip"])]
    for _, plan, flags in [p for p in plans if only in ("all", p[0])]:
        p = subprocess.run([binary, "eval", os.path.join(photos, "annotations.jsonl"), "--json", *flags, *extra],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(p.stderr)
        rep = json.loads(p.stdout)
        leaks = {(l["image"], tuple(round(v, 1) for v in l["bbox"])) for l in rep["leaks"]}
        rows = [(m["height"], m["angle"], (m["image"], tuple(m["plate"])) not in leaks) for m in meta]
        table(f"{label} photos, {plan}: {rep['seconds']:.1f} s, masked share {rep['mean_masked_fraction']:.3f}", rows)
    if only not in ("all", "clip"):
        return
    with tempfile.TemporaryDirectory() as d:
        clip = os.path.join(out, "clip", "hard_plates.mp4")
        p = subprocess.run([binary, "redact", clip, "-o", d, "--export-detections", "--quiet", "--overwrite",
                            "--classes", "plate", *extra], capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(p.stderr)
        dets = json.load(open(os.path.join(d, "hard_plates.mp4.detections.json")))
    frames = {f["frame"]: f for f in dets["frames"]}
    rows, by_fit = [], []
    for t in json.load(open(os.path.join(out, "clip", "truth.json"))):
        for b in t["plates"]:
            box = b["plate"]
            f = frames.get(t["frame"], {"boxes": [], "whole_frame": False})
            masks = [("plate", m["box"]) for m in f["boxes"] if m["class"] == "plate"]
            rows.append((b["height"], b["angle"], f["whole_frame"] or covered(box, masks) >= 0.8))
            # The same without masks over 4 times the plate's height: a box that large covers a
            # plate by accident (a held box grown along a wrong motion, a false box over a car).
            fitting = [(c, m) for c, m in masks if m[3] - m[1] <= 4 * (box[3] - box[1])]
            by_fit.append((b["height"], b["angle"], f["whole_frame"] or covered(box, fitting) >= 0.8))
    size = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", "-show_entries", "stream=width,height",
                           "-of", "csv=p=0:s=x", clip], capture_output=True, text=True).stdout.strip()
    table(f"{label} clip ({size}, {CLIP_FRAMES} frames, plates drifting)", rows)
    key = [c for hh, aa, c in by_fit if hh >= 16 and aa <= 45]
    print(f"the same, counting only masks at most 4x the plate's height: {sum(key)}/{len(key)} = "
          f"{sum(key) / max(1, len(key)):.3f}")


def masked(clip, binary, extra):
    with tempfile.TemporaryDirectory() as d:
        p = subprocess.run([binary, "redact", clip, "-o", d, "--export-detections", "--quiet", *extra],
                           capture_output=True, text=True)
        if p.returncode != 0:
            sys.exit(p.stderr)
        dets = json.load(open(os.path.join(d, os.path.basename(clip) + ".detections.json")))
    w, h = dets["width"], dets["height"]
    gy, gx = np.mgrid[0:h, 0:w] + 0.5
    frames = dets["frames"]
    share = {"face": 0.0, "plate": 0.0, "all": 0.0}
    count = {"face": 0, "plate": 0}
    for f in frames:
        under = {"face": np.zeros((h, w), bool), "plate": np.zeros((h, w), bool)}
        for b in f["boxes"]:
            a, bb, c, dd = b["box"]
            cx, cy, rx, ry = (a + c) / 2, (bb + dd) / 2, (c - a) / 2, (dd - bb) / 2
            count[b["class"]] += 1
            if b["class"] == "face":
                rx, ry = max(rx * 1.7, 1e-3), max(ry * 1.7, 1e-3)
                under["face"] |= ((gx - cx) / rx) ** 2 + ((gy - cy) / ry) ** 2 <= 1
            else:
                under["plate"] |= (abs(gx - cx) <= rx * 1.2) & (abs(gy - cy) <= ry * 1.2)
        share["face"] += under["face"].mean() / len(frames)
        share["plate"] += under["plate"].mean() / len(frames)
        share["all"] += (under["face"] | under["plate"]).mean() / len(frames)
    n = len(frames)
    print(f"{os.path.basename(clip)}: {n} frames; faces {count['face'] / n:.2f} per frame covering {share['face']:.4f} "
          f"of the frame; plates {count['plate'] / n:.2f} per frame covering {share['plate']:.4f}; all masks {share['all']:.4f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("out")
    m.add_argument("--plates", default=os.path.join(SHARED, "plates"))
    m.add_argument("--clips", default=os.path.join(SHARED, "clips"))
    m.add_argument("--seed", type=int, default=17)
    m.add_argument("--clip-size", default=f"{CLIP_SIZE[0]}x{CLIP_SIZE[1]}",
                   help="the clip's frame size, WxH (the photos keep their sizes)")
    s = sub.add_parser("score")
    s.add_argument("out")
    s.add_argument("--bin", default=BIN)
    s.add_argument("--label", default="bystander")
    s.add_argument("--only", default="all", choices=["all", "photos", "as-clip", "clip"])
    s.add_argument("--flags", default="", help="more bystander flags, as one string")
    k = sub.add_parser("masked")
    k.add_argument("clip")
    k.add_argument("--bin", default=BIN)
    k.add_argument("--flags", default="", help="more bystander flags, as one string")
    a = ap.parse_args()
    if a.cmd == "make":
        w, _, h = a.clip_size.partition("x")
        if not (w.isdigit() and h.isdigit() and int(w) >= 64 and int(h) >= 64):
            sys.exit(f"--clip-size {a.clip_size!r}: expected WxH, each at least 64, such as 2560x1440")
        make(a.out, a.plates, a.clips, a.seed, (int(w), int(h)))
    elif a.cmd == "masked":
        masked(a.clip, a.bin, shlex.split(a.flags))
    else:
        score(a.out, a.bin, a.label, shlex.split(a.flags), a.only)


if __name__ == "__main__":
    main()

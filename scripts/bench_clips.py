#!/usr/bin/env python3
"""Regenerates the generated part of BENCHMARKS.md: the machine, end-to-end throughput on clips
against plain ffmpeg and deface, the coverage of the same presets, and where the time goes.

For each clip, runs in alternation (round-robin, so drifting machine load hits every tool alike):
plain ffmpeg decode+encode with bystander's encoder settings (libx264, CRF 23, preset veryfast,
audio copied: the ceiling no redaction tool can beat), the same with x264 held to bystander's own
threading (`ffmpeg-same`: one decoder and one x264 thread per core, x264's threaded look-ahead
off, as bystander's encoder runs), the same with libx264's own defaults (preset medium,
`ffmpeg-medium`), bystander's default and fast presets, the fast preset encoding
with libx264's defaults (`fast-medium`, to compare with `ffmpeg-medium`), and deface 1.5.0 at its
default and at --scale 640x360 (if DEFACE points at its executable; install it
in a throwaway venv with
`python3 -m venv /tmp/dv && /tmp/dv/bin/pip install deface==1.5.0 onnxruntime==1.31.1`).
Reports median fps over --runs runs, peak memory and ratios; then coverage of the presets with
the settings clips get (`bystander eval --as-clip`) and the per-stage split (`bystander bench`).

Usage: scripts/bench_clips.py [--runs N] [--clips a.mp4,b.mp4] [--tools ...] [--write]
With --write the block between the bench_clips markers in BENCHMARKS.md is replaced.
"""
import argparse, json, os, platform, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
DATA = os.path.join(SHARED, "clips")
BIN = os.path.join(ROOT, "target", "release", "bystander")
BEGIN, END = "<!-- bench_clips:begin -->", "<!-- bench_clips:end -->"


def sh(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout


def frames(path):
    out = sh(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
              "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path])
    return int(out.strip().strip(","))


def timed(cmd):
    """Wall seconds and peak RSS (KiB) of cmd, via GNU time."""
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M"] + cmd, capture_output=True, text=True)
    wall = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-2000:]}")
    rss = int(re.findall(r"MAXRSS (\d+)", p.stderr)[-1])
    return wall, rss


def command(tool, clip, out):
    if tool in ("ffmpeg", "ffmpeg-same", "ffmpeg-medium"):
        preset = "medium" if tool == "ffmpeg-medium" else "veryfast"
        n = os.cpu_count()
        threads = ["-threads", str(n)] if tool == "ffmpeg-same" else []
        x264 = ["-x264-params", f"threads={n}:sync-lookahead=0"] if tool == "ffmpeg-same" else []
        return (["ffmpeg", "-v", "error", "-y"] + threads + ["-i", clip, "-map", "0:v:0", "-map", "0:a?", "-c:v",
                "libx264", "-crf", "23", "-preset", preset] + x264 + ["-c:a", "copy", os.path.join(out, f"{tool}.mp4")])
    if tool == "default":
        return [BIN, "redact", clip, "-o", os.path.join(out, "default"), "--overwrite", "--quiet"]
    if tool == "fast":
        return [BIN, "redact", clip, "-o", os.path.join(out, "fast"), "--overwrite", "--quiet", "--recall", "fast"]
    if tool == "fast-medium":
        return [BIN, "redact", clip, "-o", os.path.join(out, "fast-medium"), "--overwrite", "--quiet", "--recall",
                "fast", "--preset", "medium"]
    if tool == "deface":
        return [os.environ["DEFACE"], clip, "-o", os.path.join(out, "deface.mp4"), "--ep", "CPUExecutionProvider",
                "--keep-audio"]
    if tool == "deface-640":
        return [os.environ["DEFACE"], clip, "-o", os.path.join(out, "deface640.mp4"), "--ep", "CPUExecutionProvider",
                "--keep-audio", "--scale", "640x360"]
    raise SystemExit(f"unknown tool {tool}")


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    ff = sh(["ffmpeg", "-version"]).splitlines()[0].split(" Copyright")[0]
    rustc = sh(["rustc", "--version"]).strip()
    ort = re.search(r"ONNX Runtime (\S+)", sh([BIN, "models"]))
    deface = ""
    if os.environ.get("DEFACE"):
        pip = os.path.join(os.path.dirname(os.environ["DEFACE"]), "pip")
        vers = dict(l.split("==") for l in sh([pip, "freeze"]).split() if "==" in l)
        deface = f" · deface {vers.get('deface', '?')} with onnxruntime {vers.get('onnxruntime', '?')} (`--ep CPUExecutionProvider`)"
    return (f"Machine: {cpu}, {os.cpu_count()} cores, {mem / 2**20:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()} · {rustc} · ONNX Runtime {ort.group(1) if ort else '?'} (CPU) · "
            f"{ff}{deface}")


def coverage(preset):
    """Covered fractions with the clip settings of a preset, on the shared labelled photos."""
    out = {}
    for label, ann in [("faces", "faces/wider_dev/annotations.jsonl"), ("plates", "plates/annotations.jsonl")]:
        p = subprocess.run([BIN, "eval", os.path.join(SHARED, ann), "--json", "--as-clip", "--recall", preset],
                           capture_output=True, text=True)
        out[label] = json.loads(p.stdout)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clips", default="crowd_1080p.mp4,cars_432p.mp4,stage_360p.mp4")
    ap.add_argument("--tools", default="ffmpeg,ffmpeg-same,ffmpeg-medium,default,fast,fast-medium,deface,deface-640")
    ap.add_argument("--write", action="store_true", help="replace the generated block of BENCHMARKS.md")
    a = ap.parse_args()
    tools = [t for t in a.tools.split(",") if not t.startswith("deface") or os.environ.get("DEFACE")]
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(ROOT, "Cargo.toml")],
                   check=True)
    lines = [machine(), "",
             f"Generated by `scripts/bench_clips.py --runs {a.runs}` on {time.strftime('%Y-%m-%d')}: "
             f"tools run in alternation, median of {a.runs} runs.", "",
             "| clip | frames | tool | median fps | runs (s) | peak RSS MiB | × deface | × ffmpeg |",
             "|---|---|---|---|---|---|---|---|"]
    emit = lambda l: (print(l, flush=True), lines.append(l))
    for l in lines:
        print(l)
    lines = lines[:]
    fps_by, peaks = {}, {}
    for name in a.clips.split(","):
        clip = os.path.join(DATA, name)
        n = frames(clip)
        res = {t: [] for t in tools}
        with tempfile.TemporaryDirectory() as out:
            for _ in range(a.runs):
                for t in tools:
                    res[t].append(timed(command(t, clip, out)))
        fps = {t: n / statistics.median(w for w, _ in res[t]) for t in tools}
        fps_by[name] = fps
        peaks[name] = {t: max(r for _, r in res[t]) for t in tools}
        for t in tools:
            ratio = lambda ref: f"{fps[t] / fps[ref]:.2f}" if ref in fps else "-"
            runs = " ".join(f"{w:.1f}" for w, _ in res[t])
            emit(f"| {name} | {n} | {t} | {fps[t]:.2f} | {runs} | {peaks[name][t] / 1024:.0f} | {ratio('deface')} | {ratio('ffmpeg')} |")
    crowd = fps_by.get("crowd_1080p.mp4", {})
    rss_by = peaks.get("crowd_1080p.mp4", {})
    met = lambda ok: "met" if ok else "**missed**"
    emit("")
    emit("Targets in force on crowd_1080p (issue 17: speed; issue 14: peak RSS, the highest of the runs):")
    emit("")
    if "deface" in crowd and "default" in crowd:
        r = crowd["default"] / crowd["deface"]
        emit(f"- default ≥ 8× deface: {r:.2f}× — {met(r >= 8)}.")
    for ff, what in [("ffmpeg-same", "bystander's own encoder settings (`ffmpeg-same`)"),
                     ("ffmpeg", "x264 threading as it chooses (`ffmpeg`)")]:
        if ff in crowd and "fast" in crowd:
            r = crowd["fast"] / crowd[ff]
            emit(f"- fast ≥ 0.8× a plain transcode (x264 veryfast, CRF 23) with {what}: {r:.2f}× — "
                 f"{met(r >= 0.8)}.")
    for tool, cap in [("default", 450), ("fast", 300)]:
        if tool in rss_by:
            mb = rss_by[tool] * 1024 / 1e6
            emit(f"- {tool} peak RSS ≤ {cap} MB: {rss_by[tool]:,} KiB = {mb:.0f} MB — {met(mb <= cap)}.")
    emit("")
    emit("Coverage of the same presets with the settings clips get (`bystander eval --as-clip`; a box is "
         "covered when ≥ 80 % of it is masked):")
    emit("")
    emit("| preset | faces <10 px | 10–20 | 20–40 | 40–80 | ≥ 80 | all faces | masked share | plates |")
    emit("|---|---|---|---|---|---|---|---|---|")
    for preset, label in [("balanced", "default"), ("fast", "fast")]:
        c = coverage(preset)
        f, p = c["faces"], c["plates"]
        frac = lambda t: f"{t['covered'] / t['total']:.3f}" if t["total"] else "-"
        b = " | ".join(frac(t) for t in f["by_height"])
        emit(f"| {label} | {b} | {frac(f['overall'])} | {f['mean_masked_fraction']:.3f} | {frac(p['overall'])} |")
    emit("")
    if "crowd_1080p.mp4" in fps_by:
        bench = json.loads(sh([BIN, "bench", os.path.join(DATA, "crowd_1080p.mp4"), "--json", "--quiet"]))
        emit(f"Where the time goes at default settings on crowd_1080p (`bystander bench`, {bench['frames']} frames, "
             f"{bench['fps']:.2f} fps, {bench['settings']['detect_workers']} detection workers; detection figures are "
             "thread-seconds summed over workers):")
        emit("")
        emit("| stage | seconds | fps alone | share |")
        emit("|---|---|---|---|")
        for s in bench["stages"]:
            waits = {"wait-for-detect": "decoding thread waiting for detection",
                     "wait-for-encode": "decoding thread waiting for the encoder"}
            if s["stage"] in waits:
                emit(f"| {waits[s['stage']]} | {s['seconds']:.2f} | - | {100 * s['share']:.1f} % of wall |")
            else:
                emit(f"| {s['stage']} | {s['seconds']:.2f} | {s['fps']:.1f} | {100 * s['share']:.1f} % |")
    if a.write:
        path = os.path.join(ROOT, "BENCHMARKS.md")
        doc = open(path).read()
        i, j = doc.index(BEGIN), doc.index(END)
        doc = doc[:i + len(BEGIN)] + "\n" + "\n".join(lines) + "\n" + doc[j:]
        open(path, "w").write(doc)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Regenerates the end-to-end throughput table of BENCHMARKS.md.

For each clip, runs in alternation (round-robin, so drifting machine load hits every tool alike):
plain ffmpeg decode+encode with bystander's encoder settings (libx264, CRF 23, preset medium,
audio copied: the ceiling no redaction tool can beat), bystander's default and fast presets, and
deface 1.5.0 (if DEFACE points at its executable; install it in a throwaway venv with
`python3 -m venv /tmp/dv && /tmp/dv/bin/pip install deface==1.5.0 onnxruntime==1.31.1`).
Prints a Markdown table of median fps over --runs runs, peak memory and ratios.

Usage: scripts/bench_clips.py [--runs N] [--clips a.mp4,b.mp4] [--tools ffmpeg,default,fast,deface]
"""
import argparse, os, re, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "..", "shared", "data", "clips")
BIN = os.path.join(ROOT, "target", "release", "bystander")


def frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets",
                          "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path],
                         capture_output=True, text=True, check=True).stdout
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
    if tool == "ffmpeg":
        return ["ffmpeg", "-v", "error", "-y", "-i", clip, "-map", "0:v:0", "-map", "0:a?", "-c:v", "libx264",
                "-crf", "23", "-preset", "medium", "-c:a", "copy", os.path.join(out, "ff.mp4")]
    if tool == "default":
        return [BIN, "redact", clip, "-o", os.path.join(out, "default"), "--overwrite", "--quiet"]
    if tool == "fast":
        return [BIN, "redact", clip, "-o", os.path.join(out, "fast"), "--overwrite", "--quiet", "--recall", "fast"]
    if tool == "deface":
        return [os.environ["DEFACE"], clip, "-o", os.path.join(out, "deface.mp4"), "--ep", "CPUExecutionProvider",
                "--keep-audio"]
    if tool == "deface-640":
        return [os.environ["DEFACE"], clip, "-o", os.path.join(out, "deface640.mp4"), "--ep", "CPUExecutionProvider",
                "--keep-audio", "--scale", "640x360"]
    raise SystemExit(f"unknown tool {tool}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clips", default="crowd_1080p.mp4,cars_432p.mp4,stage_360p.mp4")
    ap.add_argument("--tools", default="ffmpeg,default,fast,deface,deface-640")
    a = ap.parse_args()
    tools = [t for t in a.tools.split(",") if not t.startswith("deface") or os.environ.get("DEFACE")]
    subprocess.run(["cargo", "build", "--release", "--quiet", "--manifest-path", os.path.join(ROOT, "Cargo.toml")], check=True)
    print("| clip | frames | tool | median fps | runs (s) | peak RSS MiB | × deface | × ffmpeg |")
    print("|---|---|---|---|---|---|---|---|")
    for name in a.clips.split(","):
        clip = os.path.join(DATA, name)
        n = frames(clip)
        res = {t: [] for t in tools}
        with tempfile.TemporaryDirectory() as out:
            for _ in range(a.runs):
                for t in tools:
                    res[t].append(timed(command(t, clip, out)))
        fps = {t: n / statistics.median(w for w, _ in res[t]) for t in tools}
        for t in tools:
            ratio = lambda ref: f"{fps[t] / fps[ref]:.2f}" if ref in fps else "-"
            runs = " ".join(f"{w:.1f}" for w, _ in res[t])
            rss = max(r for _, r in res[t]) / 1024
            print(f"| {name} | {n} | {t} | {fps[t]:.2f} | {runs} | {rss:.0f} | {ratio('deface')} | {ratio('ffmpeg')} |", flush=True)


if __name__ == "__main__":
    main()

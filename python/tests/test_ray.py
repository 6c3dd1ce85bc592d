"""`python -m bystander.ray` on a real local Ray cluster of two nodes (loopback only): the same
outputs and reports as a plain `bystander redact` of the same folder, and a worker killed
mid-file loses nothing.

Needs `ray` (the package's `ray` extra), the command line built, ffmpeg, and the shared data
(see test_bystander.py).
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from test_bystander import CLI, DATA, need

import ray  # noqa: F401  (a missing ray fails this module: it is never skipped)

BIN = os.path.dirname(sys.executable)
PHOTOS = ["2007_007763.jpg", "2008_001322.jpg", "2008_001009.jpg", "2008_002506.jpg"]
CLIPS = ["people-detection_270p.mp4", "classroom_270p.mp4"]
LONG_CLIP = "bikes_272p.mp4"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_cmd(*args):
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    subprocess.run([os.path.join(BIN, "ray"), *args], check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def cluster():
    port = free_port()
    ray_cmd("start", "--head", "--num-cpus", "1", "--port", str(port), "--node-ip-address",
            "127.0.0.1", "--include-dashboard=false", "--disable-usage-stats")
    try:
        ray_cmd("start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1",
                "--node-ip-address", "127.0.0.1", "--disable-usage-stats")
        yield f"127.0.0.1:{port}"
    finally:
        ray_cmd("stop", "--force")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Photos, short clips and a broken file, in a tree with a subfolder."""
    root = tmp_path_factory.mktemp("archive")
    (root / "cams" / "door").mkdir(parents=True)
    for name in PHOTOS:
        shutil.copy(need(os.path.join(DATA, "faces", "dlib", "images", name)), root / name)
    for name in CLIPS:
        shutil.copy(need(os.path.join(DATA, "clips", name)), root / "cams" / "door" / name)
    (root / "cams" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (root / "notes.txt").write_text("not a picture")
    return root


def cli_run(folder, out):
    r = subprocess.run([need(CLI), "redact", str(folder), "-o", str(out), "--json", "--jobs", "1"],
                       capture_output=True, text=True)
    assert r.returncode == 2, r.stderr  # the broken file fails, the rest is redacted
    return json.loads(r.stdout)


def ray_run(folder, out, address, *extra, background=False):
    cmd = [sys.executable, "-m", "bystander.ray", "redact", str(folder), "-o", str(out),
           "--address", address, "--json", *extra]
    if background:
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    return json.loads(r.stdout)


def by_input(summary, root):
    return {os.path.relpath(f["input"], root): f for f in summary["files"]}


def counts(report):
    return {k: report.get(k) for k in ("faces", "plates", "frames", "fail_closed_frames")}


def assert_same_run(ours, theirs, root, out_ours, out_theirs, redacted):
    a, b = by_input(ours, root), by_input(theirs, root)
    assert a.keys() == b.keys()
    assert (ours["redacted"], ours["failed"]) == (theirs["redacted"], theirs["failed"]) == (redacted, 1)
    assert sorted(s["path"] for s in ours["skipped"]) == sorted(s["path"] for s in theirs["skipped"])
    for rel, f in a.items():
        assert f["status"] == b[rel]["status"], rel
        if f["status"] == "failed":
            assert "broken.jpg" in f["error"]
            continue
        assert counts(f["report"]) == counts(b[rel]["report"]), rel
        mine = out_ours / rel
        assert mine.exists() and os.path.exists(str(mine) + ".bystander.json"), rel
        if rel.endswith(".jpg"):
            assert mine.read_bytes() == (out_theirs / rel).read_bytes(), rel
    leftovers = [p for p in out_ours.rglob("*") if p.name.endswith(".bystander-tmp")]
    assert not leftovers, leftovers


def test_a_ray_run_writes_what_the_cli_writes(cluster, folder, tmp_path):
    theirs = cli_run(folder, tmp_path / "cli")
    ours = ray_run(folder, tmp_path / "ray", cluster)
    assert ours["actors"] == 2 and ours["retries"] == 0
    assert_same_run(ours, theirs, folder, tmp_path / "ray", tmp_path / "cli", 6)
    # A rerun keeps every finished output (resume), and redoes the failed one.
    again = ray_run(folder, tmp_path / "ray", cluster)
    assert (again["kept"], again["redacted"], again["failed"]) == (6, 0, 1)


def worker_pids():
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"RedactWorker.run" in cmd:
            pids.append(int(pid))
    return pids


def test_a_worker_killed_mid_file_loses_nothing(cluster, folder, tmp_path):
    big = tmp_path / "archive"
    shutil.copytree(folder, big)
    shutil.copy(need(os.path.join(DATA, "clips", LONG_CLIP)), big / "cams" / LONG_CLIP)
    theirs = cli_run(big, tmp_path / "cli")
    proc = ray_run(big, tmp_path / "ray", cluster, background=True)
    killed = []

    def killer():
        # Kill one worker while its title says it is redacting a file (Ray names a busy actor's
        # process `ray::RedactWorker.run`), after it has been at it for a moment.
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not killed:
            busy = set(worker_pids())
            time.sleep(0.5)
            for pid in sorted(busy & set(worker_pids()))[:1]:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                except ProcessLookupError:
                    pass
            time.sleep(0.1)

    t = threading.Thread(target=killer)
    t.start()
    out, err = proc.communicate(timeout=600)
    t.join()
    assert killed, "no worker was seen running"
    assert proc.returncode == 2, err
    ours = json.loads(out)
    assert ours["retries"] >= 1
    assert_same_run(ours, theirs, big, tmp_path / "ray", tmp_path / "cli", 7)

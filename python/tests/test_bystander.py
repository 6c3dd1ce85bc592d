"""The Python package against the command line on real photos and clips: same boxes, same pixels,
the in-place contract, errors, threads and the stream class.

Needs the command line built (`cargo build --release`, or BYSTANDER_CLI naming the binary),
ffmpeg on PATH, and the shared data next to the checkout (`../shared/data`, or BYSTANDER_DATA).
"""

import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import bystander

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DATA = os.environ.get("BYSTANDER_DATA", os.path.join(ROOT, "..", "shared", "data"))
CLI = os.environ.get("BYSTANDER_CLI", os.path.join(ROOT, "target", "release", "bystander"))
PHOTO = os.path.join(DATA, "faces", "dlib", "images", "2007_007763.jpg")
CLIP = os.path.join(DATA, "clips", "face-demographics-walking_270p.mp4")


def need(path):
    # A missing input is a failure, not a skip: CI must not pass because nothing ran.
    assert os.path.exists(path), f"{path} is missing (see the test module's docstring)"
    return path


@pytest.fixture(scope="module")
def photo_png(tmp_path_factory):
    """The dlib photo as PNG, so that the command line's output is compared without JPEG loss."""
    d = tmp_path_factory.mktemp("photo")
    png = str(d / "2007_007763.png")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", need(PHOTO), png], check=True, stdin=subprocess.DEVNULL
    )
    return png


def cli_redact(src, out_dir, *flags):
    subprocess.run(
        [need(CLI), "redact", src, "-o", out_dir, "--export-detections", "--quiet", *flags],
        check=True,
    )
    name = os.path.basename(src)
    with open(os.path.join(out_dir, name + ".detections.json")) as f:
        boxes = json.load(f)["frames"][0]["boxes"]
    return os.path.join(out_dir, name), boxes


def same_boxes(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(sorted(ours, key=lambda b: b["box"]), sorted(theirs, key=lambda b: b["box"])):
        assert a["class"] == b["class"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-5)
        assert a["box"] == pytest.approx(b["box"], abs=1e-3)


@pytest.mark.parametrize(
    "options,flags",
    [({}, []), ({"style": "fill", "fill_color": "FF00FF"}, ["--style", "fill", "--fill-color", "FF00FF"])],
)
def test_redact_frame_gives_the_cli_boxes_and_pixels(photo_png, tmp_path, options, flags):
    out, cli_boxes = cli_redact(photo_png, str(tmp_path), *flags)
    frame = bystander.read_image(photo_png)
    assert frame.shape == (375, 500, 3) and frame.dtype == np.uint8
    boxes = bystander.redact_frame(frame, **options)
    faces = [b for b in boxes if b["class"] == "face" and b["score"] > 0.9]
    assert len(faces) >= 5, boxes  # a group photo: the dlib labels list several faces
    same_boxes(boxes, cli_boxes)
    np.testing.assert_array_equal(frame, bystander.read_image(out))
    if options:
        # The fill colour is FF00FF in RGB: B=255, G=0, R=255 in the BGR array.
        assert ((frame == [255, 0, 255]).all(axis=2)).sum() > 1000


def test_frames_are_redacted_in_place_and_only_under_the_masks(photo_png):
    frame = bystander.read_image(photo_png)
    before = frame.copy()
    same = frame
    boxes = bystander.redact_frame(frame, shape="rect", mask_scale=1.0)
    assert frame is same
    changed = (frame != before).any(axis=2)
    assert changed.sum() > 0
    allowed = np.zeros_like(changed)
    for b in boxes:
        x1, y1, x2, y2 = b["box"]
        allowed[max(int(y1) - 1, 0) : int(y2) + 2, max(int(x1) - 1, 0) : int(x2) + 2] = True
    assert not (changed & ~allowed).any(), "a pixel outside every box changed"


def test_a_crop_is_redacted_through_its_view_and_nothing_outside_it(photo_png):
    frame = bystander.read_image(photo_png)
    before = frame.copy()
    view = frame[50:300, 80:460]  # rows padded: a strided view of the parent
    assert not view.flags["C_CONTIGUOUS"]
    boxes = bystander.redact_frame(view)
    assert boxes
    outside = np.ones(frame.shape[:2], bool)
    outside[50:300, 80:460] = False
    np.testing.assert_array_equal(frame[outside], before[outside])
    assert (frame[50:300, 80:460] != before[50:300, 80:460]).any()


def test_rgb_order_finds_the_same_faces(photo_png):
    bgr = bystander.read_image(photo_png)
    rgb = bystander.read_image(photo_png, order="rgb")
    np.testing.assert_array_equal(bgr[..., ::-1], rgb)
    a = bystander.redact_frame(bgr)
    b = bystander.redact_frame(rgb, order="rgb")
    same_boxes(a, b)
    np.testing.assert_array_equal(bgr[..., ::-1], rgb)


def test_errors_are_typed_and_name_what_was_wrong(tmp_path, photo_png):
    with pytest.raises(bystander.InputError, match="shape"):
        bystander.redact_frame(np.zeros((10, 10), np.uint8))
    with pytest.raises(bystander.InputError, match="shape"):
        bystander.redact_frame(np.zeros((0, 10, 3), np.uint8))
    with pytest.raises(bystander.InputError, match="strides"):
        bystander.redact_frame(np.zeros((10, 10, 3), np.uint8)[::-1])
    ro = np.zeros((10, 10, 3), np.uint8)
    ro.flags.writeable = False
    with pytest.raises(bystander.InputError, match="writ"):
        bystander.redact_frame(ro)
    with pytest.raises(TypeError):
        bystander.redact_frame(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(bystander.ConfigError, match="unknown option colour"):
        bystander.redact_frame(np.zeros((10, 10, 3), np.uint8), colour="red")
    with pytest.raises(bystander.ConfigError, match="style"):
        bystander.redact_frame(np.zeros((10, 10, 3), np.uint8), style="smudge")
    with pytest.raises(bystander.ConfigError, match="jobs"):
        bystander.redact_frame(np.zeros((10, 10, 3), np.uint8), jobs=0)
    with pytest.raises(bystander.ConfigError, match="rotations"):
        bystander.redact_frame(np.zeros((10, 10, 3), np.uint8), rotations=3)
    assert bystander.redact_frame(np.zeros((10, 10, 3), np.uint8), rotations=4) == []
    # A file that cannot be opened is an I/O fault (RuntimeFault), named with its path.
    with pytest.raises(bystander.Error, match="missing.png"):
        bystander.read_image(str(tmp_path / "missing.png"))
    with pytest.raises(bystander.InputError, match="missing.jpg"):
        bystander.redact_file(str(tmp_path / "missing.jpg"), str(tmp_path / "out.jpg"))
    with pytest.raises(bystander.ConfigError, match="inputs"):
        bystander.redact_file(photo_png, photo_png, overwrite=True)
    assert issubclass(bystander.ConfigError, bystander.Error)


def test_threads_redact_side_by_side_as_one_thread_does(photo_png):
    first = bystander.read_image(photo_png)
    want = bystander.redact_frame(first)
    frames = [bystander.read_image(photo_png) for _ in range(4)]
    got = [None] * 4

    def work(i):
        got[i] = bystander.redact_frame(frames[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for boxes, frame in zip(got, frames):
        same_boxes(boxes, want)
        np.testing.assert_array_equal(frame, first)


def test_redact_file_writes_what_the_cli_writes_and_keeps_it_on_rerun(photo_png, tmp_path):
    cli_out, _ = cli_redact(photo_png, str(tmp_path / "cli"))
    out = str(tmp_path / "py" / "redacted.png")
    os.makedirs(os.path.dirname(out))
    outcome = bystander.redact_file(photo_png, out)
    assert outcome["status"] == "redacted"
    assert outcome["report"]["faces"] >= 5
    with open(out, "rb") as a, open(cli_out, "rb") as b:
        assert a.read() == b.read()
    assert os.path.exists(out + ".bystander.json")
    assert bystander.redact_file(photo_png, out)["status"] == "kept"
    again = bystander.redact_file(photo_png, out, style="pixelate")
    assert again["status"] == "redacted" and "redact" in again["redone"]


def read_frames(path, w, h):
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", path, "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).copy()


def test_redact_clip_and_a_batch_summary(tmp_path):
    clip = need(CLIP)
    out = str(tmp_path / "clip.mp4")
    outcome = bystander.redact_clip(clip, out, jobs=2)
    report = outcome["report"]
    assert outcome["status"] == "redacted"
    assert report["frames"] == 35 and report["faces"] > 0
    assert len(read_frames(out, 480, 270)) == 35
    with pytest.raises(bystander.InputError, match="not a clip"):
        bystander.redact_clip(PHOTO, str(tmp_path / "x.mp4"))
    summary = bystander.redact([clip], str(tmp_path / "batch"), jobs=2)
    assert (summary["redacted"], summary["failed"]) == (1, 0)
    assert summary["files"][0]["report"]["faces"] == report["faces"]


def test_redact_clip_drops_the_sound_when_asked(tmp_path):
    clip = str(tmp_path / "porch.mkv")
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10",
         "-f", "lavfi", "-i", "sine=frequency=300", "-t", "1", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-c:a", "aac", clip],
        check=True,
    )
    kept = bystander.redact_clip(clip, str(tmp_path / "kept.mkv"), recall="fast")
    assert kept["report"]["dropped_streams"] == []
    out = bystander.redact_clip(clip, str(tmp_path / "out.mkv"), recall="fast", no_audio=True)
    dropped = out["report"]["dropped_streams"]
    assert [d["kind"] for d in dropped] == ["audio"] and "--no-audio" in dropped[0]["reason"]
    assert out["report"]["frames"] == 10


def test_ctrl_c_stops_a_batch_with_whole_outputs_only(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=640x360:rate=25", "-t", "20",
         "-c:v", "libx264", str(src / "long.mp4")],
        check=True,
    )
    script = (
        "import sys, bystander\n"
        "try:\n"
        "    bystander.redact([sys.argv[1]], sys.argv[2], recall='fast')\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(42)\n"
        "sys.exit(0)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script, str(src), str(out)])
    writing = lambda: out.exists() and any(p.name.endswith(".bystander-tmp") for p in out.iterdir())
    for _ in range(3000):
        if writing() or child.poll() is not None:
            break
        threading.Event().wait(0.02)
    assert writing(), "the run never started writing"
    threading.Event().wait(0.3)
    child.send_signal(2)  # SIGINT, as Ctrl-C sends it
    # KeyboardInterrupt comes out of the call, once the clip under way has been abandoned.
    assert child.wait(timeout=60) == 42
    assert sorted(p.name for p in out.iterdir()) == []


def test_a_stream_takes_4_2_0_frames_as_frigate_keeps_them():
    # Frigate keeps each frame as one (height * 3 / 2) x width array: Y, then U, then V.
    w, h = 480, 270
    raw = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", need(CLIP), "-f", "rawvideo", "-pix_fmt", "yuv420p", "-"],
        capture_output=True, check=True,
    ).stdout
    size = w * h * 3 // 2
    frames = [
        np.frombuffer(raw[i:i + size], np.uint8).reshape(h * 3 // 2, w).copy()
        for i in range(0, len(raw), size)
    ]
    r = bystander.Redactor(order="i420", jobs=2, backfill=2)
    out = []
    for i, f in enumerate(frames):
        out += r.push(f, pts=i)
    out += r.finish()
    assert [o["pts"] for o in out] == list(range(len(frames)))
    assert all(o["frame"].shape == (h * 3 // 2, w) and o["fault"] is None for o in out)
    with_boxes = [o for o in out if o["boxes"]]
    assert len(with_boxes) >= len(frames) // 2
    for o in with_boxes:
        src = frames[o["pts"]]
        x1, y1, x2, y2 = o["painted"][0]
        assert (o["frame"][y1:y2, x1:x2] != src[y1:y2, x1:x2]).any()  # the face's luma
        # Luma rows above and below every painted rectangle are the host's own.
        top = min(p[1] for p in o["painted"])
        assert (o["frame"][:top & ~1] == src[:top & ~1]).all()
    with pytest.raises(bystander.InputError):
        r.push(np.zeros((100, w), np.uint8), pts=99)  # not height * 3 / 2 rows
    with pytest.raises(bystander.ConfigError):
        bystander.Redactor(order="yuv")


def test_a_stream_returns_every_frame_in_order_and_covers_faces():
    frames = read_frames(need(CLIP), 480, 270)
    r = bystander.Redactor(jobs=2, backfill=2)
    assert r.latency_frames == 2
    out = []
    for i, f in enumerate(frames):
        out += r.push(f, pts=i * 40)
    out += r.finish()
    assert [o["pts"] for o in out] == [i * 40 for i in range(len(frames))]
    assert all(o["fault"] is None for o in out)
    with_boxes = [o for o in out if o["boxes"]]
    assert len(with_boxes) >= len(frames) // 2
    for o in with_boxes:
        x1, y1, x2, y2 = o["painted"][0]
        src = frames[out.index(o)]
        assert (o["frame"][y1:y2, x1:x2] != src[y1:y2, x1:x2]).any()
    assert r.stats()["frames"] == len(frames)
    # Progressive frames: none taken for interlaced ones.
    assert r.stats()["combed_frames"] == 0
    # Fewer sessions (two workers share one per model's turn): the same boxes and pixels.
    low = bystander.Redactor(jobs=2, backfill=2, low_memory=True)
    lean = []
    for i, f in enumerate(frames):
        lean += low.push(f, pts=i * 40)
    lean += low.finish()
    assert [o["boxes"] for o in lean] == [o["boxes"] for o in out]
    assert all((a["frame"] == b["frame"]).all() for a, b in zip(lean, out))
    with pytest.raises(bystander.ConfigError, match="low_memory"):
        bystander.Redactor(low_memory="yes")


def test_frames_with_pixels_twice_as_wide_are_detected_as_shown():
    frames = read_frames(need(CLIP), 480, 270)[:24]
    # Half the columns, as a camera storing pixels twice as wide as high would keep them.
    squeezed = [np.ascontiguousarray(f[:, ::2]) for f in frames]

    def faces(fs, **options):
        r = bystander.Redactor(jobs=2, backfill=0, hold=0, **options)
        return [[b for b in r.redact(f.copy())["boxes"] if b["class"] == "face"] for f in fs]

    shown = faces(frames)
    # At 0.5: detected as stored, 6 of the 48 faces checked below score 0.33 to 0.45 and are
    # lost; stretched to their shown shape, the least of them scores 0.63.
    stored = faces(squeezed, pixel_aspect=2.0, threshold=0.5)
    checked = 0
    for n, (full, half) in enumerate(zip(shown, stored)):
        assert all(b["box"][2] <= 240.5 for b in half), f"frame {n}: boxes in stored pixels"
        for b in full:
            if b["score"] < 0.6:
                continue
            x1, y1, x2, y2 = b["box"]
            cx, cy = (x1 + x2) / 4, (y1 + y2) / 2
            assert any(
                h["box"][0] <= cx <= h["box"][2] and h["box"][1] <= cy <= h["box"][3] for h in half
            ), f"frame {n}: the face at {b['box']} (as shown) is not found stored"
            checked += 1
    assert checked >= len(frames) // 2
    with pytest.raises(bystander.ConfigError, match="pixel aspect"):
        bystander.Redactor(pixel_aspect=5.0)
    with pytest.raises(bystander.ConfigError, match="interlaced"):
        bystander.Redactor(interlaced="yes")
    assert bystander.Redactor(interlaced=True).latency_frames == 4
    # HDR frames are named by their transfer; anything else is refused with the allowed names.
    with pytest.raises(bystander.ConfigError, match="sdr, pq, hlg"):
        bystander.Redactor(transfer="hdr10")
    assert bystander.Redactor(transfer="pq").latency_frames == 4


def test_memory_is_short_answers_as_the_command_line_decides(tmp_path):
    # The command line's default: on exactly where the package says memory is short.
    subprocess.run([need(CLI), "redact", need(CLIP), "-o", str(tmp_path), "--quiet"], check=True)
    with open(tmp_path / (os.path.basename(CLIP) + ".bystander.json")) as f:
        report = json.load(f)
    assert report["settings"]["video"]["low_memory"] is bystander.memory_is_short()


def test_live_view_redacts_in_place_and_needs_no_lookahead():
    frames = read_frames(need(CLIP), 480, 270)
    live = bystander.Redactor(jobs=1, backfill=0)
    f = frames[10]
    before = f.copy()
    res = live.redact(f)
    assert res["boxes"] and res["fault"] is None and res["seconds"] > 0
    changed = (f != before).any(axis=2)
    inside = np.zeros_like(changed)
    for x1, y1, x2, y2 in res["painted"]:
        inside[y1:y2, x1:x2] = True
    assert changed.any() and not (changed & ~inside).any()
    with pytest.raises(bystander.ConfigError, match="backfill"):
        bystander.Redactor(jobs=1, backfill=3).redact(frames[0])


def test_the_jpeg_itself_gives_the_cli_boxes(tmp_path):
    _, cli_boxes = cli_redact(need(PHOTO), str(tmp_path))
    boxes = bystander.redact_frame(bystander.read_image(PHOTO))
    same_boxes(boxes, cli_boxes)


def test_the_licence_clean_plate_model_ships_in_the_package(tmp_path):
    # `plate_model="plate-text"` (Apache-2.0 weights only) is the plate path for a host that
    # cannot take the AGPL-encumbered YOLOv8n files; it has to work from the installed package.
    scene = os.path.join(ROOT, "tests", "fixtures", "plate_scene.jpg")
    _, cli_boxes = cli_redact(scene, str(tmp_path), "--plate-model", "plate-text", "--classes", "plate")
    boxes = bystander.redact_frame(
        bystander.read_image(scene), plate_model="plate-text", classes=["plate"]
    )
    assert boxes and all(b["class"] == "plate" for b in boxes), boxes
    same_boxes(boxes, cli_boxes)
    # The best box is on the plate tests/fixtures/make_plate_scene.py drew at (390, 420)-(570, 462).
    x1, y1, x2, y2 = max(boxes, key=lambda b: b["score"])["box"]
    assert x1 <= 400 and y1 <= 430 and x2 >= 560 and y2 >= 452 and (x2 - x1) < 260, boxes


def test_onnx_runtime_telemetry_is_off_from_import(tmp_path, photo_png):
    # ONNX Runtime's own telemetry writes a device id and usage events under
    # $XDG_CACHE_HOME/Microsoft/DeveloperTools/.onnxruntime and uploads them, unless
    # ORT_DISABLE_TELEMETRY=1 is set before it starts. A fresh interpreter with no CI variable (ONNX
    # Runtime is silent under CI) and a cache of its own, even when its environment says 0.
    script = (
        "import os, sys, bystander\n"
        "assert os.environ['ORT_DISABLE_TELEMETRY'] == '1'\n"
        "frame = bystander.read_image(sys.argv[1])\n"
        "assert bystander.redact_frame(frame), 'the photo has faces'\n"
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CI", "GITHUB_ACTIONS", "TF_BUILD", "ORT_DISABLE_TELEMETRY")
    }
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path), ORT_DISABLE_TELEMETRY="0")
    subprocess.run([sys.executable, "-c", script, photo_png], env=env, check=True)
    assert not (tmp_path / "Microsoft").exists()


def test_an_iphone_heic_photo_is_read_and_redacted_into_a_jpeg(tmp_path):
    heic = os.path.join(ROOT, "tests", "fixtures", "astronaut.heic")
    src = tmp_path / "phone"
    src.mkdir()
    with open(heic, "rb") as f, open(src / "IMG_0001.HEIC", "wb") as g:
        g.write(f.read())
    frame = bystander.read_image(str(src / "IMG_0001.HEIC"))
    assert frame.shape == (512, 512, 3)
    summary = bystander.redact([str(src)], str(tmp_path / "out"))
    assert (summary["redacted"], summary["failed"]) == (1, 0)
    assert summary["files"][0]["report"]["faces"] >= 1
    out = tmp_path / "out" / "IMG_0001.HEIC.jpg"
    with open(out, "rb") as f:
        assert f.read(3) == b"\xff\xd8\xff"
    redacted = bystander.read_image(str(out))
    # The face (CenterFace's box on the fixture) is hidden; a corner far from it is not touched.
    face = (slice(58, 178), slice(182, 270))
    assert np.abs(redacted[face].astype(int) - frame[face].astype(int)).mean() > 20
    corner = (slice(400, 500), slice(400, 500))
    assert np.abs(redacted[corner].astype(int) - frame[corner].astype(int)).mean() < 8


def test_a_heic_photo_is_written_as_a_jpeg_under_a_jpeg_name_only(tmp_path):
    heic = os.path.join(ROOT, "tests", "fixtures", "astronaut.heic")
    with pytest.raises(bystander.InputError, match=r"name its output \.jpg"):
        bystander.redact_file(heic, str(tmp_path / "copy.heic"))
    assert not os.path.exists(tmp_path / "copy.heic")
    outcome = bystander.redact_file(heic, str(tmp_path / "copy.jpg"))
    assert outcome["status"] == "redacted" and outcome["report"]["faces"] >= 1
    with open(tmp_path / "copy.jpg", "rb") as f:
        assert f.read(3) == b"\xff\xd8\xff"

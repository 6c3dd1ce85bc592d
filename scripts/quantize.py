#!/usr/bin/env python3
"""Makes the int8 (QDQ) copies of the shipped detectors that models/README.md lists, with
onnxruntime's own static quantization tools, calibrated on frames of the shared clips.

Why these choices:
* Calibration data: frames of every clip in ../shared/data/clips (the clips are MIT, CC-BY-4.0
  and BSD licensed, so no licence of the evaluation photos reaches the weights), 4 frames per
  clip spread over its length, 48 frames in all, prepared exactly as bystander feeds each family
  (YOLOv8: RGB/255 letterboxed into 640 x 640 with 114; CenterFace: RGB 0..255; RetinaFace-style:
  BGR minus (104, 117, 123); the free-size models at 640 x 384, one shape for all frames).
* QDQ format, int8 weights per channel, uint8 activations, MinMax calibration: what ONNX Runtime's
  CPU provider runs as integer kernels on x86 (AVX2 and later).
* YOLOv8's detect head stays in float from its last 1x1 convolutions on: the head concatenates box
  coordinates (0..640) and class scores (0..1) into one tensor, and one int8 scale for both rounds
  every score to zero (tried: no plate found at all).

The outputs go to OUT (default models/), named NAME_int8.onnx; the script prints each file's
sha256 and its time per run against the float model (one thread, 20 runs). The shipped YOLOv8
files are then rewritten to take any input size by scripts/yolo_any_size.py (models/README.md):
run this on the exported 640 x 640 file, then that on its output.

Usage: scripts/quantize.py [--out DIR] [--models plate_yolov8n_pyplatex,centerface,...]
Needs: pip install onnxruntime==1.31.1 onnx numpy pillow (in a throwaway venv).
"""
import argparse, glob, hashlib, os, re, subprocess, time

import numpy as np
import onnx
import onnx.version_converter
import onnxruntime as ort
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType,
                                      quantize_static)
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIPS = os.path.join(ROOT, "..", "shared", "data", "clips")
FAMILY = {
    "plate_yolov8n_pyplatex": "yolo",
    "centerface": "centerface",
    "retinaface_mnet025": "retina",
    "plate_retina_clp": "retina",
}


def clip_frames(per_clip=4):
    """RGB frames (PIL) spread over every shared clip."""
    frames = []
    for clip in sorted(glob.glob(os.path.join(CLIPS, "*.mp4"))):
        n = int(subprocess.run(
            ["ffprobe", "-v", "error", "-select_streams", "v:0", "-count_packets", "-show_entries",
             "stream=nb_read_packets,width,height", "-of", "csv=p=0", clip],
            capture_output=True, text=True, check=True).stdout.strip().split(",")[-1])
        for k in range(per_clip):
            idx = (2 * k + 1) * n // (2 * per_clip)
            raw = subprocess.run(
                ["ffmpeg", "-v", "error", "-i", clip, "-vf", f"select=eq(n\\,{idx})", "-frames:v", "1",
                 "-f", "image2pipe", "-vcodec", "png", "-"], capture_output=True, check=True).stdout
            import io
            frames.append(Image.open(io.BytesIO(raw)).convert("RGB"))
    return frames


def prepare(img, family):
    w, h = img.size
    if family == "yolo":
        r = min(640 / w, 640 / h)
        nw, nh = round(w * r), round(h * r)
        canvas = Image.new("RGB", (640, 640), (114, 114, 114))
        canvas.paste(img.resize((nw, nh), Image.BILINEAR), ((640 - nw) // 2, (640 - nh) // 2))
        return (np.asarray(canvas, np.float32) / 255.0).transpose(2, 0, 1)[None]
    # One shape for every frame: ONNX Runtime's calibrator stacks the activations of all inputs.
    x = np.asarray(img.resize((640, 384), Image.BILINEAR), np.float32)
    if family == "retina":
        x = x[:, :, ::-1] - np.array([104, 117, 123], np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class Reader(CalibrationDataReader):
    def __init__(self, name, inputs):
        self.it = iter([{name: x} for x in inputs])

    def get_next(self):
        return next(self.it, None)


def float_head(model):
    """YOLOv8 detect-head nodes kept in float: everything of model.22 past its first two convs."""
    return [n.name for n in model.graph.node
            if "/model.22/" in n.name and not re.search(r"/cv[23]\.[012]/cv[23]\.[012]\.[01]/", n.name)]


def ms_per_run(path, x, runs=20):
    o = ort.SessionOptions()
    o.intra_op_num_threads = 1
    s = ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])
    feed = {s.get_inputs()[0].name: x}
    s.run(None, feed)
    t = time.perf_counter()
    for _ in range(runs):
        s.run(None, feed)
    return (time.perf_counter() - t) / runs * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "models"))
    ap.add_argument("--models", default="plate_yolov8n_pyplatex")
    a = ap.parse_args()
    frames = clip_frames()
    for name in a.models.split(","):
        family = FAMILY[name]
        src = os.path.join(ROOT, "models", name + ".onnx")
        dst = os.path.join(a.out, name + "_int8.onnx")
        model = onnx.load(src)
        input_name = model.graph.input[0].name
        if max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) < 13:
            # Per-channel DequantizeLinear (its axis attribute) needs opset 13.
            model = onnx.version_converter.convert_version(model, 13)
            src = os.path.join(a.out, name + "_opset13.onnx")
            onnx.save(model, src)
        calib = [prepare(f, family) for f in frames]
        quantize_static(src, dst, Reader(input_name, calib), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8,
                        nodes_to_exclude=float_head(model) if family == "yolo" else [])
        if src.endswith("_opset13.onnx"):
            os.remove(src)
            src = os.path.join(ROOT, "models", name + ".onnx")
        sha = hashlib.sha256(open(dst, "rb").read()).hexdigest()
        x = calib[0]
        print(f"{os.path.basename(dst)} sha256 {sha} calibrated on {len(calib)} frames; "
              f"{ms_per_run(src, x):.1f} ms float, {ms_per_run(dst, x):.1f} ms int8 "
              f"(input {list(x.shape)}, 1 thread)")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Rewrites an exported YOLOv8 detect model so that it takes any input size (multiples of 32).

Why: Ultralytics exports YOLOv8 with a fixed 640 x 640 input, and bystander letterboxes every
region into it. A 16:9 frame fills 640 x 360 of it, so 44 % of every whole-frame run is spent on
padding. Only the detect head ties the network to its input size: its anchor centres and strides
are stored as constants for 8400 anchors (80 x 80 + 40 x 40 + 20 x 20), and two reshapes of the
box distribution name 8400. Everything before them is convolutions, pooling, splits,
concatenations and resizes by scale factors. This script replaces the constants with the same
values computed from each level's feature-map shape (centres j + 0.5, i + 0.5 in row-major order
per level, level strides 8, 16, 32), and the reshapes' 8400 with -1. The weights are not touched: on a 640 x 640 input the
rewritten model gives the same output as the original, which `--check` verifies.

Usage: scripts/yolo_any_size.py IN.onnx OUT.onnx [--check]
Needs: pip install onnx numpy (and onnxruntime for --check), in a throwaway venv.
"""
import argparse, hashlib, sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto

HEAD = "/model.22"
ANCHOR_INPUTS = [HEAD + "/Constant_12_output_0", HEAD + "/Constant_13_output_0"]
STRIDE_INPUT = HEAD + "/Constant_15_output_0"
DFL_SHAPES = {HEAD + "/dfl/Constant_output_0": [1, 4, 16, -1], HEAD + "/dfl/Constant_1_output_0": [1, 4, -1]}
# The box branch's last convolution of each level, stride 8, 16, 32.
LEVELS = [(HEAD + f"/cv2.{k}/cv2.{k}.2/Conv_output_0", 8 << k) for k in range(3)]


def rewrite(model):
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    for name in ANCHOR_INPUTS + [STRIDE_INPUT] + list(DFL_SHAPES):
        if name not in inits:
            sys.exit(f"not the expected YOLOv8 detect head: no initializer {name}")
    produced = {o for n in g.node for o in n.output}
    for out, _ in LEVELS:
        if out not in produced:
            sys.exit(f"not the expected YOLOv8 detect head: no tensor {out}")

    nodes, consts = [], []

    def const(name, value, dtype):
        consts.append(numpy_helper.from_array(np.array(value, dtype=dtype), name))
        return name

    def node(op, inputs, name, **attrs):
        nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    p = "/any_size"
    half, one, zero = const(p + "/half", 0.5, np.float32), const(p + "/one", 1.0, np.float32), const(p + "/zero", 0.0, np.float32)
    i2, i3 = const(p + "/i2", [2], np.int64), const(p + "/i3", [3], np.int64)
    flat = const(p + "/flat", [1, 1, -1], np.int64)
    row = const(p + "/row", [1, -1], np.int64)
    anchors, strides = [], []
    for k, (feature, stride) in enumerate(LEVELS):
        q = f"{p}/l{k}"
        shape = node("Shape", [feature], q + "/shape")
        h = node("Gather", [shape, i2], q + "/h", axis=0)  # [1], int64
        w = node("Gather", [shape, i3], q + "/w", axis=0)
        hw = node("Concat", [h, w], q + "/hw", axis=0)  # [2] = (h, w)
        hf = node("Cast", [node("Squeeze", [h], q + "/h0")], q + "/hf", to=TensorProto.FLOAT)
        wf = node("Cast", [node("Squeeze", [w], q + "/w0")], q + "/wf", to=TensorProto.FLOAT)
        # 0.5, 1.5, ... up to but not including h (and w): one centre per cell.
        ys = node("Range", [half, hf, one], q + "/ys")
        xs = node("Range", [half, wf, one], q + "/xs")
        col = const(q + "/col_axis", [1], np.int64)
        first = const(q + "/row_axis", [0], np.int64)
        gy = node("Expand", [node("Unsqueeze", [ys, col], q + "/ys2"), hw], q + "/gy")  # [h, w]
        gx = node("Expand", [node("Unsqueeze", [xs, first], q + "/xs2"), hw], q + "/gx")  # [h, w]
        ax = node("Reshape", [gx, flat], q + "/ax")  # [1, 1, h*w], row-major like the original
        ay = node("Reshape", [gy, flat], q + "/ay")
        anchors.append(node("Concat", [ax, ay], q + "/anchors", axis=1))  # [1, 2, h*w]
        s = const(q + "/stride", float(stride), np.float32)
        zeros = node("Mul", [node("Reshape", [gx, row], q + "/gx_row"), zero], q + "/zeros")
        strides.append(node("Add", [zeros, s], q + "/strides"))  # [1, h*w]
    anchor = node("Concat", anchors, p + "/anchors", axis=2)
    stride = node("Concat", strides, p + "/strides", axis=1)

    for n in g.node:
        for j, name in enumerate(n.input):
            if name in ANCHOR_INPUTS:
                n.input[j] = anchor
            elif name == STRIDE_INPUT:
                n.input[j] = stride
    for name, shape in DFL_SHAPES.items():
        inits[name].CopyFrom(numpy_helper.from_array(np.array(shape, dtype=np.int64), name))
    for name in ANCHOR_INPUTS + [STRIDE_INPUT]:
        g.initializer.remove(inits[name])
    g.initializer.extend(consts)
    # The new nodes read the feature maps' shapes, so they go right after the last level's
    # convolution (the graph stays in topological order).
    last = max(i for i, n in enumerate(g.node) if LEVELS[-1][0] in n.output)
    for offset, n in enumerate(nodes):
        g.node.insert(last + 1 + offset, n)

    dims = g.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "height", "width"
    g.output[0].type.tensor_type.shape.dim[2].dim_param = "anchors"
    for prop in model.metadata_props:
        if prop.key == "imgsz":
            prop.value = "any multiple of 32 (rewritten by bystander's scripts/yolo_any_size.py)"
    del g.value_info[:]
    onnx.checker.check_model(model)
    return model


def check(original, rewritten):
    import onnxruntime as ort
    rng = np.random.default_rng(1)
    a = ort.InferenceSession(original, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(rewritten, providers=["CPUExecutionProvider"])
    name = a.get_inputs()[0].name
    x = rng.random((1, 3, 640, 640), dtype=np.float32)
    ya, yb = a.run(None, {name: x})[0], b.run(None, {name: x})[0]
    print(f"640 x 640: max difference {np.abs(ya - yb).max():g} over {ya.shape}")
    if not np.array_equal(ya, yb):
        sys.exit("the rewritten model does not give the original's output on 640 x 640")
    for h, w in [(384, 640), (640, 384), (544, 640), (32, 64)]:
        y = b.run(None, {name: rng.random((1, 3, h, w), dtype=np.float32)})[0]
        want = sum((h // s) * (w // s) for s in (8, 16, 32))
        print(f"{w} x {h}: output {y.shape}, {want} anchors expected")
        if y.shape[2] != want:
            sys.exit("wrong anchor count")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args()
    model = rewrite(onnx.load(args.src))
    onnx.save(model, args.out)
    with open(args.out, "rb") as f:
        print(f"{args.out}: sha256 {hashlib.sha256(f.read()).hexdigest()}")
    if args.check:
        check(args.src, args.out)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Rewrites a MobileNetV2-style detector so that ONNX Runtime never holds its widest tensors whole.

Why: CenterFace's backbone is MobileNetV2. Its second block widens 16 channels to 96 at half the
input's resolution, so at the clip working size (960 x 544) one tensor is 96 x 272 x 480 floats,
50 MB, and ONNX Runtime holds it beside the block's next tensor: 82 MB of activations for one run,
more than the model's weights ten times over. Two detection workers running it at once set the
peak memory of a clip (issue 14).

What: every inverted-residual block, 1x1 convolution (widen) -> Relu -> depthwise convolution ->
Relu -> 1x1 convolution (narrow), whose widened tensor is larger than --max-mb at the reference
input, is computed in K groups of its wide channels: each group is widened, filtered and narrowed
on its own, and the K narrowed parts are summed (Add) in order. The depthwise filter works on each
channel alone, so the groups need nothing from each other, and the narrowing convolution is a sum
over the wide channels, so the sum of the parts is the same function; only the order of float
additions changes (outputs agree to about 1e-5, see --check). The nodes are written group after
group, so the runtime frees one group's wide tensors before it makes the next. The weights are the
model's own, sliced; nothing is retrained or approximated.

Tried: joining the groups' filtered tensors (Concat) and narrowing once keeps the output
bit-identical, but the joined tensor and its parts are both alive, and the runtime still held
52 MB instead of 33 MB.

Usage: scripts/split_wide_layers.py IN.onnx OUT.onnx [--max-mb 8] [--check]
Needs: pip install onnx numpy (and onnxruntime for --check), in a throwaway venv.
"""
import argparse, copy, hashlib

import numpy as np
import onnx
import onnx.shape_inference
from onnx import helper, numpy_helper

# The input the groups are sized for: the clip working size, a 16:9 frame at 960 px (H x W).
REFERENCE = (544, 960)


def attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def shapes_at(model, h, w):
    """Each tensor's shape for a 1 x 3 x h x w input (the model's own dims stay symbolic)."""
    m = copy.deepcopy(model)
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[0].dim_value, dims[2].dim_value, dims[3].dim_value = 1, h, w
    m = onnx.shape_inference.infer_shapes(m)
    return {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in m.graph.value_info}


def blocks(model, max_bytes):
    """(widen, relu, depthwise, relu, narrow, groups) for each block to split, in graph order."""
    g = model.graph
    init = {i.name: i for i in g.initializer}
    users = {}
    for n in g.node:
        for x in n.input:
            users.setdefault(x, []).append(n)
    outputs = {o.name for o in g.output}

    def next_of(node, op):
        """The one node reading `node`'s output, if it is an `op` (and the output is not the graph's)."""
        after = users.get(node.output[0], [])
        if len(after) != 1 or node.output[0] in outputs or after[0].op_type != op:
            return None
        return after[0]

    shape = shapes_at(model, *REFERENCE)
    found = []
    for widen in g.node:
        if widen.op_type != "Conv" or attrs(widen).get("group", 1) != 1:
            continue
        if widen.input[1] not in init or list(init[widen.input[1]].dims[2:]) != [1, 1]:
            continue
        wide = int(init[widen.input[1]].dims[0])
        r1 = next_of(widen, "Relu")
        dw = r1 and next_of(r1, "Conv")
        r2 = dw and next_of(dw, "Relu")
        narrow = r2 and next_of(r2, "Conv")
        if not narrow or attrs(dw).get("group", 1) != wide or attrs(narrow).get("group", 1) != 1:
            continue
        size = 4 * int(np.prod(shape[widen.output[0]]))
        if size <= max_bytes:
            continue
        groups = int(-(-size // max_bytes))
        while wide % groups:
            groups += 1
        found.append((widen, r1, dw, r2, narrow, groups, size))
    return found


def split(model, max_mb):
    g = model.graph
    init = {i.name: i for i in g.initializer}
    arrays = lambda node: [numpy_helper.to_array(init[x]) for x in node.input[1:]]
    new_inits, replace, drop = [], {}, set()
    for b, (widen, r1, dw, r2, narrow, k, size) in enumerate(blocks(model, max_mb * 1e6)):
        print(f"block {widen.output[0]}: widened tensor {size / 1e6:.1f} MB at "
              f"{REFERENCE[1]}x{REFERENCE[0]}, {k} groups")
        we, wd, wn = arrays(widen), arrays(dw), arrays(narrow)
        c = we[0].shape[0] // k
        nodes, total = [], None
        for j in range(k):
            part = slice(j * c, (j + 1) * c)
            tag = f"split{b}_g{j}"

            def weights(kind, arrs, cut):
                names = []
                for i, a in enumerate(arrs):
                    name = f"{tag}_{kind}{i}"
                    new_inits.append(numpy_helper.from_array(np.ascontiguousarray(cut(i, a)), name))
                    names.append(name)
                return names

            # Widen and filter this group's channels (weights and biases sliced by output channel).
            t = [f"{tag}_{s}" for s in ("wide", "wide_relu", "filtered", "filtered_relu", "narrow")]
            nodes.append(helper.make_node("Conv", [widen.input[0]] + weights("widen", we, lambda i, a: a[part]),
                                          [t[0]], name=f"{tag}_widen", **attrs(widen)))
            nodes.append(helper.make_node("Relu", [t[0]], [t[1]], name=f"{tag}_relu1"))
            nodes.append(helper.make_node("Conv", [t[1]] + weights("dw", wd, lambda i, a: a[part]), [t[2]],
                                          name=f"{tag}_depthwise", **{**attrs(dw), "group": c}))
            nodes.append(helper.make_node("Relu", [t[2]], [t[3]], name=f"{tag}_relu2"))
            # Narrow: this group's input channels of the weight; the bias is added once.
            narrow_w = weights("narrow", wn[:1], lambda i, a: a[:, part])
            if j == 0:
                narrow_w += weights("narrow_bias", wn[1:], lambda i, a: a)
            nodes.append(helper.make_node("Conv", [t[3]] + narrow_w, [t[4]], name=f"{tag}_narrow",
                                          **attrs(narrow)))
            if total is None:
                total = t[4]
            else:
                out = narrow.output[0] if j == k - 1 else f"{tag}_sum"
                nodes.append(helper.make_node("Add", [total, t[4]], [out], name=f"{tag}_add"))
                total = out
        replace[widen.output[0]] = nodes
        drop.update(n.output[0] for n in (r1, dw, r2, narrow))
    out_nodes = []
    for n in g.node:
        if n.output[0] in replace:
            out_nodes.extend(replace[n.output[0]])
        elif n.output[0] not in drop:
            out_nodes.append(n)
    del g.node[:]
    g.node.extend(out_nodes)
    used = {x for n in out_nodes for x in n.input}
    kept = [i for i in g.initializer if i.name in used] + new_inits
    del g.initializer[:]
    g.initializer.extend(kept)
    onnx.checker.check_model(model)
    return model


def check(original, rewritten):
    """Largest output difference on random inputs at four sizes, and each model's activations."""
    import onnxruntime as ort
    ort.set_default_logger_severity(3)

    def session(path):
        o = ort.SessionOptions()
        o.intra_op_num_threads = 1
        o.enable_mem_pattern = False  # as bystander runs it (runtime::session_builder)
        return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])

    a, b = session(original), session(rewritten)
    rng = np.random.RandomState(0)
    worst = 0.0
    for h, w in [(544, 960), (384, 640), (640, 640), (96, 160)]:
        x = rng.uniform(0, 255, (1, 3, h, w)).astype(np.float32)
        name = a.get_inputs()[0].name
        for u, v in zip(a.run(None, {name: x}), b.run(None, {name: x})):
            worst = max(worst, float(np.abs(u - v).max()))
    print(f"largest output difference: {worst:.3g}")
    # Activations: resident memory added by one run at the reference size, each in a fresh process.
    import subprocess, sys
    probe = ("import numpy as np, onnxruntime as ort, sys\n"
             "ort.set_default_logger_severity(3)\n"
             "rss = lambda: int(open('/proc/self/status').read().split('VmRSS:')[1].split()[0])\n"
             "o = ort.SessionOptions(); o.intra_op_num_threads = 1; o.enable_mem_pattern = False\n"
             "s = ort.InferenceSession(sys.argv[1], o, providers=['CPUExecutionProvider'])\n"
             f"x = np.zeros((1, 3, {REFERENCE[0]}, {REFERENCE[1]}), np.float32)\n"
             "before = rss(); s.run(None, {s.get_inputs()[0].name: x}); print(rss() - before)\n")
    for path in (original, rewritten):
        kib = subprocess.run([sys.executable, "-c", probe, path], capture_output=True, text=True,
                             check=True).stdout.strip()
        print(f"{path}: one run at {REFERENCE[1]}x{REFERENCE[0]} adds {kib} KiB")
    return worst


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("output")
    ap.add_argument("--max-mb", type=float, default=8.0,
                    help="largest widened tensor kept whole at the reference input (default 8)")
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    model = split(onnx.load(a.input), a.max_mb)
    onnx.save(model, a.output)
    print(f"{a.output} sha256 {hashlib.sha256(open(a.output, 'rb').read()).hexdigest()}")
    if a.check and check(a.input, a.output) > 1e-3:
        raise SystemExit("the rewritten model's outputs differ from the original's")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Independent reference for bystander's detector decoders.

Runs each shipped model family with Python onnxruntime + numpy, written from the
layout facts in models/README.md (not from the Rust code), and prints the boxes it
finds in frame pixels. The integration tests' expected boxes were checked against
this output. Usage: reference_boxes.py MODEL_DIR IMAGE...
"""
import sys, math
import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def nms(boxes, scores, iou):
    order = np.argsort(-scores)
    keep = []
    while len(order):
        i = order[0]
        keep.append(i)
        rest = order[1:]
        xx1 = np.maximum(boxes[i, 0], boxes[rest, 0]); yy1 = np.maximum(boxes[i, 1], boxes[rest, 1])
        xx2 = np.minimum(boxes[i, 2], boxes[rest, 2]); yy2 = np.minimum(boxes[i, 3], boxes[rest, 3])
        inter = np.clip(xx2 - xx1, 0, None) * np.clip(yy2 - yy1, 0, None)
        a = (boxes[i, 2] - boxes[i, 0]) * (boxes[i, 3] - boxes[i, 1])
        b = (boxes[rest, 2] - boxes[rest, 0]) * (boxes[rest, 3] - boxes[rest, 1])
        order = rest[inter / (a + b - inter + 1e-9) <= iou]
    return keep


def centerface(sess, rgb, thr=0.2):
    h, w = rgb.shape[:2]
    H, W = int(math.ceil(h / 32) * 32), int(math.ceil(w / 32) * 32)
    im = np.asarray(Image.fromarray(rgb).resize((W, H), Image.BILINEAR), dtype=np.float32)
    x = im.transpose(2, 0, 1)[None]
    heat, scale, off, _ = sess.run(None, {"input.1": x})
    ys, xs = np.where(heat[0, 0] > thr)
    out = []
    for i, j in zip(ys, xs):
        bh = math.exp(scale[0, 0, i, j]) * 4; bw = math.exp(scale[0, 1, i, j]) * 4
        cy = (i + off[0, 0, i, j] + 0.5) * 4; cx = (j + off[0, 1, i, j] + 0.5) * 4
        out.append([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2, heat[0, 0, i, j]])
    return finish(out, W / w, H / h, 0.3)


def retina(sess, rgb, sizes, thr):
    h, w = rgb.shape[:2]
    x = rgb[:, :, ::-1].astype(np.float32) - np.array([104, 117, 123], np.float32)
    outs = sess.run(None, {sess.get_inputs()[0].name: x.transpose(2, 0, 1)[None]})
    loc, conf = outs[0][0], outs[1][0]
    pri = []
    for step, ms in zip((8, 16, 32), sizes):
        for i in range(math.ceil(h / step)):
            for j in range(math.ceil(w / step)):
                for m in ms:
                    pri.append(((j + .5) * step / w, (i + .5) * step / h, m / w, m / h))
    pri = np.array(pri, np.float32)
    assert len(pri) == len(loc), (len(pri), len(loc))
    c = pri[:, :2] + loc[:, :2] * 0.1 * pri[:, 2:]
    s = pri[:, 2:] * np.exp(loc[:, 2:] * 0.2)
    b = np.concatenate([c - s / 2, c + s / 2], 1) * [w, h, w, h]
    sc = conf[:, 1]
    m = sc > thr
    return finish([list(bb) + [ss] for bb, ss in zip(b[m], sc[m])], 1, 1, 0.4)


def yolo(sess, rgb, thr=0.4):
    h, w = rgb.shape[:2]
    r = min(640 / w, 640 / h)
    nw, nh = round(w * r), round(h * r)
    canvas = np.full((640, 640, 3), 114, np.uint8)
    px, py = (640 - nw) // 2, (640 - nh) // 2
    canvas[py:py + nh, px:px + nw] = np.asarray(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR))
    x = (canvas.astype(np.float32) / 255).transpose(2, 0, 1)[None]
    o = sess.run(None, {"images": x})[0][0]
    m = o[4] > thr
    cx, cy, bw, bh, sc = o[:, m]
    boxes = [[(a - c / 2 - px) / r, (b - d / 2 - py) / r, (a + c / 2 - px) / r, (b + d / 2 - py) / r, s]
             for a, b, c, d, s in zip(cx, cy, bw, bh, sc)]
    return finish(boxes, 1, 1, 0.5)


def text(sess, rgb, thr=0.3, binarize=0.3, unclip=3.0):
    """DBNet: BGR (x/255 - 0.5)/0.5 at a multiple of 32; the map binarized, each 8-connected
    region one box (flood fill below, not a library's labelling), grown by area*unclip/perimeter."""
    h, w = rgb.shape[:2]
    H, W = int(math.ceil(h / 32) * 32), int(math.ceil(w / 32) * 32)
    im = np.asarray(Image.fromarray(rgb).resize((W, H), Image.BILINEAR), dtype=np.float32)[:, :, ::-1]
    p = sess.run(None, {sess.get_inputs()[0].name: ((im / 255 - 0.5) / 0.5).transpose(2, 0, 1)[None].copy()})[0][0, 0]
    on = p > binarize
    seen = np.zeros_like(on)
    out = []
    for y0, x0 in zip(*np.nonzero(on)):
        if seen[y0, x0]:
            continue
        seen[y0, x0] = True
        todo, pts = [(y0, x0)], []
        while todo:
            y, x = todo.pop(); pts.append((y, x))
            for yy in range(max(0, y - 1), min(H, y + 2)):
                for xx in range(max(0, x - 1), min(W, x + 2)):
                    if on[yy, xx] and not seen[yy, xx]:
                        seen[yy, xx] = True; todo.append((yy, xx))
        ys, xs = np.array(pts).T
        x1, y1, x2, y2 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
        score = p[ys, xs].mean()
        if x2 - x1 < 2 or y2 - y1 < 2 or score < thr:
            continue
        d = (x2 - x1) * (y2 - y1) * unclip / (2 * ((x2 - x1) + (y2 - y1)))
        out.append([(x1 - d) * w / W, (y1 - d) * h / H, (x2 + d) * w / W, (y2 + d) * h / H, score])
    return out


def finish(rows, sx, sy, iou):
    if not rows:
        return []
    a = np.array(rows, np.float64)
    a[:, [0, 2]] /= sx; a[:, [1, 3]] /= sy
    return [a[k] for k in nms(a[:, :4], a[:, 4], iou)]


if __name__ == "__main__":
    d = sys.argv[1]
    opt = ort.SessionOptions(); opt.intra_op_num_threads = 2
    S = lambda f: ort.InferenceSession(f"{d}/{f}", opt, providers=["CPUExecutionProvider"])
    models = {
        "centerface": lambda im: centerface(S("centerface.onnx"), im),
        "retinaface": lambda im: retina(S("retinaface_mnet025.onnx"), im, [[16, 32], [64, 128], [256, 512]], 0.5),
        "plate_retina": lambda im: retina(S("plate_retina_clp.onnx"), im, [[24, 48], [96, 192], [384, 768]], 0.3),
        "plate_yolov8n": lambda im: yolo(S("plate_yolov8n_pyplatex.onnx"), im),
        "plate_text": lambda im: text(S("plate_text_ppocrv4_det.onnx"), im),
    }
    for path in sys.argv[2:]:
        rgb = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
        for name, fn in models.items():
            for b in fn(rgb):
                print(f"{path}\t{name}\t" + " ".join(f"{v:.1f}" for v in b[:4]) + f"\t{b[4]:.3f}")

"""A camera loop with OpenCV: every frame redacted in place before it is shown or written.

    pip install ./python opencv-python-headless
    python examples/python/opencv_camera.py rtsp://camera/stream out.mp4    # or 0 for a webcam

Live view needs no look-ahead (`backfill=0`): each frame comes back redacted before the next is
read. Masks are still held a few frames after a face was last seen (`hold`), and a frame whose
detection fails is covered whole (its `fault` says why), never written clear.
"""

import sys

import cv2

import bystander


def main():
    source = sys.argv[1] if len(sys.argv) > 1 else "0"
    out_path = sys.argv[2] if len(sys.argv) > 2 else "redacted.mp4"
    cap = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not cap.isOpened():
        sys.exit(f"cannot open {source}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    out = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    redactor = bystander.Redactor(backfill=0, recall="balanced")  # BGR, as OpenCV gives frames
    n = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        result = redactor.redact(frame)  # the same array, redacted in place
        if result["fault"]:
            print(f"frame {n}: covered whole ({result['fault']})", file=sys.stderr)
        out.write(frame)
        n += 1
    cap.release()
    out.release()
    print(f"{n} frames redacted into {out_path}: {redactor.stats()}")


if __name__ == "__main__":
    main()

"""bystander: find faces and licence plates in photos, clips and camera frames, and redact them on
the device.

Frames are numpy arrays, height x width x 3 uint8, BGR by default (as OpenCV gives them), redacted
in place. Keyword options are the command line's flags with ``_`` for ``-`` (``recall="max"``,
``style="fill"``, ``fill_color="FF00FF"``, ``classes=["face"]``, ``jobs=2``...). Errors are
:class:`ConfigError` (a setting refused), :class:`InputError` (a file or frame refused) and
:class:`RuntimeFault` (ONNX Runtime, a model, the disk), all subclasses of :class:`Error`.

ONNX Runtime comes from the ``onnxruntime`` wheel, a dependency of this package: its shared
library is loaded directly (the ``onnxruntime`` Python module is never imported). Set
``ORT_DYLIB_PATH`` to use another copy of version 1.31. The models ship inside the package.

Importing this package sets ``ORT_DISABLE_TELEMETRY=1``: ONNX Runtime's Linux and macOS builds
otherwise record a device id and usage events on disk and upload them to Microsoft. Import
bystander before anything else that starts ONNX Runtime (``import onnxruntime``), as a runtime
already started keeps its telemetry.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import threading
from typing import Any, Dict, List, Optional, Sequence, Union

# Before the native module and ONNX Runtime are loaded, and under the interpreter's lock, so that
# the library finds it set and never has to write the environment itself (see the runtime module).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

from . import _bystander
from ._bystander import ConfigError, Error, InputError, RuntimeFault

__version__ = _bystander.__version__
__all__ = [
    "redact_frame",
    "read_image",
    "redact_file",
    "redact_clip",
    "redact",
    "Redactor",
    "runtime_library",
    "memory_is_short",
    "Error",
    "ConfigError",
    "InputError",
    "RuntimeFault",
]

PathLike = Union[str, "os.PathLike[str]"]
Box = Dict[str, Any]

MODEL_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")

_lock = threading.Lock()
_runtime: Optional[str] = None


def runtime_library() -> str:
    """The ONNX Runtime library bystander uses, loading it on first call: ``ORT_DYLIB_PATH`` when
    set, else the one inside the installed ``onnxruntime`` wheel."""
    global _runtime
    with _lock:
        if _runtime is None:
            path = os.environ.get("ORT_DYLIB_PATH") or _wheel_library()
            _runtime = _bystander.use_runtime(path)
        return _runtime


def memory_is_short() -> bool:
    """Whether this process may use under 4 GiB (the machine's memory, or its control group's limit
    when lower, as a container sets): where ``low_memory=True`` suits, as the command line decides
    by default. ``Redactor(low_memory=bystander.memory_is_short())`` makes the same choice."""
    return _bystander.memory_is_short()


def _wheel_library() -> str:
    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeFault(
            "ONNX Runtime not found: install the onnxruntime wheel (pip install onnxruntime==1.31.1) "
            "or set ORT_DYLIB_PATH to a libonnxruntime.so of version 1.31"
        )
    for root in spec.submodule_search_locations:
        found = sorted(glob.glob(os.path.join(root, "capi", "libonnxruntime.so*")))
        if found:
            return found[-1]
    raise RuntimeFault(
        "the onnxruntime package has no capi/libonnxruntime.so; set ORT_DYLIB_PATH to one of "
        "version 1.31"
    )


def _options(options: Dict[str, Any]) -> Dict[str, Any]:
    runtime_library()
    options.setdefault("model_dir", MODEL_DIR)
    return options


def redact_frame(frame: Any, *, order: str = "bgr", **options: Any) -> List[Box]:
    """Redacts one photo, a height x width x 3 uint8 array, in place with the photo preset (what
    ``bystander redact`` does to a photo); returns its boxes as dicts with ``class`` (``"face"``
    or ``"plate"``), ``score`` and ``box`` ``[x1, y1, x2, y2]``. Only the masked pixels change.
    If detection fails, the whole frame is covered before the error is raised (fail closed).
    ``order`` is as :class:`Redactor`'s: packed ``"bgr"``, ``"rgb"``, ``"bgra"``, ``"rgba"``, or a
    4:2:0 frame as one (height * 3 / 2) x width array (``"i420"``, ``"nv12"``, ``"_full"`` for
    full range)."""
    return _bystander.redact_frame(frame, order, **_options(options))


def read_image(path: PathLike, *, order: str = "bgr", max_megapixels: float = 100.0) -> Any:
    """Reads a photo upright (EXIF orientation applied) as a height x width x 3 uint8 array,
    refusing one over the pixel budget from its header."""
    return _bystander.read_image(os.fspath(path), order, max_megapixels)


def redact_file(
    input: PathLike,
    output: PathLike,
    *,
    overwrite: bool = False,
    export_detections: bool = False,
    **options: Any,
) -> Dict[str, Any]:
    """Redacts one photo or clip into the file ``output`` (written whole or not at all, a report
    ``OUTPUT.bystander.json`` beside it, kept on a rerun only when made for the same request, as
    the command line does); returns the report. The input is never written. A HEIF photo (HEIC,
    AVIF) is written as a JPEG, so its ``output`` must be named ``.jpg`` or ``.jpeg``."""
    return _bystander.redact_file(
        os.fspath(input), os.fspath(output), overwrite, export_detections, **_options(options)
    )


def redact_clip(
    input: PathLike,
    output: PathLike,
    *,
    overwrite: bool = False,
    export_detections: bool = False,
    **options: Any,
) -> Dict[str, Any]:
    """Redacts one clip into ``output`` (audio copied unless ``no_audio``; metadata and subtitles
    dropped unless ``keep_metadata``/``keep_subtitles``); returns its report, as
    :func:`redact_file`."""
    return _bystander.redact_clip(
        os.fspath(input), os.fspath(output), overwrite, export_detections, **_options(options)
    )


def redact(
    inputs: Union[PathLike, Sequence[PathLike]],
    output: PathLike,
    *,
    overwrite: bool = False,
    export_detections: bool = False,
    **options: Any,
) -> Dict[str, Any]:
    """``bystander redact INPUTS -o OUTPUT``: files and folders (recursively, mirrored under
    ``output``); a bad file is that file's failure. Returns the summary ``--json`` prints:
    ``redacted``, ``kept``, ``failed``, ``skipped`` and ``files`` (one outcome per file)."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    return _bystander.redact(
        [os.fspath(p) for p in inputs],
        os.fspath(output),
        overwrite,
        export_detections,
        **_options(options),
    )


class Redactor:
    """A camera stream: push frames in order, get them back redacted with the video preset,
    detected on a pool of ``jobs`` threads, masks held across frames.

    With ``backfill=0`` (live view), :meth:`redact` redacts each frame in place and returns at
    once. Otherwise :meth:`push` takes a copy of each frame and returns the frames that have
    cleared the look-ahead (``backfill`` frames: a mask is drawn that many frames before a face is
    first found); :meth:`finish` returns the rest. A frame whose detection failed comes back
    covered whole, with ``fault`` saying why. Safe to share between threads (calls take turns).
    On a device with under 4 GB, ``low_memory=True`` makes fewer ONNX Runtime sessions for less
    memory, with the same boxes and pixels (the command line's ``--low-memory``). Frames whose
    pixels are not square (a 720 x 576 camera shown 16:9, HDV's 1440 x 1080) take
    ``pixel_aspect`` (a pixel's shown width over its height, 1/4 to 4; 1 by default): they are
    detected stretched to the shape they are shown in, and boxes come back in stored pixels.
    Interlaced frames (an analog camera's, 1080i) take ``interlaced=True``: each field is
    detected on its own, at twice the cost. Frames are height x width x 3 (or 4) arrays in
    ``order`` ``"bgr"`` (OpenCV's), ``"rgb"``, ``"bgra"`` or ``"rgba"``, or 4:2:0 frames as
    Frigate keeps them, one (height * 3 / 2) x width array (``"i420"``: Y, then U, then V;
    ``"nv12"``: Y, then U and V interleaved; ``"i420_full"``, ``"nv12_full"`` in full range),
    returned in the same shape.
    """

    def __init__(self, *, order: str = "bgr", **options: Any) -> None:
        self._inner = _bystander.Redactor(order, **_options(options))

    @property
    def latency_frames(self) -> int:
        """Frames between a push and its return."""
        return self._inner.latency_frames

    def redact(self, frame: Any) -> Dict[str, Any]:
        """Redacts ``frame`` in place (``backfill=0`` only); returns ``boxes``, ``painted`` (pixel
        rectangles ``[x1, y1, x2, y2]`` that were written) and ``fault``."""
        return self._inner.redact(frame)

    def push(self, frame: Any, pts: int) -> List[Dict[str, Any]]:
        """Pushes a copy of ``frame`` with timestamp ``pts``; returns the ready frames, each a dict
        with ``pts``, ``frame`` (a new array), ``boxes``, ``painted`` and ``fault``."""
        return self._inner.push(frame, pts)

    def finish(self) -> List[Dict[str, Any]]:
        """The frames still held for look-ahead, at the end of the stream."""
        return self._inner.finish()

    def stats(self) -> Dict[str, int]:
        """Frames, detected frames, fail-closed frames, faces and plates counted so far."""
        return self._inner.stats()

"""Redact an archive across machines on a Ray cluster.

The unit of work is one file, so a run is a fan-out: the inputs are listed exactly as
``bystander redact`` lists them (same folders walked, same mirroring under the output, same files
passed over), and each file goes, as a pair of paths, to one of a set of Ray actors. Each actor
holds one bystander engine (models loaded once, a thread budget of the CPUs it reserves) and
redacts with the command line's own code: output written to a temporary name and renamed when
whole, a report beside it, a finished output kept on a rerun only when made for the same request.
Every machine must see the inputs and the output folder at the same paths (a shared or mounted
file system; for object storage, mount the bucket, e.g. with s3fs or gcsfuse, or copy through
fsspec before and after: bystander itself reads and writes files).

Faults: when an actor's process or node dies, Ray restarts the actor and the files it held go back
to the queue and are redone by the next free actor (counted in the summary as ``retries``); a file
that kills its worker ``max_retries`` times is recorded as failed. A bad file is that file's
failure, as on the command line, never the run's. Nothing partial is left under an output name:
a killed worker leaves at most its temporary file, which the retry removes.

    python -m bystander.ray redact INPUT... -o OUTDIR [--address ADDR] [--json] [CLI options]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import bystander
from bystander import _bystander

PathLike = Union[str, "os.PathLike[str]"]


class RedactWorker:
    """A Ray actor's state: one engine, kept for every file the actor is given."""

    def __init__(self, overwrite: bool, export_detections: bool, options: Dict[str, Any]):
        # This machine's ONNX Runtime and models (the package may live elsewhere than the driver's).
        options = bystander._options(dict(options))
        self._runner = _bystander.Runner(overwrite, export_detections, **options)

    def run(self, job: Tuple[str, str]) -> Dict[str, Any]:
        return self._runner.run([job])["files"][0]

    def pid(self) -> int:
        return os.getpid()


def _fault_types():
    import ray.exceptions as rx

    names = ["RayActorError", "ActorDiedError", "ActorUnavailableError", "WorkerCrashedError",
             "NodeDiedError", "ObjectLostError", "OwnerDiedError"]
    return tuple(getattr(rx, n) for n in names if hasattr(rx, n))


def redact(
    inputs: Union[PathLike, Sequence[PathLike]],
    output: PathLike,
    *,
    address: Optional[str] = None,
    cpus_per_actor: int = 1,
    actors: Optional[int] = None,
    max_retries: int = 3,
    overwrite: bool = False,
    export_detections: bool = False,
    **options: Any,
) -> Dict[str, Any]:
    """``bystander redact INPUTS -o OUTPUT`` on a Ray cluster (``address``: an existing cluster,
    ``"auto"`` for the one this machine belongs to, ``None`` to start or join as ``ray.init``
    does). ``options`` are the command line's (``recall``, ``style``, ...; ``jobs`` is set per
    actor from ``cpus_per_actor``). One actor per ``cpus_per_actor`` CPUs of the cluster unless
    ``actors`` says. Returns the command line's ``--json`` summary, with ``retries`` and
    ``actors`` added."""
    import ray

    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = [os.fspath(p) for p in inputs]
    output = os.fspath(output)
    if cpus_per_actor < 1:
        raise bystander.ConfigError(f"cpus_per_actor {cpus_per_actor}: expected 1 or more")
    options = dict(options, jobs=cpus_per_actor)
    jobs, skipped = _bystander.plan(inputs, output)
    jobs = [(os.fspath(i), os.fspath(o)) for i, o in jobs]
    skipped = [(os.fspath(p), why) for p, why in skipped]
    # Workers start in other directories, on other machines: they get absolute paths; the
    # summary keeps the paths as the command line spells them.
    absolute = [(os.path.abspath(i), os.path.abspath(o)) for i, o in jobs]
    # Settings and outputs are refused here, before anything starts, as the command line does.
    _bystander.check(absolute, **bystander._options(dict(options)))

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    try:
        outcomes, retries, count = _fan_out(absolute, options, cpus_per_actor, actors,
                                            max_retries, overwrite, export_detections)
    finally:
        if started:
            ray.shutdown()
    for (i, o), outcome in zip(jobs, outcomes):
        outcome["input"], outcome["output"] = i, o
    status = collections.Counter(o["status"] for o in outcomes)
    return {
        "output": output,
        "redacted": status["redacted"],
        "kept": status["kept"],
        "failed": status["failed"],
        "skipped": [{"path": p, "reason": why} for p, why in skipped],
        "files": outcomes,
        "retries": retries,
        "actors": count,
    }


def _fan_out(jobs, options, cpus, actors, max_retries, overwrite, export_detections):
    import ray

    if not jobs:
        return [], 0, 0
    cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
    count = actors or max(1, cluster_cpus // cpus)
    count = min(count, len(jobs))
    # Restarted whenever its process dies; its calls are retried here, where they are counted.
    remote = ray.remote(num_cpus=cpus, max_restarts=-1, max_task_retries=0)(RedactWorker)
    pool = [remote.remote(overwrite, export_detections, options) for _ in range(count)]
    faults = _fault_types()
    queue = collections.deque(range(len(jobs)))
    tries = [0] * len(jobs)
    outcomes: List[Optional[Dict[str, Any]]] = [None] * len(jobs)
    idle = list(pool)
    pending = {}
    retries = 0
    while queue or pending:
        while queue and idle:
            k, actor = queue.popleft(), idle.pop(0)
            tries[k] += 1
            pending[actor.run.remote(jobs[k])] = (k, actor)
        done, _ = ray.wait(list(pending), num_returns=1)
        k, actor = pending.pop(done[0])
        try:
            outcomes[k] = ray.get(done[0])
        except faults as e:
            if tries[k] > max_retries:
                outcomes[k] = {
                    "input": jobs[k][0], "output": jobs[k][1], "status": "failed",
                    "error": f"{jobs[k][0]}: its worker died {tries[k]} times ({type(e).__name__}); "
                             "nothing written",
                }
            else:
                retries += 1
                queue.appendleft(k)
        # The actor, restarted if it died, goes to the back: a retried file goes to another one
        # first when there is one.
        idle.append(actor)
    return outcomes, retries, count


# The command line's options, as `bystander redact --help` lists them.
_OPTIONS = [
    ("classes", str), ("recall", str), ("threshold", float), ("working-size", int),
    ("tiles", str), ("widen", float), ("rotations", int), ("face-model", list), ("plate-model", list),
    ("no-interleave", bool), ("style", str), ("fill-color", str), ("shape", str),
    ("mask-scale", float), ("zones", str), ("max-megapixels", float), ("encoder", str),
    ("crf", int), ("preset", str), ("keep-metadata", bool), ("keep-subtitles", bool),
    ("hold", int), ("backfill", int), ("detect-every", int),
]


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bystander.ray",
        description="Redact files and folders on a Ray cluster, as `bystander redact` does.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("redact", help="redact files and folders (recursively) into OUTDIR")
    r.add_argument("inputs", nargs="*", help="image and clip files and folders")
    r.add_argument("-o", "--output", required=True, help="output folder (mirrors the inputs)")
    r.add_argument("--manifest", help="also read inputs from FILE, one path per line")
    r.add_argument("--address", help="Ray cluster address (default: as ray.init)")
    r.add_argument("--cpus-per-actor", type=int, default=1, help="CPUs (threads) per actor")
    r.add_argument("--max-retries", type=int, default=3, help="redos of a file whose worker died")
    r.add_argument("--overwrite", action="store_true", help="redo finished outputs")
    r.add_argument("--export-detections", action="store_true", help="write NAME.detections.json")
    r.add_argument("--json", action="store_true", help="print the summary as JSON")
    r.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    for name, kind in _OPTIONS:
        if kind is bool:
            r.add_argument("--" + name, action="store_true", default=None)
        elif kind is list:
            r.add_argument("--" + name, action="append")
        else:
            r.add_argument("--" + name, type=kind)
    a = p.parse_args(argv)
    options = {}
    for name, _ in _OPTIONS:
        value = getattr(a, name.replace("-", "_"))
        if value is not None:
            options[name.replace("-", "_")] = value
    inputs = list(a.inputs)
    if a.manifest:
        with open(a.manifest, "rb") as f:
            inputs += [os.fsdecode(line.rstrip(b"\r")) for line in f.read().split(b"\n") if line.strip(b"\r")]
    if not inputs:
        p.error("no inputs (give files, folders or --manifest)")
    # Ray's own messages (a worker died, a node joined) go to the driver's stdout; stdout is kept
    # for the summary alone, and everything else goes to stderr.
    stdout = os.fdopen(os.dup(1), "w")
    sys.stdout.flush()
    os.dup2(2, 1)
    try:
        summary = redact(inputs, a.output, address=a.address, cpus_per_actor=a.cpus_per_actor,
                         max_retries=a.max_retries, overwrite=a.overwrite,
                         export_detections=a.export_detections, **options)
    except bystander.Error as e:
        print(f"bystander: {e}", file=sys.stderr)
        return 1
    for f in summary["files"]:
        if f["status"] == "failed":
            print(f"error: {f.get('error')}", file=sys.stderr)
    if a.json:
        print(json.dumps(summary, indent=2), file=stdout)
    if not a.quiet:
        line = (f"{summary['redacted']} redacted, {summary['kept']} kept, {summary['failed']} failed "
                f"of {len(summary['files'])} files into {a.output} ({summary['actors']} actors, "
                f"{summary['retries']} retries)")
        print(line, file=sys.stderr if a.json else stdout)
    stdout.flush()
    return 2 if summary["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

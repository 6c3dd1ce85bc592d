#!/usr/bin/env bash
# Files per minute for one archive: the command line on one machine, and python -m bystander.ray
# on a local Ray cluster of one node and of two nodes (on this one machine: the nodes share its
# cores, so two nodes measure the fan-out's overhead, not a second machine's speed).
#   scripts/bench_ray.sh [VENV]   (a venv with the package and ray: pip install "./python[ray]")
# The archive: 40 WIDER photos and 3 clips from ../shared/data (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-target/pyvenv}"
data=../shared/data
work=$(mktemp -d)
trap 'rm -rf "$work"; "$venv/bin/ray" stop --force >/dev/null 2>&1 || true' EXIT
mkdir -p "$work/in/photos" "$work/in/clips"
ls "$data/faces/wider_dev/images" | head -40 | while read -r f; do cp "$data/faces/wider_dev/images/$f" "$work/in/photos/"; done
for c in people-detection_270p classroom_270p face-demographics-walking_270p; do cp "$data/clips/$c.mp4" "$work/in/clips/"; done
files=$(find "$work/in" -type f | wc -l)
export RAY_USAGE_STATS_ENABLED=0
timed() { # label, command...
  local label=$1; shift
  local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>"$work/err" || { tail "$work/err"; exit 1; }; t1=$(date +%s.%N)
  python3 -c "s=$t1-$t0; print(f'| $label | {s:.1f} s | {$files*60/s:.1f} |')"
}
cli=target/release/bystander
echo "| run ($files files) | wall | files/minute |"
echo "|---|---|---|"
timed "bystander redact --jobs 1" $cli redact "$work/in" -o "$work/o1" --jobs 1 -q
timed "bystander redact --jobs 2" $cli redact "$work/in" -o "$work/o2" --jobs 2 -q
port=6391
start_head() { "$venv/bin/ray" start --head --num-cpus "$1" --port $port --node-ip-address 127.0.0.1 --include-dashboard=false --disable-usage-stats >/dev/null 2>&1; }
start_head 1
timed "Ray, 1 node x 1 CPU" "$venv/bin/python" -m bystander.ray redact "$work/in" -o "$work/r1" --address 127.0.0.1:$port -q
"$venv/bin/ray" start --address 127.0.0.1:$port --num-cpus 1 --node-ip-address 127.0.0.1 --disable-usage-stats >/dev/null 2>&1
timed "Ray, 2 nodes x 1 CPU" "$venv/bin/python" -m bystander.ray redact "$work/in" -o "$work/r2" --address 127.0.0.1:$port -q
"$venv/bin/ray" stop --force >/dev/null 2>&1
start_head 2
timed "Ray, 1 node x 2 CPUs (2 actors)" "$venv/bin/python" -m bystander.ray redact "$work/in" -o "$work/r3" --address 127.0.0.1:$port -q

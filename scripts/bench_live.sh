#!/usr/bin/env bash
# bystander live against a camera served on loopback at its own rate: ffmpeg loops CLIP with -re
# as MPEG-TS on tcp://127.0.0.1, bystander reads it for SECONDS and writes MPEG-TS to /dev/null.
# Prints the last statistics line (frames in/out, detected, covered, latency), peak RSS and CPU time.
#   scripts/bench_live.sh CLIP [SECONDS] [bystander live options...]
# BYSTANDER_BIN=PATH runs another build (the one before a change) instead of target/release/bystander.
set -euo pipefail
cd "$(dirname "$0")/.."
clip=$1; secs=${2:-40}; shift; shift || true
port=$((7400 + RANDOM % 500))
ffmpeg -v error -re -stream_loop -1 -i "$clip" -c copy -f mpegts "tcp://127.0.0.1:$port?listen=1" </dev/null &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
sleep 0.5
log=$(mktemp)
/usr/bin/time -f "peak RSS %M KiB; CPU %U s user + %S s system in %e s" "${BYSTANDER_BIN:-target/release/bystander}" live "tcp://127.0.0.1:$port" -o - \
  --stats --stats-interval 5 "$@" >/dev/null 2>"$log" &
live=$!
sleep "$secs"
pkill -TERM -P $live 2>/dev/null || kill -TERM $live
wait $live || true
grep "^{" "$log" | tail -1 || cat "$log"
grep 'peak RSS' "$log"
rm -f "$log"

#!/usr/bin/env bash
# A long run of bystander live (outside CI): ffmpeg loops CLIP at its own rate (-re) as MPEG-TS on
# tcp://127.0.0.1, bystander reads it for MINUTES with the defaults and writes MPEG-TS to
# /dev/null. Every minute: the run's resident memory (VmRSS) and its latest statistics line.
#   scripts/soak_live.sh CLIP MINUTES [bystander live options...]
set -euo pipefail
cd "$(dirname "$0")/.."
clip=$1; minutes=$2; shift 2
port=$((7900 + RANDOM % 500))
ffmpeg -v error -re -stream_loop -1 -i "$clip" -c copy -f mpegts "tcp://127.0.0.1:$port?listen=1" </dev/null &
server=$!
log=$(mktemp)
trap 'kill $server 2>/dev/null || true; rm -f "$log"' EXIT
sleep 0.5
target/release/bystander live "tcp://127.0.0.1:$port" -o /dev/null -f mpegts \
  --stats --stats-interval 60 "$@" 2>"$log" &
live=$!
echo "minute rss_kib stats"
for m in $(seq 1 "$minutes"); do
  sleep 60
  rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$live/status" 2>/dev/null || echo gone)
  echo "$m $rss $(grep '^{' "$log" | tail -1)"
done
kill -TERM $live
wait $live || true
grep '^{' "$log" | tail -1

#!/bin/sh
# CPU profile of one server during (b)'s saturated typing phase: runs bench.js against that server
# only (fixed phase, then closed loop), attaches `perf record -g` for the middle of the closed-loop
# phase and prints where the server's CPU goes (children view, top entries).
# Usage: Benchmarks/yjs/rooms/profile.sh [relayd-memory|relayd-sqlite|reference] [OUT.perf.data]
# Needs a release build (.build/release/relayd) and the cached document (run run.sh once).
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
DIR="$ROOT/Benchmarks/yjs/rooms"
KIND=${1:-relayd-memory}
OUT=${2:-/tmp/yjsbench-$KIND.perf.data}
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
STATE=$(ls "$DIR"/.cache/*.ystate | head -1)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
PHASE=12
TMPDIR="$TMP" timeout 200 node "$DIR/bench.js" --relayd "$ROOT/.build/release/relayd" --state "$STATE" \
  --servers "$KIND" --skip fetch,memory --rounds 1 --phase-seconds $PHASE --pidfile "$TMP/pids" > "$TMP/result.json" 2> "$TMP/log" &
BENCH=$!
for _ in $(seq 100); do [ -s "$TMP/pids" ] && break; sleep 0.2; done
PID=$(head -1 "$TMP/pids")
# join (~2 s) + fixed phase (1.5 + PHASE s) + 2 s into the closed loop
sleep $((PHASE + 5))
perf record -F 999 -g -p "$PID" -o "$OUT" -- sleep $((PHASE - 4)) >&2
wait $BENCH || true
cat "$TMP/log" >&2
perf report -i "$OUT" --children --sort symbol --stdio -g none 2>/dev/null | grep '%' | head -60 | cut -c1-160

#!/bin/sh
# Yjs rooms benchmark (issue 6, item 7): relayd's /yjs/{room} beside the y-websocket reference
# server (Debian's node /usr/share/nodejs/y-websocket/bin/server.js), in one run:
#   (a) a new client receives the whole automerge-paper document,
#   (b) 20 clients typing in one room (delivered updates/s, p50/p99 latency),
#   (c) server RSS per loaded room.
# Builds relayd (release), prepares the document once, runs bench.js (which starts and stops the
# servers on 127.0.0.1) under a time limit, and writes the `yjs` section of Docs/benchmarks.md.
# Usage (from anywhere): Benchmarks/yjs/rooms/run.sh [--no-write] [extra bench.js options]
# Env: TRACE (automerge-paper.json.gz), SWIFT (swift), SKIP_BUILD=1, BENCH_TIMEOUT (s, default 540), RELAYD (binary, for A/B runs)
set -eu
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
DIR="$ROOT/Benchmarks/yjs/rooms"
WRITE=1
if [ "${1:-}" = "--no-write" ]; then WRITE=0; shift; fi
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
TRACE=${TRACE:-"$ROOT/../shared/data/editing-traces/automerge-paper.json.gz"}
[ -f "$TRACE" ] || TRACE=/work/shared/data/editing-traces/automerge-paper.json.gz
SWIFT=${SWIFT:-swift}
TMP=$(mktemp -d)
PIDFILE="$TMP/pids"
cleanup() {
  # servers are children of bench.js, which kills them itself; this catches a bench.js killed hard
  if [ -s "$PIDFILE" ]; then
    for p in $(cat "$PIDFILE"); do kill -9 "$p" 2>/dev/null || true; done
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

cd "$ROOT"
if [ -z "${SKIP_BUILD:-}" ]; then
  echo "building relayd (release)…" >&2
  "$SWIFT" build -c release --product relayd >&2
fi
RELAYD="${RELAYD:-$ROOT/.build/release/relayd}"
[ -x "$RELAYD" ] || { echo "no $RELAYD" >&2; exit 1; }

# The document: replay the trace once into a Y.Doc (slow: ~10-40 s), cached by the trace's hash.
mkdir -p "$DIR/.cache"
SUM=$(sha256sum "$TRACE" | cut -c1-16)
STATE="$DIR/.cache/automerge-paper-$SUM.ystate"
if [ ! -s "$STATE" ] || [ ! -s "$STATE.txt" ]; then
  echo "replaying $TRACE into a Y.Doc…" >&2
  timeout 300 node "$DIR/prepare.js" "$TRACE" "$STATE" >&2
fi

CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "running bench.js (load average $LOAD0)…" >&2
TMPDIR="$TMP" timeout -k 10 "${BENCH_TIMEOUT:-540}" node "$DIR/bench.js" --relayd "$RELAYD" --state "$STATE" --pidfile "$PIDFILE" "$@" > "$TMP/result.json"
LOAD1=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$WRITE" = 1 ] && cp "$TMP/result.json" "$DIR/last-run.json"

MACHINE="$(nproc) cores ($CPU), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, Linux $(uname -r), shared with other sessions (load average $LOAD0 at start, $LOAD1 at end); $("$SWIFT" --version 2>/dev/null | head -1 | sed 's/ (.*//'); yjs $(node -p "require('yjs/package.json').version"), y-websocket $(node -p "require('y-websocket/package.json').version"), ws $(node -p "require('ws/package.json').version")"
CMD="Benchmarks/yjs/rooms/run.sh${*:+ $*}"
if [ "$WRITE" = 1 ]; then
  node "$DIR/report.js" "$TMP/result.json" "$ROOT/Docs/benchmarks.md" --command "$CMD" --machine "$MACHINE"
else
  node "$DIR/report.js" "$TMP/result.json" --command "$CMD" --machine "$MACHINE"
fi

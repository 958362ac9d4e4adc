#!/bin/sh
# YjsSync benchmark: Swift vs Yjs (node) vs pycrdt (yrs) on the automerge-paper (B4) trace,
# replayed one update per keystroke. Prints one JSON line per implementation and a ratio table.
# Usage: Benchmarks/yjs/run.sh   (from the repository root; env RELAY_PYTHON, NODE_PATH, SUBSET)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR="$ROOT/Benchmarks/yjs"
TRACE=${TRACE:-"$ROOT/../shared/data/editing-traces/automerge-paper.json.gz"}
[ -f "$TRACE" ] || TRACE=/work/shared/data/editing-traces/automerge-paper.json.gz
PY=${RELAY_PYTHON:-python3}
SUBSET=${SUBSET:-8000}
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
SWIFTC=${SWIFTC:-swiftc}
# Compile the module sources (YjsCodec, YjsRooms and the RelayJSON it uses; not the GRDB-backed
# store) as one module with the benchmark driver: their imports of each other are dropped.
mkdir -p "$TMP/src"
for f in "$ROOT"/Sources/YjsCodec/*.swift "$ROOT"/Sources/YjsRooms/*.swift "$ROOT"/Sources/RelayJSON/*.swift; do
  sed -e '/^import YjsCodec$/d' -e '/^import RelayJSON$/d' "$f" > "$TMP/src/$(basename "$(dirname "$f")")_$(basename "$f")"
done
SRCS=$(ls "$TMP"/src/*.swift)
cd "$TMP"  # swiftc may drop module files into the working directory
$SWIFTC -O -wmo -parse-as-library -module-name YjsBench $SRCS "$DIR/main.swift" -o "$TMP/bench" 2>/dev/null || \
  $SWIFTC -O -wmo -module-name YjsBench $SRCS "$DIR/main.swift" -o "$TMP/bench"
if [ -n "${SWIFT_ONLY:-}" ] && [ -f "${SWIFT_ONLY}/updates.bin" ]; then
  # reuse a previous run's updates (kept with KEEP=dir) and only time Swift
  "$TMP/bench" "$SWIFT_ONLY/updates.bin" "$SUBSET" "$(cat "$SWIFT_ONLY/half")"
  exit 0
fi
node --expose-gc "$DIR/bench-node.js" "$TRACE" "$TMP/updates.bin" "$SUBSET" > "$TMP/node.json"
HALF=$(node -e "console.log(JSON.parse(require('fs').readFileSync('$TMP/node.json')).halfSV)")
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP"; cp "$TMP/updates.bin" "$KEEP/"; echo "$HALF" > "$KEEP/half"; fi
"$PY" "$DIR/bench-pycrdt.py" "$TMP/updates.bin" "$SUBSET" "$HALF" > "$TMP/py.json"
"$TMP/bench" "$TMP/updates.bin" "$SUBSET" "$HALF" > "$TMP/swift.json"
echo "yjs:    $(cat "$TMP/node.json")"
echo "pycrdt: $(cat "$TMP/py.json")"
echo "swift:  $(cat "$TMP/swift.json")"
node -e "
const r = f => JSON.parse(require('fs').readFileSync(f));
const y = r('$TMP/node.json'), p = r('$TMP/py.json'), s = r('$TMP/swift.json');
const f = x => x.toFixed(1);
console.log('updates: ' + y.updates + ', ' + y.updateBytes + ' bytes');
console.log('(a) merge first $SUBSET updates, ms: swift ' + f(s.mergeSubsetMs) + ' | yjs ' + f(y.mergeSubsetMs) + ' (x' + f(y.mergeSubsetMs / s.mergeSubsetMs) + ') | pycrdt ' + f(p.mergeSubsetMs) + ' (x' + f(p.mergeSubsetMs / s.mergeSubsetMs) + ')');
console.log('(a) merge all, ms: swift one-shot ' + f(s.mergeAllMs) + ' | yjs fold-1000 ' + f(y.mergeAllFold1000Ms) + ' (x' + f(y.mergeAllFold1000Ms / s.mergeAllMs) + ') | pycrdt fold-1000 ' + f(p.mergeAllFold1000Ms) + ' (x' + f(p.mergeAllFold1000Ms / s.mergeAllMs) + ')');
console.log('    merged bytes: swift ' + s.mergedBytes + ' yjs ' + y.mergedBytes + ' pycrdt ' + p.mergedBytes);
console.log('(b) state vector, ms: swift ' + f(s.svMs) + ' | yjs ' + f(y.svMs) + ' (x' + f(y.svMs / s.svMs) + ') | pycrdt ' + f(p.svMs) + ' (x' + f(p.svMs / s.svMs) + ')');
console.log('(b) diff vs half-way SV, ms: swift ' + f(s.diffMs) + ' | yjs ' + f(y.diffMs) + ' (x' + f(y.diffMs / s.diffMs) + ') | pycrdt ' + f(p.diffMs) + ' (x' + f(p.diffMs / s.diffMs) + ');  bytes swift ' + s.diffBytes + ' yjs ' + y.diffBytes + ' pycrdt ' + p.diffBytes);
console.log('(c) store bytes after compaction: swift ' + s.storeBytesAfterCompaction + ' | y-websocket Y.Doc heap ' + y.yDocHeapBytes + ' (ratio ' + (s.storeBytesAfterCompaction / y.yDocHeapBytes).toFixed(2) + '); Y.Doc encoded state ' + y.yDocEncodedBytes);
console.log('    store: apply all updates ' + f(s.storeApplyAllMs) + ' ms (keeping history: ' + f(s.storeKeepHistoryApplyAllMs) + ' ms, ' + s.storeKeepHistoryBytes + ' bytes); full step 2 ' + f(s.storeStep2FullMs) + ' ms, ' + s.storeStep2FullBytes + ' bytes');
console.log('    garbage collection of the merged update (' + s.mergedBytes + ' bytes): ' + f(s.collectMergedMs) + ' ms');
"

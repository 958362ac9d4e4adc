#!/bin/sh
# Consumer check without Swift: regenerate the vectors and diff them, recompute the
# crypto and JSON vectors with PHP, and confirm them with relayctl.
#   RELAYCTL_BIN=/path/to/relayctl protocol/generate/check.sh
# Needs python3 (cryptography), node with NODE_PATH holding yjs/y-protocols/lib0
# (default /usr/share/nodejs), php (openssl, sodium). Without a relayctl binary the
# last step is skipped with a message (exit 0); RELAY_REQUIRE_RELAYCTL=1 makes it fail.
set -eu
cd "$(dirname "$0")/../.."
export NODE_PATH="${NODE_PATH:-/usr/share/nodejs}"
python3 protocol/generate/gen.py --check
php protocol/generate/crosscheck.php protocol/vectors
RELAYCTL_BIN="${RELAYCTL_BIN:-.build/debug/relayctl}"
if [ -x "$RELAYCTL_BIN" ]; then
  RELAYCTL_BIN="$RELAYCTL_BIN" python3 protocol/generate/crosscheck_relayctl.py
elif [ "${RELAY_REQUIRE_RELAYCTL:-0}" = 1 ]; then
  echo "check.sh: no relayctl at $RELAYCTL_BIN" >&2; exit 1
else
  echo "check.sh: no relayctl at $RELAYCTL_BIN; skipped the relayctl confirmation (set RELAYCTL_BIN)"
fi

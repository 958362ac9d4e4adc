#!/bin/sh
# `make bench-compare`: relayd vs nginx + nchan with the same load generator
# (`relayctl bench`), same scenarios, one run; writes the table into Docs/benchmarks.md.
# Usage: Benchmarks/compare.sh [--quick] [--only abc]   (extra flags go to compare.py)
set -eu
cd "$(dirname "$0")/.."
SWIFT="${SWIFT:-swift}"

if ! command -v nginx >/dev/null 2>&1 || [ ! -e /usr/lib/nginx/modules/ngx_nchan_module.so ]; then
    echo "[compare] installing nginx and libnginx-mod-nchan" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y nginx libnginx-mod-nchan >/dev/null || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y nginx libnginx-mod-nchan >/dev/null; }
fi

"$SWIFT" build -c release --product relayd
"$SWIFT" build -c release --product relayctl

# Each side holds up to 15,000 sockets; the generator needs them too.
ulimit -n 20000 2>/dev/null || true
exec python3 Benchmarks/compare.py --write Docs/benchmarks.md --json-out .build/bench-compare.json "$@"

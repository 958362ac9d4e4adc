#!/bin/sh
# `make bench-cluster`: two relayd on one Redis vs two nginx + nchan on the same kind of Redis, and
# relayd one node vs two, with the load generator of `make bench-compare` (`relayctl bench`), one
# run; writes the "Two nodes on Redis (issue 14)" block of Docs/benchmarks.md.
# Release builds of relayd and relayctl unless RELAYD_BIN / RELAYCTL_BIN name existing binaries.
# Usage: Benchmarks/cluster/run.sh [cluster.py flags, e.g. --repeat 1 --only ramp]
set -eu
cd "$(dirname "$0")/../.."
SWIFT="${SWIFT:-swift}"

missing=""
command -v nginx >/dev/null 2>&1 || missing="$missing nginx"
[ -e /usr/lib/nginx/modules/ngx_nchan_module.so ] || missing="$missing libnginx-mod-nchan"
command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
if [ -n "$missing" ]; then
    echo "[cluster] installing$missing" >&2
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    # shellcheck disable=SC2086
    $SUDO apt-get install -y $missing >/dev/null || { $SUDO apt-get update >/dev/null && $SUDO apt-get install -y $missing >/dev/null; }
fi

command="make bench-cluster"
if [ -z "${RELAYD_BIN:-}" ]; then
    "$SWIFT" build -c release --product relayd
    RELAYD_BIN=.build/release/relayd
else
    command="RELAYD_BIN=$RELAYD_BIN $command"
fi
if [ -z "${RELAYCTL_BIN:-}" ]; then
    "$SWIFT" build -c release --product relayctl
    RELAYCTL_BIN=.build/release/relayctl
else
    command="RELAYCTL_BIN=$RELAYCTL_BIN $command"
fi
[ $# -eq 0 ] || command="$command (Benchmarks/cluster/run.sh $*)"
export RELAYD_BIN RELAYCTL_BIN

# 10,000 subscribers spread over two nodes, and the generator holds them too.
ulimit -n 20000 2>/dev/null || true
mkdir -p .build
RELAY_BENCH_COMMAND="$command" exec python3 Benchmarks/cluster/cluster.py --write Docs/benchmarks.md --json-out .build/bench-cluster.json "$@"

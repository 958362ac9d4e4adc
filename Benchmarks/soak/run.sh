#!/usr/bin/env bash
# `make soak`: relayd (release) under a bounded soak on loopback, then the verdict, a CSV, a chart and a
# markdown summary. Not part of `make test` or CI. Exits non-zero when anything was lost, duplicated or out
# of order, a connection failed or was closed by relayd, or relayd's RSS/fds/threads did not come back to
# the post-warm-up baseline (the rule is printed), or relayd died.
#
# Settings (environment):
#   SOAK_SECONDS=600           load in the measured cycle
#   SOAK_CONNECTIONS=15000     /ws connections open at any time (held + churning + client publishers)
#   SOAK_CHURN_RATE=300        churned connections opened and closed per second
#   SOAK_CHURN_LIFETIME=10     mean life of a churned connection, s (population = rate × lifetime)
#   SOAK_PUBLISH_RATE=300      signed POST /publish per second
#   SOAK_CLIENT_PUBLISH_RATE=100  client publishes per second
#   SOAK_WARMUP=60             load in the warm-up cycle (its settled level is the baseline)
#   SOAK_SETTLE=60             idle seconds after each cycle before reading relayd's resources
#   SOAK_HISTORY_TTL=30        relayd --history-ttl (default 300): history is freed within the settle
#   SOAK_SOURCES=16            loopback source addresses 127.0.0.1..N (per-IP cap 2000 stays untouched)
#   SOAK_PORT=8099  SOAK_OUT=.build/soak  SOAK_PNG=Docs/images/soak.png
#   SOAK_ARGS="..."            extra `relayctl bench soak` options (e.g. --yjs-rooms 8)
#   SKIP_BUILD=1, RELAYD=…, RELAYCTL=…  use existing binaries
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
SWIFT="${SWIFT:-swift}"
SOAK_SECONDS="${SOAK_SECONDS:-600}"
SOAK_CONNECTIONS="${SOAK_CONNECTIONS:-15000}"
SOAK_CHURN_RATE="${SOAK_CHURN_RATE:-300}"
SOAK_CHURN_LIFETIME="${SOAK_CHURN_LIFETIME:-10}"
SOAK_PUBLISH_RATE="${SOAK_PUBLISH_RATE:-300}"
SOAK_CLIENT_PUBLISH_RATE="${SOAK_CLIENT_PUBLISH_RATE:-100}"
SOAK_WARMUP="${SOAK_WARMUP:-60}"
SOAK_SETTLE="${SOAK_SETTLE:-60}"
SOAK_HISTORY_TTL="${SOAK_HISTORY_TTL:-30}"
SOAK_SOURCES="${SOAK_SOURCES:-16}"
SOAK_PORT="${SOAK_PORT:-8099}"
SOAK_OUT="${SOAK_OUT:-.build/soak}"
SOAK_PNG="${SOAK_PNG:-Docs/images/soak.png}"
RELAYD="${RELAYD:-.build/release/relayd}"
RELAYCTL="${RELAYCTL:-.build/release/relayctl}"
PY="${RELAY_PYTHON:-$ROOT/.venv/bin/python}"

if [ -z "${SKIP_BUILD:-}" ]; then
    "$SWIFT" build -c release --product relayd
    "$SWIFT" build -c release --product relayctl
fi
[ -x "$RELAYD" ] && [ -x "$RELAYCTL" ] || { echo "soak: $RELAYD or $RELAYCTL missing" >&2; exit 2; }

# 15,000 client sockets in the generator and as many in relayd: both need the file limit.
ulimit -n 20000 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((SOAK_CONNECTIONS + 1000)) ]; then
    echo "soak: ulimit -n is $(ulimit -n); $SOAK_CONNECTIONS connections need at least $((SOAK_CONNECTIONS + 1000))" >&2
    exit 2
fi

mkdir -p "$SOAK_OUT"
DATA=$(mktemp -d /tmp/relayd-soak.XXXXXX)
RELAYD_PID=""
cleanup() {
    if [ -n "$RELAYD_PID" ] && kill -0 "$RELAYD_PID" 2>/dev/null; then
        kill -TERM "$RELAYD_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$RELAYD_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$RELAYD_PID" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT INT TERM

# Limits raised for the soak (everything else is relayd's default):
#   --site-max-connections 20000   the dev site's connection limit (default 500)
#   --history-ttl                  so retained history is freed within the settle (see above)
# --max-connections 18000 and --max-connections-per-ip 2000 are relayd's defaults, passed to be explicit:
# 15,000 connections over 16 source addresses are ~950 per address.
RELAYD_ARGS=(--port "$SOAK_PORT" --data-dir "$DATA" --site-max-connections 20000 --max-connections 18000
             --max-connections-per-ip 2000 --history-ttl "$SOAK_HISTORY_TTL" --log-level warning)
"$RELAYD" "${RELAYD_ARGS[@]}" > "$DATA/stdout.log" 2> "$SOAK_OUT/relayd.stderr.log" &
RELAYD_PID=$!
for _ in $(seq 1 300); do
    grep -q "listening on" "$DATA/stdout.log" 2>/dev/null && break
    kill -0 "$RELAYD_PID" 2>/dev/null || { echo "soak: relayd exited" >&2; cat "$SOAK_OUT/relayd.stderr.log" >&2; exit 2; }
    sleep 0.1
done
cred() { grep -Eo "$1:[[:space:]]+[^[:space:]]+" "$DATA/stdout.log" | head -1 | awk '{print $2}'; }
SITE_KEY=$(cred site_key); SECRET=$(cred publish_secret); JWT=$(cred jwt_secret)
[ -n "$SITE_KEY" ] && [ -n "$SECRET" ] && [ -n "$JWT" ] || { echo "soak: relayd did not print the dev site's credentials" >&2; exit 2; }

BUDGET=$(python3 -c "print(int($SOAK_WARMUP + $SOAK_SECONDS + 2 * $SOAK_SETTLE + 300))")
echo "soak: relayd pid $RELAYD_PID on 127.0.0.1:$SOAK_PORT; ${SOAK_SECONDS}s load, $SOAK_CONNECTIONS connections, churn ${SOAK_CHURN_RATE}/s; at most ${BUDGET}s" >&2
CMD=("$RELAYCTL" bench soak --url "http://127.0.0.1:$SOAK_PORT" --site-key "$SITE_KEY" --secret "$SECRET" --jwt-secret "$JWT"
     --server-pid "$RELAYD_PID" --sources "$SOAK_SOURCES" --connect-rate 2000
     --duration "$SOAK_SECONDS" --warmup "$SOAK_WARMUP" --settle "$SOAK_SETTLE" --connections "$SOAK_CONNECTIONS"
     --churn-rate "$SOAK_CHURN_RATE" --churn-lifetime "$SOAK_CHURN_LIFETIME" --publish-rate "$SOAK_PUBLISH_RATE"
     --client-publish-rate "$SOAK_CLIENT_PUBLISH_RATE" --csv "$SOAK_OUT/samples.csv" --json --verbose)
# shellcheck disable=SC2206
[ -n "${SOAK_ARGS:-}" ] && CMD+=($SOAK_ARGS)
START=$(date -u +"%Y-%m-%d %H:%M UTC")
set +e
timeout --kill-after=10 "$BUDGET" "${CMD[@]}" > "$SOAK_OUT/result.json"
RC=$?
set -e
END=$(date -u +"%H:%M UTC")
# relayd's threads by name at the end (after the settle), for the thread rule.
for t in /proc/"$RELAYD_PID"/task/*; do cat "$t/comm" 2>/dev/null; done | sort | uniq -c > "$SOAK_OUT/relayd-threads.txt" || true
if ! kill -0 "$RELAYD_PID" 2>/dev/null; then
    echo "soak: relayd is gone (crashed?) — see $SOAK_OUT/relayd.stderr.log" >&2
    RC=3
fi
[ "$RC" = 124 ] && echo "soak: the generator ran over its ${BUDGET}s budget and was stopped" >&2

{
    echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')), $(free -g | awk '/Mem:/{print $2}') GiB RAM, $(uname -sr), ulimit -n $(ulimit -n)"
    echo "swift: $("$SWIFT" --version 2>/dev/null | head -1)"
    echo "relayd: $("$RELAYD" --version 2>/dev/null || echo '?'), tree $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet HEAD -- Sources 2>/dev/null || echo ' (+ uncommitted changes)')"
    echo "run: $START to $END"
    echo "relayd: ${RELAYD_ARGS[*]}" | sed "s|$DATA|<tmp>|"
    echo "generator: relayctl bench soak --sources $SOAK_SOURCES --connect-rate 2000 --duration $SOAK_SECONDS --warmup $SOAK_WARMUP --settle $SOAK_SETTLE --connections $SOAK_CONNECTIONS --churn-rate $SOAK_CHURN_RATE --churn-lifetime $SOAK_CHURN_LIFETIME --publish-rate $SOAK_PUBLISH_RATE --client-publish-rate $SOAK_CLIENT_PUBLISH_RATE ${SOAK_ARGS:-}"
} > "$SOAK_OUT/env.txt"

if [ -s "$SOAK_OUT/result.json" ]; then
    if [ ! -x "$PY" ] || ! "$PY" -c 'import matplotlib' 2>/dev/null; then
        scripts/install-deps.sh soak
    fi
    "$PY" Benchmarks/soak/report.py --json "$SOAK_OUT/result.json" --csv "$SOAK_OUT/samples.csv" --env "$SOAK_OUT/env.txt" \
        --png "$SOAK_PNG" --markdown "$SOAK_OUT/summary.md" --exit-code "$RC"
    cat "$SOAK_OUT/summary.md"
else
    echo "soak: no result (exit $RC)" >&2
fi
echo "soak: result $SOAK_OUT/result.json, samples $SOAK_OUT/samples.csv, chart $SOAK_PNG, summary $SOAK_OUT/summary.md; exit $RC" >&2
exit "$RC"

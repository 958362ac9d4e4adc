#!/usr/bin/env bash
# A/B of two relayd builds with the same load (scenarios A and B of Docs/benchmarks.md, "relayd alone on a quiet machine").
# Usage: Benchmarks/load/ab-relayd.sh <relayd binary> <label>   (needs a release relayctl; set CTL to override)
set -u
BIN=$1; LABEL=$2; CTL=${CTL:-$(dirname "$0")/../../.build/release/relayctl}
D=$(mktemp -d); PORT=18777
$BIN --port $PORT --data-dir $D --site-max-connections 20000 --max-connections 18000 --log-level warning > $D/out.txt 2>&1 &
PID=$!
for i in $(seq 1 50); do curl -s localhost:$PORT/healthz >/dev/null && break; sleep 0.2; done
SK=$(grep site_key: $D/out.txt | awk '{print $3}'); SEC=$(grep publish_secret: $D/out.txt | awk '{print $3}'); JS=$(grep jwt_secret: $D/out.txt | awk '{print $3}')
COMMON="--url http://127.0.0.1:$PORT --site-key $SK --secret $SEC --jwt-secret $JS --server-pid $PID --json"
SUM='import sys,json
d=json.load(sys.stdin); s=d["steps"][-1]
print(json.dumps({"deliveries_per_s":s["deliveries_per_s"],"lost":s["lost"],"dups":s["duplicates"],"p50":s["latency"]["p50_ms"],"p99":s["latency"]["p99_ms"],"server_cpu_s":s["server"]["cpu_s"],"cpu_per_s":s["server_cpu_per_s"],"rate":s["publish_rate"]}))'
echo "== $LABEL A: 1000 subs, 1 channel, 40 pub/s, 1 KiB"
timeout 120 $CTL bench fanout --subscribers 1000 --channels 1 --payload 1024 --rate 40 --duration 8 --publishers 1 --pipeline 8 --all-steps $COMMON 2>/dev/null | python3 -c "$SUM"
echo "== $LABEL B: 10000 subs, 1000 channels, 1000 pub/s"
timeout 150 $CTL bench fanout --subscribers 10000 --channels 1000 --payload 1024 --rate 1000 --duration 10 --publishers 4 --all-steps $COMMON 2>/dev/null | python3 -c "$SUM"
kill -TERM $PID; wait $PID 2>/dev/null; rm -rf $D

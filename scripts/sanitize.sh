#!/usr/bin/env bash
# Runs the Swift unit and integration suites under a sanitizer: `make test-tsan` (thread) and
# `make test-asan` (address, with LeakSanitizer). The tests and every relayd/relayctl they start
# are built with the sanitizer in their own scratch path (.build-tsan / .build-asan), so the
# integration tests exercise an instrumented server under real clients.
#
# Reports never scroll by unnoticed: each process writes them to <scratch>/reports/<san>.<pid>,
# and this script fails when one exists (or when a test fails), printing the first lines of each.
# Usage: scripts/sanitize.sh thread|address [extra `swift test` arguments, e.g. --filter X]
set -uo pipefail
cd "$(dirname "$0")/.."
SWIFT=${SWIFT:-swift}
san=${1:?usage: scripts/sanitize.sh thread|address [swift test args]}
shift
case "$san" in
  thread)  scratch=.build-tsan; tag=tsan ;;
  address) scratch=.build-asan; tag=asan ;;
  *) echo "sanitize.sh: thread or address, not '$san'" >&2; exit 2 ;;
esac
reports="$PWD/$scratch/reports"

start=$(date +%s)
echo "== building tests, relayd and relayctl with -sanitize=$san in $scratch (a first build takes several minutes)"
# -g keeps line numbers in the reports.
flags=(); [ "$san" = thread ] && flags=(-Xswiftc -DRELAY_TSAN)
$SWIFT build --build-tests --sanitize="$san" --scratch-path "$scratch" "${flags[@]}" || { echo "sanitize: build failed" >&2; exit 1; }
echo "== built in $(( $(date +%s) - start )) s"

rm -rf "$reports"; mkdir -p "$reports"
export RELAYD_BINARY="$PWD/$scratch/debug/relayd" RELAYCTL_BINARY="$PWD/$scratch/debug/relayctl"
export NODE_PATH=${NODE_PATH:-/usr/share/nodejs} RELAY_PYTHON=${RELAY_PYTHON:-$PWD/.venv/bin/python} RELAY_REQUIRE_PEERS=1
# Swift's backtracer would otherwise catch the sanitizer's own signals.
export SWIFT_BACKTRACE=enable=no
# halt_on_error=0: one run lists every finding; exitcode stays non-zero when there was one.
export TSAN_OPTIONS="log_path=$reports/tsan halt_on_error=0 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="log_path=$reports/asan detect_leaks=1 halt_on_error=0 ${ASAN_OPTIONS:-}"
# Suppressions, if any, are for dependencies only and each one says why (Tests/sanitizers/).
[ -f Tests/sanitizers/lsan.supp ] && export LSAN_OPTIONS="suppressions=$PWD/Tests/sanitizers/lsan.supp ${LSAN_OPTIONS:-}"
[ -f Tests/sanitizers/tsan.supp ] && export TSAN_OPTIONS="suppressions=$PWD/Tests/sanitizers/tsan.supp $TSAN_OPTIONS"

# The canary (Tests/sanitizers/canary.swift) has one deliberate bug: it must be reported, or the
# instrumentation or the report path is broken and a clean run below would mean nothing.
swiftc -sanitize="$san" -g Tests/sanitizers/canary.swift -o "$scratch/canary" || { echo "sanitize: canary build failed" >&2; exit 1; }
"$scratch/canary" "$san" > /dev/null 2>&1
if ! ls "$reports"/* > /dev/null 2>&1; then
  echo "sanitize: the $tag canary's deliberate bug was not reported in $reports: the check is broken" >&2; exit 1
fi
echo "== canary: its deliberate bug was reported ($(grep -h -m1 'ERROR\|WARNING' "$reports"/* | head -1 | cut -c1-80))"
rm -rf "$reports"; mkdir -p "$reports"

echo "== swift test under $tag (relayd: $RELAYD_BINARY)"
t0=$(date +%s)
$SWIFT test --skip-build --sanitize="$san" --scratch-path "$scratch" "${flags[@]}" "$@" 2>&1 | tee "$scratch/test.log" | grep -E "^(✔|✘|􀢄|Test run|.*(passed|failed) after)" | tail -n 400
status=${PIPESTATUS[0]}
echo "== tests finished in $(( $(date +%s) - t0 )) s, exit status $status"
grep -E "Test run with [0-9]+ tests" "$scratch/test.log" | tail -1

# A file holding only "Suppressions used" (the documented dependency leaks) is not a finding.
findings=$(grep -l -E "ERROR: (Address|Leak|Thread)Sanitizer|WARNING: ThreadSanitizer|SUMMARY: " "$reports"/* 2>/dev/null)
if [ -n "$findings" ]; then
  echo "== $(echo "$findings" | wc -l) $tag report file(s) with findings in $reports:"
  for f in $findings; do
    echo "--- $f"; head -n 60 "$f"
  done
  exit 1
fi
if ls "$reports"/* > /dev/null 2>&1; then
  echo "== suppressed (Tests/sanitizers/*.supp, dependencies only), summed over every process:"
  cat "$reports"/* | awk '$1 ~ /^[0-9]+$/ && NF == 3 { c[$3] += $1; b[$3] += $2 } END { for (k in c) printf "   %-22s %6d allocations %9d bytes\n", k, c[k], b[k] }'
fi
echo "== no $tag reports"
[ "$status" -eq 0 ] || { echo "sanitize: tests failed under $tag (see $scratch/test.log)"; exit 1; }
echo "test-$tag: passed, 0 reports"

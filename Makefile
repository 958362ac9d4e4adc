SWIFT ?= swift
export NODE_PATH := /usr/share/nodejs
export RELAY_PYTHON := $(CURDIR)/.venv/bin/python
export RELAY_REQUIRE_PEERS := 1

.PHONY: test-tsan test-asan test-faults run test test-swift test-protocol test-wordpress test-browser test-proxy fuzz fuzz-build fuzz-replay plugin-zip build release deps test-deps dist-deps dist deb test-dist bench bench-crypto bench-core bench-yjs-algebra bench-yjs bench-yjs-e2e bench-compare bench-cluster bench-floor clean bench-browser soak

## Starts relayd on its embedded default (127.0.0.1:8080, ./relay-data, dev site).
run: deps
	$(SWIFT) build -c release --product relayd
	$(SWIFT) build -c release --product relayctl
	.build/release/relayd

## Runs every test, one suite after another so a failure is easy to place: Swift (unit,
## cross-language, integration, the attack matrix), the protocol vectors, the WordPress plugin, the
## browser modules, relayd behind the shipped reverse-proxy configs, crash and disk faults, the fuzz
## corpora replayed.
test: test-deps
	$(SWIFT) build --build-tests
	$(MAKE) --no-print-directory test-swift
	$(MAKE) --no-print-directory test-protocol
	$(MAKE) --no-print-directory test-wordpress
	$(MAKE) --no-print-directory test-browser
	$(MAKE) --no-print-directory test-proxy
	$(MAKE) --no-print-directory test-faults
	$(MAKE) --no-print-directory fuzz-replay

test-swift:
	$(SWIFT) test --skip-build

## Browser client + Yjs provider (wordpress/relay-realtime/assets/js): node suite, then headless Chromium, against relayd
## (RELAYD_BIN / RELAYCTL_BIN, else .build/debug).
test-browser: test-deps
	@[ -n "$$RELAYD_BIN" ] || [ -x .build/debug/relayd ] || $(SWIFT) build --product relayd
	@[ -n "$$RELAYCTL_BIN" ] || [ -x .build/debug/relayctl ] || $(SWIFT) build --product relayctl
	node --test --test-force-exit --test-timeout 60000 wordpress/relay-realtime/tests/js/
	$(RELAY_PYTHON) wordpress/relay-realtime/tests/browser/run_browser_tests.py

## relayd behind deploy/nginx/relayd.conf and deploy/caddy/Caddyfile (configs generated from those files), TLS on
## loopback: WSS, SSE without buffering, y-websocket, pings, forwarded headers, --trusted-proxy
## (RELAYD_BIN / RELAYCTL_BIN, else .build/debug).
test-proxy: test-deps
	@[ -n "$$RELAYD_BIN" ] || [ -x .build/debug/relayd ] || $(SWIFT) build --product relayd
	@[ -n "$$RELAYCTL_BIN" ] || [ -x .build/debug/relayctl ] || $(SWIFT) build --product relayctl
	$(RELAY_PYTHON) Tests/peers/proxy/run_proxy_tests.py
	$(RELAY_PYTHON) Tests/peers/proxy/run_cluster_tests.py

## Crash and disk faults (Tests/peers/faults): kill -9 of relayd mid-typing (real y-websocket clients) and under
## publish load, a full and a read-only disk (tmpfs / ext4 image mounted by the suite: needs root), damaged
## yjs.sqlite pages; nothing acknowledged may be lost (RELAYD_BIN, else .build/debug).
test-faults: test-deps
	@[ -n "$$RELAYD_BIN" ] || [ -x .build/debug/relayd ] || $(SWIFT) build --product relayd
	$(RELAY_PYTHON) Tests/peers/faults/run_fault_tests.py

## protocol/vectors: regenerated and diffed, recomputed in PHP, confirmed by relayctl.
test-protocol:
	RELAYCTL_BIN=$${RELAYCTL_BIN:-.build/debug/relayctl} RELAY_REQUIRE_RELAYCTL=1 sh protocol/generate/check.sh

## The WordPress plugin on Debian's WordPress 6.1 + MariaDB + relayd (.build/debug, or RELAYD_BIN/RELAYCTL_BIN).
test-wordpress: test-deps
	@[ -n "$$RELAYD_BIN" ] || [ -x .build/debug/relayd ] || $(SWIFT) build
	wordpress/relay-realtime/tests/run.sh

## Installable plugin zip (without its tests): .build-dist/relay-realtime.zip
plugin-zip:
	@command -v zip >/dev/null || { echo "plugin-zip needs zip (apt-get install zip)" >&2; exit 1; }
	@mkdir -p .build-dist && rm -f .build-dist/relay-realtime.zip
	cd wordpress && zip -qr -X ../.build-dist/relay-realtime.zip relay-realtime -x 'relay-realtime/tests/*' -x '*/.*'
	@echo ".build-dist/relay-realtime.zip"

## Release tarball from HEAD (git archive; refuses a dirty tree), release build with the Swift
## runtime linked statically: .build-dist/relayd-<version>-linux-<arch>.tar.gz (+ .sha256).
dist: dist-deps
	SWIFT=$(SWIFT) scripts/dist.sh

## Debian package from the tarball's binaries: .build-dist/relayd_<version>_<arch>.deb (+ .sha256).
deb: dist
	scripts/deb.sh

## Checks the tarball and the .deb (not part of `make test`: it needs the release build).
## RELAY_DIST_INSTALL=1 also installs, runs and purges the .deb (a throwaway machine, as root).
test-dist: deb
	Tests/dist/check.sh

deps:
	@scripts/install-deps.sh build

dist-deps:
	@scripts/install-deps.sh dist

test-deps:
	@scripts/install-deps.sh test

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

bench: bench-crypto bench-core

## Crypto throughput beside `openssl speed` in one run; writes nothing, prints a table.
bench-crypto: deps
	$(SWIFT) build -c release --product relayctl
	python3 Benchmarks/crypto.py --write Docs/benchmarks.md

## In-process fan-out and idle memory of RelayCore (no sockets).
bench-core: deps
	$(SWIFT) build -c release --build-tests -Xswiftc -enable-testing
	RELAY_BENCH=1 $(SWIFT) test -c release -Xswiftc -enable-testing --skip-build --filter RelayCoreTests.Benchmarks

## YjsSync update algebra beside Yjs (node) and pycrdt on the automerge-paper trace.
bench-yjs-algebra: test-deps
	Benchmarks/yjs/run.sh

## The floor of fan-out on this machine: CPU of one write(2) of a 1 KiB frame to a loopback socket.
bench-floor:
	mkdir -p .build
	cc -O2 -Wall -o .build/write-floor Benchmarks/floor/write-floor.c
	for i in 1 2 3; do .build/write-floor 2; done

## Yjs rooms: relayd vs the y-websocket reference server (node), side by side.
bench-yjs: test-deps
	Benchmarks/yjs/rooms/run.sh

## Encrypted vs plain Yjs rooms (late join, keystroke to remote) through one release relayd, in one run.
bench-yjs-e2e: test-deps
	$(SWIFT) build -c release --product relayd
	RELAYD_BIN=.build/release/relayd NODE_PATH=/usr/share/nodejs node Benchmarks/yjs/e2e/bench.mjs --rounds 3 --keys 3000 --typed 300 --rate 20

## relayd vs nginx + nchan with the same load generator, in one run (writes Docs/benchmarks.md).
bench-compare: deps
	Benchmarks/compare.sh

## Two relayd vs two nginx + nchan on one Redis (started by the harness), and relayd one node vs two, same load
## generator, one run of about 20 minutes (writes Docs/benchmarks.md). RELAYD_BIN / RELAYCTL_BIN skip the release build.
bench-cluster: deps
	Benchmarks/cluster/run.sh

## Browser: wire cost per hour (idle editor, two typing) and keystroke latency p50/p99 in headless Chromium via relayd.
bench-browser: test-deps
	@[ -n "$$RELAYD_BIN" ] || [ -x .build/debug/relayd ] || $(SWIFT) build --product relayd
	@[ -n "$$RELAYCTL_BIN" ] || [ -x .build/debug/relayctl ] || $(SWIFT) build --product relayctl
	$(RELAY_PYTHON) Benchmarks/browser/run.py --markdown

clean:
	rm -rf .build

## Fuzzing (libFuzzer + AddressSanitizer; Fuzz/ is its own package, built in .build-fuzz; see Fuzz/README.md).
FUZZ_TARGETS := FuzzJSON FuzzClientFrame FuzzBase64 FuzzJWT FuzzEnvelope FuzzYjsMessage FuzzYjsUpdate FuzzYjsMerge FuzzYjsGC FuzzLib0 FuzzPublishSignature FuzzWebSocketFrames FuzzHTTPUpgrade FuzzYjsSealed
FUZZ_SECONDS ?= 60
FUZZ_BIN := .build-fuzz/release

fuzz-build:
	$(SWIFT) build -c release --sanitize=fuzzer --sanitize=address --package-path Fuzz --scratch-path .build-fuzz

## Replays the checked-in seed corpora and every regression input once (part of `make test`).
fuzz-replay: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  dirs="Fuzz/corpus/$$t"; [ -d Fuzz/regressions/$$t ] && dirs="$$dirs Fuzz/regressions/$$t"; \
	  n=$$(ls $$dirs | wc -l); \
	  SWIFT_BACKTRACE=enable=no $(FUZZ_BIN)/$$t -runs=0 $$dirs > .build-fuzz/$$t.replay.log 2>&1 \
	    && echo "fuzz-replay $$t: $$n inputs, no failure" \
	    || { echo "fuzz-replay $$t FAILED (.build-fuzz/$$t.replay.log):"; tail -30 .build-fuzz/$$t.replay.log; exit 1; }; \
	done

## Runs every target for FUZZ_SECONDS (default 60) from its corpus (kept in .build-fuzz/corpus);
## a crash leaves its input in .build-fuzz/ and stops: add it to Fuzz/regressions/<target>/ with the fix.
## Built from scratch each time (.build-fuzz/run): incremental rebuilds were seen to lose the coverage
## instrumentation (libFuzzer: "Is the code instrumented for coverage?"), which a run then reports.
fuzz:
	rm -rf .build-fuzz/run
	$(SWIFT) build -c release --sanitize=fuzzer --sanitize=address --package-path Fuzz --scratch-path .build-fuzz/run
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p .build-fuzz/corpus/$$t; \
	  SWIFT_BACKTRACE=enable=no .build-fuzz/run/release/$$t .build-fuzz/corpus/$$t Fuzz/corpus/$$t -max_total_time=$(FUZZ_SECONDS) \
	    -print_final_stats=1 -artifact_prefix=.build-fuzz/$$t- > .build-fuzz/$$t.log 2>&1 \
	    || { echo "fuzz $$t: FAILURE, see .build-fuzz/$$t.log"; tail -30 .build-fuzz/$$t.log; exit 1; }; \
	  echo "fuzz $$t: $$(grep -o 'number_of_executed_units: [0-9]*' .build-fuzz/$$t.log | cut -d' ' -f2) executions in $(FUZZ_SECONDS) s, $$(grep -q 'no interesting inputs' .build-fuzz/$$t.log && echo 'NO COVERAGE GUIDANCE (see Fuzz/README.md)' || grep -o 'cov: [0-9]*' .build-fuzz/$$t.log | tail -1), no failure"; \
	done

## Sanitizers (not part of `make test`): the Swift unit and integration suites, and the relayd they
## start, built with ThreadSanitizer / AddressSanitizer (+ LeakSanitizer) in .build-tsan / .build-asan.
## Every report (from the test process or from a relayd it started) is written under
## .build-<san>/reports/; the target fails if there is one. scripts/sanitize.sh tells what ran.
test-tsan: test-deps
	SWIFT=$(SWIFT) scripts/sanitize.sh thread

test-asan: test-deps
	SWIFT=$(SWIFT) scripts/sanitize.sh address

## Soak (not part of `make test`): relayd (release) with SOAK_CONNECTIONS (15000) connections, churn, publishes,
## presence and Yjs rooms for SOAK_SECONDS (600); fails on any loss/duplicate or when relayd's RSS/fds/threads
## do not come back to baseline. CSV + Docs/images/soak.png + a markdown summary (Benchmarks/soak/run.sh).
soak:
	@scripts/install-deps.sh soak
	SWIFT=$(SWIFT) Benchmarks/soak/run.sh

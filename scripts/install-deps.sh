#!/usr/bin/env bash
# Installs what the build (and, with `test`, the test suite) needs and is missing.
# Usage: scripts/install-deps.sh build|test|bench|dist|soak
set -euo pipefail
cd "$(dirname "$0")/.."

want=(libssl-dev libsodium-dev pkg-config libsqlite3-dev)
case "${1:-build}" in
  test)  want+=(php-cli nodejs node-yjs node-y-protocols node-y-websocket node-ws node-lib0 python3-venv openssl
               mariadb-server-core mariadb-client-core php-mysql php-curl php-mbstring php-xml phpunit zip curl  # WordPress suite
               chromium chromium-driver  # browser suite
               nginx caddy  # reverse-proxy suite (run as foreground processes by the tests, never as services)
               e2fsprogs util-linux  # fault suite: mkfs.ext4/e2fsck for the read-only disk image, findmnt, losetup
               redis-server  # RelayRedisTests start their own redis-server per test (never the service)
               postgresql) ;;  # RelayPostgresTests and multi-node Yjs: initdb + postgres per test, as the postgres user (never the service)
  dist)  want+=(dpkg-dev binutils libicu-dev python3 python3-seccomp) ;;  # make dist/deb/test-dist: dpkg-shlibdeps, strip/nm/readelf, notices, unit sandbox
  bench) want+=(php-cli nodejs node-yjs node-y-protocols node-y-websocket node-ws node-lib0 python3-venv nginx libnginx-mod-nchan) ;;
  soak)  want+=(python3-venv) ;;  # make soak: the chart needs matplotlib (PyPI, into .venv below)
esac

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# python3-venv is only needed when the interpreter lacks venv (Debian's python3).
if printf '%s\n' "${missing[@]:-}" | grep -qx python3-venv && python3 -c 'import venv, ensurepip' 2>/dev/null; then
  missing=("${missing[@]/python3-venv}")
fi
missing=($(printf '%s\n' "${missing[@]:-}" | sed '/^$/d'))

if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "installing: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ "${1:-build}" = test ] || [ "${1:-build}" = bench ]; then
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pycrdt, websockets, selenium' 2>/dev/null; then
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r Tests/requirements.txt
  fi
fi

if [ "${1:-build}" = soak ]; then
  if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import matplotlib' 2>/dev/null; then
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r Benchmarks/soak/requirements.txt
  fi
fi

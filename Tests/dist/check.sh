#!/usr/bin/env bash
# make test-dist: checks the artifacts of `make dist` and `make deb` in .build-dist/.
#
#   tarball: listed files, SHA256SUMS, --version (version and commit), ldd (every library
#            resolves, belongs to a package in the .deb's Depends, no Swift runtime), the
#            example config; the systemd unit (systemd-analyze verify, when present; relayd
#            under the unit's seccomp settings, emulated by Tests/dist/unit_sandbox.py);
#   .deb:    dpkg-deb --info/--contents (files, owners, modes, conffiles, maintainer
#            scripts), the same binaries as the tarball; lintian when present (report only);
#   RELAY_DIST_INSTALL=1 (root, a throwaway machine): dpkg -i, the relayd user,
#            /var/lib/relayd, relayd as that user on loopback with the installed config,
#            /healthz, SIGTERM, dpkg -r (data kept), dpkg --purge (cleaned up).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=$PWD/.build-dist
PASS=0 FAIL=0 SKIP=0
ok()   { PASS=$((PASS + 1)); printf 'ok   - %s\n' "$*"; }
bad()  { FAIL=$((FAIL + 1)); printf 'FAIL - %s\n' "$*"; }
skip() { SKIP=$((SKIP + 1)); printf 'skip - %s\n' "$*"; }
check() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what"; fi; }
note() { printf '       %s\n' "$@"; }
finish() {
  echo
  echo "dist: $PASS passed, $FAIL failed, $SKIP skipped"
  [ "$FAIL" -eq 0 ]
  exit
}

[ -f "$OUT/dist.env" ] && [ -f "$OUT/deb.env" ] || { echo "no .build-dist/dist.env or deb.env: run make deb first" >&2; exit 2; }
# shellcheck disable=SC1091
. "$OUT/dist.env"
# shellcheck disable=SC1091
. "$OUT/deb.env"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
echo "# $NAME.tar.gz and $(basename "$DEB") (commit $COMMIT)"

# --- tarball -------------------------------------------------------------------------------
check "tarball .sha256 matches" sh -c "cd '$OUT' && sha256sum --quiet -c '$NAME.tar.gz.sha256'"
tar -xzf "$TARBALL" -C "$T" || bad "tarball extracts"
U=$T/$NAME
EXPECTED="LICENSE README.md SHA256SUMS THIRD-PARTY-NOTICES bin/relayctl bin/relayd config/relayd.env config/relayd.json systemd/relayd.service"
got=$(cd "$U" && find . -type f -printf '%P\n' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
if [ "$got" = "$EXPECTED" ]; then ok "tarball holds exactly: $EXPECTED"; else bad "tarball files: got '$got', expected '$EXPECTED'"; fi
top=$(tar -tzf "$TARBALL" | cut -d/ -f1 | sort -u)
check "everything under one top directory $NAME/" test "$top" = "$NAME"
check "SHA256SUMS verifies" sh -c "cd '$U' && sha256sum --quiet --strict -c SHA256SUMS"
listed=$(cut -d' ' -f3- "$U/SHA256SUMS" | sed 's#^\*##' | LC_ALL=C sort | tr '\n' ' ' | sed 's/ $//')
check "SHA256SUMS lists every other file" test "$listed" = "$(echo "$EXPECTED" | tr ' ' '\n' | grep -vx SHA256SUMS | tr '\n' ' ' | sed 's/ $//')"
owners=$(tar --numeric-owner -tvzf "$TARBALL" | awk '{print $2}' | sort -u | tr '\n' ' ')
check "tarball members owned by 0/0 (got: $owners)" test "$owners" = "0/0 "
check "bin/relayd and bin/relayctl are executable" test -x "$U/bin/relayd" -a -x "$U/bin/relayctl"

want="$VERSION (commit $COMMIT)"
for b in relayd relayctl; do
  v=$("$U/bin/$b" --version 2>&1)
  check "bin/$b --version prints '$want' (got '$v')" test "$v" = "$want"
done
check "commit $COMMIT is a commit of this repository, not 'dev'" sh -c "[ '$COMMIT' != dev ] && git cat-file -e '$COMMIT^{commit}'"

check "LICENSE is the Apache License 2.0" cmp -s "$U/LICENSE" /usr/share/common-licenses/Apache-2.0
check "THIRD-PARTY-NOTICES has the Swift runtime licence (Runtime Library Exception)" grep -q "Runtime Library Exception" "$U/THIRD-PARTY-NOTICES"
for p in swift-nio swift-nio-ssl hummingbird GRDB.swift swift-argument-parser swift-log; do
  check "THIRD-PARTY-NOTICES covers $p" grep -q "^[0-9]*\. $p " "$U/THIRD-PARTY-NOTICES"
done
check "config/relayd.json is a JSON object" python3 -c "import json,sys; assert isinstance(json.load(open(sys.argv[1])), dict)" "$U/config/relayd.json"
check "config/relayd.env: every non-empty line is a comment" sh -c "! grep -v -e '^#' -e '^[[:space:]]*\$' '$U/config/relayd.env'"
check "README.md names version and commit" grep -q "relayd $VERSION (commit $COMMIT)" "$U/README.md"

# --- ldd -----------------------------------------------------------------------------------
DEPENDS_FIELD=$(dpkg-deb -f "$DEB" Depends)
echo "# Depends: $DEPENDS_FIELD"
DEP_PKGS=$(echo "$DEPENDS_FIELD" | tr ',|' '\n\n' | sed 's/(.*)//; s/[[:space:]]//g; /^$/d' | sort -u)
owner_of() {  # the package that owns a library path (merged /usr aware)
  local p=$1 r alt
  r=$(readlink -f "$p")
  for cand in "$p" "$r" "${p/#\/lib\//\/usr\/lib\/}" "${p/#\/usr\/lib\//\/lib\/}" "${r/#\/usr\/lib\//\/lib\/}" "${r/#\/lib\//\/usr\/lib\/}"; do
    alt=$(dpkg -S "$cand" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$alt" ] && { echo "$alt"; return; }
  done
}
closure() {  # the installed packages that the given packages pull in through Depends/Pre-Depends
  local todo="$*" seen=" " p deps
  while [ -n "$todo" ]; do
    set -- $todo; p=$1; shift; todo="$*"
    case "$seen" in *" $p "*) continue ;; esac
    seen="$seen$p "
    deps=$(dpkg-query -W -f='${Depends}, ${Pre-Depends}' "$p" 2>/dev/null | tr ',|' '\n\n' | sed 's/(.*)//; s/:any//; s/[[:space:]]//g; /^$/d')
    todo="$todo $(echo $deps)"
  done
  echo "$seen" | tr ' ' '\n' | sed '/^$/d'
}
DEP_CLOSURE=$(closure $DEP_PKGS)
for b in relayd relayctl; do
  out=$(ldd "$U/bin/$b" 2>&1)
  echo "# ldd bin/$b"; echo "$out" | sed 's/ (0x[0-9a-f]*)//; s/^/#   /'
  check "ldd bin/$b: every library resolves" sh -c "! echo \"\$1\" | grep -q 'not found'" _ "$out"
  check "ldd bin/$b: no Swift runtime (libswift*, libFoundation*, lib_FoundationICU, libdispatch, libBlocksRuntime)" \
    sh -c "! echo \"\$1\" | grep -E -q 'libswift|libFoundation|_FoundationICU|libdispatch|libBlocksRuntime'" _ "$out"
  needed=" $(readelf -d "$U/bin/$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' ')"
  while read -r lib path; do
    [ -n "$path" ] || continue
    pkg=$(owner_of "$path")
    if [ -z "$pkg" ]; then bad "bin/$b: $lib ($path) belongs to no package"; continue; fi
    base=${pkg%%:*}
    case "$needed" in
      *" $lib "*)  # linked directly: its package must be named in Depends
        if echo "$DEP_PKGS" | grep -qx "$base"; then ok "bin/$b: $lib (direct) is in $base, named in Depends"
        else bad "bin/$b: $lib (direct) is in $base, which Depends does not name"; fi ;;
      *)           # loaded by another library: its package must come with Depends
        if echo "$DEP_CLOSURE" | grep -qx "$base"; then ok "bin/$b: $lib (indirect) is in $base, pulled in by Depends"
        else bad "bin/$b: $lib (indirect) is in $base, which Depends does not pull in"; fi ;;
    esac
  done < <(echo "$out" | awk '/=>/ {print $1, $3; next} /^\t\// {print $1, $1}')
done

# --- systemd unit --------------------------------------------------------------------------
UNIT=$U/systemd/relayd.service
for k in NoNewPrivileges=true ProtectSystem=strict ProtectHome=true PrivateTmp=true PrivateDevices=true StateDirectory=relayd \
         "CapabilityBoundingSet=" "ExecReload=/bin/kill -HUP \$MAINPID" KillSignal=SIGTERM User=relayd; do
  check "unit has $k" grep -qx -- "$k" "$UNIT"
done
check "unit restricts address families" grep -q '^RestrictAddressFamilies=' "$UNIT"
nofile=$(sed -n 's/^LimitNOFILE=//p' "$UNIT")
check "LimitNOFILE ($nofile) >= default --max-connections 18000 + 1000" test "${nofile:-0}" -ge 19000
stop=$(sed -n 's/^TimeoutStopSec=//p' "$UNIT")
check "TimeoutStopSec ($stop) above relayd's 5 s drain" test "${stop:-0}" -gt 5
if command -v systemd-analyze >/dev/null; then
  # verify checks that ExecStart exists: verify a copy that points at the extracted binary.
  mkdir -p "$T/unit"
  sed "s#/usr/bin/relayd#$U/bin/relayd#" "$UNIT" > "$T/unit/relayd.service"
  if va=$(systemd-analyze verify "$T/unit/relayd.service" 2>&1) && [ -z "$va" ]; then ok "systemd-analyze verify accepts the unit"
  else bad "systemd-analyze verify: $va"; fi
  sec=$(systemd-analyze security --offline=true "$T/unit/relayd.service" 2>/dev/null | tail -1)
  [ -n "$sec" ] && note "systemd-analyze security: $sec"
else
  skip "systemd-analyze not installed"
fi

# --- the unit's seccomp settings, emulated (systemd is not always PID 1 where this runs) ---
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
healthz() { python3 -c 'import sys,urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=1).read().decode())' "http://127.0.0.1:$1/healthz" 2>/dev/null; }
if command -v systemd-analyze >/dev/null && /usr/bin/python3 -c 'import seccomp' 2>/dev/null; then
  S=$T/sandbox; mkdir -p "$S/data"
  RUNAS=()
  if [ "$(id -u)" -eq 0 ]; then chmod 0755 "$T"; chown nobody "$S/data"; RUNAS=(setpriv --reuid=nobody --regid=nogroup --clear-groups --); fi
  SPORT=$(free_port)
  echo "# relayd under the unit's SystemCallFilter, RestrictAddressFamilies, MemoryDenyWriteExecute (Tests/dist/unit_sandbox.py)${RUNAS:+, as nobody}"
  /usr/bin/python3 Tests/dist/unit_sandbox.py "$UNIT" "${RUNAS[@]}" "$U/bin/relayd" --data-dir "$S/data" --port "$SPORT" --dev-site true > "$S/out" 2> "$S/err" &
  SPID=$!
  h=""; for _ in $(seq 1 50); do h=$(healthz "$SPORT") && break; sleep 0.2; done
  check "sandboxed: GET /healthz ok" sh -c "echo \"\$1\" | grep -q '\"status\":\"ok\"'" _ "$h"
  sk=$(sed -n 's/.*site_key: *//p' "$S/out"); ps=$(sed -n 's/.*publish_secret: *//p' "$S/out"); js=$(sed -n 's/.*jwt_secret: *//p' "$S/out")
  "$U/bin/relayctl" subscribe --url "http://127.0.0.1:$SPORT" --site-key "$sk" --jwt-secret "$js" events > "$S/sub" 2>&1 &
  SUB=$!
  for _ in $(seq 1 25); do grep -q '"subscribed"' "$S/sub" && break; sleep 0.2; done
  check "sandboxed: publish accepted" "$U/bin/relayctl" publish --url "http://127.0.0.1:$SPORT" --site-key "$sk" --secret "$ps" events hello '{"n":1}'
  for _ in $(seq 1 25); do grep -q '"event":"hello"' "$S/sub" && break; sleep 0.2; done
  check "sandboxed: delivered over the WebSocket" grep -q '"event":"hello"' "$S/sub"
  kill "$SUB" 2>/dev/null; wait "$SUB" 2>/dev/null
  kill -TERM "$SPID" 2>/dev/null
  src=timeout; for _ in $(seq 1 50); do kill -0 "$SPID" 2>/dev/null || { wait "$SPID"; src=$?; break; }; sleep 0.2; done
  [ "$src" = timeout ] && kill -KILL "$SPID" 2>/dev/null
  check "sandboxed: SIGTERM exit 0 (rc $src)" test "$src" = 0
  grep -v '^$' "$S/err" | sed 's/^/#   relayd: /'
else
  skip "the unit's seccomp settings, emulated (needs systemd-analyze and python3-seccomp)"
fi

# --- .deb ----------------------------------------------------------------------------------
check ".deb .sha256 matches" sh -c "cd '$OUT' && sha256sum --quiet -c '$(basename "$DEB").sha256'"
info=$(dpkg-deb --info "$DEB")
for f in "Package: relayd" "Version: " "Architecture: $(dpkg --print-architecture)" "Depends: adduser" "Maintainer: " "Installed-Size: " "Description: "; do
  check "dpkg-deb --info: $f" sh -c "echo \"\$1\" | grep -q '^ $f'" _ "$info"
done
for s in postinst prerm postrm conffiles md5sums control; do
  check "control archive has $s" sh -c "echo \"\$1\" | grep -Eq '^ +[0-9]+ bytes, +[0-9]+ lines +\\*? *$s'" _ "$info"
done
contents=$(dpkg-deb --contents "$DEB")
mode_of() { echo "$contents" | awk -v p="./$1" '$6 == p {print $1 " " $2}'; }
for e in "usr/bin/relayd -rwxr-xr-x" "usr/bin/relayctl -rwxr-xr-x" "lib/systemd/system/relayd.service -rw-r--r--" \
         "etc/relayd/relayd.json -rw-r--r--" "etc/relayd/relayd.env -rw-r--r--" "usr/share/doc/relayd/copyright -rw-r--r--" \
         "usr/share/doc/relayd/README.Debian -rw-r--r--" "usr/share/doc/relayd/THIRD-PARTY-NOTICES.gz -rw-r--r--" \
         "usr/share/doc/relayd/changelog.gz -rw-r--r--" "usr/share/doc/relayd/self-hosting.md.gz -rw-r--r--"; do
  set -- $e
  check "dpkg-deb --contents: /$1 $2 root/root" test "$(mode_of "$1")" = "$2 root/root"
done
check "dpkg-deb --contents: every entry owned by root/root" sh -c "! echo \"\$1\" | awk '{print \$2}' | grep -vx root/root" _ "$contents"
check "dpkg-deb --contents: nothing outside usr/bin, lib/systemd, etc/relayd, usr/share/doc/relayd, the lintian override" \
  sh -c "! echo \"\$1\" | awk '{print \$6}' | grep -Ev '^\\./(\$|usr/\$|usr/bin/|usr/share/\$|usr/share/doc/\$|usr/share/doc/relayd/|usr/share/lintian/\$|usr/share/lintian/overrides/\$|usr/share/lintian/overrides/relayd\$|lib/\$|lib/systemd/\$|lib/systemd/system/|etc/\$|etc/relayd/)'" _ "$contents"
dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles > "$T/conffiles" 2>/dev/null
check "conffiles: /etc/relayd/relayd.json and relayd.env" test "$(LC_ALL=C sort "$T/conffiles" | tr '\n' ' ')" = "/etc/relayd/relayd.env /etc/relayd/relayd.json "
dpkg-deb -x "$DEB" "$T/deb"
for b in relayd relayctl; do check "the .deb's /usr/bin/$b is the tarball's bin/$b" cmp -s "$T/deb/usr/bin/$b" "$U/bin/$b"; done
check "the .deb's unit is the tarball's" cmp -s "$T/deb/lib/systemd/system/relayd.service" "$UNIT"
for s in postinst prerm postrm; do
  dpkg-deb --ctrl-tarfile "$DEB" | tar -xO "./$s" > "$T/$s"
  check "$s: sh -n" sh -n "$T/$s"
  check "$s calls systemctl only when systemd runs (/run/systemd/system)" grep -q '\[ -d /run/systemd/system \]' "$T/$s"
done
if command -v lintian >/dev/null; then
  echo "# lintian (report only)"
  lintian --tag-display-limit 0 "$DEB" 2>&1 | sed 's/^/#   /' || true
else
  skip "lintian not installed (optional)"
fi

# --- install on this machine (RELAY_DIST_INSTALL=1) ----------------------------------------
if [ "${RELAY_DIST_INSTALL:-0}" != 1 ]; then
  skip "install check (RELAY_DIST_INSTALL=1 on a throwaway machine, as root)"
  finish
fi
[ "$(id -u)" -eq 0 ] || { bad "install check needs root"; finish; }
if dpkg-query -W -f='${Status}' relayd 2>/dev/null | grep -q 'installed'; then
  bad "relayd is already installed here; the install check installs and purges it: refusing"; finish
fi
echo "# install check: dpkg -i $(basename "$DEB") (systemd running: $([ -d /run/systemd/system ] && echo yes || echo no))"
if dpkg -i "$DEB" > "$T/dpkg-i.log" 2>&1; then ok "dpkg -i"; else bad "dpkg -i: $(cat "$T/dpkg-i.log")"; finish; fi
sed 's/^/#   /' "$T/dpkg-i.log"
check "dpkg: relayd installed ok" sh -c "dpkg-query -W -f='\${Status}' relayd | grep -qx 'install ok installed'"
check "user relayd exists, system uid, nologin shell" sh -c 'u=$(getent passwd relayd) && uid=$(echo "$u" | cut -d: -f3) && [ "$uid" -lt 1000 ] && echo "$u" | grep -q ":/usr/sbin/nologin$"'
check "group relayd exists" sh -c "getent group relayd >/dev/null"
check "/var/lib/relayd: relayd:relayd 0750" test "$(stat -c '%U:%G %a' /var/lib/relayd 2>/dev/null)" = "relayd:relayd 750"
for f in relayd.json relayd.env; do
  check "/etc/relayd/$f: root:relayd 0640" test "$(stat -c '%U:%G %a' /etc/relayd/$f 2>/dev/null)" = "root:relayd 640"
done
check "/lib/systemd/system/relayd.service installed" test -f /lib/systemd/system/relayd.service
v=$(/usr/bin/relayd --version 2>&1); check "/usr/bin/relayd --version: '$v'" test "$v" = "$want"
v=$(/usr/bin/relayctl --version 2>&1); check "/usr/bin/relayctl --version: '$v'" test "$v" = "$want"
check "/usr/bin/relayctl site list --data-dir works (empty registry)" sh -c "cd /tmp && setpriv --reuid=relayd --regid=relayd --clear-groups -- /usr/bin/relayctl site list --data-dir /var/lib/relayd >/dev/null"

PORT=$(free_port)
echo "# relayd as user relayd on 127.0.0.1:$PORT with /etc/relayd/relayd.json (--port overrides the file)"
(cd /var/lib/relayd && exec setpriv --reuid=relayd --regid=relayd --clear-groups -- /usr/bin/relayd --config /etc/relayd/relayd.json --port "$PORT") > "$T/relayd.log" 2>&1 &
RPID=$!
health=""
for _ in $(seq 1 50); do
  health=$(healthz "$PORT") && break
  sleep 0.2
done
sleep 2   # a few seconds of running
check "GET /healthz: status ok ($health)" sh -c "echo \"\$1\" | grep -q '\"status\":\"ok\"'" _ "$health"
check "no dev site (dev-site false from relayd.json): sites 0" sh -c "echo \"\$1\" | grep -q '\"sites\":0'" _ "$health"
check "relayd runs as user relayd" test "$(stat -c %U "/proc/$RPID" 2>/dev/null)" = relayd
check "admin.key created: relayd 0600" test "$(stat -c '%U %a' /var/lib/relayd/admin.key 2>/dev/null)" = "relayd 600"
check "sites.sqlite created in /var/lib/relayd" test -f /var/lib/relayd/sites.sqlite
kill -TERM "$RPID" 2>/dev/null
rc=timeout
for _ in $(seq 1 50); do kill -0 "$RPID" 2>/dev/null || { wait "$RPID"; rc=$?; break; }; sleep 0.2; done
[ "$rc" = timeout ] && kill -KILL "$RPID" 2>/dev/null
check "SIGTERM: relayd drained and exited 0 within 10 s (rc $rc)" test "$rc" = 0
sed 's/^/#   relayd: /' "$T/relayd.log"

if dpkg -r relayd > "$T/dpkg-r.log" 2>&1; then ok "dpkg -r"; else bad "dpkg -r: $(cat "$T/dpkg-r.log")"; fi
check "remove: binaries and unit gone" sh -c '! [ -e /usr/bin/relayd ] && ! [ -e /usr/bin/relayctl ] && ! [ -e /lib/systemd/system/relayd.service ]'
check "remove: /var/lib/relayd kept (admin.key, sites.sqlite)" test -f /var/lib/relayd/admin.key -a -f /var/lib/relayd/sites.sqlite
check "remove: conffiles kept" test -f /etc/relayd/relayd.json -a -f /etc/relayd/relayd.env
if dpkg --purge relayd > "$T/dpkg-p.log" 2>&1; then ok "dpkg --purge"; else bad "dpkg --purge: $(cat "$T/dpkg-p.log")"; fi
check "purge: /var/lib/relayd deleted" test ! -e /var/lib/relayd
check "purge: /etc/relayd deleted" test ! -e /etc/relayd
check "purge: no enablement symlink left" test ! -e /etc/systemd/system/multi-user.target.wants/relayd.service
check "purge: dpkg knows no relayd" sh -c "! dpkg-query -W -f='\${Status}' relayd 2>/dev/null | grep -q 'installed\\|config-files'"
if getent passwd relayd >/dev/null; then note "the locked system user relayd stays after purge (by design; deluser --system relayd)"; fi
finish

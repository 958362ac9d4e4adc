#!/usr/bin/env bash
# make dist: the release tarball of relayd and relayctl, built from exactly one commit.
#
#   .build-dist/relayd-<version>-linux-<arch>.tar.gz (+ .sha256)
#
# 1. exports HEAD with `git archive` into .build-dist/src (the working tree is not used:
#    uncommitted changes are refused, RELAY_DIST_ALLOW_DIRTY=1 builds HEAD anyway);
# 2. writes the short commit hash into the export's Sources/RelayProtocol/Version.swift;
# 3. `swift build -c release --static-swift-stdlib` there (scratch path .build-dist/build);
# 4. stages bin/relayd, bin/relayctl (debug info stripped, symbols kept), the systemd unit,
#    the example config, LICENSE, THIRD-PARTY-NOTICES, README and SHA256SUMS, and packs them.
#
# Environment: SWIFT (default swift), RELAY_DIST_ALLOW_DIRTY=1, RELAY_DIST_JOBS (swift build -j).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.build-dist
SWIFT=${SWIFT:-swift}
START=$(date +%s)

step() { printf '==> [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die()  { printf 'dist: %s\n' "$*" >&2; exit 1; }

command -v git >/dev/null || die "needs git"
command -v "$SWIFT" >/dev/null || die "needs the Swift toolchain on PATH (or SWIFT=/opt/swift/usr/bin/swift)"
command -v strip >/dev/null || die "needs strip (apt-get install binutils; or: scripts/install-deps.sh dist)"
git rev-parse --verify -q HEAD >/dev/null || die "no commit to build"

# --- 1. one commit -----------------------------------------------------------------------
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
  git status --short --untracked-files=no >&2
  if [ "${RELAY_DIST_ALLOW_DIRTY:-0}" = 1 ]; then
    printf '\n*** dist: WARNING: the working tree has uncommitted changes (above).\n*** They are NOT in the artifact: it is built from HEAD %s only.\n\n' "$(git rev-parse --short=7 HEAD)" >&2
  else
    die "the working tree has uncommitted changes (above); commit or stash them. The artifact is built from HEAD only (RELAY_DIST_ALLOW_DIRTY=1 builds HEAD anyway)."
  fi
fi
COMMIT=$(git rev-parse --short=7 HEAD)
COMMIT_TIME=$(git log -1 --format=%ct HEAD)
VERSION=$(git show HEAD:Sources/RelayProtocol/Version.swift | sed -n 's/.*static let version = "\([^"]*\)".*/\1/p')
[ -n "$VERSION" ] || die "cannot read the version from Sources/RelayProtocol/Version.swift"
ARCH=$(uname -m)
NAME=relayd-$VERSION-linux-$ARCH
SRC=$OUT/src
BUILD=$OUT/build
mkdir -p "$OUT"

step "exporting HEAD $COMMIT (relayd $VERSION) into .build-dist/src"
EXPORT=$(mktemp -d "$OUT/export.XXXXXX")
trap 'rm -rf "$EXPORT"' EXIT
git archive --format=tar HEAD | tar -x -C "$EXPORT"
VFILE=Sources/RelayProtocol/Version.swift
grep -q 'static let commit = "dev"' "$EXPORT/$VFILE" || die "$VFILE has no 'commit = \"dev\"' to replace"
sed -i "s/static let commit = \"dev\"/static let commit = \"$COMMIT\"/" "$EXPORT/$VFILE"
grep -q "static let commit = \"$COMMIT\"" "$EXPORT/$VFILE" || die "could not write the commit into $VFILE"
# Sync into the persistent export, touching only files whose content or mode changed, so that
# the release build of the next commit stays incremental; then prove it equals the archive.
mkdir -p "$SRC"
(cd "$EXPORT" && find . \( -type f -o -type l \) -print) | while IFS= read -r f; do
  if [ -L "$EXPORT/$f" ] || [ ! -e "$SRC/$f" ] || ! cmp -s "$EXPORT/$f" "$SRC/$f" \
     || [ "$(stat -c %a "$EXPORT/$f")" != "$(stat -c %a "$SRC/$f")" ]; then
    mkdir -p "$(dirname "$SRC/$f")"; rm -f "$SRC/$f"; cp -a "$EXPORT/$f" "$SRC/$f"
  fi
done
(cd "$SRC" && find . \( -type f -o -type l \) -print) | while IFS= read -r f; do
  [ -e "$EXPORT/$f" ] || [ -L "$EXPORT/$f" ] || rm -f "$SRC/$f"
done
find "$SRC" -mindepth 1 -type d -empty -delete
diff -r --no-dereference "$EXPORT" "$SRC" >/dev/null || die ".build-dist/src differs from git archive HEAD (delete .build-dist/src and retry)"

# --- 2. release build --------------------------------------------------------------------
step "swift build -c release --static-swift-stdlib (scratch .build-dist/build; the long step)"
JOBS=()
[ -n "${RELAY_DIST_JOBS:-}" ] && JOBS=(-j "$RELAY_DIST_JOBS")
# Both binaries use SwiftNIO for HTTP (no FoundationNetworking, so no libcurl).
(cd "$SRC" && "$SWIFT" build -c release --static-swift-stdlib --scratch-path "$BUILD" "${JOBS[@]}" \
   --product relayd && \
 "$SWIFT" build -c release --static-swift-stdlib --scratch-path "$BUILD" "${JOBS[@]}" \
   --product relayctl)
BIN=$(cd "$SRC" && "$SWIFT" build -c release --static-swift-stdlib --scratch-path "$BUILD" --show-bin-path)
for b in relayd relayctl; do [ -x "$BIN/$b" ] || die "no $BIN/$b after the build"; done
step "built: $("$BIN/relayd" --version)"

# --- 3. stage ----------------------------------------------------------------------------
STAGE=$OUT/stage/$NAME
step "staging $NAME"
rm -rf "$OUT/stage"
mkdir -p "$STAGE/bin" "$STAGE/systemd" "$STAGE/config"
for b in relayd relayctl; do
  install -m 0755 "$BIN/$b" "$STAGE/bin/$b"
  strip --strip-debug "$STAGE/bin/$b"   # DWARF only: symbols stay for backtraces
done
for b in relayd relayctl; do
  got=$("$STAGE/bin/$b" --version)
  [ "$got" = "$VERSION (commit $COMMIT)" ] || die "$b --version says '$got', expected '$VERSION (commit $COMMIT)'"
done
install -m 0644 "$SRC/packaging/relayd.service" "$STAGE/systemd/relayd.service"
install -m 0644 "$SRC/packaging/relayd.json" "$STAGE/config/relayd.json"
install -m 0644 "$SRC/packaging/relayd.env" "$STAGE/config/relayd.env"
install -m 0644 "$SRC/LICENSE" "$STAGE/LICENSE"
sed -e "s/@VERSION@/$VERSION/g" -e "s/@COMMIT@/$COMMIT/g" -e "s/@NAME@/$NAME/g" \
  "$SRC/packaging/README.tarball.md" > "$STAGE/README.md"
chmod 0644 "$STAGE/README.md"

step "gathering THIRD-PARTY-NOTICES (toolchain + SwiftPM checkouts)"
SWIFT=$SWIFT "$SRC/scripts/third-party-notices.sh" "$SRC" "$BUILD" "$VERSION" "$COMMIT" > "$STAGE/THIRD-PARTY-NOTICES"
chmod 0644 "$STAGE/THIRD-PARTY-NOTICES"

(cd "$STAGE" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)
chmod 0644 "$STAGE/SHA256SUMS"

# --- 4. pack -----------------------------------------------------------------------------
TARBALL=$OUT/$NAME.tar.gz
step "packing .build-dist/$NAME.tar.gz"
find "$STAGE" -type d -exec chmod 0755 {} +
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$COMMIT_TIME" \
    -C "$OUT/stage" -cf - "$NAME" | gzip -9n > "$TARBALL.tmp"
mv "$TARBALL.tmp" "$TARBALL"
(cd "$OUT" && sha256sum "$NAME.tar.gz" > "$NAME.tar.gz.sha256")

# What deb.sh and Tests/dist/check.sh work from.
cat > "$OUT/dist.env" <<EOF
VERSION=$VERSION
COMMIT=$COMMIT
COMMIT_TIME=$COMMIT_TIME
ARCH=$ARCH
NAME=$NAME
TARBALL=$TARBALL
EOF
step "done: .build-dist/$NAME.tar.gz ($(du -h "$TARBALL" | cut -f1)), sha256 $(cut -d' ' -f1 "$TARBALL.sha256")"

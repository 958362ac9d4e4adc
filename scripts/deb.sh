#!/usr/bin/env bash
# make deb: a Debian package from the binaries in the `make dist` tarball (the same bytes),
# built with dpkg-deb; Depends computed by dpkg-shlibdeps.
#
#   .build-dist/relayd_<version>_<debian arch>.deb (+ .sha256)
#
# Environment: DEB_MAINTAINER ("Name <email>"; default: the author of HEAD),
#              DEB_VERSION (default: the release version from Version.swift).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/.build-dist
START=$(date +%s)
step() { printf '==> [%4ss] %s\n' "$(( $(date +%s) - START ))" "$*" >&2; }
die()  { printf 'deb: %s\n' "$*" >&2; exit 1; }

for t in dpkg-deb dpkg-shlibdeps dpkg-architecture gzip; do
  command -v "$t" >/dev/null || die "needs $t (apt-get install dpkg-dev; or: scripts/install-deps.sh dist)"
done
[ -f "$OUT/dist.env" ] || die "no .build-dist/dist.env: run make dist first"
# shellcheck disable=SC1091
. "$OUT/dist.env"
[ -f "$TARBALL" ] || die "no $TARBALL: run make dist first"
(cd "$OUT" && sha256sum --quiet -c "$NAME.tar.gz.sha256") || die "$TARBALL does not match its .sha256"
HEAD=$(git rev-parse --short=7 HEAD)
[ "$HEAD" = "$COMMIT" ] || printf 'deb: WARNING: the tarball is from commit %s, HEAD is %s\n' "$COMMIT" "$HEAD" >&2

DEBARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
DEBVERSION=${DEB_VERSION:-$VERSION}
MAINTAINER=${DEB_MAINTAINER:-$(git log -1 --format='%an <%ae>' HEAD)}
WORK=$OUT/deb
PKG=$WORK/root
DEB=$OUT/relayd_${DEBVERSION}_${DEBARCH}.deb
step "relayd $DEBVERSION ($DEBARCH) from $NAME.tar.gz (commit $COMMIT)"
rm -rf "$WORK"
mkdir -p "$WORK/unpack" "$PKG"
tar -xzf "$TARBALL" -C "$WORK/unpack"
# The maintainer scripts and docs come from the tarball's commit too, not the working tree.
mkdir -p "$WORK/commit"
git archive "$COMMIT" packaging/debian Docs/self-hosting.md Docs/relayctl.md | tar -x -C "$WORK/commit"
P=$WORK/commit/packaging/debian
U=$WORK/unpack/$NAME
(cd "$U" && sha256sum --quiet -c SHA256SUMS) || die "SHA256SUMS inside the tarball do not match"

step "assembling the package tree"
install -d -m 0755 "$PKG/usr/bin" "$PKG/lib/systemd/system" "$PKG/etc/relayd" "$PKG/usr/share/doc/relayd" \
  "$PKG/usr/share/lintian/overrides" "$PKG/DEBIAN"
install -m 0755 "$U/bin/relayd" "$U/bin/relayctl" "$PKG/usr/bin/"
install -m 0644 "$U/systemd/relayd.service" "$PKG/lib/systemd/system/relayd.service"
install -m 0644 "$U/config/relayd.json" "$U/config/relayd.env" "$PKG/etc/relayd/"
D=$PKG/usr/share/doc/relayd
install -m 0644 "$P/copyright" "$P/README.Debian" "$D/"
gzip -9nc "$U/THIRD-PARTY-NOTICES" > "$D/THIRD-PARTY-NOTICES.gz"
for doc in self-hosting relayctl; do
  gzip -9nc "$WORK/commit/Docs/$doc.md" > "$D/$doc.md.gz"
done
{
  printf 'relayd (%s) unstable; urgency=medium\n\n' "$DEBVERSION"
  printf '  * Release %s, built from commit %s.\n\n' "$VERSION" "$COMMIT"
  printf ' -- %s  %s\n' "$MAINTAINER" "$(date -R -u -d "@$COMMIT_TIME")"
} | gzip -9nc > "$D/changelog.gz"
chmod 0644 "$D"/*
install -m 0644 "$P/lintian-overrides" "$PKG/usr/share/lintian/overrides/relayd"
install -m 0644 "$P/conffiles" "$PKG/DEBIAN/conffiles"
install -m 0755 "$P/postinst" "$P/prerm" "$P/postrm" "$PKG/DEBIAN/"

step "dpkg-shlibdeps (Depends of bin/relayd and bin/relayctl)"
mkdir -p "$WORK/debian"
printf 'Source: relayd\n\nPackage: relayd\nArchitecture: any\n' > "$WORK/debian/control"
SHLIBS=$(cd "$WORK" && dpkg-shlibdeps -O -e root/usr/bin/relayd -e root/usr/bin/relayctl 2> shlibdeps.log) \
  || { cat "$WORK/shlibdeps.log" >&2; die "dpkg-shlibdeps failed"; }
grep -v '^$' "$WORK/shlibdeps.log" >&2 || true
SHLIBS=${SHLIBS#shlibs:Depends=}
[ -n "$SHLIBS" ] || die "dpkg-shlibdeps found no dependencies"
# adduser: postinst's system user (deb-systemd-helper/-invoke come with the essential
# init-system-helpers).
DEPENDS="adduser, $SHLIBS"

step "control, md5sums"
(cd "$PKG" && find . -path ./DEBIAN -prune -o -type f -print | sed 's#^\./##' | LC_ALL=C sort \
   | grep -v -x -F -f <(sed 's#^/##' "$P/conffiles") | xargs md5sum > DEBIAN/md5sums)
chmod 0644 "$PKG/DEBIAN/md5sums"
cat > "$PKG/DEBIAN/control" <<EOF
Package: relayd
Version: $DEBVERSION
Architecture: $DEBARCH
Maintainer: $MAINTAINER
Installed-Size: $(du -sk --exclude=DEBIAN "$PKG" | cut -f1)
Depends: $DEPENDS
Section: net
Priority: optional
Description: self-hostable realtime relay for WordPress
 relayd relays live events from WordPress to browsers over WebSocket (with
 SSE as fallback): JWT-scoped channels, HMAC-signed publishing, end-to-end
 sealed payloads, and Yjs rooms for real-time co-editing in the block editor.
 relayctl manages sites, tokens and keys, publishes and subscribes.
 .
 Release $VERSION, built from commit $COMMIT; the Swift runtime is linked
 statically. Runs as the system user relayd from /var/lib/relayd under a
 hardened systemd unit.
EOF

step "dpkg-deb --build"
find "$PKG" -type d -exec chmod 0755 {} +
find "$PKG" -exec touch -h -d "@$COMMIT_TIME" {} +   # reproducible member times
rm -f "$DEB"
SOURCE_DATE_EPOCH=$COMMIT_TIME dpkg-deb --root-owner-group -Zxz --build "$PKG" "$DEB" >/dev/null
(cd "$OUT" && sha256sum "$(basename "$DEB")" > "$(basename "$DEB").sha256")
cat > "$OUT/deb.env" <<EOF
DEB=$DEB
DEPENDS="$DEPENDS"
EOF
step "done: .build-dist/$(basename "$DEB") ($(du -h "$DEB" | cut -f1)); Depends: $DEPENDS"

#!/usr/bin/env bash
# Prints THIRD-PARTY-NOTICES for a release build: the licence of the Swift toolchain's
# runtime libraries (linked statically with --static-swift-stdlib) and the licence and notice
# files of every SwiftPM package that has object code in bin/relayd or bin/relayctl, read
# from the build's own checkouts (which packages: the link file lists of both products, mapped
# to packages through the compile commands of the build manifest).
#
# Usage: scripts/third-party-notices.sh SRC_DIR SCRATCH_DIR VERSION COMMIT
set -euo pipefail
SRC=$(readlink -f "$1") BUILD=$(readlink -f "$2") VERSION=$3 COMMIT=$4
SWIFT=${SWIFT:-swift}
SWIFT_BIN=$(readlink -f "$(command -v "$SWIFT")")
TOOLCHAIN_SHARE=$(dirname "$SWIFT_BIN")/../share/swift
SWIFT_VERSION=$("$SWIFT" --version 2>/dev/null | head -1)
TOOLCHAIN_LICENSE=$(readlink -f "$TOOLCHAIN_SHARE/LICENSE.txt")
[ -f "$TOOLCHAIN_LICENSE" ] || { echo "third-party-notices: no LICENSE.txt in the toolchain ($TOOLCHAIN_SHARE)" >&2; exit 1; }
BIN=$(cd "$SRC" && "$SWIFT" build -c release --static-swift-stdlib --scratch-path "$BUILD" --show-bin-path)

# ICU data linked in (symbol icudt<N>_dat), if any.
ICU_VERSION=$( { nm "$BIN/relayd"; nm "$BIN/relayctl"; } 2>/dev/null | sed -n 's/.* icudt\([0-9][0-9]*\)[a-z]*_dat$/\1/p' | head -1 || true)

exec python3 - "$SRC" "$BUILD" "$BIN" "$VERSION" "$COMMIT" "$SWIFT_VERSION" "$TOOLCHAIN_LICENSE" "$ICU_VERSION" <<'PY'
import json, os, re, sys, glob
src, build, binp, version, commit, swift_version, toolchain_license, icu_version = sys.argv[1:]
checkouts = os.path.join(build, "checkouts")

def die(msg):
    sys.stderr.write("third-party-notices: " + msg + "\n"); sys.exit(1)

# Object files linked into each product.
objects = set()
for product in ("relayd", "relayctl"):
    lst = os.path.join(binp, product + ".product", "Objects.LinkFileList")
    if not os.path.exists(lst):
        die("no %s (build the products first)" % lst)
    for line in open(lst):
        line = line.strip().strip("'\"")
        if line:
            objects.add(os.path.normpath(line))

# Object file -> the checkout its sources came from, from the llbuild manifest's commands.
manifest = os.path.join(build, "release.yaml")
if not os.path.exists(manifest):
    die("no build manifest %s" % manifest)
pkg_of_object, sources_of_pkg = {}, {}
source_ext = (".swift", ".c", ".cc", ".cpp", ".cxx", ".m", ".mm", ".s", ".S")
cur_inputs = None
for line in open(manifest, encoding="utf-8"):
    s = line.strip()
    if s.startswith("inputs: ["):
        cur_inputs = json.loads(s[len("inputs: "):])
    elif s.startswith("outputs: [") and cur_inputs is not None:
        outs = json.loads(s[len("outputs: "):])
        srcs = [i for i in cur_inputs if i.endswith(source_ext) and i.startswith(checkouts + "/")]
        objs = [o for o in outs if o.endswith(".o")]
        if srcs and objs:
            pkgs = {os.path.relpath(i, checkouts).split("/")[0] for i in srcs}
            for o in objs:
                pkg_of_object[os.path.normpath(o)] = pkgs
            for i in srcs:
                p = os.path.relpath(i, checkouts).split("/")[0]
                sources_of_pkg.setdefault(p, set()).add(i)
        cur_inputs = None
    elif not line.startswith("    "):
        cur_inputs = None

linked = set()
for o in objects:
    linked |= pkg_of_object.get(o, set())

# Versions and URLs from the workspace state.
state = json.load(open(os.path.join(build, "workspace-state.json")))
info = {}
for d in state["object"]["dependencies"]:
    ref = d["packageRef"]
    cs = d.get("state", {}).get("checkoutState", {})
    info[d.get("subpath", ref["identity"])] = (d.get("subpath", ref["identity"]),
        cs.get("version") or cs.get("branch") or cs.get("revision", "?")[:12],
        re.sub(r"\.git$", "", ref.get("location", "")))
unused = sorted(set(os.listdir(checkouts)) - linked)

name_re = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|COPYRIGHT)([._-].*)?$", re.I)
def notice_files(pkg):
    """Licence/notice files at the package root and in every directory above a linked source."""
    root = os.path.join(checkouts, pkg)
    dirs = {root}
    for srcfile in sources_of_pkg.get(pkg, ()):
        d = os.path.dirname(srcfile)
        while d.startswith(root) and d != root:
            dirs.add(d); d = os.path.dirname(d)
    found = []
    for d in sorted(dirs):
        for f in sorted(os.listdir(d)):
            p = os.path.join(d, f)
            if os.path.isfile(p) and name_re.match(f) and not f.endswith((".swift", ".h", ".c")):
                found.append(p)
    return found

out = []
w = out.append
rule = "=" * 78
w("THIRD-PARTY NOTICES for relayd and relayctl %s (commit %s)" % (version, commit))
w("")
w("relayd and relayctl are licensed under the Apache License 2.0 (LICENSE). The binaries")
w("are linked statically with the components below, whose licences and notices follow.")
w("OpenSSL (libcrypto), libsodium, SQLite, libcurl, glibc and libstdc++ are not included: they")
w("are the system's shared libraries, under their own licences.")
w("")
w("  1. Swift standard library and runtime, Swift Concurrency, Foundation")
w("     (swift-foundation, swift-corelibs-foundation), Dispatch, from %s" % swift_version)
for i, pkg in enumerate(sorted(linked, key=str.lower), start=2):
    n, v, url = info.get(pkg, (pkg, "?", ""))
    w("  %d. %s %s  %s" % (i, n, v, url))
w("")
w(rule)
w("1. Swift standard library, runtime, Foundation, Dispatch (%s)" % swift_version)
w(rule)
w("")
w("The Swift project publishes the runtime libraries that --static-swift-stdlib links in")
w("(libswiftCore, libswift_Concurrency and the other libswift*, Foundation, FoundationEssentials,")
w("FoundationInternationalization, CoreFoundation, libdispatch, BlocksRuntime) under the")
w("Apache License 2.0 with the Runtime Library Exception. The toolchain's licence file")
w("(%s):" % os.path.basename(toolchain_license))
w("")
w(open(toolchain_license, encoding="utf-8", errors="replace").read().rstrip())
w("")
if icu_version:
    icu = sorted(glob.glob("/usr/share/icu/*/LICENSE"))
    w("-" * 78)
    w("ICU. FoundationInternationalization links the toolchain's _FoundationICU (swift-foundation-icu,")
    w("ICU4C %s with Apple's extensions, its data linked in), which the Swift project publishes under" % icu_version)
    w("the licence above. ICU itself is under the Unicode licence with the third-party terms of the")
    w("ICU project's LICENSE file (https://github.com/unicode-org/icu/blob/main/LICENSE; ICU 74 and")
    w("later call the same permissive terms \"Unicode License V3\").")
    if icu:
        w("The ICU project's LICENSE as installed on the build machine (%s):" % icu[-1])
        w("")
        w(open(icu[-1], encoding="utf-8", errors="replace").read().rstrip())
    w("")
for i, pkg in enumerate(sorted(linked, key=str.lower), start=2):
    n, v, url = info.get(pkg, (pkg, "?", ""))
    files = notice_files(pkg)
    if not files:
        die("no licence file found in checkout %s" % pkg)
    w(rule)
    w("%d. %s %s (%s)" % (i, n, v, url))
    w(rule)
    for f in files:
        w("")
        w("--- %s/%s ---" % (n, os.path.relpath(f, os.path.join(checkouts, pkg))))
        w("")
        w(open(f, encoding="utf-8", errors="replace").read().rstrip())
    w("")
sys.stdout.write("\n".join(out) + "\n")
sys.stderr.write("third-party-notices: %d packages linked (%s); not linked, left out: %s\n"
                 % (len(linked), ", ".join(sorted(linked, key=str.lower)), ", ".join(unused) or "none"))
PY

#!/usr/bin/python3
"""Runs a command under the seccomp part of relayd.service, for machines where systemd is not
PID 1: SystemCallFilter= (groups expanded by systemd-analyze, other calls fail with
SystemCallErrorNumber=EPERM), RestrictAddressFamilies= (other socket families fail with
EAFNOSUPPORT), MemoryDenyWriteExecute= (no mapping both writable and executable) and, as
libseccomp requires, NoNewPrivileges. Needs Debian's python3-seccomp.

Usage: unit_sandbox.py UNIT_FILE COMMAND [ARGS...]
"""
import errno, os, socket, subprocess, sys
import seccomp

unit_file, argv = sys.argv[1], sys.argv[2:]
settings = {}
for line in open(unit_file):
    line = line.strip()
    if "=" in line and not line.startswith("#"):
        k, v = line.split("=", 1)
        settings[k] = v

def expand(group, seen=set()):
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], capture_output=True, text=True, check=True).stdout
    names = set()
    for l in out.splitlines()[1:]:
        l = l.split("#")[0].strip()
        if not l or l in seen:
            continue
        if l.startswith("@"):
            seen.add(l); names |= expand(l, seen)
        else:
            names.add(l)
    return names

allowed = set()
for item in settings["SystemCallFilter"].split():
    allowed |= expand(item) if item.startswith("@") else {item}
families = {getattr(socket, f) for f in settings["RestrictAddressFamilies"].split()}
wx = settings.get("MemoryDenyWriteExecute") == "true"
errno_name = settings.get("SystemCallErrorNumber", "EPERM")

f = seccomp.SyscallFilter(defaction=seccomp.ERRNO(getattr(errno, errno_name)))
special = {"socket"} | ({"mmap", "mprotect", "pkey_mprotect"} if wx else set())
count = 0
for name in sorted(allowed - special):
    try:
        f.add_rule(seccomp.ALLOW, name); count += 1
    except Exception:
        pass  # not a syscall of this architecture
for fam in sorted(families):
    f.add_rule(seccomp.ALLOW, "socket", seccomp.Arg(0, seccomp.EQ, fam))
for fam in range(0, 64):
    if fam not in families:
        f.add_rule(seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, fam))
if wx:
    W, X = 0x2, 0x4  # PROT_WRITE, PROT_EXEC: allow every combination but both
    for sc in ("mmap", "mprotect", "pkey_mprotect"):
        for v in (0, W, X):
            f.add_rule(seccomp.ALLOW, sc, seccomp.Arg(2, seccomp.MASKED_EQ, W | X, v))
f.load()
sys.stderr.write("unit_sandbox: %d system calls allowed, socket families %s, W+X mappings %s\n"
                 % (count, sorted(int(x) for x in families), "refused" if wx else "allowed"))
os.execvp(argv[0], argv)

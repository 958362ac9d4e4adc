"""What the standalone Python suites (Tests/peers/proxy, Tests/peers/faults) share: the
PASS/FAIL/SKIP report, a free loopback port, the tail of a log."""

import os
import socket
import time


class Report:
    """One line per check; `counts` for the summary. A missing peer is a failure under
    RELAY_REQUIRE_PEERS=1, else a skip."""

    def __init__(self):
        self.counts = {"PASS": 0, "FAIL": 0, "SKIP": 0}
        self.t0 = time.monotonic()
        self.require = os.environ.get("RELAY_REQUIRE_PEERS") == "1"

    def line(self, status, name, detail=""):
        self.counts[status] += 1
        print(f"{status} {name}" + (f": {detail}" if detail else ""), flush=True)

    def ok(self, name, detail=""):
        self.line("PASS", name, detail)

    def fail(self, name, detail):
        self.line("FAIL", name, detail)

    def skip(self, name, reason):
        self.line("SKIP", name, reason)

    def check(self, name, cond, good, bad):
        (self.ok if cond else self.fail)(name, good if cond else bad)
        return cond

    def missing(self, name, reason):
        (self.fail if self.require else self.skip)(name, reason + (" (RELAY_REQUIRE_PEERS=1)" if self.require else ""))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return "(no log)"

#!/usr/bin/env python3
"""relayd vs nginx+nchan, same scenarios, same load generator, one run.

Called by Benchmarks/compare.sh (`make bench-compare`) after the release build.
Each scenario runs against a freshly started server (relayd, then nchan), one
server at a time, both on loopback. Writes the table between the load markers
of Docs/benchmarks.md when given --write.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import statistics
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELAYD_PORT = 18480
NCHAN_PORT = 18490  # fixed in Benchmarks/load/nginx-nchan.conf
START, END = "<!-- load:start -->", "<!-- load:end -->"


def log(*a):
    print("[compare]", *a, file=sys.stderr, flush=True)


def sh(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:
        return ""


# Pinned mode (the default): the server on CPU 0 with one event loop / one worker, the load
# generator on CPU 1, so neither takes the other's core. --unpinned keeps the old shared mode.
SERVER_CPU, GENERATOR_CPU = "0", "1"


def pin(cmd, cpu, pinned):
    return (["taskset", "-c", cpu] + cmd) if pinned else cmd


class Relayd:
    name = "relayd"

    def __init__(self, binary, pinned=True, label="relayd"):
        self.binary = binary
        self.pinned = pinned
        self.label = label  # column of the results (an A/B run has two relayd)

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="relayd-bench-")
        self.cmd = pin([self.binary, "--port", str(RELAYD_PORT), "--data-dir", self.dir,
                        "--site-max-connections", "20000", "--max-connections", "18000", "--log-level", "warning"], SERVER_CPU, self.pinned)
        env = dict(os.environ)
        if self.pinned:
            env["NIO_SINGLETON_GROUP_LOOP_COUNT"] = "1"  # one event loop, like nchan's one worker
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=open(os.path.join(self.dir, "stderr.log"), "w"), text=True, env=env)
        creds = {}
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            m = re.search(r"(site_key|publish_secret|jwt_secret):\s+(\S+)", line)
            if m:
                creds[m.group(1)] = m.group(2)
            if "listening on" in line:
                break
        if len(creds) != 3:
            raise SystemExit("relayd did not print the dev site's credentials")
        self.creds = creds
        wait_port(RELAYD_PORT)
        return self.proc.pid

    def args(self):
        return ["--target", "relayd", "--url", f"http://127.0.0.1:{RELAYD_PORT}", "--site-key", self.creds["site_key"],
                "--secret", self.creds["publish_secret"], "--jwt-secret", self.creds["jwt_secret"], "--server-pid", str(self.proc.pid)]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = open(os.path.join(self.dir, "stderr.log")).read()
        shutil.rmtree(self.dir, ignore_errors=True)
        return err


class Nchan:
    name = "nchan"

    def __init__(self, pinned=True):
        self.conf = os.path.join(ROOT, "Benchmarks", "load", "nginx-nchan.conf")
        self.pinned = pinned

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="nchan-bench-") + "/"
        conf = self.conf
        if self.pinned:
            conf = os.path.join(self.dir, "nginx-nchan.conf")
            text = re.sub(r"worker_processes\s+\d+;", "worker_processes 1;", open(self.conf).read())
            open(conf, "w").write(text)
        self.cmd = pin(["nginx", "-p", self.dir, "-c", conf, "-g", "daemon off;"], SERVER_CPU, self.pinned)
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "stderr.log"), "w"))
        wait_port(NCHAN_PORT)
        time.sleep(0.5)
        return self.proc.pid

    def args(self):
        return ["--target", "nchan", "--nchan-url", f"http://127.0.0.1:{NCHAN_PORT}", "--nchan-sub", "/sub", "--nchan-pub", "/pub",
                "--server-pid", str(self.proc.pid)]

    def stop(self):
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        err = ""
        for f in ("stderr.log", "error.log"):
            p = os.path.join(self.dir, f)
            if os.path.exists(p):
                err += open(p).read()
        shutil.rmtree(self.dir, ignore_errors=True)
        return err


def wait_port(port, timeout=30):
    import socket
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def run_scenario(relayctl, server, bench_args, pinned=True):
    pid = server.start()
    cmd = pin([relayctl, "bench"] + bench_args + server.args() + ["--json", "--verbose"] + (["--threads", "1"] if pinned else []),
              GENERATOR_CPU, pinned)
    shown = " ".join(["relayctl", "bench"] + bench_args + ["--target", server.name, "…"])
    log("run:", " ".join(cmd))
    load_before = os.getloadavg()[0]
    t0 = time.time()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    finally:
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_log = server.stop()
    secs = time.time() - t0
    generator_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        log(f"{server.name}: relayctl exited {p.returncode}")
        return {"error": p.stderr.strip().splitlines()[-1:] or ["failed"], "command": shown}, server_log
    result = json.loads(p.stdout.strip().splitlines()[-1])
    result["command"] = shown
    result["wall_s"] = round(secs, 1)
    result["generator_cpu_s"] = round(generator_cpu, 2)
    result["pinned"] = pinned
    result["loadavg_before"] = round(load_before, 2)
    result["server_log_lines"] = [l for l in server_log.splitlines() if l.strip()][-20:]
    return result, server_log


def machine():
    cpu = sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    mem = sh("free -g | awk '/Mem:/{print $2}'")
    nginx = sh("nginx -v 2>&1").replace("nginx version: ", "")
    nchan = sh("dpkg-query -W -f='${Version}' libnginx-mod-nchan")
    swift = sh("swift --version 2>&1 | head -1")
    return (f"{os.cpu_count()} cores ({cpu}), {mem} GiB RAM, {platform.platform()}, `ulimit -n` {sh('ulimit -n')}; "
            f"{nginx} with libnginx-mod-nchan {nchan}; {swift}")


def fmt(v, digits=0):
    if v is None:
        return "n/a"
    if isinstance(v, (int, float)):
        return f"{v:,.{digits}f}"
    return str(v)


def ratio(a, b, digits=2):
    try:
        return f"{a / b:.{digits}f}" if a is not None and b else "n/a"
    except Exception:
        return "n/a"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--relayctl", default=os.path.join(ROOT, ".build/release/relayctl"))
    ap.add_argument("--relayd", default=os.path.join(ROOT, ".build/release/relayd"))
    ap.add_argument("--write", help="markdown file to update between the load markers")
    ap.add_argument("--json-out", default=None, help="also save raw results here")
    ap.add_argument("--quick", action="store_true", help="smaller scenarios (smoke test)")
    ap.add_argument("--only", default="abcd", help="scenarios to run, e.g. 'ac'")
    ap.add_argument("--unpinned", action="store_true", help="do not pin: server and generator share both cores, relayd one event loop per core, nchan 2 workers")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each scenario per server, interleaved (median and spread reported)")
    ap.add_argument("--before", default=None, help="A/B mode: this relayd binary (an earlier build) instead of nchan; prints a before/after table, writes nothing")
    a = ap.parse_args()
    pinned = not a.unpinned
    if pinned and not shutil.which("taskset"):
        raise SystemExit("taskset not found (util-linux); use --unpinned")

    q = a.quick
    rates_a = "5,10,20,50" if q else "5,10,20,30,40,50,60,80,100,150,200,300,400,500,600,700,800,1000"
    scenarios = {
        "a": ["fanout", "--subscribers", "200" if q else "1000", "--channels", "1", "--payload", "1024",
              "--rate", rates_a, "--duration", "3" if q else "5", "--p99-limit", "50", "--publishers", "1", "--pipeline", "8", "--until-saturated"],
        "b": ["fanout", "--subscribers", "1000" if q else "10000", "--channels", "100" if q else "1000", "--payload", "1024",
              "--rate", "1000", "--duration", "5" if q else "20", "--publishers", "4", "--all-steps", "--p99-limit", "50"],
        "c": ["connections", "--connections", "1500" if q else "15000", "--channels", "1000", "--hold", "5",
              "--connect-rate", "5000", "--concurrency", "256"],
        "d": ["publish", "--rate", "0", "--duration", "3" if q else "5", "--publishers", "4", "--channels", "100", "--payload", "256"],
    }
    servers = [Relayd(a.relayd, pinned), Nchan(pinned)]
    if a.before:
        servers = [Relayd(a.relayd, pinned), Relayd(a.before, pinned, label="before")]
    started = datetime.datetime.now(datetime.timezone.utc)
    runs = {}
    for key in "cabd":
        if key not in a.only:
            continue
        for i in range(max(1, a.repeat)):
            # Interleaved, and the order flips each time, so drift in the machine hits both alike.
            for srv in (servers if i % 2 == 0 else servers[::-1]):
                r, _ = run_scenario(a.relayctl, srv, scenarios[key], pinned)
                runs.setdefault(key, {}).setdefault(getattr(srv, "label", srv.name), []).append(r)
                time.sleep(2)
    # The detailed table shows, per scenario and server, the run with the median headline figure.
    results = {k: {n: median_run(k, rs) for n, rs in v.items()} for k, v in runs.items()}

    if a.json_out:
        json.dump({"scenarios": scenarios, "pinned": pinned, "runs": runs}, open(a.json_out, "w"), indent=1)

    if a.before:
        print(render_ab(runs, a.relayd, a.before, started, pinned))
        return
    md = render(results, scenarios, started, machine(), q, pinned)
    md += "\n\n" + render_repeats(runs, scenarios, pinned)
    print(md)
    if a.write:
        path = a.write
        text = open(path).read() if os.path.exists(path) else "# Benchmarks\n"
        block = START + "\n" + md + "\n" + END
        if START in text and END in text:
            text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
        else:
            text = text.rstrip("\n") + "\n\n## relayd vs nginx + nchan (issue 7)\n\n" + block + "\n"
        open(path, "w").write(text)
        log("wrote", path)


def render_ab(runs, after, before, started, pinned):
    """A/B table: the same scenarios against two relayd builds, interleaved; median (min–max)."""
    names = {"a": "(a) max sustained deliveries/s (p99 ≤ 50 ms)", "b": "(b) deliveries/s at 1,000 publishes/s",
             "c": "(c) connects/s", "d": "(d) publishes/s"}
    def cell(vals, digits=0):
        vals = [v for v in vals if v is not None]
        if not vals:
            return "n/a", None
        m = statistics.median(vals)
        return f"{m:,.{digits}f} ({min(vals):,.{digits}f}–{max(vals):,.{digits}f})", m
    lines = [f"A/B {started:%Y-%m-%d %H:%M} UTC, {'pinned' if pinned else 'unpinned'}: after = {after}, before = {before}",
             "", "| scenario | after | before | after/before |", "|---|---|---|---|"]
    for key in "abcd":
        if key not in runs:
            continue
        ca, ma = cell([headline(key, r) for r in runs[key].get("relayd", [])])
        cb, mb = cell([headline(key, r) for r in runs[key].get("before", [])])
        lines.append(f"| {names[key]} | {ca} | {cb} | {ma / mb:.2f} |" if ma and mb else f"| {names[key]} | {ca} | {cb} | n/a |")
        if key == "c":
            per1000 = lambda r: (float(r["server_cpu_s"]) / float(r["connected"]) * 1e6) if r.get("server_cpu_s") is not None and r.get("connected") else None
            for label, fn, digits in (("c: server CPU ms per 1,000 connections", per1000, 1),
                                      ("c: connect p99 ms", lambda r: _get(r, "connect_latency", "p99_ms"), 1)):
                ca, ma = cell([fn(r) for r in runs[key].get("relayd", [])], digits)
                cb, mb = cell([fn(r) for r in runs[key].get("before", [])], digits)
                lines.append(f"| {label} | {ca} | {cb} | {ma / mb:.2f} |" if ma and mb else f"| {label} | {ca} | {cb} | n/a |")
        if key in "ab":
            ca, ma = cell([cpu_us_per_delivery(key, r) for r in runs[key].get("relayd", [])], 2)
            cb, mb = cell([cpu_us_per_delivery(key, r) for r in runs[key].get("before", [])], 2)
            lines.append(f"| {key}: server CPU µs per delivery | {ca} | {cb} | {ma / mb:.2f} |" if ma and mb else f"| {key}: CPU µs/delivery | {ca} | {cb} | n/a |")
    return "\n".join(lines)


def headline(key, r):
    """The figure a run is ranked by: (a) max sustained deliveries/s, (b) deliveries/s, (c) connects/s, (d) publishes/s."""
    try:
        if key == "a":
            return float(r.get("max_sustained_deliveries_per_s") or 0)
        if key == "b":
            return float((r.get("steps") or [{}])[0].get("deliveries_per_s") or 0)
        if key == "c":
            return float(r.get("connects_per_s") or 0)
        return float(r.get("publishes_per_s") or 0)
    except (TypeError, ValueError, AttributeError):
        return 0.0


def median_run(key, rs):
    ranked = sorted(rs, key=lambda r: headline(key, r))
    return ranked[(len(ranked) - 1) // 2]


def cpu_us_per_delivery(key, r):
    """Server CPU µs per delivery: (a) at the best sustained step, (b) over the run."""
    try:
        if key == "a":
            s = step_best(r)
            return float(s["server_cpu_per_s"]) / float(s["deliveries_per_s"]) * 1e6 if s else None
        if key == "b":
            s = (r.get("steps") or [{}])[0]
            return float(s["server"]["cpu_s"]) / (float(s["deliveries_per_s"]) * float(s["wall_s"])) * 1e6
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return None


def generator_cores(r):
    try:
        return float(r["generator_cpu_s"]) / float(r["wall_s"])
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def spread(values, digits=0):
    v = [x for x in values if x is not None]
    if not v:
        return "n/a"
    med = statistics.median(v)
    return f"{fmt(med, digits)} ({fmt(min(v), digits)}–{fmt(max(v), digits)})" if len(v) > 1 else fmt(med, digits)


def render_repeats(runs, scenarios, pinned):
    out = [f"Repeats ({'pinned: server on CPU 0 with one event loop (relayd, NIO_SINGLETON_GROUP_LOOP_COUNT=1) or one worker (nchan), load generator on CPU 1' if pinned else 'unpinned'}), "
           "median (min–max) over the runs; ratio = relayd ÷ nchan of the medians (for CPU: nchan ÷ relayd, higher is better for relayd):", "",
           "| figure | relayd | nginx+nchan | ratio | runs |", "|---|---:|---:|---:|---:|"]

    def row(label, key, fn, digits=0, invert=False):
        rs, ns = runs.get(key, {}).get("relayd", []), runs.get(key, {}).get("nchan", [])
        if not rs and not ns:
            return
        rv, nv = [fn(r) for r in rs], [fn(r) for r in ns]
        rm = statistics.median([x for x in rv if x is not None]) if any(x is not None for x in rv) else None
        nm = statistics.median([x for x in nv if x is not None]) if any(x is not None for x in nv) else None
        out.append(f"| {label} | {spread(rv, digits)} | {spread(nv, digits)} | {ratio(nm, rm) if invert else ratio(rm, nm)} | {len(rs)} / {len(ns)} |")

    g = lambda *p: (lambda r: _get(r, *p))
    row("(a) max sustained deliveries/s (p99 ≤ 50 ms)", "a", lambda r: headline("a", r))
    row("(a) server CPU µs per delivery at that step", "a", lambda r: cpu_us_per_delivery("a", r), 2, invert=True)
    row("(a) load generator, cores (whole run)", "a", generator_cores, 2)
    row("(b) deliveries/s at 1,000 publishes/s", "b", lambda r: headline("b", r))
    row("(b) server CPU µs per delivery", "b", lambda r: cpu_us_per_delivery("b", r), 2, invert=True)
    row("(b) delivery p99 ms", "b", lambda r: _get((r.get("steps") or [{}])[0], "latency", "p99_ms"), 2, invert=True)
    row("(b) load generator, cores", "b", generator_cores, 2)
    row("(c) connects/s (JWT verified on relayd)", "c", lambda r: headline("c", r))
    row("(c) connect p99 ms", "c", g("connect_latency", "p99_ms"), 1, invert=True)
    row("(c) server CPU ms per 1,000 connections (ramp and hold)", "c",
        lambda r: (float(r["server_cpu_s"]) / float(r["connected"]) * 1e6) if r.get("server_cpu_s") is not None and r.get("connected") else None, 1, invert=True)
    row("(c) load generator, cores", "c", generator_cores, 2)
    row("(d) publishes/s", "d", lambda r: headline("d", r))
    return "\n".join(out)


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    try:
        return float(d)
    except (TypeError, ValueError):
        return None


def step_best(r):
    """The sustained step with the most deliveries/s."""
    best = None
    for s in r.get("steps", []):
        if s.get("sustained") and (best is None or float(s["deliveries_per_s"]) > float(best["deliveries_per_s"])):
            best = s
    return best


def first_failure(r):
    for s in r.get("steps", []):
        if not s.get("sustained"):
            return s
    return None


def render(results, scenarios, started, mach, quick, pinned=True):
    out = []
    out.append(f"Machine: {mach}. Run: {started:%Y-%m-%d %H:%M} UTC{' (quick mode: scaled down)' if quick else ''}; "
               f"{'pinned (server CPU 0, generator CPU 1)' if pinned else 'unpinned'}. The table shows each server's median run.")
    out.append("")
    out.append("| scenario | metric | relayd | nginx+nchan | relayd/nchan |")
    out.append("|---|---|---:|---:|---:|")
    A, B, C = results.get("a", {}), results.get("b", {}), results.get("c", {})

    def g(d, *path):
        for p in path:
            if d is None:
                return None
            d = d.get(p) if isinstance(d, dict) else None
        try:
            return float(d)
        except (TypeError, ValueError):
            return None

    if A:
        ra, na = A.get("relayd", {}), A.get("nchan", {})
        rv, nv = g(ra, "max_sustained_deliveries_per_s"), g(na, "max_sustained_deliveries_per_s")
        n_subs = scenarios["a"][2]
        out.append(f"| (a) {n_subs} subs, 1 channel, 1 KiB | max sustained deliveries/s (p99 ≤ 50 ms, no loss) | {fmt(rv)} | {fmt(nv)} | {ratio(rv, nv)} |")
        rl, nl = g(ra, "max_lossless_deliveries_per_s"), g(na, "max_lossless_deliveries_per_s")
        out.append(f"| | max deliveries/s at any p99 (no loss, rate reached) | {fmt(rl)} | {fmt(nl)} | {ratio(rl, nl)} |")
        rb, nb = step_best(ra), step_best(na)
        out.append(f"| | publish rate of that step (/s) | {fmt(g(rb, 'target_publish_rate'))} | {fmt(g(nb, 'target_publish_rate'))} | |")
        out.append(f"| | p99 at that step (ms) | {fmt(g(rb, 'latency', 'p99_ms'), 2)} | {fmt(g(nb, 'latency', 'p99_ms'), 2)} | {ratio(g(rb, 'latency', 'p99_ms'), g(nb, 'latency', 'p99_ms'))} |")
        out.append(f"| | server CPU cores at that step | {fmt(g(rb, 'server_cpu_per_s'), 2)} | {fmt(g(nb, 'server_cpu_per_s'), 2)} | |")
        rf, nf = first_failure(ra), first_failure(na)
        out.append(f"| | first step not sustained | {describe_fail(rf)} | {describe_fail(nf)} | |")
        rs_, ns_ = last_step(ra), last_step(na)
        out.append(f"| | last step (where the ramp stopped) | {describe_fail(rs_)} | {describe_fail(ns_)} | |")
    if B:
        rb, nb = B.get("relayd", {}), B.get("nchan", {})
        rs = (rb.get("steps") or [{}])[0]
        ns = (nb.get("steps") or [{}])[0]
        subs, chans = scenarios["b"][2], scenarios["b"][4]
        out.append(f"| (b) {subs} subs on {chans} channels, 1,000 publishes/s, 1 KiB | deliveries/s | {fmt(g(rs, 'deliveries_per_s'))} | {fmt(g(ns, 'deliveries_per_s'))} | {ratio(g(rs, 'deliveries_per_s'), g(ns, 'deliveries_per_s'))} |")
        for k, label in (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"), ("p999_ms", "p99.9"), ("max_ms", "max")):
            out.append(f"| | latency {label} (ms) | {fmt(g(rs, 'latency', k), 2)} | {fmt(g(ns, 'latency', k), 2)} | {ratio(g(rs, 'latency', k), g(ns, 'latency', k))} |")
        out.append(f"| | server CPU seconds (cores) | {fmt(g(rs, 'server', 'cpu_s'), 1)} ({fmt(g(rs, 'server_cpu_per_s'), 2)}) | {fmt(g(ns, 'server', 'cpu_s'), 1)} ({fmt(g(ns, 'server_cpu_per_s'), 2)}) | {ratio(g(rs, 'server', 'cpu_s'), g(ns, 'server', 'cpu_s'))} |")
        out.append(f"| | server RSS (MiB) | {fmt(mib(g(rb, 'server_rss_bytes')), 1)} | {fmt(mib(g(nb, 'server_rss_bytes')), 1)} | {ratio(g(rb, 'server_rss_bytes'), g(nb, 'server_rss_bytes'))} |")
        out.append(f"| | lost / duplicated / closed | {lost_dup(rb, rs)} | {lost_dup(nb, ns)} | |")
    if C:
        rc, nc = C.get("relayd", {}), C.get("nchan", {})
        n = scenarios["c"][2]
        out.append(f"| (c) {n} idle connections | open after hold | {fmt(g(rc, 'open_after_hold'))} | {fmt(g(nc, 'open_after_hold'))} | |")
        rp, np_ = g(rc, "server_rss_per_connection_bytes"), g(nc, "server_rss_per_connection_bytes")
        out.append(f"| | server RSS per connection (KiB) | {fmt(kib(rp), 2)} | {fmt(kib(np_), 2)} | {ratio(rp, np_)} |")
        out.append(f"| | server RSS before → after (MiB) | {fmt(mib(g(rc, 'server_rss_before_bytes')), 1)} → {fmt(mib(g(rc, 'server_rss_after_bytes')), 1)} | {fmt(mib(g(nc, 'server_rss_before_bytes')), 1)} → {fmt(mib(g(nc, 'server_rss_after_bytes')), 1)} | |")
        out.append(f"| | connect latency p50 / p99 (ms) | {fmt(g(rc, 'connect_latency', 'p50_ms'), 2)} / {fmt(g(rc, 'connect_latency', 'p99_ms'), 2)} | {fmt(g(nc, 'connect_latency', 'p50_ms'), 2)} / {fmt(g(nc, 'connect_latency', 'p99_ms'), 2)} | |")
        out.append(f"| | connects/s during the ramp | {fmt(g(rc, 'connects_per_s'))} | {fmt(g(nc, 'connects_per_s'))} | |")
    if results.get("d"):
        rd, nd = results["d"].get("relayd", {}), results["d"].get("nchan", {})
        out.append(f"| (d) publishes, no subscribers, 4 connections, 256 B | publishes/s (closed loop) | {fmt(g(rd, 'publishes_per_s'))} | {fmt(g(nd, 'publishes_per_s'))} | {ratio(g(rd, 'publishes_per_s'), g(nd, 'publishes_per_s'))} |")
        out.append(f"| | publish latency p50 / p99 (ms) | {fmt(g(rd, 'latency', 'p50_ms'), 2)} / {fmt(g(rd, 'latency', 'p99_ms'), 2)} | {fmt(g(nd, 'latency', 'p50_ms'), 2)} / {fmt(g(nd, 'latency', 'p99_ms'), 2)} | |")
        out.append(f"| | server CPU seconds | {fmt(g(rd, 'server', 'cpu_s'), 2)} | {fmt(g(nd, 'server', 'cpu_s'), 2)} | {ratio(g(rd, 'server', 'cpu_s'), g(nd, 'server', 'cpu_s'))} |")
    out.append("")
    # Step details for (a).
    if A:
        out.append("Scenario (a) steps: target publish rate (achieved) → deliveries/s, delivery p99 ms, server CPU cores, publish request p50 ms; `*` = not sustained:")
        out.append("")
        for name in ("relayd", "nchan"):
            r = A.get(name, {})
            parts = []
            for s in r.get("steps", []):
                parts.append(f"{fmt(g(s, 'target_publish_rate'))} ({fmt(g(s, 'publish_rate'))}) → {fmt(g(s, 'deliveries_per_s'))}, {fmt(g(s, 'latency', 'p99_ms'), 1)}, {fmt(g(s, 'server_cpu_per_s'), 2)}, {fmt(g(s, 'publish_latency', 'p50_ms'), 1)}{'' if s.get('sustained') else '*'}")
            out.append(f"- {name}: " + ("; ".join(parts) if parts else str(r.get("error", "no result"))))
        out.append("")
    out.append("Commands (each against a freshly started server; `…` = the target's URL, credentials and `--server-pid`):")
    out.append("")
    for key in "cabd":
        if key in results:
            out.append(f"- ({key}) `relayctl bench {' '.join(scenarios[key])} --target relayd|nchan … --json`")
    out.append(f"- relayd: `relayd --port {RELAYD_PORT} --data-dir <tmp> --site-max-connections 20000 --max-connections 18000 --log-level warning`")
    out.append(f"- nginx: `nginx -p <tmp>/ -c Benchmarks/load/nginx-nchan.conf -g 'daemon off;'` (listens on 127.0.0.1:{NCHAN_PORT})")
    loads = [f"{k}/{s}: {results[k][s].get('loadavg_before')}" for k in results for s in results[k]]
    out.append("")
    out.append("Load average (1 min) when each run started: " + ", ".join(loads) + ".")
    errs = []
    for k in results:
        for s in results[k]:
            r = results[k][s]
            if "error" in r:
                errs.append(f"({k}) {s}: {r['error']}")
            if r.get("first_connect_error"):
                errs.append(f"({k}) {s} first connect error: {r['first_connect_error']}")
            if r.get("server_log_lines"):
                errs.append(f"({k}) {s} server log: " + " / ".join(r["server_log_lines"][-3:])[:400])
    if errs:
        out.append("")
        out.append("Errors and server log tails:")
        out.append("")
        out += [f"- {e}" for e in errs]
    return "\n".join(out)


def last_step(r):
    steps = r.get("steps") or []
    return steps[-1] if steps else None


def describe_fail(s):
    if not s:
        return "none (ramp ended)"
    return f"{fmt(float(s['target_publish_rate']))}/s: {s.get('reason', '') or 'sustained'}".replace("|", "/")


def lost_dup(r, s):
    closes = s.get("closes", {}) if isinstance(s, dict) else {}
    c = sum(closes.values()) if closes else 0
    return f"{r.get('total_lost', 'n/a')} / {r.get('total_duplicates', 'n/a')} / {c}"


def mib(b):
    return None if b is None else b / 1048576


def kib(b):
    return None if b is None else b / 1024


if __name__ == "__main__":
    main()

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


class Relayd:
    name = "relayd"

    def __init__(self, binary):
        self.binary = binary

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="relayd-bench-")
        self.cmd = [self.binary, "--port", str(RELAYD_PORT), "--data-dir", self.dir,
                    "--site-max-connections", "20000", "--max-connections", "18000", "--log-level", "warning"]
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=open(os.path.join(self.dir, "stderr.log"), "w"), text=True)
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

    def __init__(self):
        self.conf = os.path.join(ROOT, "Benchmarks", "load", "nginx-nchan.conf")

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="nchan-bench-") + "/"
        self.cmd = ["nginx", "-p", self.dir, "-c", self.conf, "-g", "daemon off;"]
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


def run_scenario(relayctl, server, bench_args):
    pid = server.start()
    cmd = [relayctl, "bench"] + bench_args + server.args() + ["--json", "--verbose"]
    shown = " ".join(["relayctl", "bench"] + bench_args + ["--target", server.name, "…"])
    log("run:", " ".join(cmd))
    load_before = os.getloadavg()[0]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    finally:
        server_log = server.stop()
    secs = time.time() - t0
    sys.stderr.write(p.stderr)
    if p.returncode != 0:
        log(f"{server.name}: relayctl exited {p.returncode}")
        return {"error": p.stderr.strip().splitlines()[-1:] or ["failed"], "command": shown}, server_log
    result = json.loads(p.stdout.strip().splitlines()[-1])
    result["command"] = shown
    result["wall_s"] = round(secs, 1)
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
    a = ap.parse_args()

    q = a.quick
    rates_a = "5,10,20,50" if q else "5,10,20,30,40,50,60,80,100,150,200,300,400,600,800,1000"
    scenarios = {
        "a": ["fanout", "--subscribers", "200" if q else "1000", "--channels", "1", "--payload", "1024",
              "--rate", rates_a, "--duration", "3" if q else "5", "--p99-limit", "50", "--publishers", "1", "--pipeline", "8", "--until-saturated"],
        "b": ["fanout", "--subscribers", "1000" if q else "10000", "--channels", "100" if q else "1000", "--payload", "1024",
              "--rate", "1000", "--duration", "5" if q else "20", "--publishers", "4", "--all-steps", "--p99-limit", "50"],
        "c": ["connections", "--connections", "1500" if q else "15000", "--channels", "1000", "--hold", "5",
              "--connect-rate", "5000", "--concurrency", "256"],
        "d": ["publish", "--rate", "0", "--duration", "3" if q else "5", "--publishers", "4", "--channels", "100", "--payload", "256"],
    }
    servers = [Relayd(a.relayd), Nchan()]
    started = datetime.datetime.now(datetime.timezone.utc)
    results = {}
    for key in "cabd":
        if key not in a.only:
            continue
        for s in servers:
            r, _ = run_scenario(a.relayctl, s, scenarios[key])
            results.setdefault(key, {})[s.name] = r
            time.sleep(2)

    if a.json_out:
        json.dump({"scenarios": scenarios, "results": results}, open(a.json_out, "w"), indent=1)

    md = render(results, scenarios, started, machine(), q)
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


def render(results, scenarios, started, mach, quick):
    out = []
    out.append(f"Machine: {mach}. Run: {started:%Y-%m-%d %H:%M} UTC{' (quick mode: scaled down)' if quick else ''}.")
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

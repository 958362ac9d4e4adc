#!/usr/bin/env python3
"""Two nodes on one Redis: relayd vs nginx + nchan, and relayd one node vs two (issue 14, item 6).

`make bench-cluster` (Benchmarks/cluster/run.sh) builds relayd and relayctl in release mode and
runs this file. Same load generator as `make bench-compare` (`relayctl bench fanout`, driven with
Benchmarks/compare.py's helpers), one run:

  ramp   fan-out-heavy: 2,000 subscribers on 4 channels, 1 KiB, publish rate stepped up until
         saturated; the figure is the most deliveries/s of a step with p99 <= 50 ms and no loss,
         and the p99 at fixed steps.
  fixed  10,000 subscribers on 1,000 channels, 1,000 publishes/s, 1 KiB: latency at a fixed rate
         with every node subscribed to 1,000 Redis channels.
  ramp1  bench-compare's scenario (a): 1,000 subscribers on one channel, one publish connection.

against three clusters, each started fresh for every run with its own redis-server:

  relayd x2   two relayd (--broker redis://…, each its own --data-dir and port, one event loop)
  nchan x2    two nginx + nchan (Benchmarks/cluster/nginx-nchan-redis.conf: one worker, Redis
              "distributed" storage mode)
  relayd x1   one relayd on the same kind of Redis

Subscribers are spread over the nodes, publishes go to the first node, so deliveries to the
second node's subscribers cross Redis. relayctl speaks to one host:port, so it runs with
Benchmarks/cluster/split.c preloaded (it rewrites connect(2) to the nodes' ports; see there).
Scenarios are repeated (--repeat, interleaved, order flipped each round) and reported as median
(min–max). Every process the harness starts is stopped by it (also on Ctrl-C, SIGTERM, errors);
everything listens on 127.0.0.1.
"""
import argparse
import datetime
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
sys.dont_write_bytecode = True  # no __pycache__ next to compare.py
import compare as C  # noqa: E402  (Benchmarks/compare.py: helpers only; its main() is not run)

START, END = "<!-- cluster:start -->", "<!-- cluster:end -->"
SECTION = "## Two nodes on Redis (issue 14)"
SOURCES = 16  # relayctl --sources; split.c sends octets 1-8 to node 0, 9-16 to node 1


def log(*a):
    print("[cluster]", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Processes: every one is registered, and stopped in reverse order by stop_all().

class Proc:
    live = []

    def __init__(self, name, cmd, cwd, env=None, stop_signal=signal.SIGTERM, stdout=None):
        self.name, self.cmd, self.dir, self.stop_signal = name, cmd, cwd, stop_signal
        self.err_path = os.path.join(cwd, "stderr.log")
        # Own session: a Ctrl-C in the terminal reaches the harness only, which then stops
        # these in order (and nginx gets SIGQUIT, not the SIGINT fast shutdown).
        self.p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=stdout or subprocess.DEVNULL,
                                  stderr=open(self.err_path, "w"), start_new_session=True)
        Proc.live.append(self)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            try:
                self.p.send_signal(self.stop_signal)
                self.p.wait(20)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
            except ProcessLookupError:
                pass
        if self in Proc.live:
            Proc.live.remove(self)
        try:
            return open(self.err_path).read()
        except OSError:
            return ""

    @classmethod
    def stop_all(cls):
        for p in reversed(list(cls.live)):
            try:
                p.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {p.name}: {e}")


SCRATCH = []


def scratch(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    SCRATCH.append(d)
    return d


def cleanup():
    Proc.stop_all()
    for d in SCRATCH:
        shutil.rmtree(d, ignore_errors=True)
    SCRATCH.clear()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def reserve_port():
    """A port bound (not listening) for the duration: connects to it are rewritten by split.c."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


def pin(cmd, cpus):
    return (["taskset", "-c", cpus] + cmd) if cpus else cmd


# ---------------------------------------------------------------------------------------------
# Placement on the 2 cores. "nodes" = the server processes, one event loop / worker each.

PLACEMENTS = {
    # Each node has a core of its own; Redis and the load generator float over both.
    "spread": {"node0": "0", "node1": "1", "redis": None, "generator": None, "gen_threads": 2},
    # compare.py's convention: every server process (nodes and Redis) on CPU 0, the generator on
    # CPU 1. The cluster then has one core whatever its node count: this shows the cost of the
    # Redis hop, not scaling.
    "server0": {"node0": "0", "node1": "0", "redis": "0", "generator": "1", "gen_threads": 1},
}


# ---------------------------------------------------------------------------------------------
# Servers

class Redis:
    def __init__(self, cpus):
        self.cpus = cpus

    def start(self):
        self.dir = scratch("cluster-redis-")
        self.port = free_port()
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", self.dir, "--daemonize", "no", "--protected-mode", "yes", "--loglevel", "warning"]
        self.proc = Proc("redis", pin(cmd, self.cpus), self.dir)
        C.wait_port(self.port)
        return self

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def stop(self):
        return self.proc.stop()


def seed_site(relayd):
    """A data directory with the dev site; every relayd node starts from a copy of it (one site, as
    MultiNodeTests does). Returns (dir, credentials)."""
    d = scratch("cluster-seed-")
    port = free_port()
    out = open(os.path.join(d, "stdout.log"), "w")
    # The site's connection limit is stored with it when it is created: seed with the run's limits.
    p = Proc("relayd-seed", [relayd, "--port", str(port), "--data-dir", d, "--site-max-connections", "20000",
                             "--max-connections", "18000", "--log-level", "warning"], d, stdout=out)
    try:
        C.wait_port(port)
        creds, deadline = {}, time.time() + 20
        while time.time() < deadline and len(creds) < 3:
            for line in open(os.path.join(d, "stdout.log")):
                m = re.search(r"(site_key|publish_secret|jwt_secret):\s+(\S+)", line)
                if m:
                    creds[m.group(1)] = m.group(2)
            time.sleep(0.1)
    finally:
        p.stop()
    if len(creds) != 3:
        raise SystemExit("relayd did not print the dev site's credentials")
    for f in ("stdout.log", "stderr.log"):
        os.unlink(os.path.join(d, f))
    return d, creds


class RelaydCluster:
    kind = "relayd"

    def __init__(self, binary, nodes, seed, creds):
        self.binary, self.nodes, self.seed, self.creds = binary, nodes, seed, creds
        self.label = f"relayd ×{nodes}"

    def start(self, redis, placement):
        self.procs, self.ports = [], []
        env = dict(os.environ, NIO_SINGLETON_GROUP_LOOP_COUNT="1")
        for i in range(self.nodes):
            d = scratch(f"cluster-relayd{i}-")
            shutil.rmtree(d)
            shutil.copytree(self.seed, d)
            port = free_port()
            cmd = [self.binary, "--port", str(port), "--data-dir", d, "--broker", redis.url, "--node-id", f"n{i}",
                   "--site-max-connections", "20000", "--max-connections", "18000", "--log-level", "warning"]
            self.procs.append(Proc(f"relayd{i}", pin(cmd, placement[f"node{i}"]), d, env=env))
            self.ports.append(port)
        for port in self.ports:
            C.wait_port(port)
            wait_ready(f"http://127.0.0.1:{port}/readyz")
        return self

    def bench_args(self, vport):
        return ["--target", "relayd", "--url", f"http://127.0.0.1:{vport}", "--site-key", self.creds["site_key"],
                "--secret", self.creds["publish_secret"], "--jwt-secret", self.creds["jwt_secret"]]

    def node_pids(self):
        return [[p.pid] for p in self.procs]

    def stop(self):
        return "".join(p.stop() for p in reversed(self.procs))


class NchanCluster:
    kind = "nchan"

    def __init__(self, nodes):
        self.nodes = nodes
        self.label = f"nchan ×{nodes}"
        self.template = open(os.path.join(HERE, "nginx-nchan-redis.conf")).read()

    def start(self, redis, placement):
        self.procs, self.ports = [], []
        for i in range(self.nodes):
            d = scratch(f"cluster-nchan{i}-") + "/"
            port = free_port()
            conf = os.path.join(d, "nginx.conf")
            open(conf, "w").write(self.template.replace("@PORT@", str(port)).replace("@REDIS@", redis.url))
            cmd = ["nginx", "-p", d, "-c", conf, "-g", "daemon off;"]
            self.procs.append(Proc(f"nginx{i}", pin(cmd, placement[f"node{i}"]), d, stop_signal=signal.SIGQUIT))
            self.ports.append(port)
        for port in self.ports:
            C.wait_port(port)
        time.sleep(0.5)
        return self

    def bench_args(self, vport):
        return ["--target", "nchan", "--nchan-url", f"http://127.0.0.1:{vport}", "--nchan-sub", "/sub", "--nchan-pub", "/pub"]

    def node_pids(self):
        # master + its worker (the worker does the work; taskset pinned both)
        return [[p.pid] + children(p.pid) for p in self.procs]

    def stop(self):
        out = ""
        for p in reversed(self.procs):
            out += p.stop()
            try:
                out += open(os.path.join(p.dir, "error.log")).read()
            except OSError:
                pass
        return out


def wait_ready(url, timeout=30):
    deadline = time.time() + timeout
    last = ""
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception as e:
            last = str(e)
        time.sleep(0.1)
    raise SystemExit(f"{url} not ready: {last}")


def children(pid):
    try:
        return [int(c) for c in open(f"/proc/{pid}/task/{pid}/children").read().split()]
    except OSError:
        return []


# ---------------------------------------------------------------------------------------------
# CPU sampling from /proc (10 ms ticks), twice a second, per process and for the whole machine.

TICK = os.sysconf("SC_CLK_TCK")


LAST_CPU = {}


def proc_cpu(pids):
    """utime + stime of `pids`; a process that has exited keeps its last reading."""
    total = 0.0
    for pid in pids:
        try:
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            LAST_CPU[pid] = (int(f[11]) + int(f[12])) / TICK
        except (OSError, IndexError, ValueError):
            pass
        total += LAST_CPU.get(pid, 0.0)
    return total


def machine_cpu():
    f = open("/proc/stat").readline().split()[1:]
    v = [int(x) for x in f]
    idle = v[3] + v[4]
    return (sum(v[:8]) - idle) / TICK, sum(v[:8]) / TICK


class Sampler(threading.Thread):
    def __init__(self, groups, interval=0.5):
        super().__init__(daemon=True)
        self.groups, self.interval = groups, interval  # groups: label -> [pids]
        LAST_CPU.clear()
        self.samples, self.stopped = [], threading.Event()

    def snap(self):
        busy, total = machine_cpu()
        return (time.time(), {k: proc_cpu(v) for k, v in self.groups.items()}, busy, total)

    def run(self):
        while not self.stopped.is_set():
            self.samples.append(self.snap())
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
        self.join()
        self.samples.append(self.snap())

    def totals(self):
        a, b = self.samples[0], self.samples[-1]
        wall = b[0] - a[0]
        return {"wall_s": round(wall, 2), **{k: round(b[1][k] - a[1][k], 2) for k in b[1]},
                "machine_busy_s": round(b[2] - a[2], 2)}

    def busiest(self, window=3.0):
        """CPU cores of each process in the `window` seconds in which the machine was busiest."""
        best, s = None, self.samples
        j = 0
        for i in range(len(s)):
            while j < len(s) and s[j][0] - s[i][0] < window:
                j += 1
            if j >= len(s):
                break
            dt = s[j][0] - s[i][0]
            cores = {k: (s[j][1][k] - s[i][1][k]) / dt for k in s[i][1]}
            cores["machine"] = (s[j][2] - s[i][2]) / dt
            if best is None or cores["machine"] > best["machine"]:
                best = cores
        return {k: round(v, 2) for k, v in (best or {}).items()}


# ---------------------------------------------------------------------------------------------
# One run

def run_one(relayctl, split_so, cluster, bench, placement, timeout):
    """Fresh redis-server and nodes, one `relayctl bench` run with split.c preloaded, everything
    stopped again. Returns relayctl's JSON plus the harness's own CPU samples."""
    redis = Redis(placement["redis"]).start()
    holder = None
    try:
        cluster.start(redis, placement)
        holder, vport = reserve_port()
        report = os.path.join(redis.dir, "split-report.txt")
        node_pids = cluster.node_pids()
        all_pids = [p for ps in node_pids for p in ps] + [redis.proc.pid]
        cmd = [relayctl, "bench"] + bench + cluster.bench_args(vport) + \
            [a for p in all_pids for a in ("--server-pid", str(p))] + \
            ["--sources", str(SOURCES), "--threads", str(placement["gen_threads"]), "--json", "--verbose"]
        env = dict(os.environ, LD_PRELOAD=split_so, RELAY_SPLIT_PORT=str(vport),
                   RELAY_SPLIT_NODES=",".join(map(str, cluster.ports)), RELAY_SPLIT_SOURCES=str(SOURCES),
                   RELAY_SPLIT_PUBLISH="0", RELAY_SPLIT_REPORT=report)
        log(f"run {cluster.label}:", " ".join(["relayctl", "bench"] + bench))
        load_before = os.getloadavg()[0]
        groups = {f"node{i}": ps for i, ps in enumerate(node_pids)}
        groups["redis"] = [redis.proc.pid]
        gen_dir = scratch("cluster-gen-")
        out_path = os.path.join(gen_dir, "out.json")
        t0 = time.time()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        gen = Proc("relayctl", pin(cmd, placement["generator"]), gen_dir, env=env, stdout=open(out_path, "w"))
        groups["generator"] = [gen.pid]
        sampler = Sampler(groups)
        sampler.start()
        try:
            rc = gen.p.wait(timeout)
        except subprocess.TimeoutExpired:
            log(f"{cluster.label}: relayctl over {timeout} s, killed")
            gen.p.kill()
            rc = gen.p.wait()
        finally:
            sampler.stop()
            ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            gen_err = gen.stop()
        wall = time.time() - t0
        stdout = open(out_path).read()
    finally:
        server_log = cluster.stop() if getattr(cluster, "procs", None) else ""
        redis.stop()
        if holder:
            holder.close()
    sys.stderr.write("".join(l + "\n" for l in gen_err.splitlines() if "[bench]" not in l or "rate" in l))
    split = open(report).read().strip() if os.path.exists(report) else ""
    r = {"cluster": cluster.label, "command": " ".join(["relayctl", "bench"] + bench), "loadavg_before": round(load_before, 2),
         "wall_s": round(wall, 1), "cpu": sampler.totals(), "busiest": sampler.busiest(),
         "generator_cpu_s": round((ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime), 2),
         "split": split, "server_log_lines": [l for l in server_log.splitlines() if l.strip() and "[info]" not in l][-10:]}
    if rc != 0 or not stdout.strip():
        log(f"{cluster.label}: relayctl exited {rc}")
        r["error"] = (gen_err.strip().splitlines() or ["failed"])[-1]
        return r
    r.update(json.loads(stdout.strip().splitlines()[-1]))
    return r


# ---------------------------------------------------------------------------------------------
# Scenarios. Ramps step the publish rate up (`--until-saturated`); the figure is the most
# deliveries/s of a sustained step (p99 <= 50 ms, no loss, no close, rate reached).

def scenarios(quick):
    d = "2" if quick else "4"
    fanout = ["fanout", "--subscribers", "2000", "--channels", "4", "--payload", "1024", "--publishers", "4",
              "--pipeline", "8", "--rate", "100,200,400" if quick else "50,100,150,200,250,300,400,500,600,800,1000,1200",
              "--duration", d, "--p99-limit", "50", "--until-saturated"]
    return {
        # Fan-out-heavy, the goal figures: 2,000 subscribers on 4 channels (500 each, half on each
        # node), 4 publish connections (a channel always uses the same one), 8 pipelined each.
        "ramp": {"title": "2,000 subscribers on 4 channels (500 each), 1 KiB, 4 publish connections",
                 "fixed_rates": [100, 200], "args": fanout},
        # The same with compare.py's pinning: every server process on CPU 0, the generator on CPU 1.
        "ramp-pinned": {"title": "the same, nodes and Redis all on CPU 0, load generator on CPU 1",
                        "fixed_rates": [100, 200], "args": fanout, "placement": "server0"},
        # Many channels at a fixed rate: every node subscribed to 1,000 Redis channels.
        "fixed": {"title": "10,000 subscribers on 1,000 channels (10 each), 1,000 publishes/s, 1 KiB, "
                           + ("3" if quick else "15") + " s, 4 publish connections",
                  "args": ["fanout", "--subscribers", "10000", "--channels", "1000", "--payload", "1024", "--rate", "1000",
                           "--duration", "3" if quick else "15", "--publishers", "4", "--all-steps", "--p99-limit", "50"]},
        # bench-compare's scenario (a) on the cluster: one channel, so one publish connection.
        "ramp1": {"title": "bench-compare's (a): 1,000 subscribers on 1 channel, 1 KiB, 1 publish connection",
                  "fixed_rates": [100],
                  "args": ["fanout", "--subscribers", "1000", "--channels", "1", "--payload", "1024", "--publishers", "1",
                           "--pipeline", "8", "--rate",
                           "50,100,200" if quick else "20,50,100,150,200,250,300,400,500,600",
                           "--duration", d, "--p99-limit", "50", "--until-saturated"]},
    }


# ---------------------------------------------------------------------------------------------
# Figures

R2, N2, R1 = "relayd ×2", "nchan ×2", "relayd ×1"


def step_at_rate(r, rate):
    for s in r.get("steps", []):
        if abs(float(s.get("target_publish_rate", -1)) - rate) < 1e-6:
            return s
    return None


def med(vals):
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def cpu_us(s):
    try:
        return float(s["server"]["cpu_s"]) / (float(s["deliveries_per_s"]) * float(s["wall_s"])) * 1e6
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None


def best(r):
    return C.step_best(r) or {}


def sustained_max(r):
    return C.headline("a", r) if "steps" in r else None


def fixed_p99(r, rate):
    s = step_at_rate(r, rate)
    if not s:
        return None
    return C._get(s, "latency", "p99_ms")


def busiest_row(rs):
    """Median over runs of each process's cores in the machine's busiest 3 s."""
    return {k: med([r.get("busiest", {}).get(k) for r in rs]) for k in ("node0", "node1", "redis", "generator", "machine")}


def versions():
    nginx = C.sh("nginx -v 2>&1").replace("nginx version: ", "")
    nchan = C.sh("dpkg-query -W -f='${Version}' libnginx-mod-nchan")
    redis = C.sh("redis-server --version").split(" sha=")[0].replace("Redis server v=", "")
    swift = C.sh("swift --version 2>&1 | head -1")
    return nginx, nchan, redis, swift


def binary_info(path):
    version = C.sh(f"'{path}' --version")
    top = C.sh(f"git -C '{os.path.dirname(path)}' rev-parse --show-toplevel 2>/dev/null")
    commit = C.sh(f"git -C '{top}' rev-parse --short HEAD 2>/dev/null") if top else ""
    dirty = C.sh(f"git -C '{top}' status --porcelain -- Sources Package.swift 2>/dev/null") if top else ""
    shown = os.path.relpath(path, ROOT) if path.startswith(ROOT + "/") else path
    where = f", built from the tree at {commit}{' with local changes' if dirty else ''}" if commit else ""
    return f"`{shown}` ({version}{where})"


def render(runs, scen, started, finished, placement_name, argv_cmd, relayd_bin):
    nginx, nchan, redis, swift = versions()
    out = []
    cpu = C.sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2").strip()
    rounds = max((len(v) for d in runs.values() for v in d.values()), default=0)
    out.append(f"Command: `{argv_cmd}`. Run: {started:%Y-%m-%d %H:%M}–{finished:%H:%M} UTC. Machine: {os.cpu_count()} cores "
               f"({cpu}); {nginx}, libnginx-mod-nchan {nchan}, Redis {redis}; {swift}; relayd {binary_info(relayd_bin)}.")
    out.append("")
    place = {"spread": "node 0 on CPU 0 and node 1 on CPU 1 (`taskset`), redis-server and the load generator (2 event "
                       "loops) not pinned; relayd ×1: its node on CPU 0, the rest not pinned",
             "server0": "nodes and redis-server on CPU 0, the load generator (1 event loop) on CPU 1 (`taskset`)"}
    own = {k: v["placement"] for k, v in scen.items() if k in runs and v.get("placement") and v["placement"] != placement_name}
    out.append(f"Placement: {place[placement_name]}" + "".join(f"; {k}: {place[v]}" for k, v in own.items()) +
               ". Each node has one event loop (relayd: `NIO_SINGLETON_GROUP_LOOP_COUNT=1`) or one worker (nginx: "
               "`worker_processes 1`). Every run starts its own redis-server and nodes; subscribers are split half and "
               "half over the nodes, every channel on both, and all publishes go to node 0. "
               f"Median (min–max) of {rounds} interleaved runs (order flipped each round).")
    out.append("")
    out.append("| scenario | figure | relayd ×2 | nginx+nchan ×2 | relayd ÷ nchan | relayd ×1 | ×2 ÷ ×1 |")
    out.append("|---|---|---:|---:|---:|---:|---:|")

    def row(title, label, table, fn, digits=0, lower_better=False, show_ratio=True):
        a, b, c = ([fn(r) for r in table.get(k, [])] for k in (R2, N2, R1))
        ma, mb, mc = med(a), med(b), med(c)
        r1 = (C.ratio(mb, ma) if lower_better else C.ratio(ma, mb)) if show_ratio and a and b else ""
        r2 = (C.ratio(mc, ma) if lower_better else C.ratio(ma, mc)) if show_ratio and a and c else ""
        out.append(f"| {title} | {label} | {cell(a, digits)} | {cell(b, digits)} | {r1} | {cell(c, digits)} | {r2} |")

    for key in ("ramp", "ramp-pinned", "ramp1"):
        table = runs.get(key)
        if not table:
            continue
        title = f"**{key}**: {scen[key]['title']}"
        row(title, "max sustained deliveries/s (p99 ≤ 50 ms, no loss)", table, sustained_max)
        row("", "publishes/s of that step", table, lambda r: C._get(best(r), "target_publish_rate"), show_ratio=False)
        row("", "p99 ms at that step", table, lambda r: C._get(best(r), "latency", "p99_ms"), 1, show_ratio=False)
        row("", "cluster CPU µs per delivery at that step", table, lambda r: cpu_us(best(r)), 2, lower_better=True)
        fan = int(scen[key]["args"][2]) // int(scen[key]["args"][4])
        for rate in scen[key]["fixed_rates"]:
            row("", f"p99 ms at {rate:,} publishes/s ({rate * fan:,} deliveries/s)", table,
                lambda r, rate=rate: fixed_p99(r, rate), 1, lower_better=True)
    table = runs.get("fixed")
    if table:
        first = lambda r: (r.get("steps") or [{}])[0]
        title = f"**fixed**: {scen['fixed']['title']}"
        row(title, "deliveries/s", table, lambda r: C._get(first(r), "deliveries_per_s"))
        for k, label in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
            row("", f"latency {label} ms", table, lambda r, k=k: C._get(first(r), "latency", k), 2, lower_better=True)
        row("", "cluster CPU µs per delivery", table, lambda r: cpu_us(first(r)), 2, lower_better=True)
        row("", "lost + duplicated", table, lambda r: (C._get(first(r), "lost") or 0) + (C._get(first(r), "duplicates") or 0),
            show_ratio=False)
    out.append("")
    out.append("Ratios are of the medians; for latency and CPU they are inverted (nchan ÷ relayd, ×1 ÷ ×2), so above 1 "
               "always means relayd ×2 is better. Cluster CPU = CPU time of every node (nginx: master and worker) and of "
               "redis-server over the step, read from `/proc/<pid>/stat` by `relayctl bench`, per delivery.")
    out.append("")

    for key in ("ramp", "ramp-pinned"):
        table = runs.get(key, {})
        a, b, c = ([sustained_max(r) for r in table.get(k, [])] for k in (R2, N2, R1))
        if not (med(a) and med(b) and med(c)):
            continue
        g1, g2 = med(a) / med(b), med(a) / med(c)
        p1 = ", ".join(f"{(x or 0) / y:.2f}" if y else "n/a" for x, y in zip(a, b))
        p2 = ", ".join(f"{(x or 0) / y:.2f}" if y else "n/a" for x, y in zip(a, c))
        if key == "ramp":
            out.append(f"**Goals** ({key}, max sustained deliveries/s): relayd ×2 ÷ nginx+nchan ×2 = **{g1:.2f}** "
                       f"(goal ≥ 1.5, {'met' if g1 >= 1.5 else 'not met'}; round by round {p1}); relayd ×2 ÷ relayd ×1 = "
                       f"**{g2:.2f}** (goal ≥ 1.6, {'met' if g2 >= 1.6 else 'not met'}; round by round {p2}).")
        else:
            out.append(f"At equal CPU ({key}: the whole cluster on one core): relayd ×2 ÷ nginx+nchan ×2 = **{g1:.2f}** "
                       f"(round by round {p1}); relayd ×2 ÷ relayd ×1 = {g2:.2f} (round by round {p2}; one core "
                       f"either way, so this is the cost of the second node, not scaling).")
        out.append("")

    out.append("Where the CPU went: cores used by each process in the 3 s in which the whole machine was busiest "
               "(the harness samples `/proc` every 0.5 s; median over the runs). `machine` is the busy time of all "
               "cores (2.00 = both), so `machine` minus the rest is other work on the box.")
    out.append("")
    out.append("| run | node 0 | node 1 | redis-server | load generator | machine |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for key, table in runs.items():
        for k in (R2, N2, R1):
            if table.get(k):
                b = busiest_row(table[k])
                out.append(f"| {key}, {k} | {C.fmt(b['node0'], 2)} | {C.fmt(b['node1'], 2) if k != R1 else '–'} | "
                           f"{C.fmt(b['redis'], 2)} | {C.fmt(b['generator'], 2)} | {C.fmt(b['machine'], 2)} |")
    out.append("")

    for key in ("ramp", "ramp-pinned", "ramp1"):
        table = runs.get(key)
        if not table:
            continue
        out.append(f"{key} steps of each cluster's median run: target publishes/s (achieved) → deliveries/s, p99 ms, "
                   "cluster cores; `*` = not sustained:")
        out.append("")
        for k in (R2, N2, R1):
            rs = table.get(k, [])
            if not rs:
                continue
            r = C.median_run("a", rs)
            parts = []
            for s in r.get("steps", []):
                parts.append(f"{C.fmt(C._get(s, 'target_publish_rate'))} ({C.fmt(C._get(s, 'publish_rate'))}) → "
                             f"{C.fmt(C._get(s, 'deliveries_per_s'))}, {C.fmt(C._get(s, 'latency', 'p99_ms'), 1)}, "
                             f"{C.fmt(C._get(s, 'server_cpu_per_s'), 2)}{'' if s.get('sustained') else '*'}")
            line = f"- {k}: " + ("; ".join(parts) if parts else str(r.get("error", "no result")))
            last = (r.get("steps") or [{}])[-1]
            if last and not last.get("sustained"):
                line += f" (last step: {last.get('reason', '')})"
            out.append(line.replace("|", "/"))
        out.append("")

    splits = []
    for key, table in runs.items():
        for k, v in table.items():
            s = next((r["split"] for r in v if r.get("split")), "")
            counts = re.findall(r"node (\d+) port \d+ subscribers (\d+) publishers (\d+)", s)
            if counts:
                splits.append(f"{key} {k}: " + ", ".join(f"node {n} {sub}+{pub}" for n, sub, pub in counts))
    out.append("Connections per node, subscribers+publishers (counted by split.c, first run of each): " + "; ".join(splits) + ".")
    loads = [r.get("loadavg_before") for d in runs.values() for v in d.values() for r in v]
    if loads:
        out.append(f"Load average (1 min) at the start of the runs: {min(loads)}–{max(loads)}.")
    out.append("")
    out.append(f"Commands (`…` = the cluster's target flags, `--server-pid` of every node and of redis-server, "
               f"`--sources {SOURCES} --threads <generator event loops> --json`; relayctl runs with split.c preloaded):")
    out.append("")
    shown = {}
    for k, v in scen.items():
        if k in runs:
            same = next((s for s, args in shown.items() if args == v["args"]), None)
            out.append(f"- {k}: the same as {same}" if same else f"- {k}: `relayctl bench {' '.join(v['args'])} --target relayd|nchan …`")
            shown[k] = v["args"]
    out.append("- relayd node: `relayd --port <p> --data-dir <copy of one seeded dir> --broker redis://127.0.0.1:<r> "
               "--node-id n<i> --site-max-connections 20000 --max-connections 18000 --log-level warning`")
    out.append("- nchan node: `nginx -p <tmp>/ -c <tmp>/nginx.conf -g 'daemon off;'`, the file being "
               "Benchmarks/cluster/nginx-nchan-redis.conf with `@PORT@` and `@REDIS@` filled in")
    out.append("- redis-server: `redis-server --port <r> --bind 127.0.0.1 --save '' --appendonly no --dir <tmp>`")
    errs = []
    for key, d in runs.items():
        for k, v in d.items():
            for r in v:
                if "error" in r:
                    errs.append(f"{key} {k}: {r['error']}")
                if r.get("first_connect_error"):
                    errs.append(f"{key} {k} first connect error: {r['first_connect_error']}")
                lines = [l for l in r.get("server_log_lines", []) if "pub/sub connected" not in l]
                if lines:
                    errs.append(f"{key} {k} server log: " + " / ".join(lines[-2:])[:300])
    if errs:
        out.append("")
        out.append("Errors and server log lines:")
        out.append("")
        out += [f"- {e}".replace("|", "/") for e in sorted(set(errs))[:12]]
    return "\n".join(out)


def cell(vals, digits=0):
    return C.spread(vals, digits)


def write_block(path, md):
    """Replaces the marked block; the first time, appends the section with the block."""
    text = open(path).read()
    block = START + "\n" + md + "\n" + END
    if START in text and END in text:
        text = text[: text.index(START)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + SECTION + "\n\n" + block + "\n"
    open(path, "w").write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--relayd", default=os.environ.get("RELAYD_BIN") or os.path.join(ROOT, ".build/release/relayd"))
    ap.add_argument("--relayctl", default=os.environ.get("RELAYCTL_BIN") or os.path.join(ROOT, ".build/release/relayctl"))
    ap.add_argument("--write", help="markdown file whose cluster block (section \"Two nodes on Redis\") is replaced")
    ap.add_argument("--json-out", help="also save the raw results here")
    ap.add_argument("--repeat", type=int, default=3, help="runs per scenario and cluster, interleaved")
    ap.add_argument("--only", default="ramp,ramp-pinned,fixed,ramp1", help="scenarios, run in this order")
    ap.add_argument("--clusters", default="relayd2,nchan2,relayd1", help="relayd2,nchan2,relayd1")
    ap.add_argument("--placement", default="spread", choices=sorted(PLACEMENTS), help="for the scenarios without their own")
    ap.add_argument("--quick", action="store_true", help="short steps (development)")
    ap.add_argument("--budget", type=float, default=24, help="minutes; no run starts after this")
    ap.add_argument("--nice", type=int, default=0, help="run everything at this niceness (development)")
    a = ap.parse_args()
    a.relayd, a.relayctl = os.path.abspath(a.relayd), os.path.abspath(a.relayctl)
    for b, n in ((a.relayd, "relayd"), (a.relayctl, "relayctl")):
        if not os.access(b, os.X_OK):
            raise SystemExit(f"{n} not found at {b} (build it, or set RELAYD_BIN / RELAYCTL_BIN)")
    for tool in ("redis-server", "nginx", "taskset", "cc"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found")
    if not os.path.exists("/usr/lib/nginx/modules/ngx_nchan_module.so"):
        raise SystemExit("libnginx-mod-nchan is not installed")
    if a.nice:
        os.nice(a.nice)  # inherited by every process started from here

    def on_signal(sig, _frame):
        raise KeyboardInterrupt(f"signal {sig}")
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGINT too: it may arrive ignored (`&` in a script)
        signal.signal(sig, on_signal)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
    except (ValueError, OSError):
        pass

    scen = scenarios(a.quick)
    keys = [k for k in a.only.split(",") if k]
    for k in keys:
        if k not in scen:
            raise SystemExit(f"unknown scenario {k}")
    started = datetime.datetime.now(datetime.timezone.utc)
    deadline = time.time() + a.budget * 60
    runs = {}
    try:
        build = scratch("cluster-build-")
        split_so = os.path.join(build, "split.so")
        subprocess.run(["cc", "-O2", "-Wall", "-shared", "-fPIC", "-o", split_so, os.path.join(HERE, "split.c"), "-ldl"], check=True)
        seed, creds = seed_site(a.relayd)
        clusters = {"relayd2": RelaydCluster(a.relayd, 2, seed, creds), "nchan2": NchanCluster(2),
                    "relayd1": RelaydCluster(a.relayd, 1, seed, creds)}
        order = [clusters[k] for k in a.clusters.split(",")]
        for key in keys:
            for i in range(max(1, a.repeat)):
                for cl in (order if i % 2 == 0 else order[::-1]):
                    if time.time() > deadline:
                        log(f"time budget ({a.budget} min) used up: {key} round {i + 1} {cl.label} skipped")
                        continue
                    where = PLACEMENTS[scen[key].get("placement", a.placement)]
                    r = run_one(a.relayctl, split_so, cl, scen[key]["args"], where, timeout=300)
                    runs.setdefault(key, {}).setdefault(cl.label, []).append(r)
                    m = sustained_max(r) if key != "fixed" else C._get((r.get("steps") or [{}])[0], "latency", "p99_ms")
                    log(f"  {key} {cl.label}: {'max sustained deliveries/s' if key != 'fixed' else 'p99 ms'} {C.fmt(m, 0 if key != 'fixed' else 2)}"
                        f"{' ERROR ' + r['error'] if 'error' in r else ''} ({r['wall_s']} s)")
                    time.sleep(1)
    except KeyboardInterrupt as e:
        log(f"interrupted ({e or 'Ctrl-C'}): stopping every process started")
        cleanup()
        raise SystemExit(130)
    finally:
        cleanup()
    finished = datetime.datetime.now(datetime.timezone.utc)
    if a.json_out:
        json.dump({"scenarios": scen, "placement": a.placement, "runs": runs}, open(a.json_out, "w"), indent=1)
    argv_cmd = os.environ.get("RELAY_BENCH_COMMAND") or "python3 Benchmarks/cluster/cluster.py " + " ".join(sys.argv[1:])
    md = render(runs, scen, started, finished, a.placement, argv_cmd, a.relayd)
    print(md)
    if a.write:
        write_block(a.write, md)
        log("wrote", a.write)


if __name__ == "__main__":
    main()

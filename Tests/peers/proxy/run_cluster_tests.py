#!/usr/bin/env python3
"""Two relayd nodes on one Redis and one PostgreSQL behind the shipped
deploy/nginx/relayd-cluster.conf, TLS-terminated, on loopback only.

In a temporary directory: a self-signed certificate for 127.0.0.1 (every client
verifies it), a redis-server without persistence, a PostgreSQL cluster made with
initdb (as the postgres user when run as root), two relayd nodes with --broker,
--database, the same --admin-key and --trusted-proxy 127.0.0.1 (node A starts
first on the empty registry and creates the dev site; node B starts once A is
ready), and nginx as a foreground process whose config is generated from
deploy/nginx/relayd-cluster.conf with only the listen address, certificate,
upstream `server` addresses and log path substituted. Then, through nginx:
publishes reach WSS subscribers on both nodes (and nginx spreads WebSockets and
publishes over both); a site registered through the admin API publishes at once
on both nodes; y-websocket editors on the two nodes converge and a late joiner
through nginx gets the whole document; encrypted Yjs rooms stay on one node;
`kill -9` of a node: its subscriber reconnects through nginx to the other node
and recovers what was published meanwhile, and publishes through nginx keep
succeeding. Prints one PASS/FAIL/SKIP line per check and exits non-zero on any
failure. Everything it starts is stopped before it exits.

Env: RELAYD_BIN (default .build/debug/relayd), NGINX_BIN, REDIS_BIN, PG_BIN_DIR
(default: the newest /usr/lib/postgresql/N/bin), NODE_PATH (/usr/share/nodejs),
RELAY_REQUIRE_PEERS=1 (a missing nginx, redis-server, postgresql or node is a
failure, not a skip), KEEP_TMP=1 (keep the temp dir; it is kept on failure).
Usage: run_cluster_tests.py [--break NAME | --conf FILE] [--list-breaks]
--break applies a deliberate mistake to the generated config, --conf tests
another file instead of the shipped one (e.g. an edited copy); either run is
then expected to fail.
"""
import argparse
import asyncio
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "../../.."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "Tests/peers/server"))
sys.path.insert(0, os.path.join(REPO, "Tests/peers"))
import run_proxy_tests as px  # noqa: E402  (processes, TLS clients, the nginx runner, config substitution)
import relaypeer as rp  # noqa: E402  (token minting, v1 signing, frame helpers)
from suite import Report, free_port, tail  # noqa: E402

from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

RELAYD = px.RELAYD
CLUSTER_SHIPPED = os.path.join(REPO, "deploy/nginx/relayd-cluster.conf")
YJS_SESSION = px.YJS_SESSION
NODE_PATH = px.NODE_PATH
TOTAL_TIMEOUT = 150  # seconds; the whole run is cut off after this (a normal run takes about 30 s)
SHIPPED_PORTS = {"a": 8081, "b": 8082}  # the nodes' addresses in the shipped file

# Deliberate mistakes (--break): (text in the generated config, replacement, expected count);
# {a} and {b} are the test nodes' ports.
BREAKS = {
    "only-node-a": ("    server 127.0.0.1:{b} ", "    # server 127.0.0.1:{b} ", 3),
    "e2e-unpinned": ('"~^1,"   relayd_yjs_e2e;', '"~^1,"   relayd_websocket;', 1),
    "retry-post": ("proxy_next_upstream error timeout;", "proxy_next_upstream error timeout non_idempotent;", 1),
    "no-failover": ("proxy_next_upstream error timeout;", "proxy_next_upstream off;", 1),
}

R = Report()
PROCS = px.PROCS  # the same list run_proxy_tests' nginx runner starts nginx into
E = px.E  # run_proxy_tests' environment: its TLS and token helpers read E.cert and E.site


# --- servers -------------------------------------------------------------------------------------

def wait_until(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Redis:
    """redis-server on a free loopback port, no persistence (as RedisServerProcess.swift)."""

    def __init__(self, tmp):
        self.bin = px.find_bin("REDIS_BIN", "redis-server", "/usr/bin/redis-server")
        self.tmp, self.port, self.proc = tmp, None, None

    def ping(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                return s.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def start(self):
        for _ in range(3):
            self.port = free_port()
            self.proc = PROCS.start("redis-server", [
                self.bin, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--daemonize", "no", "--loglevel", "warning", "--dir", self.tmp], os.path.join(self.tmp, "redis.log"),
                env=px.clean_env())
            if wait_until(lambda: self.proc.poll() is not None or self.ping(), 10) and self.proc.poll() is None:
                return
            PROCS.stop(self.proc)
        raise RuntimeError(f"redis-server did not start: {tail(os.path.join(self.tmp, 'redis.log'))}")

    def url(self):
        return f"redis://127.0.0.1:{self.port}"


def pg_bin_dir():
    if os.environ.get("PG_BIN_DIR"):
        return os.environ["PG_BIN_DIR"]
    root = "/usr/lib/postgresql"
    try:
        versions = sorted((int(v) for v in os.listdir(root) if v.isdigit()), reverse=True)
    except OSError:
        return None
    for v in versions:
        if os.access(f"{root}/{v}/bin/initdb", os.X_OK):
            return f"{root}/{v}/bin"
    return None


class Postgres:
    """A PostgreSQL cluster in a fresh directory on a free loopback port, trust authentication
    for the postgres user (as PostgresServerProcess.swift): as root, initdb and postgres run as
    the postgres user (runuser), and the directory is theirs. Stopped by a fast shutdown (SIGINT
    to the postmaster, whose pid is in postmaster.pid) and removed."""

    def __init__(self):
        self.bin = pg_bin_dir()
        self.dir = self.port = self.proc = None
        self.as_root = os.geteuid() == 0

    def _argv(self, prog, *args):
        cmd = [os.path.join(self.bin, prog), *args]
        return ["runuser", "-u", "postgres", "--", *cmd] if self.as_root else cmd

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="relay-cluster-pg-")  # not under the 0700 temp dir: postgres must reach it
        if self.as_root:
            shutil.chown(self.dir, "postgres", "postgres")
        r = subprocess.run(self._argv("initdb", "-D", self.dir + "/data", "-A", "trust", "-U", "postgres", "--no-sync",
                                      "-E", "UTF8"), capture_output=True, text=True, timeout=60, env=px.clean_env())
        if r.returncode != 0:
            raise RuntimeError(f"initdb failed: {(r.stdout + r.stderr)[-600:]}")
        for _ in range(3):
            self.port = free_port()
            self.proc = PROCS.start("postgres", self._argv(
                "postgres", "-D", self.dir + "/data", "-p", str(self.port), "-k", self.dir,
                "-c", "listen_addresses=127.0.0.1", "-c", "logging_collector=off", "-c", "fsync=off"),
                os.path.join(E.tmp, "postgres.log"), env=px.clean_env())
            if wait_until(lambda: self.proc.poll() is not None or self.ready(), 20) and self.proc.poll() is None:
                return
            self.stop()  # another process took the port, or the server failed: try again
        raise RuntimeError(f"postgres did not start: {tail(os.path.join(E.tmp, 'postgres.log'))}")

    def ready(self):
        r = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port),
                            "-U", "postgres"], capture_output=True, timeout=5)
        return r.returncode == 0

    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres?sslmode=disable"

    def stop(self):
        if self.dir:
            try:
                with open(os.path.join(self.dir, "data/postmaster.pid")) as f:
                    pid = int(f.readline().strip())
                os.kill(pid, signal.SIGINT)  # fast shutdown
                wait_until(lambda: not _alive(pid), 10)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)
            except (OSError, ValueError):
                pass
        if self.proc is not None:
            PROCS.stop(self.proc, grace=2.0)
            self.proc = None


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


class Node:
    """One relayd node: its own data directory, the shared broker, database and admin key."""

    def __init__(self, name, port, redis, pg, admin_key):
        self.name, self.port = name, port
        self.dir = os.path.join(E.tmp, f"relayd-{name}")
        self.log = os.path.join(E.tmp, f"relayd-{name}.log")
        self.argv = [RELAYD, "--host", "127.0.0.1", "--port", str(port), "--node-id", name, "--data-dir", self.dir,
                     "--broker", redis.url(), "--database", pg.url(), "--admin-key", admin_key,
                     "--trusted-proxy", "127.0.0.1", "--log-level", "info"]
        self.proc = None

    def start(self):
        self.proc = PROCS.start(f"relayd {self.name}", self.argv, self.log, env=px.clean_env())
        if not wait_until(lambda: self.proc.poll() is not None or self.get("/readyz")[0] == 200, 30, 0.1) \
                or self.proc.poll() is not None:
            raise RuntimeError(f"relayd {self.name} not ready: {tail(self.log)}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def get(self, path, timeout=2):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            try:
                c.request("GET", path)
                r = c.getresponse()
                return r.status, r.read()
            finally:
                c.close()
        except OSError as e:
            return None, str(e).encode()

    def post(self, path, body, headers):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            c.request("POST", path, body, headers)
            r = c.getresponse()
            return r.status, rp.jbody(r.read())
        finally:
            c.close()

    def connections(self):
        st, body = self.get("/healthz")
        try:
            return json.loads(body)["active_connections"] if st == 200 else None
        except (ValueError, KeyError):
            return None

    def metric(self, name):
        st, body = self.get("/metrics")
        if st != 200:
            return None
        m = re.search(rf"^{re.escape(name)} (\S+)$", body.decode(errors="replace"), re.M)
        return float(m.group(1)) if m else None

    def dev_site(self):
        """The credentials relayd prints on its first start with an empty registry, or None."""
        try:
            with open(self.log, errors="replace") as f:
                text = f.read()
        except OSError:
            return None
        fields = dict(re.findall(r"^\W*(site_key|site_id|publish_secret|jwt_secret):\s+(\S+)", text, re.M))
        return fields if len(fields) == 4 else None


class ClusterNginx(px.Nginx):
    """run_proxy_tests' nginx runner with the cluster file: only listen, certificate, the
    upstreams' `server` addresses and the log path substituted; two workers, as on a
    two-core Debian machine (worker_processes auto), so the shared upstream zones matter."""

    def __init__(self, nodes, brk, conf):
        super().__init__(None)
        self.nodes, self.brk, self.source = nodes, brk, conf or CLUSTER_SHIPPED

    def config(self):
        with open(self.source) as f:
            shipped = f.read()
        a, b = self.nodes["a"].port, self.nodes["b"].port
        site = px.substitute(shipped, [
            (f"server 127.0.0.1:{SHIPPED_PORTS['a']} ", f"server 127.0.0.1:{a} ", 3),  # relayd, relayd_websocket, relayd_yjs_e2e
            (f"server 127.0.0.1:{SHIPPED_PORTS['b']} ", f"server 127.0.0.1:{b} ", 3),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.port} ssl http2;", 1),
            ("listen [::]:443 ssl http2;", "", 1),  # loopback IPv4 only
            ("/etc/letsencrypt/live/relay.example.com/fullchain.pem", E.cert, 1),
            ("/etc/letsencrypt/live/relay.example.com/privkey.pem", E.key, 1),
            ("/var/log/nginx/relayd.access.log", os.path.join(self.dir, "relayd.access.log"), 1),
        ], self.source)
        if self.brk:
            old, new, count = BREAKS[self.brk]
            site = px.substitute(site, [(old.format(a=a, b=b), new.format(a=a, b=b), count)], f"--break {self.brk}")
        return px.write_nginx_conf(self.dir, site, workers=2)

    def upstream_errors(self, port):
        """error.log lines where nginx failed to reach the node on `port`."""
        try:
            with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
                return [ln.strip() for ln in f if f"127.0.0.1:{port}" in ln and "[error]" in ln]
        except OSError:
            return []


# --- clients -------------------------------------------------------------------------------------

def publish_via(port, site, channel, event, data_json, tls=True):
    """A v1-signed publish, through nginx (tls) or straight to a node; (status, json)."""
    body = rp.envelope(channel, event, data_json)
    if tls:
        status, _, raw = px.https(port, "POST", "/publish", body, rp.v1_headers(site, body))
        return status, rp.jbody(raw)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        c.request("POST", "/publish", body, rp.v1_headers(site, body))
        r = c.getresponse()
        return r.status, rp.jbody(r.read())
    finally:
        c.close()


async def subscriber(port, channel, scheme="wss", positions=None, site=None):
    """A /ws subscriber (through nginx: wss, or to a node: ws). Returns (ws, subscribe answer
    frames parsed) or (None, why)."""
    tok = rp.mint(site or E.site)[0]
    try:
        ws = await px.wss(port, "/ws?token=" + urllib.parse.quote(tok, safe=""), scheme=scheme)
    except InvalidStatus as e:
        return None, f"upgrade refused with HTTP {e.response.status_code}"
    except Exception as e:  # noqa: BLE001  (reported)
        return None, f"could not open: {type(e).__name__}: {e}"
    try:
        frames = [json.loads(f) for f in await rp.subscribe(ws, [channel], positions)]
    except ConnectionClosed as e:
        return None, f"closed {e.rcvd.code if e.rcvd else 1006}"
    if not frames or frames[-1].get("type") != "subscribed":
        await ws.close()
        return None, f"no subscribed answer: {frames}"
    return ws, frames


async def read_messages(ws, n, timeout=5.0):
    """Up to n message frames (parsed), in arrival order."""
    out = []
    end = time.monotonic() + timeout
    while len(out) < n:
        left = end - time.monotonic()
        if left <= 0:
            break
        try:
            raw, j, _ = await rp.until(ws, lambda j: j.get("type") == "message", left)
        except ConnectionClosed:
            break
        if raw is None:
            break
        out.append(j)
    return out


def counts(nodes):
    return {k: n.connections() if n.alive() else None for k, n in nodes.items()}


async def on_which_node(nodes, before, timeout=3.0):
    """The node whose connection count rose by one since `before` (None if unclear)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        now = await asyncio.to_thread(counts, nodes)
        up = [k for k in nodes if now[k] is not None and before[k] is not None and now[k] == before[k] + 1]
        same = [k for k in nodes if now[k] == before[k]]
        if len(up) == 1 and len(same) == len(nodes) - 1:
            return up[0], now
        await asyncio.sleep(0.03)
    return None, await asyncio.to_thread(counts, nodes)


async def wait_idle(nodes, timeout=8.0):
    """Until no live node counts a connection (clients of earlier checks gone)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        c = await asyncio.to_thread(counts, nodes)
        if all(v == 0 for k, v in c.items() if nodes[k].alive()):
            return True
        await asyncio.sleep(0.05)
    return False


async def close_all(wss):
    for w in wss:
        try:
            await w.close()
        except Exception:  # noqa: BLE001
            pass


# --- checks --------------------------------------------------------------------------------------

def static_checks(text):
    """What a short run cannot provoke: a POST retried on another node, quiet connections cut."""
    nexts = re.findall(r"^\s*proxy_next_upstream\s+([^;]*);", text, re.M)
    retry_post = [n for n in nexts if "non_idempotent" in n]
    R.check("config: proxy_next_upstream fails over on errors and timeouts, never retries a POST /publish",
            nexts and not retry_post and re.fullmatch(r"error timeout", nexts[0].strip()),
            f"{['proxy_next_upstream ' + n for n in nexts]}",
            f"{['proxy_next_upstream ' + n for n in nexts]}: the server-wide one must be `error timeout` (failover "
            "to the next node), and none may have `non_idempotent` (it would resend a publish a node may already "
            "have taken: a duplicate)")
    ups = dict(re.findall(r"^upstream\s+(\S+)\s*\{(.*?)^\}", text, re.M | re.S))
    servers = [(u, ln) for u, body in ups.items() for ln in re.findall(r"^\s*server\s+[^;]*;", body, re.M)]
    bad = [f"{u}: {ln.strip()}" for u, ln in servers if "max_fails=" not in ln or "fail_timeout=" not in ln]
    ws_keepalive = [u for u in ("relayd_websocket", "relayd_yjs_e2e") if re.search(r"^\s*keepalive\s", ups.get(u, ""), re.M)]
    e2e_hash = re.search(r"^\s*hash\s+\S+\s+consistent;", ups.get("relayd_yjs_e2e", ""), re.M)
    zones = [u for u in ups if not re.search(r"^\s*zone\s", ups[u], re.M)]
    single = [u for u in ups if sum(1 for v, _ in servers if v == u) < 2]
    R.check("config: upstreams for HTTP (keepalive), WebSockets (none) and encrypted rooms (consistent hash)",
            set(ups) >= {"relayd", "relayd_websocket", "relayd_yjs_e2e"} and not bad and not ws_keepalive and e2e_hash
            and re.search(r"^\s*keepalive\s", ups.get("relayd", ""), re.M) and not zones and not single,
            f"{len(servers)} server lines with max_fails/fail_timeout in {sorted(ups)}, each with a zone",
            f"upstreams {sorted(ups)}; with fewer than two nodes: {single}; without max_fails/fail_timeout: {bad}; "
            f"keepalive on a WebSocket upstream: "
            f"{ws_keepalive}; consistent hash in relayd_yjs_e2e: {bool(e2e_hash)}; without zone: {zones}")
    for d in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(rf"^\s*{d}\s+(\d+)s;", text, re.M)
        secs = int(m.group(1)) if m else None
        R.check(f"config: {d} above relayd's idle timeout", secs is not None and secs > 130,
                f"{secs} s > 130 s", f"{secs!r}: must be more than 130 s so relayd, not nginx, ends quiet connections")


def check_endpoints(ngx, nodes):
    st_ready, _, body = px.https(ngx.port, "GET", "/readyz")
    st_metrics, _, _ = px.https(ngx.port, "GET", "/metrics")
    direct = {k: n.get("/metrics")[0] for k, n in nodes.items()}
    R.check("nginx: /readyz answers for the cluster, /metrics only per node",
            st_ready == 200 and b'"ready":true' in body and st_metrics == 403 and all(v == 200 for v in direct.values()),
            f"/readyz 200 through nginx; /metrics 403 through nginx, 200 on each node {direct}",
            f"/readyz {st_ready} {body[:200]!r}; /metrics through nginx {st_metrics}; direct {direct}")


def check_registry(ngx, nodes, admin_key):
    """(b) A site registered through nginx's admin API publishes at once on every node."""
    name = "(b) a site registered through nginx's admin API publishes at once on both nodes"
    body = json.dumps({"site_url": "https://cluster.example", "site_name": "cluster"}).encode()
    t0 = time.monotonic()
    st, _, raw = px.https(ngx.port, "POST", "/api/sites/register", body,
                          {"Authorization": "Bearer " + admin_key, "Content-Type": "application/json"})
    site = rp.jbody(raw)
    if st != 200 or "site_key" not in site:
        R.fail(name, f"register: {st} {str(site)[:300]}")
        return
    answers = {k: publish_via(n.port, site, "news", "n", '{"node":"%s"}' % k, tls=False) for k, n in nodes.items()}
    dt = time.monotonic() - t0
    direct = {k: st for k, (st, _) in answers.items()}
    # A node that refused the new site: does it know the site a moment later? (Only to say what
    # went wrong; the check wants every publish accepted at once.)
    later = {k: publish_via(nodes[k].port, site, "news", "n", "{}", tls=False)[0] for k, st in direct.items() if st != 200}
    via = [publish_via(ngx.port, site, "news", "n", '{"via":"nginx","i":%d}' % i)[0] for i in range(4)]
    wrong = publish_via(ngx.port, dict(site, publish_secret="0" * 64), "news", "n", "{}")[0]
    R.check(name, all(v == 200 for v in direct.values()) and via == [200] * 4 and wrong == 401,
            f"register 200; publish straight to each node {direct} within {dt * 1000:.0f} ms of the "
            f"registration; 4 through nginx {via}; a wrong secret {wrong}",
            f"register {st}; direct publishes {answers} ({dt * 1000:.0f} ms after); the refused one(s) again right after: {later}; "
            f"through nginx {via}; wrong secret {wrong} (want 401)")


async def check_yjs(ngx, nodes):
    """(c) y-websocket editors on node A and node B converge; a late joiner through nginx gets it all."""
    name = "(c) y-websocket: editors on node A and node B converge, a late joiner through nginx gets the document"
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(NODE_PATH, "y-websocket")):
        R.missing(name, "node with y-websocket (Debian node-y-websocket) not found")
        return
    cfg = {"urls": [f"http://127.0.0.1:{nodes['a'].port}", f"http://127.0.0.1:{nodes['b'].port}", ngx.url()],
           "site_id": E.site["site_id"], "jwt_secret": E.site["jwt_secret"],
           "room": f"cluster/post:{os.getpid()}", "timeout_ms": 45000}
    env = px.clean_env(NODE_PATH=NODE_PATH, NODE_EXTRA_CA_CERTS=E.cert)
    t0 = time.monotonic()
    p = await asyncio.create_subprocess_exec(node, YJS_SESSION, "multinode", json.dumps(cfg), env=env,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(p.communicate(), 50)
    except asyncio.TimeoutError:
        R.fail(name, "node client did not finish in 50 s")
        return
    finally:
        if p.returncode is None:
            p.kill()
            await p.wait()
    try:
        res = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"error": (out + err).decode(errors="replace")[-500:]}
    text = res.get("text_a") or ""
    good = p.returncode == 0 and res.get("converged") is True and res.get("b_sees_a") is True \
        and res.get("c_complete") is True and res.get("a_got_c") is True \
        and "hello" in text and " wörld 😀" in text and text.count("a") == 50 and text.count("b") == 50
    R.check(name, good, f"converged on {len(text)} characters typed on both nodes at once, awareness crossed, "
                        f"the late joiner through nginx got the whole document and its edit reached both "
                        f"({time.monotonic() - t0:.1f} s)",
            f"exit {p.returncode}: {json.dumps(res)[:700]} {err.decode(errors='replace')[-300:]}")


def yjs_refusals(node):
    """How many /yjs connections the node's log shows refused (code 4004 and the like)."""
    try:
        with open(node.log, errors="replace") as f:
            return sum(1 for ln in f if "connection refused" in ln and "endpoint=/yjs" in ln)
    except OSError:
        return 0


async def check_e2e_pinned(ngx, nodes):
    """Encrypted rooms through nginx: every connection to one room (?e2e=1, and the full name
    /yjs/site:<id>:yjs-e2e:<room>) reaches one node. A connection is placed by the node whose
    connection count rose, or, when relayd refuses it, by the node that logged the refusal."""
    name = "nginx: each encrypted Yjs room stays on one node (?e2e=1 and /yjs/site:<id>:yjs-e2e:<room>)"
    sid = E.site["site_id"]
    prefix = f"site:{sid}:yjs-e2e:"
    tok = urllib.parse.quote(rp.mint(E.site, sub=[prefix], pub=[prefix])[0], safe="")
    keep, placed, problems, refused = [], {}, [], []
    try:
        await wait_idle(nodes)
        for i in range(4):
            room = f"cluster/sealed-{os.getpid()}-{i}"
            for form, path in (("?e2e=1", f"/yjs/{room}?auth={tok}&e2e=1"), ("full name", f"/yjs/{prefix}{room}?auth={tok}"),
                               ("?e2e=1 first", f"/yjs/{room}?e2e=1&auth={tok}")):
                before = await asyncio.to_thread(counts, nodes)
                before_refused = {k: yjs_refusals(n) for k, n in nodes.items()}
                try:
                    ws = await px.wss(ngx.port, path)
                except Exception as e:  # noqa: BLE001
                    problems.append(f"{room} {form}: {type(e).__name__}: {e}")
                    continue
                keep.append(ws)
                where, _ = await on_which_node(nodes, before, timeout=1.0)
                if where is None:  # relayd closed it: the node that logged the refusal
                    end = time.monotonic() + 2
                    while where is None and time.monotonic() < end:
                        up = [k for k, n in nodes.items() if yjs_refusals(n) > before_refused[k]]
                        where = up[0] if len(up) == 1 else None
                        await asyncio.sleep(0.05)
                    if where is not None:
                        refused.append(form)
                placed.setdefault(room, []).append(where)
        split = {r: w for r, w in placed.items() if len(set(w)) != 1 or None in w}
        used = sorted({w for ws_ in placed.values() for w in ws_ if w})
        note = (f"; relayd refused the {sorted(set(refused))} form(s) (logged on the room's node)" if refused else "")
        R.check(name, not problems and len(placed) == 4 and not split,
                f"4 rooms x 3 connections, each room on one node: "
                f"{ {r.rsplit('-', 1)[-1]: w[0] for r, w in placed.items()} } (nodes used: {used}){note}",
                f"rooms split over nodes: {split}; errors: {problems}")
    finally:
        await close_all(keep)


async def check_fanout(ngx, nodes, subs):
    """(a) Publishes through nginx reach every subscriber, through nginx and on each node; nginx uses both nodes."""
    await wait_idle(nodes)
    ch = "fanout"
    where = []
    for i in range(4):
        before = await asyncio.to_thread(counts, nodes)
        ws, info = await subscriber(ngx.port, ch)
        if ws is None:
            R.fail("(a) WSS subscribers through nginx", f"subscriber {i}: {info}")
            return False
        node, _ = await on_which_node(nodes, before)
        subs.append({"ws": ws, "via": "nginx", "node": node, "seen": []})
        where.append(node)
    for k, n in nodes.items():
        ws, info = await subscriber(n.port, ch, scheme="ws")
        if ws is None:
            R.fail("(a) subscribers straight to each node", f"node {k}: {info}")
            return False
        subs.append({"ws": ws, "via": f"node {k}", "node": k, "seen": []})
    before = {k: n.metric("relay_http_publish_total") for k, n in nodes.items()}
    statuses = []
    for i in range(6):
        statuses.append((await asyncio.to_thread(publish_via, ngx.port, E.site, ch, "e", '{"i":%d}' % i))[0])
    after = {k: n.metric("relay_http_publish_total") for k, n in nodes.items()}
    per_node = {k: (after[k] or 0) - (before[k] or 0) for k in nodes}
    got = await asyncio.gather(*[read_messages(s["ws"], 6) for s in subs])
    bad = []
    for s, msgs in zip(subs, got):
        s["seen"] = msgs
        data = [m.get("data", {}).get("i") for m in msgs]
        offs = [m.get("offset") for m in msgs]
        if data != list(range(6)) or offs != sorted(offs) or len(set(m.get("epoch") for m in msgs)) != 1:
            bad.append(f"{s['via']} (on {s['node']}): data {data}, offsets {offs}")
    R.check("(a) publishes through nginx: 200, and every subscriber (4 through nginx, 1 on each node) gets each in order",
            statuses == [200] * 6 and not bad,
            f"6 publishes {set(statuses)}; 6 subscribers got i=0..5 with one epoch and rising offsets",
            f"statuses {statuses}; wrong: {bad}")
    ws_nodes = {k: where.count(k) for k in nodes}
    R.check("(a) nginx uses both nodes: WebSockets (least_conn) and publishes (round robin)",
            all(ws_nodes[k] > 0 for k in nodes) and all(per_node[k] > 0 for k in nodes),
            f"subscribers through nginx per node {ws_nodes}, publishes taken per node {per_node} "
            "(relay_http_publish_total)",
            f"subscribers through nginx per node {ws_nodes} (placement {where}), publishes per node {per_node}")
    return True


async def check_failover(ngx, nodes, subs):
    """(d) kill -9 of the node under the first subscriber through nginx."""
    victim = next((s for s in subs if s["via"] == "nginx" and s["node"] in nodes and s["seen"]), None)
    if victim is None:
        R.fail("(d) kill -9 of a node", "no subscriber through nginx with a known node and messages to start from")
        return
    dead, alive = victim["node"], [k for k in nodes if k != victim["node"]][0]
    last = victim["seen"][-1]
    errors_before = len(ngx.upstream_errors(nodes[dead].port))
    os.kill(nodes[dead].proc.pid, signal.SIGKILL)
    nodes[dead].proc.wait(5)
    t_kill = time.monotonic()
    dropped = await rp.wait_close(victim["ws"], 5)
    # Publishes through nginx right away: nginx still has the dead node in its upstreams until an
    # attempt on it fails; a refused connection means the POST never reached a node, so nginx
    # passes it to the other one.
    statuses = []
    for i in range(8):
        statuses.append((await asyncio.to_thread(publish_via, ngx.port, E.site, "fanout", "e", '{"i":%d}' % (100 + i)))[0])
    ok = [100 + i for i, st in enumerate(statuses) if st == 200]
    failed = [st for st in statuses if st != 200]
    first_ok = statuses.index(200) if 200 in statuses else None
    R.check(f"(d) kill -9 of node {dead}: publishes through nginx keep succeeding",
            len(failed) <= 1 and first_ok is not None and all(st == 200 for st in statuses[first_ok:]),
            f"{len(ok)}/8 answered 200, {len(failed)} failed",
            f"statuses {statuses} (at most the first may fail, while nginx marks node {dead} down)")
    # The victim comes back through nginx with its last position, as a browser client would. Its
    # first attempt must succeed: an upgrade that found the dead node refusing never reached it,
    # so nginx passes it to the other one (a second attempt is only made to say what went wrong).
    attempts, ws, frames = 0, None, None
    while attempts < 2 and ws is None:
        attempts += 1
        before = await asyncio.to_thread(counts, nodes)
        ws, frames = await subscriber(ngx.port, "fanout", positions={"fanout": {"offset": last["offset"],
                                                                                "epoch": last["epoch"]}})
        if ws is None:
            await asyncio.sleep(0.2)
    if ws is None:
        R.fail(f"(d) kill -9 of node {dead}: its subscriber reconnects through nginx and recovers",
               f"could not reconnect through nginx: {frames}")
        return
    landed, _ = await on_which_node(nodes, before)
    answer = frames[-1]
    replayed = [f for f in frames if f.get("type") == "message"]
    replayed += await read_messages(ws, len(ok) - len(replayed), 2.0) if len(replayed) < len(ok) else []
    data = [m.get("data", {}).get("i") for m in replayed]
    offs = [m.get("offset") for m in replayed]
    want_offs = list(range(last["offset"] + 1, last["offset"] + 1 + len(ok)))
    R.check(f"(d) kill -9 of node {dead}: its subscriber reconnects through nginx to node {alive} and recovers in order",
            dropped["code"] == 1006 and answer.get("recovered") is True and data == ok and offs == want_offs
            and landed == alive and len(ok) > 0 and attempts == 1,
            f"dropped with {dropped['code']}; reconnected on node {landed} (attempt {attempts}) with offset "
            f"{last['offset']}: recovered: true, publications {data} at offsets {offs} "
            f"({time.monotonic() - t_kill:.1f} s after the kill)",
            f"dropped {dropped['code']} {dropped['reason']!r}; landed on {landed} after {attempts} attempt(s); "
            f"answer {answer}; replayed data {data} (want {ok}), offsets {offs} (want {want_offs})")
    # The subscribers on the surviving node missed nothing and saw no gap.
    survivors = [s for s in subs if s["node"] == alive]
    got = await asyncio.gather(*[read_messages(s["ws"], len(ok), 3.0) for s in survivors])
    bad = [f"{s['via']}: {[m.get('data', {}).get('i') for m in g]}" for s, g in zip(survivors, got)
           if [m.get("data", {}).get("i") for m in g] != ok
           or [m.get("offset") for m in g] != want_offs]
    errors = ngx.upstream_errors(nodes[dead].port)[errors_before:]
    kinds = sorted({re.sub(r"^.*?\[error\] \S+ \*\d+ ", "", e).split(" while ")[0] for e in errors})
    R.check(f"(d) kill -9 of node {dead}: the {len(survivors)} subscribers on node {alive} got every later publish, in order",
            survivors and not bad,
            f"each got {len(ok)} in order; nginx logged {len(errors)} failed attempt(s) on node {dead}: {kinds}",
            f"wrong: {bad}")
    await close_all([ws])


# --- the run -------------------------------------------------------------------------------------

class Cluster:
    redis = pg = ngx = None
    nodes = {}


C = Cluster()


async def run(args):
    for path, what in ((RELAYD, "relayd"),):
        if not os.access(path, os.X_OK):
            R.fail("setup", f"{what} not found at {path} (swift build, or set RELAYD_BIN)")
            return
    if not shutil.which("openssl"):
        R.fail("setup", "openssl not found")
        return
    E.tmp = tempfile.mkdtemp(prefix="relay-cluster-")
    E.cert, E.key = os.path.join(E.tmp, "cert.pem"), os.path.join(E.tmp, "key.pem")
    px.make_cert()
    if args.brk:
        print(f"NOTE --break {args.brk}: the nginx configuration is deliberately wrong; failures are expected", flush=True)
    if args.conf:
        print(f"NOTE --conf {args.conf}: testing this file instead of the shipped one", flush=True)
    with open(args.conf or CLUSTER_SHIPPED) as f:
        shipped = f.read()
    if args.brk:
        old, new, _ = BREAKS[args.brk]
        shipped = shipped.replace(old.format(a=SHIPPED_PORTS["a"], b=SHIPPED_PORTS["b"]),
                                  new.format(a=SHIPPED_PORTS["a"], b=SHIPPED_PORTS["b"]))
    static_checks(shipped)

    C.redis = Redis(E.tmp)
    C.pg = Postgres()
    ngx_bin = px.find_bin("NGINX_BIN", "nginx", "/usr/sbin/nginx")
    missing = [(what, pkg) for what, ok, pkg in (("redis-server", C.redis.bin, "redis-server"),
                                                  ("PostgreSQL (initdb)", C.pg.bin, "postgresql"),
                                                  ("nginx", ngx_bin, "nginx")) if not ok]
    if missing:
        for what, pkg in missing:
            R.missing(f"{what}: installed", f"not found (Debian package {pkg}; scripts/install-deps.sh test)")
        return
    C.redis.start()
    C.pg.start()
    admin_key = secrets.token_hex(32)
    C.nodes = {k: Node(k, free_port(), C.redis, C.pg, admin_key) for k in ("a", "b")}
    t0 = time.monotonic()
    C.nodes["a"].start()  # first, on the empty registry: creates the dev site
    E.site = C.nodes["a"].dev_site()
    if not E.site:
        R.fail("setup", f"node a printed no dev site on its first start: {tail(C.nodes['a'].log)}")
        return
    C.nodes["b"].start()
    b_site = C.nodes["b"].dev_site()
    R.check("cluster: node a creates the dev site, node b finds it in PostgreSQL; both ready",
            b_site is None, f"both /readyz 200 after {time.monotonic() - t0:.1f} s (redis {C.redis.port}, "
                            f"postgres {C.pg.port}, nodes {C.nodes['a'].port}/{C.nodes['b'].port})",
            f"node b printed a dev site of its own: {b_site}")

    C.ngx = ClusterNginx(C.nodes, args.brk, args.conf)
    C.ngx.bin = ngx_bin
    conf = C.ngx.config()
    ok, msg = C.ngx.validate(conf)
    if not R.check("nginx: the cluster config passes nginx -t without warnings", ok,
                   os.path.relpath(args.conf or CLUSTER_SHIPPED, REPO) if not args.conf else args.conf, msg[-800:]):
        return
    if not C.ngx.start(conf):
        R.fail("nginx: starts", f"not listening on 127.0.0.1:{C.ngx.port}: {C.ngx.logs()[-800:]}")
        return

    await asyncio.to_thread(check_endpoints, C.ngx, C.nodes)
    await asyncio.to_thread(check_registry, C.ngx, C.nodes, admin_key)
    await check_yjs(C.ngx, C.nodes)
    await check_e2e_pinned(C.ngx, C.nodes)
    subs = []
    try:
        if await check_fanout(C.ngx, C.nodes, subs):
            await check_failover(C.ngx, C.nodes, subs)
    finally:
        await close_all([s["ws"] for s in subs])


def stop_everything():
    """nginx, the nodes, then PostgreSQL (fast shutdown) and Redis; whatever else is left."""
    if C.ngx is not None and C.ngx.proc is not None:
        PROCS.stop(C.ngx.proc)
    for n in C.nodes.values():
        if n.proc is not None:
            PROCS.stop(n.proc)
    if C.pg is not None:
        C.pg.stop()
    PROCS.stop_all()
    if C.pg is not None and C.pg.dir:
        shutil.rmtree(C.pg.dir, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--break", dest="brk", choices=sorted(BREAKS))
    g.add_argument("--conf", help="an nginx file to test instead of deploy/nginx/relayd-cluster.conf")
    ap.add_argument("--list-breaks", action="store_true")
    args = ap.parse_args()
    if args.list_breaks:
        for k, (old, new, _) in sorted(BREAKS.items()):
            print(f"{k}: {old!r} -> {new!r}")
        return 0

    def on_alarm(*_):
        raise TimeoutError(f"the cluster suite did not finish in {TOTAL_TIMEOUT + 10} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops what was started
    signal.alarm(TOTAL_TIMEOUT + 10)
    try:
        asyncio.run(asyncio.wait_for(run(args), TOTAL_TIMEOUT))
    except (asyncio.TimeoutError, TimeoutError) as e:
        R.fail("suite", f"timed out: {e or TOTAL_TIMEOUT}")
    except (SystemExit, KeyboardInterrupt):
        R.fail("suite", "interrupted (SIGTERM or SIGINT)")
    except Exception as e:  # noqa: BLE001  (reported as a failure, with the logs)
        R.fail("suite", f"{type(e).__name__}: {e}")
        for n in C.nodes.values():
            print(f"--- {n.log} (tail)\n{tail(n.log)}", flush=True)
    finally:
        signal.alarm(0)
        stop_everything()
        if E.tmp:
            if os.environ.get("KEEP_TMP") == "1" or R.counts["FAIL"]:
                print(f"kept {E.tmp} (logs of redis, postgres, relayd a/b and nginx)", flush=True)
            else:
                shutil.rmtree(E.tmp, ignore_errors=True)
    c = R.counts
    print(f"cluster suite took {time.monotonic() - R.t0:.1f} s", flush=True)
    print(f"cluster: {c['PASS']} passed, {c['FAIL']} failed, {c['SKIP']} skipped", flush=True)
    return 1 if c["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())

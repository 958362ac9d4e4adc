#!/usr/bin/env python3
"""relayd behind the shipped reverse-proxy configs (deploy/nginx/relayd.conf,
deploy/caddy/Caddyfile), TLS-terminated, on loopback only.

In a temporary directory: a self-signed certificate for 127.0.0.1 (openssl,
IP SAN; every client verifies it), relayd on a free port with a site made by
`relayctl site add --data-dir`, and nginx and Caddy as foreground processes
whose configs are generated from the files in deploy/ (only listen ports,
certificate, upstream and log paths are substituted). Then, through each
proxy: WSS + signed HTTPS publish, SSE without buffering, two real
y-websocket clients, a WebSocket kept open across relayd pings, the headers
the proxy sends upstream, and the per-address connection limits with and
without --trusted-proxy. Prints one PASS/FAIL/SKIP line per check and exits
non-zero on any failure. Everything it starts is stopped before it exits.

Env: RELAYD_BIN, RELAYCTL_BIN (default .build/debug/), NGINX_BIN, CADDY_BIN
(default: from PATH), RELAY_REQUIRE_PEERS=1 (a missing nginx, caddy or node is
a failure, not a skip), KEEP_TMP=1 (keep the temp dir; it is kept on failure).
Usage: run_proxy_tests.py [--only nginx|caddy] [--break NAME] [--list-breaks]
--break applies a deliberate mistake to the generated config to show that the
checks catch it (the run is then expected to fail).
"""
import argparse
import asyncio
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "../../.."))
sys.path.insert(0, os.path.join(REPO, "Tests/peers/server"))
sys.path.insert(0, os.path.join(REPO, "Tests/peers"))
import relaypeer as rp  # noqa: E402  (token minting, v1 signing, SSE parsing)

from websockets.asyncio.client import connect  # noqa: E402
from websockets.exceptions import ConnectionClosed, InvalidStatus  # noqa: E402

RELAYD = os.environ.get("RELAYD_BIN") or os.path.join(REPO, ".build/debug/relayd")
RELAYCTL = os.environ.get("RELAYCTL_BIN") or os.path.join(REPO, ".build/debug/relayctl")
NGINX_SHIPPED = os.path.join(REPO, "deploy/nginx/relayd.conf")
CADDY_SHIPPED = os.path.join(REPO, "deploy/caddy/Caddyfile")
YJS_SESSION = os.path.join(REPO, "Tests/peers/yjs/ywebsocket-session.cjs")
NODE_PATH = os.environ.get("NODE_PATH") or "/usr/share/nodejs"
TOTAL_TIMEOUT = 120  # seconds; the whole run is cut off after this (a normal run takes about 10 s)

# relayd settings the checks rely on.
PING_INTERVAL = 2      # --ping-interval in the functional phase
IDLE_TIMEOUT = 5       # --idle-timeout there: the long socket must get its pongs through
KEEP_OPEN_S = 7.0      # how long the long socket stays open (several pings, past the idle timeout)
SSE_HEARTBEAT = 15     # --sse-heartbeat: an event must beat it by far
SSE_DEADLINE_S = 2.0   # ... arriving within this of its publish
PER_IP = 2             # --max-connections-per-ip in the limit phases
RELAYD_MAX_BODY = 4 * 1024 * 1024  # relayd's default --max-publish-body-bytes

# Deliberate mistakes (--break): (proxy, text in the generated config, replacement).
BREAKS = {
    "nginx-sse-buffering": ("nginx", "proxy_buffering off;", "proxy_buffering on; proxy_ignore_headers X-Accel-Buffering;"),
    "nginx-no-http2": ("nginx", "ssl http2;", "ssl;"),
    "nginx-no-upgrade": ("nginx", "proxy_set_header Upgrade $http_upgrade;", ""),
    "nginx-forwarded": ("nginx", 'proxy_set_header Forwarded "";', ""),
    "nginx-xff-replace": ("nginx", "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
                          "proxy_set_header X-Forwarded-For $http_x_forwarded_for;"),
    "nginx-short-timeout": ("nginx", "proxy_read_timeout 300s;", "proxy_read_timeout 1s;"),
    "nginx-small-body": ("nginx", "client_max_body_size 5m;", "client_max_body_size 1m;"),
    "caddy-forwarded": ("caddy", "\t\theader_up -Forwarded\n", ""),
    "caddy-no-upgrade": ("caddy", "header_up -Forwarded", "header_up -Forwarded\n\t\theader_up -Upgrade"),
    # relayd trusting too much: every loopback address, so direct clients' headers count too.
    "relayd-trust-all": ("relayd", "127.0.0.1", "127.0.0.0/8"),
}


# --- report -----------------------------------------------------------------------

from suite import Report, free_port, tail  # noqa: E402

R = Report()


# --- processes ------------------------------------------------------------------------

class Procs:
    """Every process the harness starts, each in its own process group, so that
    stopping one also ends its children (nginx workers) and nothing else."""

    def __init__(self):
        self.live = []

    def start(self, name, argv, log, env=None, cwd=None):
        out = open(log, "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                             start_new_session=True)
        out.close()
        p.name, p.log = name, log
        self.live.append(p)
        return p

    def stop(self, p, grace=5.0):
        if p not in self.live:
            return
        self.live.remove(p)
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(p.pid, signal.SIGKILL)  # the group we created: leftover children
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p, grace=3.0)


PROCS = Procs()


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("RELAY_") and k not in ("NODE_TLS_REJECT_UNAUTHORIZED", "SSLKEYLOGFILE")}
    env.update(extra)
    return env


def wait_port(port, proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


# --- TLS clients ------------------------------------------------------------------------

class Env:
    """What every check needs: ports, the certificate, the site, the temp dir."""
    tmp = cert = key = None
    site = None
    relayd_port = None
    relayd = None
    relayd_log = None
    trusted_supported = False


E = Env()


def tls_context():
    ctx = ssl.create_default_context(cafile=E.cert)  # only our certificate; hostname (IP SAN) checked
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


def https(port, method, path, body=None, headers=None, source="127.0.0.1", timeout=10):
    """One HTTPS request through a proxy; (status, headers, body bytes)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls_context(), timeout=timeout,
                                       source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def publish(port, channel, event, data_json, source="127.0.0.1"):
    body = rp.envelope(channel, event, data_json)
    status, _, raw = https(port, "POST", "/publish", body, rp.v1_headers(E.site, body), source=source)
    return status, rp.jbody(raw)


async def apublish(port, channel, event, data_json, source="127.0.0.1"):
    return await asyncio.to_thread(publish, port, channel, event, data_json, source)


def token(**kw):
    return rp.mint(E.site, **kw)[0]


async def wss(port, path="/ws", source="127.0.0.1", headers=None, scheme="wss"):
    url = f"{scheme}://127.0.0.1:{port}{path}"
    return await connect(url, ssl=tls_context() if scheme == "wss" else None, local_addr=(source, 0), proxy=None,
                         open_timeout=5, ping_interval=None, close_timeout=2, max_size=None, compression=None,
                         additional_headers=headers or {})


async def ws_subscribed(port, channel, source="127.0.0.1", headers=None, scheme="wss"):
    """Opens /ws with a token and subscribes. Returns (ws, None) once `subscribed`
    arrived, or (None, why) when the connection was refused or closed."""
    q = "?token=" + urllib.parse.quote(token(), safe="")
    try:
        ws = await wss(port, "/ws" + q, source, headers, scheme)
    except InvalidStatus as e:
        return None, f"upgrade refused with HTTP {e.response.status_code}"
    except (OSError, asyncio.TimeoutError, Exception) as e:  # noqa: BLE001 (reported, not hidden)
        return None, f"could not open: {type(e).__name__}: {e}"
    try:
        await ws.send(rp.compact({"type": "subscribe", "channels": [channel]}))
        raw, j, _ = await rp.until(ws, lambda j: j.get("type") in ("subscribed", "error"), 5)
        if j and j.get("type") == "subscribed":
            return ws, None
        await ws.close()
        return None, f"no subscribed answer (got {raw})"
    except ConnectionClosed as e:
        rc = e.rcvd
        return None, f"closed {rc.code if rc else 1006} {rc.reason if rc else ''}".strip()


async def refused_or_admitted(port, channel, source, headers=None, scheme="wss"):
    """("admitted", ws) or ("closed <code> <reason>", None)."""
    ws, why = await ws_subscribed(port, channel, source, headers, scheme)
    if ws is not None:
        return "admitted", ws
    return why, None


class TLSSSE(rp.SSE):
    """relaypeer's SSE reader over a verified TLS socket from a chosen source address. It asks
    for compression as browsers do (a proxy that compresses event streams must still flush
    each event) and inflates a gzip body as it arrives."""

    def __init__(self, port, query, source="127.0.0.1", timeout=5.0):
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.s = tls_context().wrap_socket(raw, server_hostname="127.0.0.1")
        req = (f"GET /sse?{query} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
               f"Accept-Encoding: gzip\r\nOrigin: https://wp.example\r\n\r\n")
        self.s.sendall(req.encode())
        self._read_head(timeout)
        enc = self.headers.get("content-encoding", "").lower()
        if enc not in ("", "identity", "gzip"):
            raise ConnectionError(f"unexpected Content-Encoding {enc!r}")
        self.inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if enc == "gzip" else None

    def _decode(self):
        if self.inflate is None:
            return super()._decode()
        plain, self.body = self.body, b""
        super()._decode()
        self.body = plain + self.inflate.decompress(self.body)

    def _fill(self, deadline):
        try:
            return super()._fill(deadline)
        except ssl.SSLError:
            self.eof = True
            return False


def sse_query(channels, v=2):
    return "token=" + urllib.parse.quote(token(v=v), safe="") + "&channels=" + urllib.parse.quote(",".join(channels))


# --- relayd --------------------------------------------------------------------------------

def relayd_help():
    try:
        return subprocess.run([RELAYD, "--help"], capture_output=True, text=True, timeout=10, env=clean_env()).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"(relayd --help failed: {e})"


def start_relayd(phase, *args):
    """relayd on E.relayd_port (the port the proxies forward to) with the temp data dir."""
    E.relayd_log = os.path.join(E.tmp, f"relayd-{phase}.log")
    argv = [RELAYD, "--host", "127.0.0.1", "--port", str(E.relayd_port), "--data-dir", os.path.join(E.tmp, "data"),
            "--dev-site", "false", "--log-level", "info", "--yjs-persistence", "memory", *args]
    E.relayd = PROCS.start(f"relayd ({phase})", argv, E.relayd_log, env=clean_env())
    end = time.monotonic() + 15
    while time.monotonic() < end:
        if E.relayd.poll() is not None:
            break
        try:
            c = http.client.HTTPConnection("127.0.0.1", E.relayd_port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                c.close()
                return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"relayd ({' '.join(args)}) did not start: {tail(E.relayd_log)}")


def wait_idle(timeout=5.0):
    """Until relayd counts no connection (closed sockets release their per-address slots)."""
    end = time.monotonic() + timeout
    n = None
    while time.monotonic() < end:
        try:
            c = http.client.HTTPConnection("127.0.0.1", E.relayd_port, timeout=1)
            c.request("GET", "/healthz")
            n = json.loads(c.getresponse().read()).get("active_connections")
            c.close()
            if n == 0:
                return True
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"relayd still counts {n} connection(s) {timeout} s after the clients closed")


def stop_relayd():
    if E.relayd is not None:
        PROCS.stop(E.relayd)
        E.relayd = None


# --- proxies: configs generated from deploy/ ---------------------------------------------------

def substitute(text, subs, source):
    """Applies (old, new, expected count) substitutions; a missing line means the shipped
    file changed in a way the tests no longer cover, which is an error."""
    for old, new, count in subs:
        n = text.count(old)
        if n != count:
            raise ValueError(f"{os.path.relpath(source, REPO)}: expected {count} occurrence(s) of {old!r}, found {n}; "
                             "update Tests/peers/proxy/run_proxy_tests.py together with the shipped config")
        text = text.replace(old, new)
    return text


def find_bin(var, name, debian_path):
    """$var if set (it must be executable), else `name` on PATH, else Debian's path; None when missing."""
    if os.environ.get(var):
        return os.environ[var] if os.access(os.environ[var], os.X_OK) else None
    return shutil.which(name) or (debian_path if os.access(debian_path, os.X_OK) else None)


def apply_break(proxy, text, brk):
    if brk and BREAKS[brk][0] == proxy:
        _, old, new = BREAKS[brk]
        text = substitute(text, [(old, new, 1)], f"--break {brk}")
    return text


def write_nginx_conf(d, site, workers):
    """Writes `site` (a shipped server file, substituted) as `d`/relayd.conf inside a main
    nginx.conf with the parts of Debian's /etc/nginx/nginx.conf that matter here, every path in
    `d` (the shipped file is included in the http block like sites-enabled/*); returns its path."""
    user = "user root;\n" if os.geteuid() == 0 else ""  # workers must write the temp dirs below
    mime = "include /etc/nginx/mime.types;\n" if os.path.exists("/etc/nginx/mime.types") else ""
    main = f"""{user}worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 512; }}
http {{
  {mime}default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  gzip on;
  access_log {d}/access.log;
  client_body_temp_path {d}/client_body;
  proxy_temp_path {d}/proxy;
  fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi;
  scgi_temp_path {d}/scgi;
  include {d}/relayd.conf;
}}
"""
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "relayd.conf"), "w") as f:
        f.write(site)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(main)
    return os.path.join(d, "nginx.conf")


class Proxy:
    name = None
    port = None
    proc = None

    def url(self):
        return f"https://127.0.0.1:{self.port}"


class Nginx(Proxy):
    name = "nginx"

    def __init__(self, brk):
        self.bin = find_bin("NGINX_BIN", "nginx", "/usr/sbin/nginx")
        self.brk = brk
        self.dir = os.path.join(E.tmp, "nginx")
        self.port = free_port()

    def config(self):
        with open(NGINX_SHIPPED) as f:
            shipped = f.read()
        site = substitute(shipped, [
            ("server 127.0.0.1:8080;", f"server 127.0.0.1:{E.relayd_port};", 2),  # relayd, relayd_websocket
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.port} ssl http2;", 1),
            ("listen [::]:443 ssl http2;", "", 1),  # loopback IPv4 only
            ("/etc/letsencrypt/live/relay.example.com/fullchain.pem", E.cert, 1),
            ("/etc/letsencrypt/live/relay.example.com/privkey.pem", E.key, 1),
            ("/var/log/nginx/relayd.access.log", os.path.join(self.dir, "relayd.access.log"), 1),
        ], NGINX_SHIPPED)
        site = apply_break("nginx", site, self.brk)
        return write_nginx_conf(self.dir, site, workers=1)

    def argv(self, conf, *extra):
        return [self.bin, "-p", self.dir + "/", "-e", os.path.join(self.dir, "error.log"), "-c", conf, *extra]

    def validate(self, conf):
        r = subprocess.run(self.argv(conf, "-t", "-q"), capture_output=True, text=True, timeout=20, env=clean_env())
        return r.returncode == 0 and not re.search(r"\[(warn|emerg|alert|crit)\]", r.stderr), (r.stderr or "").strip()

    def start(self, conf):
        self.proc = PROCS.start("nginx", self.argv(conf, "-g", "daemon off;"), os.path.join(self.dir, "stdout.log"),
                                env=clean_env())
        return wait_port(self.port, self.proc)

    def logs(self):
        return tail(os.path.join(self.dir, "error.log")) + "\n" + tail(os.path.join(self.dir, "stdout.log"))


class Caddy(Proxy):
    name = "caddy"

    def __init__(self, brk):
        self.bin = find_bin("CADDY_BIN", "caddy", "/usr/bin/caddy")
        self.brk = brk
        self.dir = os.path.join(E.tmp, "caddy")
        self.port = free_port()
        self.http_port = free_port()

    def config(self):
        with open(CADDY_SHIPPED) as f:
            shipped = f.read()
        m = re.search(r"^\{\n(?:.*\n)*?^\}\n", shipped, re.M)
        if not m or "email admin@example.com" not in m.group(0):
            raise ValueError(f"{os.path.relpath(CADDY_SHIPPED, REPO)}: no global options block with the example email; "
                             "update Tests/peers/proxy/run_proxy_tests.py together with the shipped config")
        d = self.dir
        # Test-only global options: no admin endpoint, no certificate automation or redirects
        # (nothing may listen on 80/443 or leave the machine), storage in the temp dir.
        globals_ = (f"{{\n\tadmin off\n\tauto_https off\n\thttp_port {self.http_port}\n\thttps_port {self.port}\n"
                    f"\tstorage file_system {d}/storage\n}}\n")
        text = shipped[:m.start()] + globals_ + shipped[m.end():]
        text = substitute(text, [
            ("relay.example.com {", f"https://127.0.0.1:{self.port} {{\n\tbind 127.0.0.1\n\ttls {E.cert} {E.key}", 1),
            ("reverse_proxy 127.0.0.1:8080 {", f"reverse_proxy 127.0.0.1:{E.relayd_port} {{", 1),
            ("reverse_proxy @websocket 127.0.0.1:8080 {", f"reverse_proxy @websocket 127.0.0.1:{E.relayd_port} {{", 1),
        ], CADDY_SHIPPED)
        text = apply_break("caddy", text, self.brk)
        os.makedirs(d, exist_ok=True)
        path = os.path.join(d, "Caddyfile")
        with open(path, "w") as f:
            f.write(text)
        return path

    def env(self):
        d = self.dir
        for sub in ("home", "data", "config"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        return clean_env(HOME=f"{d}/home", XDG_DATA_HOME=f"{d}/data", XDG_CONFIG_HOME=f"{d}/config")

    def validate(self, conf):
        """The shipped file as it is and the generated one both adapt without warnings."""
        for path in (CADDY_SHIPPED, conf):
            r = subprocess.run([self.bin, "adapt", "--config", path, "--adapter", "caddyfile"], capture_output=True,
                               text=True, timeout=20, env=self.env(), cwd=self.dir)
            warnings = [ln for ln in r.stderr.splitlines() if '"level":"warn"' in ln or '"level":"error"' in ln]
            if r.returncode != 0 or warnings:
                return False, f"{path}: {(r.stderr or '').strip()}"
        return True, ""

    def start(self, conf):
        self.proc = PROCS.start("caddy", [self.bin, "run", "--config", conf, "--adapter", "caddyfile"],
                                os.path.join(self.dir, "caddy.log"), env=self.env(), cwd=self.dir)
        return wait_port(self.port, self.proc)

    def logs(self):
        return tail(os.path.join(self.dir, "caddy.log"))


def shipped_static_checks():
    """What the live checks cannot see in a short run: timeouts longer than the run."""
    with open(NGINX_SHIPPED) as f:
        ng = f.read()
    for d in ("proxy_read_timeout", "proxy_send_timeout"):
        m = re.search(rf"^\s*{d}\s+(\d+)s;", ng, re.M)
        secs = int(m.group(1)) if m else None
        R.check(f"nginx: {d} above relayd's idle timeout", secs is not None and secs > 2 * 65,
                f"{secs} s > 130 s (relayd --idle-timeout 65 s, twice that on /yjs; pings every 20 s)",
                f"{secs!r}: must be more than 130 s so relayd, not nginx, ends quiet connections")
    with open(CADDY_SHIPPED) as f:
        cd = f.read()
    short = re.findall(r"^\s*(read_timeout|write_timeout|stream_timeout)\s+(\S+)", cd, re.M)
    R.check("caddy: no proxy timeout that could end a quiet WebSocket", not short,
            "none set (Caddy keeps proxied streams open; relayd's pings and idle timeout decide)",
            f"found {short}: check they are above 130 s, then teach this check about them")


# --- checks through one proxy ----------------------------------------------------------------------

async def long_socket(px):
    """Opened at the start of the functional phase: answers relayd's pings with pongs and
    records them; checked at the end (after KEEP_OPEN_S)."""
    st = {"pings": 0, "closed": None, "opened": time.monotonic(), "ws": None, "messages": []}
    ws, why = await ws_subscribed(px.port, f"long-{px.name}")
    if ws is None:
        st["closed"] = why
        return st, None
    st["ws"] = ws

    async def reader():
        try:
            while True:
                m = await ws.recv()
                if m == '{"type":"ping"}':
                    st["pings"] += 1
                    await ws.send('{"type":"pong"}')
                else:
                    st["messages"].append(m)
        except ConnectionClosed as e:
            rc = e.rcvd
            st["closed"] = f"closed {rc.code if rc else 1006} {rc.reason if rc else ''} after " \
                           f"{time.monotonic() - st['opened']:.1f} s"
    return st, asyncio.create_task(reader())


async def finish_long_socket(px, st, task):
    name = f"{px.name}: WebSocket stays open across relayd pings"
    if task is None:
        R.fail(name, f"could not open: {st['closed']}")
        return
    left = KEEP_OPEN_S - (time.monotonic() - st["opened"])
    if left > 0:
        await asyncio.sleep(left)
    held = time.monotonic() - st["opened"]
    if st["closed"]:
        hint = " (relayd got no pong for its idle timeout: the proxy did not pass client frames on)" \
            if st["closed"].startswith("closed 4002") else ""
        R.fail(name, f"{st['closed']}{hint}; {st['pings']} pings seen")
        task.cancel()
        return
    # Still usable both ways: a publish reaches it.
    status, j = await apublish(px.port, f"long-{px.name}", "still.here", '{"n":7}')
    end = time.monotonic() + 3
    while time.monotonic() < end and not any('"still.here"' in m for m in st["messages"]):
        await asyncio.sleep(0.05)
    got = any('"still.here"' in m for m in st["messages"])
    R.check(name, st["pings"] >= 3 and got and not st["closed"],
            f"open {held:.1f} s (relayd --ping-interval {PING_INTERVAL} --idle-timeout {IDLE_TIMEOUT}), "
            f"{st['pings']} pings answered, then a publish arrived",
            f"open {held:.1f} s, {st['pings']} pings (want >= 3), publish {status} {j}, delivered={got}, "
            f"closed={st['closed']}")
    task.cancel()
    try:
        await st["ws"].close()
    except Exception:  # noqa: BLE001
        pass


async def check_wss_publish(px):
    name = f"{px.name}: WSS subscriber gets a signed HTTPS POST /publish"
    ch = f"events-{px.name}"
    ws, why = await ws_subscribed(px.port, ch)
    if ws is None:
        R.fail(name, f"wss://127.0.0.1:{px.port}/ws: {why}")
        return
    try:
        data = '{"post_id":5,"title":"caf\\u00e9 \\ud83d\\ude00"}'
        t0 = time.monotonic()
        status, j = await apublish(px.port, ch, "post.updated", data)
        raw, m, _ = await rp.until(ws, lambda j: j.get("type") == "message", 5)
        dt = time.monotonic() - t0
        good = status == 200 and j.get("ok") is True and m is not None and m.get("event") == "post.updated" \
            and raw is not None and '"data":' + data in raw
        R.check(name, good, f"publish 200 (deliveries={j.get('deliveries')}), message in {dt * 1000:.0f} ms, data byte for byte",
                f"publish {status} {j}; frame {raw}")
    finally:
        await ws.close()


def check_sse_unbuffered(px):
    name = f"{px.name}: SSE event arrives at once (no proxy buffering)"
    ch = f"sse-{px.name}"
    try:
        s = TLSSSE(px.port, sse_query([ch]))
    except (OSError, ConnectionError) as e:
        R.fail(name, f"GET /sse through the proxy: {e} (a buffering proxy holds back even the response head)")
        return
    try:
        if s.status != 200 or not s.headers.get("content-type", "").startswith("text/event-stream"):
            R.fail(name, f"status {s.status}, content-type {s.headers.get('content-type')!r}")
            return
        # Publish once relayd has the stream registered (deliveries counts it), then time the event.
        deliveries, status, j, t_pub = 0, None, {}, None
        end = time.monotonic() + 5
        n = 0
        while time.monotonic() < end and deliveries < 1:
            n += 1
            t_pub = time.monotonic()
            status, j = publish(px.port, ch, "sse.check", '{"n":%d}' % n)
            deliveries = j.get("deliveries", 0) if status == 200 else 0
            if deliveries < 1:
                time.sleep(0.1)
        if deliveries < 1:
            R.fail(name, f"relayd never had the SSE stream registered (last publish {status} {j})")
            return
        want = '{"n":%d}' % n
        evs = s.collect(SSE_DEADLINE_S + 0.5, stop=lambda out: any(want in (e["data"] or "") for e in out))
        dt = time.monotonic() - t_pub
        got = any(want in (e["data"] or "") for e in evs)
        R.check(name, got and dt <= SSE_DEADLINE_S,
                f"event {dt * 1000:.0f} ms after its publish (heartbeat every {SSE_HEARTBEAT} s; "
                f"X-Accel-Buffering={s.headers.get('x-accel-buffering')!r})",
                f"no event within {SSE_DEADLINE_S} s of a publish relayd delivered to the stream "
                f"(got {[e['data'] for e in evs]}): the proxy buffers /sse")
    finally:
        s.close()


def check_sse_http2(px):
    """The same over HTTP/2, as browsers' EventSource uses it through these proxies (curl, which
    negotiates h2 by ALPN; -N: no buffering on curl's side)."""
    name = f"{px.name}: SSE over HTTP/2 arrives at once"
    curl = shutil.which("curl")
    if not curl:
        R.missing(name, "curl not found")
        return
    ch = f"sse2-{px.name}"
    p = subprocess.Popen([curl, "-sS", "-N", "-v", "--http2", "--compressed", "--cacert", E.cert, "--max-time", "10",
                          f"{px.url()}/sse?{sse_query([ch])}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=clean_env())
    lines, err = [], []
    got = threading.Event()

    def read():
        for ln in p.stdout:
            lines.append(ln.decode(errors="replace"))
            if '"sse2.check"' in lines[-1]:
                got.set()
    threading.Thread(target=read, daemon=True).start()
    threading.Thread(target=lambda: err.extend(ln.decode(errors="replace") for ln in p.stderr), daemon=True).start()
    try:
        deliveries, j, t_pub, end = 0, {}, None, time.monotonic() + 5
        while time.monotonic() < end and deliveries < 1:
            t_pub = time.monotonic()
            status, j = publish(px.port, ch, "sse2.check", '{"h2":true}')
            deliveries = j.get("deliveries", 0) if status == 200 else 0
            if deliveries < 1:
                time.sleep(0.1)
        if deliveries < 1:
            R.fail(name, f"relayd never had the stream registered (last publish {j}); curl: {''.join(err)[-300:]}")
            return
        arrived = got.wait(SSE_DEADLINE_S + 0.5)
        dt = time.monotonic() - t_pub
    finally:
        p.terminate()
        try:
            p.wait(3)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    time.sleep(0.05)
    h2 = any(re.search(r"^< HTTP/2 200", ln) for ln in err)
    R.check(name, h2 and arrived and dt <= SSE_DEADLINE_S, f"HTTP/2 200, event {dt * 1000:.0f} ms after its publish",
            f"HTTP/2 response: {h2}; event within {SSE_DEADLINE_S} s: {arrived and dt <= SSE_DEADLINE_S} "
            f"(stdout {''.join(lines)[-200:]!r}, curl {''.join(err)[-300:]!r})")


async def check_yjs(px):
    name = f"{px.name}: two y-websocket clients converge over wss://.../yjs/<room>"
    node = shutil.which("node")
    if not node or not os.path.isdir(os.path.join(NODE_PATH, "y-websocket")):
        R.missing(name, "node with y-websocket (Debian node-y-websocket) not found")
        return
    cfg = {"url": px.url(), "site_id": E.site["site_id"], "jwt_secret": E.site["jwt_secret"],
           "room": f"proxy/{px.name}:{os.getpid()}"}
    env = clean_env(NODE_PATH=NODE_PATH, NODE_EXTRA_CA_CERTS=E.cert)
    t0 = time.monotonic()
    p = await asyncio.create_subprocess_exec(node, YJS_SESSION, "edit", json.dumps(cfg), env=env,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(p.communicate(), 30)
    except asyncio.TimeoutError:
        R.fail(name, "node client did not finish in 30 s")
        return
    finally:
        if p.returncode is None:  # timed out or the run was cut off
            p.kill()
            await p.wait()
    try:
        res = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {"error": (out + err).decode(errors="replace")[-500:]}
    want = "hello wörld 😀"
    good = p.returncode == 0 and res.get("converged") is True and res.get("text_a") == want \
        and res.get("late_text") == want
    R.check(name, good, f"both synced, converged on {want!r}, a late joiner got it ({time.monotonic() - t0:.1f} s)",
            f"exit {p.returncode}: {json.dumps(res)[:600]} {err.decode(errors='replace')[-300:]}")


def check_body_size(px):
    """A body above nginx's default limit (1 MiB) reaches relayd, and relayd (not the proxy)
    answers one at relayd's own body limit."""
    name = f"{px.name}: publish bodies up to relayd's 4 MiB limit reach relayd"
    ch = f"big-{px.name}"
    data = '"' + "x" * (1536 * 1024) + '"'  # 1.5 MiB of data: under the site limit (2 MiB)
    status1, j1 = publish(px.port, ch, "big", data)
    filler = RELAYD_MAX_BODY - len(rp.envelope(ch, "huge", '""'))
    huge = '"' + "y" * filler + '"'  # a body of exactly --max-publish-body-bytes; its data is over the site limit
    body = rp.envelope(ch, "huge", huge)
    assert len(body) == RELAYD_MAX_BODY
    status2, _, raw2 = https(px.port, "POST", "/publish", body, rp.v1_headers(E.site, body), timeout=20)
    j2 = rp.jbody(raw2)
    good = status1 == 200 and j1.get("ok") is True and status2 == 413 and j2.get("error") in ("message_too_large",
                                                                                                "payload_too_large")
    R.check(name, good, f"1.5 MiB data: 200; 4 MiB body: relayd's own 413 {j2.get('error')}",
            f"1.5 MiB: {status1} {str(j1)[:200]}; 4 MiB body: {status2} {str(j2)[:200]} "
            "(an HTML 413 is the proxy's body limit)")


def check_doctor(px):
    """relayctl doctor through the proxy: every check ok (the certificate expires soon: a
    warning). Its order (plain requests, then a WebSocket upgrade, then SSE) is a browser
    page's: it caught the proxies sending an upgrade on a kept-alive connection to relayd,
    which relayd answers with 307."""
    name = f"{px.name}: relayctl doctor through the proxy finds no problem"
    for attempt in range(3):  # three runs: each reuses the proxy's kept-alive connections
        r = subprocess.run([RELAYCTL, "doctor", "--url", px.url(), "--ca-file", E.cert,
                            "--site-key", E.site["site_key"], "--secret", E.site["publish_secret"],
                            "--jwt-secret", E.site["jwt_secret"]], capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        good = r.returncode == 0 and all(f"ok   {c}:" in out for c in ("reachable", "websocket", "sse", "site"))
        if not good:
            break
    R.check(name, good, "reachable, TLS, clock, WebSocket, SSE and site checks pass (3 runs)",
            f"run {attempt + 1}: exit {r.returncode}: {out.strip()[-700:]}")


def check_metrics_restricted(px):
    name = f"{px.name}: /metrics refused to other addresses"
    st_remote, _, _ = https(px.port, "GET", "/metrics", source="127.0.0.5")
    st_local, _, body = https(px.port, "GET", "/metrics", source="127.0.0.1")
    R.check(name, st_remote == 403 and st_local == 200 and b"#" in body,
            "403 from 127.0.0.5, 200 from 127.0.0.1", f"from 127.0.0.5: {st_remote}, from 127.0.0.1: {st_local}")


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """Stands in for relayd to show what the proxy sends upstream."""
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({"peer": self.client_address[0], "path": self.path,
                           "headers": [[k, v] for k, v in self.headers.items()]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # so no proxy keeps a connection to it for relayd's requests
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *a):
        pass


def check_upstream_headers(px):
    name = f"{px.name}: headers to relayd (X-Forwarded-For/-Proto, Host, no forged Forwarded)"
    try:
        st, _, raw = https(px.port, "GET", "/echo?x=1", source="127.0.0.5",
                           headers={"X-Forwarded-For": "10.9.9.9", "Forwarded": "for=10.9.9.9;proto=http"})
        j = json.loads(raw)
    except (OSError, ValueError) as e:
        R.fail(name, f"request through the proxy to the echo upstream failed: {e}")
        return
    h = {}
    for k, v in j["headers"]:
        h.setdefault(k.lower(), []).append(v)
    xff = ", ".join(h.get("x-forwarded-for", []))
    rightmost = xff.split(",")[-1].strip() if xff else None
    problems = []
    if rightmost != "127.0.0.5":
        problems.append(f"X-Forwarded-For {xff!r}: its last address must be the client's (127.0.0.5)")
    if h.get("x-forwarded-proto") != ["https"]:
        problems.append(f"X-Forwarded-Proto {h.get('x-forwarded-proto')}")
    if h.get("host") != ["127.0.0.1"] and h.get("host") != [f"127.0.0.1:{px.port}"]:
        problems.append(f"Host {h.get('host')} (the client asked for 127.0.0.1:{px.port})")
    if "forwarded" in h:
        problems.append(f"the client's Forwarded header reached relayd: {h['forwarded']}")
    if j["path"] != "/echo?x=1":
        problems.append(f"path {j['path']!r}")
    R.check(name, not problems, f"X-Forwarded-For {xff!r}, X-Forwarded-Proto https, Host {h.get('host')[0]}, "
                                f"Forwarded removed", "; ".join(problems))


# --- per-address limits -------------------------------------------------------------------------

def refused_log_lines():
    try:
        with open(E.relayd_log, errors="replace") as f:
            return [ln for ln in f if "ip=" in ln]
    except OSError:
        return []


def check_refusal_logged(name, want_ip, not_ips):
    """relayd's text log names refused connections with ip=<addr>: the client's address as relayd
    should see it. Skipped while the relayd under test logs no ip= at all."""
    lines = refused_log_lines()
    if not lines:
        R.skip(name, "this relayd logs no ip=<addr> (nothing to assert yet)")
        return
    has = lambda ln, ip: re.search(rf"\bip={re.escape(ip)}(?![\d.:])", ln) is not None  # noqa: E731
    named = [ln for ln in lines if has(ln, want_ip)]
    wrong = [ln.strip() for ln in lines if any(has(ln, ip) for ip in not_ips)]
    R.check(name, named and not wrong, f"{len(named)} refusal line(s) with ip={want_ip}, none with {'/'.join(not_ips)}",
            f"want ip={want_ip}, not {not_ips}; lines: {[ln.strip() for ln in lines][-6:]}")


async def check_trusted_through(px, a, b):
    """relayd --trusted-proxy 127.0.0.1 --max-connections-per-ip 2: buckets are the clients' addresses."""
    keep = []
    try:
        ch = f"limit-{px.name}"
        r1, w1 = await refused_or_admitted(px.port, ch, a)
        r2, w2 = await refused_or_admitted(px.port, ch, a)
        keep += [w for w in (w1, w2) if w]
        r3, w3 = await refused_or_admitted(px.port, ch, a)
        r4, w4 = await refused_or_admitted(px.port, ch, b)
        keep += [w for w in (w3, w4) if w]
        R.check(f"{px.name}: --trusted-proxy: per-address limit applies to the client behind the proxy",
                r1 == r2 == "admitted" and r3.startswith("closed 1013") and r4 == "admitted",
                f"{a}: 2 admitted, third closed 1013; {b}: admitted",
                f"{a}: {r1} / {r2} / third: {r3}; {b}: {r4}")
        # Forged headers through the proxy do not move a client out of its (full) bucket.
        f1, fw1 = await refused_or_admitted(px.port, ch, a, {"X-Forwarded-For": "10.9.9.9"})
        f2, fw2 = await refused_or_admitted(px.port, ch, a, {"Forwarded": "for=10.9.9.9"})
        keep += [w for w in (fw1, fw2) if w]
        R.check(f"{px.name}: --trusted-proxy: forged X-Forwarded-For / Forwarded keep the client's bucket",
                f1.startswith("closed 1013") and f2.startswith("closed 1013"),
                f"{a} with X-Forwarded-For: 10.9.9.9 and with Forwarded: for=10.9.9.9: both closed 1013",
                f"X-Forwarded-For forged: {f1}; Forwarded forged: {f2} (admitted = counted as 10.9.9.9)")
        # SSE shares the bucket: refused after the 200 with wps.error.
        s = await asyncio.to_thread(TLSSSE, px.port, sse_query([ch]), a)
        try:
            evs = await asyncio.to_thread(s.collect, 3.0, lambda out: len(out) > 0)
        finally:
            s.close()
        txt = " ".join(f"{e['event']} {e['data']}" for e in evs)
        R.check(f"{px.name}: --trusted-proxy: SSE from a full address gets wps.error",
                s.status == 200 and "too_many_connections_from_address" in txt and "wps.error" in txt,
                f"{a}: wps.error too_many_connections_from_address", f"status {s.status}, events {txt!r}")
        # relayd's log names the client, not the proxy or a forged address.
        check_refusal_logged(f"{px.name}: --trusted-proxy: refusals logged with the client address", a,
                             ["127.0.0.1", "10.9.9.9"])
    finally:
        for w in keep:
            await w.close()
        await asyncio.to_thread(wait_idle)


async def check_untrusted_peer_direct(a):
    """A direct connection (not through a proxy) from an untrusted address forging headers."""
    keep = []
    try:
        ch = "limit-direct"
        port = E.relayd_port
        r1, w1 = await refused_or_admitted(port, ch, a, {"X-Forwarded-For": "10.9.9.1"}, scheme="ws")
        r2, w2 = await refused_or_admitted(port, ch, a, {"X-Forwarded-For": "10.9.9.2"}, scheme="ws")
        keep += [w for w in (w1, w2) if w]
        r3, w3 = await refused_or_admitted(port, ch, a, {"X-Forwarded-For": "10.9.9.3"}, scheme="ws")
        r4, w4 = await refused_or_admitted(port, ch, a, {"Forwarded": "for=10.9.9.4"}, scheme="ws")
        keep += [w for w in (w3, w4) if w]
        return (r1 == r2 == "admitted" and r3.startswith("closed 1013") and r4.startswith("closed 1013"),
                f"{a} direct, forging X-Forwarded-For 10.9.9.1/.2/.3 and Forwarded for=10.9.9.4: "
                f"2 admitted, then 1013 (counted as {a})",
                f"{r1} / {r2} / third (XFF): {r3} / fourth (Forwarded): {r4} (admitted = relayd trusted the header)")
    finally:
        for w in keep:
            await w.close()
        await asyncio.to_thread(wait_idle)


async def check_shared_bucket(px, sources):
    """relayd without --trusted-proxy: every connection through the proxy is the proxy's."""
    keep = []
    try:
        ch = f"shared-{px.name}"
        rs = []
        for src in sources:
            r, w = await refused_or_admitted(px.port, ch, src)
            rs.append(r)
            if w:
                keep.append(w)
        s = await asyncio.to_thread(TLSSSE, px.port, sse_query([ch]), sources[-1])
        try:
            evs = await asyncio.to_thread(s.collect, 3.0, lambda out: len(out) > 0)
        finally:
            s.close()
        txt = " ".join(f"{e['event']} {e['data']}" for e in evs)
        R.check(f"{px.name}: without --trusted-proxy all clients share the proxy's bucket",
                rs[0] == rs[1] == "admitted" and rs[2].startswith("closed 1013")
                and "too_many_connections_from_address" in txt,
                f"{sources[0]} and {sources[1]} admitted, {sources[2]} closed 1013, SSE from it wps.error",
                f"{list(zip(sources, rs))}; SSE events {txt!r}")
    finally:
        for w in keep:
            await w.close()
        await asyncio.to_thread(wait_idle)  # the slots are shared by the next proxy


# --- the run -----------------------------------------------------------------------------------------

def make_cert():
    r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", E.key, "-out", E.cert,
                        "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "extendedKeyUsage=serverAuth"],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"openssl req failed: {r.stderr.strip()}")


def make_site():
    r = subprocess.run([RELAYCTL, "site", "add", "--data-dir", os.path.join(E.tmp, "data"),
                        "--site-url", "https://proxy.test", "--name", "proxy-tests"],
                       capture_output=True, text=True, timeout=30, env=clean_env())
    if r.returncode != 0:
        raise RuntimeError(f"relayctl site add failed: {r.stderr.strip()}")
    E.site = json.loads(r.stdout)


async def run(args):
    for b, what in (("openssl", "openssl"),):
        if not shutil.which(b):
            R.fail("setup", f"{what} not found")
            return
    for path, what in ((RELAYD, "relayd"), (RELAYCTL, "relayctl")):
        if not os.access(path, os.X_OK):
            R.fail("setup", f"{what} not found at {path} (swift build, or set {what.upper()}_BIN)")
            return
    E.tmp = tempfile.mkdtemp(prefix="relay-proxy-")
    E.cert, E.key = os.path.join(E.tmp, "cert.pem"), os.path.join(E.tmp, "key.pem")
    make_cert()
    make_site()
    E.relayd_port = free_port()
    E.trusted_supported = "--trusted-proxy" in relayd_help()
    if args.brk:
        print(f"NOTE --break {args.brk}: the {BREAKS[args.brk][0]} configuration is deliberately wrong; "
              "failures are expected", flush=True)

    shipped_static_checks()

    # Proxies (they forward to E.relayd_port, where relayd or the echo upstream runs).
    proxies = []
    for cls in (Nginx, Caddy):
        if args.only and cls.name != args.only:
            continue
        px = cls(args.brk)
        if not px.bin:
            R.missing(f"{px.name}: installed", f"{px.name} not found (scripts/install-deps.sh test installs it)")
            continue
        try:
            conf = px.config()
        except ValueError as e:
            R.fail(f"{px.name}: config generated from deploy/", str(e))
            continue
        ok, msg = px.validate(conf)
        label = "nginx -t" if px.name == "nginx" else "caddy adapt"
        if not R.check(f"{px.name}: shipped config passes {label} without warnings", ok, os.path.relpath(
                NGINX_SHIPPED if px.name == "nginx" else CADDY_SHIPPED, REPO), msg[-800:]):
            continue
        if not px.start(conf):
            R.fail(f"{px.name}: starts", f"not listening on 127.0.0.1:{px.port}: {px.logs()[-800:]}")
            continue
        proxies.append(px)
    if not proxies:
        return

    # Phase 1: the headers each proxy sends upstream, with an echo server in relayd's place.
    echo = http.server.ThreadingHTTPServer(("127.0.0.1", E.relayd_port), EchoHandler)
    th = threading.Thread(target=echo.serve_forever, daemon=True)
    th.start()
    try:
        for px in proxies:
            await asyncio.to_thread(check_upstream_headers, px)
    finally:
        echo.shutdown()
        echo.server_close()

    # Phase 2: the relay through each proxy.
    start_relayd("functional", "--sse-heartbeat", str(SSE_HEARTBEAT), "--ping-interval", str(PING_INTERVAL),
                 "--idle-timeout", str(IDLE_TIMEOUT))
    longs = [(px, *(await long_socket(px))) for px in proxies]
    for px in proxies:
        await check_wss_publish(px)
        await asyncio.to_thread(check_sse_unbuffered, px)
        await asyncio.to_thread(check_sse_http2, px)
        await asyncio.to_thread(check_body_size, px)
        await asyncio.to_thread(check_metrics_restricted, px)
        await asyncio.to_thread(check_doctor, px)
        await check_yjs(px)
    for px, st, task in longs:
        await finish_long_socket(px, st, task)
    stop_relayd()

    # Phase 3: without --trusted-proxy every client behind a proxy is the proxy.
    start_relayd("untrusted", "--max-connections-per-ip", str(PER_IP))
    for i, px in enumerate(proxies):
        await check_shared_bucket(px, [f"127.0.0.{5 + 10 * i}", f"127.0.0.{6 + 10 * i}", f"127.0.0.{8 + 10 * i}"])
    ok, good, bad = await check_untrusted_peer_direct("127.0.0.7")
    R.check("direct: without --trusted-proxy forged headers are ignored", ok, good, bad)
    check_refusal_logged("direct: without --trusted-proxy refusals are logged with the peer address", "127.0.0.7",
                         ["10.9.9.3", "10.9.9.4"])
    stop_relayd()

    # Phase 4: --trusted-proxy 127.0.0.1 (the proxies connect from there).
    trusted_names = [f"{px.name}: --trusted-proxy: {what}" for px in proxies for what in (
        "per-address limit applies to the client behind the proxy",
        "forged X-Forwarded-For / Forwarded keep the client's bucket",
        "SSE from a full address gets wps.error",
        "refusals logged with the client address")] + [
        "direct: --trusted-proxy 127.0.0.1: an untrusted peer's forged headers are ignored",
        "direct: --trusted-proxy 127.0.0.1: an untrusted peer's refusals are logged with its address"]
    if not E.trusted_supported:
        for n in trusted_names:
            R.skip(n, f"{RELAYD} has no --trusted-proxy (not in relayd --help); rerun with a relayd that has it")
        return
    trusted = BREAKS[args.brk][2] if args.brk and BREAKS[args.brk][0] == "relayd" else "127.0.0.1"
    start_relayd("trusted", "--trusted-proxy", trusted, "--max-connections-per-ip", str(PER_IP))
    for i, px in enumerate(proxies):
        await check_trusted_through(px, f"127.0.0.{5 + 10 * i}", f"127.0.0.{6 + 10 * i}")
    ok, good, bad = await check_untrusted_peer_direct("127.0.0.7")
    R.check(trusted_names[-2], ok, good, bad)
    check_refusal_logged(trusted_names[-1], "127.0.0.7", ["10.9.9.3", "10.9.9.4"])
    stop_relayd()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["nginx", "caddy"])
    ap.add_argument("--break", dest="brk", choices=sorted(BREAKS))
    ap.add_argument("--list-breaks", action="store_true")
    args = ap.parse_args()
    if args.list_breaks:
        for k, (px, old, new) in sorted(BREAKS.items()):
            print(f"{k}: {px}: {old!r} -> {new!r}")
        return 0

    def on_alarm(*_):
        raise TimeoutError(f"the proxy suite did not finish in {TOTAL_TIMEOUT + 10} s")
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
        if E.relayd_log:
            print(f"--- {E.relayd_log} (tail)\n{tail(E.relayd_log)}", flush=True)
    finally:
        signal.alarm(0)
        PROCS.stop_all()
        if E.tmp:
            if os.environ.get("KEEP_TMP") == "1" or R.counts["FAIL"]:
                print(f"kept {E.tmp} (logs of relayd, nginx and caddy)", flush=True)
            else:
                shutil.rmtree(E.tmp, ignore_errors=True)
    c = R.counts
    print(f"proxy suite took {time.monotonic() - R.t0:.1f} s", flush=True)
    print(f"proxy: {c['PASS']} passed, {c['FAIL']} failed, {c['SKIP']} skipped", flush=True)
    return 1 if c["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())

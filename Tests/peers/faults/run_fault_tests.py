#!/usr/bin/env python3
"""Crash and disk faults against a real relayd (issue 15, item 3).

Every scenario starts its own relayd on a free loopback port with its own data directory
(the dev site relayd creates and prints on first start gives the credentials), drives real
clients, injects the fault, and checks what survived:

1. kill -9 during sustained Yjs typing: 3 rooms x 3 real y-websocket clients (node, Debian's
   yjs / y-websocket / ws) type numbered tokens; each keeps a mirror Y.Doc of only what relayd
   sent it (what relayd stored and broadcast). relayd is SIGKILLed mid-typing and restarted on
   the same data dir and port. A fresh client must find every mirrored (acknowledged) token;
   then the original clients reconnect and every room converges on every token typed,
   including the ones relayd never acknowledged.
2. kill -9 under publish load: /ws subscribers, signed POST /publish load, SIGKILL, restart.
   Every publish answered 200 must have reached each subscriber before the kill or be covered
   by recovered:false (with a new epoch) when it resubscribes with its position; new
   publications then arrive.
3. Full disk: the data dir on a small tmpfs, filled with a ballast file; typing until the disk is
   full. The writer is closed with 1011 "update not stored: storage full", relayd keeps running
   (healthz, reading another room, pub/sub), a site registration fails with a JSON 5xx (or is
   stored for real), nothing acknowledged is lost, and once space is freed the writer's updates
   are accepted again (also after a restart).
4. Read-only disk: ext4 on a loop device mounted errors=remount-ro; the kernel's own
   emergency remount is triggered (sysfs trigger_fs_error) while relayd writes. (A plain
   `mount -o remount,ro` is refused with EBUSY while relayd holds yjs.sqlite open for writing,
   so an errors=remount-ro remount is what a server actually sees.) The writer is closed with
   1011 "update not stored: storage read-only", relayd keeps serving, and after fsck, a rw mount
   and a restart nothing acknowledged is lost and writes are accepted again.
5. A yjs.sqlite with damaged pages (valid header, corrupt b-tree pages): relayd refuses to
   start with a clear error and leaves the file as it was, or serves and refuses the room with
   1011 — never hands out a silently shortened document, never overwrites the file.

Prints one PASS/FAIL/SKIP line per check and exits non-zero on any failure. Everything it
starts is stopped and everything it mounts is unmounted before it exits (also on failure).
Needs root for the mounts (scenarios 3 and 4 FAIL without them unless
RELAY_FAULTS_ALLOW_NO_MOUNT=1, which makes them SKIP).

Env: RELAYD_BIN (default .build/debug/relayd), NODE_PATH (default /usr/share/nodejs),
RELAY_FAULTS_ALLOW_NO_MOUNT=1, KEEP_TMP=1 (keep the temp dir; it is kept on failure).
Usage: run_fault_tests.py [--only kill-yjs,kill-pubsub,full-disk,read-only,corrupt] [--break yjs-memory]
(--break yjs-memory runs relayd with --yjs-persistence memory: the durability checks must fail.)
"""
import argparse
import asyncio
import atexit
import http.client
import json
import os
import queue
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "../../.."))
sys.path.insert(0, os.path.join(REPO, "Tests/peers/server"))
sys.path.insert(0, os.path.join(REPO, "Tests/peers"))
import relaypeer as rp  # noqa: E402  (token minting, v1 signing)

from websockets.exceptions import ConnectionClosed  # noqa: E402

RELAYD = os.environ.get("RELAYD_BIN") or os.path.join(REPO, ".build/debug/relayd")
NODE_PATH = os.environ.get("NODE_PATH") or "/usr/share/nodejs"
TYPISTS = os.path.join(HERE, "typists.cjs")
ALLOW_NO_MOUNT = os.environ.get("RELAY_FAULTS_ALLOW_NO_MOUNT") == "1"
# Deliberate mistakes (--break) that show the checks catch them; the run is then expected to fail.
BREAKS = {
    # relayd keeps Yjs rooms in memory only: acknowledged updates are gone after a restart.
    "yjs-memory": ["--yjs-persistence", "memory"],
}
EXTRA_RELAYD_ARGS = []
TOTAL_TIMEOUT = 230  # seconds; the whole run is cut off after this (a normal run takes about 60-90 s)
SCENARIOS = ["kill-yjs", "kill-pubsub", "full-disk", "read-only", "corrupt"]


# --- report -----------------------------------------------------------------------

from suite import Report, free_port, tail  # noqa: E402

R = Report()


def note(msg):
    print(f"  .. {msg}", flush=True)


# --- processes and mounts --------------------------------------------------------------

class Procs:
    """Every process the harness starts, each in its own process group, so stopping one
    ends its children too and nothing else."""

    def __init__(self):
        self.live = []

    def start(self, argv, log, env=None, stdin=subprocess.DEVNULL, stdout=None):
        out = open(log, "ab")
        p = subprocess.Popen(argv, stdout=stdout if stdout is not None else out, stderr=out if stdout is not None
                             else subprocess.STDOUT, stdin=stdin, env=env, start_new_session=True)
        out.close()
        self.live.append(p)
        return p

    def kill9(self, p):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if p in self.live:
            self.live.remove(p)

    def stop(self, p, grace=5.0):
        """SIGTERM, then SIGKILL after `grace`. Returns True when it ended on SIGTERM."""
        graceful = True
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
                p.wait(grace)
            except subprocess.TimeoutExpired:
                graceful = False
        self.kill9(p)
        return graceful

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p, grace=3.0)


PROCS = Procs()


class Mounts:
    """What the harness mounted; unmounted on every exit path (finally, atexit, SIGTERM)."""

    def __init__(self):
        self.points = []

    def run(self, *argv, timeout=30):
        return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)

    def mount(self, argv, point):
        os.makedirs(point, exist_ok=True)
        r = self.run(*argv, point)
        if r.returncode != 0:
            return (r.stderr or r.stdout).strip() or f"mount exited {r.returncode}"
        self.points.append(point)
        return None

    def umount(self, point):
        if point not in self.points:
            return True
        r = self.run("umount", point)
        if r.returncode != 0:
            time.sleep(0.5)
            r = self.run("umount", point)
        if r.returncode != 0:
            r = self.run("umount", "-l", point)  # lazy: at least detach it
        if r.returncode == 0:
            self.points.remove(point)
        return r.returncode == 0

    def umount_all(self):
        for p in list(reversed(self.points)):
            self.umount(p)


MOUNTS = Mounts()


def cleanup():
    PROCS.stop_all()
    MOUNTS.umount_all()


atexit.register(cleanup)


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env.update(extra)
    return env


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def fill(path, leave):
    """Writes a ballast file so that about `leave` bytes stay free (leave=0: until ENOSPC)."""
    want = max(0, free_bytes(os.path.dirname(path)) - leave) if leave else None
    written = 0
    chunk = b"\0" * (64 * 1024)
    with open(path, "ab") as f:
        try:
            while want is None or written < want:
                n = chunk if want is None else chunk[:min(len(chunk), want - written)]
                f.write(n)
                f.flush()
                written += len(n)
        except OSError:
            pass
    try:
        os.sync()
    except OSError:
        pass
    return written


# --- relayd ----------------------------------------------------------------------------

class Relayd:
    """One relayd on a fixed port and data dir; may be killed and restarted."""

    def __init__(self, tmp, name, data_dir):
        self.tmp, self.name, self.data = tmp, name, data_dir
        self.port = free_port()
        self.proc = None
        self.site = None
        self.admin_key = None
        self.starts = 0
        self.log = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout=20.0):
        """Starts relayd; returns None when /healthz answers, else why not."""
        self.starts += 1
        self.log = os.path.join(self.tmp, f"relayd-{self.name}-{self.starts}.log")
        argv = [RELAYD, "--host", "127.0.0.1", "--port", str(self.port), "--data-dir", self.data,
                "--log-level", "info", "--ping-interval", "5", "--idle-timeout", "30", *EXTRA_RELAYD_ARGS]
        self.proc = PROCS.start(["nice", "-n", "5"] + argv, self.log, env=clean_env())
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                return f"relayd exited with {self.proc.returncode}: {tail(self.log)}"
            if self.healthz()[0] == 200:
                break
            time.sleep(0.05)
        else:
            return f"no /healthz within {timeout} s: {tail(self.log)}"
        if self.site is None:
            self.site = self.credentials()
            if self.site is None:
                return f"no dev-site credentials in relayd's output: {tail(self.log)}"
        try:
            with open(os.path.join(self.data, "admin.key")) as f:
                self.admin_key = f.read().strip()
        except OSError:
            pass
        rp.BASE, rp.WSBASE = self.url, self.url.replace("http", "ws", 1)
        return None

    def credentials(self):
        text = open(self.log, errors="replace").read()
        site = {}
        for k in ("site_key", "site_id", "publish_secret", "jwt_secret"):
            m = re.search(rf"{k}:\s+([0-9a-f]+)", text)
            if not m:
                return None
            site[k] = m.group(1)
        if site["site_id"] != rp.sha256_hex("site:" + site["site_key"]):
            return None
        return site

    def kill9(self):
        PROCS.kill9(self.proc)

    def stop(self, grace=8.0):
        return PROCS.stop(self.proc, grace) if self.proc else True

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def healthz(self):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=3)
            c.request("GET", "/healthz")
            r = c.getresponse()
            body = r.read()
            c.close()
            return r.status, rp.jbody(body)
        except OSError as e:
            return None, {"error": str(e)}

    def request(self, method, path, body=None, headers=None, timeout=10):
        try:
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            raw = r.read()
            c.close()
            return r.status, raw
        except OSError as e:
            return None, str(e).encode()

    def publish(self, channel, data_json, timeout=5):
        body = rp.envelope(channel, "fault", data_json)
        status, raw = self.request("POST", "/publish", body, rp.v1_headers(self.site, body), timeout)
        return status, rp.jbody(raw) if status else {}

    def admin(self, method, path, obj=None):
        h = {"Authorization": "Bearer " + (self.admin_key or ""), "Content-Type": "application/json"}
        return self.request(method, path, rp.compact(obj).encode() if obj is not None else None, h)

    def channel(self, name):
        return f"site:{self.site['site_id']}:{name}"

    def log_text(self):
        out = []
        for i in range(1, self.starts + 1):
            try:
                with open(os.path.join(self.tmp, f"relayd-{self.name}-{i}.log"), errors="replace") as f:
                    out.append(f.read())
            except OSError:
                pass
        return "\n".join(out)


def integrity(N, relay, what):
    """PRAGMA integrity_check of the stopped relayd's yjs.sqlite (read-only open: nothing is changed)."""
    path = os.path.join(relay.data, "yjs.sqlite")
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            res = [r[0] for r in con.execute("PRAGMA integrity_check")]
            rows = con.execute("SELECT (SELECT COUNT(*) FROM yjs_update), (SELECT COUNT(*) FROM yjs_snapshot)").fetchone()
        finally:
            con.close()
    except sqlite3.Error as e:
        res, rows = [f"{type(e).__name__}: {e}"], None
    R.check(f"{N}: yjs.sqlite passes PRAGMA integrity_check ({what})", res == ["ok"],
            f"ok ({rows[0]} log rows, {rows[1]} snapshots)" if rows else "ok", "; ".join(res)[:400])


# --- y-websocket clients (node) ------------------------------------------------------------

class Typists:
    """typists.cjs: real y-websocket clients in one node process, driven line by line."""

    def __init__(self, tmp, relay, rooms, per_room, interval_ms, tag):
        cfg = {"url": relay.url, "site_id": relay.site["site_id"], "jwt_secret": relay.site["jwt_secret"],
               "rooms": rooms, "per_room": per_room, "interval_ms": interval_ms, "tag_prefix": tag, "user_prefix": tag}
        self.log = os.path.join(tmp, f"node-{tag}.log")
        self.proc = PROCS.start(["nice", "-n", "5", "node", TYPISTS, json.dumps(cfg)], self.log,
                                env=clean_env(NODE_PATH=NODE_PATH), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def cmd(self, timeout=20.0, **c):
        self.proc.stdin.write((json.dumps(c) + "\n").encode())
        self.proc.stdin.flush()
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"node typists: no answer to {c['cmd']} within {timeout} s: {tail(self.log)}")
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"node typists exited ({self.proc.poll()}): {tail(self.log)}")
            try:
                j = json.loads(line)
            except ValueError:
                continue
            if j.get("cmd") == c["cmd"]:
                if "error" in j:
                    raise RuntimeError(f"node typists {c['cmd']}: {j['error']}")
                return j

    def wait(self, pred, timeout, every=0.2):
        """Polls `state` until pred(state) holds; returns the last state."""
        end = time.monotonic() + timeout
        st = self.cmd(cmd="state")
        while not pred(st) and time.monotonic() < end:
            time.sleep(every)
            st = self.cmd(cmd="state")
        return st

    def close(self):
        if self.proc.poll() is not None:
            PROCS.stop(self.proc, grace=0)
            return
        try:
            self.cmd(cmd="exit", timeout=3)
        except Exception:  # noqa: BLE001 (it is stopped below anyway)
            pass
        PROCS.stop(self.proc, grace=2)


def by_room(clients, key):
    out = {}
    for c in clients:
        out.setdefault(c["room"], set()).update(c.get(key, []))
    return out


def fmt_missing(missing):
    return ", ".join(sorted(missing)[:8]) + (" …" if len(missing) > 8 else "")


# --- 1. kill -9 during Yjs typing ------------------------------------------------------------

def scenario_kill_yjs(tmp):
    N = "kill -9 during Yjs typing"
    relay = Relayd(tmp, "kill-yjs", os.path.join(tmp, "kill-yjs-data"))
    err = relay.start()
    if err:
        R.fail(f"{N}: relayd starts", err)
        return
    rooms = [f"faults/kill-{i}" for i in range(3)]
    # ~30 tokens/s per client, ~100 updates/s per room: past relayd's compaction threshold (500 log
    # entries per room) before the kill, so a background snapshot has been written or is in flight.
    ty = Typists(tmp, relay, rooms, per_room=3, interval_ms=30, tag="k")
    try:
        t0 = time.monotonic()
        st = ty.cmd(cmd="start")
        if not R.check(f"{N}: 9 y-websocket clients synced", st["synced"], f"{st['clients']} clients in 3 rooms",
                       f"not all synced within 10 s: {ty.cmd(cmd='state')['clients']}"):
            return
        # Typing until a good amount is acknowledged (bounded), then SIGKILL mid-typing.
        st = ty.wait(lambda s: min(c["acknowledged"] for c in s["clients"]) >= 600, timeout=20)
        typed_before = sum(c["typed"] for c in st["clients"])
        relay.kill9()
        t_kill = time.monotonic()
        held = ty.cmd(cmd="hold", timeout=10)
        clients = held["clients"]
        acked = by_room(clients, "mirror_tokens")
        n_acked = sum(len(v) for v in acked.values())
        note(f"SIGKILL after {t_kill - t0:.1f} s of typing: {typed_before} tokens typed, {n_acked} acknowledged "
             f"(mirrors, union per room)")
        if not R.check(f"{N}: clients saw the connection drop", held["closed"] and n_acked > 0,
                       f"all 9 sockets closed; {n_acked} tokens acknowledged before the kill",
                       f"closed={held['closed']}, acknowledged={n_acked}"):
            return
        time.sleep(0.7)  # the clients keep typing while relayd is down (offline edits)
        err = relay.start()
        if not R.check(f"{N}: relayd restarts on the same data dir and port", err is None,
                       f"healthz OK {time.monotonic() - t_kill:.1f} s after the kill", err or ""):
            return
        fresh = ty.cmd(cmd="fresh", rooms=rooms, timeout=20)["rooms"]
        lost, recovered, problems = {}, 0, []
        for room in rooms:
            f = fresh[room]
            if not f["synced"]:
                problems.append(f"{room}: a fresh client did not sync ({f['closes']})")
                continue
            have = set(f["tokens"])
            recovered += len(have)
            if len(have) != len(f["tokens"]):
                problems.append(f"{room}: {len(f['tokens']) - len(have)} duplicated tokens")
            miss = acked.get(room, set()) - have
            if miss:
                lost[room] = miss
        # Every acknowledged token of every client's mirror, one by one.
        per_client = [(c["user"], len(set(c["mirror_tokens"]) - set(fresh[c["room"]]["tokens"])))
                      for c in clients]
        bad_clients = [f"{u}: {n} lost" for u, n in per_client if n]
        R.check(f"{N}: nothing acknowledged lost (fresh client after restart vs each client's mirror)",
                not lost and not problems and not bad_clients,
                f"{n_acked} acknowledged tokens in 3 rooms, all {n_acked} found among {recovered} recovered "
                f"({recovered - n_acked} stored but not yet broadcast when relayd died); 9 mirrors checked item by item",
                "; ".join(problems + [f"{r}: {len(m)} lost: {fmt_missing(m)}" for r, m in lost.items()] + bad_clients))
        # The original clients reconnect and resync what relayd never acknowledged.
        ty.cmd(cmd="release")
        time.sleep(1.5)
        ty.cmd(cmd="stop")
        conv = ty.cmd(cmd="converge", ms=20000, timeout=30)
        typed_total = sum(r["typed"] for r in conv["rooms"].values())
        R.check(f"{N}: the clients reconnect and converge on every token typed (client resync)",
                conv["ok"],
                f"{typed_total} tokens typed in total (before, during and after the outage), "
                f"{typed_total - n_acked} of them not acknowledged before the kill; every room: same text on its 3 "
                f"clients, each token exactly once, {time.monotonic() - t0:.1f} s in all",
                json.dumps(conv["rooms"])[:1500])
        R.check(f"{N}: relayd healthy after the run", relay.alive() and relay.healthz()[0] == 200,
                "healthz 200", f"alive={relay.alive()} healthz={relay.healthz()}: {tail(relay.log)}")
        ty.close()
        relay.stop()
        integrity(N, relay, "after kill -9, restart and more writes")
    finally:
        ty.close()
        relay.stop()


# --- 2. kill -9 under publish load ------------------------------------------------------------

class Subscriber:
    def __init__(self, name, relay, channel):
        self.name, self.relay, self.channel = name, relay, channel
        self.msgs = []  # (offset, epoch, n)
        self.ws = None
        self.task = None
        self.closed = None
        self.last = None  # (offset, epoch)

    async def open(self, positions=None):
        tok, _ = rp.mint(self.relay.site)
        self.ws = await rp.ws_open(tok)
        frames = await rp.subscribe(self.ws, [self.channel], positions=positions)
        sub = None
        replayed = []
        for raw in frames:
            j = json.loads(raw)
            if j.get("type") == "subscribed":
                sub = j
            elif j.get("type") == "message":
                replayed.append(j)
        for j in replayed:
            self._take(j)
        self.task = asyncio.ensure_future(self._read())
        return sub, replayed

    def _take(self, j):
        d = j.get("data")
        n = d.get("n") if isinstance(d, dict) else None
        self.msgs.append((j.get("offset"), j.get("epoch"), n))
        self.last = (j.get("offset"), j.get("epoch"))

    async def _read(self):
        try:
            while True:
                m = await self.ws.recv()
                if isinstance(m, bytes):
                    continue
                j = json.loads(m)
                if j.get("type") == "ping":
                    await self.ws.send('{"type":"pong"}')
                elif j.get("type") == "message" and j.get("channel") == self.channel:
                    self._take(j)
        except ConnectionClosed as e:
            self.closed = e.rcvd.code if e.rcvd else 1006
        except Exception as e:  # noqa: BLE001
            self.closed = f"{type(e).__name__}: {e}"

    async def close(self):
        if self.ws is not None:
            await self.ws.close()
        if self.task is not None:
            try:
                await asyncio.wait_for(self.task, 3)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001
                self.task.cancel()


async def scenario_kill_pubsub(tmp):
    N = "kill -9 under publish load"
    relay = Relayd(tmp, "kill-pubsub", os.path.join(tmp, "kill-pubsub-data"))
    err = await asyncio.to_thread(relay.start)
    if err:
        R.fail(f"{N}: relayd starts", err)
        return
    ch = relay.channel("faults-load")
    subs = [Subscriber(f"s{i}", relay, ch) for i in range(3)]
    try:
        first = []
        for s in subs:
            sub, _ = await s.open()
            first.append(sub)
        if not R.check(f"{N}: 3 subscribers subscribed", all(f and f.get("epoch") for f in first),
                       f"epoch {first[0].get('epoch')}", f"answers {first}"):
            return
        old_epoch = first[0]["epoch"]
        acked = {}  # n -> offset
        stop = threading.Event()
        counter = iter(range(10 ** 9))
        lock = threading.Lock()
        errors = []

        def publisher():
            while not stop.is_set():
                with lock:
                    n = next(counter)
                status, j = relay.publish(ch, json.dumps({"n": n}), timeout=3)
                if status == 200:
                    with lock:
                        acked[n] = j.get("offset")
                else:
                    errors.append(status)
                    time.sleep(0.02)

        threads = [threading.Thread(target=publisher, daemon=True) for _ in range(3)]
        for t in threads:
            t.start()
        end = time.monotonic() + 10
        while len(acked) < 300 and time.monotonic() < end:
            await asyncio.sleep(0.05)
        relay.kill9()
        await asyncio.sleep(0.3)
        stop.set()
        for t in threads:
            await asyncio.to_thread(t.join, 5)
        await asyncio.sleep(0.2)
        acked_set = set(acked)
        closed = [s.closed for s in subs]
        note(f"SIGKILL under load: {len(acked_set)} publishes answered 200, "
             f"{len(errors)} failed after the kill; subscribers' sockets ended with {closed}")
        if not R.check(f"{N}: publishes acknowledged before the kill", len(acked_set) >= 20,
                       f"{len(acked_set)} answered 200", f"only {len(acked_set)} answered 200 (errors {errors[:5]})"):
            return
        # Order and uniqueness of what each subscriber got before the kill.
        order_bad = []
        for s in subs:
            offs = [m[0] for m in s.msgs]
            start = first[subs.index(s)].get("offset", 0) + 1
            # live delivery: offsets contiguous from the subscribe position (a gap would be a silent loss)
            if offs != list(range(start, start + len(offs))) or any(m[1] != old_epoch for m in s.msgs):
                order_bad.append(s.name)
        R.check(f"{N}: before the kill every subscriber got one epoch, offsets contiguous (no gap, no duplicate)",
                not order_bad, f"{[len(s.msgs) for s in subs]} messages", f"bad order/epoch: {order_bad}")
        for s in subs:  # their sockets dropped with the process
            if s.task is not None and not s.task.done():
                try:
                    await asyncio.wait_for(s.task, 5)
                except asyncio.TimeoutError:
                    s.task.cancel()
        err = await asyncio.to_thread(relay.start)
        if not R.check(f"{N}: relayd restarts", err is None, "healthz OK", err or ""):
            return
        silent, reports = [], []
        new_epochs = set()
        for s in subs:
            delivered = {m[2] for m in s.msgs}
            missing = acked_set - delivered
            pos = {ch: {"offset": s.last[0], "epoch": s.last[1]}} if s.last else {ch: {"offset": 0, "epoch": old_epoch}}
            sub, replayed = await s.open(positions=pos)
            if sub is None:
                silent.append(f"{s.name}: no subscribed answer")
                continue
            rec = sub.get("recovered")
            new_epochs.add(sub.get("epoch"))
            replayed_n = {(j.get("data") or {}).get("n") for j in replayed}
            if rec is False:
                covered = True
            elif rec is True:
                covered = not (missing - replayed_n)  # a true recovery must replay every missing acked publish
            else:
                covered = False
            if rec is not False or sub.get("epoch") == old_epoch:
                silent.append(f"{s.name}: recovered={rec} epoch={sub.get('epoch')} (old {old_epoch}), "
                              f"{len(missing)} acked publishes it never got")
            if not covered:
                silent.append(f"{s.name}: {len(missing)} acknowledged publishes neither delivered nor signalled")
            reports.append(f"{s.name}: {len(delivered & acked_set)}/{len(acked_set)} delivered live, "
                           f"{len(missing)} missed → recovered={rec}")
        R.check(f"{N}: every acknowledged publish was delivered before the kill or signalled by recovered:false "
                f"with a new epoch", not silent, "; ".join(reports), "; ".join(silent))
        # New publications reach the resubscribed subscribers.
        base = [len(s.msgs) for s in subs]
        sent = []
        for k in range(5):
            status, j = await asyncio.to_thread(relay.publish, ch, json.dumps({"n": f"after-{k}"}))
            if status == 200:
                sent.append(f"after-{k}")
        end = time.monotonic() + 5
        while time.monotonic() < end and not all(len(s.msgs) - b >= 5 for s, b in zip(subs, base)):
            await asyncio.sleep(0.05)
        got = [[m[2] for m in s.msgs[b:]] for s, b in zip(subs, base)]
        epochs = {m[1] for s, b in zip(subs, base) for m in s.msgs[b:]}
        R.check(f"{N}: after the restart new publications arrive, in the new epoch",
                len(sent) == 5 and all(g == sent for g in got) and epochs == new_epochs and old_epoch not in epochs,
                f"5 publishes, each subscriber got all 5 in order (epoch {next(iter(epochs), '?')})",
                f"sent {sent}, got {got}, epochs {epochs} (subscribed said {new_epochs})")
    finally:
        for s in subs:
            await s.close()
        await asyncio.to_thread(relay.stop)


# --- helpers shared by the disk scenarios ------------------------------------------------------

async def pubsub_works(relay, name):
    """A subscriber on a fresh channel gets a publish: pub/sub does not need the disk."""
    ch = relay.channel(f"faults-{name}")
    s = Subscriber("probe", relay, ch)
    try:
        sub, _ = await s.open()
        if not sub:
            return False, "no subscribed answer"
        status, j = await asyncio.to_thread(relay.publish, ch, '{"n":"probe"}')
        end = time.monotonic() + 5
        while time.monotonic() < end and not s.msgs:
            await asyncio.sleep(0.05)
        ok = status == 200 and [m[2] for m in s.msgs] == ["probe"]
        return ok, f"publish {status}, delivered {[m[2] for m in s.msgs]}"
    except Exception as e:  # noqa: BLE001
        return False, f"{type(e).__name__}: {e}"
    finally:
        await s.close()


def first_storage_close(st):
    for c in st["clients"]:
        for cl in c["closes"]:
            if cl["code"] not in (1000, 1005, 1006):
                return cl
    return None


def check_close(N, cl, want_word):
    R.check(f"{N}: the writer is closed with 1011 and a reason naming the fault",
            cl is not None and cl["code"] == 1011 and want_word in cl["reason"],
            f"close {cl and cl['code']} {cl and cl['reason']!r}",
            f"close {cl} (want 1011 with {want_word!r} in the reason)")


def check_alive(N, relay, what):
    st, j = relay.healthz()
    return R.check(f"{N}: relayd keeps running ({what})", relay.alive() and st == 200 and j.get("status") == "ok",
                   f"healthz {st} {j.get('status')}", f"alive={relay.alive()} healthz={st} {j}: {tail(relay.log)}")


# --- 3. full disk -------------------------------------------------------------------------------

async def scenario_full_disk(tmp):
    N = "full disk"
    mnt = os.path.join(tmp, "full-mnt")
    why = MOUNTS.mount(["mount", "-t", "tmpfs", "-o", "size=6m,mode=0700", "relay-faults"], mnt)
    if why:
        (R.skip if ALLOW_NO_MOUNT else R.fail)(f"{N}: tmpfs for the data dir",
                                               f"cannot mount a tmpfs ({why}); run as root, or set "
                                               "RELAY_FAULTS_ALLOW_NO_MOUNT=1 to skip")
        return
    relay = Relayd(tmp, "full", os.path.join(mnt, "data"))
    ballast = [os.path.join(mnt, "ballast-1"), os.path.join(mnt, "ballast-2")]
    seed = writer = None
    try:
        err = await asyncio.to_thread(relay.start)
        if err:
            R.fail(f"{N}: relayd starts on the tmpfs", err)
            return
        # Room B: some content stored while there is space.
        seed = await asyncio.to_thread(Typists, tmp, relay, ["faults/full-other"], 1, 40, "fb")
        await asyncio.to_thread(seed.cmd, cmd="start")
        st = await asyncio.to_thread(seed.wait, lambda s: s["clients"][0]["acknowledged"] >= 20, 10)
        await asyncio.to_thread(seed.cmd, cmd="stop")
        held = await asyncio.to_thread(seed.cmd, cmd="hold")
        other_acked = set(held["clients"][0]["mirror_tokens"])
        await asyncio.to_thread(seed.close)
        seed = None
        leave = 600 * 1024
        await asyncio.to_thread(fill, ballast[0], leave)
        note(f"tmpfs 6 MiB, ballast leaves {free_bytes(mnt) // 1024} KiB free; room B holds {len(other_acked)} tokens")
        # Room A: type until relayd refuses.
        t0 = time.monotonic()
        writer = await asyncio.to_thread(Typists, tmp, relay, ["faults/full-writer"], 1, 25, "fw")
        await asyncio.to_thread(writer.cmd, cmd="start")
        st = await asyncio.to_thread(writer.wait, lambda s: first_storage_close(s) is not None, 40, 0.1)
        cl = first_storage_close(st)
        t_full = time.monotonic() - t0
        held = await asyncio.to_thread(writer.cmd, cmd="hold")
        acked = set(held["clients"][0]["mirror_tokens"])
        typed_at_full = held["clients"][0]["typed"]
        note(f"disk full after {t_full:.1f} s: {typed_at_full} tokens typed, {len(acked)} acknowledged, "
             f"{free_bytes(mnt)} bytes free")
        check_close(N, cl, "storage full")
        check_alive(N, relay, "disk full")
        # Reading stored rooms still works; pub/sub does not touch the disk.
        fresh = await asyncio.to_thread(Typists, tmp, relay, [], 0, 100, "fr")
        try:
            got = (await asyncio.to_thread(fresh.cmd, cmd="fresh", rooms=["faults/full-other", "faults/full-writer"]))["rooms"]
        finally:
            await asyncio.to_thread(fresh.close)
        ob, wr = got["faults/full-other"], got["faults/full-writer"]
        R.check(f"{N}: another room is still served while the disk is full",
                ob["synced"] and other_acked <= set(ob["tokens"]),
                f"a fresh client of room B got all {len(other_acked)} of its tokens",
                f"synced={ob['synced']} closes={ob['closes']}, missing {len(other_acked - set(ob['tokens']))}")
        R.check(f"{N}: nothing acknowledged lost while full",
                wr["synced"] and acked <= set(wr["tokens"]) and len(acked) > 0,
                f"all {len(acked)} acknowledged tokens of the writer's room are served",
                f"synced={wr['synced']}, acknowledged {len(acked)}, missing {fmt_missing(acked - set(wr['tokens']))}")
        ok, detail = await pubsub_works(relay, "full")
        R.check(f"{N}: pub/sub still works", ok, detail, detail)
        # The site registry on a full disk: a JSON 5xx, or (if SQLite found room) really stored.
        await asyncio.to_thread(fill, ballast[1], 0)
        status, raw = await asyncio.to_thread(relay.admin, "POST", "/api/sites/register",
                                              {"site_url": "https://full-disk.example", "site_name": "full"})
        j = rp.jbody(raw)
        registered = status == 200 and "site_key" in j
        if registered:
            reg_ok, reg_detail = True, "200: SQLite found room for it (checked after the restart below)"
        else:
            reg_ok = status is not None and 500 <= status < 600 and isinstance(j, dict) and "error" in j \
                and "message" in j
            reg_detail = f"{status} {raw[:200].decode('utf-8', 'replace')}"
        R.check(f"{N}: site registration fails cleanly (JSON 5xx) or is stored", reg_ok, reg_detail, reg_detail)
        check_alive(N, relay, "after the registration")
        # Free the space: the writer reconnects and its refused updates are stored now.
        for b in ballast:
            os.unlink(b)
        note(f"ballast removed: {free_bytes(mnt) // 1024} KiB free")
        await asyncio.to_thread(writer.cmd, cmd="release")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(writer.cmd, cmd="stop")
        conv = await asyncio.to_thread(writer.cmd, cmd="converge", ms=15000, timeout=25)
        room = conv["rooms"]["faults/full-writer"]
        R.check(f"{N}: after space is freed new updates are accepted again", conv["ok"],
                f"the writer reconnected and all {room['typed']} tokens it typed are in relayd's document "
                f"({room['typed'] - len(acked)} of them refused while full)", json.dumps(room))
        # Restart: acknowledged (and the later accepted) tokens are on disk.
        graceful = await asyncio.to_thread(relay.stop)
        err = await asyncio.to_thread(relay.start)
        if not R.check(f"{N}: relayd restarts after the disk was full", err is None,
                       f"stopped {'gracefully' if graceful else 'with SIGKILL'}, restarted", err or ""):
            return
        fresh = await asyncio.to_thread(Typists, tmp, relay, [], 0, 100, "fr2")
        try:
            got = (await asyncio.to_thread(fresh.cmd, cmd="fresh", rooms=["faults/full-other", "faults/full-writer"]))["rooms"]
        finally:
            await asyncio.to_thread(fresh.close)
        typed_all = set((await asyncio.to_thread(writer.cmd, cmd="hold"))["clients"][0]["typed_tokens"])
        w = set(got["faults/full-writer"]["tokens"])
        R.check(f"{N}: after a restart everything acknowledged is there",
                acked <= w and typed_all <= w and other_acked <= set(got["faults/full-other"]["tokens"]),
                f"writer's room {len(w)} tokens ⊇ {len(acked)} acknowledged while full ⊆ {len(typed_all)} typed; "
                f"room B intact",
                f"missing acknowledged {fmt_missing(acked - w)}; missing typed {fmt_missing(typed_all - w)}")
        if registered:
            status, raw = await asyncio.to_thread(relay.admin, "GET", "/api/sites")
            R.check(f"{N}: the site registered on a full disk survived the restart",
                    status == 200 and j["site_key"] in raw.decode(), "listed", f"{status} {raw[:300]!r}")
        log = relay.log_text()
        R.check(f"{N}: relayd's log says why", "storage full" in log,
                "an error line with 'update not stored: storage full'", "no 'storage full' in relayd's log")
        await asyncio.to_thread(relay.stop)
        integrity(N, relay, "after the disk was full")
    finally:
        for t in (seed, writer):
            if t is not None:
                await asyncio.to_thread(t.close)
        await asyncio.to_thread(relay.stop)
        for b in ballast:
            try:
                os.unlink(b)
            except OSError:
                pass
        if not MOUNTS.umount(mnt):
            R.fail(f"{N}: tmpfs unmounted", f"umount {mnt} failed")


# --- 4. read-only disk ---------------------------------------------------------------------------

def loop_device(point):
    r = subprocess.run(["findmnt", "-n", "-o", "SOURCE", point], capture_output=True, text=True, timeout=10)
    return r.stdout.strip()


async def scenario_read_only(tmp):
    N = "read-only disk"
    img, mnt = os.path.join(tmp, "ro.img"), os.path.join(tmp, "ro-mnt")

    def setup():
        with open(img, "wb") as f:
            f.truncate(32 * 1024 * 1024)
        r = subprocess.run(["mkfs.ext4", "-q", "-F", img], capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            return f"mkfs.ext4 failed: {r.stderr.strip()}"
        why = MOUNTS.mount(["mount", "-o", "loop,errors=remount-ro", img], mnt)
        if why:
            return f"mount -o loop failed: {why}"
        dev = os.path.basename(loop_device(mnt))
        trig = f"/sys/fs/ext4/{dev}/trigger_fs_error"
        if not os.path.exists(trig):
            return f"{trig} does not exist (kernel without ext4 sysfs error trigger)"
        return None

    try:
        why = await asyncio.to_thread(setup)
    except (OSError, subprocess.SubprocessError) as e:
        why = f"{type(e).__name__}: {e}"
    if why:
        (R.skip if ALLOW_NO_MOUNT else R.fail)(f"{N}: ext4 loop mount for the data dir",
                                               f"{why}; run as root with loop devices, or set "
                                               "RELAY_FAULTS_ALLOW_NO_MOUNT=1 to skip")
        MOUNTS.umount(mnt)
        return
    relay = Relayd(tmp, "ro", os.path.join(mnt, "data"))
    writer = None
    try:
        err = await asyncio.to_thread(relay.start)
        if err:
            R.fail(f"{N}: relayd starts on the ext4 mount", err)
            return
        # A plain remount is refused while relayd holds its database open for writing.
        r = subprocess.run(["mount", "-o", "remount,ro", mnt], capture_output=True, text=True, timeout=10)
        note(f"mount -o remount,ro while relayd runs: exit {r.returncode} ({' '.join((r.stderr or '').split())[:70]}); "
             "using ext4 errors=remount-ro instead")
        if r.returncode == 0:
            subprocess.run(["mount", "-o", "remount,rw", mnt], capture_output=True, timeout=10)
        t0 = time.monotonic()
        writer = await asyncio.to_thread(Typists, tmp, relay, ["faults/ro-room"], 2, 50, "ro")
        st = await asyncio.to_thread(writer.cmd, cmd="start")
        if not R.check(f"{N}: 2 writers synced", st["synced"], "2 y-websocket clients", "not synced"):
            return
        await asyncio.to_thread(writer.wait, lambda s: min(c["acknowledged"] for c in s["clients"]) >= 40, 15)
        dev = os.path.basename(loop_device(mnt))
        with open(f"/sys/fs/ext4/{dev}/trigger_fs_error", "w") as f:
            f.write("1")
        t_ro = time.monotonic()
        loop_opts = subprocess.run(["findmnt", "-n", "-o", "OPTIONS", mnt], capture_output=True,
                                             text=True, timeout=10).stdout.strip()
        note(f"ext4 error triggered on {dev} after {t_ro - t0:.1f} s of typing; mount options now: {loop_opts}")
        st = await asyncio.to_thread(writer.wait, lambda s: first_storage_close(s) is not None, 15, 0.1)
        cl = first_storage_close(st)
        held = await asyncio.to_thread(writer.cmd, cmd="hold")
        acked = by_room(held["clients"], "mirror_tokens").get("faults/ro-room", set())
        note(f"refused {time.monotonic() - t_ro:.1f} s after the remount; {len(acked)} tokens acknowledged, "
             f"{sum(c['typed'] for c in held['clients'])} typed")
        try:
            probe = os.path.join(mnt, "write-probe")
            with open(probe, "w") as f:
                f.write("x")
            os.unlink(probe)
            probe_err = "a write succeeded"
        except OSError as e:
            probe_err = f"{e.strerror} (errno {e.errno})"
        opts = loop_opts.split(",")
        R.check(f"{N}: the file system really went read-only",
                ("ro" in opts or "emergency_ro" in opts) and probe_err.startswith(os.strerror(30)),
                f"mount options {loop_opts}; a write gets {probe_err}",
                f"mount options {loop_opts}; a write: {probe_err}")
        check_close(N, cl, "read-only")
        check_alive(N, relay, "read-only disk")
        fresh = await asyncio.to_thread(Typists, tmp, relay, [], 0, 100, "rof")
        try:
            got = (await asyncio.to_thread(fresh.cmd, cmd="fresh", rooms=["faults/ro-room"]))["rooms"]["faults/ro-room"]
        finally:
            await asyncio.to_thread(fresh.close)
        R.check(f"{N}: the room is still served read-only, nothing acknowledged missing",
                got["synced"] and acked <= set(got["tokens"]) and len(acked) > 0,
                f"a fresh client got all {len(acked)} acknowledged tokens",
                f"synced={got['synced']} closes={got['closes']}, missing {fmt_missing(acked - set(got['tokens']))}")
        ok, detail = await pubsub_works(relay, "ro")
        R.check(f"{N}: pub/sub still works", ok, detail, detail)
        # Repair: stop relayd, fsck, mount read-write again, restart.
        t0 = time.monotonic()
        graceful = await asyncio.to_thread(relay.stop, 10.0)
        note(f"relayd stopped {f'on SIGTERM in {time.monotonic() - t0:.1f} s' if graceful else 'only with SIGKILL (SIGTERM did not end it in 10 s)'}")
        R.check(f"{N}: relayd shuts down on SIGTERM with a read-only data dir", graceful,
                "exited within 10 s", f"still running 10 s after SIGTERM (killed); its log ends: {tail(relay.log)}")

        def repair():
            if not MOUNTS.umount(mnt):
                return "umount failed"
            r = subprocess.run(["e2fsck", "-f", "-y", img], capture_output=True, text=True, timeout=60)
            fixes = [ln.strip() for ln in r.stdout.splitlines() if ln.strip() and not ln.startswith("Pass ")]
            note(f"e2fsck exit {r.returncode}: {' | '.join(fixes)[:400]}")
            if r.returncode not in (0, 1, 2):
                return f"e2fsck exit {r.returncode}: {r.stdout[-300:]}"
            why = MOUNTS.mount(["mount", "-o", "loop,errors=remount-ro", img], mnt)
            if why is None:
                files = {n: os.path.getsize(os.path.join(relay.data, n)) for n in sorted(os.listdir(relay.data))}
                note(f"data dir after repair: {files}")
            return why
        why = await asyncio.to_thread(repair)
        if not R.check(f"{N}: file system repaired and mounted read-write", why is None, "e2fsck, mount rw", why or ""):
            return
        err = await asyncio.to_thread(relay.start)
        if not R.check(f"{N}: relayd restarts on the repaired disk", err is None, "healthz OK", err or ""):
            return
        fresh = await asyncio.to_thread(Typists, tmp, relay, [], 0, 100, "rof2")
        try:
            got = (await asyncio.to_thread(fresh.cmd, cmd="fresh", rooms=["faults/ro-room"]))["rooms"]["faults/ro-room"]
        finally:
            await asyncio.to_thread(fresh.close)
        have = set(got["tokens"])
        R.check(f"{N}: nothing acknowledged lost after repair and restart", got["synced"] and acked <= have,
                f"all {len(acked)} acknowledged tokens among {len(have)} stored",
                f"synced={got['synced']}, {len(acked - have)} lost: {fmt_missing(acked - have)}")
        await asyncio.to_thread(writer.cmd, cmd="release")
        await asyncio.sleep(1.0)
        await asyncio.to_thread(writer.cmd, cmd="stop")
        conv = await asyncio.to_thread(writer.cmd, cmd="converge", ms=15000, timeout=25)
        room = conv["rooms"]["faults/ro-room"]
        R.check(f"{N}: writes accepted again; the writers converge on everything they typed", conv["ok"],
                f"{room['typed']} tokens typed, {room['typed'] - len(acked)} of them refused or unsent while read-only, "
                f"all stored now", json.dumps(room))
        R.check(f"{N}: relayd's log says why", "storage read-only" in relay.log_text(),
                "an error line with 'update not stored: storage read-only'", "no 'storage read-only' in relayd's log")
        await asyncio.to_thread(writer.close)
        writer = None
        await asyncio.to_thread(relay.stop)
        integrity(N, relay, "after the read-only episode and fsck")
    finally:
        if writer is not None:
            await asyncio.to_thread(writer.close)
        await asyncio.to_thread(relay.stop)
        if not MOUNTS.umount(mnt):
            R.fail(f"{N}: loop mount unmounted", f"umount {mnt} failed")


# --- 5. damaged pages --------------------------------------------------------------------------------

async def scenario_corrupt(tmp):
    N = "damaged yjs.sqlite"
    data = os.path.join(tmp, "corrupt-data")
    relay = Relayd(tmp, "corrupt", data)
    err = await asyncio.to_thread(relay.start)
    if err:
        R.fail(f"{N}: relayd starts", err)
        return
    ty = None
    try:
        rooms = [f"faults/corrupt-{i}" for i in range(4)]
        ty = await asyncio.to_thread(Typists, tmp, relay, rooms, 1, 30, "cr")
        await asyncio.to_thread(ty.cmd, cmd="start")
        await asyncio.to_thread(ty.wait, lambda s: min(c["acknowledged"] for c in s["clients"]) >= 40, 15)
        await asyncio.to_thread(ty.cmd, cmd="stop")
        await asyncio.to_thread(ty.close)
        ty = None
        await asyncio.to_thread(relay.stop)
        path = os.path.join(data, "yjs.sqlite")
        # relayd stopped, so SQLite folded its WAL into the file. Damage the b-tree pages after the
        # schema page: the header and schema stay valid, so the file still opens.
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            head = f.read(100)
        page = int.from_bytes(head[16:18], "big") or 65536
        pages = size // page
        if pages < 3:
            wal = path + "-wal"
            R.skip(f"{N}: relayd refuses or reports a damaged file", f"the file has {pages} pages only "
                   f"(WAL {os.path.getsize(wal) if os.path.exists(wal) else 0} bytes); nothing to damage")
            return
        with open(path, "r+b") as f:
            for p in range(2, pages):
                f.seek(p * page + 0)
                f.write(bytes([0x0d ^ 0xff]) + os.urandom(63))  # page type byte and cell pointers garbage
        before = open(path, "rb").read()
        err = await asyncio.to_thread(relay.start, 15.0)
        after_start = open(path, "rb").read()
        if err is not None:
            R.check(f"{N}: relayd refuses to start with a clear error, file not overwritten",
                    ("yjs.sqlite" in err or "malformed" in err or "corrupt" in err) and after_start == before,
                    f"start refused: {err.splitlines()[-1][:200]}", f"{err[:400]}; file unchanged={after_start == before}")
            return
        # It started: every room must be refused (1011) or served whole; nothing silently short.
        fresh = await asyncio.to_thread(Typists, tmp, relay, [], 0, 100, "crf")
        try:
            got = (await asyncio.to_thread(fresh.cmd, cmd="fresh", rooms=rooms, ms=4000, timeout=20))["rooms"]
        finally:
            await asyncio.to_thread(fresh.close)
        served = {r: g for r, g in got.items() if g["synced"]}
        refused = {r: g["closes"][:1] for r, g in got.items() if not g["synced"]}
        short = {r: len(g["tokens"]) for r, g in served.items() if len(g["tokens"]) < 40}
        closes_ok = all(c and c[0]["code"] == 1011 for c in refused.values())
        R.check(f"{N}: relayd refuses the damaged rooms (1011) instead of serving them shortened",
                not short and closes_ok and relay.alive(),
                f"started; {len(refused)} rooms refused with {[c[0]['reason'] for c in refused.values()][:1]}, "
                f"{len(served)} served whole",
                f"served shortened: {short}; refused with {refused}; alive={relay.alive()}")
        await asyncio.to_thread(relay.stop)
        after = open(path, "rb").read()
        changed = [i + 1 for i in range(max(len(before), len(after)) // page)
                   if before[i * page:(i + 1) * page] != after[i * page:(i + 1) * page]]
        damaged_kept = all(before[i * page:(i + 1) * page] == after[i * page:(i + 1) * page] for i in range(2, pages))
        R.check(f"{N}: the damaged pages are left as they were (not rewritten, not truncated)",
                damaged_kept and len(after) >= len(before),
                f"pages 3..{pages} unchanged; {len(before)} → {len(after)} bytes; pages changed: {changed or 'none'}"
                + (" (page 1: header and schema cookie, from opening the file read-write)" if 1 in changed else ""),
                f"pages changed: {changed}; {len(before)} → {len(after)} bytes")
    finally:
        if ty is not None:
            await asyncio.to_thread(ty.close)
        await asyncio.to_thread(relay.stop)


# --- the run -----------------------------------------------------------------------------------------

async def run(only):
    if not os.access(RELAYD, os.X_OK):
        R.fail("setup", f"relayd not found at {RELAYD} (swift build, or set RELAYD_BIN)")
        return
    if not shutil.which("node") or not os.path.isdir(os.path.join(NODE_PATH, "y-websocket")):
        R.fail("setup", f"node with y-websocket in {NODE_PATH} not found (apt-get install node-y-websocket node-ws)")
        return
    E.tmp = tempfile.mkdtemp(prefix="relay-faults-")
    for name, fn in (("kill-yjs", lambda: asyncio.to_thread(scenario_kill_yjs, E.tmp)),
                     ("kill-pubsub", lambda: scenario_kill_pubsub(E.tmp)),
                     ("full-disk", lambda: scenario_full_disk(E.tmp)),
                     ("read-only", lambda: scenario_read_only(E.tmp)),
                     ("corrupt", lambda: scenario_corrupt(E.tmp))):
        if only and name not in only:
            continue
        t = time.monotonic()
        print(f"== {name}", flush=True)
        try:
            await fn()
        except Exception as e:  # noqa: BLE001 (a scenario that blew up is a failure; go on with the next)
            R.fail(f"{name}", f"{type(e).__name__}: {e}")
        note(f"{name} took {time.monotonic() - t:.1f} s")


class E:
    tmp = None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help="comma-separated: " + ",".join(SCENARIOS))
    ap.add_argument("--break", dest="brk", choices=sorted(BREAKS),
                    help="run relayd with a deliberate mistake (the run must then fail)")
    args = ap.parse_args()
    if args.brk:
        EXTRA_RELAYD_ARGS.extend(BREAKS[args.brk])
        print(f"NOTE --break {args.brk}: relayd runs with {' '.join(BREAKS[args.brk])}; failures are expected", flush=True)
    only = set(args.only.split(",")) if args.only else None
    if only and not only <= set(SCENARIOS):
        ap.error(f"unknown scenario in {args.only}")

    def on_alarm(*_):
        raise TimeoutError(f"the fault suite did not finish in {TOTAL_TIMEOUT + 10} s")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops and unmounts
    signal.alarm(TOTAL_TIMEOUT + 10)
    try:
        asyncio.run(asyncio.wait_for(run(only), TOTAL_TIMEOUT))
    except (asyncio.TimeoutError, TimeoutError) as e:
        R.fail("suite", f"timed out: {e or TOTAL_TIMEOUT}")
    except (SystemExit, KeyboardInterrupt):
        R.fail("suite", "interrupted (SIGTERM or SIGINT)")
    except Exception as e:  # noqa: BLE001
        R.fail("suite", f"{type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
        cleanup()
        if MOUNTS.points:
            R.fail("cleanup", f"still mounted: {MOUNTS.points}")
        if E.tmp:
            if os.environ.get("KEEP_TMP") == "1" or R.counts["FAIL"]:
                print(f"kept {E.tmp} (relayd and node logs)", flush=True)
            else:
                shutil.rmtree(E.tmp, ignore_errors=True)
    c = R.counts
    print(f"fault suite took {time.monotonic() - R.t0:.1f} s", flush=True)
    print(f"faults: {c['PASS']} passed, {c['FAIL']} failed, {c['SKIP']} skipped", flush=True)
    return 1 if c["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())

"""Independent client helpers for driving a real relayd (wordsocket contract).

Nothing here uses Relay code: tokens are minted, publishes signed and
WebSocket frames built with the Python standard library and `websockets`.
Every network wait has a timeout, so a misbehaving relay fails a check
instead of hanging the test.
"""

import asyncio
import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import time
import urllib.error
import urllib.parse
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

CFG = json.loads(os.environ.get("RELAY_PEER_CONFIG", "{}"))
PORT = int(CFG.get("port", 0))
BASE = f"http://127.0.0.1:{PORT}"
WSBASE = f"ws://127.0.0.1:{PORT}"


# --- crypto (contract sections 10 and 12) -----------------------------------

def sha256_hex(s):
    return hashlib.sha256(s.encode()).hexdigest()


def b64u(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":"))


def mint(site, ttl=300, v=2, sub=None, pub=None, site_id=None, user_id="42", iat=None, drop=(), secret=None):
    """HS256 token as WordPress's Token::mint() makes it."""
    now = int(time.time())
    sid = site_id or sha256_hex("site:" + site["site_key"])
    claims = {
        "tenant_id": sha256_hex("tenant:" + site["site_key"]),
        "site_id": sid,
        "user_id": user_id,
        "allowed_channel_prefixes": sub if sub is not None else [f"site:{sid}:"],
        "allowed_publish_prefixes": pub if pub is not None else [f"site:{sid}:"],
        "iat": iat if iat is not None else now,
        "exp": (iat if iat is not None else now) + ttl,
    }
    if v is not None:
        claims["v"] = v
    for k in drop:
        claims.pop(k, None)
    header = b64u(compact({"alg": "HS256", "typ": "JWT"}).encode())
    payload = b64u(compact(claims).encode())
    key = (secret if secret is not None else site["jwt_secret"]).encode()
    sig = b64u(hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    return f"{header}.{payload}.{sig}", claims


def now_ms():
    return str(int(round(time.time() * 1000)))


def v1_headers(site, body, ts=None, secret=None, sign=None):
    ts = ts if ts is not None else now_ms()
    key = (secret if secret is not None else site["publish_secret"]).encode()
    sig = sign if sign is not None else hmac.new(key, body + b"." + ts.encode(), hashlib.sha256).hexdigest()
    return {"X-WP-Signal-Key": site["site_key"], "X-WP-Signal-Ts": ts, "X-WP-Signal-Sign": sig,
            "Content-Type": "application/json"}


def rawurlencode(s):
    return urllib.parse.quote(s, safe="-_.~")


def canonical_query(q):
    if not q:
        return ""
    pairs = []
    for part in q.split("&"):
        name, _, value = part.partition("=")
        n = rawurlencode(urllib.parse.unquote(name))
        v = rawurlencode(urllib.parse.unquote(value))
        pairs.append((n.encode(), v.encode()))
    pairs.sort()
    return "&".join(n.decode() + "=" + v.decode() for n, v in pairs)


def v2_headers(site, method, path, query, body, key_id="k1", ts=None, nonce=None):
    ts = ts if ts is not None else now_ms()
    nonce = nonce or b64u(os.urandom(18))
    lines = ["RELAY-HMAC-SHA256-V2", method.upper(), path, canonical_query(query), site["site_key"], key_id, ts, nonce,
             hashlib.sha256(body).hexdigest()]
    sig = hmac.new(site["publish_secret"].encode(), "\n".join(lines).encode(), hashlib.sha256).hexdigest()
    return {"X-Relay-Key": site["site_key"], "X-Relay-Key-Id": key_id, "X-Relay-Timestamp": ts,
            "X-Relay-Nonce": nonce, "X-Relay-Signature": "v2=" + sig, "Content-Type": "application/json"}


# --- HTTP ---------------------------------------------------------------------

_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, path, body=None, headers=None, timeout=5):
    req = urllib.request.Request(BASE + path, data=body, method=method, headers=headers or {})
    try:
        with _opener.open(req, timeout=timeout) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def jbody(raw):
    try:
        return json.loads(raw)
    except Exception:
        return {"_raw": raw.decode("utf-8", "replace")}


def publish_raw(site, body, **kw):
    """POST /publish with the exact body bytes, v1-signed. Returns (status, json)."""
    status, _, raw = http("POST", "/publish", body, v1_headers(site, body, **kw))
    return status, jbody(raw)


def envelope(channel, event, data_json):
    """The body PHP sends, built as text so `data` keeps its exact bytes."""
    return ('{"channel":' + json.dumps(channel) + ',"event":' + json.dumps(event) + ',"data":' + data_json + '}').encode()


def publish(site, channel, event, data_json):
    return publish_raw(site, envelope(channel, event, data_json))


async def apublish(site, channel, event, data_json):
    return await asyncio.to_thread(publish, site, channel, event, data_json)


def admin(path, body, key=None):
    headers = {"Content-Type": "application/json"}
    k = CFG["admin_key"] if key is None else key
    if k:
        headers["Authorization"] = "Bearer " + k
    status, _, raw = http("POST", path, compact(body).encode(), headers)
    return status, jbody(raw)


def add_site(limits=None):
    status, j = admin("/api/sites/add", {"limits": limits} if limits else {})
    assert status == 200, (status, j)
    return j


# --- WebSocket (websockets library) ---------------------------------------------

async def ws_open(token=None, query=None, **kw):
    url = WSBASE + "/ws"
    if token is not None:
        url += "?token=" + urllib.parse.quote(token, safe="")
    elif query is not None:
        url += "?" + query
    opts = dict(proxy=None, open_timeout=5, ping_interval=None, close_timeout=2, max_size=None, compression=None)
    opts.update(kw)
    return await connect(url, **opts)


def show(frame):
    if isinstance(frame, bytes):
        return {"binary": frame.hex()}
    return frame


async def next_frame(ws, timeout=5.0, skip_ping=True):
    """The next frame (str or bytes), skipping JSON pings; None on timeout; raises ConnectionClosed."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            m = await asyncio.wait_for(ws.recv(), left)
        except asyncio.TimeoutError:
            return None
        if skip_ping and isinstance(m, str) and m == '{"type":"ping"}':
            continue
        return m


async def next_json(ws, timeout=5.0, skip_ping=True):
    """(raw text, parsed) of the next text frame, or (None, None) on timeout."""
    m = await next_frame(ws, timeout, skip_ping)
    if m is None:
        return None, None
    if isinstance(m, bytes):
        return show(m), {"binary": m.hex()}
    return m, json.loads(m)


async def until(ws, pred, timeout=5.0):
    """Reads frames until pred(parsed) holds; returns (raw, parsed, skipped raws) or (None, None, skipped)."""
    skipped = []
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, None, skipped
        raw, j = await next_json(ws, left)
        if raw is None:
            return None, None, skipped
        if pred(j):
            return raw, j, skipped
        skipped.append(raw)


async def collect(ws, duration, skip_ping=True):
    """Every frame that arrives within `duration` seconds (stops early if the socket closes)."""
    out = []
    deadline = time.monotonic() + duration
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            m = await next_frame(ws, left, skip_ping)
            if m is None:
                break
            out.append(show(m))
    except ConnectionClosed:
        pass
    return out


async def wait_close(ws, timeout=6.0):
    """Reads until the relay closes the socket. Returns {"code","reason","frames","after_s"}."""
    t0 = time.monotonic()
    frames = []
    try:
        while True:
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                return {"code": None, "reason": "timeout: still open", "frames": frames, "after_s": None}
            try:
                m = await asyncio.wait_for(ws.recv(), left)
            except asyncio.TimeoutError:
                continue
            frames.append(show(m))
    except ConnectionClosed as e:
        rc = e.rcvd
        return {"code": rc.code if rc else 1006, "reason": rc.reason if rc else "", "frames": frames,
                "after_s": round(time.monotonic() - t0, 3)}


async def subscribe(ws, channels, positions=None, timeout=5.0):
    """Sends subscribe and returns the raw frames up to the last answer (one `subscribed` or
    `error` per channel); replayed messages between answers are included in arrival order."""
    msg = {"type": "subscribe", "channels": channels}
    if positions is not None:
        msg["positions"] = positions
    await ws.send(compact(msg))
    frames, answered = [], 0
    deadline = time.monotonic() + timeout
    while answered < len(channels):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        raw, j = await next_json(ws, left)
        if raw is None:
            break
        frames.append(raw)
        if j.get("type") in ("subscribed", "error"):
            answered += 1
    return frames


async def connect_and_subscribe(site, channels, **mint_kw):
    tok, _ = mint(site, **mint_kw)
    ws = await ws_open(tok)
    answers = await subscribe(ws, channels)
    return ws, answers


# --- raw WebSocket (RFC 6455 by hand) ------------------------------------------------

class RawWS:
    """A hand-made WebSocket client on a plain socket, for what `websockets`
    will not do: stop reading with a tiny receive buffer, send malformed frames."""

    def __init__(self, path, rcvbuf=None, timeout=5.0):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect(("127.0.0.1", PORT))
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.s.sendall(req.encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        self.head = head.decode("latin-1")
        expected = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.accept_ok = any(line.lower().startswith("sec-websocket-accept:") and line.split(":", 1)[1].strip() == expected
                             for line in self.head.split("\r\n"))
        self.status = int(self.head.split(" ", 2)[1])

    def send_frame(self, opcode, payload, fin=True, mask=True, rsv=0):
        b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
        n = len(payload)
        if n < 126:
            hdr = struct.pack("!BB", b0, (0x80 if mask else 0) | n)
        elif n < 65536:
            hdr = struct.pack("!BBH", b0, (0x80 if mask else 0) | 126, n)
        else:
            hdr = struct.pack("!BBQ", b0, (0x80 if mask else 0) | 127, n)
        if mask:
            m = os.urandom(4)
            payload = bytes(b ^ m[i % 4] for i, b in enumerate(payload)) if n < 4096 else _xor(payload, m)
            hdr += m
        self.s.sendall(hdr + payload)

    def send_text(self, text, **kw):
        self.send_frame(0x1, text.encode() if isinstance(text, str) else text, **kw)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("eof")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_frame(self):
        """(fin, opcode, payload); raises socket.timeout / ConnectionError."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        if b1 & 0x80:
            m = self._read(4)
            return bool(b0 & 0x80), b0 & 0x0F, _xor(self._read(n), m)
        return bool(b0 & 0x80), b0 & 0x0F, self._read(n)

    def read_until_close(self, timeout=6.0):
        """Reads frames until a close frame or EOF, for at most `timeout` s in all.
        Returns (close code or None, reason, data frames)."""
        deadline = time.monotonic() + timeout
        frames = []
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, "timeout", frames
                self.s.settimeout(left)
                fin, op, payload = self.read_frame()
                if op == 0x8:
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                    return code, payload[2:].decode("utf-8", "replace"), frames
                if op == 0x9:
                    self.send_frame(0xA, payload)
                    continue
                frames.append((op, payload))
        except (socket.timeout, TimeoutError):
            return None, "timeout", frames
        except (ConnectionError, OSError):
            return 1006, "eof", frames

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def _xor(data, m):
    n = len(data)
    key = (m * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""


# --- SSE ----------------------------------------------------------------------------

class SSE:
    """GET /sse on a plain socket with its own chunked decoding, so a read timeout
    leaves the stream usable (http.client cannot read again after a timeout)."""

    def __init__(self, query, last_event_id=None, timeout=5.0):
        self.s = socket.create_connection(("127.0.0.1", PORT), timeout=timeout)
        req = (f"GET /sse?{query} HTTP/1.1\r\nHost: 127.0.0.1:{PORT}\r\nAccept: text/event-stream\r\n"
               f"Origin: https://wp.example\r\n")
        if last_event_id is not None:
            req += f"Last-Event-ID: {last_event_id}\r\n"
        self.s.sendall((req + "\r\n").encode())
        self._read_head(timeout)

    def _read_head(self, timeout):
        """Reads the response head: status, headers (lower-case names), chunked or not."""
        self.raw, self.body, self.eof = b"", b"", False
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.raw:
            if not self._fill(deadline):
                raise ConnectionError("no response head within %.0f s" % timeout)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0 or self.eof:
            return False
        self.s.settimeout(left)
        try:
            chunk = self.s.recv(65536)
        except (socket.timeout, TimeoutError):
            return False
        except OSError:
            self.eof = True
            return False
        if not chunk:
            self.eof = True
            return False
        self.raw += chunk
        return True

    def _decode(self):
        if not self.chunked:
            self.body += self.raw
            self.raw = b""
            return
        while True:
            i = self.raw.find(b"\r\n")
            if i < 0:
                return
            size = int(self.raw[:i].split(b";")[0], 16)
            if size == 0:
                self.eof = True
                self.raw = b""
                return
            if len(self.raw) < i + 2 + size + 2:
                return
            self.body += self.raw[i + 2:i + 2 + size]
            self.raw = self.raw[i + 2 + size + 2:]

    def readline(self, deadline):
        while True:
            self._decode()
            j = self.body.find(b"\n")
            if j >= 0:
                line, self.body = self.body[:j], self.body[j + 1:]
                return line.decode("utf-8").rstrip("\r")
            if not self._fill(deadline):
                self._decode()
                if b"\n" not in self.body:
                    return None

    def read_block(self, timeout=5.0):
        """The next block of lines up to a blank line (list of lines), or None on timeout/EOF."""
        deadline = time.monotonic() + timeout
        lines = []
        while True:
            line = self.readline(deadline)
            if line is None:
                return lines or None
            if line == "":
                if lines:
                    return lines
                continue
            lines.append(line)

    def events(self, n, timeout=5.0, skip_comments=True):
        """Up to n event blocks (comment-only blocks skipped), as dicts {id, event, data, lines}."""
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            block = self.read_block(left)
            if block is None:
                break
            ev = parse_sse_block(block)
            if skip_comments and not ev["fields"]:
                continue
            out.append(ev)
        return out

    def collect(self, duration, stop=None):
        """Event blocks with data (comments and bare `retry:` skipped) for `duration` s, or until stop(list)."""
        out = []
        deadline = time.monotonic() + duration
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or (stop and stop(out)):
                break
            block = self.read_block(left)
            if block is None:
                break
            ev = parse_sse_block(block)
            if ev["data"] is None:
                continue
            out.append(ev)
        return out

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def parse_sse_block(lines):
    ev = {"lines": lines, "fields": False, "id": None, "event": None, "data": None, "retry": None, "comments": []}
    data = []
    for line in lines:
        if line.startswith(":"):
            ev["comments"].append(line)
            continue
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        ev["fields"] = True
        if name == "data":
            data.append(value)
        elif name in ("id", "event", "retry"):
            ev[name] = value
    if data:
        ev["data"] = "\n".join(data)
    return ev


def emit(result):
    print(json.dumps(result), flush=True)


def run(scenarios):
    import sys
    name = sys.argv[1]
    fn = scenarios[name]
    if asyncio.iscoroutinefunction(fn):
        result = asyncio.run(asyncio.wait_for(fn(), CFG.get("timeout", 60)))
    else:
        result = fn()
    emit(result)

#!/usr/bin/env python3
"""Runs the vectors against a live relayd and lists every disagreement.

    RELAYD_BIN=/path/to/relayd RELAYCTL_BIN=/path/to/relayctl python3 protocol/generate/probe_relayd.py

Starts relayd on a free loopback port with a throw-away data directory holding
the vectors' site (site key, publish secret, JWT secret, Ed25519 key), then:
json.json cases as POST /publish bodies (document cases embedded as `data`;
depth cases only through their publish_body form), frames.json client frames
over /ws, tokens.json refusals as /ws and /yjs close codes and reasons, and
yprotocols.json on /yjs (opening frames, invalid messages, read-only answer).
Time-dependent vectors are re-made at the real clock. Prints one line per
disagreement; exit 1 if there is any. Needs only the Python standard library
(and cryptography, through gen.py).
"""
import base64
import http.client as httpclient
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import gen  # noqa: E402

RELAYD = os.environ.get("RELAYD_BIN", os.path.join(ROOT, ".build", "debug", "relayd"))
RELAYCTL = os.environ.get("RELAYCTL_BIN", os.path.join(ROOT, ".build", "debug", "relayctl"))
VEC = os.path.join(ROOT, "protocol", "vectors")
disagreements = []
agreed = 0


def note(ok, what):
    global agreed
    if ok:
        agreed += 1
    else:
        disagreements.append(what)
        print("DISAGREE", what)


def load(name):
    with open(os.path.join(VEC, name)) as f:
        return json.load(f)


# ---------------------------------------------------------------- minimal WebSocket client

class WS:
    def __init__(self, port, path, protocols=None):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=3)
        key = base64.b64encode(os.urandom(16)).decode()
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, key)
        if protocols:
            req += "Sec-WebSocket-Protocol: %s\r\n" % ", ".join(protocols)
        self.s.sendall((req + "\r\n").encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = self.s.recv(4096)
            if not chunk:
                raise IOError("no upgrade")
            buf += chunk
        head, self.buf = buf.split(b"\r\n\r\n", 1)
        self.status = int(head.split(b" ")[1])

    def send(self, payload, opcode=1):
        if isinstance(payload, str):
            payload = payload.encode("utf-8", "surrogatepass")
        mask = os.urandom(4)
        n = len(payload)
        hdr = bytes([0x80 | opcode])
        if n < 126:
            hdr += bytes([0x80 | n])
        elif n < 65536:
            hdr += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            hdr += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.s.sendall(hdr + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.s.recv(65536)
            if not chunk:
                raise EOFError
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frames(self, timeout=0.8):
        """Frames until the close or the timeout: list of (kind, value)."""
        out = []
        self.s.settimeout(timeout)
        try:
            while True:
                b0, b1 = self._read(2)
                op, n = b0 & 0x0F, b1 & 0x7F
                if n == 126:
                    n = struct.unpack(">H", self._read(2))[0]
                elif n == 127:
                    n = struct.unpack(">Q", self._read(8))[0]
                data = self._read(n)
                if op == 1:
                    out.append(("text", data.decode()))
                elif op == 2:
                    out.append(("binary", data.hex()))
                elif op == 9:
                    self.send(data, 10)
                elif op == 8:
                    code = struct.unpack(">H", data[:2])[0] if len(data) >= 2 else None
                    out.append(("close", (code, data[2:].decode(errors="replace"))))
                    try:
                        self.send(data[:2], 8)
                    except OSError:
                        pass
                    return out
        except (socket.timeout, EOFError, OSError):
            return out

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---------------------------------------------------------------- relayd

def start(site_args=(), relayd_args=()):
    tmp = tempfile.mkdtemp(prefix="relay-probe-")
    r = subprocess.run([RELAYCTL, "site", "add", "--data-dir", tmp, "--site-url", "https://vectors.example", "--site-key", gen.SITE_KEY,
                        "--publish-secret", gen.PUBLISH_SECRET, "--jwt-secret", gen.JWT_SECRET,
                        "--ed25519-public-key=" + gen.b64url(gen.ED_PUB)] + list(site_args), capture_output=True)
    if r.returncode != 0:
        raise SystemExit("site add failed: %s" % r.stderr.decode())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([RELAYD, "--port", str(port), "--data-dir", tmp, "--dev-site", "false"] + list(relayd_args),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            c = httpclient.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return proc, port, tmp
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("relayd did not start")


def token(**kw):
    now = int(time.time())
    c = {"tenant_id": gen.TENANT_ID, "site_id": gen.SITE_ID, "user_id": "42", "v": 2, "iat": now - 10, "exp": now + 290,
         "allowed_channel_prefixes": ["site:%s:" % gen.SITE_ID], "allowed_publish_prefixes": ["site:%s:" % gen.SITE_ID]}
    c.update(kw)
    return gen.jws({"alg": "HS256", "typ": "JWT"}, c, ("hs256", gen.JWT_SECRET))


def publish(port, body: bytes):
    ts = int(time.time() * 1000)
    h = {"Content-Type": "application/json", "X-WP-Signal-Key": gen.SITE_KEY, "X-WP-Signal-Ts": str(ts),
         "X-WP-Signal-Sign": gen.v1_sig(body, ts, gen.PUBLISH_SECRET)}
    c = httpclient.HTTPConnection("127.0.0.1", port, timeout=3)
    c.request("POST", "/publish", body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    try:
        err = json.loads(data).get("error")
    except ValueError:
        err = None
    return r.status, err


def probe_json(port):
    j = load("json.json")
    for c in j["cases"]:
        raw = bytes.fromhex(c["input_hex"])
        if c.get("context") == "publish_body":
            body = raw
        else:
            if c["rule"] == "depth":
                continue
            body = b'{"channel":"events","event":"e","data":' + raw + b"}"
        status, err = publish(port, body)
        want = 200 if c["valid"] else 400
        shown = c.get("input", "hex " + c["input_hex"])
        if len(shown) > 60:
            shown = shown[:57] + "..."
        note(status == want and (c["valid"] or err == "invalid_body"),
             "json %s (%s): POST /publish with it as %s → documented %s, relayd %d %s" % (
                 c["name"], c["rule"], "the body" if c.get("context") else "data", want if c["valid"] else "400 invalid_body",
                 status, err or "", ) + " input: " + json.dumps(shown))


def reason_matches(reason, phrase):
    """The documented rule: a 4001 reason begins with its phrase, then ends or goes on with ':' or ' '."""
    return reason == phrase or reason.startswith(phrase + ":") or reason.startswith(phrase + " ")


def classify(frames):
    kinds = []
    for k, v in frames:
        if k == "close":
            kinds.append(("close", v[0], v[1]))
        elif k == "binary":
            kinds.append(("binary",))
        else:
            d = json.loads(v)
            if d["type"] == "ping":
                continue
            if d["type"] == "error":
                kinds.append(("error", d["code"]))
            elif d["type"] == "message":
                kinds.append(("delivered",))
            else:
                kinds.append(("reply", d["type"]))
    return kinds


def probe_frames(port):
    f = load("frames.json")
    strict = token(allowed_channel_prefixes=[gen.full("events"), gen.full("yjs:")], allowed_publish_prefixes=[gen.full("yjs:")])
    for c in f["client_to_relay"]:
        if c["name"] == "auth_valid":
            continue
        tok = strict if c["token"] == "strict" else token()
        ws = WS(port, "/ws?token=" + tok)
        # subscribe to the channel the frame is about so deliveries are visible
        ws.send('{"type":"subscribe","channels":["events","room","yjs:postType/post:1"]}')
        ws.frames(0.3)
        if "binary_hex" in c:
            ws.send(bytes.fromhex(c["binary_hex"]), 2)
        elif "text" in c:
            ws.send(c["text"])
        else:
            ws.send(bytes.fromhex(c["text_hex"]))
        got = classify(ws.frames(0.8))
        ws.close()
        e = c["expect"]
        k = e["kind"]
        if k == "close":
            ok = any(g[0] == "close" and g[1] == e["code"] for g in got)
        elif k == "error":
            ok = any(g[0] == "error" and g[1] == e["code"] for g in got) and not any(g[0] == "close" for g in got)
        elif k == "error_then_close":
            ok = any(g[0] == "error" and g[1] == e["code"] for g in got) and any(g[0] == "close" and g[1] == e["close"] for g in got)
            if ok and e.get("reason"):
                reason = next(g[2] for g in got if g[0] == "close")
                note(reason_matches(reason, e["reason"]), "frames %s: close reason documented %r, relayd %r" % (c["name"], e["reason"], reason))
        elif k == "reply":
            ok = [g[1] for g in got if g[0] == "reply"] == e["types"]
        elif k == "delivered":
            ok = any(g[0] in ("delivered", "binary") for g in got) and not any(g[0] in ("close", "error") for g in got)
        else:
            ok = not got
        shown = c.get("text", c.get("binary_hex", c.get("text_hex")))
        note(ok, "frames %s: %s → documented %s, relayd %s" % (c["name"], json.dumps(shown[:70]), json.dumps(e), got))


def probe_tokens(port):
    t = load("tokens.json")
    cases = [("missing", "", {"close_code": 4001, "close_reason": "token required", "yjs_close_code": 4001})]
    now = int(time.time())
    cases.append(("expired (real clock)", token(iat=now - 400, exp=now - 100), {"close_code": 4001, "close_reason": "token expired", "yjs_close_code": 4001}))
    for c in t["cases"]:
        e = c["expected"]
        if e["valid"] or e["error"] in ("expired", "notYetValid", "issuedInTheFuture"):
            continue
        if e["error"] in ("algorithmMismatch(HS256)", "algorithmMismatch(EdDSA)"):
            continue  # the probe's site holds both keys, so these tokens are valid (and expired) there
        cases.append((c["name"], c["token"], e))
    for name, tok, e in cases:
        for path, code in (("/ws", e["close_code"]), ("/yjs/vectors-room", e["yjs_close_code"])):
            param = ("?token=" if path == "/ws" else "?auth=") + tok if tok else ""
            try:
                ws = WS(port, path + param)
            except Exception as x:  # an oversize URL may be refused at the HTTP level
                note(False, "tokens %s on %s: no upgrade (%s)" % (name, path, x))
                continue
            if ws.status != 101:
                note(False, "tokens %s on %s: HTTP %d instead of an upgrade and close %d" % (name, path, ws.status, code))
                ws.close()
                continue
            got = [g for g in ws.frames(11 if (not tok and path == "/ws") else 1.5) if g[0] == "close"]
            ws.close()
            gc = got[0][1][0] if got else None
            reason = got[0][1][1] if got else None
            note(gc == code, "tokens %s on %s: documented close %d, relayd %s (%r)" % (name, path, code, gc, reason))
            if gc == code and "close_reason" in e:
                note(reason_matches(reason, e["close_reason"]), "tokens %s on %s: close reason documented %r, relayd %r" % (name, path, e["close_reason"], reason))


def probe_token_json(port):
    """The JSON rules inside a token, at the real clock: a payload 64 deep is valid, 65 deep is not."""
    now = int(time.time())
    for depth, valid in ((64, True), (65, False)):
        payload = ('{"site_id":"%s","user_id":"42","exp":%d,"x":%s}' % (gen.SITE_ID, now + 120, "[" * (depth - 1) + "]" * (depth - 1))).encode()
        tok = gen.jws({"alg": "HS256", "typ": "JWT"}, payload, ("hs256", gen.JWT_SECRET))
        ws = WS(port, "/ws?token=" + tok)
        ws.send('{"type":"subscribe","channels":["events"]}')
        got = ws.frames(1.0)
        ws.close()
        closed = first_close(got)
        ok = (closed is None) if valid else (closed is not None and closed[0] == 4001)
        note(ok, "tokens payload depth %d at the real clock: documented %s, relayd %s" % (depth, "valid" if valid else "close 4001 invalid token", closed or "open"))


def probe_yjs(port):
    y = load("yprotocols.json")
    msgs = {m["name"]: m for m in y["messages"]}
    ws = WS(port, "/yjs/probe-empty-room?auth=" + token())
    first = ws.frames(1.0)
    note(first[:1] == [("binary", msgs["sync_step1_empty"]["hex"])],
         "yjs: opening frame of an empty room documented %s, relayd %s" % (msgs["sync_step1_empty"]["hex"], first[:1]))
    ws.send(bytes.fromhex(msgs["sync_step1_empty"]["hex"]), 2)
    got = ws.frames(1.0)
    note(("binary", msgs["sync_step2_empty"]["hex"]) in got, "yjs: step 2 answer to an empty step 1 in an empty room documented %s, relayd %s" % (msgs["sync_step2_empty"]["hex"], got))
    ws.send(bytes.fromhex(msgs["sync_step2"]["hex"]), 2)
    got = ws.frames(1.0)
    want = "0002" + msgs["sync_step2"]["hex"][4:]
    note(("binary", want) in got, "yjs: an accepted step 2 is broadcast as an update (sender included): documented %s, relayd %s" % (want, got))
    ws.close()
    # read-only
    ro = token(allowed_publish_prefixes=["events"])
    ws = WS(port, "/yjs/probe-ro-room?auth=" + ro)
    ws.frames(0.8)
    ws.send(bytes.fromhex(msgs["update"]["hex"]), 2)
    got = ws.frames(1.0)
    note(("binary", msgs["auth_permission_denied"]["hex"]) in got, "yjs: read-only update answered with permission-denied %s, relayd %s" % (msgs["auth_permission_denied"]["hex"], got))
    ws.close()
    for m in y["invalid"]:
        ws = WS(port, "/yjs/probe-invalid?auth=" + token())
        ws.frames(0.5)
        ws.send(bytes.fromhex(m["hex"]), 2)
        got = [g for g in ws.frames(1.0) if g[0] == "close"]
        ws.close()
        note(bool(got) and got[0][1][0] == 1008, "yjs invalid %s (%s): documented close 1008, relayd %s" % (m["name"], m["hex"], got))
    # room names
    for room, code in (("site:%s:events" % gen.OTHER_SITE_ID, 4004), ("a%01b", 4004)):
        ws = WS(port, "/yjs/" + room + "?auth=" + token())
        got = [g for g in ws.frames(1.0) if g[0] == "close"]
        ws.close()
        note(bool(got) and got[0][1][0] == code, "yjs room %r: documented close %d, relayd %s" % (room, code, got))


def http(port, method, path, body=b"", headers=None):
    c = httpclient.HTTPConnection("127.0.0.1", port, timeout=3)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    try:
        j = json.loads(data)
    except ValueError:
        j = None
    return r.status, j, data, r


def probe_signatures(port):
    """signatures.json re-made at the real clock (timestamps shifted, nonces made unique per run, re-signed the same way)."""
    s = load("signatures.json")
    delta = int(time.time() * 1000) - s["now_ms"]
    run_tag = base64.urlsafe_b64encode(os.urandom(3)).decode()
    for c in s["cases"]:
        r = c["request"]
        h = dict(r["headers"])
        # the clock moves on while the request travels: keep edge cases on their side of the edge
        delta = int(time.time() * 1000) - s["now_ms"] + (200 if ("future" in c["name"] and "edge" not in c["name"]) or "edge_past" in c["name"] else
                                                          -200 if "edge_future" in c["name"] else 0)
        if c["scheme"] == "v1":
            if "X-WP-Signal-Ts" in h and h["X-WP-Signal-Ts"].isdigit():
                h["X-WP-Signal-Ts"] = str(int(h["X-WP-Signal-Ts"]) + delta)
            if c["signed_string"] is not None:
                body_signed, ts = c["signed_string"].rsplit(".", 1)
                new = gen.v1_sig(body_signed.encode(), int(ts) + delta, c["signed_secret"])
                old = gen.v1_sig(body_signed.encode(), int(ts), c["signed_secret"])
                sent = r["headers"]["X-WP-Signal-Sign"]
                h["X-WP-Signal-Sign"] = {old: new, old.upper(): new.upper(), "zz" + old[2:]: "zz" + new[2:], old[:63]: new[:63]}.get(sent, sent)
        else:
            lines = c["signed_string"].split("\n")
            lines[6] = str(int(lines[6]) + delta)
            lines[7] = lines[7][:-5] + run_tag + lines[7][-1:]
            h["X-Relay-Timestamp"] = lines[6]
            h["X-Relay-Nonce"] = lines[7]
            new = gen.v2_sig("\n".join(lines), c["signed_secret"])
            old = gen.v2_sig(c["signed_string"], c["signed_secret"])
            sent = r["headers"]["X-Relay-Signature"]
            h["X-Relay-Signature"] = {old: new, old[3:]: new[3:]}.get(sent, sent)
        path = r["path"] + ("?" + r["query"] if r["query"] else "")
        status, j, _, _ = http(port, r["method"], path, r["body"].encode(), h)
        e = c["expected"]
        err = (j or {}).get("error")
        if e["valid"]:
            ok = status == 200
        else:
            ok = status == e["status"] and err == e["error"]
        note(ok, "signatures %s: documented %s, relayd %d %s" % (c["name"], "valid" if e["valid"] else "%d %s" % (e["status"], e["error"]), status, err or ""))


def probe_http(port):
    def signed(method, path, body):
        ts = int(time.time() * 1000)
        return {"X-WP-Signal-Key": gen.SITE_KEY, "X-WP-Signal-Ts": str(ts), "X-WP-Signal-Sign": gen.v1_sig(body, ts, gen.PUBLISH_SECRET)}
    cases = [
        ("publish receipt", b'{"channel":"events","event":"e","data":{}}', 200, None),
        ("reserved channel", b'{"channel":"wps:connections","event":"e","data":{}}', 403, "reserved_channel"),
        ("other site", ('{"channel":"site:%s:events","event":"e","data":{}}' % gen.OTHER_SITE_ID).encode(), 403, "forbidden"),
        ("empty event", b'{"channel":"events","event":"","data":{}}', 400, "invalid_event"),
        ("empty channel", b'{"channel":"","event":"e","data":{}}', 400, "invalid_channel"),
        ("long idempotency key", ('{"channel":"events","event":"e","data":{},"idempotency_key":"%s"}' % ("k" * 129)).encode(), 400, "invalid_idempotency_key"),
        ("no data", b'{"channel":"events","event":"e"}', 400, "invalid_body"),
        ("array body", b'[]', 400, "invalid_body"),
    ]
    for name, body, st, err in cases:
        status, j, raw, _ = http(port, "POST", "/publish", body, signed("POST", "/publish", body))
        note(status == st and (err is None or (j or {}).get("error") == err), "http %s: documented %d %s, relayd %d %s" % (name, st, err or "", status, raw[:120]))
        if name == "publish receipt" and status == 200:
            keys = sorted(j.keys())
            note(keys == sorted(["ok", "channel", "offset", "epoch", "deliveries", "duplicate"]) and isinstance(j["offset"], int) and j["channel"] == gen.full("events"),
                 "http receipt documented {ok,channel(full),offset(int),epoch,deliveries,duplicate}, relayd %s" % raw[:200])
    body = b'{"publications":[{"channel":"events","event":"e","data":1},{"channel":"events"}]}'
    status, j, raw, _ = http(port, "POST", "/publish/batch", body, signed("POST", "/publish/batch", body))
    note(status == 200 and len(j["results"]) == 2 and j["results"][0].get("ok") is True and j["results"][1].get("error") == "invalid_body",
         "http batch: documented 200 with [receipt, invalid_body], relayd %d %s" % (status, raw[:200]))
    status, j, raw, _ = http(port, "GET", "/site/stats", b"", signed("GET", "/site/stats", b""))
    note(status == 200 and sorted(j) == ["active_connections", "max_connections"], "http stats: relayd %d %s" % (status, raw[:100]))
    status, j, raw, r = http(port, "GET", "/healthz")
    note(status == 200 and sorted(j) == sorted(["status", "active_connections", "published_messages", "channels", "sites", "uptime_s"]),
         "http healthz fields: relayd %s" % raw[:200])
    # SSE refusals and framing
    now = int(time.time())
    status, j, raw, _ = http(port, "GET", "/sse?channels=events")
    note(status == 401 and (j or {}).get("error") == "invalid_token", "sse no token: documented 401 invalid_token, relayd %d %s" % (status, raw[:100]))
    other = gen.jws({"alg": "HS256", "typ": "JWT"}, {"site_id": gen.OTHER_SITE_ID, "exp": now + 60}, ("hs256", gen.JWT_SECRET))
    status, j, raw, _ = http(port, "GET", "/sse?channels=events&token=" + other)
    note(status == 403 and (j or {}).get("error") == "site_not_found", "sse unknown site: documented 403 site_not_found, relayd %d %s" % (status, raw[:100]))
    sock = socket.create_connection(("127.0.0.1", port), timeout=3)
    sock.sendall(("GET /sse?channels=events,shop&token=%s HTTP/1.1\r\nHost: x\r\n\r\n" % token()).encode())
    time.sleep(0.3)
    pub = b'{"channel":"events","event":"post.updated","data":{"post_id":5}}'
    http(port, "POST", "/publish", pub, signed("POST", "/publish", pub))
    time.sleep(0.5)
    sock.settimeout(1)
    try:
        got = sock.recv(65536).decode(errors="replace")
    except socket.timeout:
        got = ""
    sock.close()
    note("retry: 3000" in got and 'data: {"event":"post.updated","channel":"events","data":{"post_id":5}}' in got and "id: m1," in got,
         "sse stream documented retry/id m1,/unnamed data, relayd: %r" % got[-400:])
    # token sources on /ws
    for label, path, protos in (("subprotocol", "/ws", ["relay", "token." + token()]), ("query", "/ws?token=" + token(), None)):
        ws = WS(port, path, protos)
        ws.send('{"type":"subscribe","channels":["events"]}')
        got = classify(ws.frames(0.8))
        ws.close()
        note(ws.status == 101 and ("reply", "subscribed") in got, "ws token via %s: relayd %d %s" % (label, ws.status, got))
    ws = WS(port, "/ws")
    ws.send('{"type":"auth","token":"%s"}' % token())
    ws.send('{"type":"subscribe","channels":["events"]}')
    got = classify(ws.frames(0.8))
    ws.close()
    note(("reply", "subscribed") in got, "ws auth first frame: relayd %s" % got)
    ws = WS(port, "/ws")
    ws.send('{"type":"pong"}')
    got = [g for g in ws.frames(1.5) if g[0] == "close"]
    ws.close()
    note(bool(got) and got[0][1][0] == 4001 and reason_matches(got[0][1][1], "token required"),
         "ws first frame not auth: documented 4001 'token required', relayd %s" % got)
    # /yjs text message ignored
    ws = WS(port, "/yjs/probe-text?auth=" + token())
    ws.frames(0.5)
    ws.send('{"type":"pong"}')
    got = [g for g in ws.frames(1.0) if g[0] == "close"]
    ws.close()
    note(not got, "yjs text message: documented ignored, relayd %s" % got)


def first_close(frames):
    for g in frames:
        if g[0] == "close":
            return g[1]
    return None


def probe_limits():
    """Close codes that need tight limits: a second relayd with small caps."""
    proc, port, tmp = start(["--max-connections", "3", "--max-message-bytes", "200"],
                            ["--yjs-max-update-bytes", "64", "--yjs-max-connections-per-room", "2",
                             "--yjs-max-collaborators-per-room", "1", "--idle-timeout", "2", "--ping-interval", "1"])
    try:
        def expect(what, got, code, reason=None):
            ok = got is not None and got[0] == code and (reason is None or got[1].startswith(reason))
            note(ok, "close %s: documented %d%s, relayd %s" % (what, code, " %r" % reason if reason else "", got))
        a = WS(port, "/yjs/r1?auth=" + token(user_id="1")); a.frames(0.3)
        b = WS(port, "/yjs/r1?auth=" + token(user_id="2"))
        expect("yjs collaborator cap", first_close(b.frames(1)), 4014)
        a.close(); b.close(); time.sleep(0.3)
        a = WS(port, "/yjs/r2?auth=" + token(user_id="1")); a.frames(0.3)
        b = WS(port, "/yjs/r2?auth=" + token(user_id="1")); b.frames(0.3)
        c = WS(port, "/yjs/r2?auth=" + token(user_id="1"))
        expect("yjs room connection cap", first_close(c.frames(1)), 4012)
        a.close(); b.close(); c.close(); time.sleep(0.3)
        a = WS(port, "/yjs/r3?auth=" + token()); a.frames(0.3)
        a.send(b"\x00\x02\x50" + b"\x00" * 80, 2)
        expect("yjs update over --yjs-max-update-bytes", first_close(a.frames(1)), 4011)
        a.close(); time.sleep(0.3)
        conns = [WS(port, "/ws?token=" + token()) for _ in range(3)]
        for w in conns:
            w.frames(0.2)
        d = WS(port, "/ws?token=" + token())
        expect("site connection limit", first_close(d.frames(1)), 4029)
        for w in conns:
            w.close()
        time.sleep(0.3)
        w = WS(port, "/ws?token=" + token())
        w.send('{"type":"message","channel":"events","event":"e","data":"%s"}' % ("x" * 300))
        expect("client publish over max_message_bytes", first_close(w.frames(1)), 1009)
        w.close(); time.sleep(0.3)
        w = WS(port, "/ws?token=" + token())
        for i in range(40):
            w.send('{"type":"message","channel":"events","event":"e","data":%d}' % i)
        expect("client publish rate", first_close(w.frames(1)), 4013)
        w.close(); time.sleep(0.3)
        w = WS(port, "/ws?token=" + token())
        w.s.settimeout(6)
        got = None
        t0 = time.time()
        while time.time() - t0 < 6 and got is None:
            got = first_close([f for f in w.frames(0.5) if f[0] == "close"])
        expect("ws idle (--idle-timeout 2)", got, 4002)
        w.close()
        y = WS(port, "/yjs/r4?auth=" + token())
        got = None
        t0 = time.time()
        while time.time() - t0 < 7 and got is None:
            got = first_close(y.frames(0.5))
        note(got is None, "close yjs idle: close-codes.json lists 4002 for /ws only; relayd on a silent /yjs connection (--idle-timeout 2): %s" % (got,))
        y.close()
        w = WS(port, "/ws?token=" + token()); w.frames(0.2)
        y = WS(port, "/yjs/r5?auth=" + token()); y.frames(0.2)
        body = json.dumps({"site_key": gen.SITE_KEY, "publish_secret": gen.PUBLISH_SECRET}).encode()
        st, j, raw, _ = http(port, "POST", "/api/sites/unregister", body, {"Content-Type": "application/json"})
        note(st == 200, "unregister: relayd %d %s" % (st, raw[:100]))
        expect("ws after unregister", first_close(w.frames(1)), 4003)
        expect("yjs after unregister", first_close(y.frames(1)), 4003)
        w.close(); y.close()
        x = WS(port, "/ws?token=" + token())
        expect("ws token of an archived site", first_close(x.frames(1)), 4003)
        x.close()
        st, j, raw, _ = http(port, "POST", "/api/sites/register", json.dumps({"site_url": "https://vectors.example", "site_name": "v"}).encode(),
                             {"Authorization": "Bearer " + open(os.path.join(tmp, "admin.key")).read().strip()})
        note(st == 200 and j.get("site_key") == gen.SITE_KEY and j.get("publish_secret") != gen.PUBLISH_SECRET,
             "register an archived URL: documented same site_key, fresh secrets; relayd %d %s" % (st, raw[:160]))
        fresh = j.get("jwt_secret", "")
        tok = gen.jws({"alg": "HS256", "typ": "JWT"}, {"site_id": gen.SITE_ID, "exp": int(time.time()) + 60}, ("hs256", fresh))
        w = WS(port, "/ws?token=" + tok); w.frames(0.3)
        proc.send_signal(15)
        expect("ws on shutdown", first_close(w.frames(3)), 4500, "server shutting down; retry_after_ms=")
        w.close()
    finally:
        proc.terminate()
        try:
            proc.wait(8)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    for b in (RELAYD, RELAYCTL):
        if not os.access(b, os.X_OK):
            raise SystemExit("probe_relayd.py: %s is not executable (set RELAYD_BIN and RELAYCTL_BIN)" % b)
    proc, port, tmp = start()
    try:
        probe_json(port)
        probe_signatures(port)
        probe_http(port)
        probe_frames(port)
        probe_tokens(port)
        probe_token_json(port)
        probe_yjs(port)
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    probe_limits()
    print("probe_relayd.py: %d agreements, %d disagreements" % (agreed, len(disagreements)))
    sys.exit(1 if disagreements else 0)

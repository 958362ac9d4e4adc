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
import http.client
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

def start():
    tmp = tempfile.mkdtemp(prefix="relay-probe-")
    r = subprocess.run([RELAYCTL, "site", "add", "--data-dir", tmp, "--site-url", "https://vectors.example", "--site-key", gen.SITE_KEY,
                        "--publish-secret", gen.PUBLISH_SECRET, "--jwt-secret", gen.JWT_SECRET,
                        "--ed25519-public-key=" + gen.b64url(gen.ED_PUB)], capture_output=True)
    if r.returncode != 0:
        raise SystemExit("site add failed: %s" % r.stderr.decode())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([RELAYD, "--port", str(port), "--data-dir", tmp, "--dev-site", "false"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
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
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
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


if __name__ == "__main__":
    for b in (RELAYD, RELAYCTL):
        if not os.access(b, os.X_OK):
            raise SystemExit("probe_relayd.py: %s is not executable (set RELAYD_BIN and RELAYCTL_BIN)" % b)
    proc, port, tmp = start()
    try:
        probe_json(port)
        probe_frames(port)
        probe_tokens(port)
        probe_yjs(port)
    finally:
        proc.terminate()
        proc.wait(5)
        shutil.rmtree(tmp, ignore_errors=True)
    print("probe_relayd.py: %d agreements, %d disagreements" % (agreed, len(disagreements)))
    sys.exit(1 if disagreements else 0)

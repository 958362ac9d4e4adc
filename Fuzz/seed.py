#!/usr/bin/env python3
"""Writes the seed corpora (Fuzz/corpus/<Target>/) from the protocol vectors: small,
checked in, regenerated with `python3 Fuzz/seed.py`. Inputs found by fuzzing that
crashed go to Fuzz/regressions/<Target>/ and are replayed with the corpora."""
import gzip, hashlib, json, os, shutil, struct, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Fuzz", "corpus")
V = lambda name: json.load(open(os.path.join(ROOT, "protocol", "vectors", name + ".json")))

seeds = {t: [] for t in ["FuzzJSON", "FuzzClientFrame", "FuzzBase64", "FuzzJWT", "FuzzEnvelope", "FuzzYjsMessage", "FuzzYjsUpdate",
                         "FuzzPublishSignature", "FuzzLib0", "FuzzYjsMerge", "FuzzWebSocketFrames", "FuzzHTTPUpgrade", "FuzzYjsSealed"]}
for c in V("json")["cases"]:
    seeds["FuzzJSON"].append(bytes.fromhex(c["input_hex"]))
for c in V("frames")["client_to_relay"]:
    if "text" in c:
        seeds["FuzzClientFrame"].append(c["text"].encode())
for c in V("frames")["relay_to_client"]:
    if "text" in c:
        seeds["FuzzJSON"].append(c["text"].encode())
for c in V("tokens")["cases"]:
    t = c["token"].encode()
    seeds["FuzzJWT"].append(t)
    # The claims alone: FuzzJWT signs any payload that decodes as claims, with both keys.
    if isinstance(c.get("claims"), dict):
        seeds["FuzzJWT"].append(json.dumps(c["claims"], separators=(",", ":")).encode())
    for part in c["token"].split("."):
        seeds["FuzzBase64"].append(part.encode())
for c in V("envelopes")["cases"]:
    env = c.get("envelope")
    if env is not None:
        seeds["FuzzEnvelope"].append((env if isinstance(env, str) else json.dumps(env, separators=(",", ":"))).encode())
y = V("yprotocols")
for c in y["messages"] + y["invalid"]:
    b = bytes.fromhex(c["hex"])
    seeds["FuzzYjsMessage"].append(b)
    # The update inside a sync message (type 0, sync 1 or 2, then a varuint length).
    if len(b) > 3 and b[0] == 0 and b[1] in (1, 2):
        seeds["FuzzYjsUpdate"].append(b[3:] if b[2] < 0x80 else b[4:])
seeds["FuzzYjsUpdate"].append(bytes([0, 0]))
# Publish requests as FuzzPublishSignature reads them: request line, header lines, empty line, body.
for c in V("signatures")["cases"]:
    r = c["request"]
    target = r["path"] + ("?" + r["query"] if r.get("query") else "")
    head = f'{r["method"]} {target}\n' + "".join(f"{k}: {v}\n" for k, v in r["headers"].items())
    seeds["FuzzPublishSignature"].append((head + "\n" + r["body"]).encode())
# lib0: the first byte picks the reads (see FuzzLib0), then the data.
def varuint(n):
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80); n >>= 7
    out.append(n)
    return bytes(out)
def lstr(s): b = s.encode(); return varuint(len(b)) + b
any_values = [b"\x7f", b"\x7e", b"\x7d\x81\x01", b"\x7d\xc1\x01", b"\x7c\x3f\x80\x00\x00", b"\x7b" + struct.pack(">d", 0.1),
              b"\x7a" + struct.pack(">q", -5), b"\x78", b"\x79", b"\x77" + lstr("hé😀"),
              b"\x76\x02" + lstr("a") + b"\x7d\x01" + lstr("b") + b"\x75\x02\x78\x77" + lstr("x"), b"\x74\x03abc"]
for op in range(8):
    for v in [varuint(0), varuint(127), varuint(300), varuint((1 << 53) - 1), b"\xff" * 9 + b"\x01"]:
        seeds["FuzzLib0"].append(bytes([op]) + v)
for v in any_values:
    seeds["FuzzLib0"].append(bytes([0x02]) + v)
    seeds["FuzzLib0"].append(v)
for w in ["", "ascii", "é", "😀", "\ud7ff"]:
    seeds["FuzzLib0"].append(bytes([0x03]) + lstr(w))
seeds["FuzzLib0"].append(bytes([0x03, 0x03, 0xed, 0xa0, 0x80]))  # a surrogate
seeds["FuzzLib0"].append(bytes([0x03, 0x02, 0xc0, 0xaf]))  # overlong
# WebSocket client streams: masked frames (RFC 6455 §5.2).
def frame(opcode, payload, fin=True, mask=b"\x01\x02\x03\x04", rsv=0):
    b0 = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    head = bytes([b0]) + (bytes([(0x80 if mask else 0) | n]) if n < 126 else
                         bytes([(0x80 if mask else 0) | 126]) + struct.pack(">H", n) if n < 65536 else
                         bytes([(0x80 if mask else 0) | 127]) + struct.pack(">Q", n))
    if mask:
        head += mask
        payload = bytes(x ^ mask[i % 4] for i, x in enumerate(payload))
    return head + payload
ws = [frame(1, b"hello"), frame(2, bytes(range(10))), frame(1, "é".encode()[:1], fin=False) + frame(0, "é".encode()[1:]),
      frame(2, b"ab", fin=False) + frame(9, b"p") + frame(0, b"cd"), frame(9, b"ping") + frame(10, b""),
      frame(8, b""), frame(8, struct.pack(">H", 1000) + b"bye"), frame(8, struct.pack(">H", 1005)), frame(8, b"\x03"),
      frame(1, b"x", mask=None), frame(1, b"x", rsv=4), frame(3, b""), frame(0, b"x"), frame(9, b"x", fin=False),
      frame(1, b"\xff"), frame(2, b"z" * 300), frame(1, b"a" * 200, fin=False) + frame(0, b"a" * 900)]
for c in V("frames")["client_to_relay"]:
    if "text" in c:
        ws.append(frame(1, c["text"].encode()))
seeds["FuzzWebSocketFrames"] += ws
# Upgrade requests, with proxies' forwarding headers; the first line also feeds the --trusted-proxy parser.
tok = V("tokens")["cases"][0]["token"]
def upgrade(target, *extra):
    return ("GET %s HTTP/1.1\r\nHost: relay.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n%s\r\n" % (target, "".join(e + "\r\n" for e in extra))).encode()
seeds["FuzzHTTPUpgrade"] += [
    upgrade("/ws?token=" + tok), upgrade("/ws", "Sec-WebSocket-Protocol: relay, token." + tok),
    upgrade("/yjs/post%3A1?token=a.b-c_d&auth=x%2By+z&token=second&empty=&flag&bad=%zz%4&utf=caf%C3%A9"),
    upgrade("/ws?a=1&b=2", "X-Forwarded-For: 203.0.113.9, 10.0.0.2", "Authorization: Bearer abc"),
    upgrade("/ws", 'Forwarded: for=192.0.2.60;proto=https, for="[2001:db8::1]:4711"', "X-Forwarded-For: 198.51.100.1"),
    upgrade("/ws", "Forwarded: for=unknown, for=10.9.8.7", "Forwarded: For=\"::ffff:10.0.0.1\""),
    b"127.0.0.1, 10.0.0.0/8,::1 fd00::/8\n", b"192.168.1.128/25,0.0.0.0/0\n", b"::ffff:1.2.3.4/128\n",
    b"POST /publish?x=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
]
# Real Yjs updates (v1 and v2) from Debian's node-yjs, when it is installed: text with
# deletes and formats, a map, an array, a nested type, two clients.
JS = r"""
const Y = require('yjs');
const a = new Y.Doc(), b = new Y.Doc(); a.clientID = 1; b.clientID = 2;
const t = a.getText('t'); t.insert(0, 'hello wörld 😀'); t.delete(2, 3); t.format(0, 2, { bold: true });
a.getMap('m').set('k', { nested: [1, 2, 3] }); a.getArray('a').insert(0, [1, 'two', new Y.Map()]);
Y.applyUpdate(b, Y.encodeStateAsUpdate(a)); b.getText('t').insert(1, 'X');
const out = [Y.encodeStateAsUpdate(a), Y.encodeStateAsUpdate(b), Y.encodeStateAsUpdateV2(b),
             Y.encodeStateAsUpdate(b, Y.encodeStateVector(a))];
// A few transactions of a real concurrent editing trace (two agents, each its own Y.Doc),
// given on stdin: the updates of each agent, for merge seeds.
const trace = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const docs = [new Y.Doc(), new Y.Doc()]; docs[0].clientID = 10; docs[1].clientID = 11;
const traceUpdates = [];
for (const d of docs) d.on('update', (u) => traceUpdates.push(u));
for (const txn of trace.txns.slice(0, 40)) {
  const d = docs[txn.agent % 2], t = d.getText('t');
  d.transact(() => { for (const [pos, del, ins] of txn.patches) { const p = Math.min(pos, t.length);
    if (del) t.delete(p, Math.min(del, t.length - p)); if (ins) t.insert(p, ins); } });
  Y.applyUpdate(docs[1 - txn.agent % 2], Y.encodeStateAsUpdate(d));
}
out.push(Y.mergeUpdates(traceUpdates.slice(0, 20)), Y.encodeStateAsUpdate(docs[0]), Y.encodeStateAsUpdateV2(docs[1]));
console.log(JSON.stringify(out.map((u) => Buffer.from(u).toString('hex'))));
"""
try:
    trace = gzip.open(os.path.join(ROOT, "..", "shared", "data", "editing-traces", "friendsforever.json.gz")).read()
    r = subprocess.run(["node", "-e", JS], capture_output=True, timeout=30, input=trace,
                       env=dict(os.environ, NODE_PATH=os.environ.get("NODE_PATH", "/usr/share/nodejs")))
    node_updates = [bytes.fromhex(h) for h in json.loads(r.stdout)]
    seeds["FuzzYjsUpdate"] += node_updates
except Exception as e:  # seeds are a convenience: the fuzzer finds its way without them
    print(f"no node-yjs seeds: {e}", file=sys.stderr)
    node_updates = []
# FuzzYjsMerge: a selector byte, varUint length, an update U, then an optional second update V.
merge_updates = list(dict.fromkeys(u for u in seeds["FuzzYjsUpdate"] if len(u) <= 4096))
for i, u in enumerate(merge_updates):
    v = merge_updates[(i + 1) % len(merge_updates)]
    seeds["FuzzYjsMerge"].append(bytes([i * 37 % 256]) + varuint(len(u)) + u)
    seeds["FuzzYjsMerge"].append(bytes([i * 91 % 256]) + varuint(len(u)) + u + v)

# FuzzYjsSealed: sessions of `flags | varUint length | frame` (flags bit 0: may write; bits 1-2: connection).
e2e = V("yjs-e2e")
frames = [bytes.fromhex(m["hex"]) for m in e2e["messages"] if m["direction"] == "client"]
for f in frames:
    seeds["FuzzYjsSealed"].append(bytes([1]) + varuint(len(f)) + f)
session = b""
for i, f in enumerate(frames * 3):
    session += bytes([1 | (i % 3) << 1]) + varuint(len(f)) + f
seeds["FuzzYjsSealed"].append(session)
for m in e2e["messages"] + e2e["invalid_messages"]:
    seeds["FuzzYjsSealed"].append(bytes.fromhex(m["hex"]))

# Only the targets generated here are rewritten (FuzzYjsGC's seeds come from its own generator).
for target in seeds:
    shutil.rmtree(os.path.join(OUT, target), ignore_errors=True)
for target, items in seeds.items():
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for b in dict.fromkeys(items):  # unique, in order
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()[:16]), "wb") as f:
            f.write(b)
    print(f"{target}: {len(set(items))} seeds", file=sys.stderr)

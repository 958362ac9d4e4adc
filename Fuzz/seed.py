#!/usr/bin/env python3
"""Writes the seed corpora (Fuzz/corpus/<Target>/) from the protocol vectors: small,
checked in, regenerated with `python3 Fuzz/seed.py`. Inputs found by fuzzing that
crashed go to Fuzz/regressions/<Target>/ and are replayed with the corpora."""
import hashlib, json, os, shutil, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "Fuzz", "corpus")
V = lambda name: json.load(open(os.path.join(ROOT, "protocol", "vectors", name + ".json")))

seeds = {t: [] for t in ["FuzzJSON", "FuzzClientFrame", "FuzzBase64", "FuzzJWT", "FuzzEnvelope", "FuzzYjsMessage", "FuzzYjsUpdate"]}
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
console.log(JSON.stringify(out.map((u) => Buffer.from(u).toString('hex'))));
"""
try:
    import subprocess
    r = subprocess.run(["node", "-e", JS], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, NODE_PATH=os.environ.get("NODE_PATH", "/usr/share/nodejs")))
    for h in json.loads(r.stdout):
        seeds["FuzzYjsUpdate"].append(bytes.fromhex(h))
except Exception as e:  # seeds are a convenience: the fuzzer finds its way without them
    print(f"no node-yjs seeds: {e}", file=sys.stderr)

shutil.rmtree(OUT, ignore_errors=True)
for target, items in seeds.items():
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    for b in dict.fromkeys(items):  # unique, in order
        with open(os.path.join(d, hashlib.sha1(b).hexdigest()[:16]), "wb") as f:
            f.write(b)
    print(f"{target}: {len(set(items))} seeds", file=sys.stderr)

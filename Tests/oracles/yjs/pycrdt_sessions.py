"""Seeded random multi-client sessions made with pycrdt (Rust yrs), and yrs's answers.

Usage: python pycrdt_sessions.py OUT.json COUNT SEED

Writes a JSON array of sessions: hex updates (from document observers of 1-3 synced docs),
and yrs's merge_updates / get_state / get_update outputs on them, for the Swift tests to
recompute and compare. State vectors used for diffs are taken from real document snapshots,
so no boundary falls inside a surrogate pair (where yrs and Yjs differ).
"""
import json
import random
import sys

from pycrdt import Array, Doc, Map, Text, get_state, get_update, merge_updates

PIECES = ["a", "b", " ", "xyz", "é", "中文", "😀", "👍🏽", "𝄞", "Hello", "\n"]
# No dict values: yrs keeps Any maps in a HashMap and re-encodes them on merge/diff in a random
# key order (per process), so bytes would not be comparable. Dicts are covered by the Yjs oracle.
VALUES = [1, -7, 2**31, 1.5, 0.1, "x", "", True, False, None, [1, 2, "three"], [[True], "é"]]


def session(seed):
    rnd = random.Random(seed)
    ndocs = rnd.randint(1, 3)
    docs, updates, snapshots = [], [], []
    for i in range(ndocs):
        d = Doc(client_id=rnd.randint(1, 2**32 - 1) if rnd.random() < 0.8 else i + 1)
        d.observe(lambda e: updates.append(bytes(e.update)))
        docs.append(d)

    def text_of(d):
        return d.get("t", type=Text)

    def rand_text():
        return "".join(rnd.choice(PIECES) for _ in range(rnd.randint(1, 3)))

    def edit_text(t):
        # pycrdt text offsets are UTF-8 byte offsets: pick code points, convert.
        s = str(t)
        n = len(s)

        def off(i):
            return len(s[:i].encode())

        r = rnd.random()
        if r < 0.5 or n == 0:
            attrs = rnd.choice([None, None, {"bold": True}, {"italic": True}])
            t.insert(off(rnd.randint(0, n)), rand_text(), attrs)
        elif r < 0.8:
            p = rnd.randrange(n)
            del t[off(p):off(min(n, p + rnd.randint(1, 5)))]
        else:
            p = rnd.randrange(n)
            t.format(off(p), off(min(n, p + rnd.randint(1, 6))), rnd.choice([{"bold": True}, {"bold": None}, {"italic": True}]))

    def edit_array(a):
        n = len(a)
        if rnd.random() < 0.6 or n == 0:
            q = rnd.random()
            v = Map({"k": rnd.randint(0, 9)}) if q < 0.15 else (Text(rand_text()) if q < 0.25 else rnd.choice(VALUES))
            a.insert(rnd.randint(0, n), v)
        else:
            del a[rnd.randrange(n)]

    def edit_map(m):
        key = rnd.choice(["k1", "k2", "k3", "é", "😀"])
        r = rnd.random()
        if r < 0.6:
            m[key] = rnd.choice(VALUES)
        elif r < 0.75:
            m[key] = Map({"x": 1})
        elif r < 0.85:
            m[key] = Array([1, 2])
        elif key in m:
            del m[key]

    for _ in range(rnd.randint(10, 60)):
        d = rnd.choice(docs)
        r = rnd.random()
        if r < 0.15 and ndocs > 1:
            a, b = rnd.choice(docs), rnd.choice(docs)
            if a is not b:
                b.apply_update(a.get_update(b.get_state()))
        elif r < 0.2:
            snapshots.append((d.get_state(), d.get_update()))
        else:
            with d.transaction():
                for _ in range(rnd.randint(1, 3) if rnd.random() < 0.2 else 1):
                    q = rnd.random()
                    if q < 0.5:
                        edit_text(text_of(d))
                    elif q < 0.75:
                        edit_array(d.get("a", type=Array))
                    else:
                        m = d.get("m", type=Map)
                        subs = [v for v in m.values() if isinstance(v, Map)]
                        edit_map(rnd.choice(subs) if subs and rnd.random() < 0.3 else m)

    out = {"seed": seed, "updates": [u.hex() for u in updates], "merges": [], "svs": [], "diffs": []}
    if not updates:
        return out
    everything = merge_updates(*updates)
    out["merges"].append({"inputs": list(range(len(updates))), "out": everything.hex()})
    for _ in range(3):
        if len(updates) > 1:
            idx = [rnd.randrange(len(updates)) for _ in range(rnd.randint(2, min(12, len(updates))))]
            out["merges"].append({"inputs": idx, "out": merge_updates(*[updates[i] for i in idx]).hex()})
    for u in [everything] + updates[:5]:
        out["svs"].append({"input": u.hex(), "out": get_state(u).hex()})
    for sv, _ in snapshots:
        out["diffs"].append({"input": everything.hex(), "sv": sv.hex(), "out": get_update(everything, sv).hex()})
    out["diffs"].append({"input": everything.hex(), "sv": "00", "out": get_update(everything, b"\x00").hex()})
    return out


def main():
    path, count, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with open(path, "w") as f:
        json.dump([session(seed + i) for i in range(count)], f)


if __name__ == "__main__":
    main()

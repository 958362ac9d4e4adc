"""pycrdt (yrs) side of the YjsSync benchmark, on the updates written by bench-node.js.

Usage: python bench-pycrdt.py UPDATES SUBSET HALF_SV_HEX
"""
import json
import struct
import sys
import time

from pycrdt import get_state, get_update, merge_updates

path, subset, half_sv = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
data = open(path, "rb").read()
updates, i = [], 0
while i < len(data):
    (n,) = struct.unpack_from("<I", data, i)
    updates.append(data[i + 4:i + 4 + n])
    i += 4 + n
out = {}
t = time.perf_counter()
merge_updates(*updates[:subset])
out["mergeSubsetMs"] = (time.perf_counter() - t) * 1000
t = time.perf_counter()
acc = b"\x00\x00"
for k in range(0, len(updates), 1000):
    acc = merge_updates(acc, *updates[k:k + 1000])
out["mergeAllFold1000Ms"] = (time.perf_counter() - t) * 1000
out["mergedBytes"] = len(acc)
t = time.perf_counter()
get_state(acc)
out["svMs"] = (time.perf_counter() - t) * 1000
t = time.perf_counter()
d = get_update(acc, half_sv)
out["diffMs"] = (time.perf_counter() - t) * 1000
out["diffBytes"] = len(d)
print(json.dumps(out))

"""Two relayd nodes on one Redis (issue 14), driven by an independent client.

Config: the usual RELAY_PEER_CONFIG (port = node A) plus "port_b" (node B, same site).
Prints one JSON object with what was observed; Tests/RelayServerTests/MultiNodeTests.swift asserts on it.
"""

import asyncio
import json

import relaypeer as rp
from relaypeer import CFG, apublish, collect, connect_and_subscribe, mint, run, subscribe, until

SITE = CFG["site"]
NODES = {"a": CFG["port"], "b": CFG["port_b"]}


def on(node):
    """Points the helpers at node `node` ("a" or "b")."""
    rp.BASE = f"http://127.0.0.1:{NODES[node]}"
    rp.WSBASE = f"ws://127.0.0.1:{NODES[node]}"


def is_msg(j):
    return j.get("type") == "message"


def brief(raw):
    j = json.loads(raw)
    return {"node_data": j.get("data"), "offset": j.get("offset"), "epoch": j.get("epoch")}


async def channels():
    r = {}
    on("a")
    sa, r["a_subscribed"] = await connect_and_subscribe(SITE, ["events"])
    on("b")
    sb, r["b_subscribed"] = await connect_and_subscribe(SITE, ["events"])
    # A publish to B reaches A's subscriber, and one to A reaches B's: one position sequence.
    on("b")
    r["publish_b"] = (await apublish(SITE, "events", "e", '{"via":"b"}'))[0]
    on("a")
    r["publish_a"] = (await apublish(SITE, "events", "e", '{"via":"a"}'))[0]
    seen = {"a": [], "b": []}
    for name, ws in (("a", sa), ("b", sb)):
        for _ in range(2):
            raw, _, _ = await until(ws, is_msg, 5)
            seen[name].append(brief(raw) if raw else None)
    r["seen"] = seen
    last = seen["a"][-1]
    await sa.close()
    # Published on B while A's subscriber is away; it comes back on A with its position.
    on("b")
    for i in (3, 4):
        await apublish(SITE, "events", "e", '{"i":%d}' % i)
    on("a")
    ws = await rp.ws_open(mint(SITE)[0])
    r["recovery_subscribed"] = [json.loads(f) for f in await subscribe(ws, ["events"], {"events": {"offset": last["offset"], "epoch": last["epoch"]}})]
    r["recovered"] = [brief(f) for f in await collect(ws, 0.8) if json.loads(f).get("type") == "message"]
    await ws.close()
    await sb.close()
    return r


if __name__ == "__main__":
    run({"channels": channels})

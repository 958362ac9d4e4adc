"""Two relayd nodes on one Redis (issue 14), driven by an independent client.

Config: the usual RELAY_PEER_CONFIG (port = node A) plus "port_b" (node B, same site).
Prints one JSON object with what was observed; Tests/RelayServerTests/MultiNodeTests.swift asserts on it.
"""

import asyncio
import json
import os
import signal
import time

import relaypeer as rp
from relaypeer import CFG, apublish, collect, connect_and_subscribe, mint, run, subscribe, until, wait_close

SITE = CFG["site"]
NODES = {"a": CFG["port"], "b": CFG.get("port_b")}


def on(node):
    """Points the helpers at node `node` ("a" or "b")."""
    rp.BASE = f"http://127.0.0.1:{NODES[node]}"
    rp.WSBASE = f"ws://127.0.0.1:{NODES[node]}"


def is_msg(j):
    return j.get("type") == "message"


def brief(raw):
    j = json.loads(raw)
    return {"node_data": j.get("data"), "offset": j.get("offset"), "epoch": j.get("epoch")}


async def messages(ws, n, timeout=5):
    """The next `n` messages on `ws` (None for each that did not come in time), briefly."""
    out = []
    for _ in range(n):
        raw, _, _ = await until(ws, is_msg, timeout)
        out.append(brief(raw) if raw else None)
    return out


async def recover(last):
    """A fresh connection on the current node subscribing to `events` from position `last`:
    (the answer frames, the messages replayed)."""
    ws = await rp.ws_open(mint(SITE)[0])
    answer = [json.loads(f) for f in await subscribe(ws, ["events"], {"events": {"offset": last["offset"], "epoch": last["epoch"]}})]
    replayed = [brief(f) for f in await collect(ws, 0.8) if json.loads(f).get("type") == "message"]
    await ws.close()
    return answer, replayed


async def subscriber_on_a_after_two_from_b(r):
    """A subscriber to `events` on node A that has received two publications made on node B."""
    on("a")
    sa, r["a_subscribed"] = await connect_and_subscribe(SITE, ["events"])
    on("b")
    for i in (1, 2):
        await apublish(SITE, "events", "e", '{"i":%d}' % i)
    r["seen"] = await messages(sa, 2)
    return sa


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
    seen = {"a": await messages(sa, 2), "b": await messages(sb, 2)}
    r["seen"] = seen
    last = seen["a"][-1]
    await sa.close()
    # Published on B while A's subscriber is away; it comes back on A with its position.
    on("b")
    for i in (3, 4):
        await apublish(SITE, "events", "e", '{"i":%d}' % i)
    on("a")
    r["recovery_subscribed"], r["recovered"] = await recover(last)
    await sb.close()
    # A v2-signed publish is accepted once by the cluster: replayed to the other node, refused.
    body = rp.envelope("events", "e", '{"v2":true}')
    headers = rp.v2_headers(SITE, "POST", "/publish", "", body)
    r["v2_replay"] = []
    for node in ("a", "b", "a"):
        on(node)
        status, _, raw = rp.http("POST", "/publish", body, headers)
        r["v2_replay"].append([status, rp.jbody(raw).get("error")])
    return r


async def registry():
    """The site registry on PostgreSQL (both nodes `--database`): a site registered through A's
    admin API publishes through B at once; a secret rotated on A works on B at once, the old one
    through its grace period; the monthly quota counts both nodes; removal on A closes B's
    connections."""
    r = {}
    on("a")
    status, site = rp.admin("/api/sites/register", {"site_url": "https://multi.example", "site_name": "multi"})
    r["register"] = status
    on("b")
    r["publish_b_new_site"] = (await apublish(site, "news", "n", '{"n":1}'))
    sb, r["b_subscribed"] = await connect_and_subscribe(site, ["news"])
    on("a")
    status, rotated = rp.admin("/api/sites/rotate", {"site_key": site["site_key"], "grace_seconds": 60})
    r["rotate"] = status
    new = dict(site, publish_secret=rotated["publish_secret"])
    on("b")
    r["publish_b_new_secret"] = (await apublish(new, "news", "n", '{"n":2}'))[0]
    r["publish_b_old_secret"] = (await apublish(site, "news", "n", '{"n":3}'))[0]
    r["publish_b_wrong_secret"] = (await apublish(dict(site, publish_secret="0" * 64), "news", "n", '{"n":4}'))[0]
    # Quota 10 for the month, 3 already used: 4 on each node pass (each node's last-known count
    # is under 10, at worst), and once the nodes have exchanged counts both refuse.
    on("a")
    r["limits"] = rp.admin("/api/sites/limits", {"site_key": site["site_key"], "limits": {"monthly_message_quota": 10}})[0]
    await asyncio.sleep(0.5)
    statuses = []
    for node in ("a", "b") * 4:
        on(node)
        statuses.append((await apublish(new, "news", "q", "{}"))[0])
    r["quota_first"] = statuses
    await asyncio.sleep(11)  # each node stores and learns the counts every 5 s: two rounds
    r["quota_after"] = {}
    for node in ("a", "b"):
        on(node)
        r["quota_after"][node] = await apublish(new, "news", "q", "{}")
    # Removed on A: B closes its connections with 4003 and refuses publishes.
    on("a")
    r["remove"] = rp.admin("/api/sites/remove", {"site_key": site["site_key"]})[0]
    r["b_closed"] = await wait_close(sb, 5)
    on("b")
    r["publish_b_removed"] = (await apublish(new, "news", "n", "{}"))[0]
    return r


async def failover():
    """kill -9 of node A (CFG relayd_pid): its subscriber sees the connection drop, reconnects to
    node B with its last position and recovers what was published meanwhile."""
    r = {}
    sa = await subscriber_on_a_after_two_from_b(r)
    seen = r["seen"]
    os.kill(CFG["relayd_pid"], signal.SIGKILL)
    r["a_dropped"] = await wait_close(sa, 5)
    on("b")
    r["published_meanwhile"] = [(await apublish(SITE, "events", "e", '{"i":%d}' % i))[0] for i in (3, 4, 5)]
    last = seen[-1]
    r["recovery"], r["recovered"] = await recover(last)
    return r


async def exactly_once():
    """Nodes CFG["ports"] on one Redis: two subscribers per node on one channel, then every node
    publishes 100 messages concurrently (HTTP keep-alive per node): every subscriber receives each
    publication exactly once, with offsets 1..N in order, and all in the same order."""
    ports = CFG["ports"]
    per_node = CFG.get("per_node", 100)
    subs = []
    for port in ports:
        rp.BASE, rp.WSBASE = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}"
        for _ in range(2):
            ws, _ = await connect_and_subscribe(SITE, ["burst"])
            subs.append(ws)

    def publish_all(port, node):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        statuses = []
        for i in range(per_node):
            body = rp.envelope("burst", "e", '{"node":%d,"i":%d}' % (node, i))
            conn.request("POST", "/publish", body, rp.v1_headers(SITE, body))
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        conn.close()
        return statuses

    results = await asyncio.gather(*[asyncio.to_thread(publish_all, port, n) for n, port in enumerate(ports)])
    total = per_node * len(ports)

    async def read_all(ws):
        got = []
        deadline = time.monotonic() + 30
        while len(got) < total and time.monotonic() < deadline:
            raw, j, _ = await until(ws, is_msg, max(0.1, deadline - time.monotonic()))
            if raw is None:
                break
            got.append((j["offset"], j["data"]["node"], j["data"]["i"]))
        extra = [json.loads(f) for f in await collect(ws, 0.5) if json.loads(f).get("type") == "message"]
        return got, len(extra)

    seen = await asyncio.gather(*[read_all(ws) for ws in subs])
    for ws in subs:
        await ws.close()
    first = seen[0][0]
    return {
        "statuses_ok": all(st == 200 for r in results for st in r),
        "total": total,
        "counts": [len(g) for g, _ in seen],
        "extra_after": [x for _, x in seen],
        "offsets_in_order": [[o for o, _, _ in g] == list(range(1, total + 1)) for g, _ in seen],
        "unique": [len({(n, i) for _, n, i in g}) for g, _ in seen],
        "same_order": [g == first for g, _ in seen],
        "per_publisher_order": [all([i for _, n2, i in g if n2 == n] == list(range(per_node)) for n in range(len(ports))) for g, _ in seen],
    }


async def step(name, timeout=60):
    """Tells the Swift test that `name` is reached (a file in CFG sync_dir) and waits for `name.done`."""
    d = CFG["sync_dir"]
    open(os.path.join(d, name), "w").close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(os.path.join(d, name + ".done")):
            return True
        await asyncio.sleep(0.05)
    return False


def ready(node):
    on(node)
    try:
        return rp.http("GET", "/readyz", timeout=2)[0]
    except Exception:
        return None


async def redis_restart():
    """Redis stops and starts again (by the Swift test, with or without persistence) while a
    subscriber stays connected to node A: publishes meanwhile are refused (503, never acknowledged
    and lost), both nodes become ready again and resubscribe, and what a client sees of the gap
    is stated: the same epoch and recovery when Redis kept its data, a new epoch and
    `recovered: false` when it did not."""
    r = {}
    sa = await subscriber_on_a_after_two_from_b(r)
    seen = r["seen"]
    r["stopped"] = await step("stop")
    on("b")
    r["publish_while_down"] = await apublish(SITE, "events", "e", '{"i":"down"}')
    r["ready_while_down"] = [ready("a"), ready("b")]
    # A subscribe node A cannot make in Redis is not silently dropped: 1013, the client retries.
    on("a")
    ws = await rp.ws_open(mint(SITE)[0])
    await ws.send(rp.compact({"type": "subscribe", "channels": ["elsewhere"]}))
    r["subscribe_while_down"] = await wait_close(ws, 15)
    r["restarted"] = await step("start")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and [ready("a"), ready("b")] != [200, 200]:
        await asyncio.sleep(0.1)
    r["ready_after"] = [ready("a"), ready("b")]
    # Node A resubscribed: a publish through B reaches A's subscriber, which never reconnected.
    await asyncio.sleep(0.5)
    on("b")
    r["publish_after"] = await apublish(SITE, "events", "e", '{"i":3}')
    raw, _, _ = await until(sa, is_msg, 10)
    r["live_after"] = brief(raw) if raw else None
    # A client that comes back with its position from before the restart.
    last = seen[-1]
    on("a")
    r["recovery"], r["recovered"] = await recover(last)
    await sa.close()
    return r


if __name__ == "__main__":
    run({"channels": channels, "registry": registry, "failover": failover, "redis_restart": redis_restart,
         "exactly_once": exactly_once})

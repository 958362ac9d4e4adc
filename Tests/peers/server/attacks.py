"""Attack matrix scenarios (Docs/security.md, "Attack matrix"), run against a real relayd by
Tests/RelayServerTests/AttackMatrixTests.swift.

Usage: RELAY_PEER_CONFIG='{"port":…,"site":{…},"admin_key":…}' python attacks.py <name>
Prints one JSON object with what was observed; the Swift test asserts on it. Yjs documents are
written and read with pycrdt (Rust yrs), y-protocols frames are made here by hand.
"""

import asyncio
import json
import socket
import time
import urllib.parse

from pycrdt import Doc, Text
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from relaypeer import (CFG, SSE, WSBASE, RawWS, add_site, admin, collect, compact, connect_and_subscribe, envelope, http, jbody, mint,
                       next_json, publish, publish_raw, run, subscribe, v1_headers, v2_headers, wait_close, ws_open)

SITE = CFG.get("site", {})


# --- y-protocols by hand ---------------------------------------------------------------

def varuint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varuint(buf, i):
    n, shift = 0, 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i


def sync_step1(sv=b"\x00"):
    return b"\x00\x00" + varuint(len(sv)) + sv


def sync_update(update):
    return b"\x00\x02" + varuint(len(update)) + update


def awareness(entries):
    """entries: (client_id, clock, state_json_text)."""
    body = varuint(len(entries))
    for cid, clock, state in entries:
        s = state.encode()
        body += varuint(cid) + varuint(clock) + varuint(len(s)) + s
    return b"\x01" + varuint(len(body)) + body


def text_update(text):
    doc = Doc()
    t = doc.get("t", type=Text)
    t += text
    return doc.get_update()


async def yjs_open(room_path, token):
    url = WSBASE + "/yjs/" + room_path + "?auth=" + urllib.parse.quote(token, safe="")
    return await connect(url, proxy=None, open_timeout=5, ping_interval=None, close_timeout=2, max_size=None, compression=None)


async def yjs_text(ws, timeout=5.0):
    """The room's text `t` as the relay serves it: our sync step 1 with an empty state vector,
    its sync step 2 applied to a fresh pycrdt document."""
    await ws.send(sync_step1())
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
        if isinstance(m, bytes) and m[:2] == b"\x00\x01":
            n, i = read_varuint(m, 2)
            doc = Doc()
            doc.apply_update(m[i:i + n])
            return str(doc.get("t", type=Text))
    return None


async def write_room(room_path, token, text):
    ws = await yjs_open(room_path, token)
    await ws.send(sync_update(text_update(text)))
    # The relay echoes an accepted update to its sender once it is durable.
    deadline = time.monotonic() + 5
    echoed = False
    while time.monotonic() < deadline and not echoed:
        m = await asyncio.wait_for(ws.recv(), deadline - time.monotonic())
        echoed = isinstance(m, bytes) and m[:2] == b"\x00\x02"
    await ws.close()
    return echoed


async def yjs_close_of(room_path, token, send=(), timeout=6.0):
    try:
        ws = await yjs_open(room_path, token)
    except Exception as e:  # refused before the upgrade
        return {"code": None, "reason": f"upgrade refused: {e}"}
    for m in send:
        await ws.send(m)
    r = await wait_close(ws, timeout)
    r.pop("frames", None)
    return r


def room_token(site, *rooms, write=True):
    sid = sha_site(site)
    grants = [f"site:{sid}:yjs:{r}" for r in rooms]
    return mint(site, sub=grants, pub=grants if write else [f"site:{sid}:events"])[0]


def sha_site(site):
    return site["site_id"]


# --- cross-site ------------------------------------------------------------------------

async def cross_site():
    """Site A's credentials against site B's channels, rooms, presence and stats."""
    r = {}
    a, b = SITE, add_site()
    bid = b["site_id"]
    b_ws, r["b_subscribed"] = await connect_and_subscribe(b, ["events", "presence:lobby"])
    b_room = "doc:1"
    r["b_room_written"] = await write_room(b_room, room_token(b, b_room), "site B secret")

    # A's own token, naming B's channels in full.
    a_ws, r["a_subscribe_b"] = await connect_and_subscribe(a, [f"site:{bid}:events"])
    await a_ws.send(compact({"type": "presence", "channel": f"site:{bid}:presence:lobby", "state": {"name": "mallory"}}))
    await a_ws.send(compact({"type": "message", "channel": f"site:{bid}:events", "event": "x", "data": {"n": 1}}))
    r["a_frames"] = [m for m in await collect(a_ws, 0.8)]
    # A's token on B's room (full name), and on B's site-scoped SSE.
    r["a_yjs_b_room"] = await yjs_close_of(urllib.parse.quote(f"site:{bid}:yjs:{b_room}", safe=":"), mint(a)[0])
    sse = SSE("token=" + mint(a)[0] + "&channels=" + urllib.parse.quote(f"site:{bid}:events"))
    r["a_sse_b"] = {"status": sse.status, "first_blocks": [sse.read_block(2) for _ in range(2)]}
    sse.close()
    # A's token claiming B's site_id (signed with A's secret).
    ws = await ws_open(mint(a, site_id=bid)[0])
    r["a_token_b_site_id"] = await wait_close(ws, 5)
    # A's signed publish naming B's channel; A's secret with B's key; stats of B with A's secret.
    r["a_publish_b_channel"] = publish(a, f"site:{bid}:events", "x", '{"n":2}')
    body = envelope("events", "x", '{"n":3}')
    forged = v1_headers(b, body, secret=a["publish_secret"])
    status, _, raw = http("POST", "/publish", body, forged)
    r["b_key_a_secret_publish"] = {"status": status, "body": jbody(raw)}
    status, _, raw = http("GET", "/site/stats", None, v1_headers(b, b"", secret=a["publish_secret"]))
    r["b_stats_a_secret"] = {"status": status, "body": jbody(raw)}
    # B saw nothing of it.
    r["b_received"] = [m for m in await collect(b_ws, 0.8) if '"type":"message"' in m]
    ws = await yjs_open(b_room, room_token(b, b_room))
    r["b_room_text"] = await yjs_text(ws)
    await ws.close()
    for w in (a_ws, b_ws):
        await w.close()
    return r


# --- names: traversal, escapes, empty segments, confusables ------------------------------

async def names():
    r = {}
    sid = SITE["site_id"]
    writer = mint(SITE)[0]  # the whole site
    r["post13_written"] = await write_room("postType/post:13", writer, "post 13 secret")
    editor = room_token(SITE, "postType/post:12")
    rooms = {
        "granted": "postType/post:12",
        "other_post": "postType/post:13",
        "encoded_traversal": "postType%2Fpost:12%2F..%2Fpost:13",
        "raw_traversal": "postType/post:12/../post:13",
        "dot_prefix": "%2E%2E/postType/post:13",
        "empty_segment": "postType//post:12",
        "nul": "postType/post:12%00",
        "site_form_other_site": urllib.parse.quote(f"site:{'0' * 64}:yjs:postType/post:12", safe=":/"),
        "longer_id": "postType/post:123",
    }
    out = {}
    for name, path in rooms.items():
        try:
            ws = await yjs_open(path, editor)
        except Exception as e:
            out[name] = {"opened": False, "error": str(e)}
            continue
        try:
            text = await yjs_text(ws, 3)
            out[name] = {"opened": True, "text": text}
            await ws.close()
        except ConnectionClosed as e:
            out[name] = {"opened": False, "code": e.rcvd.code if e.rcvd else 1006, "reason": e.rcvd.reason if e.rcvd else ""}
        except asyncio.TimeoutError:
            out[name] = {"opened": True, "text": None}
    r["rooms"] = out

    # Channels on /ws: a grant of `events` reaches its sub-channels, never a sibling.
    ws, r["ws_answers"] = await connect_and_subscribe(
        SITE, ["events/../secret", "events:", "secret", "", "events%2F..%2Fsecret"], sub=[f"site:{sid}:events"])
    publish(SITE, "secret", "secret", '{"n":1}')
    publish(SITE, "events/../secret", "sub", '{"n":2}')
    r["ws_received"] = [json.loads(m).get("channel") for m in await collect(ws, 0.8) if '"type":"message"' in m]
    await ws.close()

    # Unicode confusables: canonically equivalent, byte-different spellings are different
    # channels and rooms (a grant of one never reaches the other).
    pairs = [("notes:caf\u00e9", "notes:cafe\u0301"), ("notes:K", "notes:\u212a"), ("notes:\u00c5", "notes:\u212b")]
    conf = []
    for victim, attacker in pairs:
        v_ws, v_ans = await connect_and_subscribe(SITE, [victim], sub=[f"site:{sid}:{victim}"])
        a_ws, a_ans = await connect_and_subscribe(SITE, [attacker, victim], sub=[f"site:{sid}:{attacker}"])
        status, pj = publish(SITE, victim, "secret", '{"n":1}')
        v_got = [m for m in await collect(v_ws, 0.6) if '"type":"message"' in m]
        a_got = [m for m in await collect(a_ws, 0.6) if '"type":"message"' in m]
        await v_ws.close()
        await a_ws.close()
        room_v, room_a = "doc/" + victim, "doc/" + attacker
        written = await write_room(urllib.parse.quote(room_v), room_token(SITE, room_v), "victim text")
        ws = await yjs_open(urllib.parse.quote(room_a), room_token(SITE, room_a))
        attacker_text = await yjs_text(ws)
        await ws.close()
        conf.append({"victim": victim.encode().hex(), "attacker": attacker.encode().hex(),
                     "victim_answers": v_ans, "attacker_answers": a_ans, "publish_deliveries": pj.get("deliveries"),
                     "victim_got": len(v_got), "attacker_got": len(a_got),
                     "victim_room_written": written, "attacker_room_text": attacker_text})
    r["confusables"] = conf
    return r


# --- Yjs: awareness floods, huge claims -------------------------------------------------

async def awareness_flood():
    r = {}
    room = "flood:1"
    tok = room_token(SITE, room)
    # Many made-up clients on one connection.
    r["many_clients"] = await yjs_close_of(room, tok, [awareness([(1000 + i, 1, '{"u":1}') for i in range(20)])])
    # One oversized state.
    r["big_state"] = await yjs_close_of(room, tok, [awareness([(7, 1, '{"c":"' + "x" * 70_000 + '"}')])])
    # A state that is not JSON, and one nested past the JSON depth limit.
    r["not_json"] = await yjs_close_of(room, tok, [awareness([(8, 1, "{nope")])])
    r["deep_json"] = await yjs_close_of(room, tok, [awareness([(9, 1, "[" * 1000 + "]" * 1000)])])

    # A burst of 300 renewals of one client (clock 1…300): slowed to the site's rate (default
    # 50/s, burst 200: about 2 s), never dropped or refused; an observer sees the last clock.
    observer = await yjs_open(room, tok)
    flooder = await yjs_open(room, tok)
    flooder_closed = {}

    async def drain_flooder():
        try:
            async for _ in flooder:
                pass
        except ConnectionClosed as e:
            flooder_closed["code"] = e.rcvd.code if e.rcvd else 1006
        else:
            flooder_closed["code"] = flooder.close_code

    drainer = asyncio.create_task(drain_flooder())
    t0 = time.monotonic()
    for c in range(1, 301):
        await flooder.send(awareness([(42, c, '{"c":%d}' % c)]))
    last, deadline = 0, time.monotonic() + 15
    while last < 300 and time.monotonic() < deadline:
        try:
            m = await asyncio.wait_for(observer.recv(), deadline - time.monotonic())
        except asyncio.TimeoutError:
            break
        if isinstance(m, bytes) and m[:1] == b"\x01":
            _, i = read_varuint(m, 1)
            n, i = read_varuint(m, i)
            for _ in range(n):
                cid, i = read_varuint(m, i)
                clock, i = read_varuint(m, i)
                ln, i = read_varuint(m, i)
                i += ln
                if cid == 42:
                    last = max(last, clock)
    r["burst"] = {"last_clock_seen": last, "seconds": round(time.monotonic() - t0, 2),
                  "flooder_closed": flooder_closed.get("code")}
    await flooder.close()
    await observer.close()
    drainer.cancel()

    # A flood that never slows down, on a site allowing 5/s (burst 5): closed 4013 once it has
    # waited longer than --client-publish-max-wait (the test starts relayd with 3 s).
    slow = add_site({"client_publish_rate": 5, "client_publish_burst": 5})
    ws = await yjs_open(room, room_token(slow, room))
    sent = 0
    try:
        for c in range(1, 201):
            await ws.send(awareness([(5, c, '{"c":%d}' % c)]))
            sent += 1
    except ConnectionClosed:
        pass
    res = await wait_close(ws, 8)
    res.pop("frames", None)
    r["endless_flood"] = res
    # The room still works for everyone else.
    ws = await yjs_open(room, tok)
    r["room_text_after"] = await yjs_text(ws)
    await ws.close()
    return r


async def huge_claims():
    r = {}
    room = "claims:1"
    tok = room_token(SITE, room)
    cases = {
        # sync update whose length prefix claims 2^40 bytes
        "update_length_2p40": b"\x00\x02" + varuint(1 << 40) + b"\x00\x00",
        # an update claiming 2^32 client blocks and stopping there
        "struct_count_2p32": sync_update(varuint(1 << 32)),
        # one client with 2^31 structs
        "structs_2p31": sync_update(b"\x01" + varuint(2 ** 31) + varuint(1) + varuint(0)),
        # a struct at clock 2^53 - 1 (a string item of length 1): huge clock, real content
        "clock_2p53": sync_update(b"\x01\x01" + varuint(7) + varuint(2 ** 53 - 1) + b"\x04" + b"\x01\x01t" + b"\x01x" + b"\x00"),
        # a delete set covering 2^53 - 1 clocks of a client
        "delete_range_2p53": sync_update(b"\x00" + b"\x01" + varuint(9) + b"\x01" + varuint(0) + varuint(2 ** 53 - 1)),
        # a state vector claiming 2^40 entries in a sync step 1
        "state_vector_2p40": sync_step1(varuint(1 << 40)),
        # awareness claiming 2^40 entries
        "awareness_2p40": b"\x01" + varuint(len(varuint(1 << 40))) + varuint(1 << 40),
        # a varuint longer than 64 bits
        "varuint_overflow": b"\x00\x02" + b"\xff" * 12 + b"\x01",
        # unknown message type
        "message_type_99": varuint(99) + b"\x00",
    }
    out = {}
    for name, frame in cases.items():
        res = await yjs_close_of(room, tok, [frame], timeout=4)
        out[name] = res
    r["cases"] = out
    status, _, raw = http("GET", "/healthz")
    r["healthz"] = {"status": status, "body": jbody(raw)}
    # Whatever was accepted, the room still answers a sync and takes a normal edit.
    r["normal_edit_echoed"] = await write_room(room, tok, "after the claims")
    ws = await yjs_open(room, tok)
    r["room_text"] = await yjs_text(ws)
    await ws.close()
    return r


# --- compression, slowloris --------------------------------------------------------------

async def no_compression():
    """relayd enables no compression anywhere, so there is nothing to bomb."""
    r = {}
    ws = await ws_open(mint(SITE)[0], compression="deflate")
    r["ws_extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
    await ws.close()
    import gzip
    bomb = gzip.compress(b'{"channel":"events","event":"x","data":"' + b"A" * 5_000_000 + b'"}')
    headers = v1_headers(SITE, bomb)
    headers["Content-Encoding"] = "gzip"
    status, h, raw = http("POST", "/publish", bomb, headers)
    r["gzip_publish"] = {"status": status, "body": jbody(raw), "bytes": len(bomb)}
    status, h, raw = http("GET", "/healthz", None, {"Accept-Encoding": "gzip, deflate, br"})
    r["healthz_content_encoding"] = h.get("content-encoding")
    return r


def slowloris():
    """Request heads dribbled a byte at a time: the first request of a connection (the upgrade
    path included) is bounded by --handshake-timeout, a later one by --http-idle-timeout."""
    r = {}
    port = CFG["port"]

    def dribble(prefix, head, limit):
        s = socket.create_connection(("127.0.0.1", port), timeout=limit)
        t0 = time.monotonic()
        out = {"closed": False, "bytes_sent": 0}
        try:
            if prefix:
                s.sendall(prefix)
                # read the first response fully (Content-Length)
                buf = b""
                while b"\r\n\r\n" not in buf:
                    buf += s.recv(4096)
                head_end = buf.index(b"\r\n\r\n") + 4
                length = int([l.split(b":")[1] for l in buf[:head_end].split(b"\r\n") if l.lower().startswith(b"content-length")][0])
                while len(buf) < head_end + length:
                    buf += s.recv(4096)
                t0 = time.monotonic()
            for b in head:
                s.sendall(bytes([b]))
                out["bytes_sent"] += 1
                time.sleep(0.25)
                if time.monotonic() - t0 > limit:
                    break
            s.settimeout(max(0.5, limit - (time.monotonic() - t0)))
            while s.recv(200):
                pass
            out["closed"] = True
        except (socket.timeout, TimeoutError):
            pass
        except (ConnectionResetError, BrokenPipeError):
            out["closed"] = True
        out["after_s"] = round(time.monotonic() - t0, 2)
        s.close()
        return out

    long_head = b"GET /ws HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    r["upgrade_head"] = dribble(None, long_head, float(CFG.get("limit", 8)))
    post = b"POST /publish HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 200 + b"\r\n\r\n"
    r["publish_head"] = dribble(None, post, float(CFG.get("limit", 8)))
    r["second_request_head"] = dribble(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", post, float(CFG.get("limit", 8)))
    status, _, _ = http("GET", "/healthz")
    r["healthz_after"] = status
    return r


# --- signed publishes: replay, reorder, rotation ------------------------------------------

def replays():
    """v2 requests are accepted once inside the window, in any order, across a secret rotation;
    a v1 request (no nonce) can be replayed inside its window (the documented weakness)."""
    r = {}
    site = add_site()

    def post(body, headers):
        status, _, raw = http("POST", "/publish", body, headers)
        return {"status": status, "error": jbody(raw).get("error")}

    now = int(time.time() * 1000)
    b1, b2 = envelope("events", "e", '{"n":1}'), envelope("events", "e", '{"n":2}')
    newer = v2_headers(site, "POST", "/publish", "", b1, ts=str(now))
    older = v2_headers(site, "POST", "/publish", "", b2, ts=str(now - 30_000))
    r["newer_first"] = post(b1, newer)
    r["older_second"] = post(b2, older)
    r["replay_newer"] = post(b1, newer)
    r["replay_older"] = post(b2, older)
    r["same_nonce_other_body"] = post(b2, dict(newer))  # signature covers the body hash
    r["outside_window"] = post(b1, v2_headers(site, "POST", "/publish", "", b1, ts=str(now - 61_000)))
    v1 = v1_headers(site, b1)
    r["v1_first"] = post(b1, v1)
    r["v1_replay_in_window"] = post(b1, v1)

    # Rotation with a grace period: the old key id still verifies, its nonces stay used.
    status, rot = admin("/api/sites/rotate", {"site_key": site["site_key"], "grace_seconds": 60})
    r["rotate"] = status
    r["replay_after_rotation"] = post(b1, newer)
    old_fresh = v2_headers(site, "POST", "/publish", "", b1)
    r["old_key_in_grace"] = post(b1, old_fresh)
    new = dict(site, publish_secret=rot.get("publish_secret"))
    new_headers = v2_headers(new, "POST", "/publish", "", b1, key_id=rot.get("publish_key_id"))
    r["new_key"] = post(b1, new_headers)
    r["new_key_replay"] = post(b1, new_headers)
    # The new key id with the old secret (a confused or forged key id).
    r["old_secret_new_kid"] = post(b1, v2_headers(site, "POST", "/publish", "", b1, key_id=rot.get("publish_key_id")))
    # Rotation without grace: the previous keys stop at once, even for requests signed before.
    signed_before = v2_headers(new, "POST", "/publish", "", b2, key_id=rot.get("publish_key_id"))
    status, rot2 = admin("/api/sites/rotate", {"site_key": site["site_key"], "grace_seconds": 0})
    time.sleep(0.05)
    r["signed_before_no_grace_rotation"] = post(b2, signed_before)
    r["original_key_after_no_grace"] = post(b1, v2_headers(site, "POST", "/publish", "", b1))
    return r


# --- a slow consumer next to fast ones -----------------------------------------------------

async def slow_consumer_isolation():
    """Fast subscribers' delivery latency with and without a slow consumer on the same channel;
    the slow one (small receive buffer, never reads) is closed 4008, the fast ones lose nothing."""
    r = {}
    site = add_site()
    n_fast, per_phase, rate = 4, int(CFG.get("per_phase", 150)), float(CFG.get("rate", 100))
    pad = "x" * 60_000
    # Phase 1 sends enough to overflow the slow socket's kernel buffers (tcp_wmem max) and the
    # relay's outbox (--outbox-bytes, 4 MiB unless the test sets it).
    try:
        wmem_max = int(open("/proc/sys/net/ipv4/tcp_wmem").read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 << 20
    phase1 = max(per_phase, (int(CFG.get("outbox_bytes", 4 << 20)) + 2 * wmem_max) // len(pad) + 40)
    fast = []
    for _ in range(n_fast):
        ws, _ = await connect_and_subscribe(site, ["bulk"])
        fast.append(ws)
    lat = {0: [], 1: []}
    seen = [[] for _ in fast]

    async def reader(k, ws):
        while True:
            try:
                m = await ws.recv()
            except ConnectionClosed:
                return
            t = time.time()
            if '"type":"message"' in m:
                j = json.loads(m)
                d = j["data"]
                seen[k].append(d["i"])
                lat[d["phase"]].append((t - d["t"]) * 1000)

    readers = [asyncio.create_task(reader(k, ws)) for k, ws in enumerate(fast)]

    def publisher(phase, start, count):
        statuses = set()
        t0 = time.monotonic()
        for i in range(count):
            due = t0 + i / rate
            d = due - time.monotonic()
            if d > 0:
                time.sleep(d)
            data = '{"i":%d,"phase":%d,"t":%.6f,"pad":"%s"}' % (start + i, phase, time.time(), pad)
            status, _ = publish(site, "bulk", "blob", data)
            statuses.add(status)
        return sorted(statuses)

    r["phase0_statuses"] = await asyncio.to_thread(publisher, 0, 0, per_phase)
    await asyncio.sleep(0.5)
    tok, _ = mint(site)
    slow = RawWS("/ws?token=" + tok, rcvbuf=4096)
    slow.send_text(compact({"type": "subscribe", "channels": ["bulk"]}))
    slow.read_frame()
    r["phase1_statuses"] = await asyncio.to_thread(publisher, 1, per_phase, phase1)
    await asyncio.sleep(1.0)
    code, reason, _ = await asyncio.to_thread(slow.read_until_close, 10)
    slow.close()
    r["slow_close"] = {"code": code, "reason": reason}
    for t in readers:
        t.cancel()
    for ws in fast:
        await ws.close()

    def q(xs, p):
        xs = sorted(xs)
        return round(xs[min(len(xs) - 1, int(p * len(xs)))], 3) if xs else None

    r["fast_in_order"] = all(s == list(range(per_phase + phase1)) for s in seen)
    r["fast_counts"] = [len(s) for s in seen]
    r["expected"] = per_phase + phase1
    r["p50_ms"] = [q(lat[0], 0.5), q(lat[1], 0.5)]
    r["p99_ms"] = [q(lat[0], 0.99), q(lat[1], 0.99)]
    return r


# --- connection floods from one address ----------------------------------------------------

async def connection_flood():
    """--max-connections-per-ip N (the test sets 20): 100 WebSockets at once from one address:
    N open, the rest closed 1013; after they close, the address connects again."""
    r = {}
    tok = mint(SITE)[0]
    n = int(CFG.get("flood", 100))

    async def one():
        try:
            ws = await ws_open(tok)
        except Exception as e:
            return ("refused", str(e)[:80], None)
        try:
            m = await asyncio.wait_for(ws.recv(), 1.5)
            return ("frame", m[:40] if isinstance(m, str) else "binary", ws)
        except asyncio.TimeoutError:
            return ("open", None, ws)
        except ConnectionClosed as e:
            return ("closed", e.rcvd.code if e.rcvd else 1006, None)

    results = await asyncio.gather(*[one() for _ in range(n)])
    kinds = {}
    for kind, detail, _ in results:
        key = f"{kind}:{detail}" if kind == "closed" else kind
        kinds[key] = kinds.get(key, 0) + 1
    r["outcomes"] = kinds
    status, _, raw = http("GET", "/healthz")
    r["healthz_during"] = {"status": status, "active": jbody(raw).get("active_connections")}
    for _, _, ws in results:
        if ws is not None:
            await ws.close()
    deadline, after = time.monotonic() + 5, None
    while time.monotonic() < deadline:
        ws, ans = await connect_and_subscribe(SITE, ["events"])
        await ws.close()
        if '"subscribed"' in "".join(ans):
            after = True
            break
        await asyncio.sleep(0.2)
    r["reconnect_after"] = after
    return r


if __name__ == "__main__":
    run({"cross_site": cross_site, "names": names, "awareness_flood": awareness_flood, "huge_claims": huge_claims,
         "no_compression": no_compression, "slowloris": slowloris, "replays": replays,
         "slow_consumer_isolation": slow_consumer_isolation, "connection_flood": connection_flood})

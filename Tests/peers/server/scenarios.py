"""Scenarios run against a real relayd by Tests/RelayServerTests.

Usage: RELAY_PEER_CONFIG='{"port":…,"site":{…},"admin_key":…}' python scenarios.py <name>
Prints one JSON object with what was observed; the Swift test asserts on it.
"""

import asyncio
import json
import os
import signal
import struct
import threading
import time

from relaypeer import (CFG, SSE, RawWS, add_site, admin, apublish, b64u, collect, compact, connect_and_subscribe, envelope,
                       http, jbody, mint, next_frame, next_json, publish, publish_raw, run, sha256_hex, show, subscribe, until,
                       v1_headers, v2_headers, wait_close, ws_open, BASE)
from websockets.exceptions import ConnectionClosed

SITE = CFG.get("site", {})
ENVELOPE = '{"v":1,"p":"ab\\/cd=="}'  # PHP json_encode escapes "/"; must arrive byte for byte


def is_msg(j, event=None):
    return j.get("type") == "message" and (event is None or j.get("event") == event)


async def until_health(pred, timeout=3.0):
    """Polls /healthz until pred(body) holds or the timeout passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, raw = http("GET", "/healthz")
        if pred(jbody(raw)):
            return
        await asyncio.sleep(0.05)


async def until_stats(site, pred, timeout=3.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, raw = http("GET", "/site/stats", None, v1_headers(site, b""))
        if pred(jbody(raw)):
            return
        await asyncio.sleep(0.05)


# 1. WebSocket basic ------------------------------------------------------------------

async def basic():
    r = {}
    sid = SITE["site_id"]
    r["site_id_derived"] = sha256_hex("site:" + SITE["site_key"])
    a, r["a_subscribed"] = await connect_and_subscribe(SITE, ["events"])
    b, r["b_subscribed"] = await connect_and_subscribe(SITE, [f"site:{sid}:events"])

    status, j = await apublish(SITE, "events", "encrypted", ENVELOPE)
    r["publish1"] = {"status": status, "body": j}
    r["a_msg1"], _, _ = await until(a, is_msg)
    r["b_msg1"], _, _ = await until(b, is_msg)

    data2 = '{"id":7,"title":"caf\\u00e9 \\"x\\"","n":[1,2.5e3,null,true]}'
    status, j = await apublish(SITE, f"site:{sid}:events", "post.updated", data2)
    r["publish2"] = {"status": status, "body": j}
    r["a_msg2"], _, _ = await until(a, is_msg)
    r["b_msg2"], _, _ = await until(b, is_msg)
    r["data2"] = data2

    # Unsubscribe: acknowledged, then nothing more arrives on that socket.
    await a.send(compact({"type": "unsubscribe", "channels": ["events"]}))
    r["a_unsubscribed"], _ = await next_json(a, 3)
    await apublish(SITE, "events", "after.unsub", '{"n":3}')
    r["b_msg3"], _, _ = await until(b, is_msg)
    r["a_after_unsub"] = await collect(a, 0.7)

    # Token in an `auth` first frame instead of the URL.
    tok, _ = mint(SITE)
    c = await ws_open()
    await c.send(compact({"type": "auth", "token": tok}))
    r["c_subscribed"] = await subscribe(c, ["events"])
    await apublish(SITE, "events", "via.auth.frame", '{"n":4}')
    r["c_msg"], _, _ = await until(c, is_msg)
    status, _, raw = http("GET", "/healthz")
    r["healthz_connected"] = jbody(raw)
    # WordPress user ids may be minted as integers; visitors are "0".
    e, r["int_user_subscribed"] = await connect_and_subscribe(SITE, ["events"], user_id=42)
    await e.close()
    # Token in the Sec-WebSocket-Protocol header (`relay` plus `token.<JWT>`), out of the URL.
    d = await ws_open(subprotocols=["relay", "token." + mint(SITE)[0]])
    r["subprotocol_selected"] = d.subprotocol
    r["d_subscribed"] = await subscribe(d, ["events"])
    # The relay-owned connections channel: a new connection of the site is announced.
    watcher = d
    await watcher.send(compact({"type": "subscribe", "channels": ["wps:connections"]}))
    r["wps_subscribed"], _ = await next_json(watcher, 3)
    await asyncio.sleep(1.2)  # past the coalescing interval
    extra = await ws_open(mint(SITE)[0])
    # a, b, c, d and extra: the announcement with 5 arrives (maybe after a coalesced one with 4).
    r["wps_connections"], _, r["wps_connections_before"] = await until(
        watcher, lambda j: is_msg(j, "wps.connections") and j["data"].get("active_connections") == 5, 4)
    status, _ = await apublish(SITE, "wps:connections", "wps.connections", '{"active_connections":999}')
    r["wps_publish_status"] = status
    await watcher.send(compact({"type": "message", "channel": "wps:connections", "event": "x", "data": {}}))
    r["wps_client_publish"], _, _ = await until(watcher, lambda j: j.get("type") == "error", 3)
    for ws in (a, b, c, d, extra):
        await ws.close()
    await until_health(lambda h: h.get("active_connections") == 0)

    # /healthz (public, CORS) and /metrics.
    status, headers, raw = http("GET", "/healthz", headers={"Origin": "https://wp.example"})
    r["healthz"] = {"status": status, "body": jbody(raw), "acao": headers.get("access-control-allow-origin")}
    status, headers, raw = http("OPTIONS", "/healthz", headers={"Origin": "https://wp.example",
                                                                "Access-Control-Request-Method": "GET"})
    r["healthz_preflight"] = {"status": status, "acao": headers.get("access-control-allow-origin")}
    status, headers, raw = http("GET", "/metrics")
    text = raw.decode("utf-8", "replace")
    r["metrics"] = {"status": status, "content_type": headers.get("content-type"),
                    "lines": [l for l in text.splitlines() if l.startswith(("relay_connections", "relay_publications_in_total", "# TYPE relay_connections"))]}
    status, _, raw = http("GET", "/readyz")
    r["readyz"] = {"status": status, "body": jbody(raw)}
    return r


# 2. Refusals -------------------------------------------------------------------------

async def close_of(token=None, query=None, then=None):
    ws = await ws_open(token, query=query)
    if then:
        await then(ws)
    return await wait_close(ws, 6)


async def refusals():
    r = {}
    tok, _ = mint(SITE)
    head, payload, sig = tok.split(".")
    r["bad_signature"] = await close_of(f"{head}.{payload}.{b64u(b'x' * 32)}")
    r["wrong_secret"] = await close_of(mint(SITE, secret="0" * 64)[0])
    r["expired"] = await close_of(mint(SITE, iat=int(time.time()) - 400, ttl=300)[0])
    r["garbage"] = await close_of("not-a-jwt")
    r["alg_none"] = await close_of(b64u(compact({"alg": "none", "typ": "JWT"}).encode()) + "." + payload + ".")
    r["alg_hs512"] = await close_of(b64u(compact({"alg": "HS512", "typ": "JWT"}).encode()) + "." + payload + "." + sig)
    r["no_site_id"] = await close_of(mint(SITE, drop=("site_id",))[0])
    r["unknown_site"] = await close_of(mint(SITE, site_id=sha256_hex("site:" + "f" * 32))[0])
    r["no_token"] = await close_of(then=lambda ws: ws.send(compact({"type": "subscribe", "channels": ["events"]})))

    # Prefix enforcement.
    sid = SITE["site_id"]
    ws, answers = await connect_and_subscribe(SITE, ["events", "public:news", "site:" + "0" * 64 + ":events"],
                                              sub=[f"site:{sid}:public:"])
    r["prefix_answers"] = answers
    await apublish(SITE, "events", "secret", '{"n":1}')
    await apublish(SITE, "public:news", "news", '{"n":2}')
    r["prefix_received"] = [m for m in await collect(ws, 0.8)]
    await ws.close()

    # Site connection limit (a site created through the admin API with max_connections 1).
    status, j = admin("/api/sites/add", {"limits": {"max_connections": 1}}, key="wrong")
    r["add_wrong_key"] = {"status": status, "body": j}
    lim = add_site({"max_connections": 1})
    r["limited_site_keys"] = sorted(lim.keys())
    # A token signed with this site's secret that names another site is refused.
    r["cross_site_token"] = await close_of(mint(SITE, site_id=lim["site_id"])[0])
    r["no_exp"] = await close_of(mint(SITE, drop=("exp",))[0])
    first, first_sub = await connect_and_subscribe(lim, ["events"])
    r["limit_first_subscribed"] = first_sub
    second = await ws_open(mint(lim)[0])
    r["limit_second"] = await wait_close(second, 6)
    status, headers, raw = http("GET", "/sse?token=" + mint(lim)[0] + "&channels=events")
    r["limit_sse"] = {"status": status, "body": jbody(raw)}
    await first.close()
    # The slot is released once the relay has seen the close (retry briefly; 4029 until then).
    deadline = time.monotonic() + 3
    while True:
        third, third_sub = await connect_and_subscribe(lim, ["events"])
        if '"subscribed"' in "".join(third_sub) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    r["limit_third_subscribed"] = third_sub
    await third.close()

    # Per-connection channel cap (4009) and client publish rate (4013).
    few = add_site({"max_channels_per_connection": 2, "client_publish_rate": 1, "client_publish_burst": 2})
    ws = await ws_open(mint(few)[0])
    await ws.send(compact({"type": "subscribe", "channels": ["c1", "c2", "c3"]}))
    r["too_many_channels"] = await wait_close(ws, 4)
    ws, _ = await connect_and_subscribe(few, ["c1"])
    for i in range(6):
        await ws.send(compact({"type": "message", "channel": "c1", "event": "spam", "data": {"i": i}}))
    r["rate_limited"] = await wait_close(ws, 4)
    return r


# 3. Publish endpoint -----------------------------------------------------------------

def publish_errors():
    r = {}
    site = add_site()
    unknown = dict(site, site_key="0" * 32)

    def post(path, body, headers):
        status, _, raw = http("POST", path, body, headers)
        return {"status": status, "body": jbody(raw)}

    # The plugin's existence probe.
    r["probe"] = post("/publish", b"{}", v1_headers(site, b"{}", sign="dummy"))
    r["probe_unknown"] = post("/publish", b"{}", v1_headers(unknown, b"{}", sign="dummy"))
    body = envelope("events", "encrypted", ENVELOPE)
    r["stale"] = post("/publish", body, v1_headers(site, body, ts=str(int(time.time() * 1000) - 120_000)))
    r["future"] = post("/publish", body, v1_headers(site, body, ts=str(int(time.time() * 1000) + 120_000)))
    r["wrong_secret"] = post("/publish", body, v1_headers(site, body, secret="1" * 64))
    r["body_tampered"] = post("/publish", body + b" ", v1_headers(site, body))
    r["missing_headers"] = post("/publish", body, {"Content-Type": "application/json"})
    h1 = v1_headers(site, body)
    r["ok_v1"] = post("/publish", body, h1)
    r["ok_v1_replayed"] = post("/publish", body, h1)  # v1 has no nonce: accepted inside the window
    bad = b'{"channel":"events","event":"x"}'
    r["invalid_body"] = post("/publish", bad, v1_headers(site, bad))
    bad = b'{"channel":"events","event":"x","data":{"a":}}'
    r["invalid_json_data"] = post("/publish", bad, v1_headers(site, bad))
    reserved = envelope("wps:connections", "wps.connections", '{"active_connections":999}')
    r["reserved_channel"] = post("/publish", reserved, v1_headers(site, reserved))
    foreign = envelope("site:" + "0" * 64 + ":events", "x", '{}')
    r["foreign_channel"] = post("/publish", foreign, v1_headers(site, foreign))

    # Scheme v2: method, path, canonical query, nonce.
    h2 = v2_headers(site, "POST", "/publish", "", body)
    r["v2_ok"] = post("/publish", body, h2)
    r["v2_replay"] = post("/publish", body, h2)
    q = "z=1&a=b%2Fc&a=%7E+x"
    r["v2_query_ok"] = post("/publish?" + q, body, v2_headers(site, "POST", "/publish", q, body))
    r["v2_query_unsigned"] = post("/publish?extra=1", body, v2_headers(site, "POST", "/publish", "", body))
    r["v2_wrong_path"] = post("/publish", body, v2_headers(site, "POST", "/publish/batch", "", body))
    r["v2_body_tampered"] = post("/publish", body + b" ", v2_headers(site, "POST", "/publish", "", body))
    r["v2_unknown_key_id"] = post("/publish", body, v2_headers(site, "POST", "/publish", "", body, key_id="k9"))
    r["v2_stale"] = post("/publish", body, v2_headers(site, "POST", "/publish", "", body,
                                                      ts=str(int(time.time() * 1000) - 120_000)))

    # Stats, signed over the empty body (v1 and v2).
    status, _, raw = http("GET", "/site/stats", None, v1_headers(site, b""))
    r["stats"] = {"status": status, "body": jbody(raw)}
    status, _, raw = http("GET", "/site/stats", None, v1_headers(site, b"", sign="dummy"))
    r["stats_bad"] = {"status": status, "body": jbody(raw)}
    status, _, raw = http("GET", "/site/stats", None, v2_headers(site, "GET", "/site/stats", "", b""))
    r["stats_v2"] = {"status": status, "body": jbody(raw)}
    return r


async def publish_more():
    """Batch publish and stats with live connections, observed by a subscriber."""
    r = {}
    site = add_site({"max_connections": 7})
    ws, r["subscribed"] = await connect_and_subscribe(site, ["events", "other"])
    ws2, _ = await connect_and_subscribe(site, ["other"])
    status, _, raw = http("GET", "/site/stats", None, v1_headers(site, b""))
    r["stats_live"] = {"status": status, "body": jbody(raw)}

    batch = ('{"publications":[{"channel":"events","event":"b.one","data":{"n":1}},'
             '{"channel":"other","event":"b.two","data":' + ENVELOPE + '},'
             '{"channel":"wps:connections","event":"b.bad","data":{}},'
             '{"channel":"events","event":"b.three","data":[1,"two",{"3":null}]}]}').encode()
    status, _, raw = await asyncio.to_thread(http, "POST", "/publish/batch", batch, v1_headers(site, batch))
    r["batch"] = {"status": status, "body": jbody(raw)}
    r["batch_received"] = await collect(ws, 1.0)
    bare = b'[{"channel":"events","event":"b.four","data":"s"}]'
    status, _, raw = await asyncio.to_thread(http, "POST", "/publish/batch", bare, v1_headers(site, bare))
    r["batch_bare"] = {"status": status, "body": jbody(raw)}
    r["batch_bare_received"] = await collect(ws, 0.7)
    status, _, raw = await asyncio.to_thread(http, "POST", "/publish/batch", bare, v1_headers(site, bare, sign="dummy"))
    r["batch_bad_sig"] = {"status": status, "body": jbody(raw)}
    # Idempotency key: the second publish is not delivered again and says duplicate.
    body = b'{"channel":"events","event":"once","data":{"n":5},"idempotency_key":"order-17"}'
    s1 = await asyncio.to_thread(publish_raw, site, body)
    s2 = await asyncio.to_thread(publish_raw, site, body)
    r["idempotent"] = [{"status": s1[0], "body": s1[1]}, {"status": s2[0], "body": s2[1]}]
    r["idempotent_received"] = await collect(ws, 0.7)
    await ws.close()
    await ws2.close()
    await until_stats(site, lambda b: b.get("active_connections") == 0)
    # Monthly quota: 429 quota_exceeded once used up.
    q = add_site({"monthly_message_quota": 2})
    r["quota"] = [publish(q, "events", "q", '{"i":%d}' % i) for i in range(3)]
    status, _, raw = http("GET", "/site/stats", None, v1_headers(site, b""))
    r["stats_after"] = {"status": status, "body": jbody(raw)}
    status, _, raw = http("GET", "/healthz")
    r["healthz"] = jbody(raw)
    return r


# 4. Client publish, binary frames, presence, auth refresh -----------------------------

def binframe(channel, payload):
    c = channel.encode()
    return len(c).to_bytes(2, "big") + c + payload


async def client_features():
    r = {}
    site = add_site()
    a, r["a_subscribed"] = await connect_and_subscribe(site, ["room"])
    b, r["b_subscribed"] = await connect_and_subscribe(site, ["room"])

    # Browser publish (plain JSON).
    await a.send('{"type":"message","channel":"room","event":"chat","data":{"t":"hi \\/ there"}}')
    r["b_chat"], _, _ = await until(b, is_msg)
    r["a_chat_echo"], _, _ = await until(a, is_msg, 2)

    # Binary publish: echoed to the sender, delivered to the other subscriber.
    payload = bytes(range(256)) + b"\x00\x00yjs"
    frame = binframe("room", payload)
    await a.send(frame)
    got_b = await next_frame(b, 5)
    got_a = await next_frame(a, 5)
    r["binary_sent"] = frame.hex()
    r["binary_b"] = show(got_b)
    r["binary_a_echo"] = show(got_a)
    # Binary with a full channel name: delivered with the sender's spelling.
    frame2 = binframe(f"site:{site['site_id']}:room", b"\x01\x02")
    await b.send(frame2)
    r["binary2_sent"] = frame2.hex()
    r["binary2_a"] = show(await next_frame(a, 5))
    r["binary2_b_echo"] = show(await next_frame(b, 5))
    # Multi-byte UTF-8 channel names: the binary length prefix counts bytes.
    uch = "événements/ü"
    await a.send(compact({"type": "subscribe", "channels": [uch]}))
    await until(a, lambda j: j.get("type") == "subscribed", 3)
    await b.send(compact({"type": "subscribe", "channels": [uch]}))
    await until(b, lambda j: j.get("type") == "subscribed", 3)
    uframe = binframe(uch, b"\xff\x00")
    await a.send(uframe)
    r["unicode_binary_same"] = (await next_frame(b, 5)) == uframe
    await next_frame(a, 5)  # a's echo
    await apublish(site, uch, 'caf\u00e9 "q"', '{"x":"\\ud83d\\ude00"}')
    r["unicode_msg"], _, _ = await until(b, is_msg, 3)
    await until(a, is_msg, 3)
    # Binary publish outside the publish prefixes: refused with an error frame.
    ro, _ = await connect_and_subscribe(site, ["room"], pub=[f"site:{site['site_id']}:other:"])
    await ro.send(binframe("room", b"zz"))
    r["binary_forbidden"], _ = await next_json(ro, 3)
    await ro.send('{"type":"message","channel":"room","event":"x","data":{}}')
    r["message_forbidden"], _ = await next_json(ro, 3)
    r["others_after_forbidden"] = await collect(a, 0.5)
    await ro.close()
    # Malformed binary frame (channel length past the end).
    bad = await ws_open(mint(site)[0])
    await bad.send(b"\x00\x50room")
    r["binary_malformed"] = await wait_close(bad, 4)

    # Presence: join, sync for a late subscriber, leave on state null, leave on socket close.
    async def applied(ws):
        # Frames of one connection are handled in order: once a later subscribe is answered,
        # the presence frame before it has been applied.
        await ws.send(compact({"type": "subscribe", "channels": ["barrier"]}))
        await until(ws, lambda j: j.get("type") == "subscribed", 3)

    c = await ws_open(mint(site)[0])
    await c.send(compact({"type": "presence", "channel": "lobby", "state": {"name": "carol", "cursor": [1, 2]}}))
    await applied(c)
    await a.send(compact({"type": "subscribe", "channels": ["lobby"]}))
    r["presence_a_subscribed"], _ = await next_json(a, 3)
    r["presence_sync"], _, _ = await until(a, lambda j: is_msg(j, "wps.presence"), 3)
    await b.send(compact({"type": "subscribe", "channels": ["lobby"]}))
    await until(b, lambda j: j.get("type") == "subscribed", 3)
    await until(b, lambda j: is_msg(j, "wps.presence"), 3)
    d = await ws_open(mint(site)[0])
    await d.send(compact({"type": "presence", "channel": "lobby", "state": {"name": "dave"}}))
    r["presence_join"], _, _ = await until(a, lambda j: is_msg(j, "wps.presence"), 3)
    await d.send(compact({"type": "presence", "channel": "lobby", "state": None}))
    r["presence_leave_null"], _, _ = await until(a, lambda j: is_msg(j, "wps.presence"), 3)
    t0 = time.monotonic()
    await c.close()
    r["presence_leave_close"], _, _ = await until(a, lambda j: is_msg(j, "wps.presence"), 3)
    r["presence_leave_close_s"] = round(time.monotonic() - t0, 3)
    # An abrupt TCP drop (no close handshake) also leaves at once.
    await collect(b, 0.3)  # drain what b has seen so far
    e = RawWS("/ws?token=" + mint(site)[0])
    e.send_text(compact({"type": "presence", "channel": "lobby", "state": {"name": "eve"}}))
    r["presence_join_raw"], _, _ = await until(b, lambda j: is_msg(j, "wps.presence"), 3)
    t0 = time.monotonic()
    e.close()
    r["presence_leave_drop"], _, _ = await until(b, lambda j: is_msg(j, "wps.presence"), 3)
    r["presence_leave_drop_s"] = round(time.monotonic() - t0, 3)
    await d.close()

    # Presence outside the publish prefixes, and an oversized state, are refused in-band.
    await collect(a, 0.3)  # drain earlier presence traffic
    pp, _ = await connect_and_subscribe(site, ["lobby"], pub=[f"site:{site['site_id']}:other:"])
    await pp.send(compact({"type": "presence", "channel": "lobby", "state": {"n": 1}}))
    r["presence_forbidden"], _, _ = await until(pp, lambda j: j.get("type") == "error", 3)
    await pp.send(compact({"type": "presence", "channel": "other:x", "state": {"big": "y" * 5000}}))
    r["presence_too_big"], _, _ = await until(pp, lambda j: j.get("type") == "error", 3)
    r["presence_refusals_seen_by_a"] = [m for m in await collect(a, 0.4) if "wps.presence" in str(m)]
    await pp.close()
    # Unknown extra fields in client frames are ignored (forward compatibility).
    await a.send('{"type":"subscribe","channels":["extra"],"future":{"x":[1,2]},"n":1.5e2}')
    r["extra_fields_answer"], _ = await next_json(a, 2)
    # Subscribing twice to one channel: still one delivery per publication.
    await a.send(compact({"type": "subscribe", "channels": ["room"]}))
    r["double_subscribe_answer"], _ = await next_json(a, 2)
    await apublish(site, "room", "once", '{"n":1}')
    r["double_subscribe_frames"] = await collect(a, 0.6)

    # In-band auth refresh.
    f, _ = await connect_and_subscribe(site, ["events"], ttl=60)
    new_tok, claims = mint(site, ttl=900)
    await f.send(compact({"type": "auth", "token": new_tok}))
    r["auth_ok"], _ = await next_json(f, 3)
    r["auth_new_exp"] = claims["exp"]
    await apublish(site, "events", "after.refresh", '{"n":1}')
    r["after_refresh_msg"], _, _ = await until(f, is_msg, 3)
    # A refresh with narrower prefixes drops the subscriptions it no longer reaches.
    narrow = await ws_open(mint(site)[0])
    await subscribe(narrow, ["events", "secret:x"])
    await narrow.send(compact({"type": "auth", "token": mint(site, sub=[f"site:{site['site_id']}:events"])[0]}))
    r["narrow_auth_ok"], _ = await next_json(narrow, 3)
    await apublish(site, "secret:x", "hidden", '{"n":1}')
    await apublish(site, "events", "shown", '{"n":2}')
    r["narrow_after"] = await collect(narrow, 0.6)
    await narrow.close()
    # A token of another site is refused.
    await f.send(compact({"type": "auth", "token": mint(SITE)[0]}))
    r["auth_other_site"] = await wait_close(f, 4)
    g, _ = await connect_and_subscribe(site, ["events"])
    await g.send(compact({"type": "auth", "token": "garbage"}))
    r["auth_bad"] = await wait_close(g, 4)
    h, _ = await connect_and_subscribe(site, ["events"])
    await h.send(compact({"type": "auth", "token": mint(site, iat=int(time.time()) - 400)[0]}))
    r["auth_expired"] = await wait_close(h, 4)

    # Token expiry while connected: closed with 4001 unless refreshed in time.
    short, _ = await connect_and_subscribe(site, ["events"], ttl=2)
    refreshed, _ = await connect_and_subscribe(site, ["events"], ttl=2)
    await asyncio.sleep(0.5)
    tok3, claims3 = mint(site, ttl=300)
    await refreshed.send(compact({"type": "auth", "token": tok3}))
    r["refresh_before_expiry"], _ = await next_json(refreshed, 3)
    r["expiry_close"] = await wait_close(short, 6)
    await apublish(site, "events", "still.here", '{"n":2}')
    r["refreshed_after_expiry_msg"], _, _ = await until(refreshed, is_msg, 3)
    await refreshed.close()
    await a.close()
    await b.close()
    return r


# 5. Recovery -------------------------------------------------------------------------

async def recovery():
    r = {}
    site = add_site()
    s, r["first_subscribed"] = await connect_and_subscribe(site, ["feed"])
    for i in (1, 2):
        await apublish(site, "feed", "m", '{"i":%d}' % i)
    seen = []
    for _ in range(2):
        raw, j, _ = await until(s, is_msg, 3)
        seen.append(raw)
    r["first_seen"] = seen
    last = json.loads(seen[-1])
    await s.close()
    for i in (3, 4, 5):
        await apublish(site, "feed", "m", '{"i":%d}' % i)

    s2 = await ws_open(mint(site)[0])
    r["resubscribed"] = await subscribe(s2, ["feed"], {"feed": {"offset": last["offset"], "epoch": last["epoch"]}})
    r["replayed"] = await collect(s2, 0.8)
    await apublish(site, "feed", "m", '{"i":6}')
    r["live_after_replay"] = await collect(s2, 0.8)
    await s2.close()

    # Wrong epoch: recovered false, nothing replayed; live messages still flow.
    s3 = await ws_open(mint(site)[0])
    r["wrong_epoch_subscribed"] = await subscribe(s3, ["feed"], {"feed": {"offset": 1, "epoch": "not-the-epoch"}})
    r["wrong_epoch_frames"] = await collect(s3, 0.6)
    await apublish(site, "feed", "m", '{"i":7}')
    r["wrong_epoch_live"] = await collect(s3, 0.6)
    await s3.close()
    # A position ahead of the channel: recovered false.
    s4 = await ws_open(mint(site)[0])
    r["ahead_subscribed"] = await subscribe(s4, ["feed"], {"feed": {"offset": 999, "epoch": last["epoch"]}})
    r["ahead_frames"] = await collect(s4, 0.5)
    await s4.close()
    # Two channels in one subscribe: recovery is answered per channel.
    s6 = await ws_open(mint(site)[0])
    r["mixed_subscribed"] = await subscribe(s6, ["feed", "other"], {"feed": {"offset": 6, "epoch": last["epoch"]},
                                                                     "other": {"offset": 1, "epoch": "stale"}})
    r["mixed_frames"] = await collect(s6, 0.5)
    await s6.close()
    # Recovery keyed by the full channel name, with offset 0 (everything in history).
    full = f"site:{site['site_id']}:feed"
    s5 = await ws_open(mint(site)[0])
    r["full_subscribed"] = await subscribe(s5, [full], {full: {"offset": 5, "epoch": last["epoch"]}})
    r["full_replayed"] = await collect(s5, 0.6)
    await s5.close()
    return r


# 6. SSE ------------------------------------------------------------------------------

def sse():
    r = {}
    site = add_site()
    tok, _ = mint(site)
    s = SSE(f"token={tok}&channels=ssea,sseb")
    r["status"] = s.status
    r["content_type"] = s.headers.get("content-type")
    r["acao"] = s.headers.get("access-control-allow-origin")
    r["open_block"] = s.read_block(3)
    publish(site, "ssea", "one", ENVELOPE)
    publish(site, "sseb", "two", '{"n":2}')
    publish(site, "sse-other", "nope", '{"n":0}')
    evs = s.events(2, 4)
    r["events"] = evs
    # Heartbeat comment (relayd runs with --sse-heartbeat 1).
    t0 = time.monotonic()
    beat = None
    while time.monotonic() - t0 < 3:
        block = s.read_block(3)
        if block and all(l.startswith(":") for l in block):
            beat = block
            break
    r["heartbeat"] = beat
    r["heartbeat_s"] = round(time.monotonic() - t0, 3)
    s.close()
    last_id = evs[-1]["id"] if evs else None
    r["last_id"] = last_id
    time.sleep(0.3)
    publish(site, "ssea", "three", '{"n":3}')
    publish(site, "sseb", "four", '{"n":4}')
    publish(site, "ssea", "five", '{"n":5}')
    s2 = SSE(f"token={tok}&channels=ssea,sseb", last_event_id=last_id)
    r["resume_open"] = s2.read_block(3)
    r["resume_events"] = s2.collect(3, stop=lambda evs: len(evs) >= 5)
    publish(site, "sseb", "six", '{"n":6}')
    r["resume_live"] = s2.collect(3, stop=lambda evs: len(evs) >= 1)
    s2.close()

    # A stale Last-Event-ID (wrong epoch): says it could not recover, replays nothing.
    bogus = "m1,1:nope:site%3A" + site["site_id"] + "%3Assea"
    s3 = SSE(f"token={tok}&channels=ssea", last_event_id=bogus)
    r["bogus_resume"] = s3.collect(1.0)
    s3.close()

    # Full channel names, URL-encoded as the client sends them.
    import urllib.parse as up
    full = f"site:{site['site_id']}:ssea"
    s6 = SSE(f"token={tok}&channels=" + up.quote(full, safe="") + "," + up.quote("sse b", safe=""))
    s6.read_block(3)
    publish(site, "ssea", "full.name", '{"n":8}')
    r["full_name_events"] = s6.collect(2, stop=lambda evs: len(evs) >= 1)
    s6.close()

    # Legacy framing: token without `v`, and with v:1.
    for key, v in (("legacy_nov", None), ("legacy_v1", 1)):
        lt, _ = mint(site, v=v)
        s4 = SSE(f"token={lt}&channels=ssea")
        s4.read_block(3)
        publish(site, "ssea", "post.updated", '{"id":9}')
        r[key] = s4.events(1, 3)
        s4.close()

    # Refusals.
    status, _, raw = http("GET", "/sse?token=garbage&channels=events")
    r["bad_token"] = {"status": status, "body": jbody(raw)}
    status, _, raw = http("GET", "/sse?token=" + mint(site, site_id=sha256_hex("site:" + "e" * 32))[0] + "&channels=events")
    r["unknown_site"] = {"status": status, "body": jbody(raw)}
    # Forbidden channel in the list: reported in-band, the others still stream.
    lt, _ = mint(site, sub=[f"site:{site['site_id']}:ssea"])
    s5 = SSE(f"token={lt}&channels=ssea,sseb")
    s5.read_block(3)
    r["forbidden_open"] = s5.collect(1.5, stop=lambda evs: len(evs) >= 1)
    publish(site, "sseb", "hidden", '{"n":1}')
    publish(site, "ssea", "visible", '{"n":2}')
    r["forbidden_after"] = s5.collect(1.5, stop=lambda evs: len(evs) >= 1)
    s5.close()
    return r


# 7. Limits and liveness ---------------------------------------------------------------

async def liveness():
    r = {}
    site = add_site()
    ponger, _ = await connect_and_subscribe(site, ["events"])
    silent = await ws_open(mint(site)[0])  # never sends a frame
    subscriber_only, _ = await connect_and_subscribe(site, ["events"])  # subscribes, then never answers pings

    async def pong_loop():
        pings = []
        t0 = time.monotonic()
        try:
            while time.monotonic() - t0 < 10.8:  # keep answering while the no-token client waits
                try:
                    m = await asyncio.wait_for(ponger.recv(), 0.5)
                except asyncio.TimeoutError:
                    continue
                if m == '{"type":"ping"}':
                    pings.append(round(time.monotonic() - t0, 3))
                    await ponger.send('{"type":"pong"}')
        except ConnectionClosed as e:
            return pings, (e.rcvd.code if e.rcvd else 1006)
        return pings, None

    no_token = await ws_open()  # neither a token in the URL nor an `auth` first frame
    res = await asyncio.gather(pong_loop(), wait_close(silent, 8), wait_close(subscriber_only, 8), wait_close(no_token, 14))
    r["pings"], r["ponger_closed"] = res[0]
    r["silent"] = res[1]
    r["subscriber_only"] = res[2]
    r["no_token"] = res[3]
    r["ponger_open_after"] = ponger.close_code is None
    await apublish(site, "events", "still", '{"n":1}')
    r["ponger_msg"], _, _ = await until(ponger, is_msg, 3)
    await ponger.close()
    return r


async def slow_consumer():
    r = {}
    site = add_site()
    tok, _ = mint(site)
    slow = RawWS("/ws?token=" + tok, rcvbuf=4096)
    r["slow_accept_ok"] = slow.accept_ok
    slow.send_text(compact({"type": "subscribe", "channels": ["bulk"]}))
    fin, op, payload = slow.read_frame()
    r["slow_subscribed"] = payload.decode()
    fast, r["fast_subscribed"] = await connect_and_subscribe(site, ["bulk"])
    pad_len = int(CFG.get("slow_pad", 60000))
    pad = "x" * pad_len
    # Enough bytes to fill the server's socket send buffer (tcp_wmem max) at least twice over.
    try:
        wmem_max = int(open("/proc/sys/net/ipv4/tcp_wmem").read().split()[2])
    except (OSError, ValueError, IndexError):
        wmem_max = 4 << 20
    n = max(int(CFG.get("slow_count", 150)), 2 * wmem_max // pad_len + 20)
    r["count"] = n

    fast_seen = []

    async def reader():
        while len(fast_seen) < n:
            raw, j = await next_json(fast, 15)
            if raw is None:
                break
            if is_msg(j):
                fast_seen.append(j["data"]["i"])

    def publisher():
        statuses = []
        for i in range(n):
            status, _ = publish(site, "bulk", "blob", '{"i":%d,"pad":"%s"}' % (i, pad))
            statuses.append(status)
        return statuses

    t0 = time.monotonic()
    statuses, _ = await asyncio.gather(asyncio.to_thread(publisher), reader())
    r["publish_statuses"] = sorted(set(statuses))
    r["fast_count"] = len(fast_seen)
    r["fast_in_order"] = fast_seen == list(range(n))
    r["elapsed_s"] = round(time.monotonic() - t0, 3)
    # Now drain the slow socket: it must end with the slow-consumer close.
    code, reason, frames = await asyncio.to_thread(slow.read_until_close, 10)
    r["slow_close"] = {"code": code, "reason": reason}
    msgs = [json.loads(p) for op, p in frames if op == 1 and p.startswith(b'{"type":"message"')]
    r["slow_messages"] = len(msgs)
    slow.close()
    # Reconnect and ask to recover from the last message it saw: either every missed message
    # is replayed, or recovery fails and nothing is replayed (never a partial gap).
    if msgs:
        last = msgs[-1]
        ws = await ws_open(tok)
        r["slow_resubscribed"] = await subscribe(ws, ["bulk"], {"bulk": {"offset": last["offset"], "epoch": last["epoch"]}})
        got = []
        while True:
            raw, j = await next_json(ws, 1.0)
            if raw is None:
                break
            if is_msg(j):
                got.append(j["offset"])
        r["slow_last_offset"] = last["offset"]
        r["slow_replayed_offsets"] = got
        await ws.close()
    # The fast subscriber is unaffected.
    await apublish(site, "bulk", "after", '{"i":-1}')
    r["fast_after"], _, _ = await until(fast, is_msg, 3)
    await fast.close()
    return r


async def frame_limits():
    r = {}
    site = add_site()
    max_frame = int(CFG["max_frame_bytes"])
    # Over --max-frame-bytes: close 1009 from the WebSocket layer.
    big = await ws_open(mint(site)[0])
    await big.send('{"type":"message","channel":"x","event":"e","data":"' + "y" * (max_frame + 1000) + '"}')
    r["over_frame"] = await wait_close(big, 5)
    # Under the frame limit but over the site's message limit: an error frame, and the
    # socket stays open (issue 20): the same connection then publishes within the limit.
    msg, _ = await connect_and_subscribe(site, ["x"])
    await msg.send('{"type":"message","channel":"x","event":"e","data":"' + "y" * int(CFG["over_message_bytes"]) + '"}')
    _, r["over_message"], _ = await until(msg, lambda j: j.get("type") in ("error", "message"), 5)
    await msg.send(binframe("x", b"\x01" * int(CFG["over_message_bytes"])))
    _, r["over_message_binary"], _ = await until(msg, lambda j: j.get("type") == "error" or "binary" in j, 5)
    await msg.send('{"type":"message","channel":"x","event":"after","data":{"ok":true}}')
    _, r["over_message_after"], _ = await until(msg, lambda j: j.get("type") in ("error", "message"), 5)
    await msg.send(binframe("x", b"\x02small"))
    _, r["over_message_after_binary"], _ = await until(msg, lambda j: "binary" in j or j.get("type") == "error", 5)
    await msg.close()
    # Over the limit in a binary frame too.
    binws = await ws_open(mint(site)[0])
    await binws.send(binframe("x", b"\x00" * (max_frame + 10)))
    r["over_frame_binary"] = await wait_close(binws, 5)
    # HTTP publish over the site's message limit: 413.
    data = '"' + "z" * int(CFG["over_message_bytes"]) + '"'
    status, j = publish(site, "x", "e", data)
    r["http_over_message"] = {"status": status, "body": j}
    # HTTP body over --max-publish-body-bytes, batch over --max-batch.
    if CFG.get("max_publish_body_bytes"):
        data = '"' + "b" * (int(CFG["max_publish_body_bytes"]) + 100) + '"'
        status, j = publish(site, "x", "e", data)
        r["http_over_body"] = {"status": status, "body": j}
    if CFG.get("max_batch"):
        items = ",".join('{"channel":"x","event":"e","data":%d}' % i for i in range(int(CFG["max_batch"]) + 1))
        body = ('{"publications":[' + items + ']}').encode()
        status, _, raw = http("POST", "/publish/batch", body, v1_headers(site, body))
        r["batch_over"] = {"status": status, "body": jbody(raw)}
    # Malformed JSON frame: policy violation.
    bad = await ws_open(mint(site)[0])
    await bad.send('{"type":"subscribe","channels":')
    r["malformed_json"] = await wait_close(bad, 4)
    unknown = await ws_open(mint(site)[0])
    await unknown.send('{"type":"frobnicate"}')
    r["unknown_type"] = await wait_close(unknown, 4)
    return r


# 8. Lifecycle ------------------------------------------------------------------------

async def shutdown():
    """Connects two clients, sends SIGTERM to relayd itself, reports their closes."""
    r = {}
    a, r["a_subscribed"] = await connect_and_subscribe(SITE, ["events"])
    b, r["b_subscribed"] = await connect_and_subscribe(SITE, ["other"])
    status, _ = await apublish(SITE, "events", "before.shutdown", '{"n":1}')
    r["a_msg"], _, _ = await until(a, is_msg, 3)
    os.kill(int(CFG["relayd_pid"]), signal.SIGTERM)
    ra, rb = await asyncio.gather(wait_close(a, 8), wait_close(b, 8))
    r["a"], r["b"] = ra, rb
    return r


async def registry_before():
    """Registers a site, then exercises unregister; returns credentials to check after a restart."""
    r = {}
    url = "https://blog.example/" + b64u(os.urandom(6))
    status, j = admin("/api/sites/register", {"site_url": url, "site_name": "Blog"}, key="0" * 64)
    r["register_wrong_key"] = {"status": status, "body": j}
    status, j = admin("/api/sites/register", {"site_url": url, "site_name": "Blog"}, key="")
    r["register_no_key"] = {"status": status, "body": j}
    status, reg = admin("/api/sites/register", {"site_url": url, "site_name": "Blog"})
    r["register"] = {"status": status, "body": reg}
    site = {k: reg.get(k) for k in ("site_key", "publish_secret", "jwt_secret")}
    site["site_id"] = sha256_hex("site:" + site["site_key"])
    ws, r["registered_subscribed"] = await connect_and_subscribe(site, ["events"])
    status, j = await apublish(site, "events", "hello", '{"n":1}')
    r["registered_publish"] = status
    r["registered_msg"], _, _ = await until(ws, is_msg, 3)

    status, j = admin("/api/sites/unregister", {"site_key": site["site_key"], "publish_secret": "0" * 64}, key="")
    r["unregister_wrong_secret"] = {"status": status, "body": j}
    status, j = admin("/api/sites/unregister", {"site_key": "0" * 32, "publish_secret": site["publish_secret"]}, key="")
    r["unregister_unknown"] = {"status": status, "body": j}
    status, j = admin("/api/sites/unregister", {"site_key": site["site_key"], "publish_secret": site["publish_secret"]},
                      key="0" * 64)
    r["unregister_wrong_api_key"] = {"status": status, "body": j}
    r["still_open_after_refusals"] = ws.close_code is None
    stream = SSE("token=" + mint(site)[0] + "&channels=events")
    stream.read_block(3)
    status, j = admin("/api/sites/unregister", {"site_key": site["site_key"], "publish_secret": site["publish_secret"]}, key="")
    r["unregister"] = {"status": status, "body": j}
    r["browser_after_unregister"] = await wait_close(ws, 4)
    rest = stream.read_block(3)
    r["sse_after_unregister"] = {"ended": stream.eof, "block": rest}
    stream.close()
    r["connect_after_unregister"] = await close_of(mint(site)[0])
    status, j = publish(site, "events", "gone", '{"n":2}')
    r["publish_after_unregister"] = {"status": status, "body": j}
    status, _, raw = http("POST", "/publish", b"{}", v1_headers(site, b"{}", sign="dummy"))
    r["probe_after_unregister"] = {"status": status, "body": jbody(raw)}

    status, again = admin("/api/sites/register", {"site_url": url, "site_name": "Blog again"})
    r["reregister"] = {"status": status, "body": again}
    site2 = {k: again.get(k) for k in ("site_key", "publish_secret", "jwt_secret")}
    site2["site_id"] = sha256_hex("site:" + site2["site_key"])
    ws2, r["reregistered_subscribed"] = await connect_and_subscribe(site2, ["events"])
    status, _ = await apublish(site2, "events", "again", '{"n":3}')
    r["reregistered_publish"] = status
    r["reregistered_msg"], _, _ = await until(ws2, is_msg, 3)
    status, j = publish(site, "events", "old-secret", '{"n":4}')
    r["old_secret_publish"] = {"status": status, "body": j}
    r["old_token"] = await close_of(mint(site)[0])
    await ws2.close()
    r["site"] = site2
    r["site_url"] = url
    return r


async def registry_after():
    """After a restart on the same data directory: the dev site and a registered site still work."""
    r = {}
    for key, site in (("dev", SITE), ("registered", CFG["registered"])):
        ws, sub = await connect_and_subscribe(site, ["events"])
        status, j = await apublish(site, "events", "after.restart", ENVELOPE)
        raw, _, _ = await until(ws, is_msg, 3)
        r[key] = {"subscribed": sub, "publish_status": status, "msg": raw}
        await ws.close()
    # Positions from before the restart: every channel has a new epoch, so recovery fails closed.
    old = json.loads(CFG["old_message"])
    ws = await ws_open(mint(SITE)[0])
    r["old_position_subscribed"] = await subscribe(ws, ["events"], {"events": {"offset": old["offset"], "epoch": old["epoch"]}})
    r["old_position_frames"] = await collect(ws, 0.5)
    await ws.close()
    status, again = admin("/api/sites/register", {"site_url": CFG["registered_url"], "site_name": "Blog"})
    r["reregister_after_restart"] = {"status": status, "site_key": again.get("site_key")}
    return r


# RFC 6455 framing battery (raw socket) -------------------------------------------------

def rfc6455():
    """Framing, fragmentation, control frames, close handshake, UTF-8 and masking, by hand."""
    r = {}
    site = add_site()

    def fresh():
        w = RawWS("/ws?token=" + mint(site)[0])
        return w

    def outcome(w, timeout=float(CFG.get("rfc_timeout", 3.0))):
        code, reason, frames = w.read_until_close(timeout)
        w.close()
        return {"code": code, "reason": reason, "frames": [p.decode("utf-8", "replace") if op == 1 else p.hex() for op, p in frames]}

    w = fresh()
    r["status"] = w.status
    r["accept_ok"] = w.accept_ok
    # Ping with payload -> pong with the same payload.
    w.send_frame(0x9, b"hello-ping")
    fin, op, payload = w.read_frame()
    r["pong"] = {"fin": fin, "opcode": op, "payload": payload.decode("latin-1")}
    # Fragmented text message (with a ping between the fragments) -> one subscribe.
    msg = compact({"type": "subscribe", "channels": ["frag"]}).encode()
    w.send_frame(0x1, msg[:10], fin=False)
    w.send_frame(0x9, b"mid")
    w.send_frame(0x0, msg[10:20], fin=False)
    w.send_frame(0x0, msg[20:], fin=True)
    got = []
    for _ in range(2):
        fin, op, payload = w.read_frame()
        got.append({"opcode": op, "payload": payload.decode("utf-8", "replace")})
    r["fragmented"] = got
    # Fragmented binary publish to the subscribed channel -> echoed as one binary frame.
    frame = (4).to_bytes(2, "big") + b"frag" + bytes(range(40))
    w.send_frame(0x2, frame[:5], fin=False)
    w.send_frame(0x0, frame[5:], fin=True)
    fin, op, payload = w.read_frame()
    r["fragmented_binary"] = {"fin": fin, "opcode": op, "same": payload == frame}
    # Client-initiated close: echoed with the same code.
    w.send_frame(0x8, (1000).to_bytes(2, "big") + b"bye")
    r["client_close"] = outcome(w)

    cases = {
        "unmasked": lambda w: w.send_frame(0x1, b'{"type":"pong"}', mask=False),
        "bad_utf8": lambda w: w.send_frame(0x1, b'{"type":"pong","x":"\xff\xfe"}'),
        "reserved_opcode": lambda w: w.send_frame(0x3, b"x"),
        "rsv_bit": lambda w: w.send_frame(0x1, b'{"type":"pong"}', rsv=4),
        "long_control": lambda w: w.send_frame(0x9, b"x" * 126),
        "fragmented_control": lambda w: w.send_frame(0x9, b"x", fin=False),
        "continuation_without_start": lambda w: w.send_frame(0x0, b"x"),
        "close_bad_code": lambda w: w.send_frame(0x8, (999).to_bytes(2, "big")),
        "close_1005_on_wire": lambda w: w.send_frame(0x8, (1005).to_bytes(2, "big")),
        "close_one_byte": lambda w: w.send_frame(0x8, b"\x03"),
        "close_bad_utf8_reason": lambda w: w.send_frame(0x8, (1000).to_bytes(2, "big") + b"\xff"),
        "new_message_inside_fragmented": lambda w: (w.send_frame(0x1, b'{"ty', fin=False), w.send_frame(0x1, b'pe":"pong"}')),
    }
    wanted = CFG.get("rfc_cases") or list(cases)
    for name in wanted:
        act = cases[name]
        w = fresh()
        act(w)
        r[name] = outcome(w)
    return r


async def rotation():
    """Admin API: rotate with a grace period, rotate with none, rotate the JWT secret, remove."""
    r = {}
    site = add_site()
    old = dict(site)
    status, rot = admin("/api/sites/rotate", {"site_key": site["site_key"], "grace_seconds": 60})
    r["rotate"] = {"status": status, "body": rot}
    new = dict(site, publish_secret=rot.get("publish_secret"))
    r["old_secret_in_grace"] = publish(old, "events", "e", '{"n":1}')
    r["new_secret"] = publish(new, "events", "e", '{"n":2}')
    body = envelope("events", "e", '{"n":3}')
    for key, cred, kid in (("v2_old_kid", old, old.get("publish_key_id", "k1")), ("v2_new_kid", new, rot.get("publish_key_id"))):
        status, _, raw = http("POST", "/publish", body, v2_headers(cred, "POST", "/publish", "", body, key_id=kid))
        r[key] = {"status": status, "body": jbody(raw)}
    status, rot2 = admin("/api/sites/rotate", {"site_key": site["site_key"], "grace_seconds": 0})
    r["rotate_no_grace"] = {"status": status, "key_id": rot2.get("publish_key_id")}
    newest = dict(site, publish_secret=rot2.get("publish_secret"))
    time.sleep(0.05)
    r["old_after_no_grace"] = publish(old, "events", "e", '{"n":4}')
    r["previous_after_no_grace"] = publish(new, "events", "e", '{"n":5}')
    r["newest"] = publish(newest, "events", "e", '{"n":6}')
    # JWT secret rotation: tokens signed with the old secret are refused.
    status, rot3 = admin("/api/sites/rotate", {"site_key": site["site_key"], "grace_seconds": 0, "rotate_jwt_secret": True})
    r["rotate_jwt"] = {"status": status, "jwt_changed": rot3.get("jwt_secret") != site["jwt_secret"]}
    r["old_jwt"] = await close_of(mint(site)[0])
    ws, r["new_jwt_subscribed"] = await connect_and_subscribe(dict(site, jwt_secret=rot3.get("jwt_secret")), ["events"])
    await ws.close()
    status, j = admin("/api/sites/rotate", {"site_key": "0" * 32})
    r["rotate_unknown"] = {"status": status, "body": j}
    # Listing (no secrets) and removal.
    status, _, raw = http("GET", "/api/sites", None, {"Authorization": "Bearer " + CFG["admin_key"]})
    listing = jbody(raw)
    mine = [x for x in listing.get("sites", []) if x.get("site_key") == site["site_key"]]
    r["list"] = {"status": status, "entry": mine[0] if mine else None, "has_secrets": "publish_secret" in raw.decode()}
    # A browser still connected when the site is removed is closed with 4003.
    live, _ = await connect_and_subscribe(dict(site, jwt_secret=rot3.get("jwt_secret")), ["events"])
    status, j = admin("/api/sites/remove", {"site_key": site["site_key"]})
    r["remove"] = {"status": status, "body": j}
    r["connected_at_remove"] = await wait_close(live, 6)
    r["publish_after_remove"] = publish(newest, "events", "e", '{"n":7}')
    r["connect_after_remove"] = await close_of(mint(dict(site, jwt_secret=rot3.get("jwt_secret")))[0])
    return r


async def server_full():
    """relayd --max-connections 1: a second WebSocket or SSE stream is refused."""
    r = {}
    first, r["first_subscribed"] = await connect_and_subscribe(SITE, ["events"])
    second = await ws_open(mint(SITE)[0])
    r["second"] = await wait_close(second, 4)
    s = SSE("token=" + mint(SITE)[0] + "&channels=events")
    r["sse_status"] = s.status
    r["sse_events"] = s.collect(1.5, stop=lambda evs: len(evs) >= 1)
    s.close()
    await first.close()
    deadline = time.monotonic() + 3
    third = None
    while True:  # the slot is free once the relay has seen the close (a refusal may race the subscribe)
        try:
            third, r["third_subscribed"] = await connect_and_subscribe(SITE, ["events"])
        except ConnectionClosed as e:
            r["third_subscribed"] = [f"closed {e.rcvd.code if e.rcvd else None}"]
        if '"subscribed"' in "".join(r["third_subscribed"]) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    if third is not None:
        await third.close()
    return r


def stats():
    status, _, raw = http("GET", "/site/stats", None, v1_headers(SITE, b""))
    return {"status": status, "body": jbody(raw)}


async def big_binary():
    """A Yjs-sized binary update (CFG["size"] payload bytes): echoed, or how the socket ends."""
    r = {}
    ch = "yjs:postType/post:123"
    a, r["subscribed"] = await connect_and_subscribe(SITE, [ch])
    b, _ = await connect_and_subscribe(SITE, [ch])
    payload = bytes([0]) + os.urandom(int(CFG["size"]) - 1)
    frame = binframe(ch, payload)
    # The large update, then (as a typing editor would) small ones at once: a subscriber
    # still writing the large frame must not be closed as a slow consumer.
    then = [binframe(ch, bytes([0]) + os.urandom(40)) for _ in range(int(CFG.get("then", 0)))]
    await a.send(frame)
    for f in then:
        await a.send(f)
    for key, ws in (("echo", a), ("other", b)):
        try:
            m = await next_frame(ws, 5)
            r[key] = {"timeout": True} if m is None else {"same": m == frame, "length": len(m)}
            rest = []
            for _ in then:
                rest.append(await next_frame(ws, 5))
            r[key]["then_same"] = rest == then
        except ConnectionClosed as e:
            r[key] = {"close_code": e.rcvd.code if e.rcvd else 1006, "reason": e.rcvd.reason if e.rcvd else ""}
    await a.close()
    await b.close()
    return r


async def ordering():
    """Concurrent publishers on one channel: every subscriber sees the same order, offsets 1..n."""
    r = {}
    site = add_site()
    subs = []
    for _ in range(3):
        ws, _ = await connect_and_subscribe(site, ["ordered"])
        subs.append(ws)
    n = 60

    def worker(k):
        for i in range(k, n, 4):
            publish(site, "ordered", "o", '{"i":%d}' % i)

    async def reader(ws):
        seen = []
        while len(seen) < n:
            raw, j = await next_json(ws, 10)
            if raw is None:
                break
            if is_msg(j):
                seen.append((j["offset"], j["data"]["i"]))
        return seen

    results = await asyncio.gather(*[asyncio.to_thread(worker, k) for k in range(4)], *[reader(ws) for ws in subs])
    seqs = results[4:]
    r["counts"] = [len(x) for x in seqs]
    r["offsets_ok"] = all([o for o, _ in x] == list(range(1, n + 1)) for x in seqs)
    r["same_order"] = all(x == seqs[0] for x in seqs)
    r["all_items"] = sorted(i for _, i in seqs[0]) == list(range(n))
    for ws in subs:
        await ws.close()
    return r


def big_header():
    """GET /healthz with one header of CFG["size"] bytes: the status line, or whether the socket closed."""
    import socket as so
    r = {}
    for n in CFG.get("sizes", [10000]):
        s = so.create_connection(("127.0.0.1", CFG["port"]), timeout=5)
        t0 = time.monotonic()
        out = {"status_line": None, "closed": False, "timeout": False}
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * n + b"\r\n\r\n")
            d = s.recv(200)
            if d:
                out["status_line"] = d.split(b"\r\n", 1)[0].decode("latin-1")
                while d:  # the server must close after the error response
                    d = s.recv(4096)
            out["closed"] = True
        except (so.timeout, TimeoutError):
            out["timeout"] = True
        except (ConnectionResetError, BrokenPipeError):
            out["closed"] = True
        out["after_s"] = round(time.monotonic() - t0, 2)
        s.close()
        r[str(n)] = out
    return r


def slow_handshake():
    """Connections that never finish their request head: seconds until the server closes each."""
    import socket as so
    r = {}
    for name, data in (("silent", b""), ("partial_headers", b"GET /ws HTTP/1.1\r\nHost: x\r\n")):
        s = so.create_connection(("127.0.0.1", CFG["port"]), timeout=CFG.get("wait", 10))
        t0 = time.monotonic()
        out = {"closed": False}
        try:
            if data:
                s.sendall(data)
            d = s.recv(200)
            while d:
                d = s.recv(200)
            out["closed"] = True
        except (so.timeout, TimeoutError):
            pass
        except (ConnectionResetError, BrokenPipeError):
            out["closed"] = True
        out["after_s"] = round(time.monotonic() - t0, 2)
        s.close()
        r[name] = out
    return r


def php(mode, **kw):
    """Runs the WordPress-side PHP peer (Tests/peers/server/wordpress.php)."""
    import subprocess
    here = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([os.environ.get("RELAY_PHP", "php"), os.path.join(here, "wordpress.php")],
                         input=json.dumps(dict(mode=mode, **kw)).encode(), capture_output=True, timeout=20)
    if out.returncode != 0:
        raise RuntimeError("php: " + out.stderr.decode(errors="replace"))
    return json.loads(out.stdout)


async def wordpress_php():
    """The plugin's PHP side end to end: a PHP-minted token, a PHP-sealed envelope
    published with PHP's HMAC signature, received by a browser-like client and opened by PHP."""
    r = {}
    sid = SITE["site_id"]
    cred = dict(site_key=SITE["site_key"])
    tok = php("mint", jwt_secret=SITE["jwt_secret"], user_id="42", read=[f"site:{sid}:"], **cred)["token"]
    ws = await ws_open(tok)
    r["subscribed"] = await subscribe(ws, ["events"])
    seed = "AUTH_KEY-salt\u00e9" + "SECURE_AUTH_KEY-salt"
    data = {"order": 1042, "status": "completed", "note": "caf\u00e9 / \"paid\"", "items": [1, 2.5, None, True]}
    pub = await asyncio.to_thread(php, "publish", url=BASE, publish_secret=SITE["publish_secret"], seed=seed,
                                  channel="events", event="order.updated", data=data, **cred)
    r["publish"] = pub
    raw, msg, _ = await until(ws, is_msg)
    r["received_raw"] = raw
    if msg is not None:
        # The data member exactly as the relay sent it, cut from the raw frame text.
        start = raw.index('"data":') + len('"data":')
        env_text = pub["envelope_json"]
        r["data_byte_exact"] = raw[start:start + len(env_text)] == env_text
        r["opened"] = await asyncio.to_thread(php, "open", seed=seed, envelope_json=json.dumps(msg["data"]), **cred)
    r["sent_plain"] = {"event": "order.updated", "data": data}
    await ws.close()
    return r


def pipelined_publish():
    """One keep-alive connection, requests written back to back: GET /healthz, two publishes,
    a publish with an Origin header, GET /readyz. Returns the responses in arrival order."""
    import socket as so
    def req(method, path, body=b"", extra=None):
        h = {"Host": "x", "Content-Length": str(len(body))}
        if body:
            h.update(v1_headers(SITE, body))
        h.update(extra or {})
        return (f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n").encode() + body
    b1 = envelope("events", "e1", '{"n":1}')
    b2 = envelope("events", "e2", '{"n":2}')
    b3 = envelope("events", "e3", '{"n":3}')
    wire = req("GET", "/healthz") + req("POST", "/publish", b1) + req("POST", "/publish", b2) \
        + req("POST", "/publish", b3, {"Origin": "http://example.test"}) + req("GET", "/readyz")
    s = so.create_connection(("127.0.0.1", CFG["port"]), timeout=5)
    s.sendall(wire)
    data = b""
    responses = []
    deadline = time.monotonic() + 5
    while len(responses) < 5 and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        while b"\r\n\r\n" in data:
            head, rest = data.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            hdrs = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
            n = int(hdrs.get("content-length", "0"))
            if len(rest) < n:
                break
            responses.append({"status": int(lines[0].split()[1]), "body": json.loads(rest[:n] or b"null"),
                              "cors": hdrs.get("access-control-allow-origin")})
            data = rest[n:]
    s.close()
    return {"responses": responses}


async def tls():
    """relayd with --tls-cert/--tls-key: GET /healthz over HTTPS, a WSS subscriber, a signed
    publish over HTTPS delivered to it; the certificate is verified against CFG["cafile"]."""
    import ssl
    import urllib.request
    from websockets.asyncio.client import connect
    ctx = ssl.create_default_context(cafile=CFG["cafile"])
    base = f"https://127.0.0.1:{CFG['port']}"
    r = {}
    deadline = time.monotonic() + 10
    while True:  # relayd prints its address just before it binds
        try:
            with urllib.request.urlopen(base + "/healthz", context=ctx, timeout=5) as resp:
                r["healthz"] = {"status": resp.status, "body": json.loads(resp.read())}
            break
        except (ConnectionRefusedError, urllib.error.URLError) as e:
            if time.monotonic() > deadline:
                r["healthz_error"] = str(e)
                return r
            await asyncio.sleep(0.1)
    tok = mint(SITE)[0]
    async with connect(f"wss://127.0.0.1:{CFG['port']}/ws?token={tok}", ssl=ctx) as ws:
        await ws.send(compact({"type": "subscribe", "channels": ["events"]}))
        r["subscribed"] = json.loads(await asyncio.wait_for(ws.recv(), 5))
        body = envelope("events", "tls.event", '{"over":"tls \\/ ok"}')
        def post():
            req = urllib.request.Request(base + "/publish", data=body, method="POST", headers=v1_headers(SITE, body))
            with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        r["publish_status"], r["publish"] = await asyncio.to_thread(post)
        r["message_raw"] = await asyncio.wait_for(ws.recv(), 5)
    return r


def close_and_idle_timeouts():
    """--close-timeout: after relayd's close frame, a client that never answers is dropped;
    --http-idle-timeout: an idle keep-alive HTTP connection is closed. Seconds until EOF for each."""
    import socket as so
    r = {}
    ws = RawWS("/ws?token=" + mint(SITE)[0], timeout=10)
    ws.send_frame(0x2, b"\x00")  # malformed binary frame: relayd closes with 1008
    fin, op, payload = ws.read_frame()
    r["close_code"] = struct.unpack("!H", payload[:2])[0] if op == 0x8 and len(payload) >= 2 else None
    t0 = time.monotonic()
    try:
        while ws.s.recv(4096):
            pass
        r["close_eof_after_s"] = round(time.monotonic() - t0, 2)
    except (so.timeout, TimeoutError):
        r["close_eof_after_s"] = None
    except ConnectionResetError:
        r["close_eof_after_s"] = round(time.monotonic() - t0, 2)
    s = so.create_connection(("127.0.0.1", CFG["port"]), timeout=10)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    first = s.recv(4096)
    r["idle_first_status"] = int(first.split(b" ", 2)[1]) if first else None
    t0 = time.monotonic()
    try:
        while s.recv(4096):
            pass
        r["idle_eof_after_s"] = round(time.monotonic() - t0, 2)
    except (so.timeout, TimeoutError):
        r["idle_eof_after_s"] = None
    s.close()
    return r

async def forwarded_clients():
    """Per-IP admission by forwarded address (relayd trusts 127.0.0.1 as a proxy) and CORS.

    CFG["phase"] 1: limit 1 per IP; 2: after SIGHUP raised it to 2."""
    r = {}
    tok, _ = mint(SITE)

    async def open_as(xff):
        try:
            return await ws_open(tok, additional_headers={"X-Forwarded-For": xff}), None
        except Exception as e:  # refused before the upgrade
            return None, {"error": str(e)}

    async def state(ws):
        if ws is None:
            return {"code": None}
        c = await wait_close(ws, 0.8)
        return {"open": True} if c["code"] is None else c

    keep = []
    for key, xff in (("a1", "6.6.6.6, 198.51.100.1"), ("a2", "198.51.100.1"), ("b1", "198.51.100.2")):
        ws, first = await open_as(xff)
        keep.append(ws)
    for key, ws in zip(("a1", "a2", "b1"), keep):
        r[key] = await state(ws)
    for ws in keep:
        if ws is not None:
            await ws.close()
    # A refused token, forwarded for 203.0.113.5: logged with that address, not the token.
    bad = mint(SITE, secret="not-the-site-secret")[0]
    r["bad_token"] = bad
    try:
        ws = await ws_open(bad, additional_headers={"X-Forwarded-For": "203.0.113.5"})
        r["bad"] = await wait_close(ws, 3)
    except Exception as e:
        r["bad"] = {"error": str(e)}
    status, headers, _ = http("GET", "/healthz", None, {"Origin": "https://a.example"})
    r["cors"] = headers.get("access-control-allow-origin")
    return r

async def publish_burst():
    """CFG["count"] binary publishes sent at once on a site limited to CFG["rate"]/s, burst CFG["burst"]."""
    r = {}
    site = add_site({"client_publish_rate": CFG["rate"], "client_publish_burst": CFG["burst"]})
    ch = "yjs:postType/post:7"
    sender, _ = await connect_and_subscribe(site, [ch])
    other, _ = await connect_and_subscribe(site, [ch])
    n = int(CFG["count"])
    frames = [binframe(ch, bytes([3]) + i.to_bytes(4, "big")) for i in range(n)]
    t0 = time.monotonic()
    for f in frames:
        await sender.send(f)
    got = []
    while len(got) < n:
        m = await next_frame(other, 15)
        if m is None:
            break
        if isinstance(m, bytes):
            got.append(m)
    r["elapsed_s"] = round(time.monotonic() - t0, 2)
    r["received"] = len(got)
    r["in_order"] = got == frames[:len(got)]
    echoes = 0
    try:
        while echoes < n:
            m = await next_frame(sender, 2)
            if m is None:
                break
            if isinstance(m, bytes):
                echoes += 1
        r["sender_open"] = True
    except ConnectionClosed as e:
        r["sender_open"] = False
        r["sender_close"] = e.rcvd.code if e.rcvd else 1006
    r["sender_echoes"] = echoes
    await sender.close()
    await other.close()
    return r


def handshake_shapes():
    """Opening handshakes in many shapes, by hand: the status, the subprotocol answered, the first
    frames. Plain ones are answered without an HTTP/1 pipeline, unusual ones by the HTTP/1 parser
    and NIO's upgrader; both must behave as the protocol says."""
    import base64 as b64
    import hashlib
    import socket as so
    site = add_site()
    token = mint(site)[0]
    port = CFG["port"]

    def frame(payload, opcode=1):
        m = os.urandom(4)
        data = bytes(b ^ m[i % 4] for i, b in enumerate(payload))
        return struct.pack("!BB", 0x80 | opcode, 0x80 | len(data)) + m + data

    def attempt(request, chunked=False, after=b""):
        """Sends `request` (then `after`), reads the answer; after a 101, subscribes (unless
        `after` already did) and reads frames up to `subscribed` or a close."""
        s = so.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(so.IPPROTO_TCP, so.TCP_NODELAY, 1)
        key = b64.b64encode(os.urandom(16)).decode()
        data = request.replace("{key}", key).replace("{token}", token).encode() + after
        if chunked:
            for i in range(len(data)):
                s.sendall(data[i:i + 1])
                time.sleep(0.002)
        else:
            s.sendall(data)
        buf = b""
        out = {"status": None, "accept_ok": False, "protocol": None, "frames": [], "closed": False}
        try:
            while b"\r\n\r\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    out["closed"] = True
                    break
                buf += chunk
            if b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                out["status"] = int(lines[0].split(" ", 2)[1])
                fields = {l.split(":", 1)[0].strip().lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
                expected = b64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
                out["accept_ok"] = fields.get("sec-websocket-accept") == expected
                out["protocol"] = fields.get("sec-websocket-protocol")
                out["version"] = fields.get("sec-websocket-version")
            def need(n):
                nonlocal buf
                while len(buf) < n:
                    chunk = s.recv(4096)
                    if not chunk:
                        raise ConnectionError("closed")
                    buf += chunk

            if out["status"] == 101 and not after:
                s.sendall(subscribe)
            while out["status"] == 101 and "subscribed" not in out["frames"]:
                need(2)
                opcode, n, hl = buf[0] & 0x0F, buf[1] & 0x7F, 2
                if n == 126:
                    need(4)
                    n, hl = struct.unpack("!H", buf[2:4])[0], 4
                need(hl + n)
                payload, buf = buf[hl:hl + n], buf[hl + n:]
                if opcode == 8:
                    out["frames"].append("close %d" % struct.unpack("!H", payload[:2])[0] if n >= 2 else "close")
                    break
                out["frames"].append(json.loads(payload).get("type") if opcode == 1 else "opcode %d" % opcode)
        except (so.timeout, TimeoutError, ConnectionError, ConnectionResetError):
            out["closed"] = True
        s.close()
        return out

    subscribe = frame(compact({"type": "subscribe", "channels": ["shapes"]}).encode())
    std = ("GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")
    r = {
        "plain": attempt(std + "\r\n"),
        "byte_by_byte": attempt(std + "\r\n", chunked=True),
        "first_frame_in_same_packet": attempt(std + "\r\n", after=subscribe),
        "browser_like": attempt("GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive, Upgrade\r\n"
                                "Pragma: no-cache\r\nUpgrade: WebSocket\r\nOrigin: http://localhost\r\n"
                                "Sec-WebSocket-Version: 13\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64)\r\n"
                                "Accept-Language: en-US,en;q=0.9\r\nSec-WebSocket-Key: {key}\r\n"
                                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                                "Sec-WebSocket-Protocol: relay, token.x\r\n\r\n"),
        "lowercase_names_tabs": attempt("GET /ws?token={token} HTTP/1.1\r\nhost:127.0.0.1\r\nupgrade:\twebsocket \r\n"
                                        "connection: upgrade\r\nsec-websocket-key:   {key}\r\nsec-websocket-version: 13\r\n\r\n"),
        "content_length_zero": attempt(std + "Content-Length: 0\r\n\r\n"),
        "content_length_body": attempt(std + "Content-Length: 5\r\n\r\nhello"),
        "http10": attempt(std.replace("HTTP/1.1", "HTTP/1.0") + "\r\n"),
        "folded_header": attempt(std + "X-Folded: a\r\n b\r\n\r\n"),
        "lowercase_method": attempt(std.replace("GET ", "get ", 1) + "\r\n"),
        "unknown_path": attempt(std.replace("/ws?", "/nope?") + "\r\n"),
        "duplicate_key": attempt(std + "Sec-WebSocket-Key: {key}\r\n\r\n"),
        "version_8": attempt(std.replace("Version: 13", "Version: 8") + "\r\n"),
        "no_connection_upgrade": attempt(std.replace("Connection: Upgrade\r\n", "") + "\r\n"),
        "no_key": attempt(std.replace("Sec-WebSocket-Key: {key}\r\n", "") + "\r\n"),
        "bad_token": attempt(std.replace("{token}", "nope") + "\r\n"),
    }
    return r


SCENARIOS = {
    "close_and_idle_timeouts": close_and_idle_timeouts,
    "tls": tls,
    "pipelined_publish": pipelined_publish,
    "wordpress_php": wordpress_php,
    "slow_handshake": slow_handshake,
    "basic": basic, "refusals": refusals, "publish_errors": publish_errors, "publish_more": publish_more,
    "client_features": client_features, "recovery": recovery, "sse": sse, "liveness": liveness,
    "slow_consumer": slow_consumer, "frame_limits": frame_limits, "shutdown": shutdown,
    "registry_before": registry_before, "registry_after": registry_after, "rfc6455": rfc6455,
    "rotation": rotation, "server_full": server_full, "stats": stats, "big_binary": big_binary,
    "ordering": ordering, "big_header": big_header, "handshake_shapes": handshake_shapes, "forwarded_clients": forwarded_clients, "publish_burst": publish_burst,
}

if __name__ == "__main__":
    run(SCENARIOS)

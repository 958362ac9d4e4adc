// The browser client (in node, with `ws` as WebSocket) against relayd: sealed publishes, recovery, refresh, close codes.
import test from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Relay, WebSocket, RELAYCTL, until, sleep, freePort } from './harness.mjs';
import { existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createClient } from '../../assets/js/client.js';
import { createProviderCreator } from '../../assets/js/yjs-provider.js';
import { retryAfterMs } from '../../assets/js/close-codes.js';
import { Y } from './harness.mjs';

const T = { timeout: 30000 };
let relay;
const clients = [];
test.before(async () => { relay = await Relay.start(['--ping-interval', '2']); });
test.after(async () => { for (const c of clients) c.destroy(); await relay?.close(); WebSocket.terminateAll(); });

const key = crypto.randomBytes(32).toString('base64');
function client(extra = {}, tok = relay.token()) {
  const target = new EventTarget();
  const events = [];
  const c = createClient({ url: relay.url, siteId: relay.site.siteId, token: tok.token, exp: tok.exp, WebSocket, eventTarget: target,
    payloadKeys: { v1: key, k1: key }, timing: { baseMs: 100, maxMs: 500, minRefreshMs: 200 }, ...extra });
  const record = (name) => target.addEventListener(`relay:${name}`, (e) => events.push({ name, ...e.detail }));
  clients.push(c);
  return { c, target, events, record };
}
const ch = (name) => `site:${relay?.site.siteId}:${name}`;

/** One Redis command over RESP; resolves with the first reply line. */
function redisCall(port, args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    sock.setTimeout(2000, () => { sock.destroy(); reject(new Error('redis timeout')); });
    sock.on('error', reject);
    sock.on('data', (d) => { sock.end(); resolve(d.toString().split('\r\n')[0]); });
    sock.write(`*${args.length}\r\n` + args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join(''));
  });
}

test('sealed v1 and v2 publishes arrive as relay:<event> CustomEvents; XC20P is reported, not thrown', T, async () => {
  const { c, events, record } = client({ channels: [ch('posts')] });
  record('post.updated'); record('plain'); record('connection.error');
  assert.ok(await until(() => c.state.connected && c.positions[ch('posts')]));
  await relay.publish(ch('posts'), 'post.updated', { id: 1, title: 'v1 ✓' }, ['--seal', '--payload-key', key, '--envelope', 'v1']);
  await relay.publish('posts', 'post.updated', { id: 2, title: 'v2 😀' }, ['--seal', '--payload-key', key, '--envelope', 'v2']);
  await relay.publish('posts', 'plain', { id: 3 });
  assert.ok(await until(() => events.filter((e) => e.name !== 'connection.error').length === 3), JSON.stringify(events));
  const got = events.filter((e) => e.name === 'post.updated');
  assert.deepEqual(got.map((e) => e.data), [{ id: 1, title: 'v1 ✓' }, { id: 2, title: 'v2 😀' }]);
  assert.ok(got.every((e) => e.channel.endsWith(':posts')));
  assert.deepEqual(events.find((e) => e.name === 'plain').data, { id: 3 });
  // A v2 envelope sealed for another channel does not open here (AAD binds the channel).
  const sealed = await new Promise((res, rej) => import('node:child_process').then(({ execFile }) => {
    const p = execFile(RELAYCTL, ['seal', '--key-base64', key, '--channel', ch('other'), '--alg', 'A256GCM', '--event', 'post.updated'], (e, out) => e ? rej(e) : res(JSON.parse(out)));
    p.stdin.end('{"id":4}');
  }));
  await relay.publish('posts', 'encrypted', sealed);
  const xc = await new Promise((res, rej) => import('node:child_process').then(({ execFile }) => {
    const p = execFile(RELAYCTL, ['seal', '--key-base64', key, '--channel', ch('posts'), '--alg', 'XC20P', '--event', 'post.updated'], (e, out) => e ? rej(e) : res(JSON.parse(out)));
    p.stdin.end('{"id":5}');
  }));
  assert.equal(xc.alg, 'XC20P');
  await relay.publish('posts', 'encrypted', xc);
  assert.ok(await until(() => events.filter((e) => e.name === 'connection.error').length === 2));
  assert.deepEqual(events.filter((e) => e.name === 'connection.error').map((e) => e.data.code), ['decrypt_failed', 'unsupported_alg']);
  assert.equal(got.length, 2);
  assert.equal(c.state.connected, true, 'still connected');
});

test('resubscribes with positions after a reconnect and recovers missed messages; a lost history is reported as a gap', T, async () => {
  const { c, events, record } = client({ channels: [ch('feed')] });
  record('n'); record('connection.gap');
  assert.ok(await until(() => c.state.connected && c.positions[ch('feed')]));
  await relay.publish('feed', 'n', { i: 1 });
  assert.ok(await until(() => events.length === 1));
  c.disconnect();
  for (let i = 2; i <= 4; i++) await relay.publish('feed', 'n', { i });
  c.connect();
  assert.ok(await until(() => events.filter((e) => e.name === 'n').length === 4), JSON.stringify(events));
  assert.deepEqual(events.map((e) => e.data.i), [1, 2, 3, 4]);
  assert.equal(events.some((e) => e.name === 'connection.gap'), false);
  await relay.restart(); // history is lost: new epoch
  assert.ok(await until(() => events.some((e) => e.name === 'connection.gap'), 10000), 'gap reported');
  const gap = events.find((e) => e.name === 'connection.gap');
  assert.equal(gap.channel, ch('feed'));
  assert.equal(gap.data.recovered, false);
  assert.ok(await until(() => c.state.connected));
  await relay.publish('feed', 'n', { i: 5 });
  assert.ok(await until(() => events.some((e) => e.data?.i === 5)));
});

// A live epoch change on an open connection: relayd on a real Redis (`--broker`) that loses its data
// (FLUSHALL, as a restart without persistence): the next message comes from a new stream.
const REDIS = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));
test('a live message from a new stream (the broker lost its data) is reported as a gap', { ...T, skip: !REDIS && !process.env.RELAY_REQUIRE_PEERS && 'needs redis-server' }, async () => {
  const port = await freePort();
  const redis = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  let node;
  try {
    assert.ok(await until(() => redisCall(port, ['PING']).then((r) => r === '+PONG', () => false), 5000), 'redis-server up');
    node = await Relay.start(['--broker', `redis://127.0.0.1:${port}`]);
    const target = new EventTarget();
    const events = [];
    const tok = node.token();
    const c = createClient({ url: node.url, siteId: node.site.siteId, token: tok.token, exp: tok.exp, WebSocket, eventTarget: target,
      channels: [`site:${node.site.siteId}:live`], timing: { baseMs: 100, maxMs: 500, minRefreshMs: 200 } });
    clients.push(c);
    for (const name of ['n', 'connection.gap']) target.addEventListener(`relay:${name}`, (e) => events.push({ name, ...e.detail }));
    assert.ok(await until(() => c.state.connected && c.positions[`site:${node.site.siteId}:live`]));
    await node.publish('live', 'n', { i: 1 });
    await node.publish('live', 'n', { i: 2 });
    assert.ok(await until(() => events.length === 2), JSON.stringify(events));
    assert.equal(await redisCall(port, ['FLUSHALL']), '+OK');
    await node.publish('live', 'n', { i: 3 });
    assert.ok(await until(() => events.length === 4), JSON.stringify(events));
    assert.deepEqual(events.map((e) => e.name), ['n', 'n', 'connection.gap', 'n']);
    assert.equal(events[2].data.recovered, false);
    assert.equal(events[2].data.reason, 'epoch changed');
    assert.equal(c.state.gaps, 1);
    assert.equal(c.state.connects, 1, 'on the same connection');
  } finally {
    await node?.close();
    redis.kill('SIGKILL');
  }
});

test('answers pings; refreshes its token in-band before expiry', T, async () => {
  let fetched = 0;
  const { c } = client({ channels: [ch('x')], timing: { baseMs: 100, maxMs: 500, minRefreshMs: 200, refreshRatio: 0.3 },
    fetchToken: async () => { fetched++; return relay.token({ ttl: 8 }); } }, relay.token({ ttl: 8 }));
  const exp0 = c.tokens.exp;
  // Connected through several 2 s ping intervals and past the first token's lifetime on one socket:
  // relayd closes 4001 when a token expires without an accepted refresh, so one connect proves auth_ok.
  await sleep(10000);
  assert.equal(c.state.connected, true);
  assert.equal(c.state.transport, 'ws');
  assert.equal(c.state.connects, 1, 'never reconnected');
  assert.ok(fetched >= 2, `refreshed ${fetched}×`);
  assert.ok(c.state.exp > exp0 + 1);
});

test('4001 twice stops with an error; without a refresh route it stops at once', T, async () => {
  const bad = () => relay.token({ secret: 'wrong' });
  let fetched = 0;
  const a = client({ fetchToken: async () => { fetched++; return bad(); } }, bad());
  const errs = []; a.c.on('connection.error', (d) => errs.push(d.code));
  assert.ok(await until(() => a.c.state.status === 'stopped'));
  assert.equal(fetched, 1, 'reminted once');
  assert.deepEqual(errs, ['authentication-failed']);
  const now = Math.floor(Date.now() / 1000);
  const b = client({}, relay.token({ exp: now - 60 }));
  const e2 = []; b.c.on('connection.error', (d) => e2.push(d.code));
  assert.ok(await until(() => b.c.state.status === 'stopped'));
  assert.deepEqual(e2, ['connection-expired']);
});

test('browser publish and presence reach another client', T, async () => {
  const A = client({ channels: [ch('chat')] }), B = client({ channels: [ch('chat')] });
  const got = [], pres = [];
  B.c.on('said', (d, channel) => got.push([d, channel]));
  B.c.on('wps.presence', (d) => pres.push(d));
  assert.ok(await until(() => A.c.positions[ch('chat')] && B.c.positions[ch('chat')]));
  assert.equal(A.c.publish(ch('chat'), 'said', { t: 'hi' }), true);
  assert.ok(await until(() => got.length === 1));
  assert.deepEqual(got[0], [{ t: 'hi' }, ch('chat')]);
  A.c.presence(ch('chat'), { name: 'A' });
  assert.ok(await until(() => pres.some((p) => p.action === 'join' && p.state?.name === 'A')), JSON.stringify(pres));
});

test('relayd shutting down (SIGTERM): 4500 with retry_after_ms; client and provider wait that long, then reconnect', T, async () => {
  const { c } = client({ channels: [ch('bye')] });
  const doc = new Y.Doc({ meta: new Map() });
  const tok = relay.token();
  const prov = await createProviderCreator({ url: relay.url, token: tok.token, exp: tok.exp, WebSocket, yjs: { syncTimeoutMs: 3000 } })(
    { objectType: 'postType/post', objectId: '4500', ydoc: doc, Y });
  const seen = [];
  prov.on('status', (s) => seen.push(s));
  assert.ok(await until(() => c.state.connected && seen.at(-1)?.status === 'connected'));
  await relay.stopProcess('SIGTERM');
  assert.ok(await until(() => c.state.lastClose && seen.some((s) => s.status === 'disconnected'), 8000));
  assert.equal(c.state.lastClose.code, 4500, JSON.stringify(c.state.lastClose));
  const wait = retryAfterMs(c.state.lastClose.reason);
  assert.ok(wait > 0, c.state.lastClose.reason);
  assert.equal(c.state.retryInMs, wait);
  const pd = prov.provider.lastClose;
  assert.equal(pd.code, 4500);
  const st = seen.find((s) => s.status === 'disconnected');
  assert.equal(st.willAutoRetryInMs, retryAfterMs(pd.reason));
  assert.equal(st.error, undefined, 'a shutdown is not an error');
  await relay.spawn();
  assert.ok(await until(() => c.state.connected && seen.at(-1)?.status === 'connected', 20000), 'both back');
  prov.destroy();
});

test('close codes from a real relayd: 4029 site connection limit backs off; 4003 site unregistered stops (client and provider)', T, async () => {
  const site = await relay.addSite(['--max-connections', '1']);
  const mk = (extra = {}) => {
    const t = site.token();
    const target = new EventTarget();
    const c = createClient({ url: relay.url, siteId: site.site_id, token: t.token, exp: t.exp, WebSocket, eventTarget: target,
      channels: [`site:${site.site_id}:x`], timing: { baseMs: 300, maxMs: 600 }, ...extra });
    clients.push(c);
    return c;
  };
  const first = mk();
  assert.ok(await until(() => first.state.connected));
  const second = mk();
  assert.ok(await until(() => second.state.lastClose?.code === 4029, 5000), JSON.stringify(second.state.lastClose));
  assert.equal(second.state.status, 'disconnected');
  assert.equal(typeof second.state.retryInMs, 'number', 'backs off, does not stop');
  const t = site.token();
  const doc = new Y.Doc({ meta: new Map() });
  const prov = await createProviderCreator({ url: relay.url, token: t.token, exp: t.exp, WebSocket, yjs: { syncTimeoutMs: 1500, retryBaseMs: 300, retryMaxMs: 600 } })(
    { objectType: 'postType/post', objectId: '4029', ydoc: doc, Y });
  const seen = []; prov.on('status', (x) => seen.push(x));
  assert.ok(await until(() => prov.provider.lastClose?.code === 4029, 5000), JSON.stringify(prov.provider.lastClose));
  assert.ok(await until(() => seen.some((x) => x.status === 'disconnected')));
  const d = seen.find((x) => x.status === 'disconnected');
  assert.equal(d.error, undefined); assert.equal(typeof d.willAutoRetryInMs, 'number');
  second.destroy(); prov.destroy();
  // Site unregistered (archived): its open sockets are closed with 4003 → the client stops.
  await relay.unregisterSite(site);
  assert.ok(await until(() => first.state.status === 'stopped', 5000), JSON.stringify(first.state));
  assert.equal(first.state.lastClose.code, 4003);
  // A provider for a removed site: authentication-failed, no retry.
  const p2 = await createProviderCreator({ url: relay.url, token: t.token, exp: t.exp, WebSocket, yjs: { syncTimeoutMs: 1500 } })(
    { objectType: 'postType/post', objectId: '4003', ydoc: new Y.Doc(), Y });
  const s2 = []; p2.on('status', (x) => s2.push(x));
  assert.ok(await until(() => s2.at(-1)?.status === 'disconnected' && s2.at(-1).willAutoRetryInMs === undefined, 5000), JSON.stringify(s2));
  assert.equal(s2.at(-1).error.code, 'authentication-failed');
  assert.equal(p2.provider.lastClose.code, 4003, JSON.stringify(p2.provider.lastClose));
  p2.destroy();
});

test('liveness watchdog: silence beyond silenceMs replaces the socket; relayd pings keep a healthy one', T, async () => {
  const quiet = client({ channels: [ch('w')], timing: { baseMs: 100, maxMs: 200, watchdogMs: 200, silenceMs: 5000 } });
  const strict = client({ channels: [ch('w')], timing: { baseMs: 100, maxMs: 200, watchdogMs: 200, silenceMs: 1000 } });
  assert.ok(await until(() => quiet.c.state.connected && strict.c.state.connected));
  await sleep(5500); // relayd pings every 2 s here
  assert.equal(quiet.c.state.connects, 1, 'pings kept the socket alive');
  assert.ok(strict.c.state.connects >= 2, `watchdog reconnected (${strict.c.state.connects})`);
});

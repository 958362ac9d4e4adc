// Real y-websocket clients (Debian node-y-websocket + node-ws + node-yjs) against relayd's /yjs endpoint.
// Usage: node ywebsocket-session.cjs <scenario> <json-config>
// Prints one JSON object with what the clients observed.
const Y = require('yjs');
const { WebsocketProvider } = require('y-websocket');
const WebSocket = require('ws');
const crypto = require('crypto');

const cfg = JSON.parse(process.argv[3]);
const b64url = (b) => Buffer.from(b).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
function token({ user = '1', write = true, ttl = 300 } = {}) {
  const siteID = cfg.site_id;
  const now = Math.floor(Date.now() / 1000);
  const claims = { site_id: siteID, user_id: user, v: 2, iat: now, exp: now + ttl,
    allowed_channel_prefixes: [`site:${siteID}:yjs:`], allowed_publish_prefixes: write ? [`site:${siteID}:yjs:`] : [`site:${siteID}:events`] };
  const h = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' })), p = b64url(JSON.stringify(claims));
  return `${h}.${p}.${b64url(crypto.createHmac('sha256', cfg.jwt_secret).update(`${h}.${p}`).digest())}`;
}
function client(room, opts = {}) {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider((opts.url || cfg.url).replace(/^http/, 'ws') + '/yjs', room, doc,
    { WebSocketPolyfill: WebSocket, params: { auth: token(opts) }, disableBc: true, connect: true });
  const closes = [];
  provider.on('connection-close', (e) => { if (e) closes.push(e.code); });
  if (opts.noReconnect) provider.shouldConnect = true;
  return { doc, provider, closes, text: () => doc.getText('t').toString() };
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (pred()) return true; await sleep(20); }
  return pred();
}
function synced(c, ms = 5000) { return until(() => c.provider.synced, ms); }
const out = {};

async function edit() {
  const room = cfg.room;
  const a = client(room, { user: 'a' }), b = client(room, { user: 'b' });
  out.a_synced = await synced(a); out.b_synced = await synced(b);
  a.doc.getText('t').insert(0, 'hello');
  await until(() => b.text() === 'hello');
  b.doc.getText('t').insert(5, ' wörld 😀');
  a.doc.getMap('m').set('k', { nested: [1, 2, 3] });
  out.converged = await until(() => a.text() === b.text() && a.text() === 'hello wörld 😀' && b.doc.getMap('m').get('k') !== undefined);
  out.text_a = a.text(); out.text_b = b.text();
  a.provider.destroy(); b.provider.destroy();
  await sleep(200);
  const c = client(room, { user: 'c' });
  out.late_synced = await synced(c);
  await until(() => c.text().length > 0);
  out.late_text = c.text();
  out.late_map = JSON.stringify(c.doc.getMap('m').get('k'));
  c.provider.destroy();
}

async function readonly() {
  const room = cfg.room;
  const ro = client(room, { user: 'ro', write: false });
  out.ro_synced = await synced(ro);
  out.ro_initial = ro.text();
  let denied = false;
  ro.provider.on('status', () => {});
  // y-websocket logs permission-denied via its handler; observe the raw socket too.
  ro.provider.ws && ro.provider.ws.addEventListener('message', (e) => {
    const d = new Uint8Array(e.data); if (d[0] === 2) denied = true;
  });
  ro.doc.getText('t').insert(0, 'X');
  await sleep(500);
  out.ro_denied_message = denied;
  ro.provider.destroy();
  const check = client(room, { user: 'checker' });
  await synced(check); await sleep(200);
  out.after_ro_text = check.text();
  check.provider.destroy();
}

async function read() {
  const c = client(cfg.room, { user: 'reader' });
  // Used right after a restart on a loaded machine: allow for reconnect backoff.
  out.synced = await synced(c, 10000);
  out.closes = c.closes;
  await until(() => c.text().length > 0, 3000);
  out.text = c.text();
  c.provider.destroy();
}

async function awareness() {
  const room = cfg.room;
  const a = client(room, { user: 'a' }), b = client(room, { user: 'b' });
  await synced(a); await synced(b);
  a.provider.awareness.setLocalStateField('user', { name: 'Ada' });
  out.b_sees_a = await until(() => [...b.provider.awareness.getStates().values()].some((s) => s.user && s.user.name === 'Ada'));
  const aID = a.doc.clientID;
  // Close A's socket abruptly (no awareness removal message from the client).
  a.provider.shouldConnect = false;
  a.provider.ws.terminate ? a.provider.ws.terminate() : a.provider.ws.close();
  out.b_sees_a_gone = await until(() => !b.provider.awareness.getStates().has(aID), 5000);
  // A late joiner gets the awareness of those present.
  b.provider.awareness.setLocalStateField('user', { name: 'Bob' });
  await sleep(100);
  const c = client(room, { user: 'c' });
  out.c_sees_b = await until(() => [...c.provider.awareness.getStates().values()].some((s) => s.user && s.user.name === 'Bob'));
  a.provider.destroy(); b.provider.destroy(); c.provider.destroy();
}

async function expired() {
  const c = client(cfg.room, { user: 'x', ttl: -60 });
  c.provider.shouldConnect = true;
  await until(() => c.closes.length > 0, 3000);
  out.close_codes = c.closes.slice(0, 1);
  c.provider.destroy();
}

async function roomlimit() {
  const a = client(cfg.room, { user: 'a' }), b = client(cfg.room, { user: 'b' });
  await synced(a); await synced(b);
  const c = client(cfg.room, { user: 'c' });
  await until(() => c.closes.length > 0, 3000);
  out.third_close = c.closes[0];
  a.provider.destroy(); b.provider.destroy(); c.provider.destroy();
}

async function iplimit() {
  // Two raw sockets from the same address; relayd runs with --max-connections-per-ip 1.
  const url = cfg.url.replace(/^http/, 'ws') + '/yjs/' + cfg.room + '?auth=' + token({ user: 'ip' });
  const first = new WebSocket(url);
  await new Promise((r) => first.on('message', r));
  const second = new WebSocket(url);
  out.second_close = await new Promise((r) => second.on('close', (code) => r(code)));
  first.close();
  await new Promise((r) => first.on('close', r));
  // relayd frees the slot when it has handled the close, which can be just after the
  // client saw the socket close: a client retries, so does this one (3 tries, 200 ms apart).
  out.third_opened_after_release = false;
  for (let i = 0; i < 3 && !out.third_opened_after_release; i++) {
    if (i > 0) await sleep(200);
    const third = new WebSocket(url);
    out.third_opened_after_release = await new Promise((r) => { third.on('message', () => r(true)); third.on('close', () => r(false)); });
    third.close();
  }
}

async function sizelimits() {
  // relayd runs with --yjs-max-collaborators-per-room 1 --yjs-max-update-bytes 2000 --yjs-max-document-bytes 3000.
  const a = client(cfg.room, { user: 'a' });
  await synced(a);
  const b = client(cfg.room, { user: 'b' });
  await until(() => b.closes.length > 0, 3000);
  out.second_user_close = b.closes[0];
  b.provider.destroy();
  a.doc.getText('t').insert(0, 'x'.repeat(5000));
  await until(() => a.closes.length > 0, 3000);
  out.big_update_close = a.closes[0];
  a.provider.destroy();
  const c = client(cfg.room + '-doc', { user: 'c' });
  await synced(c);
  c.doc.getText('t').insert(0, 'y'.repeat(1500));
  await sleep(300);
  c.doc.getText('t').insert(0, 'z'.repeat(1500));
  await until(() => c.closes.length > 0, 3000);
  out.document_close = c.closes[0];
  c.provider.destroy();
}

// One typist appending a character every interval_ms (for backups and crashes taken mid-typing),
// `chars` of them, or until the file `stop_file` exists when given; afterwards a second client
// checks that everything typed reached the relay.
async function typing() {
  const a = client(cfg.room, { user: 'typist' });
  out.synced = await synced(a);
  const t = a.doc.getText('t');
  const n = Number(cfg.chars || 300), every = Number(cfg.interval_ms || 10);
  const stop = () => cfg.stop_file && require('fs').existsSync(cfg.stop_file);
  for (let i = 0; i < n && !stop(); i++) { t.insert(t.length, String.fromCharCode(97 + (i % 26))); await sleep(every); }
  const b = client(cfg.room, { user: 'check' });
  await synced(b);
  out.all_seen = await until(() => b.text() === t.toString(), 5000);
  out.text = t.toString();
  a.provider.destroy(); b.provider.destroy();
}

// Three writers each fire `chars` one-character updates (and a cursor now and then) as fast as
// their sockets take them, all at once: the relay gets far more than it can store one by one
// (back-pressure with small --yjs-max-in-flight / --yjs-write-queue-bytes). Every writer, and a
// late joiner, must end with all of it, each writer's characters in the order typed. `expect`
// (default `chars`): entries each writer's array must end with (after a restart: chars 0, expect N).
async function burst() {
  const n = Number(cfg.chars ?? 150), expect = Number(cfg.expect ?? n);
  const ws = ['x', 'y', 'z'].map((u) => client(cfg.room, { user: u }));
  for (const c of ws) await synced(c);
  ws.forEach((c, k) => {
    const m = c.doc.getMap('w' + k);
    for (let i = 0; i < n; i++) {
      m.set('last', i);
      c.doc.getArray('a' + k).push([i]);
      if (i % 10 === 0) c.provider.awareness.setLocalStateField('cursor', i);
    }
  });
  const complete = (c) => ws.every((_, k) => c.doc.getArray('a' + k).length === expect && c.doc.getMap('w' + k).get('last') === expect - 1);
  out.writers_converged = await until(() => ws.every(complete), 15000);
  const late = client(cfg.room, { user: 'late' });
  await synced(late);
  out.late_complete = await until(() => complete(late), 5000);
  out.in_order = ws.every((_, k) => JSON.stringify(late.doc.getArray('a' + k).toArray()) === JSON.stringify([...Array(expect).keys()]));
  out.closes = ws.flatMap((c) => c.closes);
  for (const c of ws.concat([late])) c.provider.destroy();
}

// Three relayd nodes on one Redis and one PostgreSQL (cfg.urls): editors on two nodes converge,
// awareness crosses nodes, a late joiner on the third gets the whole document, then (phase
// "after_restart", every relayd restarted) the document is still there.
async function multinode() {
  const room = cfg.room;
  const [ua, ub, uc] = cfg.urls;
  if (cfg.phase === 'after_restart') {
    const d = client(room, { user: 'd', url: uc });
    out.d_synced = await synced(d, 15000);
    await until(() => d.text().length > 0, 10000);
    out.d_text = d.text();
    out.d_map = JSON.stringify(d.doc.getMap('m').get('k'));
    d.provider.destroy();
    return;
  }
  const a = client(room, { user: 'a', url: ua }), b = client(room, { user: 'b', url: ub });
  out.a_synced = await synced(a, 15000); out.b_synced = await synced(b, 15000);
  a.doc.getText('t').insert(0, 'hello');
  out.b_got_a = await until(() => b.text() === 'hello', 10000);
  b.doc.getText('t').insert(5, ' wörld 😀');
  a.doc.getMap('m').set('k', { nested: [1, 2, 3] });
  // Concurrent typing on both nodes.
  for (let i = 0; i < 50; i++) {
    a.doc.getText('t').insert(a.text().length, 'a');
    b.doc.getText('t').insert(0, 'b');
    if (i % 10 === 0) await sleep(5);
  }
  out.converged = await until(() => a.text() === b.text() && a.text().length === 'hello wörld 😀'.length + 100
    && b.doc.getMap('m').get('k') !== undefined, 15000);
  out.text_a = a.text(); out.text_b = b.text();
  a.provider.awareness.setLocalStateField('user', { name: 'Ada' });
  out.b_sees_a = await until(() => [...b.provider.awareness.getStates().values()].some((s) => s.user && s.user.name === 'Ada'), 10000);
  const c = client(room, { user: 'c', url: uc });
  out.c_synced = await synced(c, 15000);
  out.c_complete = await until(() => c.text() === a.text(), 10000);
  out.c_text = c.text();
  c.doc.getText('t').insert(0, 'C');
  out.a_got_c = await until(() => a.text() === c.text() && b.text() === c.text(), 10000);
  out.final_text = a.text();
  a.provider.destroy(); b.provider.destroy(); c.provider.destroy();
  await sleep(300);
}

const scenarios = { multinode, edit, readonly, read, awareness, expired, roomlimit, iplimit, sizelimits, typing, burst };
const timer = setTimeout(() => { out.timeout = true; console.log(JSON.stringify(out)); process.exit(2); }, Number(cfg.timeout_ms || 20000));
scenarios[process.argv[2]]().then(() => { clearTimeout(timer); console.log(JSON.stringify(out)); process.exit(0); })
  .catch((e) => { clearTimeout(timer); out.error = String(e && e.stack || e); console.log(JSON.stringify(out)); process.exit(1); });

// The Yjs provider against relayd, driven by a double of Gutenberg's sync manager.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { Relay, Y, Awareness, WebSocket, SyncManagerDouble, createHooks, edit, text, until, sleep } from './harness.mjs';
import { createProviderCreator, register, liveProviders } from '../../assets/js/yjs-provider.js';

const require = createRequire(import.meta.url);
const { WebsocketProvider } = require('y-websocket');

let relay;
const T = { timeout: 30000 };
test.before(async () => { relay = await Relay.start(); });
test.after(async () => { for (const p of liveProviders) p.destroy(); await relay?.close(); WebSocket.terminateAll(); });

const FAST = { syncTimeoutMs: 3000, retryBaseMs: 200, retryMaxMs: 1000 };
let roomSeq = 0;
function config(extra = {}, tok = relay.token()) {
  return { url: relay.url, siteId: relay.site.siteId, token: tok.token, exp: tok.exp, WebSocket,
    yjs: { enabled: true, roomPrefix: `t${process.pid}-${++roomSeq}/`, ...FAST, ...(extra.yjs || {}) }, ...extra, ...{ yjs: { enabled: true, roomPrefix: extra.roomPrefix || `t${process.pid}-${roomSeq}/`, ...FAST, ...(extra.yjs || {}) } } };
}
function editor(cfg, user, opts = {}) {
  const hooks = createHooks();
  assert.equal(register(cfg, { hooks, mode: opts.mode }), true);
  return new SyncManagerDouble({ hooks, user, defaults: opts.defaults || [], passY: opts.passY ?? true });
}
const statuses = (e) => e.statuses.map((s) => s && (s.status + (s.error ? `:${s.error.code}` : '')));
const lastStatus = (e) => e.statuses.filter(Boolean).at(-1);

test('two editors converge on emoji text and the document map; a stock y-websocket client converges with them', T, async () => {
  const cfg = config();
  const A = editor(cfg, { id: 1, name: 'A' }), B = editor({ ...cfg }, { id: 2, name: 'B' });
  const [ea, eb] = await Promise.all([A.load('postType/post', '42'), B.load('postType/post', '42')]);
  assert.deepEqual(statuses(ea).slice(-1), ['connected']);
  assert.deepEqual(statuses(eb).slice(-1), ['connected']);
  text(ea.ydoc).insert(0, 'Hello');
  assert.ok(await until(() => eb.ydoc.getMap('document').get('content')?.toString() === 'Hello'));
  edit(eb.ydoc, () => text(eb.ydoc).insert(5, ' wörld 😀👩‍👩‍👧'));
  edit(ea.ydoc, (d) => { d.set('title', 'T'); d.set('status', 'draft'); d.set('meta', new Y.Map()); });
  const want = 'Hello wörld 😀👩‍👩‍👧';
  assert.ok(await until(() => text(ea.ydoc).toString() === want && eb.ydoc.getMap('document').get('status') === 'draft'));
  // Stock y-websocket 1.4.5 in the same room.
  const room = `${cfg.yjs.roomPrefix}postType/post:42`;
  const sdoc = new Y.Doc();
  const stock = new WebsocketProvider(`${relay.url.replace('http', 'ws')}/yjs`, room, sdoc,
    { WebSocketPolyfill: WebSocket, params: { auth: relay.token({ user: '3' }).token }, disableBc: true });
  try {
    assert.ok(await until(() => stock.synced && sdoc.getMap('document').get('content')?.toString() === want), 'stock client got the doc');
    sdoc.getMap('document').get('content').insert(0, '🚀');
    assert.ok(await until(() => text(ea.ydoc).toString() === `🚀${want}` && text(eb.ydoc).toString() === `🚀${want}`), 'stock edit reached both');
    edit(eb.ydoc, (d) => d.set('slug', 'hello'));
    assert.ok(await until(() => sdoc.getMap('document').get('slug') === 'hello'));
    // Awareness of both editors visible to the stock client (y-protocols on its side).
    assert.ok(await until(() => stock.awareness.getStates().has(ea.ydoc.clientID) && stock.awareness.getStates().has(eb.ydoc.clientID)));
    assert.equal(stock.awareness.getStates().get(ea.ydoc.clientID).collaboratorInfo.name, 'A');
  } finally { stock.destroy(); }
  assert.deepEqual(ea.ydoc.getMap('document').toJSON(), eb.ydoc.getMap('document').toJSON());
  A.unloadAll(); B.unloadAll();
  assert.equal(ea.statuses.at(-1), null);
});

test('remote updates are non-local and not echoed; local ones are sent once', T, async () => {
  const cfg = config();
  const A = editor(cfg, { id: 1 }), B = editor(cfg, { id: 2 });
  const [ea, eb] = await Promise.all([A.load('postType/post', '7'), B.load('postType/post', '7')]);
  const pa = ea.providers[0].provider, pb = eb.providers[0].provider;
  const locals = [];
  eb.ydoc.on('afterTransaction', (t) => { if (t.origin === pb) locals.push(t.local); });
  await sleep(300);
  const outB = pb.counters.framesOut, outA = pa.counters.framesOut;
  for (let i = 0; i < 20; i++) text(ea.ydoc).insert(text(ea.ydoc).length, 'x');
  assert.ok(await until(() => eb.ydoc.getMap('document').get('content')?.length === 20));
  await sleep(300);
  assert.ok(locals.length >= 1 && locals.every((l) => l === false), 'remote transactions are non-local');
  assert.equal(pb.counters.framesOut, outB, 'B sent nothing back for remote updates');
  assert.ok(pa.counters.framesOut - outA >= 21 && pa.counters.framesOut - outA <= 22, `A sent one frame per edit (${pa.counters.framesOut - outA})`);
  A.unloadAll(); B.unloadAll();
});

test('a late joiner gets the document from relayd after everyone left; the persisted snapshot is skipped', T, async () => {
  const cfg = config();
  const A = editor(cfg, { id: 1 });
  const ea = await A.load('postType/page', '9');
  assert.equal(ea.flagAtResolve, false, 'empty room: no remote state');
  text(ea.ydoc).insert(0, 'kept by relayd ✓');
  await sleep(300);
  A.unloadAll();
  await sleep(200);
  const stale = new Y.Doc(); stale.getMap('document').set('content', new Y.Text('stale snapshot'));
  const C = editor(cfg, { id: 3 });
  const ec = await C.load('postType/page', '9', { persisted: Y.encodeStateAsUpdateV2(stale) });
  assert.equal(ec.flagAtResolve, true, 'hasProviderSyncedRemoteState set before the creator resolved');
  assert.equal(ec.persistedApplied, false);
  assert.equal(text(ec.ydoc).toString(), 'kept by relayd ✓');
  C.unloadAll();
});

test('collection rooms (null id, no awareness) carry save markers', T, async () => {
  const cfg = config();
  const A = editor(cfg, { id: 1 }), B = editor(cfg, { id: 2 });
  const [ca, cb] = await Promise.all([A.loadCollection('postType/post'), B.loadCollection('postType/post')]);
  assert.equal(ca.providers[0].provider.room, `${cfg.yjs.roomPrefix}postType/post:collection`);
  ca.ydoc.transact(() => { ca.ydoc.getMap('state').set('savedAt', 123); ca.ydoc.getMap('state').set('savedBy', ca.ydoc.clientID); }, 'gutenberg');
  assert.ok(await until(() => cb.ydoc.getMap('state').get('savedAt') === 123));
  A.unloadAll(); B.unloadAll();
});

test('awareness of a closed tab disappears', T, async () => {
  const cfg = config();
  const A = editor(cfg, { id: 1, name: 'A' }), B = editor(cfg, { id: 2, name: 'B' });
  const [ea, eb] = await Promise.all([A.load('postType/post', '5'), B.load('postType/post', '5')]);
  assert.ok(await until(() => ea.awareness.getStates().get(eb.ydoc.clientID)?.collaboratorInfo?.name === 'B'), 'A sees B');
  assert.ok(await until(() => eb.awareness.getStates().has(ea.ydoc.clientID)), 'B sees A');
  eb.awareness.setLocalStateField('editorState', { selection: { type: 'cursor' } });
  assert.ok(await until(() => ea.awareness.getStates().get(eb.ydoc.clientID)?.editorState?.selection?.type === 'cursor'));
  const removed = [];
  ea.awareness.on('change', ({ removed: r }) => removed.push(...r));
  // Close the tab: the socket goes away without any awareness goodbye from the page.
  eb.providers[0].provider.ws._socket.destroy();
  assert.ok(await until(() => !ea.awareness.getStates().has(eb.ydoc.clientID), 5000), 'B gone from A');
  assert.ok(removed.includes(eb.ydoc.clientID));
  A.unloadAll(); B.unloadAll();
});

test('relayd killed and restarted: disconnected → connecting → connected, no lost local edit', T, async () => {
  const cfg = config();
  const A = editor(cfg, { id: 1 }), B = editor(cfg, { id: 2 });
  const [ea, eb] = await Promise.all([A.load('postType/post', '11'), B.load('postType/post', '11')]);
  text(ea.ydoc).insert(0, 'before;');
  assert.ok(await until(() => eb.ydoc.getMap('document').get('content')?.toString() === 'before;'));
  const mark = ea.statuses.length;
  await relay.stopProcess('SIGKILL');
  assert.ok(await until(() => lastStatus(ea).status === 'disconnected' && lastStatus(eb).status === 'disconnected', 5000));
  assert.equal(typeof lastStatus(ea).willAutoRetryInMs, 'number');
  text(ea.ydoc).insert(text(ea.ydoc).length, 'offline-A;');
  edit(eb.ydoc, () => text(eb.ydoc).insert(0, 'offline-B;'));
  await sleep(1500);
  await relay.spawn();
  assert.ok(await until(() => lastStatus(ea).status === 'connected' && lastStatus(eb).status === 'connected', 10000), 'reconnected');
  const seq = statuses(ea).slice(mark);
  const i = seq.indexOf('disconnected'), j = seq.indexOf('connecting', i), k = seq.indexOf('connected', j);
  assert.ok(i >= 0 && j > i && k > j, `status sequence ${seq.join(' ')}`);
  assert.ok(await until(() => text(ea.ydoc).toString() === text(eb.ydoc).toString() && text(ea.ydoc).toString().includes('offline-A;') && text(ea.ydoc).toString().includes('offline-B;')),
    `converged: ${text(ea.ydoc).toString()} | ${text(eb.ydoc).toString()}`);
  A.unloadAll(); B.unloadAll();
});

test('expired token: connection-expired, no retry; invalid token: authentication-failed; remint once recovers', T, async () => {
  const now = Math.floor(Date.now() / 1000);
  const E = editor(config({}, relay.token({ exp: now - 60 })), { id: 1 });
  const ee = await E.load('postType/post', '12');
  assert.equal(lastStatus(ee).status, 'disconnected');
  assert.equal(lastStatus(ee).error.code, 'connection-expired');
  assert.equal(lastStatus(ee).willAutoRetryInMs, undefined);
  E.unloadAll();
  const I = editor(config({}, relay.token({ secret: 'not-the-secret' })), { id: 1 });
  const ei = await I.load('postType/post', '12');
  assert.equal(lastStatus(ei).error.code, 'authentication-failed');
  I.unloadAll();
  // Expiring within the leeway-free window: refused once, reminted through the configured fetch, connected.
  let fetched = 0;
  const cfg = config({ fetchToken: async () => { fetched++; return relay.token(); } }, { token: relay.token({ exp: now - 60 }).token, exp: now + 3600 });
  const R = editor(cfg, { id: 1 });
  const er = await R.load('postType/post', '12');
  assert.ok(await until(() => lastStatus(er).status === 'connected'), statuses(er).join(' '));
  assert.equal(fetched, 1);
  R.unloadAll();
  // Second 4001 after a remint stops.
  const S = editor(config({ fetchToken: async () => relay.token({ exp: now - 60 }) }, { token: relay.token({ exp: now - 60 }).token, exp: now + 3600 }), { id: 1 });
  const es = await S.load('postType/post', '12');
  assert.ok(await until(() => lastStatus(es).status === 'disconnected' && lastStatus(es).willAutoRetryInMs === undefined));
  assert.equal(lastStatus(es).error.code, 'connection-expired');
  S.unloadAll();
});

test('a read-only token cannot change the document', T, async () => {
  const cfg = config();
  const W = editor(cfg, { id: 1 });
  const ew = await W.load('postType/post', '13');
  text(ew.ydoc).insert(0, 'original');
  await sleep(200);
  const R = editor({ ...cfg, ...(() => { const t = relay.token({ user: '9', write: false }); return { token: t.token, exp: t.exp }; })() }, { id: 9 });
  const er = await R.load('postType/post', '13');
  assert.equal(lastStatus(er).status, 'connected');
  assert.equal(text(er.ydoc).toString(), 'original', 'read-only still receives the document');
  edit(er.ydoc, () => text(er.ydoc).insert(0, 'HACK '));
  await until(() => er.providers[0].provider.readOnly, 3000);
  assert.equal(er.providers[0].provider.readOnly, true, 'relayd answered permission-denied');
  text(ew.ydoc).insert(8, '+live');
  assert.ok(await until(() => text(er.ydoc).toString().endsWith('original+live')), 'read-only still gets edits');
  await sleep(300);
  assert.equal(text(ew.ydoc).toString(), 'original+live');
  W.unloadAll(); R.unloadAll();
  const L = editor(cfg, { id: 2 });
  const el = await L.load('postType/post', '13');
  assert.equal(text(el.ydoc).toString(), 'original+live', 'relayd did not store the read-only edit');
  L.unloadAll();
});

test('never rejects: dead relay resolves within the bound; no Yjs gives an inert provider; destroy during setup; repeated create/destroy', T, async () => {
  const dead = { url: 'http://127.0.0.1:9', token: 'x', exp: 0, WebSocket, yjs: { syncTimeoutMs: 800, retryBaseMs: 200, retryMaxMs: 400 } };
  const create = createProviderCreator(dead);
  const doc = new Y.Doc({ meta: new Map() });
  const t0 = Date.now();
  const p = await create({ objectType: 'postType/post', objectId: '1', ydoc: doc, Y });
  assert.ok(Date.now() - t0 < 2000);
  const seen = [];
  p.on('status', (s) => seen.push(s.status));
  assert.ok(await until(() => seen.includes('disconnected')));
  p.destroy(); p.destroy();
  const inert = await createProviderCreator(dead)({ objectType: 'postType/post', objectId: '1', ydoc: doc });
  const s = []; inert.on('status', (x) => s.push(x)); inert.destroy();
  assert.equal(s[0].error.code, 'unknown-error');
  assert.equal(await createProviderCreator(dead)(undefined).then((r) => typeof r.destroy), 'function');

  // Manager unloads while creators are pending, then destroys the late results.
  const cfg = config();
  const M = editor(cfg, { id: 1 });
  const loading = M.load('postType/post', '14');
  M.unload('postType/post:14');
  const e = await loading;
  assert.equal(e.unloaded, true);
  assert.equal(e.providers[0].provider.destroyed, true);
  // Same ydoc/awareness, providers created and destroyed repeatedly (presence-detector variant).
  const other = editor(cfg, { id: 2 });
  const eo = await other.load('postType/post', '14');
  const ydoc = new Y.Doc({ meta: new Map() }), awareness = new Awareness(ydoc);
  awareness.setLocalState({ collaboratorInfo: { id: 5, name: 'Flip' } });
  const c = createProviderCreator(cfg);
  try {
  for (let i = 0; i < 5; i++) {
    const prov = await c({ objectType: 'postType/post', objectId: '14', ydoc, awareness, Y });
    ydoc.getText('flip').insert(0, String(i));
    await until(() => eo.ydoc.getText('flip').length === i + 1);
    assert.ok(await until(() => eo.awareness.getStates().get(ydoc.clientID)?.collaboratorInfo?.name === 'Flip'), `awareness back after re-create ${i}`);
    prov.destroy();
    assert.ok(await until(() => !eo.awareness.getStates().has(ydoc.clientID)), `awareness gone after destroy ${i}`);
  }
  assert.equal(eo.ydoc.getText('flip').toString(), '43210');
  assert.equal(ydoc._observers.get('update')?.size ?? 0, 0, 'no listener left on the doc');
  } finally { awareness.destroy(); other.unloadAll(); }
});

test('register: replace or append; disabled config adds nothing', T, async () => {
  const cfg = config();
  const poll = async () => ({ destroy() {}, on() {} });
  const h1 = createHooks(); register(cfg, { hooks: h1 });
  assert.equal(h1.applyFilters('sync.providers', [poll]).length, 1);
  assert.notEqual(h1.applyFilters('sync.providers', [poll])[0], poll);
  const h2 = createHooks(); register(cfg, { hooks: h2, mode: 'append' });
  const both = h2.applyFilters('sync.providers', [poll]);
  assert.equal(both.length, 2); assert.equal(both[0], poll);
  const h3 = createHooks();
  assert.equal(register({ ...cfg, yjs: { enabled: false } }, { hooks: h3 }), false);
  assert.deepEqual(h3.applyFilters('sync.providers', [poll]), [poll]);
  // Appended next to a (fake) polling provider, both run on one doc and the manager still converges.
  const A = editor(cfg, { id: 1 }, { mode: 'append', defaults: [poll] }), B = editor(cfg, { id: 2 });
  const [ea, eb] = await Promise.all([A.load('postType/post', '15'), B.load('postType/post', '15')]);
  assert.equal(ea.providers.length, 2);
  text(ea.ydoc).insert(0, 'both');
  assert.ok(await until(() => eb.ydoc.getMap('document').get('content')?.toString() === 'both'));
  A.unloadAll(); B.unloadAll();
});

test('relayd closing a room at token expiry (4001 "token expired") is re-minted without an error status; no edit lost', T, async () => {
  let minted = 0;
  const short = () => relay.token({ ttl: 2 });
  const cfg = config({ fetchToken: async () => { minted++; return short(); } }, short());
  const A = editor(cfg, { id: 1 }), B = editor(config({ roomPrefix: cfg.yjs.roomPrefix }), { id: 2 });
  const [ea, eb] = await Promise.all([A.load('postType/post', '16'), B.load('postType/post', '16')]);
  const pa = ea.providers[0].provider;
  let i = 0;
  const typing = setInterval(() => text(ea.ydoc).insert(text(ea.ydoc).length, String(i++ % 10)), 50);
  try {
    assert.ok(await until(() => pa.lastClose?.code === 4001, 12000), 'relayd closed the expired token');
    assert.equal(pa.lastClose.reason, 'token expired');
    assert.ok(await until(() => lastStatus(ea).status === 'connected', 5000));
  } finally { clearInterval(typing); }
  assert.ok(minted >= 2);
  assert.deepEqual(statuses(ea).filter((s) => s && s.startsWith('disconnected')), [], 'no disconnected status for a routine expiry');
  assert.ok(await until(() => text(eb.ydoc).toString() === text(ea.ydoc).toString() && text(ea.ydoc).length === i, 5000), 'every keystroke arrived');
  A.unloadAll(); B.unloadAll();
});

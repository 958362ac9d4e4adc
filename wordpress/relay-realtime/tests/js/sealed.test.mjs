// End-to-end encrypted rooms: the provider's sealed mode against relayd, driven by the double of
// Gutenberg's sync manager with Debian's Yjs; relayd stores and relays only ciphertext.
import test from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import crypto from 'node:crypto';
import { Relay, Y, WebSocket, SyncManagerDouble, createHooks, text, until, sleep } from './harness.mjs';
import { register, liveProviders } from '../../assets/js/yjs-provider.js';
import { MSG, decodeMessage, encodeSyncRequest, encodeUpdate } from '../../assets/js/sealed-room.js';

let relay;
const T = { timeout: 40000 };
const SECRET = 'Geheimnis-4711-' + crypto.randomBytes(4).toString('hex');
test.before(async () => { relay = await Relay.start(['--yjs-e2e-compact-entries', '25']); });
test.after(async () => { for (const p of liveProviders) p.destroy(); await relay?.close(); WebSocket.terminateAll(); });

/** Every frame any client sends or receives, to search for plaintext. */
const wire = [];
class RecordingWebSocket extends WebSocket {
  constructor(...a) {
    super(...a);
    this.on('message', (d) => wire.push(Buffer.from(d)));
  }
  send(data, ...rest) { wire.push(Buffer.from(data)); return super.send(data, ...rest); }
}

const FAST = { syncTimeoutMs: 3000, retryBaseMs: 200, retryMaxMs: 1000 };
let seq = 0;
const key = () => ({ kid: 'k1', key: crypto.randomBytes(32).toString('base64url') });
/** A config for one post: the room's key (or none), like WordPress localizes it for an editor. */
function config(prefix, keys, { tok = relay.token(), objectTypes } = {}) {
  const room = `${prefix}postType/post:1`;
  return { url: relay.url, siteId: relay.site.siteId, token: tok.token, exp: tok.exp, WebSocket: RecordingWebSocket,
    yjs: { enabled: true, roomPrefix: prefix, ...FAST },
    e2e: { site: relay.site.siteId, keys: keys ? { [room]: keys } : {}, objectTypes } };
}
function editor(cfg, user) {
  const hooks = createHooks();
  assert.equal(register(cfg, { hooks }), true);
  return new SyncManagerDouble({ hooks, user });
}
const provider = (e) => e.providers[0].provider;
const content = (e) => e.ydoc.getMap('document').get('content')?.toString();
function type(e, s) { for (const ch of s) text(e.ydoc).insert(text(e.ydoc).length, ch); }

/** Rows relayd keeps for a room in yjs.sqlite (Python's sqlite3, read-only). */
function storedRows(room) {
  const py = `import sqlite3,sys,json
c=sqlite3.connect('file:'+sys.argv[1]+'?mode=ro',uri=True)
print(json.dumps([c.execute('select count(*) from yjs_update where room like ?',('%'+sys.argv[2],)).fetchone()[0],
 c.execute('select count(*) from yjs_snapshot where room like ?',('%'+sys.argv[2],)).fetchone()[0]]))`;
  return JSON.parse(execFileSync('python3', ['-c', py, join(relay.dataDir, 'yjs.sqlite'), room]).toString());
}
function diskBytes() {
  return Buffer.concat(['yjs.sqlite', 'yjs.sqlite-wal'].map((f) => join(relay.dataDir, f)).filter(existsSync).map((f) => readFileSync(f)));
}

test('two editors converge in an encrypted room; a late joiner converges from snapshot + log; relayd holds only ciphertext', T, async () => {
  const prefix = `e2e${process.pid}-${++seq}/`;
  const k = [key()];
  const A = editor(config(prefix, k), { id: 1, name: 'A' }), B = editor(config(prefix, k), { id: 2, name: 'B' });
  const [ea, eb] = await Promise.all([A.load('postType/post', '1'), B.load('postType/post', '1')]);
  const reports = [];
  const watch = (e, who) => provider(e).on('rejected', (r) => reports.push({ who, ...r }));
  watch(ea, 'A'); watch(eb, 'B');
  assert.equal(ea.statuses.filter(Boolean).at(-1).status, 'connected');
  assert.equal(provider(ea).debugState().encrypted, true);
  type(ea, `${SECRET} `);
  assert.ok(await until(() => content(eb) === `${SECRET} `), `B got A's text: ${content(eb)}`);
  type(eb, 'and more');
  const want = `${SECRET} and more`;
  assert.ok(await until(() => content(ea) === want && content(eb) === want), 'both converge');
  // Cursor awareness crosses, sealed.
  assert.ok(await until(() => ea.awareness.getStates().get(eb.ydoc.clientID)?.collaboratorInfo?.name === 'B'), 'A sees B in awareness');
  // More than 25 log entries: relayd asks a writer for a snapshot and drops the entries it covers.
  type(ea, '!'.repeat(40));
  const final = `${want}${'!'.repeat(40)}`;
  assert.ok(await until(() => content(eb) === final));
  assert.ok(await until(() => provider(ea).debugState().snapshotsStored + provider(eb).debugState().snapshotsStored >= 1, 8000), 'a snapshot was stored');
  const room = `${prefix}postType/post:1`;
  const edits = SECRET.length + 49;
  assert.ok(await until(() => storedRows(room)[0] < 25, 8000), `the log shrank: ${storedRows(room)[0]} rows for ${edits} edits`);
  assert.equal(storedRows(room)[1], 1, 'one snapshot row');
  // A late joiner after compaction: snapshot + what follows.
  A.unloadAll();
  const C = editor(config(prefix, k), { id: 3, name: 'C' });
  const ec = await C.load('postType/post', '1');
  watch(ec, 'C');
  assert.ok(await until(() => content(ec) === final), `late joiner converged: ${content(ec)}`);
  assert.equal(ec.ydoc.meta.get('hasProviderSyncedRemoteState'), true);
  type(ec, '?');
  assert.ok(await until(() => content(eb) === `${final}?`));
  const statuses = (e) => e.statuses.filter(Boolean).map((x) => x.status).join(',');
  for (const e of [eb, ec]) {
    assert.deepEqual(provider(e).debugState().rejected, { tampered: 0, replayed: 0, 'unknown-key': 0, malformed: 0 },
      `rejections: ${JSON.stringify(reports)}; statuses A ${statuses(ea)} B ${statuses(eb)} C ${statuses(ec)}`);
  }
  B.unloadAll(); C.unloadAll();
  await sleep(200);
  // Neither the file nor any frame on the wire holds the typed text.
  assert.ok(wire.length > 100, `frames recorded: ${wire.length}`);
  for (const f of wire) assert.equal(f.includes(SECRET), false, 'plaintext in a frame');
  assert.equal(diskBytes().includes(SECRET), false, 'plaintext in yjs.sqlite');
});

test('a joiner while a burst is still arriving (live entries overtaking its catch-up) converges on all of it', T, async () => {
  const prefix = `e2e${process.pid}-${++seq}/`;
  const k = [key()];
  const A = editor(config(prefix, k), { id: 1, name: 'A' });
  const ea = await A.load('postType/post', '1');
  // 400 keystrokes at once: relayd admits 200 and then 50/s (the client publish rate), so the
  // joiner's catch-up and the live broadcasts of the rest interleave.
  for (let i = 0; i < 400; i++) text(ea.ydoc).insert(text(ea.ydoc).length, String.fromCharCode(97 + (i % 26)));
  await sleep(300);
  const B = editor(config(prefix, k), { id: 2, name: 'B' });
  const eb = await B.load('postType/post', '1');
  assert.ok(await until(() => content(eb) === content(ea), 20000), `B converged: ${content(eb)?.length} of ${content(ea).length}`);
  assert.deepEqual(provider(eb).debugState().rejected, { tampered: 0, replayed: 0, 'unknown-key': 0, malformed: 0 });
  A.unloadAll(); B.unloadAll();
});

test('control: in a plain room the same search finds the text in yjs.sqlite and on the wire', T, async () => {
  const prefix = `plain${process.pid}-${++seq}/`;
  const cfg = config(prefix, null);
  delete cfg.e2e;
  wire.length = 0;
  const A = editor(cfg, { id: 1, name: 'A' });
  const ea = await A.load('postType/post', '1');
  text(ea.ydoc).insert(0, `${SECRET}-plain`);
  assert.ok(await until(() => diskBytes().includes(`${SECRET}-plain`)), 'plain text on disk');
  assert.ok(wire.some((f) => f.includes(`${SECRET}-plain`)), 'plain text on the wire');
  A.unloadAll();
});

test('a tampered, replayed or moved ciphertext is rejected and reported, not applied', T, async () => {
  const p1 = `e2e${process.pid}-${++seq}/`, p2 = `e2e${process.pid}-${++seq}/`;
  const k = [key()];
  const A = editor(config(p1, k), { id: 1, name: 'A' }), B = editor(config(p1, k), { id: 2, name: 'B' });
  const D = editor(config(p2, k), { id: 4, name: 'D' });  // same key, another room: only the room in the AD differs
  const [ea, eb, ed] = await Promise.all([A.load('postType/post', '1'), B.load('postType/post', '1'), D.load('postType/post', '1')]);
  const reports = [];
  provider(eb).on('rejected', (r) => reports.push(r));
  const dReports = [];
  provider(ed).on('rejected', (r) => dReports.push(r));
  // A rogue writer with a valid token (but no key) listens to room 1 and captures A's update.
  const rogue = (prefix) => new Promise((res, rej) => {
    const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/yjs/${prefix}postType/post:1?e2e=1&auth=${relay.token({ user: '9' }).token}`);
    ws.binaryType = 'arraybuffer';
    const got = [];
    ws.on('message', (d) => got.push(decodeMessage(new Uint8Array(d))));
    ws.on('open', () => { ws.send(encodeSyncRequest(0)); res({ ws, got }); });
    ws.on('error', rej);
  });
  const r1 = await rogue(p1), r2 = await rogue(p2);
  text(ea.ydoc).insert(0, 'x');
  assert.ok(await until(() => content(eb) === 'x'));
  assert.ok(await until(() => r1.got.some((m) => m.type === MSG.LOG_ENTRY)));
  const captured = r1.got.filter((m) => m.type === MSG.LOG_ENTRY).at(-1).sealed;
  // Replayed into the same room: a new sequence, the same writer counter.
  r1.ws.send(encodeUpdate(captured));
  assert.ok(await until(() => reports.some((r) => r.reason === 'replayed')), `replay reported: ${JSON.stringify(reports)}`);
  // Altered: one ciphertext byte flipped.
  const altered = Uint8Array.from(captured);
  altered[altered.length - 5] ^= 1;
  r1.ws.send(encodeUpdate(altered));
  assert.ok(await until(() => reports.some((r) => r.reason === 'tampered')), `tamper reported: ${JSON.stringify(reports)}`);
  // Moved to another room sealed under the same key.
  r2.ws.send(encodeUpdate(captured));
  assert.ok(await until(() => dReports.some((r) => r.reason === 'tampered')), `move reported: ${JSON.stringify(dReports)}`);
  await sleep(200);
  assert.equal(content(eb), 'x', 'nothing of it applied in room 1');
  assert.equal(content(ed), undefined, 'nothing of it applied in room 2');
  assert.equal(provider(eb).status.status, 'connected', 'a rejection is reported, the connection stays');
  r1.ws.close(); r2.ws.close();
  A.unloadAll(); B.unloadAll(); D.unloadAll();
});

test('an editor without the key gets authentication-failed and never connects', T, async () => {
  const prefix = `e2e${process.pid}-${++seq}/`;
  const cfg = config(prefix, null, { objectTypes: ['postType/*'] });
  const A = editor(cfg, { id: 5, name: 'NoKey' });
  const ea = await A.load('postType/post', '1');
  const last = ea.statuses.filter(Boolean).at(-1);
  assert.equal(last.status, 'disconnected');
  assert.equal(last.error?.code, 'authentication-failed');
  assert.equal(provider(ea).debugState().connects, 0);
  A.unloadAll();
});

test('a room may be named in full: /yjs/site:<id>:yjs-e2e:<room> is the encrypted room, /yjs/site:<id>:yjs:<room> the plain one', T, async () => {
  const sid = relay.site.siteId;
  const open = (path) => new Promise((res) => {
    const ws = new WebSocket(`${relay.url.replace('http', 'ws')}/yjs/${path}`);
    ws.binaryType = 'arraybuffer';
    const got = [];
    let closed = null;
    ws.on('message', (d) => got.push(new Uint8Array(d)));
    ws.on('close', (code) => { closed = code; });
    ws.on('open', () => res({ ws, got, closed: () => closed }));
    ws.on('error', () => res({ ws, got, closed: () => closed ?? -1 }));
  });
  const auth = relay.token().token;
  // The encrypted room by its full name: the encrypted protocol answers (synced).
  const sealed = await open(`site:${sid}:yjs-e2e:full/post:1?auth=${auth}`);
  sealed.ws.send(encodeSyncRequest(0));
  assert.ok(await until(() => sealed.got.some((m) => decodeMessage(m).type === MSG.SYNCED)), `closed ${sealed.closed()}`);
  sealed.ws.close();
  // The plain room by its full name: y-websocket's protocol (the relay opens with sync step 1: 0x00 0x00).
  const plain = await open(`site:${sid}:yjs:full/post:1?auth=${auth}`);
  assert.ok(await until(() => plain.got.some((m) => m[0] === 0 && m[1] === 0)), `closed ${plain.closed()}`);
  plain.ws.close();
  // ?e2e=1 with a full plain name, or another site's full name: refused 4004.
  for (const path of [`site:${sid}:yjs:full/post:1?e2e=1&auth=${auth}`, `site:${'0'.repeat(64)}:yjs-e2e:x?auth=${auth}`]) {
    const bad = await open(path);
    assert.ok(await until(() => bad.closed() !== null), path);
    assert.equal(bad.closed(), 4004, path);
  }
});

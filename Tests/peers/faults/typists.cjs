// Real y-websocket clients (Debian node-y-websocket + node-ws + node-yjs) typing into relayd's
// /yjs rooms while run_fault_tests.py kills relayd or breaks its disk.
//
// Usage: node typists.cjs '<json config>'   (config: url, site_id, jwt_secret, rooms, per_room, interval_ms)
// Then one JSON command per line on stdin, one JSON answer per line on stdout:
//   {"cmd":"start"}                 clients connect, sync, and start typing
//   {"cmd":"state"}                 per client: connected, synced, typed, acknowledged (mirror) counts, closes
//   {"cmd":"hold"}                  provider.disconnect() (no more reconnects); waits until every
//                                   socket is closed, then reports each client's mirror (see below)
//   {"cmd":"release"}               reconnects (provider.connect(): what y-websocket does by itself after a backoff)
//   {"cmd":"stop"}                  stops typing
//   {"cmd":"converge","ms":n}       waits until, per room, every client is synced and all have the same text
//                                   holding every token typed in the room exactly once
//   {"cmd":"fresh","rooms":[..]}    a new client per room: its text, as relayd gave it (sync step 2)
//   {"cmd":"exit"}
//
// Each client types tokens "<room>c<i>n<k> " (one insert each) at the end of the shared Y.Text "t".
// Its "mirror" is a second Y.Doc into which it applies only the sync step 2 / update messages it
// RECEIVED from relayd: exactly what relayd stored and broadcast (acknowledged), nothing local.
const Y = require('yjs');
const { WebsocketProvider } = require('y-websocket');
const WebSocket = require('ws');
const decoding = require('lib0/decoding');
const crypto = require('crypto');
const readline = require('readline');

const cfg = JSON.parse(process.argv[2]);
const TOKEN_RE = /[A-Za-z0-9_-]+c\d+n\d+/g;
const b64url = (b) => Buffer.from(b).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
function token(user) {
  const siteID = cfg.site_id;
  const now = Math.floor(Date.now() / 1000);
  const claims = { site_id: siteID, user_id: user, v: 2, iat: now, exp: now + 3600,
    allowed_channel_prefixes: [`site:${siteID}:yjs:`], allowed_publish_prefixes: [`site:${siteID}:yjs:`] };
  const h = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' })), p = b64url(JSON.stringify(claims));
  return `${h}.${p}.${b64url(crypto.createHmac('sha256', cfg.jwt_secret).update(`${h}.${p}`).digest())}`;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (pred()) return true; await sleep(25); }
  return pred();
}
const tokensOf = (s) => s.match(TOKEN_RE) || [];

// A WebSocket class per client that copies every update relayd sends into the client's mirror.
function tappedWS(c) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.on('message', (data) => {
        try {
          const buf = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
          const d = decoding.createDecoder(buf);
          if (decoding.readVarUint(d) !== 0) return;           // sync messages only
          const t = decoding.readVarUint(d);
          if (t !== 1 && t !== 2) return;                       // step 2 or update: relayd's state
          Y.applyUpdate(c.mirror, decoding.readVarUint8Array(d));
          c.received++;
        } catch (e) { c.tapErrors.push(String(e)); }
      });
    }
  };
}

function client(room, user, opts = {}) {
  const c = { room, user, doc: new Y.Doc(), mirror: new Y.Doc(), typed: [], closes: [], received: 0, tapErrors: [], typing: false };
  c.provider = new WebsocketProvider(cfg.url.replace(/^http/, 'ws') + '/yjs', room, c.doc,
    { WebSocketPolyfill: tappedWS(c), params: { auth: token(user) }, disableBc: true, connect: true, maxBackoffTime: opts.maxBackoff || 1000 });
  c.provider.on('connection-close', (e) => { if (e) c.closes.push({ code: e.code, reason: String(e.reason || '') }); });
  c.text = () => c.doc.getText('t').toString();
  c.mirrorText = () => c.mirror.getText('t').toString();
  return c;
}

const clients = [];
let typingOn = false;
async function typeLoop(c, idx) {
  const t = c.doc.getText('t');
  let k = 0;
  await sleep(Math.floor(Math.random() * cfg.interval_ms));
  while (typingOn) {
    const tok = `${c.tag}n${k++}`;
    t.insert(t.length, tok + ' ');
    c.typed.push(tok);
    await sleep(cfg.interval_ms * (0.5 + Math.random()));   // a typing-ish rhythm around interval_ms
  }
}

function summary(c, withTokens) {
  const s = { room: c.room, user: c.user, connected: c.provider.wsconnected, synced: c.provider.synced,
    typed: c.typed.length, acknowledged: tokensOf(c.mirrorText()).length, received: c.received, closes: c.closes.slice(-5),
    close_count: c.closes.length, tap_errors: c.tapErrors.slice(0, 3) };
  if (withTokens) { s.typed_tokens = c.typed.slice(); s.mirror_tokens = tokensOf(c.mirrorText()); }
  return s;
}

const commands = {
  async start() {
    cfg.rooms.forEach((room, r) => {
      for (let i = 0; i < cfg.per_room; i++) {
        const c = client(room, `${cfg.user_prefix || 'u'}${r}-${i}`);
        c.tag = `${cfg.tag_prefix || 'r'}${r}c${i}`;
        clients.push(c);
      }
    });
    const ok = await until(() => clients.every((c) => c.provider.synced), 10000);
    typingOn = true;
    clients.forEach((c, i) => typeLoop(c, i));
    return { synced: ok, clients: clients.length };
  },
  async state() { return { clients: clients.map((c) => summary(c, false)) }; },
  async hold() {
    for (const c of clients) c.provider.disconnect();   // shouldConnect = false, and closes an open socket
    const closed = await until(() => clients.every((c) => c.provider.ws === null), 5000);
    return { closed, clients: clients.map((c) => summary(c, true)) };
  },
  async release() { for (const c of clients) c.provider.connect(); return {}; },
  async stop() { typingOn = false; await sleep(50); return { clients: clients.map((c) => summary(c, false)) }; },
  async converge(cmd) {
    const rooms = [...new Set(clients.map((c) => c.room))];
    const want = {};
    for (const room of rooms) want[room] = new Set(clients.filter((c) => c.room === room).flatMap((c) => c.typed));
    const roomOK = (room) => {
      const cs = clients.filter((c) => c.room === room);
      if (!cs.every((c) => c.provider.synced)) return false;
      const t0 = cs[0].text();
      if (!cs.every((c) => c.text() === t0)) return false;
      const toks = tokensOf(t0);
      return toks.length === want[room].size && toks.every((x) => want[room].has(x));
    };
    const ok = await until(() => rooms.every(roomOK), cmd.ms || 15000);
    const out = {};
    for (const room of rooms) {
      const cs = clients.filter((c) => c.room === room);
      const toks = tokensOf(cs[0].text());
      const seen = new Set(toks);
      out[room] = { ok: roomOK(room), typed: want[room].size, tokens: toks.length, duplicates: toks.length - seen.size,
        missing: [...want[room]].filter((x) => !seen.has(x)).slice(0, 10),
        same_text: cs.every((c) => c.text() === cs[0].text()), synced: cs.map((c) => c.provider.synced),
        closes: cs.map((c) => c.closes.length) };
    }
    return { ok, rooms: out };
  },
  async fresh(cmd) {
    const out = {};
    await Promise.all(cmd.rooms.map(async (room) => {
      const c = client(room, 'fresh-reader', { maxBackoff: 500 });
      const synced = await until(() => c.provider.synced, cmd.ms || 10000);
      out[room] = { synced, tokens: tokensOf(c.text()), closes: c.closes };
      c.provider.destroy();
    }));
    return { rooms: out };
  },
  async exit() { for (const c of clients) c.provider.destroy(); setTimeout(() => process.exit(0), 50); return {}; },
};

const rl = readline.createInterface({ input: process.stdin });
let chain = Promise.resolve();
rl.on('line', (line) => {
  chain = chain.then(async () => {
    let cmd;
    try { cmd = JSON.parse(line); } catch (e) { return; }
    let res;
    try { res = await commands[cmd.cmd](cmd); } catch (e) { res = { error: String(e && e.stack || e) }; }
    process.stdout.write(JSON.stringify({ cmd: cmd.cmd, ...res }) + '\n');
  });
});
rl.on('close', () => { for (const c of clients) c.provider.destroy(); process.exit(0); });

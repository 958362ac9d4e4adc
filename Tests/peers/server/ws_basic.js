// Second independent client: Node's `ws` package (Debian, NODE_PATH=/usr/share/nodejs)
// and Node's own crypto/http. Runs the basic wordsocket flow against a real relayd
// and prints what it observed as JSON.
'use strict';
const crypto = require('crypto');
const http = require('http');
const WebSocket = require('ws');

const CFG = JSON.parse(process.env.RELAY_PEER_CONFIG || '{}');
const SITE = CFG.site;
const PORT = CFG.port;
const ENVELOPE = '{"v":1,"p":"ab\\/cd=="}';

const sha256hex = (s) => crypto.createHash('sha256').update(s).digest('hex');
const b64u = (buf) => Buffer.from(buf).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');

function mint(site, { ttl = 300, siteID = null, secret = null } = {}) {
  const now = Math.floor(Date.now() / 1000);
  const sid = siteID || sha256hex('site:' + site.site_key);
  const claims = {
    tenant_id: sha256hex('tenant:' + site.site_key), site_id: sid, user_id: '7',
    allowed_channel_prefixes: [`site:${sid}:`], allowed_publish_prefixes: [`site:${sid}:`],
    v: 2, iat: now, exp: now + ttl,
  };
  const h = b64u(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const p = b64u(JSON.stringify(claims));
  const sig = b64u(crypto.createHmac('sha256', secret || site.jwt_secret).update(`${h}.${p}`).digest());
  return `${h}.${p}.${sig}`;
}

function request(method, path, body, headers) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: PORT, method, path, headers, timeout: 5000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

function publish(site, body) {
  const ts = String(Date.now());
  const sign = crypto.createHmac('sha256', site.publish_secret).update(Buffer.concat([Buffer.from(body), Buffer.from('.' + ts)])).digest('hex');
  return request('POST', '/publish', body, {
    'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
    'X-WP-Signal-Key': site.site_key, 'X-WP-Signal-Ts': ts, 'X-WP-Signal-Sign': sign,
  });
}

// A client that queues every frame (text as string, binary as hex) and its close.
function open(token) {
  const ws = new WebSocket(`ws://127.0.0.1:${PORT}/ws?token=${encodeURIComponent(token)}`);
  const c = { ws, frames: [], waiters: [], closed: null };
  const wake = () => { const w = c.waiters; c.waiters = []; w.forEach((f) => f()); };
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? null : data.toString('utf8');
    if (text === '{"type":"ping"}') return;
    c.frames.push(isBinary ? { binary: Buffer.from(data).toString('hex') } : text);
    wake();
  });
  ws.on('close', (code, reason) => { c.closed = { code, reason: reason.toString() }; wake(); });
  ws.on('error', () => {});
  c.opened = new Promise((resolve) => { ws.on('open', () => resolve(true)); ws.on('close', () => resolve(false)); });
  c.next = (ms = 5000) => new Promise((resolve) => {
    let done = false;
    const take = () => {
      if (done) return true;
      if (c.frames.length) { done = true; resolve(c.frames.shift()); return true; }
      if (c.closed) { done = true; resolve(null); return true; }
      return false;
    };
    if (take()) return;
    const t = setTimeout(() => { done = true; resolve(null); }, ms);
    const waiter = () => { if (take()) clearTimeout(t); else c.waiters.push(waiter); };
    c.waiters.push(waiter);
  });
  c.nextWhere = async (pred, ms = 5000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      const f = await c.next(end - Date.now());
      if (f === null) return null;
      if (pred(f)) return f;
    }
    return null;
  };
  c.close = (ms = 6000) => new Promise((resolve) => {
    if (c.closed) return resolve(c.closed);
    const t = setTimeout(() => resolve({ code: null, reason: 'timeout' }), ms);
    ws.on('close', (code, reason) => { clearTimeout(t); resolve({ code, reason: reason.toString() }); });
  });
  return c;
}

const isMessage = (f) => typeof f === 'string' && JSON.parse(f).type === 'message';

async function main() {
  const r = {};
  const sid = SITE.site_id;
  r.site_id_derived = sha256hex('site:' + SITE.site_key);

  const a = open(mint(SITE));
  const b = open(mint(SITE));
  r.a_open = await a.opened;
  r.b_open = await b.opened;
  a.ws.send(JSON.stringify({ type: 'subscribe', channels: ['events'] }));
  b.ws.send(JSON.stringify({ type: 'subscribe', channels: [`site:${sid}:events`] }));
  r.a_subscribed = await a.next();
  r.b_subscribed = await b.next();

  const body = `{"channel":"events","event":"encrypted","data":${ENVELOPE}}`;
  const res = await publish(SITE, body);
  r.publish = { status: res.status, body: JSON.parse(res.body) };
  r.a_msg = await a.nextWhere(isMessage);
  r.b_msg = await b.nextWhere(isMessage);

  // Binary: echoed to the sender, delivered to the other subscriber.
  const ch = Buffer.from('events');
  const payload = Buffer.from([0, 1, 2, 0xfe, 0xff, 0x7b]);
  const frame = Buffer.concat([Buffer.from([ch.length >> 8, ch.length & 0xff]), ch, payload]);
  a.ws.send(frame, { binary: true });
  r.binary_sent = frame.toString('hex');
  r.binary_a = await a.nextWhere((f) => typeof f === 'object');
  r.binary_b = await b.nextWhere((f) => typeof f === 'object');

  // Client publish.
  b.ws.send('{"type":"message","channel":"events","event":"node.chat","data":{"from":"node"}}');
  r.client_msg_a = await a.nextWhere(isMessage);

  // Refusals.
  const bad = open(mint(SITE, { secret: 'f'.repeat(64) }));
  r.bad_token = await bad.close();
  const unknown = open(mint(SITE, { siteID: sha256hex('site:' + 'a'.repeat(32)) }));
  r.unknown_site = await unknown.close();

  const health = await request('GET', '/healthz', null, { Origin: 'https://wp.example' });
  r.healthz = { status: health.status, body: JSON.parse(health.body), acao: health.headers['access-control-allow-origin'] || null };

  a.ws.close(1000);
  b.ws.close(1000);
  r.a_close = await a.close();
  return r;
}

const guard = setTimeout(() => { console.log(JSON.stringify({ error: 'node peer timed out' })); process.exit(2); }, 30000);
main().then((r) => { clearTimeout(guard); console.log(JSON.stringify(r)); process.exit(0); },
  (e) => { clearTimeout(guard); console.log(JSON.stringify({ error: String(e && e.stack || e) })); process.exit(1); });

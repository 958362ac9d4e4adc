// Real y-websocket clients (Debian node-y-websocket, node-yjs, node-ws) on relayd's /yjs/{room},
// holding tokens minted by the plugin. Usage: node yjs-session.cjs '{"url","room","neighbour_room","writer","reader","outsider"}'
// Prints one JSON object with what the clients observed.
const Y = require('yjs');
const { WebsocketProvider } = require('y-websocket');
const WebSocket = require('ws');

const cfg = JSON.parse(process.argv[2]);
const warnings = [];
console.warn = (...a) => warnings.push(a.join(' '));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function until(pred, ms = 5000) {
  const end = Date.now() + ms;
  while (Date.now() < end) { if (pred()) return true; await sleep(20); }
  return pred();
}
function client(token, room = cfg.room) {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(cfg.url.replace(/^http/, 'ws') + '/yjs', room, doc,
    { WebSocketPolyfill: WebSocket, params: { auth: token }, disableBc: true, connect: true, maxBackoffTime: 60000 });
  const closes = [];
  provider.on('connection-close', (e) => { if (e) closes.push(e.code); });
  return { doc, provider, closes, text: () => doc.getText('t').toString() };
}
(async () => {
  const out = {};
  const w = client(cfg.writer);
  out.writer_synced = await until(() => w.provider.synced);
  w.doc.getText('t').insert(0, 'from-writer;');
  const r = client(cfg.reader);
  out.reader_synced = await until(() => r.provider.synced);
  out.reader_saw_writer = await until(() => r.text().includes('from-writer'));
  r.doc.getText('t').insert(0, 'from-reader;');
  out.writer_saw_reader = await until(() => w.text().includes('from-reader'), 1500);
  out.reader_denied = warnings.some((m) => m.includes('Permission denied'));
  const o = client(cfg.outsider);
  await until(() => o.closes.length > 0, 5000);
  out.outsider_closes = o.closes.slice(0, 1);
  out.outsider_synced = o.provider.synced;
  // The editor's token names its post's room; a room whose name merely starts with it
  // (post 12 → post 120) is another post's and must be refused.
  const n = client(cfg.writer, cfg.neighbour_room);
  await until(() => n.closes.length > 0, 5000);
  out.neighbour_closes = n.closes.slice(0, 1);
  out.writer_text = w.text();
  for (const c of [w, r, o, n]) { c.provider.shouldConnect = false; c.provider.destroy(); }
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
})().catch((e) => { process.stdout.write(JSON.stringify({ error: String(e) }) + '\n'); process.exit(1); });

// Encrypted vs plain Yjs rooms through one relayd, in one run (issue 18, item 5): the plugin's
// provider (yjs-provider.js) driven by the double of Gutenberg's sync manager with Debian's Yjs.
//   late join: a new editor loads a post that K keystrokes built (one transaction each) after the
//     typist left: ms from load() to having the whole text, and bytes it received;
//   keystroke → remote: the typist types N characters at R/s; ms from the insert to the moment
//     the other editor's document has it (same process, same clock), p50 / p99.
// Rounds interleave the two modes. Prints one JSON document; progress on stderr.
// Usage: RELAYD_BIN=.build/release/relayd NODE_PATH=/usr/share/nodejs node Benchmarks/yjs/e2e/bench.mjs [--rounds 3] [--keys 3000] [--typed 300] [--rate 20]
import crypto from 'node:crypto';
import { Relay, SyncManagerDouble, createHooks, text, until, sleep, WebSocket } from '../../../wordpress/relay-realtime/tests/js/harness.mjs';
import { register, liveProviders } from '../../../wordpress/relay-realtime/assets/js/yjs-provider.js';

const argv = process.argv.slice(2);
const opt = (n, d) => { const i = argv.indexOf(`--${n}`); return i >= 0 ? Number(argv[i + 1]) : d; };
const ROUNDS = opt('rounds', 3), KEYS = opt('keys', 3000), TYPED = opt('typed', 300), RATE = opt('rate', 20);
const log = (...a) => process.stderr.write(a.join(' ') + '\n');
const q = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s.length ? s[Math.min(s.length - 1, Math.floor(p * (s.length - 1) + 0.5))] : null; };
const r2 = (x) => Math.round(x * 100) / 100;

// The document is typed as fast as the provider sends: lift the client publish rate (50/s by default).
const relay = await Relay.start(['--site-client-publish-rate', '100000', '--site-client-publish-burst', '100000']);
const FAST = { syncTimeoutMs: 10000, retryBaseMs: 200, retryMaxMs: 1000 };
function editor(mode, prefix, key, user) {
  const tok = relay.token();
  const room = `${prefix}postType/post:1`;
  const cfg = { url: relay.url, siteId: relay.site.siteId, token: tok.token, exp: tok.exp, WebSocket, yjs: { enabled: true, roomPrefix: prefix, ...FAST } };
  if (mode === 'encrypted') cfg.e2e = { site: relay.site.siteId, keys: { [room]: [{ kid: 'k1', key }] } };
  const hooks = createHooks();
  register(cfg, { hooks });
  return new SyncManagerDouble({ hooks, user: { id: user, name: `U${user}` } });
}
const content = (e) => e.ydoc.getMap('document').get('content')?.toString() ?? '';

async function round(mode, i) {
  const prefix = `bench-${mode}-${i}-${process.pid}/`;
  const key = crypto.randomBytes(32).toString('base64url');
  // Build the document: K keystrokes, one transaction each, by a typist that then leaves.
  const A = editor(mode, prefix, key, 1);
  const ea = await A.load('postType/post', '1');
  for (let k = 0; k < KEYS; k++) { text(ea.ydoc).insert(text(ea.ydoc).length, String.fromCharCode(97 + (k % 26))); if (k % 100 === 99) await sleep(5); }
  const built = content(ea);
  const B = editor(mode, prefix, key, 2);
  const eb = await B.load('postType/post', '1');
  if (!await until(() => content(eb) === built, 60000)) {
    throw new Error(`${mode}: B never got the document (${content(eb).length}/${built.length}): A ${JSON.stringify(ea.providers[0].provider.debugState())} B ${JSON.stringify(eb.providers[0].provider.debugState())}`);
  }
  await sleep(500);  // let a snapshot request (encrypted) finish
  // Keystroke → remote at RATE/s.
  const sent = new Map(); const lat = [];
  eb.ydoc.getMap('document').get('content').observe(() => {
    const t = performance.now();
    const s = content(eb);
    for (const [len, at] of sent) if (s.length >= len) { lat.push(t - at); sent.delete(len); }
  });
  for (let k = 0; k < TYPED; k++) {
    text(ea.ydoc).insert(text(ea.ydoc).length, 'x');
    sent.set(text(ea.ydoc).length, performance.now());
    await sleep(1000 / RATE);
  }
  await until(() => sent.size === 0, 5000);
  const final = content(ea);
  A.unloadAll(); B.unloadAll();
  await sleep(300);
  // Late join after everyone left.
  const C = editor(mode, prefix, key, 3);
  const t0 = performance.now();
  const ec = await C.load('postType/post', '1');
  if (!await until(() => content(ec) === final, 60000, 1)) throw new Error(`${mode}: late joiner never converged`);
  const joinMs = performance.now() - t0;
  const bytesIn = ec.providers[0].provider.debugState().bytesIn;
  C.unloadAll();
  return { mode, round: i, docChars: final.length, lateJoinMs: r2(joinMs), lateJoinBytes: bytesIn, keystrokes: lat.length,
    p50Ms: r2(q(lat, 0.5)), p99Ms: r2(q(lat, 0.99)) };
}

const results = [];
try {
  for (let i = 1; i <= ROUNDS; i++) {
    for (const mode of i % 2 ? ['plain', 'encrypted'] : ['encrypted', 'plain']) {
      const r = await round(mode, i);
      log(JSON.stringify(r));
      results.push(r);
    }
  }
} finally {
  for (const p of liveProviders) p.destroy();
  WebSocket.terminateAll();
  await relay.close();
}
const med = (mode, k) => q(results.filter((r) => r.mode === mode).map((r) => r[k]), 0.5);
const summary = {};
for (const k of ['lateJoinMs', 'lateJoinBytes', 'p50Ms', 'p99Ms']) summary[k] = { plain: med('plain', k), encrypted: med('encrypted', k), ratio: r2(med('encrypted', k) / med('plain', k)) };
console.log(JSON.stringify({ when: new Date().toISOString(), keys: KEYS, typed: TYPED, rate: RATE, rounds: ROUNDS, results, summary }, null, 1));
process.exit(0);

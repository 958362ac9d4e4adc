// relayd's /yjs caps seen through the provider: the close codes and the editor error codes come from the vector file.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Relay, Y, WebSocket, until, closeCodesJSON } from './harness.mjs';
import { createProviderCreator } from '../../assets/js/yjs-provider.js';

const T = { timeout: 30000 };
const vec = Object.fromEntries(closeCodesJSON().codes.map((c) => [c.name, c]));
let relay;
const live = [];
test.before(async () => {
  relay = await Relay.start(['--yjs-max-connections-per-room', '2', '--yjs-max-collaborators-per-room', '1', '--yjs-max-update-bytes', '4096']);
});
test.after(async () => { for (const p of live) p.destroy(); await relay?.close(); WebSocket.terminateAll(); });

async function provider(room, user) {
  const t = relay.token({ user });
  const ydoc = new Y.Doc({ meta: new Map() });
  const p = await createProviderCreator({ url: relay.url, token: t.token, exp: t.exp, WebSocket, yjs: { roomPrefix: 'caps/', syncTimeoutMs: 1500, retryBaseMs: 300, retryMaxMs: 600 } })(
    { objectType: 'postType/post', objectId: room, ydoc, Y });
  const seen = [];
  p.on('status', (s) => seen.push(s));
  live.push(p);
  return { p, ydoc, seen, last: () => seen.at(-1) };
}

test('room connection cap and collaborator cap → connection-limit-exceeded with automatic retry', T, async () => {
  const a = await provider('1', 'u1'), b = await provider('1', 'u1');
  assert.equal(a.last().status, 'connected'); assert.equal(b.last().status, 'connected');
  const c = await provider('1', 'u1');
  assert.ok(await until(() => c.p.provider.lastClose, 5000));
  assert.equal(c.p.provider.lastClose.code, vec.room_full.code);
  // The refusal's status; the automatic retry may already have moved on to 'connecting'.
  const refused = (x) => x.seen.filter((s) => s && s.status === 'disconnected' && s.error).at(-1);
  assert.ok(await until(() => refused(c), 5000), `statuses: ${JSON.stringify(c.seen)}`);
  assert.equal(refused(c).error.code, vec.room_full.provider_error);
  assert.equal(typeof refused(c).willAutoRetryInMs, 'number');
  c.p.destroy();
  const d = await provider('2', 'u1');
  assert.equal(d.last().status, 'connected');
  const e = await provider('2', 'u2');
  assert.ok(await until(() => e.p.provider.lastClose, 5000));
  assert.equal(e.p.provider.lastClose.code, vec.too_many_collaborators.code);
  assert.ok(await until(() => refused(e), 5000), `statuses: ${JSON.stringify(e.seen)}`);
  assert.equal(refused(e).error.code, vec.too_many_collaborators.provider_error);
  assert.equal(typeof refused(e).willAutoRetryInMs, 'number');
});

test('an update over relayd\'s cap → document-size-limit-exceeded, no retry; the document is unharmed', T, async () => {
  const a = await provider('3', 'u1'), b = await provider('3', 'u1');
  a.ydoc.getText('t').insert(0, 'small');
  assert.ok(await until(() => b.ydoc.getText('t').toString() === 'small'));
  a.ydoc.getText('t').insert(5, 'x'.repeat(8000));
  assert.ok(await until(() => a.last().status === 'disconnected', 5000));
  assert.equal(a.p.provider.lastClose.code, vec.update_too_large.code);
  assert.equal(a.last().error.code, vec.update_too_large.provider_error);
  assert.equal(a.last().willAutoRetryInMs, undefined);
  assert.equal(b.ydoc.getText('t').toString(), 'small');
  assert.equal(b.last().status, 'connected');
});

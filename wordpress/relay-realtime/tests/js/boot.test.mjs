// boot.js as WordPress loads it: config printed first, wp.hooks present; defines only window.RelayRealtime.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createHooks } from './harness.mjs';

test('boot registers the provider from window.RelayRealtimeConfig and exposes window.RelayRealtime', async () => {
  const hooks = createHooks();
  globalThis.window = { wp: { hooks }, RelayRealtimeConfig: { url: 'http://127.0.0.1:9', token: 't', exp: 0, channels: [], yjs: { enabled: true } } };
  globalThis.WebSocket = class {};
  const before = new Set(Object.keys(globalThis.window));
  await import('../../assets/js/boot.js');
  const added = Object.keys(globalThis.window).filter((k) => !before.has(k));
  assert.deepEqual(added, ['RelayRealtime']);
  const R = globalThis.window.RelayRealtime;
  assert.equal(R.yjsRegistered, true);
  assert.equal(R.client, null, 'no channels: no connection');
  const creators = hooks.applyFilters('sync.providers', [async () => ({})]);
  assert.equal(creators.length, 1);
  assert.equal(creators[0].name, 'relayProviderCreator');
  assert.deepEqual(R.debugState(), { client: null, providers: [] });
  delete globalThis.window; delete globalThis.WebSocket;
});

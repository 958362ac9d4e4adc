// Test page: the editor's Yjs (Debian node-yjs via the import map) driving the provider like
// Gutenberg's sync manager, plus the client recording relay:* DOM events. Driven by Selenium.
import * as Y from 'yjs';
import { Awareness } from 'y-protocols/awareness';
import { register } from '/js/yjs-provider.js';
import { createClient } from '/js/client.js';

const hooks = (() => {
  const f = new Map();
  return { addFilter(n, ns, fn) { (f.get(n) || f.set(n, []).get(n)).push(fn); }, applyFilters(n, v) { for (const fn of f.get(n) || []) v = fn(v); return v; } };
})();

const T = {
  Y, statuses: [], events: [], entity: null, client: null,
  /** Loads one entity as the sync manager does: creators once, Promise.all, on('status') after resolve, macrotask, snapshot. */
  async load(config, objectType, objectId, user) {
    register(config, { hooks });
    let creators = hooks.applyFilters('sync.providers', []);
    creators = Array.isArray(creators) ? creators.filter((c) => typeof c === 'function') : [];
    const ydoc = new Y.Doc({ meta: new Map() });
    ydoc.getMap('document'); ydoc.getMap('state');
    const awareness = new Awareness(ydoc);
    awareness.setLocalState({ collaboratorInfo: { id: user.id, name: user.name, browserType: 'Chrome', enteredAt: Date.now() } });
    const providers = await Promise.all(creators.map(async (c) => {
      const p = await c({ objectType, objectId, ydoc, awareness, Y });
      p.on('status', (s) => T.statuses.push(s && (s.status + (s.error ? ':' + s.error.code : ''))));
      return p;
    }));
    await new Promise((r) => setTimeout(r, 0));
    ydoc.transact(() => ydoc.getMap('state').set('version', 1), 'syncManager');
    T.entity = { ydoc, awareness, providers };
    window.addEventListener('pagehide', () => T.unload());
    return T.statuses.slice();
  },
  content() {
    const d = T.entity.ydoc.getMap('document');
    if (!d.get('content')) T.entity.ydoc.transact(() => d.set('content', new Y.Text()), 'gutenberg');
    return d.get('content');
  },
  insert(pos, s) { T.entity.ydoc.transact(() => T.content().insert(Math.min(pos, T.content().length), s), 'gutenberg'); },
  append(s) { T.insert(T.content().length, s); },
  set(key, value) { T.entity.ydoc.transact(() => T.entity.ydoc.getMap('document').set(key, value), 'gutenberg'); },
  text() { const t = T.entity && T.entity.ydoc.getMap('document').get('content'); return t ? t.toString() : null; },
  doc() { return T.entity.ydoc.getMap('document').toJSON(); },
  peers() { return Array.from(T.entity.awareness.getStates().entries()).filter(([id]) => id !== T.entity.ydoc.clientID).map(([, s]) => s.collaboratorInfo && s.collaboratorInfo.name); },
  unload() { if (!T.entity) return; for (const p of T.entity.providers) p.destroy(); T.entity.awareness.destroy(); T.entity.ydoc.destroy(); T.entity = null; },
  debug() { return T.entity.providers.map((p) => p.provider && p.provider.debugState()); },
  /** Client: listens for the named relay:* events on document, then connects. */
  startClient(config, names) {
    for (const n of names) document.addEventListener(`relay:${n}`, (e) => T.events.push({ name: n, channel: e.detail.channel, data: e.detail.data, isCustom: e instanceof CustomEvent }));
    T.client = createClient(config);
    window.RelayRealtime = { client: T.client };
    return true;
  },
  clientState() { return T.client.debugState(); },
  /** A stock y-websocket client (Debian node-y-websocket, the page's Yjs) in the same room. */
  async stock(url, room, token) {
    const { WebsocketProvider } = await import('y-websocket');
    T.sdoc = new Y.Doc();
    T.sprov = new WebsocketProvider(url, room, T.sdoc, { params: { auth: token }, disableBc: true });
    return new Promise((res) => T.sprov.on('sync', (s) => s && res(true)));
  },
  stockText() { const t = T.sdoc.getMap('document').get('content'); return t ? t.toString() : null; },
  stockInsert(s) { const t = T.sdoc.getMap('document').get('content'); t.insert(t.length, s); },
  stockPeers() { return Array.from(T.sprov.awareness.getStates().values()).map((s) => s.collaboratorInfo && s.collaboratorInfo.name); },
};
window.T = T;
window.TReady = true;

// @ts-check
/**
 * Page entry point the plugin loads with `<script type="module">` after
 * printing `window.RelayRealtimeConfig`. Creates the client (when there are
 * channels or `connect: true`), adds the Yjs provider to `sync.providers`
 * (when `wp.hooks` is present and `yjs.enabled` is not false) and exposes
 * `window.RelayRealtime` — the only global this code defines.
 */
import { createClient } from './client.js';
import { register, liveProviders } from './yjs-provider.js';

const w = /** @type {any} */ (window);
const config = w.RelayRealtimeConfig;
if (config && config.url && !w.RelayRealtime) {
  const wantsClient = (Array.isArray(config.channels) && config.channels.length > 0) || config.connect === true;
  const client = wantsClient ? createClient(config) : null;
  const yjsRegistered = register(config);
  w.RelayRealtime = {
    version: 1,
    client,
    yjsRegistered,
    /** Lazily creates the client for pages that did not auto-connect. */
    connect() { if (!this.client) this.client = createClient(config); return this.client; },
    /** Snapshot for an admin debug panel. */
    debugState() {
      return { client: this.client ? this.client.debugState() : null, providers: Array.from(liveProviders).map((p) => p.debugState()) };
    },
  };
  if (config.debug) console.debug('[relay] boot', w.RelayRealtime.debugState());
}

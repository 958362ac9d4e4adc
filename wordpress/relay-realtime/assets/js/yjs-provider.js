// @ts-check
/**
 * Gutenberg `sync.providers` creator speaking the y-websocket protocol to
 * relayd's `/yjs/{room}`. Uses only the editor's Yjs (`options.Y`, else
 * `window.wp.sync.Y`) and its own framing (yprotocol.js): no second Yjs,
 * lib0 or y-protocols copy. The creator never rejects; errors are statuses.
 *
 * Status events (`on('status', cb)`, replayed to each new listener):
 *   {status:'connecting'} | {status:'connected'} |
 *   {status:'disconnected', error?, willAutoRetryInMs?, consecutiveFailures, backgroundRetriesFailed}
 * `error` is an Error with `code` ∈ authentication-failed | connection-expired |
 * connection-limit-exceeded | document-size-limit-exceeded | unknown-error,
 * mapped from relayd's close codes (close-codes.js).
 */
import { closeAction, providerErrorFor, retryAfterMs, backoffDelay } from './close-codes.js';
import { tokenSourceFor } from './token.js';
import {
  Reader, Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, encodeAwarenessMessage, encodeAwarenessRemoval,
  encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate,
  MESSAGE_SYNC, MESSAGE_AWARENESS, MESSAGE_AUTH, MESSAGE_QUERY_AWARENESS, SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE,
} from './yprotocol.js';

/** Error carrying a Gutenberg ConnectionErrorCode. */
export class ConnectionError extends Error {
  /** @param {string} code @param {string} [message] */
  constructor(code, message) { super(message || code); this.name = 'ConnectionError'; this.code = code; }
}

/**
 * @typedef {object} ProviderConfig
 * @property {string} url relayd base URL (http/https)
 * @property {string} [token] @property {number} [exp] @property {string} [tokenEndpoint] @property {string} [nonce]
 * @property {() => Promise<{token: string, exp: number}>} [fetchToken]
 * @property {{enabled?: boolean, roomPrefix?: string, mode?: 'replace'|'append', syncTimeoutMs?: number,
 *   retryBaseMs?: number, retryMaxMs?: number, maxUpdateBytes?: number, failuresBeforeDialog?: number,
 *   livenessCheckMs?: number, probeAfterMs?: number, deadAfterMs?: number, objectTypes?: string[]}} [yjs]
 * @property {any} [WebSocket] WebSocket constructor (tests in node pass `ws`)
 * @property {boolean} [debug]
 */

const DEFAULTS = {
  syncTimeoutMs: 5000, retryBaseMs: 500, retryMaxMs: 30000, maxUpdateBytes: 1024 * 1024,
  failuresBeforeDialog: 5, livenessCheckMs: 10000, probeAfterMs: 25000, deadAfterMs: 45000,
};

/** @param {string} url */
export function wsBase(url) {
  return String(url).replace(/\/+$/, '').replace(/^http(s?):/i, 'ws$1:');
}

/**
 * Room name: `{roomPrefix}{objectType}:{objectId|collection}`. relayd scopes
 * rooms per site (the token's site), on channel `site:{site_id}:yjs:{room}`.
 * @param {ProviderConfig} config @param {string} objectType @param {string|null|undefined} objectId
 */
export function roomName(config, objectType, objectId) {
  const prefix = (config.yjs && config.yjs.roomPrefix) || '';
  return `${prefix}${objectType}:${objectId == null ? 'collection' : objectId}`;
}

/** @param {Uint8Array} a @param {Uint8Array} b */
function sameBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Detaches handlers and closes `ws` without events (a CONNECTING socket may still report an error; it is swallowed). */
function closeQuietly(ws, code = 1000) {
  ws.onopen = ws.onmessage = ws.onclose = null;
  ws.onerror = () => {};
  try { ws.close(code); } catch (_) { /* already closed */ }
}

/** An inert result, for entities this provider does not handle. */
function inert(status) {
  return {
    destroy() {},
    /** @param {string} ev @param {Function} cb */
    on(ev, cb) { if (status && ev === 'status') { try { cb(status); } catch (_) { /* editor's */ } } },
  };
}

export class RelayYjsProvider {
  /**
   * @param {ProviderConfig} config
   * @param {{Y: any, ydoc: any, awareness?: any, objectType: string, objectId: string|null}} options
   */
  constructor(config, options) {
    const o = { ...DEFAULTS, ...(config.yjs || {}) };
    this.opts = o;
    this.config = config;
    this.Y = options.Y;
    this.doc = options.ydoc;
    this.ownAwareness = !options.awareness;
    this.awareness = options.awareness || new Awareness(options.ydoc);
    this.room = roomName(config, options.objectType, options.objectId);
    this.url = `${wsBase(config.url)}/yjs/${encodeURI(this.room)}`;
    this.tokens = tokenSourceFor(config);
    this.WS = config.WebSocket || globalThis.WebSocket;
    /** @type {any} */ this.ws = null;
    this.destroyed = false;
    this.synced = false;
    this.everSynced = false;
    this.readOnly = false;
    this.consecutiveFailures = 0;
    this.authFailures = 0;
    this.stopped = false;
    this.lastMessageAt = 0;
    /** @type {null|{code: number, reason: string}} */ this.lastClose = null;
    this.probed = false;
    /** @type {Uint8Array[]} */ this.queue = [];
    /** @type {any} */ this.status = { status: 'connecting' };
    /** @type {Set<Function>} */ this.listeners = new Set();
    /** @type {any} */ this.retryTimer = null;
    this.counters = { framesIn: 0, framesOut: 0, bytesIn: 0, bytesOut: 0, connects: 0 };

    /** @type {(r: void) => void} */ let resolveReady = () => {};
    this.ready = new Promise((r) => { resolveReady = r; });
    this._resolveReady = () => { clearTimeout(this.readyTimer); resolveReady(); };
    this.readyTimer = setTimeout(this._resolveReady, o.syncTimeoutMs);

    this._onDocUpdate = (/** @type {Uint8Array} */ update, /** @type {any} */ origin) => this.onLocalUpdate(update, origin);
    this._onDocDestroy = () => this.destroy();
    this._onAwarenessUpdate = (/** @type {any} */ ch, /** @type {any} */ origin) => this.onAwarenessUpdate(ch, origin);
    this._onOnline = () => this.retryNow();
    this._onVisibility = () => {
      if (typeof document !== 'undefined' && document.visibilityState === 'visible') this.checkLiveness(true);
    };
    this.doc.on('update', this._onDocUpdate);
    this.doc.on('destroy', this._onDocDestroy);
    this.awareness.on('update', this._onAwarenessUpdate);
    if (typeof window !== 'undefined' && window.addEventListener) window.addEventListener('online', this._onOnline);
    if (typeof document !== 'undefined' && document.addEventListener) document.addEventListener('visibilitychange', this._onVisibility);
    this.livenessTimer = setInterval(() => this.checkLiveness(false), o.livenessCheckMs);
    this.connect();
  }

  /** @param {string} event @param {Function} cb */
  on(event, cb) {
    if (event !== 'status' || typeof cb !== 'function') return;
    this.listeners.add(cb);
    try { cb(this.status); } catch (e) { this.log('status listener threw', e); }
  }

  /** @param {string} event @param {Function} cb */
  off(event, cb) { if (event === 'status') this.listeners.delete(cb); }

  /** @param {any} s */
  setStatus(s) {
    if (this.destroyed) return;
    if (s.status !== 'disconnected' && this.status.status === s.status) return;
    this.status = s;
    for (const cb of Array.from(this.listeners)) {
      try { cb(s); } catch (e) { this.log('status listener threw', e); }
    }
  }

  /** @param {...any} args */
  log(...args) { if (this.config.debug && typeof console !== 'undefined') console.debug('[relay-yjs]', this.room, ...args); }

  async connect() {
    if (this.destroyed || this.stopped || this.ws) return;
    this.setStatus({ status: 'connecting' });
    if (this.tokens.ttl() < 30 && this.tokens.canRefresh()) {
      const r = await this.tokens.refresh();
      if (this.destroyed) return;
      if (!r.ok && r.terminal) return this.stop(new ConnectionError('authentication-failed', r.error));
    }
    if (this.destroyed || this.stopped || this.ws) return;
    if (typeof this.WS !== 'function') return this.stop(new ConnectionError('unknown-error', 'WebSocket unavailable'));
    let ws;
    this.usedToken = this.tokens.token;
    try {
      ws = new this.WS(`${this.url}?auth=${encodeURIComponent(this.tokens.token)}`);
    } catch (e) {
      return this.failed(1006, String(e));
    }
    this.ws = ws;
    this.counters.connects++;
    ws.binaryType = 'arraybuffer';
    ws.onopen = () => this.onOpen(ws);
    ws.onmessage = (/** @type {any} */ ev) => this.onMessage(ws, ev.data);
    ws.onclose = (/** @type {any} */ ev) => this.onClose(ws, ev.code, ev.reason || '');
    ws.onerror = () => { /* a close event follows */ };
  }

  /** @param {any} ws */
  onOpen(ws) {
    if (ws !== this.ws) return;
    this.lastMessageAt = Date.now();
    this.probed = false;
    this.send(encodeSyncStep1(this.Y.encodeStateVector(this.doc)));
    // Renew our awareness so peers that saw a removal accept it again; the
    // resulting 'update' event sends it.
    const local = this.awareness.getLocalState();
    if (local !== null) this.awareness.setLocalState(local);
  }

  /** @param {Uint8Array} bytes */
  send(bytes) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    try { ws.send(bytes); } catch (e) { return false; }
    this.counters.framesOut++; this.counters.bytesOut += bytes.length;
    return true;
  }

  /** @param {any} ws @param {any} data */
  onMessage(ws, data) {
    if (ws !== this.ws || this.destroyed) return;
    if (typeof data === 'string') return;
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    this.lastMessageAt = Date.now();
    this.probed = false;
    this.counters.framesIn++; this.counters.bytesIn += bytes.length;
    try {
      const r = new Reader(bytes);
      const type = r.varUint();
      if (type === MESSAGE_SYNC) {
        const sub = r.varUint();
        const payload = r.varUint8Array();
        if (sub === SYNC_STEP1) {
          this.send(encodeSyncStep2(this.Y.encodeStateAsUpdate(this.doc, payload)));
        } else if (sub === SYNC_STEP2) {
          const before = this.Y.encodeStateVector(this.doc);
          this.Y.applyUpdate(this.doc, payload, this);
          if (!sameBytes(before, this.Y.encodeStateVector(this.doc)) && this.doc.meta && typeof this.doc.meta.set === 'function') {
            this.doc.meta.set('hasProviderSyncedRemoteState', true);
          }
          if (!this.synced) this.onSynced();
        } else if (sub === SYNC_UPDATE) {
          this.Y.applyUpdate(this.doc, payload, this);
        }
      } else if (type === MESSAGE_AWARENESS) {
        applyAwarenessUpdate(this.awareness, r.varUint8Array(), this);
      } else if (type === MESSAGE_QUERY_AWARENESS) {
        this.send(encodeAwarenessMessage(encodeAwarenessUpdate(this.awareness, Array.from(this.awareness.states.keys()))));
      } else if (type === MESSAGE_AUTH) {
        if (r.varUint() === 0) { this.readOnly = true; this.authReason = r.varString(); this.log('permission denied', this.authReason); }
      }
    } catch (e) {
      this.log('bad frame', e);
    }
  }

  onSynced() {
    this.synced = true;
    this.everSynced = true;
    this.consecutiveFailures = 0;
    this.authFailures = 0;
    if (this.queue.length && !this.readOnly) {
      const merged = this.queue.length === 1 ? this.queue[0] : this.Y.mergeUpdates(this.queue);
      this.queue = [];
      this.send(encodeSyncUpdate(merged));
    }
    this.queue = [];
    this.setStatus({ status: 'connected' });
    this._resolveReady();
  }

  /** @param {Uint8Array} update @param {any} origin */
  onLocalUpdate(update, origin) {
    if (origin === this || this.destroyed || this.stopped) return;
    if (update.length > this.opts.maxUpdateBytes) {
      return this.stop(new ConnectionError('document-size-limit-exceeded', `update of ${update.length} bytes`));
    }
    if (this.readOnly) return;
    if (this.synced && this.send(encodeSyncUpdate(update))) return;
    this.queue.push(update);
  }

  /** @param {{added: number[], updated: number[], removed: number[]}} changes @param {any} origin */
  onAwarenessUpdate(changes, origin) {
    if (origin === this || this.destroyed) return;
    const clients = changes.added.concat(changes.updated, changes.removed);
    this.send(encodeAwarenessMessage(encodeAwarenessUpdate(this.awareness, clients)));
  }

  /** @param {boolean} visible */
  checkLiveness(visible) {
    if (this.destroyed || this.stopped) return;
    const ws = this.ws;
    if (!ws) { if (visible) this.retryNow(); return; }
    if (ws.readyState !== 1) return;
    const idle = Date.now() - this.lastMessageAt;
    if (idle >= this.opts.deadAfterMs) {
      this.log('liveness: nothing received for', idle, 'ms; reconnecting');
      this.drop(ws, 4000, 'liveness');
    } else if (idle >= this.opts.probeAfterMs && !this.probed) {
      this.probed = true; // step 1 is always answered
      this.send(encodeSyncStep1(this.Y.encodeStateVector(this.doc)));
    }
  }

  /** Closes `ws` and handles it as a failed connection without waiting for its close event. */
  drop(ws, code = 4000, reason = '') {
    this.onClose(ws, code === 4000 ? 1006 : code, reason);
    closeQuietly(ws);
  }

  /** @param {any} ws @param {number} code @param {string} reason */
  onClose(ws, code, reason) {
    if (ws !== this.ws) return;
    ws.onopen = ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
    this.ws = null;
    this.synced = false;
    if (this.destroyed) return;
    this.failed(code, reason);
  }

  /** @param {number} code @param {string} reason */
  async failed(code, reason) {
    this.consecutiveFailures++;
    this.lastClose = { code, reason };
    const action = closeAction(code).client;
    const errorCode = providerErrorFor(code, reason);
    const error = errorCode ? new ConnectionError(errorCode, `relay closed ${code}${reason ? `: ${reason}` : ''}`) : undefined;
    this.log('closed', code, reason, action);
    if (action === 'stop') return this.stop(error);
    if (action === 'remint_once_then_stop') {
      this.authFailures++;
      if (this.authFailures >= 2 || !this.tokens.canRefresh()) return this.stop(error);
      // A routine expiry (relayd closes /yjs at the token's exp): re-mint and reconnect without
      // reporting an error; the editor sees only 'connecting'. Reuse a token someone else refreshed.
      this.setStatus({ status: 'connecting' });
      if (this.tokens.token === this.usedToken || this.tokens.ttl() < 30) {
        const r = await this.tokens.refresh();
        if (this.destroyed) return;
        if (!r.ok) return this.stop(r.terminal ? new ConnectionError('authentication-failed', r.error) : error);
      }
      return this.connect();
    }
    let delay = backoffDelay(this.consecutiveFailures - 1, this.opts.retryBaseMs, this.opts.retryMaxMs);
    if (action === 'reconnect_after_retry_after_ms') delay = retryAfterMs(reason) ?? delay;
    this.setStatus(this.disconnectedStatus(error, delay));
    this.scheduleRetry(delay);
  }

  /** @param {ConnectionError|undefined} error @param {number|undefined} willAutoRetryInMs */
  disconnectedStatus(error, willAutoRetryInMs) {
    /** @type {any} */
    const s = {
      status: 'disconnected',
      consecutiveFailures: this.consecutiveFailures,
      backgroundRetriesFailed: willAutoRetryInMs === undefined || this.consecutiveFailures >= this.opts.failuresBeforeDialog,
    };
    if (error) s.error = error;
    if (willAutoRetryInMs !== undefined) s.willAutoRetryInMs = willAutoRetryInMs;
    return s;
  }

  /** @param {number} delay */
  scheduleRetry(delay) {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => { this.retryTimer = null; this.connect(); }, delay);
  }

  retryNow() {
    if (this.destroyed || this.stopped || this.ws || !this.retryTimer) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  /** Terminal: no automatic retry. @param {ConnectionError|undefined} error */
  stop(error) {
    if (this.destroyed) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.livenessTimer);
    if (this.ws) { const ws = this.ws; this.ws = null; closeQuietly(ws); }
    this.setStatus(this.disconnectedStatus(error || new ConnectionError('unknown-error'), undefined));
    this._resolveReady();
  }

  /** Idempotent; safe during setup and after the doc was destroyed. */
  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.livenessTimer);
    try { this.doc.off('update', this._onDocUpdate); this.doc.off('destroy', this._onDocDestroy); } catch (_) { /* */ }
    try { this.awareness.off('update', this._onAwarenessUpdate); } catch (_) { /* */ }
    if (typeof window !== 'undefined' && window.removeEventListener) window.removeEventListener('online', this._onOnline);
    if (typeof document !== 'undefined' && document.removeEventListener) document.removeEventListener('visibilitychange', this._onVisibility);
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      // Say goodbye for our client: relayd removes a connection's awareness on
      // close only for clients it first saw on that connection, so a provider
      // re-created on the same awareness would otherwise linger for 30 s.
      // The shared awareness keeps its state; only its clock moves on, as
      // y-protocols' removeAwarenessStates does, so our next announcement wins.
      const id = this.awareness.clientID, m = this.awareness.meta.get(id);
      if (!this.ownAwareness && ws.readyState === 1 && m) {
        this.awareness.meta.set(id, { clock: m.clock + 1, lastUpdated: m.lastUpdated });
        try { ws.send(encodeAwarenessMessage(encodeAwarenessRemoval(id, m.clock + 1))); } catch (_) { /* closing */ }
      }
      closeQuietly(ws);
    }
    if (this.ownAwareness) { try { this.awareness.destroy(); } catch (_) { /* */ } }
    this.listeners.clear();
    this._resolveReady();
  }

  /** State for a debug panel. */
  debugState() {
    return { room: this.room, status: this.status.status, lastClose: this.lastClose, synced: this.synced, readOnly: this.readOnly,
      consecutiveFailures: this.consecutiveFailures, queued: this.queue.length, ...this.counters };
  }
}

/** @type {Set<RelayYjsProvider>} */
export const liveProviders = new Set();

/**
 * Creator for `sync.providers`.
 * @param {ProviderConfig} config
 * @returns {(options: any) => Promise<{destroy(): void, on(e: string, cb: Function): void}>}
 */
export function createProviderCreator(config) {
  return async function relayProviderCreator(options) {
    try {
      const o = options || {};
      const Y = o.Y || (typeof window !== 'undefined' && window.wp && window.wp.sync && window.wp.sync.Y);
      if (!Y || typeof Y.applyUpdate !== 'function' || !o.ydoc) {
        return inert({ status: 'disconnected', error: new ConnectionError('unknown-error', 'no Yjs module from the editor'), consecutiveFailures: 0, backgroundRetriesFailed: false });
      }
      const types = config.yjs && config.yjs.objectTypes;
      if (Array.isArray(types) && !types.some((t) => t === o.objectType || (t.endsWith('/*') && o.objectType.startsWith(t.slice(0, -1))))) {
        return inert(null);
      }
      const p = new RelayYjsProvider(config, { Y, ydoc: o.ydoc, awareness: o.awareness, objectType: o.objectType, objectId: o.objectId ?? null });
      liveProviders.add(p);
      const result = {
        destroy() { liveProviders.delete(p); p.destroy(); },
        /** @param {string} ev @param {Function} cb */
        on(ev, cb) { p.on(ev, cb); },
        /** @param {string} ev @param {Function} cb */
        off(ev, cb) { p.off(ev, cb); },
        provider: p,
      };
      await p.ready;
      return result;
    } catch (e) {
      return inert({ status: 'disconnected', error: new ConnectionError('unknown-error', String(e)), consecutiveFailures: 0, backgroundRetriesFailed: false });
    }
  };
}

/**
 * Adds the creator to `sync.providers`: replacing polling (default) or
 * alongside it (`mode: 'append'` or `config.yjs.mode = 'append'`).
 * @param {ProviderConfig} [config]
 * @param {{hooks?: any, mode?: 'replace'|'append'}} [opts]
 * @returns {boolean} whether the filter was added
 */
export function register(config, opts = {}) {
  const w = typeof window !== 'undefined' ? /** @type {any} */ (window) : {};
  config = config || w.RelayRealtimeConfig;
  const hooks = opts.hooks || (w.wp && w.wp.hooks);
  if (!config || !config.url || !hooks || typeof hooks.addFilter !== 'function') return false;
  if (config.yjs && config.yjs.enabled === false) return false;
  if (w.__experimentalEnableRealTimeCollaboration === false) return false;
  if (typeof (config.WebSocket || globalThis.WebSocket) !== 'function') return false;
  const mode = opts.mode || (config.yjs && config.yjs.mode) || 'replace';
  const creator = createProviderCreator(config);
  hooks.addFilter('sync.providers', 'relay-realtime/yjs-provider', (/** @type {any} */ prev) =>
    mode === 'append' ? [...(Array.isArray(prev) ? prev : []), creator] : [creator]);
  return true;
}

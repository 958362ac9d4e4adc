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
 *
 * Encrypted rooms (Docs/yjs.md "Encrypted rooms"): when `config.yjs.e2e` lists keys for the
 * room (`{site, keys: {[room]: [{kid, key}]}}`, from WordPress for the post's editors), the
 * provider speaks the sealed-room protocol (sealed-room.js) instead: updates, snapshots and
 * awareness are sealed with WebCrypto AES-256-GCM before they leave, and what arrives is opened
 * and checked; a payload that does not open or replays is not applied and is reported
 * (`on('rejected', cb)` with `{reason, kind, message}`, and `debugState().rejected`). An
 * encrypted post type without a key for this room stops with `authentication-failed`.
 */
import { closeAction, providerErrorFor, retryAfterMs, backoffDelay } from './close-codes.js';
import { tokenSourceFor } from './token.js';
import {
  Reader, Awareness, applyAwarenessUpdate, encodeAwarenessUpdate, encodeAwarenessMessage, encodeAwarenessRemoval,
  encodeSyncStep1, encodeSyncStep2, encodeSyncUpdate,
  MESSAGE_SYNC, MESSAGE_AWARENESS, MESSAGE_AUTH, MESSAGE_QUERY_AWARENESS, SYNC_STEP1, SYNC_STEP2, SYNC_UPDATE,
  removeAwarenessStates,
} from './yprotocol.js';
import {
  MSG, KIND, RoomKeys, Sealer, Opener, SealedError, decodeMessage, encodeSyncRequest, encodeUpdate, encodeSnapshot,
  encodeAwareness, encodeSnapshotPlaintext, decodeSnapshotPlaintext,
} from './sealed-room.js';

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
 * @property {{site?: string, keys?: Object<string, {kid: string, key: string}[]>, objectTypes?: string[]}} [e2e]
 *   encrypted rooms: per room, its keys (newest first); `objectTypes` are encrypted even without a key (→ authentication-failed)
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

/**
 * The keys of an encrypted room, `[]` for an encrypted object type without one, null for a plain room.
 * @param {ProviderConfig} config @param {string} room @param {string} objectType
 */
export function sealedKeysFor(config, room, objectType) {
  const e = config.e2e || (config.yjs && /** @type {any} */ (config.yjs).e2e);
  if (!e) return null;
  const keys = e.keys && e.keys[room];
  if (Array.isArray(keys) && keys.length) return keys;
  const types = e.objectTypes;
  if (Array.isArray(types) && types.some((t) => t === objectType || (t.endsWith('/*') && objectType.startsWith(t.slice(0, -1))))) return [];
  return null;
}

/** Client ids in a y-protocols awareness update. @param {Uint8Array} update */
function awarenessClients(update) {
  const r = new Reader(update);
  const n = r.varUint(), ids = [];
  for (let i = 0; i < n; i++) { ids.push(r.varUint()); r.varUint(); r.varString(); }
  return ids;
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
    /** @type {Set<Function>} */ this.rejectionListeners = new Set();
    const sealedKeys = sealedKeysFor(config, this.room, options.objectType);
    /** @type {any} */ this.e2e = null;
    if (sealedKeys) {
      const e = config.e2e || /** @type {any} */ (config.yjs).e2e;
      const site = e.site || config.siteId || '';
      const keys = new RoomKeys(sealedKeys);
      this.e2e = {
        keys, sealer: new Sealer(keys, site, this.room), opener: new Opener(keys, site, this.room),
        lastSeq: 0, peer: -1, /** @type {Map<number, number[]>} */ peers: new Map(),
        /** log entries that arrived ahead of a gap @type {Map<number, Uint8Array>} */ held: new Map(), refetchedAt: -1,
        /** @type {Promise<void>} */ inbound: Promise.resolve(), /** @type {Promise<void>} */ outbound: Promise.resolve(),
        /** own updates sent and not yet seen in the log: resent after a reconnect @type {{counter: number, update: Uint8Array}[]} */ unacked: [],
        rejected: { tampered: 0, replayed: 0, 'unknown-key': 0, malformed: 0 }, snapshotsStored: 0,
      };
    }

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
    if (this.e2e) {
      // Keys refreshed with the token (a new key id after a rotation seals from then on).
      this._offTokens = this.tokens.onChange((/** @type {any} */ t) => {
        const fresh = t.e2e && t.e2e.keys && t.e2e.keys[this.room];
        if (Array.isArray(fresh) && fresh.length) this.e2e.keys.update(fresh);
      });
    }
    if (this.e2e && !this.e2e.keys.current) {
      this.stop(new ConnectionError('authentication-failed', 'encrypted room: no key for this document'));
      return;
    }
    this.connect();
  }

  /** @param {string} event @param {Function} cb */
  on(event, cb) {
    if (event === 'rejected' && typeof cb === 'function') { this.rejectionListeners.add(cb); return; }
    if (event !== 'status' || typeof cb !== 'function') return;
    this.listeners.add(cb);
    try { cb(this.status); } catch (e) { this.log('status listener threw', e); }
  }

  /** @param {string} event @param {Function} cb */
  off(event, cb) { if (event === 'status') this.listeners.delete(cb); if (event === 'rejected') this.rejectionListeners.delete(cb); }

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
      ws = new this.WS(`${this.url}?auth=${encodeURIComponent(this.tokens.token)}${this.e2e ? '&e2e=1' : ''}`);
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
    if (this.e2e) this.send(encodeSyncRequest(this.e2e.lastSeq));
    else this.send(encodeSyncStep1(this.Y.encodeStateVector(this.doc)));
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
    if (this.e2e) return this.onSealedMessage(ws, bytes);
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
    if (this.e2e) {
      // Ours not seen in the log (sent before a disconnect) and what was typed meanwhile.
      const pending = this.e2e.unacked.map((/** @type {any} */ u) => u.update).concat(this.queue);
      this.e2e.unacked = [];
      this.queue = [];
      if (pending.length && !this.readOnly) this.sendSealedUpdate(pending.length === 1 ? pending[0] : this.Y.mergeUpdates(pending));
    }
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
    if (this.e2e) {
      if (this.synced) this.sendSealedUpdate(update); else this.queue.push(update);
      return;
    }
    if (this.synced && this.send(encodeSyncUpdate(update))) return;
    this.queue.push(update);
  }

  /** @param {{added: number[], updated: number[], removed: number[]}} changes @param {any} origin */
  onAwarenessUpdate(changes, origin) {
    if (origin === this || this.destroyed) return;
    const clients = changes.added.concat(changes.updated, changes.removed);
    if (this.e2e) return this.sendSealed(KIND.awareness, encodeAwarenessUpdate(this.awareness, clients), encodeAwareness);
    this.send(encodeAwarenessMessage(encodeAwarenessUpdate(this.awareness, clients)));
  }

  /**
   * Seals and sends in call order (WebCrypto is asynchronous); a failure to seal is reported.
   * @param {number} kind @param {Uint8Array} plaintext @param {(sealed: Uint8Array) => Uint8Array} wrap
   * @param {(counter: number) => void} [onSealed]
   */
  sendSealed(kind, plaintext, wrap, onSealed) {
    const e = this.e2e;
    e.outbound = e.outbound.then(async () => {
      if (this.destroyed) return;
      const sealed = await e.sealer.seal(kind, plaintext);
      if (onSealed) onSealed(e.sealer.counter);
      this.send(wrap(sealed));
    }).catch((/** @type {any} */ err) => this.reject(err, kind));
  }

  /** An update of ours: kept until the log shows it (resent after a reconnect). @param {Uint8Array} update */
  sendSealedUpdate(update) {
    const entry = { counter: Infinity, update };
    this.e2e.unacked.push(entry);
    this.sendSealed(KIND.update, update, encodeUpdate, (c) => { entry.counter = c; });
  }

  /** Reports a sealed payload that was not applied. @param {any} err @param {number} kind */
  reject(err, kind) {
    const reason = err instanceof SealedError ? err.reason : 'malformed';
    if (reason === 'stale') return this.log('stale awareness dropped', String(err && err.message || err));
    if (this.e2e) this.e2e.rejected[reason] = (this.e2e.rejected[reason] || 0) + 1;
    const report = { reason, kind: kind === KIND.update ? 'update' : kind === KIND.snapshot ? 'snapshot' : 'awareness', message: String(err && err.message || err) };
    this.log('sealed payload rejected', report);
    for (const cb of Array.from(this.rejectionListeners)) { try { cb(report); } catch (_) { /* listener's */ } }
    if (reason === 'unknown-key' && kind !== KIND.awareness) {
      // Keys rotated and this page does not have the new one: nothing more can be read or written.
      this.stop(new ConnectionError('authentication-failed', 'encrypted room: a key this page does not have'));
    }
  }

  /** @param {any} ws @param {Uint8Array} bytes */
  onSealedMessage(ws, bytes) {
    let m;
    try { m = decodeMessage(bytes); } catch (err) { return this.log('bad frame', err); }
    const e = this.e2e;
    e.inbound = e.inbound.then(() => this.handleSealed(ws, m)).catch((/** @type {any} */ err) => this.log('sealed frame', err));
  }

  /** In arrival order (each waits for the previous one to be opened and applied). @param {any} ws @param {any} m */
  async handleSealed(ws, m) {
    const e = this.e2e;
    if (this.destroyed) return;
    switch (m.type) {
      case MSG.STORED_SNAPSHOT: {
        if (m.through <= e.lastSeq) return;
        try {
          const { plaintext } = await e.opener.open(KIND.snapshot, m.sealed);
          const { state, clocks } = decodeSnapshotPlaintext(plaintext);
          this.Y.applyUpdate(this.doc, state, this);
          for (const [w, c] of clocks) if (c > (e.opener.logSeen.get(w) || 0)) e.opener.logSeen.set(w, c);
          this.markRemoteState();
        } catch (err) { this.reject(err, KIND.snapshot); }
        e.lastSeq = m.through;
        return this.drainHeld();
      }
      case MSG.LOG_ENTRY: {
        if (m.seq <= e.lastSeq) return;
        // A live entry can overtake the catch-up (it was broadcast before this connection's sync
        // request was answered) or another entry (two event loops): hold it until the gap fills.
        if (m.seq > e.lastSeq + 1) { e.held.set(m.seq, m.sealed); return; }
        await this.applyEntry(m.seq, m.sealed);
        return this.drainHeld();
      }
      case MSG.SYNCED:
        e.peer = m.peer;
        if (e.held.size && ws === this.ws && e.refetchedAt !== e.lastSeq) {
          // The catch-up ended and entries after a gap are still held: ask again from where we are.
          e.refetchedAt = e.lastSeq;
          this.send(encodeSyncRequest(e.lastSeq));
        }
        if (ws === this.ws && !this.synced) this.onSynced();
        return;
      case MSG.PEER_AWARENESS: {
        if (m.peer === e.peer) return;
        try {
          const { plaintext } = await e.opener.open(KIND.awareness, m.sealed);
          e.peers.set(m.peer, Array.from(new Set([...(e.peers.get(m.peer) || []), ...awarenessClients(plaintext)])));
          applyAwarenessUpdate(this.awareness, plaintext, this);
        } catch (err) { this.reject(err, KIND.awareness); }
        return;
      }
      case MSG.PEER_LEFT: {
        const ids = e.peers.get(m.peer) || [];
        e.peers.delete(m.peer);
        removeAwarenessStates(this.awareness, ids.filter((/** @type {number} */ id) => id !== this.awareness.clientID), this);
        return;
      }
      case MSG.SNAPSHOT_REQUEST: {
        if (this.readOnly) return;
        // Covers everything this client applied from the log; its clocks tell late joiners which
        // counters the snapshot holds, so a replay of a covered update is recognised.
        const through = e.lastSeq;
        const plaintext = encodeSnapshotPlaintext(this.Y.encodeStateAsUpdate(this.doc), new Map(e.opener.logSeen));
        this.sendSealed(KIND.snapshot, plaintext, (sealed) => encodeSnapshot(through, sealed));
        return;
      }
      case MSG.SNAPSHOT_STORED: e.snapshotsStored++; return;
      case MSG.DENIED:
        this.log('relay refused', m.reason);
        if (/read-only/.test(m.reason)) this.readOnly = true;
        return;
    }
  }

  /** Opens and applies the log entry `seq` (the next one). @param {number} seq @param {Uint8Array} sealed */
  async applyEntry(seq, sealed) {
    const e = this.e2e;
    e.lastSeq = seq;
    try {
      const { plaintext, writer, counter } = await e.opener.open(KIND.update, sealed);
      if (writer === e.sealer.writerHex) e.unacked = e.unacked.filter((/** @type {any} */ u) => u.counter > counter);
      else { this.Y.applyUpdate(this.doc, plaintext, this); this.markRemoteState(); }
    } catch (err) { this.reject(err, KIND.update); }
  }

  /** Applies held entries that are now next in sequence; drops those already covered. */
  async drainHeld() {
    const e = this.e2e;
    for (const seq of Array.from(e.held.keys())) if (seq <= e.lastSeq) e.held.delete(seq);
    while (e.held.has(e.lastSeq + 1)) {
      const seq = e.lastSeq + 1, sealed = e.held.get(seq);
      e.held.delete(seq);
      await this.applyEntry(seq, sealed);
    }
  }

  markRemoteState() {
    if (this.doc.meta && typeof this.doc.meta.set === 'function') this.doc.meta.set('hasProviderSyncedRemoteState', true);
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
      this.probed = true; // step 1 (a sync request) is always answered
      if (this.e2e) this.send(encodeSyncRequest(this.e2e.lastSeq));
      else this.send(encodeSyncStep1(this.Y.encodeStateVector(this.doc)));
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
    if (this._offTokens) this._offTokens();
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
      if (!this.ownAwareness && !this.e2e && ws.readyState === 1 && m) {
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
      consecutiveFailures: this.consecutiveFailures, queued: this.queue.length, ...this.counters,
      ...(this.e2e ? { encrypted: true, lastSeq: this.e2e.lastSeq, unacked: this.e2e.unacked.length, rejected: { ...this.e2e.rejected },
        snapshotsStored: this.e2e.snapshotsStored } : {}) };
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

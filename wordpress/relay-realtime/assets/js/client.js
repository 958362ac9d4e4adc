// @ts-check
/**
 * Relay browser client: WebSocket to relayd's `/ws` with the token, SSE
 * (`/sse`) when the socket cannot open, WebSocket probed again later;
 * subscriptions resumed with recovery positions (offset + epoch); in-band
 * token refresh; v1/v2 sealed envelopes opened with WebCrypto. Every message
 * is dispatched on `document` as `CustomEvent('relay:<event>', {detail:
 * {channel, data}})` and to `on(event, fn)` handlers. No dependencies.
 * Errors become state and `relay:connection.error` events; nothing throws
 * into the page.
 */
import { closeAction, retryAfterMs, backoffDelay } from './close-codes.js';
import { tokenSourceFor } from './token.js';
import { isEnvelope, openEnvelope, fullChannel } from './envelope.js';

/**
 * @typedef {object} ClientConfig
 * @property {string} url relayd base URL (http/https)
 * @property {string} [siteId] @property {string} [token] @property {number} [exp]
 * @property {string} [tokenEndpoint] @property {string} [nonce]
 * @property {() => Promise<{token: string, exp: number, channels?: string[]}>} [fetchToken]
 * @property {string[]} [channels] full channel names to subscribe
 * @property {Record<string, string>} [payloadKeys] kid (or "v1") → base64 AES-256 key
 * @property {string} [kid] @property {boolean} [debug] @property {boolean} [forceSSE]
 * @property {any} [WebSocket] @property {any} [EventSource] @property {EventTarget} [eventTarget]
 * @property {string} [wsUrl] @property {string} [sseUrl] overrides of the derived endpoints
 * @property {{baseMs?: number, maxMs?: number, stableMs?: number, wsProbeMs?: number, watchdogMs?: number,
 *   silenceMs?: number, refreshRatio?: number, minRefreshMs?: number}} [timing]
 */

const TIMING = { baseMs: 1000, maxMs: 60000, stableMs: 3000, wsProbeMs: 30000, watchdogMs: 10000, silenceMs: 45000, refreshRatio: 0.8, minRefreshMs: 10000 };

export const STATE_EVENT = 'connection.state';
export const GAP_EVENT = 'connection.gap';
export const ERROR_EVENT = 'connection.error';

/** @param {string} url */
const base = (url) => String(url).replace(/\/+$/, '');

/** SSE `id:` → positions. `m1,<offset>:<epoch>:<channel>,…` @param {string} id */
export function parseStreamId(id) {
  /** @type {Record<string, {offset: number, epoch: string}>} */
  const out = {};
  const parts = String(id || '').split(',');
  if (parts[0] !== 'm1') return out;
  for (const p of parts.slice(1)) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(p);
    if (m) out[decodeURIComponent(m[3])] = { offset: Number(m[1]), epoch: m[2] };
  }
  return out;
}

/** positions → SSE `Last-Event-ID`. @param {Record<string, {offset: number, epoch: string}>} pos */
export function formatStreamId(pos) {
  const enc = (/** @type {string} */ c) => c.replace(/[%,\x00-\x1f\x7f]/g, (ch) => '%' + ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0'));
  return ['m1', ...Object.entries(pos).map(([c, p]) => `${p.offset}:${p.epoch}:${enc(c)}`)].join(',');
}

export class RelayClient {
  /** @param {ClientConfig} config */
  constructor(config) {
    this.config = config;
    this.t = { ...TIMING, ...(config.timing || {}) };
    this.tokens = tokenSourceFor(config);
    this.WS = config.WebSocket || globalThis.WebSocket;
    this.ES = config.EventSource || globalThis.EventSource;
    this.target = config.eventTarget || (typeof document !== 'undefined' ? document : new EventTarget());
    /** @type {Set<string>} */ this.wanted = new Set(config.channels || []);
    /** @type {Map<string, any>} */ this.presenceStates = new Map();
    /** @type {Record<string, {offset: number, epoch: string}>} */ this.positions = {};
    /** @type {Map<string, Set<Function>>} */ this.handlers = new Map();
    /** @type {any} */ this.ws = null;
    /** @type {any} */ this.es = null;
    /** @type {any} */ this.probe = null;
    this.state = { status: 'idle', transport: /** @type {null|'ws'|'sse'} */ (null), connected: false, failures: 0,
      lastError: /** @type {null|{code: string, message: string}} */ (null), lastMessageAt: 0, retryInMs: /** @type {number|undefined} */ (undefined),
      exp: this.tokens.exp, messages: 0, gaps: 0, connects: 0,
      lastClose: /** @type {null|{code: number, reason: string}} */ (null) };
    this.authFailures = 0;
    this.stopped = false;
    this.closedByUser = false;
    /** @type {any} */ this.timers = {};
    /** Messages are handled one after another, so an envelope being opened never lets a later message overtake it. */
    /** @type {Promise<void>} */ this.inbox = Promise.resolve();
    this.wsEverOpened = false;
    this.wsOpenFailures = 0;
    this._online = () => { if (!this.state.connected) this.connectNow(); };
    this._visible = () => { if (typeof document === 'undefined' || document.visibilityState === 'visible') this.watchdog(true); };
    if (typeof window !== 'undefined' && window.addEventListener) window.addEventListener('online', this._online);
    if (typeof document !== 'undefined' && document.addEventListener) document.addEventListener('visibilitychange', this._visible);
  }

  // ---- public API -------------------------------------------------------

  /**
   * `fn(data, channel, event)` for `event`; `'*'` for every message;
   * `'connection.state'`, `'connection.gap'`, `'connection.error'` for the
   * client's own events. Returns an unsubscribe function.
   * @param {string} event @param {Function} fn
   */
  on(event, fn) {
    let s = this.handlers.get(event);
    if (!s) this.handlers.set(event, s = new Set());
    s.add(fn);
    return () => { s && s.delete(fn); };
  }

  /** @param {string[]} channels */
  subscribe(channels) {
    const add = channels.filter((c) => !this.wanted.has(c));
    for (const c of add) this.wanted.add(c);
    if (!add.length) return;
    if (this.state.transport === 'ws') this.sendJSON(this.subscribeFrame(add));
    else if (this.state.transport === 'sse') this.restartSSE();
  }

  /** @param {string[]} channels */
  unsubscribe(channels) {
    const del = channels.filter((c) => this.wanted.delete(c));
    for (const c of del) delete this.positions[c];
    if (!del.length) return;
    if (this.state.transport === 'ws') this.sendJSON({ type: 'unsubscribe', channels: del });
    else if (this.state.transport === 'sse') this.restartSSE();
  }

  /**
   * Browser publish (WebSocket only; channel under the token's publish prefixes).
   * @param {string} channel @param {string} event @param {any} data @param {{idempotencyKey?: string}} [opts]
   * @returns {boolean} whether it was sent
   */
  publish(channel, event, data, opts = {}) {
    /** @type {any} */ const f = { type: 'message', channel, event, data };
    if (opts.idempotencyKey) f.idempotency_key = opts.idempotencyKey;
    return this.state.transport === 'ws' && this.sendJSON(f);
  }

  /** Connection-scoped presence; `null` leaves. Re-sent after every reconnect. @param {string} channel @param {any} state */
  presence(channel, state) {
    if (state === null) this.presenceStates.delete(channel); else this.presenceStates.set(channel, state);
    return this.state.transport === 'ws' && this.sendJSON({ type: 'presence', channel, state });
  }

  /** Starts (or resumes after `disconnect()`). */
  connect() {
    this.closedByUser = false;
    if (this.stopped || this.ws || this.es) return this;
    this.timers.watchdog = this.timers.watchdog || setInterval(() => this.watchdog(false), this.t.watchdogMs);
    if (this.config.forceSSE || typeof this.WS !== 'function') this.openSSE();
    else this.openWS();
    return this;
  }

  /** Closes the transport; positions are kept so `connect()` recovers. */
  disconnect() {
    this.closedByUser = true;
    this.clearTimers();
    this.closeTransports();
    this.setState({ status: 'idle', transport: null, connected: false, retryInMs: undefined });
  }

  /** Tears everything down. */
  destroy() {
    this.disconnect();
    this.stopped = true;
    if (typeof window !== 'undefined' && window.removeEventListener) window.removeEventListener('online', this._online);
    if (typeof document !== 'undefined' && document.removeEventListener) document.removeEventListener('visibilitychange', this._visible);
    this.handlers.clear();
  }

  /** State for a debug panel (a copy). */
  debugState() {
    return { ...this.state, channels: Array.from(this.wanted), positions: { ...this.positions }, tokenTtl: Math.round(this.tokens.ttl()) };
  }

  // ---- internals --------------------------------------------------------

  /** @param {...any} a */
  log(...a) { if (this.config.debug && typeof console !== 'undefined') console.debug('[relay]', ...a); }

  /** @param {Partial<RelayClient['state']>} patch */
  setState(patch) {
    Object.assign(this.state, patch);
    this.emitLocal(STATE_EVENT, { ...this.state }, null);
  }

  /** @param {string} name @param {any} data @param {string|null} channel */
  emitLocal(name, data, channel) {
    try { this.target.dispatchEvent(new CustomEvent(`relay:${name}`, { detail: { channel, data } })); } catch (e) { this.log('dispatch failed', e); }
    for (const fn of Array.from(this.handlers.get(name) || [])) {
      try { fn(data, channel, name); } catch (e) { this.log('handler threw', e); }
    }
  }

  /** @param {string} code @param {string} message @param {string|null} [channel] */
  reportError(code, message, channel = null) {
    this.state.lastError = { code, message };
    this.emitLocal(ERROR_EVENT, { code, message }, channel);
  }

  /** @param {string[]} channels */
  subscribeFrame(channels) {
    /** @type {any} */ const f = { type: 'subscribe', channels };
    const pos = {};
    for (const c of channels) if (this.positions[c]) /** @type {any} */ (pos)[c] = this.positions[c];
    if (Object.keys(pos).length) f.positions = pos;
    return f;
  }

  /** @param {any} f */
  sendJSON(f) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    try { ws.send(JSON.stringify(f)); return true; } catch (_) { return false; }
  }

  wsURL() { return this.config.wsUrl || `${base(this.config.url).replace(/^http(s?):/i, 'ws$1:')}/ws`; }

  /** @param {boolean} [asProbe] */
  openWS(asProbe = false) {
    if (!asProbe) this.setState({ status: 'connecting', retryInMs: undefined });
    let ws;
    if (!asProbe) this.usedToken = this.tokens.token;
    try {
      ws = new this.WS(this.wsURL(), ['relay', `token.${this.tokens.token}`]);
    } catch (e) {
      if (asProbe) return;
      return this.onWSClose(null, 1006, String(e), false);
    }
    ws.binaryType = 'arraybuffer';
    let opened = false;
    if (asProbe) this.probe = ws; else this.ws = ws;
    ws.onopen = () => {
      opened = true;
      if (asProbe) { // the probe takes over from SSE
        this.probe = null;
        this.closeSSE();
        this.ws = ws;
      }
      this.onWSOpen(ws);
    };
    ws.onmessage = (/** @type {any} */ ev) => { if (ws === this.ws) this.onWSMessage(ev.data); };
    ws.onerror = () => { /* close follows */ };
    ws.onclose = (/** @type {any} */ ev) => {
      if (ws === this.probe) { this.probe = null; return; }
      if (ws === this.ws) this.onWSClose(ws, ev.code, ev.reason || '', opened);
    };
  }

  /** @param {any} ws */
  onWSOpen(ws) {
    this.openedAt = Date.now();
    this.state.connects++;
    this.wsEverOpened = true;
    this.wsOpenFailures = 0;
    this.state.lastMessageAt = Date.now();
    if (this.wanted.size) this.sendJSON(this.subscribeFrame(Array.from(this.wanted)));
    for (const [channel, state] of this.presenceStates) this.sendJSON({ type: 'presence', channel, state });
    clearTimeout(this.timers.stable);
    this.timers.stable = setTimeout(() => { if (ws === this.ws) { this.state.failures = 0; this.authFailures = 0; } }, this.t.stableMs);
    this.setState({ status: 'connected', transport: 'ws', connected: true, retryInMs: undefined });
    this.scheduleRefresh();
  }

  /** @param {any} raw */
  onWSMessage(raw) {
    this.state.lastMessageAt = Date.now();
    if (typeof raw !== 'string') {
      const b = new Uint8Array(raw);
      if (b.length < 2) return;
      const n = (b[0] << 8) | b[1];
      const channel = new TextDecoder().decode(b.subarray(2, 2 + n));
      return this.emitLocal('binary', b.subarray(2 + n), channel);
    }
    let f;
    try { f = JSON.parse(raw); } catch (_) { return; }
    switch (f.type) {
      case 'ping': this.sendJSON({ type: 'pong' }); break;
      case 'message': this.enqueue(f.channel, f.event, f.data, f.offset, f.epoch); break;
      case 'subscribed':
        for (const c of f.channels || []) {
          const had = this.positions[c];
          if (f.recovered === false && had) this.gap(c, { recovered: false, reason: had.epoch !== f.epoch ? 'epoch changed' : 'history window passed', epoch: f.epoch, offset: f.offset });
          // recovered: the replayed messages move the position; otherwise start from the relay's.
          if (f.recovered !== true && typeof f.offset === 'number') this.positions[c] = { offset: f.offset, epoch: f.epoch };
        }
        break;
      case 'auth_ok': this.tokens.exp = Number(f.exp) || this.tokens.exp; this.setState({ exp: this.tokens.exp }); this.scheduleRefresh(); break;
      case 'error':
        if (f.code === 'unauthorized') { const ws = this.ws; this.onWSClose(ws, 4001, f.message || 'unauthorized', true); try { ws && ws.close(); } catch (_) { /* */ } }
        else this.reportError(f.code, f.message || '', f.channel || null);
        break;
      default: break;
    }
  }

  /** @param {string} channel @param {any} info */
  gap(channel, info) {
    this.state.gaps++;
    this.emitLocal(GAP_EVENT, info, channel);
  }

  /** @param {string} channel @param {string} event @param {any} data @param {number} [offset] @param {string} [epoch] */
  enqueue(channel, event, data, offset, epoch) {
    this.inbox = this.inbox.then(() => this.onMessage(channel, event, data, offset, epoch)).catch((e) => this.log('message handling failed', e));
  }

  /**
   * @param {string} channel @param {string} event @param {any} data @param {number} [offset] @param {string} [epoch]
   */
  async onMessage(channel, event, data, offset, epoch) {
    channel = fullChannel(String(channel), this.config.siteId); // relayd echoes the publisher's spelling
    if (typeof offset === 'number' && epoch) {
      // A live message from a new stream (the relay's broker lost its data) or past a skipped
      // offset means messages were missed on this open connection: said, never silent.
      const had = this.positions[channel];
      if (had && had.epoch !== epoch) this.gap(channel, { recovered: false, reason: 'epoch changed', epoch, offset });
      else if (had && offset > had.offset + 1) this.gap(channel, { recovered: false, reason: 'messages skipped', epoch, offset, missed: offset - had.offset - 1 });
      this.positions[channel] = { offset, epoch };
    }
    this.state.messages++;
    if (event === 'encrypted' && isEnvelope(data)) {
      const r = await openEnvelope(data, { channel, siteId: this.config.siteId, keys: this.config.payloadKeys });
      if (!r.ok) return this.reportError(r.code, r.message, channel);
      if (r.event) { event = r.event; data = r.data; } else data = r.data;
    }
    this.emitLocal(event, data, channel);
    for (const fn of Array.from(this.handlers.get('*') || [])) {
      try { fn(data, channel, event); } catch (e) { this.log('handler threw', e); }
    }
  }

  /** @param {any} ws @param {number} code @param {string} reason @param {boolean} opened */
  async onWSClose(ws, code, reason, opened) {
    if (ws) { ws.onopen = ws.onmessage = ws.onclose = null; ws.onerror = () => {}; }
    if (ws && ws !== this.ws) return;
    this.ws = null;
    clearTimeout(this.timers.refresh);
    this.setState({ connected: false, transport: null, lastClose: { code, reason } });
    if (this.closedByUser || this.stopped) return;
    this.log('ws closed', code, reason, opened ? '' : '(never opened)');
    if (!opened) this.wsOpenFailures++;
    if (!opened && typeof this.ES === 'function' && code !== 4001 && code !== 4003 && (!this.wsEverOpened || this.wsOpenFailures >= 3)) {
      // The socket cannot open (blocked by a proxy or firewall): SSE now, WebSocket probed again later.
      // A socket that worked before gets two more tries first (relayd restarting).
      this.state.failures++;
      return this.openSSE();
    }
    const action = closeAction(code).client;
    this.state.failures++;
    if (action === 'stop') return this.stop('site_not_found', `relay closed ${code} ${reason}`);
    if (action === 'remint_once_then_stop') {
      this.authFailures++;
      if (this.authFailures >= 2 || !this.tokens.canRefresh()) return this.stop(/expired/i.test(reason) ? 'connection-expired' : 'authentication-failed', `relay closed 4001 ${reason}`);
      if (this.tokens.token === this.usedToken || this.tokens.ttl() < 30) {
        const r = await this.tokens.refresh();
        if (this.stopped || this.closedByUser) return;
        if (!r.ok && r.terminal) return this.stop('authentication-failed', r.error || 'token refresh refused');
        if (!r.ok) return this.retryLater();
      }
      return this.connect();
    }
    const after = action === 'reconnect_after_retry_after_ms' ? retryAfterMs(reason) : null;
    this.retryLater(after ?? undefined);
  }

  /** @param {number} [delay] */
  retryLater(delay) {
    const d = delay ?? backoffDelay(Math.max(0, this.state.failures - 1), this.t.baseMs, this.t.maxMs);
    this.setState({ status: 'disconnected', transport: null, connected: false, retryInMs: d });
    clearTimeout(this.timers.retry);
    this.timers.retry = setTimeout(() => { this.timers.retry = null; this.connect(); }, d);
  }

  connectNow() {
    if (this.stopped || this.closedByUser || this.ws || this.es) return;
    clearTimeout(this.timers.retry);
    this.timers.retry = null;
    this.connect();
  }

  /** @param {string} code @param {string} message */
  stop(code, message) {
    this.stopped = true;
    this.clearTimers();
    this.closeTransports();
    this.reportError(code, message);
    this.setState({ status: 'stopped', transport: null, connected: false, retryInMs: undefined });
  }

  sseURL() {
    const u = new URL(this.config.sseUrl || `${base(this.config.url)}/sse`);
    u.searchParams.set('token', this.tokens.token);
    u.searchParams.set('channels', Array.from(this.wanted).join(','));
    const pos = {};
    for (const c of this.wanted) if (this.positions[c]) /** @type {any} */ (pos)[c] = this.positions[c];
    if (Object.keys(pos).length) u.searchParams.set('lastEventId', formatStreamId(pos));
    return u.toString();
  }

  openSSE() {
    if (typeof this.ES !== 'function') return this.retryLater();
    this.setState({ status: 'connecting', retryInMs: undefined });
    let es;
    try { es = new this.ES(this.sseURL()); } catch (e) { return this.retryLater(); }
    this.es = es;
    let errorsInRow = 0;
    es.onopen = () => {
      errorsInRow = 0;
      this.state.lastMessageAt = Date.now();
      clearTimeout(this.timers.stable);
      this.timers.stable = setTimeout(() => { if (es === this.es) this.state.failures = 0; }, this.t.stableMs);
      this.setState({ status: 'connected', transport: 'sse', connected: true, retryInMs: undefined });
      this.scheduleRefresh();
      this.scheduleProbe();
    };
    es.onmessage = (/** @type {MessageEvent} */ ev) => {
      if (es !== this.es) return;
      this.state.lastMessageAt = Date.now();
      const ids = parseStreamId(ev.lastEventId);
      let f;
      try { f = JSON.parse(ev.data); } catch (_) { return; }
      if (!f || typeof f.event !== 'string') return;
      if (f.event === 'wps.recovery') {
        if (f.data && f.data.recovered === false) this.gap(f.channel, { recovered: false, reason: f.data.reason });
        Object.assign(this.positions, ids);
        return;
      }
      const p = ids[f.channel];
      Object.assign(this.positions, ids);
      this.enqueue(f.channel, f.event, f.data, p && p.offset, p && p.epoch);
    };
    es.onerror = () => {
      if (es !== this.es) return;
      errorsInRow++;
      // EventSource reconnects by itself (with Last-Event-ID); after 3 errors in a row, or a refused stream, our backoff takes over.
      if (es.readyState === 2 || errorsInRow >= 3) {
        this.closeSSE();
        this.state.failures++;
        this.setState({ connected: false, transport: null });
        this.retryLater();
      } else {
        this.setState({ status: 'connecting', connected: false });
      }
    };
  }

  restartSSE() {
    clearTimeout(this.timers.sseRestart);
    this.timers.sseRestart = setTimeout(() => { if (this.es) { this.closeSSE(); this.openSSE(); } }, 50);
  }

  scheduleProbe() {
    clearTimeout(this.timers.probe);
    if (this.config.forceSSE || typeof this.WS !== 'function') return;
    this.timers.probe = setTimeout(() => {
      if (this.es && !this.probe && !this.ws) this.openWS(true);
      if (this.es) this.scheduleProbe();
    }, this.t.wsProbeMs);
  }

  closeSSE() {
    const es = this.es;
    this.es = null;
    clearTimeout(this.timers.probe);
    if (es) { es.onopen = es.onmessage = es.onerror = null; try { es.close(); } catch (_) { /* */ } }
  }

  closeTransports() {
    for (const ws of [this.ws, this.probe]) {
      if (ws) { ws.onopen = ws.onmessage = ws.onclose = null; ws.onerror = () => {}; try { ws.close(1000); } catch (_) { /* */ } }
    }
    this.ws = this.probe = null;
    this.closeSSE();
  }

  clearTimers() {
    for (const k of Object.keys(this.timers)) { clearTimeout(this.timers[k]); clearInterval(this.timers[k]); }
    this.timers = {};
  }

  scheduleRefresh() {
    clearTimeout(this.timers.refresh);
    if (!this.tokens.canRefresh() || !this.tokens.exp) return;
    const remaining = this.tokens.exp * 1000 - Date.now();
    const delay = Math.max(this.t.minRefreshMs, remaining * this.t.refreshRatio);
    this.timers.refresh = setTimeout(() => this.refreshNow(), delay);
  }

  /** Fetches a new token and hands it to the relay in-band (WS) or by reconnecting (SSE). */
  async refreshNow() {
    const r = await this.tokens.refresh();
    if (this.stopped || this.closedByUser) return;
    if (!r.ok) {
      if (r.terminal) return this.stop('authentication-failed', r.error || 'token refresh refused');
      this.reportError('token_refresh_failed', r.error || 'token refresh failed');
      clearTimeout(this.timers.refresh);
      this.timers.refresh = setTimeout(() => this.refreshNow(), backoffDelay(1, this.t.baseMs, this.t.maxMs));
      return;
    }
    this.setState({ exp: this.tokens.exp });
    if (this.tokens.channels) this.subscribe(this.tokens.channels);
    if (this.state.transport === 'ws') this.sendJSON({ type: 'auth', token: this.tokens.token });
    else if (this.state.transport === 'sse') { this.closeSSE(); this.openSSE(); }
  }

  /** Liveness: a socket silent beyond `silenceMs` (20 s pings) is replaced. @param {boolean} now */
  watchdog(now) {
    if (this.stopped || this.closedByUser) return;
    if (!this.ws && !this.es) { if (now) this.connectNow(); return; }
    if (this.ws && this.ws.readyState === 1 && Date.now() - this.state.lastMessageAt > this.t.silenceMs) {
      this.log('no frame for', Date.now() - this.state.lastMessageAt, 'ms; reconnecting');
      const ws = this.ws;
      this.onWSClose(ws, 1006, 'liveness', true);
      try { ws.close(); } catch (_) { /* */ }
    }
  }
}

/**
 * Creates and connects a client.
 * @param {ClientConfig} config
 */
export function createClient(config) {
  return new RelayClient(config).connect();
}

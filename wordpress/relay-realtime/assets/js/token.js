// @ts-check
/**
 * Connection-token holder shared by the client and the Yjs provider.
 * Refreshes through the WordPress REST route (`POST tokenEndpoint` with
 * `X-WP-Nonce`), or through `config.fetchToken()` when given. Never throws:
 * `refresh()` resolves to `{ok, status?, error?}`.
 *
 * @typedef {{token: string, exp: number, channels?: string[], e2e?: any}} TokenAnswer
 * @typedef {{ok: boolean, status?: number, terminal?: boolean, error?: string}} RefreshResult
 */

export class TokenSource {
  /**
   * @param {{token?: string, exp?: number, tokenEndpoint?: string, nonce?: string,
   *          fetchToken?: () => Promise<TokenAnswer>, fetch?: typeof fetch}} config
   */
  constructor(config) {
    this.config = config;
    /** @type {string} */ this.token = config.token || '';
    /** @type {number} */ this.exp = Number(config.exp) || 0;
    /** @type {string[]|null} */ this.channels = null;
    /** @type {Promise<RefreshResult>|null} */ this._inflight = null;
    /** @type {Set<(t: TokenSource) => void>} */ this._listeners = new Set();
  }

  /** Seconds until expiry (negative when expired; Infinity when unknown). */
  ttl() {
    return this.exp ? this.exp - Date.now() / 1000 : Infinity;
  }

  /** Whether a refresh route is configured. */
  canRefresh() {
    return !!(this.config.fetchToken || this.config.tokenEndpoint);
  }

  /** @param {(t: TokenSource) => void} fn */
  onChange(fn) { this._listeners.add(fn); return () => this._listeners.delete(fn); }

  /**
   * Fetches a new token (coalesced: concurrent callers share one request).
   * @returns {Promise<RefreshResult>}
   */
  refresh() {
    if (this._inflight) return this._inflight;
    this._inflight = this._refresh().finally(() => { this._inflight = null; });
    return this._inflight;
  }

  /** @returns {Promise<RefreshResult>} */
  async _refresh() {
    const c = this.config;
    try {
      /** @type {TokenAnswer} */
      let answer;
      if (c.fetchToken) {
        answer = await c.fetchToken();
      } else if (c.tokenEndpoint) {
        const f = c.fetch || globalThis.fetch;
        /** @type {Record<string, string>} */
        const headers = { 'Content-Type': 'application/json' };
        if (c.nonce) headers['X-WP-Nonce'] = c.nonce;
        const res = await f(c.tokenEndpoint, { method: 'POST', headers, credentials: 'same-origin', body: '{}' });
        if (!res.ok) {
          return { ok: false, status: res.status, terminal: res.status === 401 || res.status === 403, error: `token endpoint answered ${res.status}` };
        }
        answer = await res.json();
      } else {
        return { ok: false, terminal: true, error: 'no token endpoint' };
      }
      if (!answer || typeof answer.token !== 'string' || !answer.token) {
        return { ok: false, error: 'token endpoint answer has no token' };
      }
      this.token = answer.token;
      this.exp = Number(answer.exp) || 0;
      if (Array.isArray(answer.channels)) this.channels = answer.channels;
      // Keys of encrypted rooms come with the token (a rotated key id reaches open editors here).
      if (answer.e2e && typeof answer.e2e === 'object') /** @type {any} */ (this).e2e = answer.e2e;
      for (const fn of this._listeners) { try { fn(this); } catch (_) { /* listener errors stay local */ } }
      return { ok: true };
    } catch (e) {
      return { ok: false, error: String(e && /** @type {any} */ (e).message || e) };
    }
  }
}

/** @type {WeakMap<object, TokenSource>} */
const shared = new WeakMap();

/**
 * One TokenSource per config object, so the client and every provider of a
 * page share refreshes.
 * @param {any} config
 * @returns {TokenSource}
 */
export function tokenSourceFor(config) {
  let t = shared.get(config);
  if (!t) { t = new TokenSource(config); shared.set(config, t); }
  return t;
}

// @ts-check
/**
 * Opens relay payload envelopes with WebCrypto (Docs/security.md):
 *   v1 `{"v":1,"p":b64(iv12 ‖ ct ‖ tag16)}`, AES-256-GCM, no AAD, key `payloadKeys.v1`;
 *   v2 `{"v":2,"alg":"A256GCM","kid","p"}`, AAD = "relay-envelope-v2" ‖ u8 len alg ‖ alg
 *      ‖ u8 len kid ‖ kid ‖ u16be len ch ‖ ch (full channel `site:{site_id}:{name}`), key `payloadKeys[kid]`.
 * `XC20P` cannot be opened by WebCrypto: reported as `unsupported_alg`.
 * Never throws: resolves to `{ok: true, event, data}` or `{ok: false, code, message}`.
 *
 * @typedef {{ok: true, event: string|null, data: any} | {ok: false, code: string, message: string}} OpenResult
 */

const enc = new TextEncoder();
/** @type {Map<string, Promise<CryptoKey>>} */
const keyCache = new Map();

/** @param {string} b64 */
export function base64ToBytes(b64) {
  const s = atob(String(b64).replace(/-/g, '+').replace(/_/g, '/'));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

/** @param {string} b64 */
function importKey(b64) {
  let k = keyCache.get(b64);
  if (!k) {
    const raw = base64ToBytes(b64);
    if (raw.length !== 32) return Promise.reject(new Error('payload key is not 32 bytes'));
    k = globalThis.crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['decrypt']);
    keyCache.set(b64, k);
  }
  return k;
}

/** Whether `data` looks like a sealed envelope. @param {any} data */
export function isEnvelope(data) {
  return !!data && typeof data === 'object' && (data.v === 1 || data.v === 2) && typeof data.p === 'string';
}

/**
 * The full, site-scoped channel name the v2 AAD binds.
 * @param {string} channel @param {string} [siteId]
 */
export function fullChannel(channel, siteId) {
  if (!siteId || channel.startsWith(`site:${siteId}:`)) return channel;
  return `site:${siteId}:${channel}`;
}

/**
 * @param {string} alg @param {string} kid @param {string} channel
 */
export function aadV2(alg, kid, channel) {
  const a = enc.encode(alg), k = enc.encode(kid), c = enc.encode(channel);
  const head = enc.encode('relay-envelope-v2');
  const out = new Uint8Array(head.length + 1 + a.length + 1 + k.length + 2 + c.length);
  let o = 0;
  out.set(head, o); o += head.length;
  out[o++] = a.length; out.set(a, o); o += a.length;
  out[o++] = k.length; out.set(k, o); o += k.length;
  out[o++] = c.length >> 8; out[o++] = c.length & 0xff; out.set(c, o);
  return out;
}

/**
 * @param {any} env the envelope object
 * @param {{channel: string, siteId?: string, keys?: Record<string, string>}} ctx
 * @returns {Promise<OpenResult>}
 */
export async function openEnvelope(env, ctx) {
  try {
    if (!globalThis.crypto || !globalThis.crypto.subtle) return { ok: false, code: 'no_webcrypto', message: 'WebCrypto unavailable (page not served over HTTPS or localhost?)' };
    const keys = ctx.keys || {};
    /** @type {AesGcmParams} */
    let params;
    let keyB64;
    const bytes = base64ToBytes(env.p);
    if (env.v === 1) {
      keyB64 = keys.v1;
      params = { name: 'AES-GCM', iv: bytes.subarray(0, 12) };
    } else {
      if (env.alg !== 'A256GCM') return { ok: false, code: 'unsupported_alg', message: `envelope algorithm ${env.alg} cannot be opened by WebCrypto` };
      if (typeof env.kid !== 'string') return { ok: false, code: 'malformed', message: 'v2 envelope without kid' };
      keyB64 = keys[env.kid];
      params = { name: 'AES-GCM', iv: bytes.subarray(0, 12), additionalData: aadV2(env.alg, env.kid, fullChannel(ctx.channel, ctx.siteId)) };
    }
    if (!keyB64) return { ok: false, code: 'no_key', message: `no payload key for ${env.v === 1 ? 'v1' : `kid ${env.kid}`}` };
    if (bytes.length < 28) return { ok: false, code: 'malformed', message: 'envelope too short' };
    const key = await importKey(keyB64);
    let plain;
    try {
      plain = await globalThis.crypto.subtle.decrypt(params, key, bytes.subarray(12));
    } catch (_) {
      return { ok: false, code: 'decrypt_failed', message: 'envelope did not open (wrong key, channel or tampered)' };
    }
    const text = new TextDecoder().decode(plain);
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && typeof parsed.event === 'string' && 'data' in parsed) {
      return { ok: true, event: parsed.event, data: parsed.data };
    }
    return { ok: true, event: null, data: parsed };
  } catch (e) {
    return { ok: false, code: 'malformed', message: String(e && /** @type {any} */ (e).message || e) };
  }
}
